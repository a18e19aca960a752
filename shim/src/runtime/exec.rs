//! `exec ID`: a new process in a live container, made by [`crate::process::join_with`] as the
//! shim's Exec makes it (every namespace of the init, the container's cgroups and security
//! settings). Its process is the container's own (`process` of config.json) with what the
//! command line or `--process` changes; in the foreground this waits and exits with its status,
//! with `-d` it is left running.

use std::os::fd::AsFd;
use std::path::Path;

use crate::config::{Config, User};
use crate::process::{self, Launch, ProcessSpec, Stdio};
use execdriver_spec::oci::{self, Status};

use super::cli::ExecArgs;
use super::lifecycle::{forwarding_signals, send_console, supervise, write_pid_file};
use super::{store, Error};

/// Sets `KEY=VALUE` in `env`, replacing an entry of the same key.
fn set_env(env: &mut Vec<String>, entry: &str) {
    let key = entry.split_once('=').map_or(entry, |(k, _)| k);
    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
    env.push(entry.to_owned());
}

/// The process to run, the container's config as it applies to it (capabilities, groups,
/// no_new_privs, terminal), and its terminal's size.
struct ExecProcess {
    spec: ProcessSpec,
    config: Config,
    console_size: Option<(u16, u16)>,
}

fn process_of(config: &Config, a: &ExecArgs) -> Result<ExecProcess, Error> {
    let mut config = config.clone();
    let mut spec = ProcessSpec {
        args: config.args.clone(),
        env: config.environment.clone(),
        cwd: config.working_dir.clone(),
        user: config.user(),
        init: false,
        own: Default::default(),
    };
    let mut console_size = None;
    match &a.process {
        Some(path) => {
            if !a.command.is_empty() {
                return Err(Error::msg(
                    "exec: give either --process or a command, not both",
                ));
            }
            let data = std::fs::read(path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let p: oci::Process = serde_json::from_slice(&data)
                .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
            let refuse = |field: &str| {
                Err(Error::msg(format!(
                    "{}: process.{field} is not supported for exec by execdriver-runc",
                    path.display()
                )))
            };
            // The exec'd process's own rlimits and OOM score, set from outside as the init's.
            config.rlimits = p
                .rlimits
                .iter()
                .map(|r| crate::security::Rlimit {
                    kind: r.kind.clone(),
                    hard: r.hard,
                    soft: r.soft,
                })
                .collect();
            config.oom_score_adj = p.oom_score_adj;
            if !p.selinux_label.is_empty() {
                return refuse("selinuxLabel");
            }
            if let Some(io) = &p.io_priority {
                config.io_priority = Some(crate::config::IoPriority {
                    class: io.class.clone(),
                    priority: io.priority,
                });
            }
            spec.args = p.args;
            spec.env = p.env;
            spec.cwd = p.cwd;
            spec.user = User {
                uid: p.user.uid,
                gid: p.user.gid,
            };
            config.additional_gids = p.user.additional_gids;
            config.umask = p.user.umask;
            config.tty = p.terminal;
            config.no_new_privileges = Some(p.no_new_privileges);
            if let Some(c) = p.capabilities {
                let sets = config.capability_sets.get_or_insert_with(Default::default);
                sets.bounding = c.bounding;
                sets.effective = c.effective;
                sets.inheritable = c.inheritable;
                sets.permitted = c.permitted;
                sets.ambient = c.ambient;
            }
            if !p.apparmor_profile.is_empty() {
                config
                    .context
                    .insert(crate::security::APPARMOR_KEY.into(), p.apparmor_profile);
            }
            console_size = p
                .console_size
                .map(|c| (c.height.min(65535) as u16, c.width.min(65535) as u16));
        }
        None => {
            if a.command.is_empty() {
                return Err(Error::msg("exec: no command given (args or --process)"));
            }
            spec.args = a.command.clone();
            config.tty = a.tty;
        }
    }
    if a.tty {
        config.tty = true;
    }
    if let Some(cwd) = &a.cwd {
        spec.cwd = cwd.clone();
    }
    for e in &a.env {
        set_env(&mut spec.env, e);
    }
    if let Some(u) = &a.user {
        spec.user = User::parse(u).map_err(|e| Error::msg(format!("--user {u:?}: {e}")))?;
    }
    for cap in &a.cap {
        if !execdriver_spec::capabilities::is_valid(cap) {
            return Err(Error::msg(format!("--cap {cap:?}: unknown capability")));
        }
        let name = cap.to_ascii_uppercase();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        if let Some(keep) = &mut config.capabilities {
            keep.push(name.clone());
        }
        if let Some(sets) = &mut config.capability_sets {
            for set in [
                &mut sets.bounding,
                &mut sets.effective,
                &mut sets.inheritable,
                &mut sets.permitted,
                &mut sets.ambient,
            ] {
                if !set.contains(&name) {
                    set.push(name.clone());
                }
            }
        }
    }
    Ok(ExecProcess {
        spec,
        config,
        console_size,
    })
}

/// `exec ID`: returns the process's exit status (0 with `-d`).
pub fn exec(root: &Path, a: &ExecArgs) -> Result<i32, Error> {
    let c = store::load(root, &a.id)?;
    match c.status() {
        Status::Running | Status::Created => {}
        Status::Paused => return Err(Error::msg("cannot exec in a paused container")),
        _ => return Err(Error::msg("cannot exec in a stopped container")),
    }
    let ExecProcess {
        spec,
        config,
        console_size,
    } = process_of(&c.record.config, a)?;
    if config.tty && a.console_socket.is_none() && a.detach {
        return Err(Error::msg(
            "cannot allocate tty if runc will detach without setting console socket",
        ));
    }
    if !config.tty && a.console_socket.is_some() {
        return Err(Error::msg(
            "cannot use console socket if runc will not detach or allocate tty",
        ));
    }
    // A terminal relayed here starts at our terminal's size.
    let console_size = console_size.or_else(|| {
        a.console_socket
            .is_none()
            .then(|| crate::sys::get_winsize(std::io::stdin().as_fd()).ok())
            .flatten()
    });
    let stdio = if config.tty {
        let (rows, cols) = console_size.unwrap_or((0, 0));
        Stdio::Pty { rows, cols }
    } else {
        Stdio::Inherit
    };
    let cgroup = c.cgroup()?;
    // Blocked before the process exists, so its SIGCHLD cannot be lost.
    let signals = if a.detach {
        None
    } else {
        Some(forwarding_signals()?)
    };
    let launch = Launch {
        preserve_fds: a.preserve_fds,
        detached: a.detach,
        ..Launch::default()
    };
    let mut created = process::join_with(&config, c.pid(), &spec, stdio, launch, &mut |pid| {
        if let Some(m) = &cgroup {
            m.apply(pid).map_err(|e| format!("cgroups: {e}"))?;
        }
        Ok(())
    })?;
    let pid = created.pid;
    let before = || -> Result<(), Error> {
        if let (Some(sock), Some(master)) = (&a.console_socket, &created.pty_master) {
            send_console(sock, master)?;
        }
        if let Some(p) = &a.pid_file {
            write_pid_file(p, pid)?;
        }
        Ok(())
    };
    if let Err(e) = before() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        return Err(e);
    }
    let master = created.pty_master.take();
    let master = master.filter(|_| a.console_socket.is_none());
    created.start()?;
    match signals {
        None => Ok(0),
        Some(signals) => supervise(pid, &signals, master),
    }
}
