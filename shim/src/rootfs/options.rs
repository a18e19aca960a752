//! mount(8)'s options of a `filesystems` entry, split as mount(8) splits them: the names of
//! flags (`ro`, `nosuid`, `noexec`, `relatime`, `bind`, `rbind`, ...) become `MS_*` flags,
//! propagation names (`rprivate`, `rslave`, ...) a separate step, and everything else
//! (`mode=755`, `size=65536k`, `newinstance`) the filesystem's data string, in order.

use nix::mount::MsFlags;

/// The options of one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Flags set (`ro` -> `MS_RDONLY`, `rbind` -> `MS_BIND | MS_REC`).
    pub flags: MsFlags,
    /// Flags a later option turned off explicitly (`rw`, `suid`, `dev`, `exec`, ...).
    pub clear: MsFlags,
    /// Propagation changes, in the order given (`rslave` -> `MS_SLAVE | MS_REC`).
    pub propagation: Vec<MsFlags>,
    /// `rro`: read-only recursively (every mount of an rbind).
    pub recursive_readonly: bool,
    /// The filesystem's own options, in order.
    pub data: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            recursive_readonly: false,
            data: Vec::new(),
        }
    }
}

impl Options {
    pub fn bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    pub fn recursive(&self) -> bool {
        self.flags.contains(MsFlags::MS_REC)
    }

    pub fn readonly(&self) -> bool {
        self.flags.contains(MsFlags::MS_RDONLY)
    }

    /// The data string mount(2) takes, or None.
    pub fn data(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }

    /// The per-mount flags a bind mount is remounted with (not bind, rec, read-only).
    pub fn remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY)
    }
}

/// Flags by name: (name, flag, set or clear).
const FLAGS: [(&str, MsFlags, bool); 29] = [
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("atime", MsFlags::MS_NOATIME, false),
    ("bind", MsFlags::MS_BIND, true),
    ("defaults", MsFlags::empty(), true),
    ("dev", MsFlags::MS_NODEV, false),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("iversion", MsFlags::MS_I_VERSION, true),
    ("lazytime", MsFlags::MS_LAZYTIME, true),
    ("loud", MsFlags::MS_SILENT, false),
    ("mand", MsFlags::MS_MANDLOCK, true),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("nodev", MsFlags::MS_NODEV, true),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("noiversion", MsFlags::MS_I_VERSION, false),
    ("nolazytime", MsFlags::MS_LAZYTIME, false),
    ("nomand", MsFlags::MS_MANDLOCK, false),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("nostrictatime", MsFlags::MS_STRICTATIME, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("silent", MsFlags::MS_SILENT, true),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
];

/// A propagation name as its flags (`rslave` -> `MS_SLAVE | MS_REC`).
pub fn propagation(name: &str) -> Option<MsFlags> {
    let (rec, base) = match name.strip_prefix('r') {
        Some(b) if matches!(b, "private" | "shared" | "slave" | "unbindable") => (true, b),
        _ => (false, name),
    };
    let flag = match base {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(if rec { flag | MsFlags::MS_REC } else { flag })
}

/// Options runc and crun know that this runtime refuses rather than ignore.
const REFUSED: [&str; 3] = ["tmpcopyup", "copy-symlink", "remount"];

/// Splits `options` into flags, propagation and data; an option this runtime cannot honour is
/// an error saying why.
pub fn parse(options: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    for opt in options {
        let opt = opt.as_str();
        if let Some((_, flag, set)) = FLAGS.iter().find(|(n, _, _)| *n == opt) {
            if opt == "bind" && o.recursive() {
                continue; // "rbind" then "bind": still recursive
            }
            if *set {
                o.flags |= *flag;
                o.clear -= *flag;
            } else {
                o.flags -= *flag;
                o.clear |= *flag;
            }
        } else if opt == "idmap" || opt == "ridmap" {
            // The mount is idmapped (`Filesystem::idmapped`), prepared outside (`idmap.rs`).
            continue;
        } else if opt == "rbind" {
            o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
        } else if opt == "rro" {
            o.flags |= MsFlags::MS_RDONLY;
            o.clear -= MsFlags::MS_RDONLY;
            o.recursive_readonly = true;
        } else if let Some(p) = propagation(opt) {
            o.propagation.push(p);
        } else if REFUSED.contains(&opt) {
            return Err(format!("{opt:?} is not supported by this runtime"));
        } else if opt.len() > 1
            && opt.starts_with('r')
            && FLAGS.iter().any(|(n, _, _)| *n == &opt[1..])
        {
            return Err(format!(
                "{opt:?}: recursive mount attributes other than rro are not supported"
            ));
        } else if opt.is_empty() {
            return Err("an empty option".into());
        } else {
            o.data.push(opt.to_owned());
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Result<Options, String> {
        parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data_split_like_mount8() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]).unwrap();
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data().as_deref(), Some("mode=755,size=65536k"));
        assert!(o.propagation.is_empty());
        let o = opts(&[
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
            "noexec",
        ])
        .unwrap();
        assert_eq!(o.flags, MsFlags::MS_NOEXEC);
        assert_eq!(
            o.data().as_deref(),
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
        );
        assert_eq!(opts(&["defaults"]).unwrap().data(), None);
    }

    #[test]
    fn later_options_win() {
        let o = opts(&["ro", "rw", "nodev", "dev", "exec"]).unwrap();
        assert!(!o.readonly());
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(
            o.clear,
            MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
        );
        let o = opts(&["rw", "ro"]).unwrap();
        assert!(o.readonly());
        assert!(!o.clear.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn binds_and_propagation() {
        let o = opts(&["rbind", "ro", "rslave", "nosuid"]).unwrap();
        assert!(o.bind() && o.recursive() && o.readonly());
        assert_eq!(o.remount_flags(), MsFlags::MS_NOSUID);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        let o = opts(&["bind", "private", "runbindable"]).unwrap();
        assert!(o.bind() && !o.recursive());
        assert_eq!(
            o.propagation,
            vec![
                MsFlags::MS_PRIVATE,
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC
            ]
        );
        let o = opts(&["rbind", "bind"]).unwrap();
        assert!(o.recursive());
        let o = opts(&["bind", "rro"]).unwrap();
        assert!(o.readonly() && o.recursive_readonly);
        assert_eq!(
            propagation("rshared"),
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        assert_eq!(propagation("shared"), Some(MsFlags::MS_SHARED));
        assert_eq!(propagation("rw"), None);
    }

    #[test]
    fn unsupported_options_are_refused() {
        assert!(opts(&["tmpcopyup"]).unwrap_err().contains("tmpcopyup"));
        assert!(opts(&["idmap"]).is_ok());
        assert!(opts(&["rnosuid"]).unwrap_err().contains("recursive"));
        assert!(opts(&[""]).is_err());
        // Unknown words are the filesystem's to judge.
        assert_eq!(opts(&["uid=5"]).unwrap().data, vec!["uid=5".to_string()]);
    }
}
