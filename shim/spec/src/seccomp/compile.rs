//! A profile -> a classic BPF program for `seccomp(SECCOMP_SET_MODE_FILTER)`.
//!
//! Layout: check the architecture (another ABI kills the process), load the syscall number,
//! (x86_64) kill x32 syscalls, then a binary search over the syscall numbers that have rules,
//! each leading to the block of its rules (identical blocks are shared); a number without
//! rules gets the default action. Conditional jumps in classic BPF reach 255 instructions at
//! most, so every branch to a label is a conditional skip over an unconditional `ja`, whose
//! offset is 32 bits; every jump goes forward, as the kernel requires.

use std::collections::{BTreeMap, HashMap};

use super::{tables, Action, Op, Profile};

/// One classic BPF instruction, laid out as `struct sock_filter` (the kernel reads a slice of
/// these as it is).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled filter and the flags to load it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub insns: Vec<Insn>,
    /// SECCOMP_FILTER_FLAG_* bits.
    pub flags: u32,
}

/// The architectures a filter can be compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// AUDIT_ARCH_* as `seccomp_data.arch` shows it.
    pub fn audit(self) -> u32 {
        match self {
            Arch::X86_64 => 0xC000_003E,
            Arch::Aarch64 => 0xC000_00B7,
        }
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => tables::X86_64,
            Arch::Aarch64 => tables::AARCH64,
        }
    }

    /// The syscall number of `name` on this architecture.
    pub fn number(self, name: &str) -> Option<u32> {
        let t = self.table();
        t.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| t[i].1)
    }
}

/// Most instructions the kernel accepts in one filter (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
pub const JMP_JEQ: u16 = 0x15;
pub const JMP_JGT: u16 = 0x25;
pub const JMP_JGE: u16 = 0x35;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn off_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

/// x32 syscalls on x86_64 have this bit set.
const X32_BIT: u32 = 0x4000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Label(usize);

enum Item {
    Insn(Insn),
    /// If (A <op> k) == `when`, go to `to`; otherwise fall through. Two instructions.
    Branch {
        op: u16,
        k: u32,
        when: bool,
        to: Label,
    },
    Jump(Label),
    Mark(Label),
}

#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn insn(&mut self, code: u16, k: u32) {
        self.items.push(Item::Insn(Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }));
    }
    fn load(&mut self, offset: u32) {
        self.insn(LD_W_ABS, offset);
    }
    fn ret(&mut self, action: Action) {
        self.insn(RET_K, action.ret());
    }
    fn branch(&mut self, op: u16, k: u32, when: bool, to: Label) {
        self.items.push(Item::Branch { op, k, when, to });
    }
    fn jump(&mut self, to: Label) {
        self.items.push(Item::Jump(to));
    }
    fn mark(&mut self, l: Label) {
        self.items.push(Item::Mark(l));
    }

    fn finish(self) -> Result<Vec<Insn>, String> {
        let mut pos = HashMap::new();
        let mut n = 0usize;
        for item in &self.items {
            match item {
                Item::Insn(_) | Item::Jump(_) => n += 1,
                Item::Branch { .. } => n += 2,
                Item::Mark(l) => {
                    pos.insert(*l, n);
                }
            }
        }
        if n > MAX_INSNS {
            return Err(format!(
                "the filter needs {n} instructions; the kernel takes at most {MAX_INSNS}"
            ));
        }
        let mut out = Vec::with_capacity(n);
        let offset = |from: usize, to: &Label| -> Result<u32, String> {
            let target = *pos.get(to).ok_or("internal: unplaced label")?;
            if target <= from {
                return Err("internal: backward jump".into());
            }
            Ok((target - from - 1) as u32)
        };
        for item in &self.items {
            match item {
                Item::Insn(i) => out.push(*i),
                Item::Jump(to) => {
                    let k = offset(out.len(), to)?;
                    out.push(Insn {
                        code: JMP_JA,
                        jt: 0,
                        jf: 0,
                        k,
                    });
                }
                Item::Branch { op, k, when, to } => {
                    // Taken: run the `ja` right after; not taken: skip it.
                    let (jt, jf) = if *when { (0, 1) } else { (1, 0) };
                    out.push(Insn {
                        code: *op,
                        jt,
                        jf,
                        k: *k,
                    });
                    let k = offset(out.len(), to)?;
                    out.push(Insn {
                        code: JMP_JA,
                        jt: 0,
                        jf: 0,
                        k,
                    });
                }
                Item::Mark(_) => {}
            }
        }
        Ok(out)
    }
}

/// A resolved condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Cond {
    index: u32,
    op: Op,
    value: u64,
    value_two: u64,
}

/// One syscall's rules, in order: (conditions, all of which must hold; the action).
type Block = Vec<(Vec<Cond>, Action)>;

/// Compiles a validated profile for `arch`.
pub fn compile(profile: &Profile, arch: Arch) -> Result<Program, String> {
    profile
        .validate()
        .map_err(|(f, why)| format!("{}: {why}", f.path(true)))?;
    let default = Action::parse(&profile.default_action, profile.default_errno_ret)?;
    // Number -> its rules in profile order (BTreeMap: sorted for the search tree).
    let mut by_nr: BTreeMap<u32, Block> = BTreeMap::new();
    for s in &profile.syscalls {
        let action = Action::parse(&s.action, s.errno_ret)?;
        let conds: Vec<Cond> = s
            .args
            .iter()
            .map(|a| Cond {
                index: a.index,
                // Validated: the op parses.
                op: Op::parse(&a.op).unwrap_or(Op::Eq),
                value: a.value,
                value_two: a.value_two,
            })
            .collect();
        for name in &s.names {
            if let Some(nr) = arch.number(name) {
                by_nr.entry(nr).or_default().push((conds.clone(), action));
            }
        }
    }

    let mut asm = Asm::default();
    let bad_abi = asm.label();
    let default_label = asm.label();
    asm.load(OFF_ARCH);
    asm.branch(JMP_JEQ, arch.audit(), false, bad_abi);
    asm.load(OFF_NR);
    if arch == Arch::X86_64 {
        let x32 = asm.label();
        let native = asm.label();
        asm.branch(JMP_JGE, X32_BIT, true, x32);
        asm.jump(native);
        asm.mark(x32);
        // syscall(-1) is not x32: it gets the default action (ENOSYS from the kernel).
        asm.branch(JMP_JEQ, u32::MAX, true, default_label);
        asm.jump(bad_abi);
        asm.mark(native);
    }

    // Identical blocks share one label.
    let mut block_labels: HashMap<Block, Label> = HashMap::new();
    let mut leaves: Vec<(u32, Label)> = Vec::new();
    for (nr, block) in &by_nr {
        let next = asm.labels;
        let l = *block_labels.entry(block.clone()).or_insert(Label(next));
        if l.0 == next {
            asm.labels += 1;
        }
        leaves.push((*nr, l));
    }
    tree(&mut asm, &leaves, default_label);

    let mut blocks: Vec<(&Block, &Label)> = block_labels.iter().collect();
    blocks.sort_by_key(|(_, l)| l.0);
    for (block, label) in blocks {
        asm.mark(*label);
        emit_block(&mut asm, block, default);
    }
    asm.mark(default_label);
    asm.ret(default);
    asm.mark(bad_abi);
    asm.ret(Action::KillProcess);
    Ok(Program {
        insns: asm.finish()?,
        flags: profile.flag_bits(),
    })
}

/// A binary search over sorted syscall numbers; at most four tests at a leaf.
fn tree(asm: &mut Asm, leaves: &[(u32, Label)], default: Label) {
    if leaves.len() <= 4 {
        for (nr, l) in leaves {
            asm.branch(JMP_JEQ, *nr, true, *l);
        }
        asm.jump(default);
        return;
    }
    let mid = leaves.len() / 2;
    let right = asm.label();
    asm.branch(JMP_JGE, leaves[mid].0, true, right);
    tree(asm, &leaves[..mid], default);
    asm.mark(right);
    tree(asm, &leaves[mid..], default);
}

fn emit_block(asm: &mut Asm, block: &Block, default: Action) {
    for (conds, action) in block {
        if conds.is_empty() {
            asm.ret(*action);
            return; // later rules for this syscall cannot match
        }
        let next = asm.label();
        for c in conds {
            emit_cond(asm, c, next);
        }
        asm.ret(*action);
        asm.mark(next);
    }
    asm.ret(default);
}

/// Falls through when the condition holds, goes to `fail` otherwise. 64-bit arguments are
/// compared as two 32-bit words (little-endian layout of seccomp_data.args).
fn emit_cond(asm: &mut Asm, c: &Cond, fail: Label) {
    let hi = |v: u64| (v >> 32) as u32;
    let lo = |v: u64| v as u32;
    let (v, i) = (c.value, c.index);
    match c.op {
        Op::Eq => {
            asm.load(off_arg_hi(i));
            asm.branch(JMP_JEQ, hi(v), false, fail);
            asm.load(off_arg_lo(i));
            asm.branch(JMP_JEQ, lo(v), false, fail);
        }
        Op::Ne => {
            let pass = asm.label();
            asm.load(off_arg_hi(i));
            asm.branch(JMP_JEQ, hi(v), false, pass);
            asm.load(off_arg_lo(i));
            asm.branch(JMP_JEQ, lo(v), true, fail);
            asm.mark(pass);
        }
        Op::MaskedEq => {
            let want = c.value_two;
            asm.load(off_arg_hi(i));
            asm.insn(ALU_AND_K, hi(v));
            asm.branch(JMP_JEQ, hi(want), false, fail);
            asm.load(off_arg_lo(i));
            asm.insn(ALU_AND_K, lo(v));
            asm.branch(JMP_JEQ, lo(want), false, fail);
        }
        Op::Gt | Op::Ge => {
            // hi > v.hi, or hi == v.hi and lo > (>=) v.lo
            let pass = asm.label();
            asm.load(off_arg_hi(i));
            asm.branch(JMP_JGT, hi(v), true, pass);
            asm.branch(JMP_JEQ, hi(v), false, fail);
            asm.load(off_arg_lo(i));
            let op = if c.op == Op::Gt { JMP_JGT } else { JMP_JGE };
            asm.branch(op, lo(v), false, fail);
            asm.mark(pass);
        }
        Op::Lt | Op::Le => {
            // not (>= v) / not (> v)
            let pass = asm.label();
            asm.load(off_arg_hi(i));
            asm.branch(JMP_JGT, hi(v), true, fail);
            asm.branch(JMP_JEQ, hi(v), false, pass);
            asm.load(off_arg_lo(i));
            let op = if c.op == Op::Lt { JMP_JGE } else { JMP_JGT };
            asm.branch(op, lo(v), true, fail);
            asm.mark(pass);
        }
    }
}
