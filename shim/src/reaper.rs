//! The optional minimal init: PID 1 of the container starts the command as its child,
//! forwards signals to it, reaps every orphan, and exits with the command's status, so a
//! command that never waits for its children leaves no zombies.
//!
//! It is the container's init process itself (the shim's image, cloned and set up, never
//! exec'd): non-dumpable, so other container processes cannot reach its /proc/1/exe or memory.
//! A command killed by signal N makes the init exit with 128 + N, as tini does.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sys::{self, Forked};

/// The signals passed on to the command.
const FORWARDED: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
    Signal::SIGPWR,
];

/// Forks the command. Returns `Ok(())` in the child, which goes on to exec it; the parent
/// becomes the reaper and never returns.
pub fn spawn(tty: bool) -> nix::Result<()> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    mask.thread_block()?;
    // PID 1 of a namespace gets a signal from outside only if it handles it; a handler that
    // is never run (the signals stay blocked and are read from a signalfd) is enough.
    sys::install_noop_handlers(&FORWARDED)?;
    nix::sys::prctl::set_dumpable(false)?;
    // SAFETY: the init is single-threaded (it was cloned from the single-threaded shim and
    // starts no thread).
    #[allow(unsafe_code)]
    let forked = unsafe { sys::clone_process(CloneFlags::empty()) }?;
    match forked {
        Forked::Child => {
            // The command leads its own process group, the terminal's foreground one.
            nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            if tty {
                let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpid());
            }
            Ok(())
        }
        Forked::Parent(command) => {
            // The init needs none of the descriptors it was set up with. Its copy of the sync
            // socket must go in particular: the shim learns that the command exec'd when the
            // socket closes, which the command's exec does only if nobody else holds it.
            // SAFETY: single-threaded; the descriptors above 2 belong to objects of the setup
            // code that this branch never touches again.
            #[allow(unsafe_code)]
            unsafe {
                sys::close_from(3)
            };
            run(command, &mask)
        }
    }
}

fn run(command: Pid, mask: &SigSet) -> ! {
    let signals = match SignalFd::new(mask) {
        Ok(s) => s,
        Err(_) => {
            let _ = kill(command, Signal::SIGKILL);
            sys::exit_now(1)
        }
    };
    // Our own descriptors go; the command keeps its stdio.
    loop {
        match signals.read_signal() {
            Ok(Some(info)) if info.ssi_signo == Signal::SIGCHLD as u32 => reap(command),
            Ok(Some(info)) => {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    let _ = kill(command, sig);
                }
            }
            Ok(None) | Err(Errno::EINTR) => {}
            Err(_) => sys::exit_now(1),
        }
    }
}

/// Collects every ended child; exits when the command has ended.
fn reap(command: Pid) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => sys::exit_now(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                sys::exit_now(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {} // an orphan: reaped, nothing more
        }
    }
}
