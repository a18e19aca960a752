//! The cgroup settings OCI configs add: memory swappiness, real-time CPU time, per-device block
//! I/O weights and throttles, huge page limits, and raw v2 files (`unified`). Called by the v1
//! and v2 implementations' `set`, after their own fields; a field the host cannot honour is
//! refused naming it.
//!
//! Huge pages go wherever a hugetlb controller is: a v1 hierarchy, or the v2 directory (also
//! on a hybrid host, where hugetlb is often only offered there; it is then enabled in
//! `cgroup.subtree_control` of every level above the container).

use std::path::Path;

use super::v2::io_weight;
use super::{write, Cgroup, Error, Result};
use crate::config::{BlkioDevice, Cgroups};

fn unsupported(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("cgroups.{field}: {why}"))
}

/// Writes `value` to `dir/file`, which must exist (a controller's interface file).
fn set(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let path = dir.join(file);
    if !path.exists() {
        return Err(unsupported(
            field,
            format!("{} has no {file} on this host", dir.display()),
        ));
    }
    write(&path, value)
}

/// The v1 extras.
pub(crate) fn set_v1(cg: &Cgroup, r: &Cgroups) -> Result<()> {
    let need = |controller: &str, field: &str| {
        cg.v1_dir(controller).ok_or_else(|| {
            unsupported(
                field,
                format!("the {controller} controller is not mounted on this host"),
            )
        })
    };
    if let Some(s) = r.memory_swappiness {
        let dir = need("memory", "memory_swappiness")?;
        set(
            dir,
            "memory.swappiness",
            &s.to_string(),
            "memory_swappiness",
        )?;
    }
    // The period first: the runtime must fit in it.
    if r.cpu_rt_period != 0 {
        let dir = need("cpu", "cpu_rt_period")?;
        set(
            dir,
            "cpu.rt_period_us",
            &r.cpu_rt_period.to_string(),
            "cpu_rt_period",
        )?;
    }
    if r.cpu_rt_runtime != 0 {
        let dir = need("cpu", "cpu_rt_runtime")?;
        let v = r.cpu_rt_runtime.to_string();
        set(dir, "cpu.rt_runtime_us", &v, "cpu_rt_runtime")?;
    }
    if !r.blkio_weight_devices.is_empty() {
        let dir = need("blkio", "blkio_weight_devices")?;
        let file = ["blkio.weight_device", "blkio.bfq.weight_device"]
            .into_iter()
            .find(|f| dir.join(f).exists())
            .ok_or_else(|| {
                unsupported(
                    "blkio_weight_devices",
                    "no blkio.weight_device or blkio.bfq.weight_device (no proportional I/O scheduler)",
                )
            })?;
        for d in &r.blkio_weight_devices {
            write(&dir.join(file), &device_line(d, d.value))?;
        }
    }
    for (list, file) in throttles(r) {
        if list.is_empty() {
            continue;
        }
        let dir = need("blkio", "blkio_throttle")?;
        for d in list {
            set(dir, file, &device_line(d, d.value), "blkio_throttle")?;
        }
    }
    if !r.hugepage_limits.is_empty() {
        match cg.v1_dir("hugetlb") {
            Some(dir) => {
                for h in &r.hugepage_limits {
                    let file = format!("hugetlb.{}.limit_in_bytes", h.page_size);
                    set(dir, &file, &h.limit.to_string(), "hugepage_limits")?;
                }
            }
            None => hugetlb_v2(cg, r)?,
        }
    }
    if !r.unified.is_empty() {
        let Some(dir) = cg.v2_dir() else {
            let key = r.unified.keys().next().map(String::as_str).unwrap_or("");
            return Err(unsupported(
                &format!("unified.{key}"),
                "this host has no cgroup v2 hierarchy",
            ));
        };
        unified(dir, r)?;
    }
    Ok(())
}

/// The v2 extras, in the container's directory `dir`.
pub(crate) fn set_v2(cg: &Cgroup, dir: &Path, r: &Cgroups) -> Result<()> {
    if r.memory_swappiness.is_some() {
        return Err(unsupported(
            "memory_swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if r.cpu_rt_period != 0 || r.cpu_rt_runtime != 0 {
        let field = if r.cpu_rt_period != 0 {
            "cpu_rt_period"
        } else {
            "cpu_rt_runtime"
        };
        return Err(unsupported(
            field,
            "cgroup v2 has no real-time group scheduling",
        ));
    }
    for d in &r.blkio_weight_devices {
        if dir.join("io.bfq.weight").exists() {
            set(
                dir,
                "io.bfq.weight",
                &device_line(d, d.value),
                "blkio_weight_devices",
            )?;
        } else {
            let line = device_line(d, io_weight(d.value as i64));
            set(dir, "io.weight", &line, "blkio_weight_devices")?;
        }
    }
    for (list, key) in [
        (&r.blkio_read_bps, "rbps"),
        (&r.blkio_write_bps, "wbps"),
        (&r.blkio_read_iops, "riops"),
        (&r.blkio_write_iops, "wiops"),
    ] {
        for d in list {
            let line = format!("{}:{} {key}={}", d.major, d.minor, d.value);
            set(dir, "io.max", &line, "blkio_throttle")?;
        }
    }
    if !r.hugepage_limits.is_empty() {
        hugetlb_v2(cg, r)?;
    }
    unified(dir, r)
}

fn device_line(d: &BlkioDevice, value: u64) -> String {
    format!("{}:{} {value}", d.major, d.minor)
}

fn throttles(r: &Cgroups) -> [(&[BlkioDevice], &'static str); 4] {
    [
        (&r.blkio_read_bps, "blkio.throttle.read_bps_device"),
        (&r.blkio_write_bps, "blkio.throttle.write_bps_device"),
        (&r.blkio_read_iops, "blkio.throttle.read_iops_device"),
        (&r.blkio_write_iops, "blkio.throttle.write_iops_device"),
    ]
}

/// Huge page limits in the v2 directory, enabling hugetlb above it first.
fn hugetlb_v2(cg: &Cgroup, r: &Cgroups) -> Result<()> {
    let no_controller = || {
        unsupported(
            "hugepage_limits",
            "no hugetlb controller is reachable on this host (neither a v1 hierarchy nor the v2 one offers it)",
        )
    };
    let Some((h, dir)) = cg.dirs.iter().find(|(h, _)| h.v2) else {
        return Err(no_controller());
    };
    let offered = |d: &Path| {
        std::fs::read_to_string(d.join("cgroup.controllers"))
            .is_ok_and(|t| t.split_whitespace().any(|c| c == "hugetlb"))
    };
    if !offered(&h.mountpoint) {
        return Err(no_controller());
    }
    // Every level from the root down to the container's parent passes hugetlb on.
    let mut cur = h.mountpoint.clone();
    for part in cg.relative.components() {
        let enabled = std::fs::read_to_string(cur.join("cgroup.subtree_control"))
            .is_ok_and(|t| t.split_whitespace().any(|c| c == "hugetlb"));
        if !enabled {
            write(&cur.join("cgroup.subtree_control"), "+hugetlb")?;
        }
        cur.push(part);
    }
    for l in &r.hugepage_limits {
        let file = format!("hugetlb.{}.max", l.page_size);
        set(dir, &file, &l.limit.to_string(), "hugepage_limits")?;
    }
    Ok(())
}

/// The `unified` files, as given, in the v2 directory `dir`.
fn unified(dir: &Path, r: &Cgroups) -> Result<()> {
    for (key, value) in &r.unified {
        // Validated: a file name with a dot, no slash.
        let path = dir.join(key);
        if !path.exists() {
            let controller = key.split('.').next().unwrap_or(key);
            return Err(unsupported(
                &format!("unified.{key}"),
                format!(
                    "{} has no such file (is the {controller} controller enabled?)",
                    dir.display()
                ),
            ));
        }
        write(&path, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Hierarchy, Layout};
    use super::*;
    use crate::config::HugepageLimit;
    use std::fs;
    use std::path::PathBuf;

    struct FakeRoot(PathBuf);

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A tempdir standing for /sys/fs/cgroup: v1 hierarchies for `v1`, and a v2 one at
    /// `unified` offering `v2_offers`.
    fn fake(tag: &str, v1: &[&str], v2_offers: Option<&str>) -> (FakeRoot, Cgroup) {
        let root = std::env::temp_dir().join(format!("edcg-x-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mut hierarchies = Vec::new();
        for c in v1 {
            hierarchies.push(Hierarchy {
                mountpoint: root.join(c),
                controllers: vec![c.to_string()],
                v2: false,
            });
        }
        if let Some(offers) = v2_offers {
            let m = root.join("unified");
            fs::create_dir_all(&m).unwrap();
            fs::write(m.join("cgroup.controllers"), offers).unwrap();
            hierarchies.push(Hierarchy {
                mountpoint: m,
                controllers: Vec::new(),
                v2: true,
            });
        }
        for h in &hierarchies {
            fs::create_dir_all(h.mountpoint.join("p/c")).unwrap();
        }
        let cg = Cgroup::new(&Layout { hierarchies }, "p", "c").unwrap();
        (FakeRoot(root), cg)
    }

    fn touch(dir: &Path, files: &[&str]) {
        for f in files {
            fs::write(dir.join(f), "").unwrap();
        }
    }

    fn get(p: PathBuf) -> String {
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn dev(major: i64, minor: i64, value: u64) -> BlkioDevice {
        BlkioDevice {
            major,
            minor,
            value,
        }
    }

    #[test]
    fn v1_extras_and_hugetlb_in_the_hybrid_v2_directory() {
        let (root, cg) = fake("v1", &["memory", "cpu", "blkio"], Some("hugetlb\n"));
        let r0 = &root.0;
        touch(&r0.join("memory/p/c"), &["memory.swappiness"]);
        touch(
            &r0.join("cpu/p/c"),
            &["cpu.rt_period_us", "cpu.rt_runtime_us"],
        );
        touch(
            &r0.join("blkio/p/c"),
            &[
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_iops_device",
            ],
        );
        touch(
            &r0.join("unified/p/c"),
            &["hugetlb.2MB.max", "cgroup.freeze"],
        );
        let r = Cgroups {
            memory_swappiness: Some(10),
            cpu_rt_period: 100_000,
            cpu_rt_runtime: 5_000,
            blkio_read_bps: vec![dev(254, 0, 1 << 20)],
            blkio_write_iops: vec![dev(254, 0, 100)],
            hugepage_limits: vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            }],
            unified: [("cgroup.freeze".to_string(), "0".to_string())].into(),
            ..Default::default()
        };
        set_v1(&cg, &r).unwrap();
        for (file, value) in [
            ("memory/p/c/memory.swappiness", "10"),
            ("cpu/p/c/cpu.rt_period_us", "100000"),
            ("cpu/p/c/cpu.rt_runtime_us", "5000"),
            ("blkio/p/c/blkio.throttle.read_bps_device", "254:0 1048576"),
            ("blkio/p/c/blkio.throttle.write_iops_device", "254:0 100"),
            ("unified/p/c/hugetlb.2MB.max", "4194304"),
            ("unified/p/c/cgroup.freeze", "0"),
            // hugetlb passed on by every level above the container.
            ("unified/cgroup.subtree_control", "+hugetlb"),
            ("unified/p/cgroup.subtree_control", "+hugetlb"),
        ] {
            assert_eq!(get(r0.join(file)), value, "{file}");
        }
        // No weight file (no proportional scheduler): refused naming the field.
        let err = set_v1(
            &cg,
            &Cgroups {
                blkio_weight_devices: vec![dev(254, 0, 300)],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("cgroups.blkio_weight_devices:"),
            "{err}"
        );
        assert!(err.is_invalid());
        // A unified file the host lacks names its key.
        let err = set_v1(
            &cg,
            &Cgroups {
                unified: [("memory.high".to_string(), "1G".to_string())].into(),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("cgroups.unified.memory.high:"),
            "{err}"
        );
    }

    #[test]
    fn v1_only_refuses_hugetlb_and_unified_clearly() {
        let (_root, cg) = fake("v1only", &["memory"], None);
        let hp = Cgroups {
            hugepage_limits: vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 1 << 21,
            }],
            ..Default::default()
        };
        let err = set_v1(&cg, &hp).unwrap_err();
        assert!(err.to_string().contains("no hugetlb controller"), "{err}");
        let un = Cgroups {
            unified: [("memory.high".to_string(), "1G".to_string())].into(),
            ..Default::default()
        };
        let err = set_v1(&cg, &un).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cgroups.unified.memory.high: this host has no cgroup v2"),
            "{err}"
        );
        // Without hugetlb offered in v2 either.
        let (_root, cg) = fake("v2nohuge", &["memory"], Some("pids\n"));
        assert!(set_v1(&cg, &hp)
            .unwrap_err()
            .to_string()
            .contains("no hugetlb"));
    }

    #[test]
    fn v2_extras() {
        let (root, cg) = fake("v2", &[], Some("cpu io memory hugetlb pids\n"));
        let dir = root.0.join("unified/p/c");
        touch(
            &dir,
            &["io.weight", "io.max", "hugetlb.1GB.max", "memory.high"],
        );
        let r = Cgroups {
            blkio_weight_devices: vec![dev(8, 0, 1000)],
            blkio_write_bps: vec![dev(8, 0, 4096)],
            hugepage_limits: vec![HugepageLimit {
                page_size: "1GB".into(),
                limit: 1 << 30,
            }],
            unified: [("memory.high".to_string(), "64M".to_string())].into(),
            ..Default::default()
        };
        set_v2(&cg, &dir, &r).unwrap();
        assert_eq!(get(dir.join("io.weight")), "8:0 10000");
        assert_eq!(get(dir.join("io.max")), "8:0 wbps=4096");
        assert_eq!(get(dir.join("hugetlb.1GB.max")), "1073741824");
        assert_eq!(get(dir.join("memory.high")), "64M");
        for r in [
            Cgroups {
                memory_swappiness: Some(0),
                ..Default::default()
            },
            Cgroups {
                cpu_rt_runtime: 1000,
                ..Default::default()
            },
        ] {
            let err = set_v2(&cg, &dir, &r).unwrap_err();
            assert!(err.to_string().contains("cgroup v2 has no"), "{err}");
        }
    }
}
