//! The cgroup v2 device filter: a `BPF_PROG_TYPE_CGROUP_DEVICE` program assembled here from
//! the allow rules (no BPF toolchain), loaded with bpf(2) and attached to the container's v2
//! directory with `BPF_PROG_ATTACH` (`BPF_F_ALLOW_MULTI`, as runc and systemd do).
//!
//! The kernel runs the program on every mknod and open of a device node by a process of the
//! cgroup, with a `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` in r1
//! (`access_type` = access bits << 16 | device type). Returning 1 allows, 0 denies (EPERM).
//!
//! The program:
//!
//! ```text
//!   r2 = *(u32 *)(r1 + 0); w2 &= 0xffff      device type (1 block, 2 char)
//!   r3 = *(u32 *)(r1 + 0); w3 >>= 16         requested access bits
//!   r4 = *(u32 *)(r1 + 4)                    major
//!   r5 = *(u32 *)(r1 + 8)                    minor
//!   per rule (each test jumps to the next rule when it fails):
//!     if r2 != TYPE goto next                (not for type a)
//!     w1 = w3; w1 &= ACCESS; if r1 != r3 goto next   (an allow rule: requested must be
//!                                             within allowed; not when it allows rwm)
//!     w1 = w3; w1 &= ACCESS; if r1 == 0 goto next    (a deny rule: requested must touch
//!                                             what it denies; not when it denies rwm)
//!     if r4 != MAJOR goto next               (not for a wildcard)
//!     if r5 != MINOR goto next               (not for a wildcard)
//!     r0 = 1 (allow) or 0 (deny); exit
//!   r0 = 0; exit
//! ```
//!
//! With allow rules only, the first match allows. With deny rules too (OCI's ordered list),
//! the rules are tested last first, so the last rule that matches decides.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::devices::{Kind, Rule, ACC_ALL};
use super::{Error, Result};

// Instruction classes, sizes, modes, operations and sources (linux/bpf_common.h, linux/bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JNE: u8 = 0x50;
const BPF_JEQ: u8 = 0x10;
const BPF_EXIT: u8 = 0x90;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;

/// `bpf_cgroup_dev_ctx` device types.
const DEVCG_DEV_BLOCK: i32 = 1;
const DEVCG_DEV_CHAR: i32 = 2;

/// `enum bpf_prog_type` BPF_PROG_TYPE_CGROUP_DEVICE.
pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `enum bpf_attach_type` BPF_CGROUP_DEVICE.
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
/// BPF_F_ALLOW_MULTI: programs of the parents keep running too.
pub const F_ALLOW_MULTI: u32 = 2;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The instruction as the kernel reads it: code, the two register nibbles (dst in the low
    /// one on little-endian machines), offset and immediate in native byte order.
    pub fn bytes(&self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0xf)
        } else {
            (self.dst << 4) | (self.src & 0xf)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }

    /// The instruction as one little-endian 64-bit word (what `bpftool prog dump` shows as
    /// bytes), for tests and logs.
    pub fn word(&self) -> u64 {
        let b = self.bytes();
        if cfg!(target_endian = "little") {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        }
    }
}

/// `dst = *(u32 *)(src + off)`
pub fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    Insn {
        code: BPF_LDX | BPF_W | BPF_MEM,
        dst,
        src,
        off,
        imm: 0,
    }
}

/// `wDST &= imm` (32-bit)
pub fn and32_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_ALU | BPF_AND | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}

/// `wDST >>= imm` (32-bit)
pub fn rsh32_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_ALU | BPF_RSH | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}

/// `wDST = wSRC` (32-bit)
pub fn mov32_reg(dst: u8, src: u8) -> Insn {
    Insn {
        code: BPF_ALU | BPF_MOV | BPF_X,
        dst,
        src,
        off: 0,
        imm: 0,
    }
}

/// `rDST = imm` (64-bit)
pub fn mov64_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_ALU64 | BPF_MOV | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}

/// `if rDST != imm goto +off`
pub fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    Insn {
        code: BPF_JMP | BPF_JNE | BPF_K,
        dst,
        src: 0,
        off,
        imm,
    }
}

/// `if rDST != rSRC goto +off`
pub fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    Insn {
        code: BPF_JMP | BPF_JNE | BPF_X,
        dst,
        src,
        off,
        imm: 0,
    }
}

/// `if rDST == imm goto +off`
pub fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
    Insn {
        code: BPF_JMP | BPF_JEQ | BPF_K,
        dst,
        src: 0,
        off,
        imm,
    }
}

pub fn exit() -> Insn {
    Insn {
        code: BPF_JMP | BPF_EXIT,
        dst: 0,
        src: 0,
        off: 0,
        imm: 0,
    }
}

/// A test in a rule block: its instructions, the last of which jumps to the next rule.
enum Test {
    /// `if rREG != imm goto next`
    Imm(u8, i32),
    /// `w1 = w3; w1 &= access; if r1 != r3 goto next`
    Access(i32),
    /// `w1 = w3; w1 &= access; if r1 == 0 goto next`
    Touches(i32),
}

/// Assembles the device filter for `rules` (the last matching rule decides; with allow rules
/// only that is the first match; nothing matching denies).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let ordered: Vec<&Rule> = if rules.iter().all(|r| r.allow) {
        rules.iter().collect()
    } else {
        rules.iter().rev().collect()
    };
    let mut p = vec![
        ldx_w(2, 1, 0),
        and32_imm(2, 0xffff),
        ldx_w(3, 1, 0),
        rsh32_imm(3, 16),
        ldx_w(4, 1, 4),
        ldx_w(5, 1, 8),
    ];
    for rule in ordered {
        let mut tests = Vec::new();
        match rule.kind {
            Kind::All => {}
            Kind::Block => tests.push(Test::Imm(2, DEVCG_DEV_BLOCK)),
            Kind::Char => tests.push(Test::Imm(2, DEVCG_DEV_CHAR)),
        }
        if rule.access & ACC_ALL != ACC_ALL {
            let access = i32::from(rule.access);
            tests.push(if rule.allow {
                Test::Access(access)
            } else {
                Test::Touches(access)
            });
        }
        // Device numbers fit in 12 and 20 bits, so in a positive i32.
        if let Some(major) = rule.major {
            tests.push(Test::Imm(4, major as i32));
        }
        if let Some(minor) = rule.minor {
            tests.push(Test::Imm(5, minor as i32));
        }
        let mut block: Vec<Insn> = Vec::new();
        let len: usize = tests
            .iter()
            .map(|t| match t {
                Test::Imm(..) => 1,
                Test::Access(_) | Test::Touches(_) => 3,
            })
            .sum::<usize>()
            + 2;
        for t in tests {
            match t {
                Test::Imm(reg, imm) => {
                    let skip = (len - block.len() - 1) as i16;
                    block.push(jne_imm(reg, imm, skip));
                }
                Test::Access(access) => {
                    block.push(mov32_reg(1, 3));
                    block.push(and32_imm(1, access));
                    let skip = (len - block.len() - 1) as i16;
                    block.push(jne_reg(1, 3, skip));
                }
                Test::Touches(access) => {
                    block.push(mov32_reg(1, 3));
                    block.push(and32_imm(1, access));
                    let skip = (len - block.len() - 1) as i16;
                    block.push(jeq_imm(1, 0, skip));
                }
            }
        }
        block.push(mov64_imm(0, i32::from(rule.allow)));
        block.push(exit());
        debug_assert_eq!(block.len(), len);
        let unconditional = block.len() == 2;
        p.extend(block);
        if unconditional {
            // Everything is decided: what would follow is unreachable, which the verifier
            // refuses.
            return p;
        }
    }
    p.push(mov64_imm(0, 0));
    p.push(exit());
    p
}

/// Loads the filter for `rules` and attaches it to the v2 cgroup directory `dir`.
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = load(&program(rules))?;
    let cgroup = std::fs::File::open(dir).map_err(|source| Error::Read {
        path: dir.to_owned(),
        source,
    })?;
    crate::sys::bpf_prog_attach(
        cgroup.as_fd(),
        prog.as_fd(),
        ATTACH_CGROUP_DEVICE,
        F_ALLOW_MULTI,
    )
    .map_err(|e| Error::Bpf(format!("attaching to {}: {e}", dir.display())))
    // The attachment holds the program; our descriptor can go.
}

/// Loads a device program; on failure asks the verifier why.
pub fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let code: Vec<u8> = insns.iter().flat_map(|i| i.bytes()).collect();
    let license: &CStr = c"Apache-2.0";
    match crate::sys::bpf_prog_load(PROG_TYPE_CGROUP_DEVICE, &code, license, None) {
        Ok(fd) => Ok(fd),
        Err(nix::errno::Errno::EPERM) => {
            // Kernels before 5.11 charge programs to RLIMIT_MEMLOCK.
            let _ = nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_MEMLOCK,
                nix::sys::resource::RLIM_INFINITY,
                nix::sys::resource::RLIM_INFINITY,
            );
            crate::sys::bpf_prog_load(PROG_TYPE_CGROUP_DEVICE, &code, license, None)
                .map_err(|e| Error::Bpf(format!("loading the program: {e}")))
        }
        Err(e) => {
            let mut log = vec![0u8; 64 * 1024];
            let _ =
                crate::sys::bpf_prog_load(PROG_TYPE_CGROUP_DEVICE, &code, license, Some(&mut log));
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err(Error::Bpf(format!(
                "loading the program: {e}; verifier: {}",
                String::from_utf8_lossy(&log[..end]).trim()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::devices::{self, ACC_MKNOD, ACC_READ, ACC_WRITE};
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn instruction_words() {
        // Checked against the kernel's encoding (e.g. `bpftool prog dump xlated ... opcodes`).
        assert_eq!(ldx_w(2, 1, 0).word(), 0x0000_0000_0000_1261);
        assert_eq!(ldx_w(4, 1, 4).word(), 0x0000_0000_0004_1461);
        assert_eq!(and32_imm(2, 0xffff).word(), 0x0000_ffff_0000_0254);
        assert_eq!(rsh32_imm(3, 16).word(), 0x0000_0010_0000_0374);
        assert_eq!(mov32_reg(1, 3).word(), 0x0000_0000_0000_31bc);
        assert_eq!(mov64_imm(0, 1).word(), 0x0000_0001_0000_00b7);
        assert_eq!(jne_imm(2, 2, 5).word(), 0x0000_0002_0005_0255);
        assert_eq!(jne_reg(1, 3, 3).word(), 0x0000_0000_0003_315d);
        assert_eq!(exit().word(), 0x0000_0000_0000_0095);
        assert_eq!(
            jne_imm(5, 3, -1).bytes(),
            [0x55, 0x05, 0xff, 0xff, 3, 0, 0, 0]
        );
    }

    #[test]
    fn program_for_rules() {
        let rules = [
            // c 1:3 rwm: type, major, minor; no access test.
            Rule {
                kind: Kind::Char,
                major: Some(1),
                minor: Some(3),
                access: ACC_ALL,
                allow: true,
            },
            // b *:* m: type and access only.
            Rule {
                kind: Kind::Block,
                major: None,
                minor: None,
                access: ACC_MKNOD,
                allow: true,
            },
            // c 136:* rw
            Rule {
                kind: Kind::Char,
                major: Some(136),
                minor: None,
                access: ACC_READ | ACC_WRITE,
                allow: true,
            },
        ];
        let p = program(&rules);
        let expect = vec![
            ldx_w(2, 1, 0),
            and32_imm(2, 0xffff),
            ldx_w(3, 1, 0),
            rsh32_imm(3, 16),
            ldx_w(4, 1, 4),
            ldx_w(5, 1, 8),
            // c 1:3 rwm (5 instructions)
            jne_imm(2, 2, 4),
            jne_imm(4, 1, 3),
            jne_imm(5, 3, 2),
            mov64_imm(0, 1),
            exit(),
            // b *:* m (6 instructions)
            jne_imm(2, 1, 5),
            mov32_reg(1, 3),
            and32_imm(1, 1),
            jne_reg(1, 3, 2),
            mov64_imm(0, 1),
            exit(),
            // c 136:* rw (7 instructions)
            jne_imm(2, 2, 6),
            mov32_reg(1, 3),
            and32_imm(1, 6),
            jne_reg(1, 3, 3),
            jne_imm(4, 136, 2),
            mov64_imm(0, 1),
            exit(),
            // deny
            mov64_imm(0, 0),
            exit(),
        ];
        assert_eq!(p, expect);
        // Allow-all is one block without tests, and the end.
        let p = program(&[devices::ALLOW_ALL, rules[0]]);
        assert_eq!(&p[6..], &[mov64_imm(0, 1), exit()]);
    }

    /// Loads the default program into the kernel (root only; skipped otherwise), so the
    /// verifier accepts what we assemble.
    #[test]
    fn verifier_accepts_the_default_program() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let mut rules = devices::DEFAULT_RULES.to_vec();
        load(&program(&rules)).unwrap();
        rules.push(devices::ALLOW_ALL);
        load(&program(&rules)).unwrap();
        // An ordered list with deny rules, and a deny-all that ends it.
        let deny = |access, major| Rule {
            kind: Kind::Char,
            major,
            minor: None,
            access,
            allow: false,
        };
        let mut rules = devices::DEFAULT_RULES.to_vec();
        rules.push(deny(ACC_WRITE, Some(1)));
        load(&program(&rules)).unwrap();
        rules.push(deny(ACC_ALL, None));
        load(&program(&rules)).unwrap();
    }

    #[test]
    fn deny_rules_are_tested_last_first() {
        let allow = Rule {
            kind: Kind::Char,
            major: Some(1),
            minor: Some(3),
            access: ACC_ALL,
            allow: true,
        };
        let deny_write = Rule {
            access: ACC_WRITE,
            allow: false,
            ..allow
        };
        let p = program(&[allow, deny_write]);
        assert_eq!(
            &p[6..],
            &[
                // c 1:3 w, deny: touches w
                jne_imm(2, 2, 7),
                mov32_reg(1, 3),
                and32_imm(1, 4),
                jeq_imm(1, 0, 4),
                jne_imm(4, 1, 3),
                jne_imm(5, 3, 2),
                mov64_imm(0, 0),
                exit(),
                // c 1:3 rwm, allow
                jne_imm(2, 2, 4),
                jne_imm(4, 1, 3),
                jne_imm(5, 3, 2),
                mov64_imm(0, 1),
                exit(),
                mov64_imm(0, 0),
                exit(),
            ]
        );
    }
}
