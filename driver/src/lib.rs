//! execdriverd: the gRPC driver. Requests become container.json files; one shim per container
//! does the Linux work. `shim` knows nothing of gRPC; this crate knows no syscalls beyond
//! spawning shims and talking to them.
#![deny(unsafe_code)]

pub mod calls;
pub mod claim;
pub mod cli;
pub mod convert;
pub mod docgen;
pub mod driver;
pub mod error;
pub mod events;
pub mod gc;
pub mod info;
pub mod ipam;
pub mod leftovers;
pub mod logs;
pub mod policy;
pub mod pool;
mod render;
pub mod server;
pub mod service;
pub mod shims;
