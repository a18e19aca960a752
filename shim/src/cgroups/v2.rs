//! The cgroup v2 implementation: every limit in the container's directory of the unified
//! hierarchy (`memory.max`, `memory.swap.max`, `memory.low`, `cpu.weight`, `cpu.max`,
//! `cpuset.cpus`/`.mems`, `io.weight`, `pids.max`), freezing with `cgroup.freeze`, killing with
//! `cgroup.kill`, OOM kills from `memory.events`, devices with an eBPF program.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::stats::{self, CpuStats, MemoryStats, PidsStats, Stats};
use super::UNLIMITED_TEXT;
use super::{bpf, devices, read_u64, wait_until, write, Cgroup, Error, Manager, OomWatch, Result};
use crate::config::Cgroups;

pub struct V2 {
    cg: Cgroup,
    dir: PathBuf,
}

const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

impl V2 {
    pub fn new(cg: Cgroup) -> Result<V2> {
        let dir = cg.v2_dir().ok_or(Error::NoHierarchy)?.to_owned();
        Ok(V2 { cg, dir })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes a controller's file, or says which field needs the controller that is missing.
    fn set_file(&self, name: &str, value: &str, field: &str) -> Result<()> {
        let path = self.file(name);
        if !path.exists() {
            let controller = name.split('.').next().unwrap_or(name);
            return Err(Error::Unsupported(format!(
                "cgroups.{field}: the {controller} controller is not available in {}",
                self.dir.display()
            )));
        }
        write(&path, value)
    }

    fn num(&self, name: &str) -> u64 {
        std::fs::read_to_string(self.file(name))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn keyed(&self, name: &str) -> std::collections::HashMap<String, u64> {
        let text = std::fs::read_to_string(self.file(name)).unwrap_or_default();
        stats::parse_keyed(&text)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }
}

/// v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as runc and crun convert.
pub fn cpu_weight(shares: i64) -> u64 {
    let shares = shares.clamp(2, 262_144) as u64;
    1 + ((shares - 2) * 9999) / 262_142
}

/// v1 blkio weight (10..1000) to v2 io.weight (1..10000).
pub fn io_weight(weight: i64) -> u64 {
    let weight = weight.clamp(10, 1000) as u64;
    1 + ((weight - 10) * 9999) / 990
}

fn max_or(v: i64) -> String {
    if v < 0 {
        UNLIMITED_TEXT.to_owned()
    } else {
        v.to_string()
    }
}

/// Freezes a v2 directory and waits for `cgroup.events` to say `frozen 1`.
pub(crate) fn freeze_dir(dir: &Path) -> Result<()> {
    write(&dir.join("cgroup.freeze"), "1")?;
    let frozen = || {
        std::fs::read_to_string(dir.join("cgroup.events"))
            .map(|t| stats::parse_keyed(&t).get("frozen") == Some(&1))
            .unwrap_or(false)
    };
    if !wait_until(FREEZE_TIMEOUT, frozen) {
        let _ = write(&dir.join("cgroup.freeze"), "0");
        return Err(Error::Freeze(format!(
            "{} did not report frozen within {FREEZE_TIMEOUT:?}",
            dir.display()
        )));
    }
    Ok(())
}

impl Manager for V2 {
    fn cgroup(&self) -> &Cgroup {
        &self.cg
    }

    fn version(&self) -> &'static str {
        "v2"
    }

    fn set(&self, r: &Cgroups) -> Result<()> {
        if r.cpu_shares != 0 {
            self.set_file(
                "cpu.weight",
                &cpu_weight(r.cpu_shares).to_string(),
                "cpu_shares",
            )?;
        }
        if r.cpu_quota != 0 || r.cpu_period != 0 {
            // cpu.max is "QUOTA PERIOD"; keep the half that is not being set.
            let cur = std::fs::read_to_string(self.file("cpu.max")).unwrap_or_default();
            let mut cur = cur.split_whitespace();
            let cur_quota = cur.next().unwrap_or(UNLIMITED_TEXT).to_owned();
            let cur_period = cur.next().unwrap_or("100000").to_owned();
            let quota = if r.cpu_quota != 0 {
                max_or(r.cpu_quota)
            } else {
                cur_quota
            };
            let period = if r.cpu_period != 0 {
                r.cpu_period.to_string()
            } else {
                cur_period
            };
            let field = if r.cpu_quota != 0 {
                "cpu_quota"
            } else {
                "cpu_period"
            };
            self.set_file("cpu.max", &format!("{quota} {period}"), field)?;
        }
        if !r.cpuset_cpus.is_empty() {
            self.set_file("cpuset.cpus", &r.cpuset_cpus, "cpuset_cpus")?;
        }
        if !r.cpuset_mems.is_empty() {
            self.set_file("cpuset.mems", &r.cpuset_mems, "cpuset_mems")?;
        }
        // memory.swap.max is swap alone, where memory_swap is memory plus swap.
        let swap = match r.memory_swap {
            0 => None,
            v if v < 0 => Some(UNLIMITED_TEXT.to_owned()),
            v => {
                let memory = if r.memory > 0 {
                    r.memory as u64
                } else {
                    read_u64(&self.file("memory.max")).ok_or_else(|| Error::Invalid {
                        field: "cgroups.memory_swap".into(),
                        reason: "a memory+swap limit needs a memory limit".into(),
                    })?
                };
                Some((v as u64).saturating_sub(memory).to_string())
            }
        };
        // v2 keeps memory and swap apart, so their order does not matter.
        if r.memory != 0 {
            self.set_file("memory.max", &max_or(r.memory), "memory")?;
        }
        if let Some(swap) = swap {
            self.set_file("memory.swap.max", &swap, "memory_swap")?;
        }
        if r.memory_reservation != 0 {
            self.set_file(
                "memory.low",
                &max_or(r.memory_reservation),
                "memory_reservation",
            )?;
        }
        if r.blkio_weight != 0 {
            // BFQ takes the v1 range as it is; otherwise io.weight's 1..10000.
            if self.file("io.bfq.weight").exists() {
                self.set_file("io.bfq.weight", &r.blkio_weight.to_string(), "blkio_weight")?;
            } else {
                self.set_file(
                    "io.weight",
                    &io_weight(r.blkio_weight).to_string(),
                    "blkio_weight",
                )?;
            }
        }
        if r.pids_limit != 0 {
            self.set_file("pids.max", &max_or(r.pids_limit), "pids_limit")?;
        }
        super::extras::set_v2(&self.cg, &self.dir, r)
    }

    fn set_devices(&self, r: &Cgroups) -> Result<()> {
        if crate::sys::rootless() {
            // A user may not load a cgroup device program. Nothing is lost: unprivileged, the
            // container cannot make device nodes, and reaches only those bind-mounted in,
            // with the user's own permissions.
            return Ok(());
        }
        bpf::attach(&self.dir, &devices::rules_for(r))
    }

    fn stats(&self) -> Result<Stats> {
        let cpu = self.keyed("cpu.stat");
        let cpu = CpuStats {
            usage_ns: cpu.get("usage_usec").copied().unwrap_or(0) * 1000,
            user_ns: cpu.get("user_usec").copied().unwrap_or(0) * 1000,
            system_ns: cpu.get("system_usec").copied().unwrap_or(0) * 1000,
            periods: cpu.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
            throttled_ns: cpu.get("throttled_usec").copied().unwrap_or(0) * 1000,
        };
        let mut s = Stats {
            read_at: crate::state::now_ns(),
            cpu: Some(cpu),
            ..Default::default()
        };
        if self.file("memory.current").exists() {
            let stat = self.keyed("memory.stat");
            let events = self.keyed("memory.events");
            s.memory = Some(MemoryStats {
                usage: self.num("memory.current"),
                limit: read_u64(&self.file("memory.max")).unwrap_or(0),
                max_usage: self.num("memory.peak"),
                cache: stat.get("file").copied().unwrap_or(0),
                rss: stat.get("anon").copied().unwrap_or(0),
                swap_usage: self.num("memory.swap.current"),
                failcnt: events.get("max").copied().unwrap_or(0),
                oom_kills: events.get("oom_kill").copied().unwrap_or(0),
            });
        }
        if self.file("pids.current").exists() {
            s.pids = Some(PidsStats {
                current: self.num("pids.current"),
                limit: read_u64(&self.file("pids.max")).unwrap_or(0),
            });
        }
        if let Ok(text) = std::fs::read_to_string(self.file("io.stat")) {
            s.blkio = Some(stats::parse_io_stat(&text));
        }
        Ok(s)
    }

    fn freeze(&self) -> Result<()> {
        freeze_dir(&self.dir)
    }

    fn thaw(&self) -> Result<()> {
        write(&self.file("cgroup.freeze"), "0")
    }

    fn kill_all(&self, sig: Signal) -> usize {
        // cgroup.kill (5.14+) kills atomically, forks racing with it included.
        let kill = self.file("cgroup.kill");
        if sig == Signal::SIGKILL && kill.exists() {
            let n = self.cg.procs().len();
            if write(&kill, "1").is_ok() {
                return n;
            }
        }
        self.cg.signal_all(sig)
    }

    fn oom_kills(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.file("memory.events")).ok()?;
        stats::parse_keyed(&text).get("oom_kill").copied()
    }

    fn watch_oom(&self) -> Result<Option<OomWatch>> {
        if !self.file("memory.events").exists() {
            return Ok(None);
        }
        super::kernfs_watch(&self.file("memory.events")).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Hierarchy, Layout};
    use super::*;
    use std::fs;

    /// A tempdir standing for /sys/fs/cgroup on a pure v2 host: a root that offers the
    /// controllers a kernel would.
    struct FakeRoot(PathBuf);

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn fake_v2(tag: &str) -> (FakeRoot, Layout) {
        let root = std::env::temp_dir().join(format!("edcg-v2-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("parent")).unwrap();
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        fs::write(root.join("cgroup.subtree_control"), "memory\n").unwrap();
        // What the kernel shows in a child of a root that enabled them all.
        fs::write(
            root.join("parent/cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let layout = Layout {
            hierarchies: vec![Hierarchy {
                mountpoint: root.clone(),
                controllers: Vec::new(),
                v2: true,
            }],
        };
        (FakeRoot(root), layout)
    }

    fn get(root: &Path, rel: &str) -> String {
        fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Makes the interface files a real v2 directory with those controllers has.
    fn touch_interface(dir: &Path) {
        for f in [
            "cpu.weight",
            "cpu.max",
            "cpuset.cpus",
            "cpuset.mems",
            "io.weight",
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "pids.max",
            "cgroup.freeze",
            "cgroup.kill",
        ] {
            fs::write(dir.join(f), "").unwrap();
        }
        fs::write(dir.join("cpu.max"), "max 100000\n").unwrap();
    }

    fn manager(layout: &Layout) -> V2 {
        let cg = Cgroup::new(layout, "parent", "c1").unwrap();
        cg.create().unwrap();
        V2::new(cg).unwrap()
    }

    #[test]
    fn create_enables_controllers_on_every_level_above() {
        let (root, layout) = fake_v2("create");
        let m = manager(&layout);
        assert_eq!(m.dir, root.0.join("parent/c1"));
        // The root had memory already: the rest, in one write.
        assert_eq!(
            get(&root.0, "cgroup.subtree_control"),
            "+cpu +cpuset +io +pids"
        );
        assert_eq!(
            get(&root.0, "parent/cgroup.subtree_control"),
            "+cpu +cpuset +io +memory +pids"
        );
        // Never in the container's own directory (it holds processes).
        assert!(!root.0.join("parent/c1/cgroup.subtree_control").exists());
    }

    #[test]
    fn writes_v2_limits() {
        let (root, layout) = fake_v2("set");
        let m = manager(&layout);
        touch_interface(&m.dir);
        let r = Cgroups {
            name: "c1".into(),
            memory: 32 << 20,
            memory_swap: 48 << 20,
            memory_reservation: 16 << 20,
            cpu_shares: 1024,
            cpu_quota: 20_000,
            cpu_period: 50_000,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            blkio_weight: 500,
            pids_limit: 20,
            ..Default::default()
        };
        m.set(&r).unwrap();
        for (file, value) in [
            ("memory.max", "33554432"),
            ("memory.swap.max", "16777216"),
            ("memory.low", "16777216"),
            ("cpu.weight", "39"),
            ("cpu.max", "20000 50000"),
            ("cpuset.cpus", "0-1"),
            ("cpuset.mems", "0"),
            ("io.weight", "4950"),
            ("pids.max", "20"),
        ] {
            assert_eq!(get(&root.0, &format!("parent/c1/{file}")), value, "{file}");
        }
        // A live update: only what changes; unlimited is "max"; cpu.max keeps its period.
        let r = Cgroups {
            memory: -1,
            memory_swap: -1,
            cpu_quota: -1,
            pids_limit: -1,
            ..Default::default()
        };
        m.set(&r).unwrap();
        for (file, value) in [
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("cpu.max", "max 50000"),
            ("pids.max", "max"),
            ("cpuset.cpus", "0-1"),
        ] {
            assert_eq!(get(&root.0, &format!("parent/c1/{file}")), value, "{file}");
        }
        // A period alone keeps the quota in force.
        fs::write(m.file("cpu.max"), "30000 100000\n").unwrap();
        m.set(&Cgroups {
            cpu_period: 200_000,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(get(&root.0, "parent/c1/cpu.max"), "30000 200000");
        // memory_swap alone is computed against the memory limit in force.
        fs::write(m.file("memory.max"), "67108864\n").unwrap();
        m.set(&Cgroups {
            memory_swap: 100 << 20,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(get(&root.0, "parent/c1/memory.swap.max"), "37748736");
    }

    #[test]
    fn weights_convert_like_runc() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(1000), 10_000);
    }

    #[test]
    fn missing_controller_file_names_the_field() {
        let (_root, layout) = fake_v2("missing");
        let m = manager(&layout);
        let err = m
            .set(&Cgroups {
                pids_limit: 3,
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().starts_with("cgroups.pids_limit:"), "{err}");
        assert!(err.is_invalid());
    }

    #[test]
    fn freeze_thaw_and_kill_write_the_core_files() {
        let (root, layout) = fake_v2("freeze");
        let m = manager(&layout);
        touch_interface(&m.dir);
        fs::write(m.file("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        m.freeze().unwrap();
        assert_eq!(get(&root.0, "parent/c1/cgroup.freeze"), "1");
        m.thaw().unwrap();
        assert_eq!(get(&root.0, "parent/c1/cgroup.freeze"), "0");
        m.kill_all(Signal::SIGKILL);
        assert_eq!(get(&root.0, "parent/c1/cgroup.kill"), "1");
    }

    #[test]
    fn reads_v2_stats_and_oom_kills() {
        let (_root, layout) = fake_v2("stats");
        let m = manager(&layout);
        let w = |f: &str, v: &str| fs::write(m.file(f), v).unwrap();
        w(
            "cpu.stat",
            "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 7\n",
        );
        w("memory.current", "4096\n");
        w("memory.max", "max\n");
        w("memory.peak", "8192\n");
        w("memory.swap.current", "0\n");
        w("memory.stat", "anon 1000\nfile 2000\nkernel 3\n");
        w("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n");
        w("pids.current", "2\n");
        w("pids.max", "20\n");
        w(
            "io.stat",
            "8:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n",
        );
        let s = m.stats().unwrap();
        let cpu = s.cpu.unwrap();
        assert_eq!(
            (cpu.usage_ns, cpu.user_ns, cpu.system_ns),
            (5_000_000, 3_000_000, 2_000_000)
        );
        assert_eq!(
            (cpu.periods, cpu.throttled_periods, cpu.throttled_ns),
            (10, 4, 7000)
        );
        let mem = s.memory.unwrap();
        assert_eq!(
            (
                mem.usage,
                mem.limit,
                mem.max_usage,
                mem.cache,
                mem.rss,
                mem.failcnt,
                mem.oom_kills
            ),
            (4096, 0, 8192, 2000, 1000, 5, 1)
        );
        let pids = s.pids.unwrap();
        assert_eq!((pids.current, pids.limit), (2, 20));
        let io = s.blkio.unwrap();
        assert_eq!((io.read_bytes, io.write_bytes), (10, 20));
        assert_eq!(m.oom_kills(), Some(1));
        // memory.events can be watched (EPOLLPRI on a real kernfs file).
        let watch = m.watch_oom().unwrap().unwrap();
        assert_eq!(watch.epoll_flags(), nix::sys::epoll::EpollFlags::EPOLLPRI);
        watch.drain();
    }
}
