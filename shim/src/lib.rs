//! execdriver's Linux side: everything that turns a `container.json` into a running container.
//! The per-container `execdriver-shim` and the seed's `nsinit` CLI are thin binaries on this
//! library. The model (container.json, the shim protocol, names and defaults) is the spec
//! crate's (`execdriver_spec`, in `shim/spec`); the driver uses this library only for the Linux
//! work it must do itself (host probing, cleanup after a shim that is gone).
//!
//! Modules follow the kernel facility they drive. `unsafe` blocks live in [`sys`], except the
//! calls of its three `unsafe fn`s (`clone_process`, `close_from`, `close_fds_except`), whose
//! contract, a single-threaded process, only the caller can keep: each call says why it holds.
#![deny(unsafe_code)]

pub mod capabilities;
pub mod cgroups;
pub mod hooks;
pub mod log;
pub mod logfile;
pub mod namespaces;
pub mod network;
pub mod nsinit;
pub mod process;
pub mod reaper;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
pub mod security;
pub mod slirp4netns;
pub mod state;
pub mod supervisor;
pub mod sys;

// The model, under the names the shim's modules use.
use execdriver_spec::{config, protocol};
