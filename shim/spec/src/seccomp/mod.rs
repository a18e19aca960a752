//! Seccomp: the profile model (the OCI runtime spec's JSON shape), its checks, and the built-in
//! default profile (Docker's, see [`default_profile`], in `default.rs`), and the compiler to a
//! classic BPF program ([`compile`]); the shim loads the program into the kernel.
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

pub mod compile;
mod default;
pub mod tables;

use std::collections::HashSet;

use caps::CapsHashSet;
use serde::{Deserialize, Serialize};

pub use compile::{compile, Arch, Insn, Program};
pub use default::{default_profile, CLONE_NAMESPACE_FLAGS};

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

    /// The profile to compile for a container with `caps` on a kernel of release `kernel`
    /// (major, minor); `None` when unconfined.
    pub fn resolve(&self, caps: &CapsHashSet, kernel: (u32, u32)) -> Option<Profile> {
        match self {
            Seccomp::Default => Some(default_profile(caps, kernel)),
            Seccomp::Unconfined => None,
            Seccomp::Profile(p) => Some(p.clone()),
        }
    }

    /// Checks the setting; an error is the field and why.
    pub fn validate(&self) -> Result<(), (SeccompField, String)> {
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

/// A field of a profile that a check refused. Its path within the profile depends on the
/// vocabulary: [`SeccompField::path`] with `camel` for the OCI JSON shape (container.json,
/// config.json), without for the gRPC request (`default_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompField {
    DefaultAction,
    Architecture(usize),
    Flag(usize),
    Syscalls,
    Names(usize),
    Name(usize, usize),
    Action(usize),
    Args(usize),
    ArgIndex(usize, usize),
    ArgOp(usize, usize),
}

impl SeccompField {
    /// The path within the profile: `.defaultAction` (`camel`) or `.default_action`,
    /// `.syscalls[3].names[0]`.
    pub fn path(self, camel: bool) -> String {
        match self {
            SeccompField::DefaultAction if camel => ".defaultAction".into(),
            SeccompField::DefaultAction => ".default_action".into(),
            SeccompField::Architecture(i) => format!(".architectures[{i}]"),
            SeccompField::Flag(i) => format!(".flags[{i}]"),
            SeccompField::Syscalls => ".syscalls".into(),
            SeccompField::Names(i) => format!(".syscalls[{i}].names"),
            SeccompField::Name(i, j) => format!(".syscalls[{i}].names[{j}]"),
            SeccompField::Action(i) => format!(".syscalls[{i}].action"),
            SeccompField::Args(i) => format!(".syscalls[{i}].args"),
            SeccompField::ArgIndex(i, j) => format!(".syscalls[{i}].args[{j}].index"),
            SeccompField::ArgOp(i, j) => format!(".syscalls[{i}].args[{j}].op"),
        }
    }
}

impl Profile {
    /// Checks the profile; an error is the field and why.
    pub fn validate(&self) -> Result<(), (SeccompField, String)> {
        let err = |f: SeccompField, why: String| Err((f, why));
        if self.default_action.is_empty() {
            return err(SeccompField::DefaultAction, "missing".into());
        }
        if let Err(why) = Action::parse(&self.default_action, self.default_errno_ret) {
            return err(SeccompField::DefaultAction, why);
        }
        for (i, a) in self.architectures.iter().enumerate() {
            if !KNOWN_ARCHES.contains(&a.as_str()) {
                return err(
                    SeccompField::Architecture(i),
                    format!("unknown architecture {a:?}"),
                );
            }
        }
        for (i, f) in self.flags.iter().enumerate() {
            if !FLAGS.iter().any(|(n, _)| n == f) {
                return err(
                    SeccompField::Flag(i),
                    format!(
                        "{f:?} is not one of SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW"
                    ),
                );
            }
        }
        if self.syscalls.len() > MAX_RULES {
            return err(
                SeccompField::Syscalls,
                format!("{} rules; at most {MAX_RULES}", self.syscalls.len()),
            );
        }
        for (i, s) in self.syscalls.iter().enumerate() {
            if s.names.is_empty() {
                return err(SeccompField::Names(i), "empty".into());
            }
            if s.names.len() > MAX_NAMES {
                return err(
                    SeccompField::Names(i),
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
                        SeccompField::Name(i, j),
                        format!("{n:?} is not a syscall name"),
                    );
                }
            }
            if let Err(why) = Action::parse(&s.action, s.errno_ret) {
                return err(SeccompField::Action(i), why);
            }
            if s.args.len() > 6 {
                return err(SeccompField::Args(i), "at most 6 conditions".into());
            }
            for (j, a) in s.args.iter().enumerate() {
                if a.index > 5 {
                    return err(
                        SeccompField::ArgIndex(i, j),
                        format!("{} is not an argument index (0 to 5)", a.index),
                    );
                }
                if Op::parse(&a.op).is_none() {
                    return err(
                        SeccompField::ArgOp(i, j),
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

/// Every syscall name known on some supported architecture.
pub fn known_names() -> HashSet<&'static str> {
    tables::X86_64
        .iter()
        .chain(tables::AARCH64)
        .map(|(n, _)| *n)
        .collect()
}
