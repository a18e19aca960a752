//! execdriver's model: what a container is asked to be, and the words the driver and the shim
//! speak. Every other crate of the workspace may depend on this one; it depends on no gRPC, no
//! async runtime and makes no syscalls beyond reading and writing files.
//!
//! * [`config`]: the `container.json` types (the seed's format) and their checks;
//! * [`namespaces`], [`capabilities`], [`network`], [`security`], [`seccomp`]: the names,
//!   values and defaults of each section, with the checks that belong to them;
//! * [`protocol`]: the shim protocol, generated from `proto/execdriver/shim/v1/shim.proto`,
//!   and its framing codec;
//! * [`state`]: the layout of a container's state directory and its records;
//! * [`logline`]: the container log's line format and RFC 3339 times;
//! * [`limits`]: numbers both sides must agree on;
//! * [`id`]: random identifiers.
#![deny(unsafe_code)]

pub mod capabilities;
pub mod config;
pub mod hooks;
pub mod id;
pub mod limits;
pub mod logline;
pub mod namespaces;
pub mod network;
pub mod oci;
pub mod protocol;
pub mod seccomp;
pub mod security;
pub mod state;
