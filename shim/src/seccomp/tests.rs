//! Seccomp tests: the profile checks, the compiled program's shape and size, and a filter loaded
//! into a forked child that refuses what the default profile refuses.

use super::*;
use caps::{Capability, CapsHashSet};
use execdriver_spec::seccomp::compile::{self, JMP_JEQ, JMP_JGE, JMP_JGT};

/// A classic BPF interpreter for the instructions the compiler emits, over a
/// `struct seccomp_data` built from (arch, nr, args).
fn run(prog: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let word = |off: u32| {
        let o = off as usize;
        u32::from_le_bytes(data[o..o + 4].try_into().unwrap())
    };
    let mut a = 0u32;
    let mut pc = 0usize;
    loop {
        let i = prog.insns[pc];
        pc += 1;
        match i.code {
            0x20 => a = word(i.k),
            0x54 => a &= i.k,
            0x05 => pc += i.k as usize,
            0x06 => return i.k,
            JMP_JEQ | JMP_JGT | JMP_JGE => {
                let taken = match i.code {
                    JMP_JEQ => a == i.k,
                    JMP_JGT => a > i.k,
                    _ => a >= i.k,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

const ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 0x0005_0001;
const KILL_PROCESS: u32 = 0x8000_0000;

fn nr(name: &str) -> u32 {
    Arch::X86_64.number(name).unwrap()
}

fn x86(prog: &Program, name: &str, args: [u64; 6]) -> u32 {
    run(prog, Arch::X86_64.audit(), nr(name), args)
}

fn docker_default_caps() -> CapsHashSet {
    crate::capabilities::DOCKER_DEFAULT
        .iter()
        .filter_map(|n| crate::capabilities::parse(n))
        .collect()
}

#[test]
fn tables_are_sorted_and_known() {
    for t in [tables::X86_64, tables::AARCH64] {
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "not sorted");
    }
    assert_eq!(Arch::X86_64.number("read"), Some(0));
    assert_eq!(Arch::X86_64.number("keyctl"), Some(250));
    assert_eq!(Arch::X86_64.number("fchmodat2"), Some(452));
    assert_eq!(Arch::Aarch64.number("openat"), Some(56));
    assert_eq!(Arch::Aarch64.number("open"), None);
    assert_eq!(Arch::X86_64.number("no_such_call"), None);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(nr("kexec_load"), libc::SYS_kexec_load as u32);
        assert_eq!(nr("clone3"), libc::SYS_clone3 as u32);
    }
}

#[test]
fn default_profile_allows_the_ordinary_and_refuses_the_dangerous() {
    let prog = compile(
        &default_profile(&docker_default_caps(), kernel_version()),
        Arch::X86_64,
    )
    .unwrap();
    for ok in [
        "read",
        "write",
        "openat",
        "execve",
        "exit_group",
        "getpid",
        "wait4",
        "capset",
    ] {
        assert_eq!(x86(&prog, ok, [0; 6]), ALLOW, "{ok}");
    }
    for denied in [
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "kexec_load",
        "init_module",
        "finit_module",
        "mount",
        "umount2",
        "reboot",
        "unshare",
        "setns",
        "sethostname",
        "swapon",
        "pivot_root",
        "open_by_handle_at",
        "io_uring_setup",
        "io_uring_enter",
    ] {
        assert_eq!(x86(&prog, denied, [0; 6]), EPERM, "{denied}");
    }
    // clone: a thread or a fork yes, a new namespace no; clone3 says ENOSYS (libc falls back).
    assert_eq!(x86(&prog, "clone", [0x3d0f00, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86(&prog, "clone", [17, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        x86(&prog, "clone", [0x1000_0000 | 17, 0, 0, 0, 0, 0]),
        EPERM
    ); // NEWUSER
    assert_eq!(x86(&prog, "clone", [0x2000_0000, 0, 0, 0, 0, 0]), EPERM); // NEWPID
    assert_eq!(
        x86(&prog, "clone3", [0; 6]),
        0x0005_0000 | libc::ENOSYS as u32
    );
    // personality: only the usual personas.
    assert_eq!(
        x86(&prog, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        x86(&prog, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
        EPERM
    );
    // mknod: character devices and fifos yes, block devices no.
    assert_eq!(x86(&prog, "mknod", [0, 0o020666, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86(&prog, "mknod", [0, 0o010644, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86(&prog, "mknod", [0, 0o060600, 0x800, 0, 0, 0]), EPERM);
    assert_eq!(x86(&prog, "mknodat", [0, 0, 0o060600, 0, 0, 0]), EPERM);
    assert_eq!(
        x86(
            &prog,
            "mknodat",
            [0, 0, 0xffff_0000_0000_0000 | 0o060600, 0, 0, 0]
        ),
        EPERM,
        "high bits do not hide a block device"
    );
    // socket: AF_VSOCK refused, also with junk in the high bits.
    assert_eq!(x86(&prog, "socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86(&prog, "socket", [40, 1, 0, 0, 0, 0]), EPERM);
    assert_eq!(x86(&prog, "socket", [(1 << 32) | 40, 1, 0, 0, 0, 0]), EPERM);
    // Another ABI (i386 via int 0x80) or an x32 number kills the process.
    assert_eq!(run(&prog, 0x4000_0003, 1, [0; 6]), KILL_PROCESS);
    assert_eq!(
        run(&prog, Arch::X86_64.audit(), 0x4000_0000 | 250, [0; 6]),
        KILL_PROCESS
    );
    // syscall(-1) is just an unknown syscall.
    assert_eq!(run(&prog, Arch::X86_64.audit(), u32::MAX, [0; 6]), EPERM);
    // Measured for the book (docs/src/benchmarks.md): `cargo test -p execdriver-shim default_profile -- --nocapture`.
    eprintln!("default profile: {} instructions", prog.insns.len());
    assert!(
        prog.insns.len() < MAX_INSNS_FOR_TEST,
        "{}",
        prog.insns.len()
    );
}

const MAX_INSNS_FOR_TEST: usize = 2000;

#[test]
fn capabilities_widen_the_default_profile() {
    let mut caps = docker_default_caps();
    caps.insert(Capability::CAP_SYS_ADMIN);
    caps.insert(Capability::CAP_SYS_BOOT);
    caps.insert(Capability::CAP_SYS_PTRACE);
    let prog = compile(&default_profile(&caps, kernel_version()), Arch::X86_64).unwrap();
    for name in [
        "mount", "umount2", "unshare", "setns", "reboot", "bpf", "kcmp",
    ] {
        assert_eq!(x86(&prog, name, [0; 6]), ALLOW, "{name}");
    }
    assert_eq!(x86(&prog, "clone", [0x1000_0000, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86(&prog, "clone3", [0; 6]), ALLOW);
    assert_eq!(
        x86(&prog, "kexec_load", [0; 6]),
        EPERM,
        "no CAP_SYS_BOOT rule"
    );
    assert_eq!(x86(&prog, "init_module", [0; 6]), EPERM);
}

#[test]
fn comparisons_are_64_bit() {
    type Case = (&'static str, u64, [(u64, bool); 6]);
    let cases: [Case; 6] = [
        (
            "SCMP_CMP_EQ",
            0x1_0000_0005,
            [
                (0x1_0000_0005, true),
                (5, false),
                (0x1_0000_0006, false),
                (0x2_0000_0005, false),
                (0, false),
                (u64::MAX, false),
            ],
        ),
        (
            "SCMP_CMP_NE",
            0x1_0000_0005,
            [
                (0x1_0000_0005, false),
                (5, true),
                (0x1_0000_0006, true),
                (0x2_0000_0005, true),
                (0, true),
                (u64::MAX, true),
            ],
        ),
        (
            "SCMP_CMP_GT",
            0x1_0000_0005,
            [
                (0x1_0000_0005, false),
                (0x1_0000_0006, true),
                (0x1_0000_0004, false),
                (0x2_0000_0000, true),
                (0xffff_ffff, false),
                (u64::MAX, true),
            ],
        ),
        (
            "SCMP_CMP_GE",
            0x1_0000_0005,
            [
                (0x1_0000_0005, true),
                (0x1_0000_0006, true),
                (0x1_0000_0004, false),
                (0x2_0000_0000, true),
                (0xffff_ffff, false),
                (u64::MAX, true),
            ],
        ),
        (
            "SCMP_CMP_LT",
            0x1_0000_0005,
            [
                (0x1_0000_0005, false),
                (0x1_0000_0006, false),
                (0x1_0000_0004, true),
                (0x2_0000_0000, false),
                (0xffff_ffff, true),
                (0, true),
            ],
        ),
        (
            "SCMP_CMP_LE",
            0x1_0000_0005,
            [
                (0x1_0000_0005, true),
                (0x1_0000_0006, false),
                (0x1_0000_0004, true),
                (0x2_0000_0000, false),
                (0xffff_ffff, true),
                (0, true),
            ],
        ),
    ];
    for (op, value, checks) in cases {
        let p = Profile {
            default_action: "SCMP_ACT_ALLOW".into(),
            syscalls: vec![Syscall {
                names: vec!["getpid".into()],
                action: "SCMP_ACT_ERRNO".into(),
                errno_ret: Some(7),
                args: vec![Arg {
                    index: 3,
                    value,
                    value_two: 0,
                    op: op.into(),
                }],
            }],
            ..Default::default()
        };
        let prog = compile(&p, Arch::X86_64).unwrap();
        for (arg, matches) in checks {
            let got = x86(&prog, "getpid", [0, 0, 0, arg, 0, 0]);
            let want = if matches { 0x0005_0007 } else { ALLOW };
            assert_eq!(got, want, "{op} {value:#x} against {arg:#x}");
        }
    }
}

#[test]
fn rules_match_in_order_and_conditions_combine() {
    let p: Profile = serde_json::from_str(
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill", "tkill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["no_such_syscall", "getppid"], "action": "SCMP_ACT_TRAP"},
                {"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}
            ]
        }"#,
    )
    .unwrap();
    let prog = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(x86(&prog, "kill", [1, 15, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86(&prog, "kill", [1, 9, 0, 0, 0, 0]), 0x0005_000d);
    assert_eq!(x86(&prog, "kill", [2, 15, 0, 0, 0, 0]), 0x0005_000d);
    assert_eq!(x86(&prog, "tkill", [0; 6]), 0x0005_000d);
    assert_eq!(x86(&prog, "uname", [0; 6]), KILL_PROCESS);
    assert_eq!(
        x86(&prog, "getppid", [0; 6]),
        0x0003_0000,
        "first rule wins"
    );
    assert_eq!(x86(&prog, "read", [0; 6]), ALLOW);
    // The same profile on aarch64 uses that architecture's numbers.
    let a64 = compile(&p, Arch::Aarch64).unwrap();
    let kill = Arch::Aarch64.number("kill").unwrap();
    assert_eq!(
        run(&a64, Arch::Aarch64.audit(), kill, [3, 3, 0, 0, 0, 0]),
        0x0005_000d
    );
    assert_eq!(run(&a64, Arch::X86_64.audit(), kill, [0; 6]), KILL_PROCESS);
}

#[test]
fn masked_eq_and_a_large_profile() {
    // Every known syscall in its own rule with a condition: the jumps must still reach.
    let names: Vec<String> = tables::X86_64.iter().map(|(n, _)| n.to_string()).collect();
    let p = Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        syscalls: names
            .iter()
            .map(|n| Syscall {
                names: vec![n.clone()],
                action: "SCMP_ACT_ALLOW".into(),
                errno_ret: None,
                args: vec![Arg {
                    index: 5,
                    value: 0xff00,
                    value_two: 0x1200,
                    op: "SCMP_CMP_MASKED_EQ".into(),
                }],
            })
            .collect(),
        ..Default::default()
    };
    let prog = compile(&p, Arch::X86_64).unwrap();
    assert!(prog.insns.len() <= compile::MAX_INSNS);
    assert_eq!(x86(&prog, "write", [0, 0, 0, 0, 0, 0x12ab]), ALLOW);
    assert_eq!(x86(&prog, "write", [0, 0, 0, 0, 0, 0x13ab]), EPERM);
    assert_eq!(x86(&prog, "file_setattr", [0, 0, 0, 0, 0, 0x1200]), ALLOW);
    // Too many instructions is an error, not a truncated filter.
    let mut huge = p.clone();
    for (j, s) in huge.syscalls.iter_mut().enumerate() {
        // Distinct conditions, so no two blocks can be shared.
        s.args = (0..6)
            .map(|i| Arg {
                index: i,
                value: j as u64,
                value_two: 0,
                op: "SCMP_CMP_GT".into(),
            })
            .collect();
    }
    assert!(compile(&huge, Arch::X86_64).unwrap_err().contains("4096"));
}

#[test]
fn validation_names_the_field() {
    let base = || Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        syscalls: vec![
            Syscall {
                names: vec!["read".into()],
                action: "SCMP_ACT_ALLOW".into(),
                ..Default::default()
            },
            Syscall {
                names: vec!["write".into(), "close".into()],
                action: "SCMP_ACT_ALLOW".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    base().validate().unwrap();
    type M = Box<dyn Fn(&mut Profile)>;
    let cases: Vec<(M, &str)> = vec![
        (Box::new(|p| p.default_action.clear()), ".default_action"),
        (
            Box::new(|p| p.default_action = "SCMP_ACT_MAYBE".into()),
            ".default_action",
        ),
        (
            Box::new(|p| p.default_errno_ret = Some(70000)),
            ".default_action",
        ),
        (
            Box::new(|p| p.architectures = vec!["SCMP_ARCH_Z80".into()]),
            ".architectures[0]",
        ),
        (
            Box::new(|p| p.flags = vec!["SECCOMP_FILTER_FLAG_NEW_LISTENER".into()]),
            ".flags[0]",
        ),
        (
            Box::new(|p| p.syscalls[1].names[1] = "Close!".into()),
            ".syscalls[1].names[1]",
        ),
        (
            Box::new(|p| p.syscalls[1].names.clear()),
            ".syscalls[1].names",
        ),
        (
            Box::new(|p| p.syscalls[0].action = "SCMP_ACT_NOTIFY".into()),
            ".syscalls[0].action",
        ),
        (
            Box::new(|p| p.syscalls[0].errno_ret = Some(1)),
            ".syscalls[0].action",
        ),
        (
            Box::new(|p| {
                p.syscalls[0].args = vec![Arg {
                    index: 6,
                    op: "SCMP_CMP_EQ".into(),
                    ..Default::default()
                }]
            }),
            ".syscalls[0].args[0].index",
        ),
        (
            Box::new(|p| {
                p.syscalls[0].args = vec![Arg {
                    index: 0,
                    op: "EQ".into(),
                    ..Default::default()
                }]
            }),
            ".syscalls[0].args[0].op",
        ),
    ];
    for (mutate, field) in cases {
        let mut p = base();
        mutate(&mut p);
        assert_eq!(p.validate().unwrap_err().0.path(false), field);
    }
}

#[test]
fn setting_parses_from_container_json() {
    let s: Seccomp = serde_json::from_str("\"unconfined\"").unwrap();
    assert_eq!(s, Seccomp::Unconfined);
    let s: Seccomp = serde_json::from_str("\"default\"").unwrap();
    assert!(s.is_default());
    let s: Seccomp =
        serde_json::from_str(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}"#).unwrap();
    assert!(matches!(s, Seccomp::Profile(ref p) if p.default_action == "SCMP_ACT_ALLOW"));
    let back: Seccomp = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    let err = serde_json::from_str::<Seccomp>(r#"{"defaultAction": "x", "sycalls": []}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sycalls"), "{err}");
    assert!(serde_json::from_str::<Seccomp>("\"strict\"").is_err());
    assert!(serde_json::from_str::<Seccomp>("7").is_err());
}

/// The kernel accepts the compiled default profile and enforces it: a forked child loads it
/// and tries a refused and an allowed syscall.
#[test]
fn kernel_loads_and_enforces_the_default_profile() {
    let Some(arch) = Arch::native() else {
        return;
    };
    let prog = compile(
        &default_profile(&docker_default_caps(), kernel_version()),
        arch,
    )
    .unwrap();
    // A plain fork; the child allocates nothing (seccomp_load passes the slice as it is).
    // SAFETY: the child only loads a filter, makes two raw syscalls and _exits; it takes no
    // lock another test thread could hold (it allocates nothing).
    #[allow(unsafe_code)]
    let forked = unsafe { crate::sys::clone_process(nix::sched::CloneFlags::empty()) }.unwrap();
    match forked {
        crate::sys::Forked::Child => {
            let code = (|| {
                nix::sys::prctl::set_no_new_privs().ok()?;
                crate::sys::seccomp_load(&prog.insns, prog.flags).ok()?;
                let refused = crate::sys::raw_syscall0(libc::SYS_keyctl);
                let allowed = crate::sys::raw_syscall0(libc::SYS_getppid);
                Some(if refused == Err(libc::EPERM) && allowed.is_ok() {
                    0
                } else {
                    3
                })
            })()
            .unwrap_or(2);
            crate::sys::exit_now(code)
        }
        crate::sys::Forked::Parent(pid) => {
            let st = nix::sys::wait::waitpid(pid, None).unwrap();
            assert_eq!(st, nix::sys::wait::WaitStatus::Exited(pid, 0));
        }
    }
}
