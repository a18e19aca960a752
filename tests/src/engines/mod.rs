//! Real container engines (Docker, Podman, containerd) started on private paths and sockets,
//! each told to use an OCI runtime binary of the test's choice, and stopped with everything
//! they made when dropped (also when the test fails).
//!
//! This file owns what the engines share: the runtime under test ([`Runtime`]), the scratch
//! area of one engine ([`Scratch`]: a directory, a cgroup parent, and on drop the processes,
//! mounts and cgroups left under them), the busybox image tarball, and running an engine's
//! client ([`Out`]). `docker`, `podman` and `containerd` hold one engine each.
//!
//! The engines come from Debian's packages (docker.io, podman + conmon, containerd + ctr; the
//! runtimes runc and crun); `scripts/test.sh` installs them. Nothing here touches the host's
//! network: Docker runs with `--bridge=none --iptables=false`, or inside a network namespace of
//! the test's own when bridge networking is tested; Podman and ctr run with no network.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin_dir, make_rootfs, remove_cgroup_parent, unique, TempDir};

pub mod containerd;
pub mod cri;
pub mod docker;
pub mod podman;

pub use containerd::Containerd;
pub use cri::Cri;
pub use docker::Docker;
pub use podman::Podman;

/// The environment variable naming the OCI runtime binary the `execdriver` variants use
/// instead of `target/<profile>/execdriver-runc` (e.g. `/usr/bin/crun`).
pub const RUNTIME_ENV: &str = "EDTEST_OCI_RUNTIME";

/// An OCI runtime binary (runc's command line) the engines are told to use.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// A short name for messages: `runc`, `execdriver`.
    pub name: &'static str,
    pub path: PathBuf,
}

impl Runtime {
    /// Debian's runc (the reference the harness is proven with). Panics when it is missing:
    /// `scripts/test.sh` installs it.
    pub fn runc() -> Runtime {
        Runtime {
            name: "runc",
            path: which("runc").expect("runc is missing: install Debian's runc (scripts/test.sh)"),
        }
    }

    /// execdriver's OCI runtime: `$EDTEST_OCI_RUNTIME` if set, else `execdriver-runc` beside the
    /// test binaries. None (with the reason printed, so the test shows as skipped in its
    /// output) when that file does not exist.
    pub fn execdriver() -> Option<Runtime> {
        let path = match std::env::var_os(RUNTIME_ENV) {
            Some(p) => PathBuf::from(p),
            None => bin_dir().join("execdriver-runc"),
        };
        if path.exists() {
            Some(Runtime {
                name: "execdriver",
                path,
            })
        } else {
            println!(
                "skipped: {} does not exist (build it with `cargo build --workspace --bins`, \
                 or name a runtime in {RUNTIME_ENV})",
                path.display()
            );
            None
        }
    }
}

/// The first `name` on PATH (or in /usr/sbin, /usr/bin, /sbin, /bin).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// The path of an engine's program, or a panic saying which Debian package brings it.
pub fn require(name: &str, package: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is missing: install Debian's {package} (scripts/test.sh does)")
    })
}

/// What a client command printed and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Panics with the output unless the command exited 0; returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self.stdout
    }
}

/// Runs `cmd` (stdin from `input`, or /dev/null) to the end, within `timeout`; a command still
/// running then is killed (it is our child) and the test fails.
pub fn output(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Out {
    try_output(cmd, input, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// As [`output`], with an error instead of a panic (for cleanup in `Drop`).
pub fn try_output(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Out, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &data);
        });
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(o)) => Ok(Out {
            // Killed by a signal: 128 + its number, as a shell reports it.
            code: o
                .status
                .code()
                .or_else(|| {
                    std::os::unix::process::ExitStatusExt::signal(&o.status).map(|s| 128 + s)
                })
                .unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            Err(format!("{what} did not finish within {timeout:?}"))
        }
    }
}

/// Waits until a unix socket accepts connections; panics with `log` when the daemon `child`
/// exits first or after `timeout`.
pub fn wait_for_socket(
    socket: &Path,
    timeout: Duration,
    child: &mut std::process::Child,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{} exited ({status}):\n{}", socket.display(), log());
        }
        assert!(
            Instant::now() < deadline,
            "{} did not come up:\n{}",
            socket.display(),
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One engine's private area: a directory (roots, states, sockets, logs) and a cgroup parent
/// for its containers (and conmons). Dropping it kills the processes still running from it
/// (those whose command line names the directory, and those in the cgroup parent), unmounts
/// what is mounted under it and removes both.
pub struct Scratch {
    pub dir: TempDir,
    /// A cgroup parent of its own (a relative name, e.g. `edeng-123-4`), in every hierarchy.
    pub cgroup_parent: String,
}

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        Scratch {
            dir: TempDir::new(prefix),
            cgroup_parent: unique("edeng"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    /// The pids of processes whose command line names a path in this directory (daemons,
    /// shims, conmons and clients of this engine; the directory's name is unique to this test,
    /// and the `/` after it keeps `/tmp/x-1-2` from matching `/tmp/x-1-23/...`).
    pub fn processes(&self) -> Vec<i32> {
        let needle = format!("{}/", self.dir.path.display());
        let me = std::process::id() as i32;
        std::fs::read_dir("/proc")
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|&pid| pid != me)
                    .filter(|pid| {
                        std::fs::read(format!("/proc/{pid}/cmdline"))
                            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The mount points in the host's mount table at or under the directory.
    pub fn mounts(&self) -> Vec<String> {
        let dir = self.dir.path.display().to_string();
        let under = format!("{dir}/");
        crate::host_mounts_under(&self.dir.path)
            .into_iter()
            .filter(|m| *m == dir || m.starts_with(&under))
            .collect()
    }

    /// Unmounts everything mounted under the directory, deepest first.
    pub fn unmount_all(&self) {
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for pid in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        remove_cgroup_parent(&self.cgroup_parent);
        // The processes killed above may still hold mounts for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.unmount_all();
    }
}

/// Stops our child `child` with SIGTERM, and SIGKILL after `grace`.
pub fn stop_child(child: &mut std::process::Child, grace: Duration) {
    use nix::sys::signal::{kill, Signal};
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(pid, Signal::SIGKILL);
    let _ = child.wait();
}

/// A tarball of the busybox root filesystem ([`make_rootfs`]) at `dir/busybox.tar`: the one
/// layer of every engine's test image. Returns its path.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("busybox-rootfs");
    make_rootfs(&rootfs);
    layer_tar(&rootfs, &dir.join("busybox.tar"))
}

/// Archives the directory `rootfs` as the image layer `tar` (numeric owners), removes the
/// directory, and returns the tarball's path.
pub fn layer_tar(rootfs: &Path, tar: &Path) -> PathBuf {
    let status = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--numeric-owner", "-cf"])
        .arg(tar)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of {} failed", rootfs.display());
    let _ = std::fs::remove_dir_all(rootfs);
    tar.to_owned()
}

/// The hex sha256 of a file (coreutils' sha256sum).
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}
