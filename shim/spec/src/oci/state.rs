//! What a runtime reports: the state of a container (`state`, and what hooks read on stdin) and
//! its `features` (runtime-spec features.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::OCI_VERSION;

/// A container's life as the runtime-spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is running.
    Creating,
    /// Set up, its command not started.
    Created,
    /// Its command runs.
    Running,
    /// Frozen (`pause`): runc reports it, the spec allows it.
    Paused,
    /// Its process has ended.
    Stopped,
}

/// The state JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    /// The init's pid as the host sees it; 0 once stopped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: i32,
    /// The bundle's absolute path.
    pub bundle: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

impl State {
    pub fn new(id: &str, status: Status, pid: i32, bundle: &str) -> State {
        State {
            oci_version: OCI_VERSION.into(),
            id: id.into(),
            status,
            pid,
            bundle: bundle.into(),
            annotations: BTreeMap::new(),
        }
    }
}

/// The `features` JSON: what this runtime implements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub oci_version_min: String,
    pub oci_version_max: String,
    pub hooks: Vec<String>,
    pub mount_options: Vec<String>,
    pub linux: serde_json::Value,
    pub annotations: BTreeMap<String, String>,
}

/// The mount options this runtime understands (flags and propagation; the rest is passed to
/// the filesystem as data).
pub const MOUNT_OPTIONS: [&str; 44] = [
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ridmap",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// The features of this build on this host: `cgroup_v1`/`cgroup_v2` as the host has them,
/// `apparmor` whether the kernel has it, `capabilities` the names this kernel knows.
pub fn features(
    namespaces: &[&str],
    capabilities: &[String],
    cgroup_v1: bool,
    cgroup_v2: bool,
    apparmor: bool,
) -> Features {
    let linux = serde_json::json!({
        "namespaces": namespaces,
        "capabilities": capabilities,
        "cgroup": {
            "v1": cgroup_v1,
            "v2": cgroup_v2,
            "systemd": false,
            "systemdUser": false,
            "rdma": false,
        },
        "seccomp": {
            "enabled": true,
            "actions": [
                "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
            ],
            "operators": [
                "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE",
            ],
            "archs": crate::seccomp::KNOWN_ARCHES,
            "knownFlags": crate::seccomp::FLAGS.map(|(n, _)| n),
            "supportedFlags": crate::seccomp::FLAGS.map(|(n, _)| n),
        },
        "apparmor": { "enabled": apparmor },
        "selinux": { "enabled": false },
        "intelRdt": { "enabled": false },
        "mountExtensions": { "idmap": { "enabled": true } },
    });
    Features {
        oci_version_min: "1.0.0".into(),
        oci_version_max: OCI_VERSION.into(),
        hooks: [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ]
        .map(String::from)
        .to_vec(),
        mount_options: MOUNT_OPTIONS.map(String::from).to_vec(),
        linux,
        annotations: BTreeMap::from([(
            "io.github.execdriver.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        )]),
    }
}
