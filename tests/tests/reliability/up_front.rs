//! What the kernel would refuse halfway through a create is refused before anything is made:
//! arguments and environment beyond execve's limit, an open-files limit above fs.nr_open, the
//! id 4294967295, bind mounts over /dev, /proc, /sys or into /proc. Each is INVALID_ARGUMENT
//! naming the request field, and leaves no container, state directory or cgroup.

use execdriver_tests::*;
use tonic::Code;

#[tokio::test]
async fn kernel_refusals_are_invalid_arguments_up_front() {
    let d = Daemon::start();
    let mut c = d.client().await;

    type Mutation = Box<dyn Fn(&mut pb::CreateRequest)>;
    let proc_mut = |f: fn(&mut pb::Process)| -> Mutation {
        Box::new(move |r: &mut pb::CreateRequest| f(r.process.as_mut().unwrap()))
    };
    let mount = |source: &'static str, destination: &'static str| -> Mutation {
        Box::new(move |r: &mut pb::CreateRequest| {
            r.mounts = vec![pb::Mount {
                source: source.into(),
                destination: destination.into(),
                ..Default::default()
            }]
        })
    };
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "200 variables of 60 KB (E2BIG at exec)",
            proc_mut(|p| p.env = vec![format!("A={}", "x".repeat(60_000)); 200]),
            "process.env[17]",
        ),
        (
            "open files above fs.nr_open (EPERM at setrlimit)",
            Box::new(|r| {
                r.security = Some(pb::SecurityConfig {
                    rlimits: vec![pb::Rlimit {
                        r#type: "RLIMIT_NOFILE".into(),
                        hard: u64::MAX,
                        soft: 1024,
                    }],
                    ..Default::default()
                })
            }),
            "security.rlimits[0].hard",
        ),
        (
            "uid 4294967295 (setgroups fails)",
            proc_mut(|p| p.user = "4294967295".into()),
            "process.user",
        ),
        (
            "a bind mount over /dev",
            mount("/tmp", "/dev"),
            "mounts[0].destination",
        ),
        (
            "the host's /proc over the container's",
            mount("/proc", "/proc"),
            "mounts[0].destination",
        ),
        (
            "a host process's /proc directory",
            mount("/proc/1", "/proc/1"),
            "mounts[0].destination",
        ),
    ];
    for (what, mutate, field) in cases {
        let mut r = d.request(&["true"]);
        mutate(&mut r);
        let err = c.create(r).await.expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message().starts_with(field),
            "{what}: the message should name {field}: {err:?}"
        );
    }
    // Nothing was made: no container, no state directory, no cgroup.
    let list = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.containers.is_empty(), "{list:?}");
    let left: Vec<_> = std::fs::read_dir(&d.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir() && !execdriver_tests::is_pool(&e.path()))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "state left: {left:?}");
    assert!(d.cgroup_dirs().is_empty(), "{:?}", d.cgroup_dirs());

    // A mount of what lxcfs provides below /proc still works, and so does a large environment
    // execve takes.
    let mut r = d.request(&["sh", "-c", "head -1 /proc/meminfo; echo ${#A}"]);
    r.mounts = vec![pb::Mount {
        source: "/proc/meminfo".into(),
        destination: "/proc/meminfo".into(),
        ..Default::default()
    }];
    r.process.as_mut().unwrap().env = vec![format!("A={}", "x".repeat(60_000))];
    let out = run(&mut c, r).await;
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout().starts_with("MemTotal:"), "{out:?}");
    assert!(out.stdout().contains("60000"), "{out:?}");
}
