//! The few system calls that nix does not wrap safely. Every `unsafe` block of the crate is here.
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Which side of a [`clone_process`] we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// `clone(2)` with fork semantics: the child gets a copy of the address space and runs on a
/// copy of our stack, in the new namespaces in `flags`.
///
/// # Safety
///
/// The calling process must be single-threaded: the child gets only the calling thread, so a
/// lock another thread held (the allocator's, stdio's) would stay locked in the child forever.
/// The shim, nsinit and the init's reaper are single-threaded by design.
pub unsafe fn clone_process(flags: CloneFlags) -> nix::Result<Forked> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack the kernel gives the child a copy-on-write copy of the caller's
    // stack, as fork() does; the shim is single-threaded here, so no lock is held by another
    // thread that the child could deadlock on. No pointer arguments are passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// [`clone_process`] through `clone3(2)`, which can also place the child in the cgroup v2
/// directory `cgroup` as it is born (`CLONE_INTO_CGROUP`: no migration, so none of the
/// migration lock's cost). Falls back to `clone(2)` when the kernel has no `clone3` (before
/// 5.3) or no `CLONE_INTO_CGROUP` (before 5.7) and no cgroup is asked for; with one asked
/// for, `ENOSYS`/`E2BIG` come back to the caller, who moves the child instead.
///
/// # Safety
///
/// As [`clone_process`]: the calling process must be single-threaded.
pub unsafe fn clone3_process(
    flags: CloneFlags,
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
) -> nix::Result<Forked> {
    use std::os::fd::AsRawFd;
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let mut args = CloneArgs {
        flags: flags.bits() as u32 as u64,
        // With CLONE_PARENT the child gets the caller's own exit signal, and clone3 wants 0.
        exit_signal: if flags.contains(CloneFlags::CLONE_PARENT) {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` lives across the call and its size is passed with it; a null stack gives
    // the child a copy-on-write copy of ours (fork semantics). Single-threaded: see above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => match Errno::last() {
            Errno::ENOSYS | Errno::E2BIG if cgroup.is_none() => {
                // SAFETY: as above.
                unsafe { clone_process(flags) }
            }
            e => Err(e),
        },
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// Whether the running kernel is at least `major.minor` (from uname; false when unreadable).
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(u) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = u.release().to_string_lossy().into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= (major, minor)
}

/// Whether this process runs rootless: not as root, or as root of a user namespace (a
/// rootless engine's runtime).
pub fn rootless() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// Whether this process runs in a user namespace other than the initial one (its uid map is
/// not the whole identity range), as a rootless engine's runtime does.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        let f: Vec<&str> = m.split_whitespace().collect();
        f != ["0", "0", "4294967295"]
    })
}

/// Marks every descriptor from `first` up close-on-exec (`close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC`), falling back to walking /proc/self/fd on older kernels.
pub fn cloexec_from(first: i32) -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes integers only and, with CLOSE_RANGE_CLOEXEC, closes nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|_| Errno::EBADF)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number; an fd closed meanwhile just returns EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Clears close-on-exec on descriptors `first` to `first + count - 1` (passed on to an exec'd
/// program, runc's --preserve-fds); a closed one is an error.
pub fn keep_on_exec(first: i32, count: u32) -> nix::Result<()> {
    for fd in first..first.saturating_add(count as i32) {
        // SAFETY: F_SETFD on a descriptor number touches no memory; a closed one is EBADF.
        let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        Errno::result(r)?;
    }
    Ok(())
}

/// Closes every descriptor from `first` up (`close_range(2)`), for a process that must not
/// keep what it inherited.
///
/// # Safety
///
/// No live Rust object may own a descriptor from `first` up (it would later close or use a
/// number that is gone or reused), and no other thread may be opening descriptors meanwhile:
/// call it at process start, or in a freshly cloned single-threaded child.
pub unsafe fn close_from(first: i32) {
    // SAFETY: close_range takes integers only; the caller owns every descriptor it closes here
    // (it is called at process start, before any are opened by Rust code).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        )
    };
    if ret == 0 {
        return;
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd >= first)
            .collect();
        for fd in fds {
            // SAFETY: as above; the read_dir descriptor may be closed already, which is harmless.
            unsafe { libc::close(fd) };
        }
    }
}

/// Ends the process at once, without running destructors or atexit handlers: what a forked
/// child must do so it does not flush or free the parent's copies.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Sets the window size of a terminal.
pub fn set_winsize(fd: std::os::fd::BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct from the pointer, which lives across the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(ret).map(drop)
}

/// Reads the window size of a terminal.
pub fn get_winsize(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<(u16, u16)> {
    use std::os::fd::AsRawFd;
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct to the pointer, which lives across the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(ret).map(|_| (ws.ws_row, ws.ws_col))
}

/// Makes a terminal the controlling terminal of the calling session leader.
pub fn set_controlling_tty(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal from another session).
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// Restores the default disposition of every signal and unblocks them all, as a process
/// should find them after exec (dispositions set to "ignore", such as Rust's SIGPIPE, and the
/// blocked mask survive execve).
pub fn reset_signals() -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code of ours, so no signal-safety rules
        // apply; the previous action is discarded.
        unsafe { sigaction(sig, &dfl) }?;
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// Ignores `sig` (SIGPIPE in the shim: a vanished client must surface as EPIPE, not death).
pub fn ignore_signal(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{signal, SigHandler};
    // SAFETY: SIG_IGN runs no handler code.
    unsafe { signal(sig, SigHandler::SigIgn) }.map(drop)
}

/// Sends `data` on a unix socket with `fd` attached (SCM_RIGHTS).
pub fn send_with_fd(
    sock: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    fd: Option<std::os::fd::BorrowedFd<'_>>,
) -> nix::Result<()> {
    send_with_fds(sock, data, fd.as_slice())
}

/// Sends `data` on a unix socket with `fds` attached (SCM_RIGHTS), in one message.
pub fn send_with_fds(
    sock: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> nix::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    use std::os::fd::AsRawFd;
    let iov = [std::io::IoSlice::new(data)];
    let raw: Vec<std::os::fd::RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs: Vec<ControlMessage<'_>> = if raw.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None).map(drop)
}

/// Receives one message from a unix socket, and the descriptor sent with it, if any.
pub fn recv_with_fd(
    sock: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> nix::Result<(usize, Option<std::os::fd::OwnedFd>)> {
    recv_with_fds(sock, buf).map(|(n, fds)| (n, fds.into_iter().next()))
}

/// The most descriptors [`recv_with_fds`] takes with one message.
pub const MAX_FDS: usize = 8;

/// Receives one message from a unix socket and the descriptors sent with it (up to
/// [`MAX_FDS`]), close-on-exec, in the order they were sent.
pub fn recv_with_fds(
    sock: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> nix::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; MAX_FDS]);
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut out = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for raw in fds {
                // SAFETY: the kernel just installed this descriptor in our table for us (it is
                // new and owned by nobody else); wrapping it makes sure it is closed.
                out.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    Ok((msg.bytes, out))
}

extern "C" fn noop_handler(_: libc::c_int) {}

/// Installs a handler that does nothing for each signal (see [`crate::reaper`]).
pub fn install_noop_handlers(signals: &[nix::sys::signal::Signal]) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(
        SigHandler::Handler(noop_handler),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in signals {
        // SAFETY: the handler does nothing, so it is async-signal-safe; the previous action is
        // discarded.
        unsafe { sigaction(*sig, &action) }?;
    }
    Ok(())
}

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD (linux/bpf.h); the kernel takes a
/// shorter attr than its own and treats the rest as zero.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;

/// Loads an eBPF program of `prog_type` from `insns` (8 bytes per instruction). With `log`, the
/// verifier writes its report there (NUL-terminated).
pub fn bpf_prog_load(
    prog_type: u32,
    insns: &[u8],
    license: &std::ffi::CStr,
    log: Option<&mut [u8]>,
) -> nix::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if insns.is_empty() || !insns.len().is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let mut attr = BpfProgLoadAttr {
        prog_type,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..6].copy_from_slice(b"edcgdv");
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = log.len().min(u32::MAX as usize) as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    // SAFETY: attr is a valid bpf_attr prefix whose size we pass; the pointers in it (insns,
    // license, log) point to live buffers of the stated sizes for the whole call, and the
    // kernel writes only into log (within log_size).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &mut attr as *mut BpfProgLoadAttr,
            std::mem::size_of::<BpfProgLoadAttr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: on success bpf(2) returns a new descriptor that nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(ret as i32) })
}

/// Attaches the program `prog` to the cgroup directory `target` as `attach_type`.
pub fn bpf_prog_attach(
    target: std::os::fd::BorrowedFd<'_>,
    prog: std::os::fd::BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let mut attr = BpfProgAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    // SAFETY: attr is a valid bpf_attr prefix of the size we pass; it holds descriptors only,
    // which the borrows keep open across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &mut attr as *mut BpfProgAttachAttr,
            std::mem::size_of::<BpfProgAttachAttr>() as libc::c_uint,
        )
    };
    Errno::result(ret).map(drop)
}
/// The bridge ioctl that adds an interface to a bridge (linux/sockios.h).
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// Attaches interface `ifindex` to bridge `bridge` with the old `SIOCBRADDIF` ioctl, as brctl
/// does: the fallback for kernels that acknowledge `IFLA_MASTER` over netlink and ignore it.
/// Acts in the caller's network namespace (the socket's).
pub fn bridge_add_interface(bridge: &str, ifindex: u32) -> nix::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let name = bridge.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    let index = libc::c_int::try_from(ifindex).map_err(|_| Errno::EINVAL)?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data (byte arrays and a union of integers, arrays and a pointer,
    // which stays null and is never read); all zeros is a valid value of it.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_ifindex = index;
    // SAFETY: SIOCBRADDIF reads an ifreq (the bridge's NUL-terminated name, the port's index)
    // from the pointer, which points to our initialized ifreq for the whole call.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCBRADDIF as _, &ifr) };
    Errno::result(ret).map(drop)
}

/// `NS_GET_NSTYPE` (linux/nsfs.h): `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The type of the namespace a namespace file refers to (`CLONE_NEWNET`, ...), for files
/// under /proc/PID/ns/ and bind mounts of them (/var/run/netns/NAME). Any other file fails
/// (ENOTTY).
pub fn namespace_type(file: &impl std::os::fd::AsFd) -> nix::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type as the result; the
    // descriptor is borrowed, so it stays open across the call.
    let ret = unsafe { libc::ioctl(file.as_fd().as_raw_fd(), NS_GET_NSTYPE as _) };
    Errno::result(ret)
}

// `Insn` is passed to the kernel as `struct sock_filter`.
const _: () = assert!(
    std::mem::size_of::<crate::seccomp::Insn>() == std::mem::size_of::<libc::sock_filter>()
);

/// Loads a seccomp filter (`seccomp(SECCOMP_SET_MODE_FILTER)`) for this thread and its future
/// children. Needs no_new_privs or CAP_SYS_ADMIN. Allocates nothing (safe after a raw fork).
pub fn seccomp_load(insns: &[crate::seccomp::Insn], flags: u32) -> nix::Result<()> {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    if insns.is_empty() || insns.len() > u16::MAX as usize {
        return Err(Errno::EINVAL);
    }
    let prog = libc::sock_fprog {
        len: insns.len() as libc::c_ushort,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `Insn` is #[repr(C)] with the layout of `struct sock_filter` (size checked
    // above, fields u16, u8, u8, u32 in order); `prog` points to `insns`, which outlives the
    // call; the kernel copies the program and writes nothing back.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let e = Errno::last();
    if e == Errno::ENOSYS && flags == 0 {
        // Kernels before 3.17 have only the prctl interface.
        // SAFETY: as above; PR_SET_SECCOMP reads the sock_fprog and copies the program.
        let ret = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            )
        };
        return Errno::result(ret).map(drop);
    }
    Err(e)
}

/// A syscall without arguments, for tests of what a filter lets through: Ok(return value) or
/// Err(errno).
#[cfg(test)]
pub fn raw_syscall0(nr: libc::c_long) -> Result<i64, i32> {
    // SAFETY: the tests pass syscalls that take no pointer arguments (missing arguments read
    // as whatever is in the registers, which these syscalls either ignore or reject).
    let ret = unsafe { libc::syscall(nr, 0, 0, 0, 0, 0) };
    if ret < 0 {
        Err(Errno::last_raw())
    } else {
        Ok(ret)
    }
}

/// Sets a resource limit of another process (`prlimit(2)`); u64::MAX is unlimited.
pub fn prlimit(
    pid: nix::unistd::Pid,
    resource: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
) -> nix::Result<()> {
    let new = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `new` is a valid rlimit64 that lives across the call; the old-limit pointer is
    // null, so the kernel writes nothing.
    let ret = unsafe {
        libc::prlimit64(
            pid.as_raw(),
            resource,
            &new as *const libc::rlimit64,
            std::ptr::null_mut(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Closes every descriptor from 3 up except those in `keep`: what a process cloned from the
/// shim does first, so nothing of the shim's (its log, sockets, other processes' pipes) stays
/// open in the container, even before exec.
///
/// # Safety
///
/// As [`close_from`]: the Rust objects owning the closed descriptors must never be used or
/// dropped afterwards (the cloned child execs or exits without running destructors), and the
/// process must be single-threaded.
pub unsafe fn close_fds_except(keep: &[std::os::fd::RawFd]) -> nix::Result<()> {
    let mut keep: Vec<libc::c_uint> = keep
        .iter()
        .filter(|fd| **fd >= 3)
        .map(|fd| *fd as libc::c_uint)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let close_range = |first: libc::c_uint, last: libc::c_uint| -> nix::Result<()> {
        // SAFETY: close_range takes integers only; the caller owns every descriptor in the
        // range (a freshly cloned process whose Rust objects for them are never dropped).
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        Errno::result(ret).map(drop)
    };
    let mut first: libc::c_uint = 3;
    let mut result = Ok(());
    for k in keep.iter().copied().chain([libc::c_uint::MAX]) {
        if k > first {
            let last = if k == libc::c_uint::MAX { k } else { k - 1 };
            result = close_range(first, last);
            if result.is_err() {
                break;
            }
        }
        first = k.saturating_add(1);
    }
    if result == Err(Errno::ENOSYS) {
        // Before 5.9: walk /proc/self/fd.
        let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map_err(|_| Errno::EBADF)?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd: &i32| *fd >= 3 && !keep.contains(&(*fd as libc::c_uint)))
            .collect();
        for fd in fds {
            // SAFETY: as above; the read_dir descriptor may be closed already (EBADF).
            unsafe { libc::close(fd) };
        }
        return Ok(());
    }
    result
}

/// `open_tree(path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC [| AT_RECURSIVE])`: a detached copy of
/// the mount (tree) at `path`, to attach with [`move_mount`]. ENOSYS before 5.2.
pub fn open_tree_clone(
    path: &std::path::Path,
    recursive: bool,
) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::NixPath;
    use std::os::fd::FromRawFd;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let ret = path.with_nix_path(|p| {
        // SAFETY: `p` is a NUL-terminated path valid for the call; the rest are integers.
        unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), flags) }
    })?;
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: on success open_tree returns a new descriptor nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(ret as i32) })
}

/// `move_mount(from, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`: attaches
/// the detached mount `from` on the file or directory `to` refers to.
pub fn move_mount(
    from: std::os::fd::BorrowedFd<'_>,
    to: std::os::fd::BorrowedFd<'_>,
) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    const F_EMPTY_PATH: libc::c_uint = 0x4;
    const T_EMPTY_PATH: libc::c_uint = 0x40;
    let empty = c"";
    // SAFETY: both paths are the same static empty C string; the descriptors are borrowed
    // for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            F_EMPTY_PATH | T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// The supplementary groups of a unix socket's peer as they were when it connected
/// (`SO_PEERGROUPS`, Linux 4.13). ENOPROTOOPT on older kernels.
pub fn peer_groups(sock: std::os::fd::BorrowedFd<'_>) -> nix::Result<Vec<u32>> {
    use std::os::fd::AsRawFd;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `groups`, which has that much
        // room, and stores the size it needs (or wrote) in `len`.
        let ret = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr() as *mut libc::c_void,
                &mut len,
            )
        };
        let needed = len as usize / std::mem::size_of::<libc::gid_t>();
        if ret == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let e = Errno::last();
        if e == Errno::ERANGE && needed > groups.len() && needed <= 65536 {
            groups.resize(needed, 0);
            continue;
        }
        return Err(e);
    }
}

/// Makes the detached (or attached) mount tree `tree` and every mount below it read-only:
/// `mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, {attr_set: MOUNT_ATTR_RDONLY})`.
/// ENOSYS before 5.12.
pub fn mount_setattr_readonly_recursive(tree: std::os::fd::BorrowedFd<'_>) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: `attr` is a mount_attr of the size passed, living across the call (the kernel
    // only reads it); the path is a static empty C string; the descriptor is borrowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Sets the NIS domain name of this process's UTS namespace (`setdomainname(2)`).
pub fn set_domainname(name: &str) -> nix::Result<()> {
    let bytes = name.as_bytes();
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call; the
    // kernel copies at most `len` bytes and needs no terminating NUL.
    let ret = unsafe { libc::setdomainname(bytes.as_ptr().cast(), bytes.len()) };
    Errno::result(ret).map(drop)
}

/// Sets this process's execution domain (`personality(2)`), e.g. `PER_LINUX32`.
pub fn set_personality(persona: libc::c_ulong) -> nix::Result<()> {
    // SAFETY: personality takes an integer and touches no memory of ours.
    let ret = unsafe { libc::personality(persona) };
    Errno::result(ret).map(drop)
}

/// Sets this process's I/O scheduling class and priority (`ioprio_set(2)` with
/// `IOPRIO_WHO_PROCESS` and pid 0): `class` 1 (RT), 2 (BE) or 3 (IDLE), `level` 0 to 7.
pub fn set_io_priority(class: i32, level: i32) -> nix::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: i32 = 13;
    let prio = (class << IOPRIO_CLASS_SHIFT) | level;
    // SAFETY: ioprio_set takes integers only.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    Errno::result(ret).map(drop)
}

/// Makes the detached mount (tree) `tree` idmapped through the user namespace `userns`:
/// `mount_setattr(tree, "", AT_EMPTY_PATH [| AT_RECURSIVE], {attr_set: MOUNT_ATTR_IDMAP,
/// userns_fd})` (5.12). EINVAL where the filesystem cannot be idmapped.
pub fn mount_setattr_idmap(
    tree: std::os::fd::BorrowedFd<'_>,
    userns: std::os::fd::BorrowedFd<'_>,
    recursive: bool,
) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty = c"";
    // SAFETY: `attr` is a mount_attr of the size passed, living across the call (the kernel
    // only reads it); the path is a static empty C string; both descriptors are borrowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Gives back the memory a finished phase left behind: the main thread's stack pages below
/// the current frame (the create's deep calls dirtied them; an idle supervisor never reaches
/// that deep again, and if it does the kernel hands it zeroed pages) and the allocator's free
/// pages. Each of thousands of idle shims keeps only what it uses.
pub fn release_unused_memory() {
    let marker = 0u8;
    let here = std::ptr::addr_of!(marker) as usize;
    // Below the frame: the red zone (128 bytes) and one more page are kept for what this
    // function's callees use.
    let page = 4096usize;
    let top = (here & !(page - 1)).saturating_sub(2 * page);
    if let Some(start) = stack_start(here) {
        if top > start {
            // SAFETY: [start, top) lies in this thread's stack mapping, wholly below the live
            // frames (the stack grows down from above `here`); MADV_DONTNEED on private
            // anonymous memory only drops pages, which read back as zeroes if touched again.
            unsafe {
                libc::madvise(start as *mut libc::c_void, top - start, libc::MADV_DONTNEED);
            }
        }
    }
    // SAFETY: malloc_trim only returns free heap pages to the kernel; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The start of the mapping holding `addr`, if it is the process's main stack.
fn stack_start(addr: usize) -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter(|l| l.ends_with("[stack]"))
        .find_map(|l| {
            let range = l.split_whitespace().next()?;
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            (a <= addr && addr < b).then_some(a)
        })
}
