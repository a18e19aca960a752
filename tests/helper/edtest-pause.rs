//! The CRI tests' pause program: the process a pod sandbox keeps running so its namespaces
//! live. It waits for signals: SIGTERM or SIGINT end it (exit 0), SIGCHLD reaps every child
//! that ended (pid 1 of a pod whose containers share its PID namespace adopts orphans).
//! Built static by the tests with plain rustc (no crates), so the image holds this file alone.

use std::os::raw::c_int;

extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn pause() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
}

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIGCHLD: c_int = 17;
const WNOHANG: c_int = 1;

extern "C" fn quit(_: c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

extern "C" fn reap(_: c_int) {
    let mut status: c_int = 0;
    // SAFETY: waitpid is async-signal-safe; `status` outlives the call.
    while unsafe { waitpid(-1, &mut status, WNOHANG) } > 0 {}
}

fn main() {
    // SAFETY: handlers that call only async-signal-safe functions.
    unsafe {
        signal(SIGINT, quit);
        signal(SIGTERM, quit);
        signal(SIGCHLD, reap);
    }
    loop {
        // SAFETY: pause has no arguments; it returns after a handled signal.
        unsafe { pause() };
    }
}
