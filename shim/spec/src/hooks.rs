//! OCI hooks as the model holds them: programs run at points of a container's life, each
//! given the container's state JSON on its stdin.
//!
//! | point | when | where |
//! |---|---|---|
//! | `prestart`, `create_runtime` | after the namespaces are made, before pivot_root | the runtime's namespaces |
//! | `create_container` | after the mounts, before pivot_root | the container's mount namespace |
//! | `start_container` | at Start, before the command's exec | the container |
//! | `poststart` | after the command started | the runtime's namespaces |
//! | `poststop` | after the container is deleted | the runtime's namespaces |

use serde::{Deserialize, Serialize};

/// One hook: `path` (absolute) run with `args` (args[0] included) and `env`, the state JSON on
/// its stdin, killed after `timeout` seconds (none: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// The hooks of a container, by point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.prestart.is_empty()
            && self.create_runtime.is_empty()
            && self.create_container.is_empty()
            && self.start_container.is_empty()
            && self.poststart.is_empty()
            && self.poststop.is_empty()
    }
}
