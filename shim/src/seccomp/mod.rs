//! Seccomp: the profile model (the OCI runtime spec's JSON shape), the built-in default profile
//! (Docker's, see [`default_profile`]), and the compiler to a classic BPF program
//! ([`compile`]) that the container's processes load just before they wait for Start.
//!
//! A profile in container.json is one of:
//!
//! * absent or `"default"`: the built-in profile, derived from the container's capabilities as
//!   Docker derives its own;
//! * `"unconfined"`: no filter;
//! * an object in the OCI shape: `defaultAction`, `defaultErrnoRet`, `architectures`, `flags`,
//!   `syscalls: [{names, action, errnoRet, args: [{index, value, valueTwo, op}]}]`.
//!
//! Rules are matched in order: the first rule that names the syscall and whose argument
//! conditions all hold decides; otherwise `defaultAction`. Syscall names this architecture does
//! not have are skipped (as runc does), so one profile serves several architectures.

mod compile;
pub mod tables;

use std::collections::HashSet;

use caps::{Capability, CapsHashSet};
use serde::{Deserialize, Serialize};

pub use compile::{compile, Arch, Insn, Program};

/// An OCI seccomp profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    /// What happens to a syscall no rule matches: an `SCMP_ACT_*` name.
    pub default_action: String,
    /// The errno of `SCMP_ACT_ERRNO` (default EPERM) or the message of `SCMP_ACT_TRACE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// `SCMP_ARCH_*` names. The filter always covers the native architecture; syscalls made
    /// through another ABI (i386 or x32 on x86_64, arm on aarch64) kill the process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// `SECCOMP_FILTER_FLAG_*` names: TSYNC, LOG, SPEC_ALLOW.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<Syscall>,
}

/// A rule: these syscalls, when these argument conditions all hold, get this action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Syscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
}

/// A condition on one argument (64-bit comparison). `SCMP_CMP_MASKED_EQ` is
/// `(arg & value) == value_two`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// The filter a container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// The built-in profile ([`default_profile`]).
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile from the request or container.json.
    Profile(Profile),
}

impl Seccomp {
    pub fn is_default(&self) -> bool {
        *self == Seccomp::Default
    }

    /// The profile to compile for a container with `caps`; `None` when unconfined.
    pub fn resolve(&self, caps: &CapsHashSet) -> Option<Profile> {
        match self {
            Seccomp::Default => Some(default_profile(caps)),
            Seccomp::Unconfined => None,
            Seccomp::Profile(p) => Some(p.clone()),
        }
    }

    /// Checks the setting; errors are (the sub-field, e.g. `.syscalls[3].names[0]`, and why).
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            Seccomp::Profile(p) => p.validate(),
            _ => Ok(()),
        }
    }
}

impl Serialize for Seccomp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Seccomp::Default => s.serialize_str("default"),
            Seccomp::Unconfined => s.serialize_str("unconfined"),
            Seccomp::Profile(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Seccomp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(s) => match s.as_str() {
                "default" => Ok(Seccomp::Default),
                "unconfined" => Ok(Seccomp::Unconfined),
                other => Err(D::Error::custom(format!(
                    "seccomp: {other:?} is not \"default\", \"unconfined\" or a profile object"
                ))),
            },
            serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(Seccomp::Profile)
                .map_err(|e| D::Error::custom(format!("seccomp: {e}"))),
            _ => Err(D::Error::custom(
                "seccomp: expected \"default\", \"unconfined\" or a profile object",
            )),
        }
    }
}

/// What a matching syscall gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Log,
    Allow,
}

/// The errno of `SCMP_ACT_ERRNO` when a rule gives none.
pub const DEFAULT_ERRNO: u32 = libc::EPERM as u32;
/// Largest errno the kernel returns (MAX_ERRNO).
const MAX_ERRNO: u32 = 4095;

impl Action {
    /// Parses an `SCMP_ACT_*` name with its `errnoRet`.
    pub fn parse(name: &str, errno_ret: Option<u32>) -> Result<Action, String> {
        let data = |default: u32| -> Result<u16, String> {
            let v = errno_ret.unwrap_or(default);
            if v > MAX_ERRNO {
                return Err(format!("errnoRet {v} is above {MAX_ERRNO}"));
            }
            Ok(v as u16)
        };
        let takes_data = matches!(name, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE");
        if errno_ret.is_some() && !takes_data {
            return Err(format!(
                "errnoRet applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {name}"
            ));
        }
        Ok(match name {
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_ERRNO" => Action::Errno(data(DEFAULT_ERRNO)?),
            "SCMP_ACT_TRACE" => Action::Trace(data(0)?),
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_NOTIFY" => {
                return Err(
                    "SCMP_ACT_NOTIFY needs a listener, which execdriver does not run".into(),
                )
            }
            other => return Err(format!("unknown action {other:?}")),
        })
    }

    /// The filter's return value (SECCOMP_RET_*).
    pub fn ret(self) -> u32 {
        match self {
            Action::KillThread => 0x0000_0000,
            Action::KillProcess => 0x8000_0000,
            Action::Trap => 0x0003_0000,
            Action::Errno(e) => 0x0005_0000 | e as u32,
            Action::Trace(m) => 0x7ff0_0000 | m as u32,
            Action::Log => 0x7ffc_0000,
            Action::Allow => 0x7fff_0000,
        }
    }
}

/// A comparison of one 64-bit argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`
    MaskedEq,
}

impl Op {
    pub fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "SCMP_CMP_NE" => Op::Ne,
            "SCMP_CMP_LT" => Op::Lt,
            "SCMP_CMP_LE" => Op::Le,
            "SCMP_CMP_EQ" => Op::Eq,
            "SCMP_CMP_GE" => Op::Ge,
            "SCMP_CMP_GT" => Op::Gt,
            "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
            _ => return None,
        })
    }
}

/// The architecture names a profile may list.
pub const KNOWN_ARCHES: [&str; 17] = [
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_RISCV64",
];

/// SECCOMP_FILTER_FLAG_* values by name.
pub const FLAGS: [(&str, u32); 3] = [
    ("SECCOMP_FILTER_FLAG_TSYNC", 1),
    ("SECCOMP_FILTER_FLAG_LOG", 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
];

/// Most rules and names a profile may have (the compiled program must also fit the kernel's
/// 4096 instructions).
const MAX_RULES: usize = 4096;
const MAX_NAMES: usize = 4096;

impl Profile {
    /// Checks the profile; errors are (the sub-field, e.g. `.syscalls[3].names[0]`, and why).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: String, why: String| Err((f, why));
        if self.default_action.is_empty() {
            return err(".default_action".into(), "missing".into());
        }
        if let Err(why) = Action::parse(&self.default_action, self.default_errno_ret) {
            return err(".default_action".into(), why);
        }
        for (i, a) in self.architectures.iter().enumerate() {
            if !KNOWN_ARCHES.contains(&a.as_str()) {
                return err(
                    format!(".architectures[{i}]"),
                    format!("unknown architecture {a:?}"),
                );
            }
        }
        for (i, f) in self.flags.iter().enumerate() {
            if !FLAGS.iter().any(|(n, _)| n == f) {
                return err(
                    format!(".flags[{i}]"),
                    format!(
                        "{f:?} is not one of SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW"
                    ),
                );
            }
        }
        if self.syscalls.len() > MAX_RULES {
            return err(
                ".syscalls".into(),
                format!("{} rules; at most {MAX_RULES}", self.syscalls.len()),
            );
        }
        for (i, s) in self.syscalls.iter().enumerate() {
            let f = |sub: &str| format!(".syscalls[{i}]{sub}");
            if s.names.is_empty() {
                return err(f(".names"), "empty".into());
            }
            if s.names.len() > MAX_NAMES {
                return err(
                    f(".names"),
                    format!("{} names; at most {MAX_NAMES}", s.names.len()),
                );
            }
            for (j, n) in s.names.iter().enumerate() {
                if n.is_empty()
                    || n.len() > 64
                    || !n
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    return err(
                        f(&format!(".names[{j}]")),
                        format!("{n:?} is not a syscall name"),
                    );
                }
            }
            if let Err(why) = Action::parse(&s.action, s.errno_ret) {
                return err(f(".action"), why);
            }
            if s.args.len() > 6 {
                return err(f(".args"), "at most 6 conditions".into());
            }
            for (j, a) in s.args.iter().enumerate() {
                if a.index > 5 {
                    return err(
                        f(&format!(".args[{j}].index")),
                        format!("{} is not an argument index (0 to 5)", a.index),
                    );
                }
                if Op::parse(&a.op).is_none() {
                    return err(
                        f(&format!(".args[{j}].op")),
                        format!("unknown comparison {:?}", a.op),
                    );
                }
            }
        }
        Ok(())
    }

    /// The filter flags this profile asks for.
    pub fn flag_bits(&self) -> u32 {
        self.flags
            .iter()
            .filter_map(|f| FLAGS.iter().find(|(n, _)| n == f).map(|(_, b)| *b))
            .fold(0, |acc, b| acc | b)
    }
}

/// Syscalls every container may make (Docker's default allow list, plus the harmless syscalls
/// added to the kernel since). Not io_uring: its operations are invisible to seccomp, and
/// Docker's profile dropped it too (moby#46762).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Syscalls allowed only to containers holding a capability (Docker's `includes.caps`).
const BY_CAPABILITY: &[(Capability, &[&str])] = &[
    (Capability::CAP_DAC_READ_SEARCH, &["open_by_handle_at"]),
    (
        Capability::CAP_SYS_ADMIN,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::CAP_SYS_BOOT, &["reboot"]),
    (Capability::CAP_SYS_CHROOT, &["chroot"]),
    (
        Capability::CAP_SYS_MODULE,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::CAP_SYS_PACCT, &["acct"]),
    (
        Capability::CAP_SYS_PTRACE,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::CAP_SYS_RAWIO, &["iopl", "ioperm"]),
    (
        Capability::CAP_SYS_TIME,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::CAP_SYS_TTY_CONFIG, &["vhangup"]),
    (
        Capability::CAP_SYS_NICE,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::CAP_SYSLOG, &["syslog"]),
    (Capability::CAP_BPF, &["bpf"]),
    (Capability::CAP_PERFMON, &["perf_event_open"]),
];

/// The clone flags that make namespaces (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
/// NEWPID, NEWNET): without CAP_SYS_ADMIN, clone may not have any of them.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
const S_IFMT: u64 = 0o170000;
const S_IFBLK: u64 = 0o060000;
const AF_VSOCK: u64 = 40;

fn rule(names: &[&str], action: &str) -> Syscall {
    Syscall {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.into(),
        ..Default::default()
    }
}

fn arg(index: u32, value: u64, value_two: u64, op: &str) -> Arg {
    Arg {
        index,
        value,
        value_two,
        op: op.into(),
    }
}

/// The built-in profile for a container holding `caps`: Docker's default profile, which
/// allows what ordinary programs use and refuses (EPERM) keyctl, add_key, request_key, bpf,
/// kexec_load, module loading, mount, umount, reboot, swapon, unshare and setns, io_uring, clone with
/// namespace flags, personality changes other than the usual ones, and the like, unless the
/// container holds the capability that would make them meaningful (CAP_SYS_ADMIN for mount,
/// CAP_SYS_BOOT for reboot, ...). Two differences from Docker's, both stricter: mknod of a
/// block device is refused (Docker leaves that to the devices cgroup), and the AF_VSOCK test
/// on socket() compares the low 32 bits only, as the kernel reads the argument (a 64-bit
/// comparison can be bypassed with high bits set).
pub fn default_profile(caps: &CapsHashSet) -> Profile {
    let has = |c: Capability| caps.contains(&c);
    let mut rules = vec![
        // Block device nodes: refused even with CAP_MKNOD.
        Syscall {
            args: vec![arg(1, S_IFMT, S_IFBLK, "SCMP_CMP_MASKED_EQ")],
            ..rule(&["mknod"], "SCMP_ACT_ERRNO")
        },
        Syscall {
            args: vec![arg(2, S_IFMT, S_IFBLK, "SCMP_CMP_MASKED_EQ")],
            ..rule(&["mknodat"], "SCMP_ACT_ERRNO")
        },
        // socket(AF_VSOCK, ...) is refused; every other family is allowed.
        Syscall {
            args: vec![arg(0, 0xffff_ffff, AF_VSOCK, "SCMP_CMP_MASKED_EQ")],
            ..rule(&["socket"], "SCMP_ACT_ERRNO")
        },
        rule(&["socket"], "SCMP_ACT_ALLOW"),
        rule(ALLOWED, "SCMP_ACT_ALLOW"),
    ];
    // ptrace and process_vm_* were unsafe before 4.8 (seccomp could be bypassed by a tracer).
    if kernel_at_least(4, 8) {
        rules.push(rule(
            &["process_vm_readv", "process_vm_writev", "ptrace"],
            "SCMP_ACT_ALLOW",
        ));
    }
    for persona in [0u64, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
        rules.push(Syscall {
            args: vec![arg(0, persona, 0, "SCMP_CMP_EQ")],
            ..rule(&["personality"], "SCMP_ACT_ALLOW")
        });
    }
    // Architecture-specific calls; names the architecture lacks are skipped.
    rules.push(rule(
        &[
            "arch_prctl",
            "modify_ldt",
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        "SCMP_ACT_ALLOW",
    ));
    for (cap, names) in BY_CAPABILITY {
        if has(*cap) {
            rules.push(rule(names, "SCMP_ACT_ALLOW"));
        }
    }
    if !has(Capability::CAP_SYS_ADMIN) {
        rules.push(Syscall {
            args: vec![arg(0, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ")],
            ..rule(&["clone"], "SCMP_ACT_ALLOW")
        });
        // ENOSYS makes libc fall back to clone, whose flags the filter can see.
        rules.push(Syscall {
            errno_ret: Some(libc::ENOSYS as u32),
            ..rule(&["clone3"], "SCMP_ACT_ERRNO")
        });
    }
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(DEFAULT_ERRNO),
        architectures: vec![],
        flags: vec![],
        syscalls: rules,
    }
}

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Every syscall name known on some supported architecture.
pub fn known_names() -> HashSet<&'static str> {
    tables::X86_64
        .iter()
        .chain(tables::AARCH64)
        .map(|(n, _)| *n)
        .collect()
}

#[cfg(test)]
mod tests;
