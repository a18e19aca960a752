//! The kernel settings the init makes for its namespaces: the NIS domain name (UTS) and the
//! config's sysctls, written under /proc/sys while the process is in the container's
//! namespaces (net.* files are the opener's network namespace's, kernel.shm*/msg*/sem and
//! fs.mqueue.* its IPC namespace's, kernel.hostname/domainname its UTS namespace's).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, Field};

/// A setting the kernel refused, or a sysctl it does not have.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request's fault: no such sysctl on this kernel.
    #[error("{field}: no such kernel parameter ({path} does not exist)")]
    NoSuchSysctl { field: String, path: PathBuf },
    #[error("{field}: writing {value:?} to {path}: {source}")]
    Sysctl {
        field: String,
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("domainname: setdomainname: {0}")]
    Domainname(#[source] nix::errno::Errno),
}

/// The file of a sysctl under `proc_sys`: `net.ipv4.ip_forward` is `net/ipv4/ip_forward`; a
/// key written with slashes (`net/ipv4/conf/eth0.100/forwarding`) is taken as it is.
pub fn sysctl_path(proc_sys: &Path, key: &str) -> PathBuf {
    if key.contains('/') {
        proc_sys.join(key)
    } else {
        proc_sys.join(key.replace('.', "/"))
    }
}

/// Sets the domain name (in the container's own UTS namespace; validated to have one).
pub fn set_domainname(config: &Config) -> Result<(), Error> {
    if config.domainname.is_empty() {
        return Ok(());
    }
    crate::sys::set_domainname(&config.domainname).map_err(Error::Domainname)
}

/// Writes the config's sysctls under `proc_sys` (/proc/sys), in key order. A key whose file
/// does not exist is refused naming it.
pub fn write_sysctls(config: &Config, proc_sys: &Path) -> Result<(), Error> {
    for (key, value) in &config.sysctl {
        let field = Field::Sysctl(key.clone()).json_path();
        let path = sysctl_path(proc_sys, key);
        if !path.is_file() {
            return Err(Error::NoSuchSysctl { field, path });
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|source| Error::Sysctl {
                field,
                path: path.clone(),
                value: value.clone(),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_to_files() {
        let p = Path::new("/proc/sys");
        assert_eq!(
            sysctl_path(p, "net.ipv4.ip_forward"),
            Path::new("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path(p, "net/ipv4/conf/eth0.100/forwarding"),
            Path::new("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
    }

    #[test]
    fn a_missing_sysctl_is_named() {
        let dir = std::env::temp_dir().join(format!("edt-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        std::fs::write(dir.join("kernel/shmmax"), "0").unwrap();
        let mut config = Config::default();
        config.sysctl.insert("kernel.shmmax".into(), "4096".into());
        write_sysctls(&config, &dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("kernel/shmmax")).unwrap(),
            "4096"
        );
        config.sysctl.insert("kernel.shmfoo".into(), "1".into());
        let e = write_sysctls(&config, &dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            e.starts_with("sysctl.kernel.shmfoo: no such kernel parameter"),
            "{e}"
        );
    }
}
