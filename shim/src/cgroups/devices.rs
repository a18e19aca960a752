//! Device access rules: the default allow list, the rules a container asks for, and their v1
//! form (`devices.allow` lines). The v2 form is an eBPF program ([`super::bpf`]).

use crate::config::{Cgroups, Device};

/// Block or character device, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    All,
    Block,
    Char,
}

/// mknod, read, write: the access bits of the kernel's device cgroup (and its eBPF context).
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One rule. `None` numbers match every number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// ACC_* bits.
    pub access: u8,
    /// Allows (otherwise denies) what it matches.
    pub allow: bool,
}

const fn char_dev(major: u32, minor: Option<u32>, access: u8) -> Rule {
    Rule {
        kind: Kind::Char,
        major: Some(major),
        minor,
        access,
        allow: true,
    }
}

/// What every container may use, as Docker allows by default: mknod of any node (opening it is
/// what is checked), /dev/null, zero, full, random, urandom, tty, console, ptmx and the pty
/// slaves (/dev/pts/*).
pub const DEFAULT_RULES: [Rule; 11] = [
    Rule {
        kind: Kind::Char,
        major: None,
        minor: None,
        access: ACC_MKNOD,
        allow: true,
    },
    Rule {
        kind: Kind::Block,
        major: None,
        minor: None,
        access: ACC_MKNOD,
        allow: true,
    },
    char_dev(1, Some(3), ACC_ALL), // null
    char_dev(1, Some(5), ACC_ALL), // zero
    char_dev(1, Some(7), ACC_ALL), // full
    char_dev(1, Some(8), ACC_ALL), // random
    char_dev(1, Some(9), ACC_ALL), // urandom
    char_dev(5, Some(0), ACC_ALL), // tty
    char_dev(5, Some(1), ACC_ALL), // console
    char_dev(5, Some(2), ACC_ALL), // ptmx
    char_dev(136, None, ACC_ALL),  // pts/*
];

/// Every device, every access (`device_access`).
pub const ALLOW_ALL: Rule = Rule {
    kind: Kind::All,
    major: None,
    minor: None,
    access: ACC_ALL,
    allow: true,
};

impl Rule {
    /// The rule for a validated container.json entry.
    pub fn from_config(d: &Device) -> Rule {
        let num = |n: i64| u32::try_from(n).ok();
        let mut access = 0;
        for c in d.cgroup_permissions.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            };
        }
        Rule {
            kind: match d.kind.as_str() {
                "b" => Kind::Block,
                "c" => Kind::Char,
                _ => Kind::All,
            },
            major: num(d.major_number),
            minor: num(d.minor_number),
            access,
            allow: !d.deny,
        }
    }

    /// The line v1's `devices.allow` (or, for a deny rule, `devices.deny`) takes: `c 1:3 rwm`,
    /// `b *:* m`, `a`.
    pub fn v1_line(&self) -> String {
        let kind = match self.kind {
            Kind::All => return "a".into(),
            Kind::Block => 'b',
            Kind::Char => 'c',
        };
        let num = |n: Option<u32>| n.map_or("*".to_owned(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!("{kind} {}:{} {access}", num(self.major), num(self.minor))
    }
}

/// The rules of a container, in order, after an implicit "deny everything": everything with
/// `device_access`; else with `devices_exact` its own alone (allow and deny rules, a later one
/// deciding over an earlier one), otherwise the defaults and its own.
pub fn rules_for(cg: &Cgroups) -> Vec<Rule> {
    if cg.device_access {
        return vec![ALLOW_ALL];
    }
    if cg.devices_exact {
        return cg.devices.iter().map(Rule::from_config).collect();
    }
    let mut rules = DEFAULT_RULES.to_vec();
    rules.extend(cg.devices.iter().map(Rule::from_config));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines() {
        let lines: Vec<String> = DEFAULT_RULES.iter().map(Rule::v1_line).collect();
        assert_eq!(
            lines,
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
        assert_eq!(ALLOW_ALL.v1_line(), "a");
    }

    #[test]
    fn requested_rules_follow_the_defaults() {
        let cg = Cgroups {
            name: "x".into(),
            devices: vec![Device {
                kind: "c".into(),
                major_number: 10,
                minor_number: -1,
                cgroup_permissions: "rw".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let rules = rules_for(&cg);
        assert_eq!(rules.len(), DEFAULT_RULES.len() + 1);
        assert_eq!(rules.last().unwrap().v1_line(), "c 10:* rw");
        let all = Cgroups {
            device_access: true,
            ..cg
        };
        assert_eq!(rules_for(&all), vec![ALLOW_ALL]);
    }

    #[test]
    fn exact_rules_are_the_containers_alone_in_order() {
        let dev = |kind: &str, major, perms: &str, deny| Device {
            kind: kind.into(),
            major_number: major,
            minor_number: -1,
            cgroup_permissions: perms.into(),
            deny,
            ..Default::default()
        };
        let cg = Cgroups {
            name: "x".into(),
            devices_exact: true,
            devices: vec![dev("c", 1, "rwm", false), dev("c", 1, "w", true)],
            ..Default::default()
        };
        let rules = rules_for(&cg);
        let lines: Vec<(String, bool)> = rules.iter().map(|r| (r.v1_line(), r.allow)).collect();
        assert_eq!(
            lines,
            [
                ("c 1:* rwm".to_string(), true),
                ("c 1:* w".to_string(), false)
            ]
        );
    }
}
