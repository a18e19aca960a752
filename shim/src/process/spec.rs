//! What a process of the container is given: its stdio ([`Stdio`]) and what it runs and as
//! whom ([`ProcessSpec`]).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::config::Config;

/// The descriptors the process gets as 0, 1 and 2.
pub enum Stdio {
    /// Keep the caller's (nsinit in the foreground).
    Inherit,
    /// These three (pipe ends, or /dev/null).
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A new terminal from the container's own devpts, its slave as 0, 1, 2 (and, for the
    /// init, /dev/console); the master comes back in [`Created::pty_master`]. A size of 0
    /// leaves the kernel's default.
    Pty { rows: u16, cols: u16 },
}

impl Stdio {
    /// The descriptors the child keeps until it installs them.
    pub(super) fn raw_fds(&self) -> Vec<RawFd> {
        match self {
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => vec![stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
            _ => Vec::new(),
        }
    }
}

/// What a process runs and as whom: the init's comes from container.json, an exec's from its
/// request. Capabilities and the rest of the container's security settings come from the
/// container's config for both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    /// KEY=VALUE; PATH, HOME (and TERM with a tty) get defaults.
    pub env: Vec<String>,
    /// Absolute; empty means "/".
    pub cwd: String,
    pub user: crate::config::User,
    /// Run a minimal init as PID 1 that starts the command, forwards signals to it and reaps
    /// orphans (the container's init only).
    pub init: bool,
    /// What an exec'd process may say for itself (an OCI process.json does); `None` for each
    /// means the container's value from its config, as the init has it.
    pub own: OwnSettings,
}

/// A process's own groups, umask, capability sets and I/O priority, where they differ from the
/// container's config. All `None` (the default): the config's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnSettings {
    /// Supplementary groups besides the gid.
    pub additional_gids: Option<Vec<u32>>,
    pub umask: Option<u32>,
    pub capability_sets: Option<crate::config::CapabilitySets>,
    pub io_priority: Option<crate::config::IoPriority>,
}

impl ProcessSpec {
    /// The init's process, from container.json.
    pub fn from_config(config: &Config) -> ProcessSpec {
        ProcessSpec {
            args: config.args.clone(),
            env: config.environment.clone(),
            cwd: config.working_dir.clone(),
            user: config.user(),
            init: config.init,
            own: OwnSettings::default(),
        }
    }
}

/// How a created process waits for its go.
#[derive(Debug, Default)]
pub enum StartGate {
    /// The caller sends Start over the sync socket ([`super::Created::start`]); the process
    /// dies with the caller until it execs (the shim, nsinit, the default).
    #[default]
    Socket,
    /// The process outlives its caller (an OCI runtime's `create` exits): after Ready it
    /// opens this `O_PATH` descriptor of the exec fifo for writing (`/proc/self/fd/N`), which
    /// blocks until `start` opens the fifo for reading, writes one byte, runs the
    /// startContainer hooks, and execs.
    Fifo(OwnedFd),
}

/// Options of a process's creation beyond its config ([`super::create_with`],
/// [`super::join_with`]); the default is what the shim does.
#[derive(Debug, Default)]
pub struct Launch {
    pub gate: StartGate,
    /// The caller's descriptors 3 to 3+N-1 stay open in the process (runc's --preserve-fds).
    pub preserve_fds: u32,
    /// The process outlives its caller after Ready (no parent-death signal): a detached exec.
    /// Implied by [`StartGate::Fifo`].
    pub detached: bool,
    /// The state JSON the container-side hooks (createContainer, startContainer) get on their
    /// stdin; its `pid` is set to the process's own.
    pub hook_state: Option<execdriver_spec::oci::State>,
}

impl Launch {
    pub(super) fn outlives_caller(&self) -> bool {
        self.detached || matches!(self.gate, StartGate::Fifo(_))
    }

    /// The descriptors the child keeps through its setup.
    pub(super) fn raw_fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = (3..3 + self.preserve_fds as RawFd).collect();
        if let StartGate::Fifo(f) = &self.gate {
            fds.push(f.as_raw_fd());
        }
        fds
    }
}
