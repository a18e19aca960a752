//! The crun helper: crun refuses hybrid cgroup hosts, so it runs from this binary started
//! with `--crun-runner` in a private mount namespace without the cgroup2 mount, which
//! times each command itself and answers one JSON line per request.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(serde::Serialize, serde::Deserialize)]
struct RunnerReq {
    /// "run": one command; "seq": n in a row; "par": n at once. `{i}` in argv is the index.
    mode: String,
    n: usize,
    argv: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RunnerResp {
    ns: u128,
    failed: usize,
}

fn spawn_quiet(argv: &[String]) -> std::io::Result<Child> {
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

pub(crate) fn run_timed(mode: &str, n: usize, argv: &[String]) -> (Duration, usize) {
    let subst = |i: usize| -> Vec<String> {
        argv.iter()
            .map(|a| a.replace("{i}", &i.to_string()))
            .collect()
    };
    let start = Instant::now();
    let mut failed = 0;
    match mode {
        "par" => {
            let children: Vec<_> = (0..n).map(|i| spawn_quiet(&subst(i))).collect();
            for c in children {
                match c.and_then(|mut c| c.wait()) {
                    Ok(s) if s.success() => {}
                    _ => failed += 1,
                }
            }
        }
        _ => {
            for i in 0..n.max(1) {
                match spawn_quiet(&subst(i)).and_then(|mut c| c.wait()) {
                    Ok(s) if s.success() => {}
                    _ => failed += 1,
                }
            }
        }
    }
    (start.elapsed(), failed)
}

/// `--crun-runner`: enter a private mount namespace, hide the cgroup2 mount, then time the
/// commands read from stdin (one JSON request per line) and answer each.
pub(crate) fn crun_runner() -> ! {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let setup = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .and_then(|_| {
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
        })
        .and_then(
            |_| match umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH) {
                Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
                r => r,
            },
        );
    if let Err(e) = setup {
        eprintln!("crun runner: {e}");
        std::process::exit(1);
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(req) = serde_json::from_str::<RunnerReq>(&line) else {
            break;
        };
        let (d, failed) = run_timed(&req.mode, req.n, &req.argv);
        let resp = RunnerResp {
            ns: d.as_nanos(),
            failed,
        };
        let _ = writeln!(out, "{}", serde_json::to_string(&resp).unwrap());
        let _ = out.flush();
    }
    std::process::exit(0)
}

pub(crate) struct CrunRunner {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl CrunRunner {
    pub(crate) fn start() -> CrunRunner {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("--crun-runner")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("crun runner");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        CrunRunner {
            child,
            stdin,
            stdout,
        }
    }

    pub(crate) fn time(&mut self, mode: &str, n: usize, argv: &[String]) -> (Duration, usize) {
        let req = RunnerReq {
            mode: mode.into(),
            n,
            argv: argv.to_vec(),
        };
        writeln!(self.stdin, "{}", serde_json::to_string(&req).unwrap()).unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let resp: RunnerResp = serde_json::from_str(&line).expect("crun runner reply");
        (Duration::from_nanos(resp.ns as u64), resp.failed)
    }
}

impl Drop for CrunRunner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
