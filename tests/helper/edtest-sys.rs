//! `edtest-sys`: makes one system call a container should (or should not) be able to make and
//! prints what happened: `ok <value>` (exit 0) or `err <ERRNO>` (exit 1). Built by the test
//! harness with `rustc -C target-feature=+crt-static` (static, so it runs in the busybox
//! rootfs) and copied into the rootfs as /bin/edtest-sys.
//!
//! Every call is chosen to be harmless should it go through: reboot with a bad magic number,
//! kexec_load with invalid flags, init_module of an empty image, bpf with an empty attribute,
//! ptrace of a process the test started.

use std::ffi::{c_char, c_int, c_long, CString};

extern "C" {
    fn syscall(n: c_long, ...) -> c_long;
    fn __errno_location() -> *mut c_int;
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const KEYCTL: i64 = 250;
    pub const ADD_KEY: i64 = 248;
    pub const BPF: i64 = 321;
    pub const KEXEC_LOAD: i64 = 246;
    pub const INIT_MODULE: i64 = 175;
    pub const FINIT_MODULE: i64 = 313;
    pub const REBOOT: i64 = 169;
    pub const PTRACE: i64 = 101;
    pub const UNSHARE: i64 = 272;
    pub const CLONE: i64 = 56;
    pub const SOCKET: i64 = 41;
    pub const MOUNT: i64 = 165;
    pub const UMOUNT2: i64 = 166;
    pub const MKNODAT: i64 = 259;
    pub const SETHOSTNAME: i64 = 170;
    pub const WAIT4: i64 = 61;
    pub const KILL: i64 = 62;
    pub const PAUSE_OR_PPOLL: i64 = 34; // pause
    pub const FCNTL: i64 = 72;
    pub const OPEN_BY_HANDLE_AT: i64 = 304;
    pub const SETNS: i64 = 308;
    pub const GETPPID: i64 = 110;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const KEYCTL: i64 = 219;
    pub const ADD_KEY: i64 = 217;
    pub const BPF: i64 = 280;
    pub const KEXEC_LOAD: i64 = 104;
    pub const INIT_MODULE: i64 = 105;
    pub const FINIT_MODULE: i64 = 273;
    pub const REBOOT: i64 = 142;
    pub const PTRACE: i64 = 117;
    pub const UNSHARE: i64 = 97;
    pub const CLONE: i64 = 220;
    pub const SOCKET: i64 = 198;
    pub const MOUNT: i64 = 40;
    pub const UMOUNT2: i64 = 39;
    pub const MKNODAT: i64 = 33;
    pub const SETHOSTNAME: i64 = 161;
    pub const WAIT4: i64 = 260;
    pub const KILL: i64 = 129;
    pub const PAUSE_OR_PPOLL: i64 = 73; // ppoll with no descriptors and no timeout
    pub const FCNTL: i64 = 25;
    pub const OPEN_BY_HANDLE_AT: i64 = 265;
    pub const SETNS: i64 = 268;
    pub const GETPPID: i64 = 173;
}

const ERRNOS: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (8, "ENOEXEC"),
    (9, "EBADF"),
    (10, "ECHILD"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (25, "ENOTTY"),
    (26, "ETXTBSY"),
    (30, "EROFS"),
    (38, "ENOSYS"),
    (93, "EPROTONOSUPPORT"),
    (94, "ESOCKTNOSUPPORT"),
    (95, "EOPNOTSUPP"),
    (97, "EAFNOSUPPORT"),
    (126, "ENOKEY"),
];

fn errno_name(e: i32) -> String {
    ERRNOS
        .iter()
        .find(|(n, _)| *n == e)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| format!("E{e}"))
}

fn errno() -> i32 {
    // SAFETY: glibc's thread-local errno.
    unsafe { *__errno_location() }
}

/// Reports a raw syscall's result and exits.
fn report(ret: c_long) -> ! {
    if ret < 0 {
        println!("err {}", errno_name(errno()));
        std::process::exit(1)
    }
    println!("ok {ret}");
    std::process::exit(0)
}

fn report_io<T: std::fmt::Debug>(r: std::io::Result<T>) -> ! {
    match r {
        Ok(v) => {
            println!("ok {v:?}");
            std::process::exit(0)
        }
        Err(e) => {
            println!("err {}", errno_name(e.raw_os_error().unwrap_or(0)));
            std::process::exit(1)
        }
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

const SIGCHLD: c_long = 17;
const SIGKILL: c_long = 9;
const CLONE_NEWUSER: c_long = 0x1000_0000;
const PTRACE_ATTACH: c_long = 16;
const PTRACE_DETACH: c_long = 17;
const AT_FDCWD: c_long = -100;

/// fork(): 0 in the child.
fn fork() -> c_long {
    // SAFETY: clone with fork semantics (no new stack, no pointers).
    unsafe { syscall(nr::CLONE, SIGCHLD, 0 as c_long, 0 as c_long, 0 as c_long, 0 as c_long) }
}

/// Attaches to `pid`, waits for it to stop, detaches.
fn ptrace_attach(pid: c_long) -> c_long {
    // SAFETY: ptrace and wait4 with integer arguments and a null status pointer.
    unsafe {
        let r = syscall(nr::PTRACE, PTRACE_ATTACH, pid, 0 as c_long, 0 as c_long);
        if r < 0 {
            return r;
        }
        let mut status: c_int = 0;
        syscall(nr::WAIT4, pid, &mut status as *mut c_int, 0x4000_0000 as c_long, 0 as c_long); // __WALL
        syscall(nr::PTRACE, PTRACE_DETACH, pid, 0 as c_long, 0 as c_long);
        r
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let null = std::ptr::null::<c_char>();
    // SAFETY (every block below): raw syscalls with integer arguments, null pointers or
    // pointers to NUL-terminated strings and buffers that live across the call.
    match arg(0).as_str() {
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create = 0)
        "keyctl" => report(unsafe { syscall(nr::KEYCTL, 0 as c_long, -3 as c_long, 0 as c_long) }),
        // add_key("user", "edtest", "x", 1, KEY_SPEC_PROCESS_KEYRING): gone when we exit.
        "add_key" => {
            let (t, d) = (cstr("user"), cstr("edtest"));
            report(unsafe {
                syscall(nr::ADD_KEY, t.as_ptr(), d.as_ptr(), b"x".as_ptr(), 1 as c_long, -2 as c_long)
            })
        }
        // bpf(BPF_MAP_CREATE, NULL, 0): an all-zero attribute, EINVAL where allowed.
        "bpf" => report(unsafe { syscall(nr::BPF, 0 as c_long, 0 as c_long, 0 as c_long) }),
        // kexec_load(0, 1000 segments, NULL, invalid flag 0x100): EINVAL where allowed.
        "kexec_load" => report(unsafe {
            syscall(nr::KEXEC_LOAD, 0 as c_long, 1000 as c_long, 0 as c_long, 0x100 as c_long)
        }),
        // init_module(NULL, 0, ""): ENOEXEC (or ENOSYS without modules) where allowed.
        "init_module" => {
            let p = cstr("");
            report(unsafe { syscall(nr::INIT_MODULE, 0 as c_long, 0 as c_long, p.as_ptr()) })
        }
        // finit_module(-1, "", 0): EBADF where allowed.
        "finit_module" => {
            let p = cstr("");
            report(unsafe { syscall(nr::FINIT_MODULE, -1 as c_long, p.as_ptr(), 0 as c_long) })
        }
        // reboot with a bad first magic number: EINVAL where allowed, after the EPERM check.
        "reboot" => report(unsafe {
            syscall(nr::REBOOT, 0 as c_long, 0 as c_long, 0x0123_4567 as c_long, null)
        }),
        "ptrace-attach" => {
            let pid: c_long = arg(1).parse().expect("pid");
            report(ptrace_attach(pid))
        }
        // Attach to a child of our own: what a debugger in the container does.
        "ptrace-child" => {
            let child = fork();
            if child == 0 {
                loop {
                    // SAFETY: pause (ppoll with no descriptors on aarch64) waits for a signal.
                    unsafe { syscall(nr::PAUSE_OR_PPOLL, 0 as c_long, 0 as c_long, 0 as c_long, 0 as c_long) };
                }
            }
            if child < 0 {
                report(child);
            }
            let r = ptrace_attach(child);
            unsafe {
                syscall(nr::KILL, child, SIGKILL);
                syscall(nr::WAIT4, child, 0 as c_long, 0 as c_long, 0 as c_long);
            }
            report(r)
        }
        "unshare-user" => report(unsafe { syscall(nr::UNSHARE, CLONE_NEWUSER) }),
        "clone-newuser" => {
            let r = unsafe {
                syscall(nr::CLONE, CLONE_NEWUSER | SIGCHLD, 0 as c_long, 0 as c_long, 0 as c_long, 0 as c_long)
            };
            if r == 0 {
                std::process::exit(0);
            }
            if r > 0 {
                unsafe { syscall(nr::WAIT4, r, 0 as c_long, 0 as c_long, 0 as c_long) };
            }
            report(r)
        }
        "setns" => report(unsafe { syscall(nr::SETNS, -1 as c_long, 0 as c_long) }),
        // io_uring_setup(1, NULL): EFAULT where allowed (same number on every arch).
        "io_uring_setup" => report(unsafe { syscall(425 as c_long, 1 as c_long, 0 as c_long) }),
        "open_by_handle_at" => report(unsafe {
            syscall(nr::OPEN_BY_HANDLE_AT, -1 as c_long, 0 as c_long, 0 as c_long)
        }),
        // socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)
        "raw-socket" => report(unsafe { syscall(nr::SOCKET, 2 as c_long, 3 as c_long, 1 as c_long) }),
        // socket(AF_PACKET, SOCK_RAW, 0)
        "packet-socket" => report(unsafe { syscall(nr::SOCKET, 17 as c_long, 3 as c_long, 0 as c_long) }),
        // socket(AF_VSOCK, SOCK_STREAM, 0)
        "vsock-socket" => report(unsafe { syscall(nr::SOCKET, 40 as c_long, 1 as c_long, 0 as c_long) }),
        // mount("none", DIR, "tmpfs", 0, NULL)
        "mount" => {
            let (src, dir, fs) = (cstr("none"), cstr(&arg(1)), cstr("tmpfs"));
            report(unsafe { syscall(nr::MOUNT, src.as_ptr(), dir.as_ptr(), fs.as_ptr(), 0 as c_long, null) })
        }
        // umount2(DIR, MNT_DETACH)
        "umount" => {
            let dir = cstr(&arg(1));
            report(unsafe { syscall(nr::UMOUNT2, dir.as_ptr(), 2 as c_long) })
        }
        // mknod PATH b|c MAJOR MINOR
        "mknod" => {
            let path = cstr(&arg(1));
            let kind: c_long = if arg(2) == "b" { 0o060000 } else { 0o020000 };
            let (major, minor): (c_long, c_long) =
                (arg(3).parse().expect("major"), arg(4).parse().expect("minor"));
            let dev = (major << 8) | minor;
            report(unsafe { syscall(nr::MKNODAT, AT_FDCWD, path.as_ptr(), kind | 0o600, dev) })
        }
        "sethostname" => {
            let name = arg(1);
            report(unsafe { syscall(nr::SETHOSTNAME, name.as_ptr(), name.len() as c_long) })
        }
        "open-read" => report_io(std::fs::File::open(arg(1)).map(|_| "opened")),
        "open-write" => report_io(
            std::fs::OpenOptions::new()
                .write(true)
                .open(arg(1))
                .map(|_| "opened"),
        ),
        // Opens PATH read-only, prints its seals (F_GET_SEALS), then tries to reopen it for
        // writing through /proc/self/fd (the CVE-2019-5736 move) and to write.
        "seals" => {
            use std::io::Write;
            use std::os::fd::AsRawFd;
            let f = match std::fs::File::open(arg(1)) {
                Ok(f) => f,
                Err(e) => report_io::<()>(Err(e)),
            };
            let seals = unsafe { syscall(nr::FCNTL, f.as_raw_fd() as c_long, 1034 as c_long) };
            println!("seals {seals}");
            let again = format!("/proc/self/fd/{}", f.as_raw_fd());
            let w = std::fs::OpenOptions::new()
                .write(true)
                .open(&again)
                .and_then(|mut w| w.write_all(b"\x7fELF-overwritten"));
            report_io(w.map(|_| "written"))
        }
        // N getppid calls; prints the nanoseconds per call (the cost of the seccomp filter).
        "getppid-loop" => {
            let n: u64 = arg(1).parse().expect("count");
            let t = std::time::Instant::now();
            for _ in 0..n {
                unsafe { syscall(nr::GETPPID) };
            }
            println!("{:.1}", t.elapsed().as_nanos() as f64 / n as f64);
        }
        // A chroot escape (root with CAP_SYS_CHROOT): chroot into a directory below while the
        // working directory stays above it, climb with "..", chroot there. Prints the names in
        // the "/" reached, sorted, then whether a file can be made there.
        "escape" => {
            let _ = std::fs::create_dir("/tmp/edtest-escape");
            std::os::unix::fs::chroot("/tmp/edtest-escape").expect("chroot");
            for _ in 0..64 {
                std::env::set_current_dir("..").expect("chdir ..");
            }
            std::os::unix::fs::chroot(".").expect("chroot .");
            let mut names: Vec<String> = std::fs::read_dir("/")
                .expect("read /")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            println!("{}", names.join(" "));
            match std::fs::write("/edtest-escape-probe", b"x") {
                Ok(()) => println!("writable"),
                Err(e) => println!("{e}"),
            }
        }
        // The real, effective, saved and filesystem uids (/proc/self/status), as seen here.
        "uids" => {
            let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
            let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("Uid:");
            println!("{}", line["Uid:".len()..].split_whitespace().collect::<Vec<_>>().join(" "));
        }
        // The descriptors this process has, besides the one reading the directory.
        "fds" => {
            let mut out = Vec::new();
            for e in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Ok(target) = std::fs::read_link(e.path()) {
                    let t = target.display().to_string();
                    if t.starts_with("/proc/") && t.ends_with("/fd") {
                        continue; // the directory being read
                    }
                    out.push(format!("{name}={t}"));
                }
            }
            out.sort();
            println!("{}", out.join(" "));
        }
        other => {
            eprintln!("edtest-sys: unknown command {other:?}");
            std::process::exit(2)
        }
    }
}
