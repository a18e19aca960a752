//! execdriver's Linux side: the `container.json` model and everything that turns one into a
//! running container. The per-container `execdriver-shim` and the seed's `nsinit` CLI are thin
//! binaries on this library; the driver uses it for the config model and the shim protocol.
//!
//! Modules follow the kernel facility they drive. `unsafe` lives in [`sys`] only.
#![deny(unsafe_code)]

pub mod capabilities;
pub mod cgroups;
pub mod config;
pub mod log;
pub mod logfile;
pub mod namespaces;
pub mod network;
pub mod nsinit;
pub mod process;
pub mod protocol;
pub mod reaper;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod state;
pub mod supervisor;
pub mod sys;
