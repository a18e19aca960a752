//! `execdriver-shim`: creates one container and supervises it until it is deleted.
//!
//! Started by execdriverd as `execdriver-shim --id ID --state DIR [--stdin]
//! [--log-max-size BYTES --log-max-files N] [--console-size ROWSxCOLS]
//! [--cgroup-devices auto|bpf] [--allow-missing-apparmor]`. It reads DIR/container.json,
//! reports on its stdout (one protocol frame) whether the container was created, and then
//! serves DIR/shim.sock. `--allow-missing-apparmor` runs a container that asks for an AppArmor
//! profile unconfined where the kernel has no AppArmor (refused otherwise).

use std::path::PathBuf;
use std::process::ExitCode;

use execdriver_shim::logfile::Rotation;
use execdriver_shim::supervisor::{self, Options};

/// What the command line asks.
enum Mode {
    /// Create the container now.
    Create(Options),
    /// Park (`--park --state POOL_DIR --cgroup-parent PARENT [--share-parent C]...`): wait
    /// for a create to adopt. With `--share-parent C` the pool set has no cgroup of controller
    /// C (the nursery joins the parent's), for containers that share it.
    Park {
        dir: PathBuf,
        parent: String,
        share: Vec<String>,
    },
}

fn parse_mode() -> Result<Mode, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("--park") {
        return parse_args(args).map(Mode::Create);
    }
    let (mut dir, mut parent, mut share) = (None, None, Vec::new());
    let mut it = args.into_iter().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--state" => dir = it.next().map(PathBuf::from),
            "--cgroup-parent" => parent = it.next(),
            "--share-parent" => share.extend(it.next()),
            // Before the nursery is forked: containers inherit it from there.
            "--nofile-soft" => apply_nofile_soft(&it.next().unwrap_or_default())?,
            other => return Err(format!("--park: unknown argument {other:?}")),
        }
    }
    match (dir, parent) {
        (Some(dir), Some(parent)) if dir.is_absolute() => Ok(Mode::Park { dir, parent, share }),
        _ => Err("usage: execdriver-shim --park --state /ABSOLUTE/DIR --cgroup-parent P".into()),
    }
}

/// `--nofile-soft N`: the open-files soft limit of whoever started the daemon (which raised its
/// own to the hard limit): the shim and its containers get it back.
fn apply_nofile_soft(value: &str) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let soft: u64 = value.parse().map_err(|_| "bad --nofile-soft")?;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit: {e}"))?;
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard)
        .map_err(|e| format!("--nofile-soft: {e}"))
}

fn parse_args(args: Vec<String>) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--id" => opts.id = value("--id")?,
            "--state" => opts.state_dir = PathBuf::from(value("--state")?),
            "--stdin" => opts.stdin = true,
            "--log-max-size" => {
                opts.log_rotation.max_size = value("--log-max-size")?
                    .parse()
                    .map_err(|_| "bad --log-max-size")?
            }
            "--log-max-files" => {
                opts.log_rotation.max_files = value("--log-max-files")?
                    .parse()
                    .map_err(|_| "bad --log-max-files")?
            }
            "--console-size" => {
                let v = value("--console-size")?;
                let parsed = v
                    .split_once('x')
                    .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)));
                opts.console_size = parsed.ok_or("bad --console-size (ROWSxCOLS)")?;
            }
            "--cgroup-devices" => {
                let v = value("--cgroup-devices")?;
                opts.cgroup_devices = execdriver_shim::cgroups::DeviceMode::parse(&v)
                    .ok_or("bad --cgroup-devices (auto or bpf)")?;
            }
            "--allow-missing-apparmor" => opts.allow_missing_apparmor = true,
            "--nofile-soft" => apply_nofile_soft(&value("--nofile-soft")?)?,
            "--version" => return Err(format!("execdriver-shim {}", env!("CARGO_PKG_VERSION"))),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if opts.id.is_empty() || !opts.state_dir.is_absolute() {
        return Err("usage: execdriver-shim --id ID --state /ABSOLUTE/DIR [--stdin]".into());
    }
    if opts.log_rotation == Rotation::default() {
        opts.log_rotation = Rotation {
            max_size: 0,
            max_files: 1,
        };
    }
    Ok(opts)
}

fn main() -> ExitCode {
    // Nothing the caller left open may reach the container.
    // SAFETY: first thing in main: one thread, and no Rust object owns a descriptor above 2.
    unsafe { execdriver_shim::sys::close_from(3) };
    let mode = match parse_mode() {
        Ok(m) => m,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let state_dir = match &mode {
        Mode::Create(opts) => opts.state_dir.clone(),
        Mode::Park { dir, .. } => dir.clone(),
    };
    let report = match supervisor::prepare_process(&state_dir, matches!(mode, Mode::Park { .. })) {
        Ok(r) => r,
        Err(e) => {
            execdriver_shim::log::error!("execdriver-shim: preparing {}: {e}", state_dir.display());
            return ExitCode::from(1);
        }
    };
    let code = match mode {
        Mode::Create(opts) => supervisor::run(opts, report),
        Mode::Park { dir, parent, share } => park(&dir, &parent, share, report),
    };
    ExitCode::from(code as u8)
}

/// A parked shim: makes its pool set, says so (one byte, `P`, on its stdout), and waits for
/// the create that adopts it; then it is that container's shim.
fn park(
    dir: &std::path::Path,
    parent: &str,
    share: Vec<String>,
    mut report: supervisor::Report,
) -> i32 {
    use std::io::Write;
    let token = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A daemon gone already (killed as it started this shim) wants nothing parked: nothing is
    // made for it.
    if report
        .adoption
        .as_ref()
        .is_some_and(supervisor::daemon_gone)
    {
        let _ = std::fs::remove_dir_all(dir);
        return 0;
    }
    let parked = match supervisor::Parked::park(parent, &token, share, dir) {
        Ok(p) => p,
        Err(e) => {
            execdriver_shim::log::error!("parked shim {token}: {e}");
            let _ = std::fs::remove_dir_all(dir);
            return 1;
        }
    };
    let adoption = report.adoption.take();
    let said = report
        .pipe
        .write_all(b"P")
        .and_then(|_| report.pipe.flush());
    let args = match (said, adoption) {
        (Ok(()), Some(from)) => supervisor::wait_for_adoption(from, &parked),
        _ => supervisor::Adoption::NotWanted,
    };
    let args = match args {
        supervisor::Adoption::Adopted(args) => args,
        // Not wanted (the daemon stopped), or of no use: leave nothing.
        gone => {
            parked.discard();
            let _ = std::fs::remove_dir_all(dir);
            return match gone {
                supervisor::Adoption::NurseryGone => execdriver_spec::state::PARK_ABANDONED,
                _ => 0,
            };
        }
    };
    let opts = match parse_args(args) {
        Ok(o) => o,
        Err(msg) => {
            execdriver_shim::log::error!("parked shim {token}: adoption: {msg}");
            parked.discard();
            let _ = std::fs::remove_dir_all(dir);
            return 2;
        }
    };
    match supervisor::move_in(dir, &opts.state_dir) {
        Ok(true) => supervisor::run_adopted(opts, report, Some(parked)),
        // Its staging root stayed in the pool directory: the container is made as without a
        // pool (the set and the nursery go first; the directory, with the staging root no
        // longer in use, too).
        Ok(false) => {
            parked.discard();
            let _ = std::fs::remove_dir_all(dir);
            supervisor::run_adopted(opts, report, None)
        }
        Err(e) => {
            execdriver_shim::log::error!(
                "parked shim {token}: moving to {}: {e}",
                opts.state_dir.display()
            );
            parked.discard();
            let _ = std::fs::remove_dir_all(dir);
            1
        }
    }
}
