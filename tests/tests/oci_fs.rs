//! The container's filesystem and cgroups as OCI configs say them, through `nsinit exec`:
//! `filesystems` mounted in order (tmpfs options, read-only and recursive binds, propagation,
//! proc/sysfs/devpts/mqueue/cgroup), the standard devices and /dev links, device nodes with an
//! owner, `rootfs_propagation`, ordered device rules with a deny, and the cgroup extras
//! (swappiness, real-time CPU, block I/O throttles, huge pages). What is checked is what a
//! process inside the container sees.

use std::path::{Path, PathBuf};
use std::process::Command;

use execdriver_tests::{bin, make_rootfs, unique, CgroupGuard, TempDir};
use serde_json::{json, Value};

/// Runs `script` with `sh -c` in a container made from `config` (rootfs: `dir`); returns the
/// exit code, stdout and stderr.
fn run(dir: &Path, config: &Value, script: &str) -> (i32, String, String) {
    std::fs::write(dir.join("container.json"), config.to_string()).unwrap();
    let out = Command::new(bin("nsinit"))
        .args(["exec", "sh", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A container.json for nsinit with `filesystems` and `cgroups` as given.
fn config(parent: &str, namespaces: &[&str], filesystems: Value, cgroups: Value) -> Value {
    let mut cg = json!({"parent": parent, "name": "c"});
    for (k, v) in cgroups.as_object().cloned().unwrap_or_default() {
        cg[k] = v;
    }
    json!({
        "hostname": "ocifs",
        "namespaces": namespaces,
        "cgroups": cg,
        "environment": ["PATH=/bin"],
        "masked_paths": [],
        "readonly_paths": ["/proc/sys"],
        "filesystems": filesystems,
    })
}

const NAMESPACES: [&str; 5] = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"];

/// The OCI default mounts (as `runc spec` writes them) plus `extra`.
fn standard_mounts(extra: &[Value]) -> Value {
    let mut list = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    list.extend(extra.iter().cloned());
    Value::Array(list)
}

/// The /proc/mounts line of `dest`, inside.
fn mount_line<'a>(mounts: &'a str, dest: &str) -> &'a str {
    mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest}:\n{mounts}"))
}

/// Options of a /proc/mounts line.
fn opts(line: &str) -> Vec<&str> {
    line.split(' ').nth(3).unwrap_or("").split(',').collect()
}

#[test]
fn filesystems_are_mounted_in_order_with_their_options() {
    let parent = unique("edtest-ocifs");
    let _cg = CgroupGuard(parent.clone());
    let dir = TempDir::new("edt-ocifs");
    make_rootfs(&dir.path);
    let host = TempDir::new("edt-ocifs-src");
    std::fs::write(host.path.join("f"), "from the host\n").unwrap();
    let host_file = host.path.join("f");
    let fs = standard_mounts(&[
        json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
               "options": ["noexec", "mode=700", "size=1m"]}),
        json!({"destination": "/ro", "type": "bind", "source": host.path,
               "options": ["rbind", "ro"]}),
        json!({"destination": "/etc/hostfile", "type": "bind", "source": host_file,
               "options": ["bind", "nosuid", "nodev"]}),
    ]);
    let cgroups = json!({
        "memory": 64 << 20,
        "devices_exact": true,
        "devices": [
            {"type": "a", "major_number": -1, "minor_number": -1, "cgroup_permissions": "rwm"},
            {"type": "c", "major_number": 1, "minor_number": 5, "cgroup_permissions": "rwm", "deny": true},
            {"type": "c", "path": "/dev/mynull", "major_number": 1, "minor_number": 3,
             "cgroup_permissions": "rwm", "file_mode": 0o640, "uid": 1234, "gid": 5678},
        ],
    });
    let cfg = config(&parent, &NAMESPACES, fs, cgroups);
    let script = "cat /proc/mounts; echo ---; \
        for d in null zero full random urandom tty mynull; do echo $d $(stat -c '%F %t:%T %a %u:%g' /dev/$d); done; \
        for l in ptmx fd stdin stdout stderr core; do echo $l $(readlink /dev/$l); done; echo ---; \
        (touch /ro/new 2>/dev/null && echo ro-writable) || echo ro-refused; \
        cat /ro/f /etc/hostfile; \
        (head -c1 /dev/zero >/dev/null 2>&1 && echo zero-open) || echo zero-denied; \
        (echo hi > /dev/mynull && echo mynull-ok) || echo mynull-denied; \
        (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null || echo procsys-ro; \
        ls /sys/fs/cgroup | tr '\\n' ' '; echo; \
        cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
        (touch /sys/fs/cgroup/x 2>/dev/null && echo cgroup-writable) || echo cgroup-ro";
    let (code, out, err) = run(&dir.path, &cfg, script);
    assert_eq!(code, 0, "{out}\n{err}");
    let mut parts = out.split("---\n");
    let mounts = parts.next().unwrap();
    let devices = parts.next().unwrap();
    let rest = parts.next().unwrap();

    // Every filesystem where it was asked, with its flags and data.
    let data = opts(mount_line(mounts, "/data"));
    for o in ["rw", "noexec", "size=1024k", "mode=700"] {
        assert!(data.contains(&o), "/data lacks {o}: {data:?}");
    }
    let dev = opts(mount_line(mounts, "/dev"));
    for o in ["nosuid", "size=65536k", "mode=755"] {
        assert!(dev.contains(&o), "/dev lacks {o}: {dev:?}");
    }
    let pts = opts(mount_line(mounts, "/dev/pts"));
    for o in ["nosuid", "noexec", "gid=5", "mode=620", "ptmxmode=666"] {
        assert!(pts.contains(&o), "/dev/pts lacks {o}: {pts:?}");
    }
    assert!(mount_line(mounts, "/dev/mqueue").starts_with("mqueue "));
    assert!(opts(mount_line(mounts, "/dev/shm")).contains(&"nodev"));
    assert!(opts(mount_line(mounts, "/sys")).contains(&"ro"));
    assert!(opts(mount_line(mounts, "/ro")).contains(&"ro"));
    let hostfile = opts(mount_line(mounts, "/etc/hostfile"));
    assert!(
        hostfile.contains(&"nosuid") && hostfile.contains(&"nodev") && hostfile.contains(&"rw"),
        "{hostfile:?}"
    );
    assert!(opts(mount_line(mounts, "/sys/fs/cgroup")).contains(&"ro"));
    assert!(opts(mount_line(mounts, "/sys/fs/cgroup/memory")).contains(&"ro"));
    // In the order given: /dev before /dev/pts, /sys before its cgroups, /data after them.
    let pos = |d: &str| {
        mounts
            .lines()
            .position(|l| l.split(' ').nth(1) == Some(d))
            .unwrap()
    };
    assert!(pos("/dev") < pos("/dev/pts") && pos("/sys") < pos("/sys/fs/cgroup"));
    assert!(pos("/sys/fs/cgroup") < pos("/data") && pos("/data") < pos("/ro"));

    // The standard devices, and the requested node with its owner and mode.
    for (name, want) in [
        ("null", "character special file 1:3 666 0:0"),
        ("zero", "character special file 1:5 666 0:0"),
        ("full", "character special file 1:7 666 0:0"),
        ("random", "character special file 1:8 666 0:0"),
        ("urandom", "character special file 1:9 666 0:0"),
        ("tty", "character special file 5:0 666 0:0"),
        ("mynull", "character special file 1:3 640 1234:5678"),
    ] {
        assert!(
            devices.contains(&format!("{name} {want}\n")),
            "{name}: {devices}"
        );
    }
    for (link, want) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        assert!(
            devices.contains(&format!("{link} {want}\n")),
            "{link}: {devices}"
        );
    }
    // core only where the kernel has /proc/kcore.
    let core = if Path::new("/proc/kcore").exists() {
        "core /proc/kcore\n"
    } else {
        "core\n"
    };
    assert!(devices.contains(core), "{devices}");

    let lines: Vec<&str> = rest.lines().collect();
    assert_eq!(lines[0], "ro-refused");
    assert_eq!(&lines[1..3], ["from the host", "from the host"]);
    // The deny rule after the allow-all refuses /dev/zero; the rest stays allowed.
    assert_eq!(lines[3], "zero-denied", "{rest}");
    assert_eq!(lines[4], "mynull-ok", "{rest}");
    assert_eq!(lines[5], "procsys-ro");
    // The host's hierarchies, each the container's own cgroup, read-only.
    for h in ["cpu", "memory", "devices", "pids"] {
        assert!(
            lines[6].split(' ').any(|x| x == h),
            "no {h} in {}",
            lines[6]
        );
    }
    assert_eq!(lines[7], (64u64 << 20).to_string());
    assert_eq!(lines[8], "cgroup-ro");
    assert!(
        !host.path.join("new").exists(),
        "a read-only bind wrote on the host"
    );
}

/// A bind mount of the test's own, made shared on the host, with a submount: umounted on
/// drop.
struct SharedDir {
    dir: TempDir,
}

impl SharedDir {
    fn new() -> SharedDir {
        use nix::mount::{mount, MsFlags};
        let dir = TempDir::new("edt-ocifs-shared");
        let path = dir.path.clone();
        let p = path.as_path();
        mount(Some(p), p, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        let shared = SharedDir { dir };
        mount(
            None::<&str>,
            p,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        std::fs::create_dir(p.join("sub")).unwrap();
        mount(
            Some("tmpfs"),
            &p.join("sub"),
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
        std::fs::write(p.join("sub/inner"), "submount\n").unwrap();
        std::fs::create_dir(p.join("later")).unwrap();
        shared
    }

    fn path(&self) -> PathBuf {
        self.dir.path.clone()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        use nix::mount::{umount2, MntFlags};
        for sub in ["later", "sub", ""] {
            let _ = umount2(&self.dir.path.join(sub), MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn rbind_rslave_sees_the_hosts_submounts_and_later_mounts() {
    use nix::mount::{mount, MsFlags};
    let parent = unique("edtest-ocifs");
    let _cg = CgroupGuard(parent.clone());
    let dir = TempDir::new("edt-ocifs");
    make_rootfs(&dir.path);
    let shared = SharedDir::new();
    let src = shared.path();
    let fs = json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/mnt/r", "type": "bind", "source": src, "options": ["rbind", "rslave"]},
        {"destination": "/mnt/p", "type": "bind", "source": src, "options": ["rbind", "rprivate"]},
    ]);
    let cfg = config(&parent, &NAMESPACES, fs, json!({}));
    std::fs::write(dir.path.join("container.json"), cfg.to_string()).unwrap();
    // The container waits for the host's later mount to appear under /mnt/r.
    let script = "cat /mnt/r/sub/inner; \
        i=0; while [ ! -e /mnt/r/later/marker ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
        cat /mnt/r/later/marker 2>/dev/null || echo not-seen; \
        [ -e /mnt/p/later/marker ] && echo private-saw-it || echo private-did-not";
    let child = Command::new(bin("nsinit"))
        .args(["exec", "sh", "-c", script])
        .current_dir(&dir.path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = dir.path.join("pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pid_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    mount(
        Some("tmpfs"),
        &src.join("later"),
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    std::fs::write(src.join("later/marker"), "seen\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text, "submount\nseen\nprivate-did-not\n");
}

#[test]
fn rootfs_propagation_is_the_roots() {
    let parent = unique("edtest-ocifs");
    let _cg = CgroupGuard(parent.clone());
    let dir = TempDir::new("edt-ocifs");
    make_rootfs(&dir.path);
    let fs = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    // The optional fields of the root's mountinfo line.
    let script = "awk '$5 == \"/\" { s = \"\"; for (i = 7; $i != \"-\"; i++) s = s $i \" \"; print \"[\" s \"]\" }' /proc/self/mountinfo";
    for (propagation, want) in [
        ("", "[]"),
        ("rprivate", "[]"),
        ("rshared", "[shared:"),
        ("runbindable", "[unbindable "),
    ] {
        let mut cfg = config(&parent, &NAMESPACES, fs.clone(), json!({}));
        cfg["rootfs_propagation"] = propagation.into();
        let (code, out, err) = run(&dir.path, &cfg, script);
        assert_eq!(code, 0, "{propagation}: {out}\n{err}");
        assert!(out.starts_with(want), "{propagation:?}: {out}");
    }
}

#[test]
fn cgroup_mount_in_a_cgroup_namespace_is_rooted_at_the_container() {
    let parent = unique("edtest-ocifs");
    let _cg = CgroupGuard(parent.clone());
    let dir = TempDir::new("edt-ocifs");
    make_rootfs(&dir.path);
    let fs = standard_mounts(&[]);
    let mut ns = NAMESPACES.to_vec();
    ns.push("NEWCGROUP");
    let cfg = config(&parent, &ns, fs, json!({"memory": 48 << 20}));
    let script = "grep memory /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
        ls /sys/fs/cgroup/unified/cgroup.procs";
    let (code, out, err) = run(&dir.path, &cfg, script);
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].ends_with(":memory:/"), "{out}");
    assert_eq!(lines[1], (48u64 << 20).to_string());
    assert_eq!(lines[2], "/sys/fs/cgroup/unified/cgroup.procs");
}

#[test]
fn bad_options_are_refused_naming_the_field() {
    let parent = unique("edtest-ocifs");
    let _cg = CgroupGuard(parent.clone());
    let dir = TempDir::new("edt-ocifs");
    make_rootfs(&dir.path);
    let fs = json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]},
    ]);
    let cfg = config(&parent, &NAMESPACES, fs, json!({}));
    let (code, out, err) = run(&dir.path, &cfg, "echo ran");
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("filesystems[1].options") && err.contains("tmpcopyup"),
        "{err}"
    );
}

/// The v1 cgroup directory of the container (`parent/c`) in `hierarchy`.
fn v1_dir(hierarchy: &str, parent: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(hierarchy).join(parent)
}

#[test]
fn cgroup_extras_reach_the_kernel() {
    let layout = execdriver_shim::cgroups::Layout::detect().unwrap();
    let has_v1 = |c: &str| {
        layout
            .hierarchies
            .iter()
            .any(|h| !h.v2 && h.controllers.iter().any(|x| x == c))
    };
    if !(has_v1("memory") && has_v1("cpu") && has_v1("blkio")) {
        eprintln!("skipped: needs the v1 memory, cpu and blkio hierarchies");
        return;
    }
    let parent = unique("edtest-ocifs");
    let _cg = CgroupGuard(parent.clone());
    let dir = TempDir::new("edt-ocifs");
    make_rootfs(&dir.path);
    // Real-time time for the container must come from its parent's: give the parent some.
    let cpu_parent = v1_dir("cpu", &parent);
    std::fs::create_dir_all(&cpu_parent).unwrap();
    let rt = cpu_parent.join("cpu.rt_runtime_us").exists();
    if rt {
        std::fs::write(cpu_parent.join("cpu.rt_runtime_us"), "100000").unwrap();
    }
    // A block device of the host to throttle: the disk holding the rootfs.
    let dev = {
        use std::os::unix::fs::MetadataExt;
        let d = std::fs::metadata(&dir.path).unwrap().dev();
        let sys = PathBuf::from(format!(
            "/sys/dev/block/{}:{}",
            nix::sys::stat::major(d),
            nix::sys::stat::minor(d)
        ));
        let disk = if sys.join("partition").exists() {
            std::fs::canonicalize(&sys)
                .ok()
                .and_then(|p| Some(p.parent()?.join("dev")))
        } else {
            Some(sys.join("dev"))
        };
        let text = disk.and_then(|p| std::fs::read_to_string(p).ok());
        let Some((a, b)) = text.as_deref().and_then(|t| t.trim().split_once(':')) else {
            eprintln!("skipped: the rootfs is on no block device");
            return;
        };
        (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap())
    };
    let hugetlb_v2 = layout.hierarchies.iter().find(|h| h.v2).and_then(|h| {
        let offered = std::fs::read_to_string(h.mountpoint.join("cgroup.controllers")).ok()?;
        offered
            .split_whitespace()
            .any(|c| c == "hugetlb")
            .then(|| h.mountpoint.clone())
    });
    let root_had_hugetlb = hugetlb_v2.as_ref().is_some_and(|m| {
        std::fs::read_to_string(m.join("cgroup.subtree_control"))
            .is_ok_and(|t| t.split_whitespace().any(|c| c == "hugetlb"))
    });
    let mut cgroups = json!({
        "memory_swappiness": 7,
        "blkio_read_bps": [{"major": dev.0, "minor": dev.1, "value": 1048576}],
        "blkio_write_iops": [{"major": dev.0, "minor": dev.1, "value": 300}],
    });
    if rt {
        cgroups["cpu_rt_period"] = 100000.into();
        cgroups["cpu_rt_runtime"] = 5000.into();
    }
    let huge = hugetlb_v2.is_some() && !has_v1("hugetlb");
    if huge {
        cgroups["hugepage_limits"] = json!([{"page_size": "2MB", "limit": 4194304}]);
    }
    let cfg = config(&parent, &NAMESPACES, standard_mounts(&[]), cgroups);
    let script = "cd /sys/fs/cgroup; cat memory/memory.swappiness; \
        cat blkio/blkio.throttle.read_bps_device blkio/blkio.throttle.write_iops_device; \
        cat cpu/cpu.rt_period_us cpu/cpu.rt_runtime_us; \
        cat unified/hugetlb.2MB.max 2>/dev/null || echo no-hugetlb";
    let (code, out, err) = run(&dir.path, &cfg, script);
    // Leave the host's v2 root as it was.
    if let (Some(m), false) = (&hugetlb_v2, root_had_hugetlb) {
        drop(_cg);
        let _ = std::fs::write(m.join("cgroup.subtree_control"), "-hugetlb");
    }
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "7");
    assert_eq!(lines[1], format!("{}:{} 1048576", dev.0, dev.1));
    assert_eq!(lines[2], format!("{}:{} 300", dev.0, dev.1));
    if rt {
        assert_eq!(&lines[3..5], ["100000", "5000"]);
    }
    if huge {
        assert_eq!(lines[5], "4194304");
    }
}

#[test]
fn a_unified_file_the_host_lacks_is_refused_naming_the_key() {
    let parent = unique("edtest-ocifs");
    let _cg = CgroupGuard(parent.clone());
    let dir = TempDir::new("edt-ocifs");
    make_rootfs(&dir.path);
    let cgroups = json!({"unified": {"memory.high": "64M"}});
    let cfg = config(&parent, &NAMESPACES, standard_mounts(&[]), cgroups);
    let (code, out, err) = run(&dir.path, &cfg, "echo ran");
    let layout = execdriver_shim::cgroups::Layout::detect().unwrap();
    let v2_has_memory = layout.hierarchies.iter().any(|h| {
        h.v2 && std::fs::read_to_string(h.mountpoint.join("cgroup.controllers"))
            .is_ok_and(|t| t.split_whitespace().any(|c| c == "memory"))
    });
    if v2_has_memory {
        eprintln!("skipped: this host's v2 hierarchy has the memory controller");
        return;
    }
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("cgroups.unified.memory.high"), "{err}");
}

/// Masked directories share one empty read-only tmpfs, bound from the first; where a later
/// masked directory hides the first (/sys over /sys/firmware), the next gets a tmpfs of its
/// own, and every path is masked.
#[test]
fn masked_directories_share_one_tmpfs_also_when_nested() {
    let parent = unique("edtest-ocifs");
    let _cg = CgroupGuard(parent.clone());
    let dir = TempDir::new("edt-ocifs");
    make_rootfs(&dir.path);
    std::fs::create_dir_all(dir.path.join("m1")).unwrap();
    std::fs::create_dir_all(dir.path.join("m2")).unwrap();
    std::fs::write(dir.path.join("m2/secret"), "x").unwrap();
    let mut cfg = config(&parent, &NAMESPACES, standard_mounts(&[]), json!({}));
    cfg["masked_paths"] = json!(["/sys/firmware", "/m1", "/sys", "/m2"]);
    let (code, out, err) = run(
        &dir.path,
        &cfg,
        "echo $(ls -A /m2 | wc -l) $(ls -A /sys | wc -l); grep -E ' /(m1|m2|sys) ' /proc/self/mountinfo | awk '{print $3, $5, $6}'",
    );
    assert_eq!(code, 0, "{out}{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0 0"), "{out}");
    let mounts: Vec<Vec<&str>> = lines.map(|l| l.split(' ').collect()).collect();
    let dev = |p: &str| {
        mounts
            .iter()
            .rev()
            .find(|m| m[1] == p)
            .unwrap_or_else(|| panic!("{p} not masked: {out}"))
    };
    assert_eq!(dev("/m1")[0], dev("/sys")[0], "not one tmpfs: {out}");
    for p in ["/m1", "/m2", "/sys"] {
        assert!(dev(p)[2].starts_with("ro"), "{out}");
    }
}
