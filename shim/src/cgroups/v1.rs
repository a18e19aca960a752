//! The cgroup v1 implementation: limits in the per-controller hierarchies (cpu, cpuset, memory,
//! blkio, pids, devices, freezer), also on a hybrid host, where the v2 directory only tracks
//! the processes (and holds the eBPF device filter with [`super::DeviceMode::Bpf`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::stats::{self, CpuStats, MemoryStats, PidsStats, Stats};
use super::{bpf, devices, read, read_u64, wait_until, write, Cgroup, Error, Manager, OomWatch};
use super::{Result, UNLIMITED_TEXT};
use crate::config::Cgroups;

pub struct V1 {
    cg: Cgroup,
    /// Device rules as an eBPF filter on the v2 directory instead of devices.allow.
    bpf_devices: bool,
}

/// How long freezing may take before it is given up (and the cgroup thawed again).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

impl V1 {
    pub fn new(cg: Cgroup, bpf_devices: bool) -> V1 {
        V1 { cg, bpf_devices }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.cg.v1_dir(controller)
    }

    /// The directory of `controller`, or an error naming the field that needs it.
    fn need(&self, controller: &str, field: &str) -> Result<&Path> {
        if self.cg.shares(controller) {
            return Err(Error::Unsupported(format!(
                "cgroups.{field}: the container shares its parent's {controller} cgroup \
                 (share_parent; execdriverd --cgroups-when-limited): a {controller} limit needs \
                 a {controller} cgroup of its own, which only a create makes"
            )));
        }
        self.dir(controller).ok_or_else(|| {
            Error::Unsupported(format!(
                "cgroups.{field}: the {controller} controller is not mounted on this host"
            ))
        })
    }

    /// Memory and memory+swap, written in the order the kernel accepts: it requires
    /// memory <= memory+swap at every moment.
    fn set_memory(&self, r: &Cgroups) -> Result<()> {
        if r.memory == 0 && r.memory_swap == 0 {
            return Ok(());
        }
        let field = if r.memory != 0 {
            "memory"
        } else {
            "memory_swap"
        };
        let dir = self.need("memory", field)?;
        let mem_file = dir.join("memory.limit_in_bytes");
        let sw_file = dir.join("memory.memsw.limit_in_bytes");
        let has_swap_accounting = sw_file.exists();
        let cur_mem = read_u64(&mem_file).unwrap_or(u64::MAX);
        let cur_sw = read_u64(&sw_file).unwrap_or(u64::MAX);
        let as_limit = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
        if r.memory_swap == 0 {
            if has_swap_accounting && as_limit(r.memory) > cur_sw {
                return Err(Error::Invalid {
                    field: "cgroups.memory".into(),
                    reason: format!(
                        "{} is above the memory+swap limit in force ({cur_sw}); set memory_swap too",
                        r.memory
                    ),
                });
            }
            return write(&mem_file, &limit_text(r.memory));
        }
        if !has_swap_accounting {
            return Err(Error::Unsupported(
                "cgroups.memory_swap: this kernel does not account swap (memory.memsw.* is missing; boot with swapaccount=1)".into(),
            ));
        }
        let new_mem = if r.memory != 0 {
            as_limit(r.memory)
        } else {
            cur_mem
        };
        let new_sw = as_limit(r.memory_swap);
        if new_sw < new_mem {
            return Err(Error::Invalid {
                field: "cgroups.memory_swap".into(),
                reason: format!("{} is below the memory limit {new_mem}", r.memory_swap),
            });
        }
        if new_sw >= cur_mem {
            write(&sw_file, &limit_text(r.memory_swap))?;
            if r.memory != 0 {
                write(&mem_file, &limit_text(r.memory))?;
            }
        } else {
            if r.memory != 0 {
                write(&mem_file, &limit_text(r.memory))?;
            }
            write(&sw_file, &limit_text(r.memory_swap))?;
        }
        Ok(())
    }

    fn freezer_state(&self, dir: &Path) -> String {
        std::fs::read_to_string(dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    fn memory_stats(&self, dir: &Path) -> MemoryStats {
        let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        let stat = stats::parse_keyed(&stat);
        let get = |k: &str| stat.get(k).copied();
        let num = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let usage = num("memory.usage_in_bytes");
        let memsw = num("memory.memsw.usage_in_bytes");
        MemoryStats {
            usage,
            limit: read_u64(&dir.join("memory.limit_in_bytes")).unwrap_or(0),
            max_usage: num("memory.max_usage_in_bytes"),
            cache: get("total_cache").or(get("cache")).unwrap_or(0),
            rss: get("total_rss").or(get("rss")).unwrap_or(0),
            swap_usage: memsw.saturating_sub(usage),
            failcnt: num("memory.failcnt"),
            oom_kills: self.oom_kills().unwrap_or(0),
        }
    }

    fn cpu_stats(&self) -> CpuStats {
        let mut s = CpuStats::default();
        if let Some(dir) = self.dir("cpuacct") {
            let num = |f: &str| {
                std::fs::read_to_string(dir.join(f))
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
            };
            // One sample of every figure (cpuacct.usage_all: per CPU, user and system), so that
            // user + system is the total. Files read one after another would each be a later
            // moment's, and user + system could exceed the total read first.
            let all = std::fs::read_to_string(dir.join("cpuacct.usage_all")).ok();
            match all.as_deref().and_then(parse_usage_all) {
                Some((u, k)) => (s.user_ns, s.system_ns, s.usage_ns) = (u, k, u + k),
                None => {
                    match (num("cpuacct.usage_user"), num("cpuacct.usage_sys")) {
                        (Some(u), Some(k)) => (s.user_ns, s.system_ns) = (u, k),
                        _ => {
                            // Older kernels: cpuacct.stat in USER_HZ (100 per second) ticks.
                            let t = std::fs::read_to_string(dir.join("cpuacct.stat"))
                                .unwrap_or_default();
                            let t = stats::parse_keyed(&t);
                            s.user_ns = t.get("user").copied().unwrap_or(0) * 10_000_000;
                            s.system_ns = t.get("system").copied().unwrap_or(0) * 10_000_000;
                        }
                    }
                    // Read after its parts, the total is at least their sum; the tick-based
                    // parts are rounded, so hold the rule for them too.
                    s.usage_ns = num("cpuacct.usage")
                        .unwrap_or(0)
                        .max(s.user_ns + s.system_ns);
                }
            }
        }
        if let Some(dir) = self.dir("cpu") {
            let t = std::fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default();
            let t = stats::parse_keyed(&t);
            s.periods = t.get("nr_periods").copied().unwrap_or(0);
            s.throttled_periods = t.get("nr_throttled").copied().unwrap_or(0);
            s.throttled_ns = t.get("throttled_time").copied().unwrap_or(0);
        }
        s
    }
}

/// `cpuacct.usage_all` ("cpu user system" then a line per CPU): the user and system sums.
fn parse_usage_all(text: &str) -> Option<(u64, u64)> {
    let mut lines = text.lines();
    if !lines.next()?.starts_with("cpu") {
        return None;
    }
    let (mut user, mut system) = (0u64, 0u64);
    for line in lines {
        let mut f = line.split_whitespace();
        let (_cpu, u, k) = (f.next()?, f.next()?, f.next()?);
        user = user.saturating_add(u.parse().ok()?);
        system = system.saturating_add(k.parse().ok()?);
    }
    Some((user, system))
}

/// A v1 limit as written: -1 stays -1 (unlimited).
fn limit_text(v: i64) -> String {
    v.to_string()
}

impl Manager for V1 {
    fn cgroup(&self) -> &Cgroup {
        &self.cg
    }

    fn version(&self) -> &'static str {
        "v1"
    }

    fn set(&self, r: &Cgroups) -> Result<()> {
        if r.cpu_shares != 0 {
            write(
                &self.need("cpu", "cpu_shares")?.join("cpu.shares"),
                &r.cpu_shares.to_string(),
            )?;
        }
        if r.cpu_period != 0 {
            write(
                &self.need("cpu", "cpu_period")?.join("cpu.cfs_period_us"),
                &r.cpu_period.to_string(),
            )?;
        }
        if r.cpu_quota != 0 {
            write(
                &self.need("cpu", "cpu_quota")?.join("cpu.cfs_quota_us"),
                &r.cpu_quota.to_string(),
            )?;
        }
        if !r.cpuset_cpus.is_empty() {
            write(
                &self.need("cpuset", "cpuset_cpus")?.join("cpuset.cpus"),
                &r.cpuset_cpus,
            )?;
        }
        if !r.cpuset_mems.is_empty() {
            write(
                &self.need("cpuset", "cpuset_mems")?.join("cpuset.mems"),
                &r.cpuset_mems,
            )?;
        }
        self.set_memory(r)?;
        if r.memory_reservation != 0 {
            write(
                &self
                    .need("memory", "memory_reservation")?
                    .join("memory.soft_limit_in_bytes"),
                &limit_text(r.memory_reservation),
            )?;
        }
        if r.blkio_weight != 0 {
            let dir = self.need("blkio", "blkio_weight")?;
            // CFQ's blkio.weight is gone from current kernels; BFQ's takes the same range.
            let file = ["blkio.weight", "blkio.bfq.weight"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    Error::Unsupported(
                        "cgroups.blkio_weight: no blkio.weight or blkio.bfq.weight (no proportional I/O scheduler)".into(),
                    )
                })?;
            write(&file, &r.blkio_weight.to_string())?;
        }
        if r.pids_limit != 0 {
            let v = if r.pids_limit < 0 {
                UNLIMITED_TEXT.to_owned()
            } else {
                r.pids_limit.to_string()
            };
            write(&self.need("pids", "pids_limit")?.join("pids.max"), &v)?;
        }
        super::extras::set_v1(&self.cg, r)
    }

    fn set_devices(&self, r: &Cgroups) -> Result<()> {
        let rules = devices::rules_for(r);
        if self.bpf_devices {
            let dir = self.cg.v2_dir().ok_or_else(|| {
                Error::Unsupported("the eBPF device filter needs the cgroup v2 hierarchy".into())
            })?;
            return bpf::attach(dir, &rules);
        }
        let Some(dir) = self.dir("devices") else {
            if r.device_access {
                return Ok(());
            }
            return Err(Error::Unsupported(
                "cgroups.devices: the devices controller is not mounted on this host".into(),
            ));
        };
        if r.device_access {
            return write(&dir.join("devices.allow"), "a");
        }
        write(&dir.join("devices.deny"), "a")?;
        for rule in &rules {
            let file = if rule.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(&dir.join(file), &rule.v1_line())?;
        }
        Ok(())
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats {
            read_at: crate::state::now_ns(),
            cpu: Some(self.cpu_stats()),
            ..Default::default()
        };
        if let Some(dir) = self.dir("memory") {
            s.memory = Some(self.memory_stats(dir));
        }
        if let Some(dir) = self.dir("pids") {
            s.pids = Some(PidsStats {
                current: read_u64(&dir.join("pids.current")).unwrap_or(0),
                limit: read_u64(&dir.join("pids.max")).unwrap_or(0),
            });
        }
        if let Some(dir) = self.dir("blkio") {
            let file = [
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes",
            ]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.exists());
            if let Some(file) = file {
                s.blkio = Some(stats::parse_v1_blkio(&read(&file)?));
            }
        }
        Ok(s)
    }

    fn freeze(&self) -> Result<()> {
        let Some(dir) = self.dir("freezer") else {
            return match self.cg.v2_dir() {
                // No v1 freezer: the v2 directory has cgroup.freeze (hybrid hosts).
                Some(v2) => super::v2::freeze_dir(v2),
                None => Err(Error::Unsupported(
                    "the freezer controller is not mounted on this host".into(),
                )),
            };
        };
        let dir: PathBuf = dir.to_owned();
        write(&dir.join("freezer.state"), "FROZEN")?;
        // FREEZING turns into FROZEN once every task has stopped; asking again nudges tasks
        // that were forking meanwhile.
        let frozen = wait_until(FREEZE_TIMEOUT, || {
            if self.freezer_state(&dir) == "FROZEN" {
                return true;
            }
            let _ = write(&dir.join("freezer.state"), "FROZEN");
            false
        });
        if !frozen {
            let _ = write(&dir.join("freezer.state"), "THAWED");
            return Err(Error::Freeze(format!(
                "still {} after {FREEZE_TIMEOUT:?}",
                self.freezer_state(&dir)
            )));
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        match self.dir("freezer") {
            Some(dir) => write(&dir.join("freezer.state"), "THAWED"),
            None => match self.cg.v2_dir() {
                Some(v2) if v2.join("cgroup.freeze").exists() => {
                    write(&v2.join("cgroup.freeze"), "0")
                }
                _ => Ok(()),
            },
        }
    }

    fn oom_kills(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.dir("memory")?.join("memory.oom_control")).ok()?;
        stats::parse_keyed(&text).get("oom_kill").copied()
    }

    fn watch_oom(&self) -> Result<Option<OomWatch>> {
        match self.dir("memory") {
            Some(dir) => super::oom_eventfd(dir).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Hierarchy, Layout};
    use super::*;
    use std::fs;

    /// A tempdir standing for /sys/fs/cgroup with the v1 hierarchies as directories.
    struct FakeRoot(PathBuf);

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn fake_v1(controllers: &[&str]) -> (FakeRoot, Layout) {
        // Unique per call: tests asking for the same controllers run at once.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "edcg-v1-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            controllers.join("-")
        ));
        let _ = fs::remove_dir_all(&root);
        let mut hierarchies = Vec::new();
        for c in controllers {
            let m = root.join(c);
            fs::create_dir_all(&m).unwrap();
            hierarchies.push(Hierarchy {
                mountpoint: m,
                controllers: vec![c.to_string()],
                v2: false,
            });
        }
        (FakeRoot(root), Layout { hierarchies })
    }

    fn get(root: &Path, rel: &str) -> String {
        fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    #[test]
    fn a_shared_memory_cgroup_is_joined_never_owned() {
        let (root, layout) = fake_v1(&["cpu", "memory", "pids"]);
        let cg = Cgroup::new(&layout, "p", "c")
            .unwrap()
            .sharing(&["memory".into()]);
        assert!(cg.shares("memory") && !cg.shares("cpu"));
        cg.create().unwrap();
        assert!(root.0.join("cpu/p/c").is_dir() && root.0.join("pids/p/c").is_dir());
        assert!(root.0.join("memory/p").is_dir() && !root.0.join("memory/p/c").exists());
        // Processes join the parent's memory cgroup too.
        cg.add(nix::unistd::Pid::from_raw(4242)).unwrap();
        assert_eq!(get(&root.0, "memory/p/cgroup.procs"), "4242");
        assert_eq!(get(&root.0, "cpu/p/c/cgroup.procs"), "4242");
        // A memory limit needs a cgroup of its own; stats have no memory block.
        let m = V1::new(cg.clone(), false);
        let e = m
            .set(&Cgroups {
                name: "c".into(),
                memory: 32 << 20,
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("cgroups.memory") && e.contains("share"), "{e}");
        assert!(m.stats().unwrap().memory.is_none());
        // Removal leaves the shared cgroup (and what is in it) alone.
        fs::remove_file(root.0.join("cpu/p/c/cgroup.procs")).unwrap();
        fs::remove_file(root.0.join("pids/p/c/cgroup.procs")).unwrap();
        cg.destroy().unwrap();
        assert!(!root.0.join("cpu/p/c").exists());
        assert_eq!(get(&root.0, "memory/p/cgroup.procs"), "4242");
        // Without a memory hierarchy of its own, sharing changes nothing.
        let (_r2, l2) = fake_v1(&["cpu"]);
        assert!(!Cgroup::new(&l2, "p", "c")
            .unwrap()
            .sharing(&["memory".into()])
            .shares("memory"));
    }

    #[test]
    fn writes_v1_limits() {
        let (root, layout) = fake_v1(&["cpu", "cpuset", "memory", "blkio", "pids"]);
        fs::create_dir_all(root.0.join("cpuset")).unwrap();
        fs::write(root.0.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        fs::write(root.0.join("cpuset/cpuset.mems"), "0\n").unwrap();
        let cg = Cgroup::new(&layout, "p", "c").unwrap();
        cg.create().unwrap();
        // The files a real memory and blkio cgroup has.
        fs::write(
            root.0.join("memory/p/c/memory.memsw.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        fs::write(
            root.0.join("memory/p/c/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        fs::write(root.0.join("blkio/p/c/blkio.bfq.weight"), "100\n").unwrap();
        // The cpuset parents inherited the root's.
        assert_eq!(get(&root.0, "cpuset/p/cpuset.cpus"), "0-1");
        assert_eq!(get(&root.0, "cpuset/p/c/cpuset.mems"), "0");
        let m = V1::new(cg, false);
        let r = Cgroups {
            name: "c".into(),
            memory: 32 << 20,
            memory_swap: 64 << 20,
            memory_reservation: 16 << 20,
            cpu_shares: 512,
            cpu_quota: 20_000,
            cpu_period: 100_000,
            cpuset_cpus: "1".into(),
            cpuset_mems: "0".into(),
            blkio_weight: 300,
            pids_limit: 20,
            ..Default::default()
        };
        m.set(&r).unwrap();
        for (file, value) in [
            ("memory/p/c/memory.limit_in_bytes", "33554432"),
            ("memory/p/c/memory.memsw.limit_in_bytes", "67108864"),
            ("memory/p/c/memory.soft_limit_in_bytes", "16777216"),
            ("cpu/p/c/cpu.shares", "512"),
            ("cpu/p/c/cpu.cfs_quota_us", "20000"),
            ("cpu/p/c/cpu.cfs_period_us", "100000"),
            ("cpuset/p/c/cpuset.cpus", "1"),
            ("cpuset/p/c/cpuset.mems", "0"),
            ("blkio/p/c/blkio.bfq.weight", "300"),
            ("pids/p/c/pids.max", "20"),
        ] {
            assert_eq!(get(&root.0, file), value, "{file}");
        }
        // Unlimited values.
        let r = Cgroups {
            memory: -1,
            memory_swap: -1,
            cpu_quota: -1,
            pids_limit: -1,
            ..Default::default()
        };
        m.set(&r).unwrap();
        assert_eq!(get(&root.0, "memory/p/c/memory.limit_in_bytes"), "-1");
        assert_eq!(get(&root.0, "memory/p/c/memory.memsw.limit_in_bytes"), "-1");
        assert_eq!(get(&root.0, "cpu/p/c/cpu.cfs_quota_us"), "-1");
        assert_eq!(get(&root.0, "pids/p/c/pids.max"), "max");
    }

    #[test]
    fn memory_above_the_swap_limit_is_refused_clearly() {
        let (root, layout) = fake_v1(&["memory"]);
        let cg = Cgroup::new(&layout, "p", "c").unwrap();
        cg.create().unwrap();
        fs::write(
            root.0.join("memory/p/c/memory.memsw.limit_in_bytes"),
            "67108864\n",
        )
        .unwrap();
        let m = V1::new(cg, false);
        let err = m
            .set(&Cgroups {
                memory: 128 << 20,
                ..Default::default()
            })
            .unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "cgroups.memory"),
            "{err}"
        );
        assert!(err.is_invalid());
    }

    #[test]
    fn missing_controller_names_the_field() {
        let (_root, layout) = fake_v1(&["memory"]);
        let cg = Cgroup::new(&layout, "p", "c").unwrap();
        cg.create().unwrap();
        let m = V1::new(cg, false);
        let err = m
            .set(&Cgroups {
                pids_limit: 5,
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().starts_with("cgroups.pids_limit:"), "{err}");
    }

    #[test]
    fn device_rules_deny_all_then_allow() {
        let (root, layout) = fake_v1(&["devices"]);
        let cg = Cgroup::new(&layout, "p", "c").unwrap();
        cg.create().unwrap();
        let m = V1::new(cg, false);
        m.set_devices(&Cgroups::default()).unwrap();
        assert_eq!(get(&root.0, "devices/p/c/devices.deny"), "a");
        // Each rule is one write; a plain file keeps the last.
        assert_eq!(get(&root.0, "devices/p/c/devices.allow"), "c 136:* rwm");
        m.set_devices(&Cgroups {
            device_access: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(get(&root.0, "devices/p/c/devices.allow"), "a");
    }

    #[test]
    fn cpu_user_and_system_never_exceed_the_total() {
        let (root, layout) = fake_v1(&["cpuacct"]);
        let cg = Cgroup::new(&layout, "p", "c").unwrap();
        cg.create().unwrap();
        let w = |f: &str, v: &str| fs::write(root.0.join(f), v).unwrap();
        // Files sampled at different moments: the total read first is behind its parts.
        w("cpuacct/p/c/cpuacct.usage", "4000\n");
        w("cpuacct/p/c/cpuacct.usage_user", "3000\n");
        w("cpuacct/p/c/cpuacct.usage_sys", "2000\n");
        let m = V1::new(cg, false);
        let s = m.cpu_stats();
        assert_eq!((s.user_ns, s.system_ns, s.usage_ns), (3000, 2000, 5000));
        // One sample of all: the total is its parts' sum.
        w(
            "cpuacct/p/c/cpuacct.usage_all",
            "cpu user system\n0 100 10\n1 200 20\n",
        );
        let s = m.cpu_stats();
        assert_eq!((s.user_ns, s.system_ns, s.usage_ns), (300, 30, 330));
        assert_eq!(parse_usage_all("garbage"), None);
    }

    #[test]
    fn reads_v1_stats() {
        let (root, layout) = fake_v1(&["cpu", "cpuacct", "memory", "pids", "blkio"]);
        let cg = Cgroup::new(&layout, "p", "c").unwrap();
        cg.create().unwrap();
        let w = |f: &str, v: &str| fs::write(root.0.join(f), v).unwrap();
        w("cpuacct/p/c/cpuacct.usage", "5000000000\n");
        w("cpuacct/p/c/cpuacct.usage_user", "3000000000\n");
        w("cpuacct/p/c/cpuacct.usage_sys", "2000000000\n");
        w(
            "cpu/p/c/cpu.stat",
            "nr_periods 10\nnr_throttled 4\nthrottled_time 123\n",
        );
        w("memory/p/c/memory.usage_in_bytes", "1000\n");
        w("memory/p/c/memory.memsw.usage_in_bytes", "1500\n");
        w("memory/p/c/memory.limit_in_bytes", "33554432\n");
        w("memory/p/c/memory.max_usage_in_bytes", "2000\n");
        w("memory/p/c/memory.failcnt", "7\n");
        w(
            "memory/p/c/memory.stat",
            "cache 1\nrss 2\ntotal_cache 300\ntotal_rss 400\n",
        );
        w(
            "memory/p/c/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        w("pids/p/c/pids.current", "3\n");
        w("pids/p/c/pids.max", "max\n");
        w(
            "blkio/p/c/blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
        );
        let s = V1::new(cg, false).stats().unwrap();
        let cpu = s.cpu.unwrap();
        assert_eq!(
            (cpu.usage_ns, cpu.user_ns, cpu.system_ns),
            (5_000_000_000, 3_000_000_000, 2_000_000_000)
        );
        assert_eq!(
            (cpu.periods, cpu.throttled_periods, cpu.throttled_ns),
            (10, 4, 123)
        );
        let mem = s.memory.unwrap();
        assert_eq!(
            (
                mem.usage,
                mem.limit,
                mem.max_usage,
                mem.cache,
                mem.rss,
                mem.swap_usage,
                mem.failcnt,
                mem.oom_kills
            ),
            (1000, 32 << 20, 2000, 300, 400, 500, 7, 1)
        );
        let pids = s.pids.unwrap();
        assert_eq!((pids.current, pids.limit), (3, 0));
        let io = s.blkio.unwrap();
        assert_eq!((io.read_bytes, io.write_bytes), (10, 20));
    }
}
