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

fn parse_args() -> Result<Options, String> {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
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
            "--nofile-soft" => {
                // The open-files soft limit of whoever started the daemon (which raised its own
                // to the hard limit): the shim and its containers get it back.
                let soft: u64 = value("--nofile-soft")?
                    .parse()
                    .map_err(|_| "bad --nofile-soft")?;
                let (_, hard) =
                    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                        .map_err(|e| format!("getrlimit: {e}"))?;
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    soft.min(hard),
                    hard,
                )
                .map_err(|e| format!("--nofile-soft: {e}"))?;
            }
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
    let opts = match parse_args() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let report = match supervisor::prepare_process(&opts.state_dir) {
        Ok(r) => r,
        Err(e) => {
            execdriver_shim::log::error!(
                "execdriver-shim: preparing {}: {e}",
                opts.state_dir.display()
            );
            return ExitCode::from(1);
        }
    };
    ExitCode::from(supervisor::run(opts, report) as u8)
}
