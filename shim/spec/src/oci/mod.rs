//! The OCI runtime-spec (1.0 to 1.2) `config.json`, as serde types, with its checks and its
//! conversion into the container.json model the shim runs.
//!
//! * this file: the top level (`ociVersion`, `process`, `root`, `hostname`, `domainname`,
//!   `mounts`, `hooks`, `annotations`, `linux`);
//! * `linux.rs`: the `linux` section (namespaces, id maps, devices, cgroups path, resources,
//!   sysctl, seccomp, masked and read-only paths, propagation, personality, time offsets);
//! * `state.rs`: the state JSON a runtime prints and gives hooks, and the `features` JSON;
//! * `validate.rs`: what a config must be, each error naming its JSON path
//!   (`linux.resources.memory.limit`);
//! * `convert.rs`: a checked config as the model (`crate::config::Config`).
//!
//! Unknown fields are ignored, as the runtime-spec requires of a runtime; `null` reads as absent.

mod convert;
mod linux;
mod state;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use convert::{namespace, oci_namespace_name, to_config, Converted};
pub use linux::*;
pub use state::{features, Features, State, Status};
pub use validate::{json_path, validate, OciError, Origins};

/// The runtime-spec version this implementation follows (what `state` and `features` report).
pub const OCI_VERSION: &str = "1.2.0";

/// A bundle's `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub oci_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
}

/// `null` as the type's default (Go writes `null` for empty lists and maps).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The container's process (also the shape of `exec --process`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    #[serde(default)]
    pub user: User,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<String>,
    /// Windows only; refused on Linux.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command_line: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub env: Vec<String>,
    #[serde(default)]
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub apparmor_profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selinux_label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<IoPriority>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSize {
    pub height: u32,
    pub width: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub additional_gids: Vec<u32>,
    /// Windows only; ignored.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
}

/// The five capability sets, named `CAP_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default, deserialize_with = "nullable")]
    pub bounding: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub effective: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub inheritable: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub permitted: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

/// `ioprio_set(2)` for the process: a class (`IOPRIO_CLASS_RT`, `IOPRIO_CLASS_BE`,
/// `IOPRIO_CLASS_IDLE`) and a priority 0 to 7.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoPriority {
    pub class: String,
    #[serde(default)]
    pub priority: i32,
}

/// The root filesystem: `path` is relative to the bundle, or absolute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub path: String,
    #[serde(default)]
    pub readonly: bool,
}

/// One mount, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub destination: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub options: Vec<String>,
    /// An idmapped mount's maps (1.1).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub gid_mappings: Vec<IdMapping>,
}

/// Programs run at points of the container's life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    /// Deprecated (createRuntime's point, in the runtime namespace); still run.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub prestart: Vec<Hook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub create_runtime: Vec<Hook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub create_container: Vec<Hook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub start_container: Vec<Hook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub poststart: Vec<Hook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub poststop: Vec<Hook>,
}

/// One hook: `path` (absolute) run with `args` (args[0] included) and `env`, the state JSON on
/// its stdin, killed after `timeout` seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub path: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub args: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// A range of ids mapped into a user namespace (or an idmapped mount).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

impl Spec {
    /// Parses a config.json.
    pub fn parse(data: &[u8]) -> Result<Spec, serde_json::Error> {
        serde_json::from_slice(data)
    }
}

#[cfg(test)]
mod tests;
