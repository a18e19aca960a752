//! execdriver's benchmarks, side by side with the peers a user would pick instead: runc, crun,
//! containerd (ctr + containerd-shim-runc-v2 + runc) and conmon, and the `unshare` lower bound.
//!
//! `scripts/bench.sh` installs the peers (Debian packages), builds everything in release mode
//! and runs this: `cargo bench -p execdriver-tests --bench bench -- [NAME...]` with NAME among
//! start, exec, many, memory, throughput (default: all). Every peer is measured in the same
//! run, alternating round by round, on the same busybox rootfs and the same namespaces. The
//! tables go to stdout and `bench-results.md`, the chart to `docs/bench.svg`.
//!
//! crun refuses hybrid cgroup hosts (a cgroup2 mount beside the v1 hierarchies), which these
//! machines are. It is run from a helper process (this binary with `--crun-runner`) in a
//! private mount namespace where /sys/fs/cgroup/unified is unmounted, so crun sees a v1 host;
//! the helper times each crun command itself.
//!
//! Benchmarks are not tests: nothing here asserts a speed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use execdriver_tests::{make_rootfs, pb, unique, CgroupGuard, Client, Daemon, TempDir};
use tokio_stream::StreamExt;

// ---------------------------------------------------------------------------------------------
// Statistics and reporting

#[derive(Clone)]
struct Row {
    name: String,
    unit: &'static str,
    samples: Vec<f64>,
}

impl Row {
    fn new(name: impl Into<String>, unit: &'static str) -> Row {
        Row {
            name: name.into(),
            unit,
            samples: Vec::new(),
        }
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.samples.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        }
    }
    fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// A bar chart: its title, its (label, value) bars and their unit.
type Chart = (String, Vec<(String, f64)>, &'static str);

struct Report {
    text: String,
    charts: Vec<Chart>,
}

impl Report {
    fn table(&mut self, title: &str, rows: &[Row], base: Option<&str>) {
        let base_median = base
            .and_then(|b| rows.iter().find(|r| r.name == b))
            .map(|r| r.median());
        let mut t = format!("\n### {title}\n\n| what | unit | median | min | max | runs |");
        if base.is_some() {
            t.push_str(" vs execdriver |");
        }
        t.push('\n');
        t.push_str("|---|---|---:|---:|---:|---:|");
        if base.is_some() {
            t.push_str("---:|");
        }
        t.push('\n');
        for r in rows {
            t.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {} |",
                r.name,
                r.unit,
                r.median(),
                r.min(),
                r.max(),
                r.samples.len()
            ));
            if let Some(b) = base_median {
                t.push_str(&format!(" {:.2}x |", r.median() / b));
            }
            t.push('\n');
        }
        print!("{t}");
        self.text.push_str(&t);
    }

    fn line(&mut self, s: &str) {
        println!("{s}");
        self.text.push_str(s);
        self.text.push('\n');
    }

    fn target(&mut self, what: &str, value: f64, limit: f64, at_most: bool) {
        let met = if at_most {
            value <= limit
        } else {
            value >= limit
        };
        let rel = if at_most { "<=" } else { ">=" };
        self.line(&format!(
            "- {what}: {value:.2} (target {rel} {limit:.2}) — {}",
            if met { "met" } else { "NOT met" }
        ));
    }
}

/// A horizontal bar chart per section, as one SVG.
fn svg(charts: &[Chart]) -> String {
    let width = 900.0;
    let left = 330.0;
    let bar_h = 22.0;
    let mut y = 20.0;
    let mut body = String::new();
    for (title, bars, unit) in charts {
        body.push_str(&format!(
            "<text x=\"10\" y=\"{:.0}\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
            y + 14.0,
            escape(title)
        ));
        y += 26.0;
        let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-9);
        for (label, value) in bars {
            let w = (width - left - 110.0) * value / max;
            let color = if label.starts_with("execdriver") {
                "#2b7a3d"
            } else {
                "#7a8ca3"
            };
            body.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\" text-anchor=\"end\">{}</text>\n",
                left - 8.0,
                y + 15.0,
                escape(label)
            ));
            body.push_str(&format!(
                "<rect x=\"{left:.0}\" y=\"{:.0}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{color}\"/>\n",
                y + 2.0,
                bar_h - 4.0
            ));
            body.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\">{value:.1} {unit}</text>\n",
                left + w + 6.0,
                y + 15.0
            ));
            y += bar_h;
        }
        y += 14.0;
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{:.0}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n",
        y + 10.0
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The pause before each latency sample. Every runtime measured here moves a process into
/// cgroups (v1: a write to cgroup.procs), which takes the kernel's cgroup_threadgroup_rwsem
/// for writing; a grace period or two after the last such move the lock is back in its fast
/// mode, and the next move waits a full RCU grace period (6-8 ms on these machines, see the
/// kernel table). Run back to back, a peer would skip that wait when the one before it had
/// just paid it; after this pause every sample starts from the same quiet kernel, as when an
/// engine starts one container on an idle host.
const SETTLE: Duration = Duration::from_millis(100);

/// The order of the peers in round `round`: a fixed shuffle per round (xorshift), so no peer
/// always follows the same other one.
fn order(round: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (round as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// What the kernel charges for moving a process into a cgroup (the v1 cpu hierarchy), right
/// after another move and after SETTLE: the part of every start that no runtime here avoids.
fn migration_cost(rounds: usize, report: &mut Report) {
    let Some(cpu) = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        .iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.procs").exists())
    else {
        return;
    };
    let parent = unique("edbench-mig");
    let _guard = CgroupGuard(parent.clone());
    let (a, b) = (cpu.join(&parent).join("a"), cpu.join(&parent).join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id().to_string();
    let mut warm = Row::new("move right after another move", "ms");
    let mut cold = Row::new(format!("move after {} ms idle", SETTLE.as_millis()), "ms");
    for i in 0..rounds {
        for (row, pause) in [(&mut cold, SETTLE), (&mut warm, Duration::ZERO)] {
            std::thread::sleep(pause);
            let to = if i % 2 == 0 { &a } else { &b };
            let t = Instant::now();
            std::fs::write(to.join("cgroup.procs"), &pid).unwrap();
            row.samples.push(ms(t.elapsed()));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    report.table(
        &format!(
            "The kernel: moving a process into a cgroup (v1 cpu, write to cgroup.procs), {rounds} rounds"
        ),
        &[warm, cold],
        None,
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// The crun helper: a process in a private mount namespace without the cgroup2 mount.

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

fn run_timed(mode: &str, n: usize, argv: &[String]) -> (Duration, usize) {
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
fn crun_runner() -> ! {
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

struct CrunRunner {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl CrunRunner {
    fn start() -> CrunRunner {
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

    fn time(&mut self, mode: &str, n: usize, argv: &[String]) -> (Duration, usize) {
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

// ---------------------------------------------------------------------------------------------
// The peers' set-up

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// An OCI bundle for runc/crun/conmon: `runc spec`, pointed at the shared rootfs.
fn make_bundle(dir: &Path, rootfs: &Path, args: &[&str], net: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(ok.success(), "runc spec");
    let path = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(args);
    c["root"] = serde_json::json!({"path": rootfs, "readonly": false});
    if !net {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

/// A private containerd (its own root, state and socket; the CRI plugin off).
struct Containerd {
    child: Child,
    socket: PathBuf,
    namespace: String,
    /// containerd-shim-runc-v2 processes seen (they outlive containerd): ended on drop.
    shims: std::sync::Mutex<Vec<u32>>,
}

impl Containerd {
    fn start(dir: &Path) -> Option<Containerd> {
        if !have("containerd") || !have("ctr") {
            return None;
        }
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
             \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
             \"io.containerd.snapshotter.v1.aufs\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n[debug]\n  level = \"error\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display()
        );
        std::fs::create_dir_all(dir).ok()?;
        std::fs::write(dir.join("config.toml"), config).ok()?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        Some(Containerd {
            child,
            socket,
            namespace: unique("edbench"),
            shims: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn ctr(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            "ctr".to_string(),
            "-a".into(),
            self.socket.display().to_string(),
            "-n".into(),
            self.namespace.clone(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Its tasks die with the shims; the shims outlive containerd, so end them first.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for t in $(ctr -a {s} -n {n} task ls -q); do ctr -a {s} -n {n} task kill -s KILL $t; done; sleep 0.5; \
                 for t in $(ctr -a {s} -n {n} task ls -q); do ctr -a {s} -n {n} task delete -f $t; done; \
                 for c in $(ctr -a {s} -n {n} container ls -q); do ctr -a {s} -n {n} container delete $c; done",
                s = self.socket.display(),
                n = self.namespace
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A shim that is still there: ours if its command line names our namespace.
        for pid in self.shims.lock().map(|v| v.clone()).unwrap_or_default() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&self.namespace) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        execdriver_tests::remove_cgroup_parent(&self.namespace);
    }
}

fn time_cmd(argv: &[String]) -> Option<Duration> {
    let (d, failed) = run_timed("run", 1, argv);
    (failed == 0).then_some(d)
}

struct Env {
    tmp: TempDir,
    rootfs: PathBuf,
    daemon: Daemon,
    containerd: Option<Containerd>,
    crun: Option<CrunRunner>,
    runc: bool,
    conmon: bool,
    _cgroups: Vec<CgroupGuard>,
}

impl Env {
    fn new() -> Env {
        let tmp = TempDir::new("edbench");
        let rootfs = tmp.path.join("rootfs");
        make_rootfs(&rootfs);
        let daemon = Daemon::start();
        let containerd = Containerd::start(&tmp.path.join("containerd"));
        let crun = have("crun").then(CrunRunner::start);
        let runc = have("runc");
        for (net, dir) in [(true, "bundle-net"), (false, "bundle-nonet")] {
            if runc {
                make_bundle(&tmp.path.join(dir), &rootfs, &["/bin/true"], net);
            }
        }
        if runc {
            make_bundle(
                &tmp.path.join("bundle-sleep"),
                &rootfs,
                &["sleep", "100000"],
                true,
            );
        }
        let conmon = have("conmon") && runc;
        let mut cgroups = Vec::new();
        for (net, dir) in [(true, "nsinit-net"), (false, "nsinit-nonet")] {
            let parent = unique("edbench-nsinit");
            let mut namespaces = vec!["NEWNS", "NEWUTS", "NEWIPC", "NEWPID"];
            if net {
                namespaces.push("NEWNET");
            }
            let config = serde_json::json!({
                "namespaces": namespaces,
                "cgroups": {"parent": parent, "name": "c"},
                "rootfs": rootfs,
                "environment": ["PATH=/bin"],
            });
            std::fs::create_dir_all(tmp.path.join(dir)).unwrap();
            std::fs::write(
                tmp.path.join(dir).join("container.json"),
                config.to_string(),
            )
            .unwrap();
            cgroups.push(CgroupGuard(parent));
        }
        Env {
            tmp,
            rootfs,
            daemon,
            containerd,
            crun,
            runc,
            conmon,
            _cgroups: cgroups,
        }
    }

    fn path(&self, p: &str) -> String {
        self.tmp.path.join(p).display().to_string()
    }

    fn our_request(&self, args: &[&str], net: bool) -> pb::CreateRequest {
        let mut req = self.daemon.request(args);
        req.rootfs = self.rootfs.display().to_string();
        if !net {
            req.namespaces = s(&["NEWNS", "NEWUTS", "NEWIPC", "NEWPID"]);
        }
        req
    }
}

// ---------------------------------------------------------------------------------------------
// The measurements

/// Run, Wait, Delete through the API.
async fn api_run_to_exit(c: &mut Client, req: pb::CreateRequest) -> Duration {
    api_phases(c, req).await.iter().sum()
}

/// Run, Wait and Delete through the API, each timed.
async fn api_phases(c: &mut Client, req: pb::CreateRequest) -> [Duration; 3] {
    let id = req.id.clone();
    let t = Instant::now();
    c.run(req).await.expect("run");
    let run = t.elapsed();
    let t = Instant::now();
    let exit = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("wait")
        .into_inner();
    let wait = t.elapsed();
    let t = Instant::now();
    c.delete(pb::DeleteRequest { id, force: false })
        .await
        .expect("delete");
    let delete = t.elapsed();
    assert_eq!(exit.exit.and_then(|e| e.exit_code), Some(0));
    [run, wait, delete]
}

async fn start_latency(env: &mut Env, rounds: usize, report: &mut Report) {
    let mut c = env.daemon.client().await;
    for net in [true, false] {
        let tag = if net { "with NEWNET" } else { "without NEWNET" };
        let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
        let names = [
            "execdriver: gRPC Run+Wait+Delete",
            "execdriver: nsinit exec",
            "runc run",
            "crun run",
            "ctr run --rm (containerd+shim+runc)",
            "unshare --fork ... chroot (lower bound)",
        ];
        for n in names {
            rows.insert(n, Row::new(n, "ms"));
        }
        let bundle = env.path(if net { "bundle-net" } else { "bundle-nonet" });
        let mut phases = [
            Row::new("execdriver: Run (create+start)", "ms"),
            Row::new("execdriver: Wait", "ms"),
            Row::new("execdriver: Delete", "ms"),
        ];
        let nsinit_dir = env.path(if net { "nsinit-net" } else { "nsinit-nonet" });
        let nsinit = execdriver_tests::bin("nsinit").display().to_string();
        for round in 0..rounds {
            // Peers in a shuffled order, each after the same pause (see SETTLE).
            for peer in order(round, names.len()) {
                tokio::time::sleep(SETTLE).await;
                let sample = match peer {
                    0 => {
                        let p = api_phases(&mut c, env.our_request(&["/bin/true"], net)).await;
                        for (row, d) in phases.iter_mut().zip(p) {
                            row.samples.push(ms(d));
                        }
                        Some(p.iter().sum())
                    }
                    1 => {
                        let mut cmd = Command::new(&nsinit);
                        cmd.args(["--root", &nsinit_dir, "exec", "/bin/true"])
                            .current_dir(&env.rootfs);
                        let t = Instant::now();
                        let ok = cmd
                            .stdout(Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success());
                        ok.then(|| t.elapsed())
                    }
                    2 if env.runc => {
                        let id = format!("edb-runc-{round}");
                        time_cmd(&s(&[
                            "runc",
                            "--root",
                            &env.path("runc-root"),
                            "run",
                            "-b",
                            &bundle,
                            &id,
                        ]))
                    }
                    3 => env.crun.as_mut().and_then(|r| {
                        let id = format!("edb-crun-{round}");
                        let root = env.tmp.path.join("crun-root").display().to_string();
                        let (d, failed) = r.time(
                            "run",
                            1,
                            &s(&["crun", "--root", &root, "run", "-b", &bundle, &id]),
                        );
                        (failed == 0).then_some(d)
                    }),
                    4 => env.containerd.as_ref().and_then(|ctrd| {
                        let id = format!("edb-ctr-{round}");
                        // `--rootfs` is a switch: the rootfs path comes where an image would.
                        let mut args = vec!["run", "--rm"];
                        if !net {
                            args.push("--net-host");
                        }
                        args.extend([
                            "--rootfs",
                            env.rootfs.to_str().unwrap(),
                            id.as_str(),
                            "/bin/true",
                        ]);
                        time_cmd(&ctrd.ctr(&args))
                    }),
                    5 => {
                        let mut argv =
                            s(&["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc"]);
                        if net {
                            argv.push("--net".into());
                        }
                        argv.extend(s(&["chroot", env.rootfs.to_str().unwrap(), "/bin/true"]));
                        time_cmd(&argv)
                    }
                    _ => None,
                };
                if let Some(d) = sample {
                    rows.get_mut(names[peer]).unwrap().samples.push(ms(d));
                }
            }
        }
        let rows: Vec<Row> = names.iter().map(|n| rows[n].clone()).collect();
        report.table(
            &format!(
                "Start to exit of /bin/true, {tag} ({rounds} rounds, peers in a shuffled order, \
                 {} ms apart)",
                SETTLE.as_millis()
            ),
            &rows,
            Some(names[0]),
        );
        report.table(
            &format!("execdriver's Run+Wait+Delete by call ({tag})"),
            &phases,
            None,
        );
        let api = rows[0].median();
        if !rows[3].samples.is_empty() {
            report.target(
                &format!("gRPC / crun run ({tag})"),
                api / rows[3].median(),
                1.0,
                true,
            );
        }
        report.target(
            &format!("gRPC / unshare lower bound ({tag})"),
            api / rows[5].median(),
            3.0,
            true,
        );
        if !rows[4].samples.is_empty() {
            report.target(
                &format!("containerd path / gRPC ({tag})"),
                rows[4].median() / api,
                5.0,
                false,
            );
        }
        if net {
            report.charts.push((
                format!("Start to exit of /bin/true ({tag}), median ms — lower is better"),
                rows.iter()
                    .filter(|r| !r.samples.is_empty())
                    .map(|r| (r.name.clone(), r.median()))
                    .collect(),
                "ms",
            ));
        }
    }
}

/// Exec of /bin/true into container `id` and Wait for it, through the API; ms.
async fn api_exec(c: &mut Client, id: &str) -> f64 {
    let process = Some(pb::Process {
        args: s(&["/bin/true"]),
        ..Default::default()
    });
    let t = Instant::now();
    let p = c
        .exec(pb::ExecRequest {
            id: id.to_owned(),
            exec_id: String::new(),
            process,
            start: true,
        })
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();
    c.wait(pb::WaitRequest {
        id: id.to_owned(),
        exec_id: p.exec_id,
    })
    .await
    .unwrap();
    ms(t.elapsed())
}

async fn exec_latency(env: &mut Env, rounds: usize, report: &mut Report) {
    let mut c = env.daemon.client().await;
    let names = ["execdriver: gRPC Exec+Wait", "runc exec", "crun exec"];
    let mut rows: Vec<Row> = names.iter().map(|n| Row::new(*n, "ms")).collect();
    let req = env.our_request(&["sleep", "100000"], true);
    let id = req.id.clone();
    c.run(req).await.unwrap();
    let runc_root = env.path("runc-root");
    let crun_root = env.path("crun-root");
    let sleep_bundle = env.path("bundle-sleep");
    if env.runc {
        let _ = Command::new("runc")
            .args([
                "--root",
                &runc_root,
                "run",
                "-d",
                "-b",
                &sleep_bundle,
                "edb-runc-idle",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if let Some(r) = env.crun.as_mut() {
        r.time(
            "run",
            1,
            &s(&[
                "crun",
                "--root",
                &crun_root,
                "run",
                "-d",
                "-b",
                &sleep_bundle,
                "edb-crun-idle",
            ]),
        );
    }
    for round in 0..rounds {
        for peer in order(round, names.len()) {
            tokio::time::sleep(SETTLE).await;
            match peer {
                0 => rows[0].samples.push(api_exec(&mut c, &id).await),
                1 if env.runc => {
                    if let Some(d) = time_cmd(&s(&[
                        "runc",
                        "--root",
                        &runc_root,
                        "exec",
                        "edb-runc-idle",
                        "/bin/true",
                    ])) {
                        rows[1].samples.push(ms(d));
                    }
                }
                2 => {
                    if let Some(r) = env.crun.as_mut() {
                        let (d, failed) = r.time(
                            "run",
                            1,
                            &s(&[
                                "crun",
                                "--root",
                                &crun_root,
                                "exec",
                                "edb-crun-idle",
                                "/bin/true",
                            ]),
                        );
                        if failed == 0 {
                            rows[2].samples.push(ms(d));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
    if env.runc {
        let _ = Command::new("runc")
            .args(["--root", &runc_root, "delete", "-f", "edb-runc-idle"])
            .status();
    }
    if let Some(r) = env.crun.as_mut() {
        r.time(
            "run",
            1,
            &s(&[
                "crun",
                "--root",
                &crun_root,
                "delete",
                "-f",
                "edb-crun-idle",
            ]),
        );
    }
    report.table(
        &format!(
            "Exec of /bin/true into a running container ({rounds} rounds, shuffled, {} ms apart)",
            SETTLE.as_millis()
        ),
        &rows,
        Some(names[0]),
    );
    report.charts.push((
        "Exec latency, median ms — lower is better".into(),
        rows.iter()
            .filter(|r| !r.samples.is_empty())
            .map(|r| (r.name.clone(), r.median()))
            .collect(),
        "ms",
    ));
}

async fn many(env: &mut Env, n: usize, report: &mut Report) {
    let c = env.daemon.client().await;
    let mut rows = Vec::new();
    // Ours, one after another and all at once.
    let t = Instant::now();
    let mut cc = c.clone();
    for _ in 0..n {
        api_run_to_exit(&mut cc, env.our_request(&["/bin/true"], true)).await;
    }
    let seq = t.elapsed();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut cc = c.clone();
        let req = env.our_request(&["/bin/true"], true);
        tasks.push(tokio::spawn(
            async move { api_run_to_exit(&mut cc, req).await },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let par = t.elapsed();
    let mut row = |name: &str, d: Duration| {
        let mut r = Row::new(format!("{name}: total"), "ms");
        r.samples.push(ms(d));
        rows.push(r);
        let mut r = Row::new(format!("{name}: per container"), "ms");
        r.samples.push(ms(d) / n as f64);
        rows.push(r);
    };
    row(&format!("execdriver gRPC, {n} in a row"), seq);
    row(&format!("execdriver gRPC, {n} at once"), par);
    let bundle = env.path("bundle-net");
    if env.runc {
        let argv = s(&[
            "runc",
            "--root",
            &env.path("runc-root"),
            "run",
            "-b",
            &bundle,
            "edb-many-{i}",
        ]);
        let (d, _) = run_timed("seq", n, &argv);
        row(&format!("runc run, {n} in a row"), d);
        let (d, _) = run_timed("par", n, &argv);
        row(&format!("runc run, {n} at once"), d);
    }
    let crun_root = env.path("crun-root");
    if let Some(r) = env.crun.as_mut() {
        let argv = s(&[
            "crun",
            "--root",
            &crun_root,
            "run",
            "-b",
            &bundle,
            "edb-many-{i}",
        ]);
        let (d, _) = r.time("seq", n, &argv);
        row(&format!("crun run, {n} in a row"), d);
        let (d, _) = r.time("par", n, &argv);
        row(&format!("crun run, {n} at once"), d);
    }
    report.table(
        &format!("{n} containers of /bin/true, one after another and all at once (with NEWNET)"),
        &rows,
        None,
    );
}

fn smaps(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (field("Rss:") / 1024.0, field("Pss:") / 1024.0)
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

async fn memory(env: &mut Env, report: &mut Report) {
    let mut c = env.daemon.client().await;
    let mut rows = Vec::new();
    let add = |name: &str, (rss, pss): (f64, f64), rows: &mut Vec<Row>| {
        let mut r = Row::new(format!("{name}: RSS"), "MiB");
        r.samples.push(rss);
        rows.push(r);
        let mut r = Row::new(format!("{name}: PSS"), "MiB");
        r.samples.push(pss);
        rows.push(r);
    };
    // Our shim, for an idle container.
    let req = env.our_request(&["sleep", "100000"], true);
    let id = req.id.clone();
    let st = c.run(req).await.unwrap().into_inner().container.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ours = smaps(st.shim_pid as u32);
    add("execdriver-shim (idle sleep container)", ours, &mut rows);
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
    // containerd's shim.
    let mut shim_v2 = (f64::NAN, f64::NAN);
    if let Some(ctrd) = &env.containerd {
        let argv = ctrd.ctr(&[
            "run",
            "-d",
            "--rootfs",
            env.rootfs.to_str().unwrap(),
            "edb-idle",
            "/bin/sleep",
            "100000",
        ]);
        if time_cmd(&argv).is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let out = Command::new(&argv[0])
                .args(&ctrd.ctr(&["task", "ls"])[1..])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let pid: Option<u32> = text
                .lines()
                .find(|l| l.starts_with("edb-idle"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
            if let Some(shim) = pid.and_then(ppid) {
                if let Ok(mut v) = ctrd.shims.lock() {
                    v.push(shim);
                }
                shim_v2 = smaps(shim);
                add(
                    "containerd-shim-runc-v2 (idle sleep container)",
                    shim_v2,
                    &mut rows,
                );
            }
        }
    }
    // conmon supervising runc.
    let mut conmon = (f64::NAN, f64::NAN);
    if env.conmon {
        let dir = env.tmp.path.join("conmon");
        std::fs::create_dir_all(dir.join("exits")).unwrap();
        std::fs::create_dir_all(dir.join("socks")).unwrap();
        let runc_root = env.path("runc-root");
        let bundle = env.path("bundle-sleep");
        let ok = Command::new("conmon")
            .args([
                "--api-version",
                "1",
                "-c",
                "edb-conmon",
                "-u",
                "edb-conmon",
                "-r",
            ])
            .arg(which("runc"))
            .args(["-b", &bundle, "-p"])
            .arg(dir.join("pid"))
            .args(["-n", "edb-conmon", "--exit-dir"])
            .arg(dir.join("exits"))
            .arg("--socket-dir-path")
            .arg(dir.join("socks"))
            .arg("-l")
            .arg(format!("k8s-file:{}", dir.join("log").display()))
            .args(["--log-level", "error", "--conmon-pidfile"])
            .arg(dir.join("conmon.pid"))
            .arg(format!("--runtime-arg=--root={runc_root}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let _ = Command::new("runc")
                .args(["--root", &runc_root, "start", "edb-conmon"])
                .status();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Some(pid) = std::fs::read_to_string(dir.join("conmon.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                conmon = smaps(pid);
                add("conmon (idle sleep container, runc)", conmon, &mut rows);
            }
            let _ = Command::new("runc")
                .args(["--root", &runc_root, "delete", "-f", "edb-conmon"])
                .status();
        }
    }
    // The driver with 0 and 100 containers.
    let daemon_pid = env.daemon.pid().unwrap();
    add(
        "execdriverd with 0 containers",
        smaps(daemon_pid),
        &mut rows,
    );
    let mut ids = Vec::new();
    for _ in 0..100 {
        let req = env.our_request(&["sleep", "100000"], true);
        ids.push(req.id.clone());
        c.run(req).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    add(
        "execdriverd with 100 running containers",
        smaps(daemon_pid),
        &mut rows,
    );
    for id in ids {
        c.delete(pb::DeleteRequest { id, force: true })
            .await
            .unwrap();
    }
    report.table(
        "Memory per running container (the supervisor's footprint) and the driver's",
        &rows,
        None,
    );
    if shim_v2.0.is_finite() {
        report.target(
            "execdriver-shim RSS / containerd-shim-runc-v2 RSS",
            ours.0 / shim_v2.0,
            1.0 / 3.0,
            true,
        );
    }
    if conmon.0.is_finite() {
        report.target(
            "execdriver-shim RSS / conmon RSS",
            ours.0 / conmon.0,
            1.0,
            true,
        );
    }
    let mut bars = vec![("execdriver-shim".to_string(), ours.0)];
    if conmon.0.is_finite() {
        bars.push(("conmon".into(), conmon.0));
    }
    if shim_v2.0.is_finite() {
        bars.push(("containerd-shim-runc-v2".into(), shim_v2.0));
    }
    report.charts.push((
        "Supervisor RSS per idle container, MiB — lower is better".into(),
        bars,
        "MiB",
    ));
}

fn which(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const THROUGHPUT_BYTES: u64 = 1 << 30;
/// Writes THROUGHPUT_BYTES to stdout in 64 KiB writes (busybox, on the host and inside).
const PRODUCER: &str = "dd if=/dev/zero bs=64k count=16384 2>/dev/null";

/// Reads everything a command writes to stdout through a plain pipe; returns MB/s.
fn host_pipe(rootfs: &Path) -> f64 {
    let start = Instant::now();
    let mut child = Command::new(rootfs.join("bin/busybox"))
        .args(["sh", "-c", PRODUCER])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    child.wait().unwrap();
    assert_eq!(total, THROUGHPUT_BYTES);
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// The same output from a container to an attached gRPC client; MB/s.
async fn container_attach(env: &Env, c: &mut Client) -> f64 {
    let req = env.our_request(&["sh", "-c", PRODUCER], true);
    let id = req.id.clone();
    c.create(req).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let start_msg = pb::AttachStart {
        id: id.clone(),
        stdin: false,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(start_msg)),
    })
    .await
    .unwrap();
    let mut stream = c
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let start = Instant::now();
    c.start(pb::StartRequest {
        id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut total = 0u64;
    while let Some(msg) = stream.next().await {
        match msg.unwrap().kind {
            Some(pb::attach_response::Kind::Output(o)) => total += o.data.len() as u64,
            Some(pb::attach_response::Kind::Exit(_)) => break,
            None => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(tx);
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
    assert_eq!(total, THROUGHPUT_BYTES);
    total as f64 / secs / 1e6
}

/// The same output from a container with nobody attached: the shim writes it to the log only.
async fn container_log(env: &Env, c: &mut Client) -> f64 {
    let req = env.our_request(&["sh", "-c", PRODUCER], true);
    let start = Instant::now();
    let [_, _, _] = api_phases(c, req).await;
    THROUGHPUT_BYTES as f64 / start.elapsed().as_secs_f64() / 1e6
}

async fn throughput(env: &mut Env, rounds: usize, report: &mut Report) {
    let mut c = env.daemon.client().await;
    let mut pipe = Row::new("plain host pipe", "MB/s");
    let mut attach = Row::new(
        "container -> shim -> driver -> attached gRPC client (and the log)",
        "MB/s",
    );
    let mut log = Row::new("container -> shim -> log (nobody attached)", "MB/s");
    for _ in 0..rounds {
        pipe.samples.push(host_pipe(&env.rootfs));
        log.samples.push(container_log(env, &mut c).await);
        attach.samples.push(container_attach(env, &mut c).await);
    }
    let rows = vec![pipe, log, attach];
    report.table(
        &format!(
            "stdout throughput, {} MiB per run, {rounds} runs",
            THROUGHPUT_BYTES >> 20
        ),
        &rows,
        None,
    );
    report.target(
        "attached client / plain pipe",
        rows[2].median() / rows[0].median(),
        0.5,
        false,
    );
    report.charts.push((
        "stdout throughput, median MB/s — higher is better".into(),
        vec![
            ("plain host pipe".into(), rows[0].median()),
            ("execdriver, log only".into(), rows[1].median()),
            ("execdriver attach".into(), rows[2].median()),
        ],
        "MB/s",
    ));
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--crun-runner") {
        crun_runner();
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut env = Env::new();
    let mut report = Report {
        text: String::new(),
        charts: Vec::new(),
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    report.line(&format!(
        "# execdriver benchmarks\n\nKernel {}, {cpus} CPUs. Peers: {}.",
        kernel.trim(),
        ["runc", "crun", "containerd", "conmon"]
            .iter()
            .map(|p| {
                let v = Command::new(p).arg("--version").output().ok().map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned()
                });
                format!("{p} ({})", v.unwrap_or_else(|| "missing".into()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if want("start") {
        migration_cost(rounds, &mut report);
        rt.block_on(start_latency(&mut env, rounds, &mut report));
    }
    if want("exec") {
        rt.block_on(exec_latency(&mut env, rounds, &mut report));
    }
    if want("many") {
        rt.block_on(many(&mut env, 100, &mut report));
    }
    if want("memory") {
        rt.block_on(memory(&mut env, &mut report));
    }
    if want("throughput") {
        rt.block_on(throughput(&mut env, 5, &mut report));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::write(root.join("bench-results.md"), &report.text).unwrap();
    // The chart the README shows is redrawn only by a run of every section.
    if args.is_empty() && !report.charts.is_empty() {
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/bench.svg"), svg(&report.charts)).unwrap();
        println!("\nchart: docs/bench.svg; tables: bench-results.md");
    } else {
        println!("\ntables: bench-results.md (the chart is drawn by a run of every section)");
    }
    drop(env);
}
