//! OCI hooks (`config.hooks`, the model's `execdriver_spec::hooks`): running one program with
//! its args (args[0] included) and env, the container's state JSON on its stdin, its output
//! collected for the error, killed after its `timeout` seconds. Where each point runs is the
//! caller's: prestart, createRuntime, poststart and poststop in `runtime` (the runtime's side),
//! createContainer and startContainer in `process` (the container's side).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::config::Hook;

/// What the error message keeps of a hook's output.
const OUTPUT_KEPT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{point} hook {path}: starting it: {source}")]
    Spawn {
        point: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{point} hook {path}: {status}{}", output_suffix(.output))]
    Failed {
        point: String,
        path: String,
        status: String,
        output: String,
    },
    #[error("{point} hook {path}: killed after its timeout of {secs}s")]
    Timeout {
        point: String,
        path: String,
        secs: i64,
    },
}

fn output_suffix(output: &str) -> String {
    let t = output.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {t}")
    }
}

/// Runs `hooks` of `point` (its OCI name, for messages) in order; the first failure stops.
pub fn run_all(point: &str, hooks: &[Hook], state: &[u8]) -> Result<(), Error> {
    hooks.iter().try_for_each(|h| run(point, h, state))
}

/// Runs `hooks` of `point` in order, each failure only returned as a warning (poststart,
/// poststop: the runtime-spec says these do not fail the operation).
pub fn run_all_warn(point: &str, hooks: &[Hook], state: &[u8]) -> Vec<String> {
    hooks
        .iter()
        .filter_map(|h| run(point, h, state).err().map(|e| e.to_string()))
        .collect()
}

/// Runs one hook to its end: exit 0 is success, anything else an error naming the hook.
pub fn run(point: &str, hook: &Hook, state: &[u8]) -> Result<(), Error> {
    let (mut reader, writer) = std::io::pipe().map_err(|source| Error::Spawn {
        point: point.into(),
        path: hook.path.clone(),
        source,
    })?;
    let writer2 = writer.try_clone().map_err(|source| Error::Spawn {
        point: point.into(),
        path: hook.path.clone(),
        source,
    })?;
    let mut cmd = Command::new(&hook.path);
    if let Some((first, rest)) = hook.args.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for e in &hook.env {
        match e.split_once('=') {
            Some((k, v)) => cmd.env(k, v),
            None => cmd.env(e, ""),
        };
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .map_err(|source| Error::Spawn {
            point: point.into(),
            path: hook.path.clone(),
            source,
        })?;
    // The parent's copies of the write end are gone with `cmd`: EOF comes when the hook (and
    // whatever it started holding its output) is done.
    drop(cmd);
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that exits without reading its stdin is no error.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut output = Vec::new();
    let mut buf = [0u8; 4096];
    let mut timed_out = false;
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()).as_millis();
                PollTimeout::try_from(left.min(60_000) as i32).unwrap_or(PollTimeout::ZERO)
            }
        };
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, wait) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out = true;
                    break;
                }
                continue;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if output.len() < OUTPUT_KEPT {
                    output.extend_from_slice(&buf[..n.min(OUTPUT_KEPT - output.len())]);
                }
            }
        }
    }
    // Output closed: the hook has ended or is about to (or it outlived its timeout).
    let status = loop {
        if timed_out {
            let _ = child.kill();
        }
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if timed_out {
        let _ = child.wait();
        return Err(Error::Timeout {
            point: point.into(),
            path: hook.path.clone(),
            secs: hook.timeout.unwrap_or(0),
        });
    }
    match status {
        Some(s) if s.success() => Ok(()),
        other => Err(Error::Failed {
            point: point.into(),
            path: hook.path.clone(),
            status: match other {
                Some(s) => match (s.code(), s.signal()) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (_, Some(sig)) => format!("killed by signal {sig}"),
                    _ => "failed".into(),
                },
                None => "could not be waited for".into(),
            },
            output: String::from_utf8_lossy(&output).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(path: &str, args: &[&str], timeout: Option<i64>) -> Hook {
        Hook {
            path: path.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["X=1".into()],
            timeout,
        }
    }

    #[test]
    fn runs_with_stdin_and_reports_failures() {
        run(
            "prestart",
            &hook("/bin/sh", &["sh", "-c", "read l; [ \"$l$X\" = ab1 ]"], None),
            b"ab\n",
        )
        .expect("hook");
        let e = run(
            "poststop",
            &hook("/bin/sh", &["sh", "-c", "echo oops >&2; exit 3"], None),
            b"",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("poststop hook /bin/sh: exited with status 3: oops"),
            "{e}"
        );
        let e = run("prestart", &hook("/nonexistent", &[], None), b"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent"), "{e}");
    }

    #[test]
    fn kills_at_timeout() {
        let t = Instant::now();
        let e = run(
            "createRuntime",
            &hook("/bin/sh", &["sh", "-c", "exec sleep 30"], Some(1)),
            b"",
        )
        .unwrap_err();
        assert!(matches!(e, Error::Timeout { secs: 1, .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20));
    }
}
