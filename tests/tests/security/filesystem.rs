//! What a container sees of the filesystem: /proc and /sys masked and read-only, read-only
//! bind mounts read-only throughout, and symlinks (a mount destination, the working
//! directory) that must resolve inside the rootfs, never on the host.

use std::path::Path;

use execdriver_tests::{pb, run, TempDir};
use tonic::Code;

use super::{assert_nothing_left, daemon, force_delete, privileged, sh, start};

#[tokio::test]
async fn proc_and_sys_are_masked_and_read_only() {
    let d = daemon();
    let mut c = d.client().await;
    let script = "for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do \
                    if [ -e $p ]; then echo \"$p $(cat $p | wc -c)\"; else echo \"$p absent\"; fi; done; \
                  echo \"/sys/firmware $(ls -A /sys/firmware | wc -l)\"; \
                  echo \"/proc/scsi $(ls -A /proc/scsi 2>/dev/null | wc -l)\"; \
                  echo edtest > /proc/sys/kernel/hostname 2>/dev/null; echo sysctl=$?; \
                  echo h > /proc/sysrq-trigger 2>/dev/null; echo sysrq=$?; \
                  hostname; grep -E ' /proc/(sys|irq|bus|sysrq-trigger) ' /proc/self/mountinfo; \
                  grep -E ' /(proc/acpi|proc/scsi|sys/firmware) ' /proc/self/mountinfo | sed 's/^/masked /'";
    let mut req = sh(&d, script);
    req.hostname = "inside".into();
    let text = run(&mut c, req).await.stdout();
    let host_has = |p: &str| Path::new(p).exists();
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        let want = if host_has(p) {
            format!("{p} 0\n")
        } else {
            format!("{p} absent\n")
        };
        assert!(text.contains(&want), "{want}: {text}");
    }
    assert!(text.contains("/sys/firmware 0\n"), "{text}");
    assert!(text.contains("/proc/scsi 0\n"), "{text}");
    assert!(
        text.contains("sysctl=") && !text.contains("sysctl=0"),
        "{text}"
    );
    // Read-only where the kernel has it ("h" only prints the help, should it get through);
    // where it has not, procfs cannot create it either.
    assert!(
        text.contains("sysrq=") && !text.contains("sysrq=0"),
        "{text}"
    );
    assert!(
        text.contains("inside\n"),
        "the hostname sysctl took a write: {text}"
    );
    let ro_mounts: Vec<&str> = text.lines().filter(|l| l.contains(" /proc/")).collect();
    for p in ["/proc/sys", "/proc/irq", "/proc/bus", "/proc/sysrq-trigger"] {
        if host_has(p) {
            let line = ro_mounts
                .iter()
                .find(|l| l.split(' ').nth(4) == Some(p))
                .unwrap_or_else(|| panic!("{p} is not a mount: {text}"));
            assert!(line.split(' ').nth(5).unwrap().starts_with("ro"), "{line}");
        }
    }
    // The masked directories: one empty read-only tmpfs (the same device) bound over each
    // (a filesystem per directory would cost the kernel a shrinker each).
    let masked: Vec<Vec<&str>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("masked "))
        .map(|l| l.split(' ').collect())
        .collect();
    let dirs = ["/proc/acpi", "/proc/scsi", "/sys/firmware"];
    let on_host = dirs.iter().filter(|p| host_has(p)).count();
    assert_eq!(masked.len(), on_host, "{text}");
    for m in &masked {
        assert_eq!(m[2], masked[0][2], "not one tmpfs: {text}");
        assert!(m[5].starts_with("ro"), "{text}");
        let fstype = m.iter().skip_while(|f| **f != "-").nth(1);
        assert_eq!(fstype, Some(&"tmpfs"), "{text}");
    }
    // Without the masks the same script sees the host's files and writes the (namespaced)
    // hostname sysctl: the test would have noticed.
    let mut req = sh(&d, script);
    req.hostname = "inside".into();
    privileged(&mut req);
    let text = run(&mut c, req).await.stdout();
    assert!(text.contains("sysctl=0"), "{text}");
    assert!(text.contains("edtest\n"), "{text}");
    if std::fs::read_to_string("/proc/timer_list").is_ok_and(|t| !t.is_empty()) {
        assert!(!text.contains("/proc/timer_list 0\n"), "{text}");
    }
}

/// A host directory a rootfs symlink points at; a marker shows if anything lands in it.
fn host_target() -> TempDir {
    let t = TempDir::new("edt-host");
    std::fs::write(t.path.join("host-marker"), "host").unwrap();
    t
}

/// The path of the host directory `host` as seen inside `rootfs` (where a link to it leads).
fn inside(rootfs: &Path, host: &Path) -> std::path::PathBuf {
    rootfs.join(host.strip_prefix("/").unwrap())
}

#[tokio::test]
async fn symlinked_mount_destination_stays_in_the_rootfs() {
    let d = daemon();
    let mut c = d.client().await;
    let host = host_target();
    let src = TempDir::new("edt-src");
    std::fs::write(src.path.join("data"), "from the bind mount").unwrap();
    // The rootfs's /etc is a symlink to a host path, /up climbs with '..', /abs names a
    // directory that exists on the host.
    std::fs::remove_dir_all(d.rootfs.join("etc")).unwrap();
    std::os::unix::fs::symlink(&host.path, d.rootfs.join("etc")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", d.rootfs.join("up")).unwrap();
    let mut req = sh(
        &d,
        "cat /etc/conf/data; echo; cat /up/mnt2/data; echo; cat /etc/file.conf; echo; \
         ls /etc",
    );
    let bind = |dest: &str, source: &Path| pb::Mount {
        source: source.display().to_string(),
        destination: dest.into(),
        writable: false,
        private: false,
    };
    req.mounts = vec![
        bind("/etc/conf", &src.path),
        bind("/up/mnt2", &src.path),
        bind("/etc/file.conf", &src.path.join("data")),
    ];
    let out = run(&mut c, req).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let text = out.stdout();
    assert_eq!(
        text.lines().take(3).collect::<Vec<_>>(),
        ["from the bind mount"; 3],
        "{text}"
    );
    assert!(
        !text.contains("host-marker"),
        "the host dir was reached: {text}"
    );
    // Nothing was made or mounted on the host; everything landed inside the rootfs.
    let mut host_entries: Vec<_> = std::fs::read_dir(&host.path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    host_entries.sort();
    assert_eq!(host_entries, ["host-marker"]);
    assert!(execdriver_tests::host_mounts_under(&host.path).is_empty());
    let within = inside(&d.rootfs, &host.path);
    assert!(within.join("conf").is_dir() && within.join("file.conf").is_file());
    assert!(d.rootfs.join("mnt2").is_dir());
    assert!(execdriver_tests::host_mounts_under(&d.rootfs).is_empty());
}

/// Unmounts a mount this test made (lazily) when dropped.
struct MountGuard(std::path::PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test]
async fn read_only_bind_mounts_are_read_only_throughout() {
    let d = daemon();
    let mut c = d.client().await;
    // A source with a mount below it (a tmpfs this test makes under its own directory).
    let src = TempDir::new("edt-rro");
    let sub = src.path.join("sub");
    std::fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    let _unmount = MountGuard(sub.clone());
    let script = "touch /m/top 2>&1; echo top=$?; touch /m/sub/below 2>&1; echo below=$?";
    let with = |writable: bool| {
        let mut req = sh(&d, script);
        req.mounts = vec![pb::Mount {
            source: src.path.display().to_string(),
            destination: "/m".into(),
            writable,
            private: false,
        }];
        req
    };
    let text = run(&mut c, with(false)).await.stdout();
    assert!(text.contains("top=1") && text.contains("below=1"), "{text}");
    assert!(!sub.join("below").exists());
    let text = run(&mut c, with(true)).await.stdout();
    assert!(text.contains("top=0") && text.contains("below=0"), "{text}");
    assert!(sub.join("below").exists());
}

#[tokio::test]
async fn symlinked_cwd_stays_in_the_rootfs() {
    let d = daemon();
    let mut c = d.client().await;
    let host = host_target();
    std::os::unix::fs::symlink(&host.path, d.rootfs.join("link")).unwrap();
    // The link names a host directory; inside, the same path in the rootfs is meant.
    let within = inside(&d.rootfs, &host.path);
    std::fs::create_dir_all(&within).unwrap();
    std::fs::write(within.join("inside-marker"), "inside").unwrap();
    let mut req = d.request(&["sh", "-c", "pwd -P; ls"]);
    req.process.as_mut().unwrap().cwd = "/link".into();
    let text = run(&mut c, req).await.stdout();
    assert!(text.contains("inside-marker"), "{text}");
    assert!(!text.contains("host-marker"), "{text}");
    // An exec'd process's cwd resolves inside too.
    let id = start(&mut c, d.request(&["sleep", "100"])).await;
    let r = c
        .exec_sync(pb::ExecSyncRequest {
            id: id.clone(),
            process: Some(pb::Process {
                args: vec!["ls".into()],
                cwd: "/link".into(),
                ..Default::default()
            }),
            timeout_seconds: 30,
        })
        .await
        .unwrap()
        .into_inner();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("inside-marker") && !text.contains("host-marker"),
        "{text}"
    );
    force_delete(&mut c, &id).await;
}

#[tokio::test]
async fn failed_symlinked_cwd_is_a_create_error() {
    let d = daemon();
    let mut c = d.client().await;
    let host = host_target();
    std::os::unix::fs::symlink(&host.path, d.rootfs.join("link")).unwrap();
    let mut req = d.request(&["ls"]);
    req.process.as_mut().unwrap().cwd = "/link".into();
    let err = c.create(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("working directory /link"), "{err:?}");
    assert_nothing_left(&d);
}
