//! `features` (what this build implements on this host), `spec` (a default config.json, as
//! `runc spec` writes one) and nothing else: `checkpoint` and `restore` are refused in
//! `mod.rs` (no CRIU support).

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::cgroups::Layout;
use execdriver_spec::oci;

use super::{print_json, Error};

/// `features`: the runtime-spec features JSON.
pub fn features() -> Result<(), Error> {
    let layout = Layout::detect()?;
    let v2 = layout.hierarchies.iter().any(|h| h.v2);
    let v1 = layout.hierarchies.iter().any(|h| !h.v2);
    let mut caps: Vec<String> = caps::runtime::thread_all_supported()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    caps.sort();
    let mut namespaces = vec!["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];
    if crate::namespaces::available(crate::namespaces::Namespace::Time) {
        namespaces.push("time");
    }
    let f = oci::features(
        &namespaces,
        &caps,
        v1,
        v2,
        crate::security::apparmor_enabled(),
    );
    print_json(&f)
}

/// The config.json `runc spec` writes: busybox's `sh` on a terminal, read-only rootfs
/// `rootfs`, the standard mounts, masked and read-only paths, no devices allowed.
pub fn default_spec(rootless: bool) -> Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let mut spec = json!({
        "ociVersion": oci::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if rootless {
        // As runc's: a user namespace mapping root to the caller, no network namespace, /sys
        // bound from the host, no gid= on devpts, no resources.
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let linux = &mut spec["linux"];
        linux["namespaces"] = json!([
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}
        ]);
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        if let Some(o) = linux.as_object_mut() {
            o.remove("resources");
        }
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
            for m in mounts.iter_mut() {
                if m["destination"] == "/sys" {
                    *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
                }
                if let Some(opts) = m["options"].as_array_mut() {
                    opts.retain(|o| !o.as_str().is_some_and(|s| s.starts_with("gid=")));
                }
            }
        }
    }
    spec
}

/// `spec`: writes `config.json` in the bundle (default: the current directory); refuses to
/// overwrite one.
pub fn spec(bundle: Option<&Path>, rootless: bool) -> Result<(), Error> {
    let dir = bundle.unwrap_or(Path::new("."));
    let path = dir.join("config.json");
    if path.exists() {
        return Err(Error::msg("File config.json exists. Remove it first"));
    }
    let text = serde_json::to_string_pretty(&default_spec(rootless))
        .map_err(|e| Error::msg(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    std::io::Write::write_all(&mut f, format!("{text}\n").as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_specs_convert() {
        for rootless in [false, true] {
            let text = default_spec(rootless).to_string();
            let spec = oci::Spec::parse(text.as_bytes()).expect("parse");
            let c = oci::to_config(&spec, "x", Path::new("/b"), false).expect("convert");
            assert!(c.config.tty);
            assert_eq!(c.config.rootfs.as_deref(), Some(Path::new("/b/rootfs")));
        }
    }
}
