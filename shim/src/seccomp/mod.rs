//! Seccomp in the shim: the profile model, the default profile and the compiler to classic BPF
//! are the spec crate's ([`execdriver_spec::seccomp`], re-exported here); the container's
//! processes load the program (`sys::seccomp_load`) just before they wait for Start. This
//! module adds what the running kernel decides ([`kernel_version`]).

pub use execdriver_spec::seccomp::*;

/// The running kernel's release as (major, minor); (0, 0) when it cannot be read.
pub fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[cfg(test)]
mod tests;
