//! Bad input: a table of malformed protobuf, oversized fields, unicode and NUL, ids with
//! slashes, negative limits, 10k entries and unknown exec ids, each sent raw or through
//! the client; every one gets a clean error and the daemon keeps serving.

use execdriver_tests::*;
use tonic::Code;

use super::{alive, delete, exec_echo};

/// Passes bytes through as they are: for sending malformed messages.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(d: &Daemon, method: &'static str, body: Vec<u8>) -> tonic::Status {
    let channel = execdriver_driver::server::connect(&d.socket)
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
        Ok(r) => panic!("{method}: accepted {:?}", r.into_inner()),
        Err(s) => s,
    }
}

/// A table of bad inputs: each gets a clean error (the right code, the field named), and the
/// daemon keeps serving.
#[tokio::test]
async fn bad_input_gets_clean_errors_and_the_daemon_keeps_serving() {
    let d = Daemon::start();
    let mut c = d.client().await;
    let daemon = d.pid().unwrap() as i32;

    // Malformed protobuf.
    let create = "/execdriver.v1.ExecDriver/Create";
    for (what, body) in [
        ("garbage", vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
        ("truncated", vec![0x0a, 0x40, b'a', b'b']),
        ("bad utf-8 in a string", vec![0x0a, 0x02, 0xc3, 0x28]),
        ("wrong wire type", vec![0x0d, 0x01, 0x02, 0x03, 0x04]),
        ("nested garbage", vec![0x1a, 0x03, 0x0a, 0x09, 0x01]),
    ] {
        let s = raw_call(&d, create, body).await;
        assert_eq!(s.code(), Code::Internal, "{what}: {s:?}");
        assert!(s.message().contains("decod"), "{what}: {s:?}");
    }
    let s = raw_call(&d, "/execdriver.v1.ExecDriver/NoSuchMethod", vec![]).await;
    assert_eq!(s.code(), Code::Unimplemented, "{s:?}");

    // A message over the size limit.
    let mut big = d.request(&["true"]);
    big.labels.insert("k".into(), "v".repeat(17 << 20));
    let err = c.create(big).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");

    type Mutation = Box<dyn Fn(&mut pb::CreateRequest)>;
    let proc_mut = |f: fn(&mut pb::Process)| -> Mutation {
        Box::new(move |r: &mut pb::CreateRequest| f(r.process.as_mut().unwrap()))
    };
    let res = |f: fn(&mut pb::Resources)| -> Mutation {
        Box::new(move |r: &mut pb::CreateRequest| {
            let mut x = pb::Resources::default();
            f(&mut x);
            r.resources = Some(x);
        })
    };
    let cases: Vec<(&str, Mutation, Code, &str)> = vec![
        (
            "id with a slash",
            Box::new(|r| r.id = "a/b".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "id ..",
            Box::new(|r| r.id = "..".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "absolute id",
            Box::new(|r| r.id = "/etc".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "unicode id",
            Box::new(|r| r.id = "conteneur-é".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "NUL in id",
            Box::new(|r| r.id = "a\0b".into()),
            Code::InvalidArgument,
            "id",
        ),
        (
            "oversized id",
            Box::new(|r| r.id = "x".repeat(65)),
            Code::InvalidArgument,
            "id",
        ),
        (
            "oversized arg",
            proc_mut(|p| p.args = vec!["x".repeat(70 * 1024)]),
            Code::InvalidArgument,
            "process.args[0]",
        ),
        (
            "NUL in an arg",
            proc_mut(|p| p.args = vec!["echo".into(), "a\0b".into()]),
            Code::InvalidArgument,
            "process.args[1]",
        ),
        (
            "NUL in env",
            proc_mut(|p| p.env = vec!["A=\0".into()]),
            Code::InvalidArgument,
            "process.env[0]",
        ),
        (
            "10k env entries",
            proc_mut(|p| p.env = (0..10_000).map(|i| format!("K{i}=v")).collect()),
            Code::InvalidArgument,
            "process.env",
        ),
        (
            "10k args",
            proc_mut(|p| p.args = vec!["true".into(); 10_000]),
            Code::InvalidArgument,
            "process.args",
        ),
        (
            "oversized env value",
            proc_mut(|p| p.env = vec![format!("A={}", "v".repeat(70 * 1024))]),
            Code::InvalidArgument,
            "process.env[0]",
        ),
        (
            "unicode user",
            proc_mut(|p| p.user = "utilisateur-ü".into()),
            Code::InvalidArgument,
            "process.user",
        ),
        (
            "oversized hostname",
            Box::new(|r| r.hostname = "h".repeat(100_000)),
            Code::InvalidArgument,
            "hostname",
        ),
        (
            "NUL in hostname",
            Box::new(|r| r.hostname = "a\0".into()),
            Code::InvalidArgument,
            "hostname",
        ),
        (
            "NUL in rootfs",
            Box::new(|r| r.rootfs = "/tmp\0x".into()),
            Code::InvalidArgument,
            "rootfs",
        ),
        (
            "NUL in a label key",
            Box::new(|r| {
                r.labels.insert("a\0".into(), "v".into());
            }),
            Code::InvalidArgument,
            "labels",
        ),
        (
            "10k labels",
            Box::new(|r| {
                r.labels = (0..10_000).map(|i| (format!("k{i}"), "v".into())).collect();
            }),
            Code::InvalidArgument,
            "labels",
        ),
        (
            "10k mounts",
            Box::new(|r| {
                r.mounts = vec![
                    pb::Mount {
                        source: "/tmp".into(),
                        destination: "/x".into(),
                        ..Default::default()
                    };
                    10_000
                ]
            }),
            Code::InvalidArgument,
            "mounts",
        ),
        (
            "negative memory",
            res(|r| r.memory = -5),
            Code::InvalidArgument,
            "resources.memory",
        ),
        (
            "negative cpu shares",
            res(|r| r.cpu_shares = -1),
            Code::InvalidArgument,
            "resources.cpu_shares",
        ),
        (
            "negative cpu quota",
            res(|r| r.cpu_quota = -7),
            Code::InvalidArgument,
            "resources.cpu_quota",
        ),
        (
            "negative pids limit",
            res(|r| r.pids_limit = -9),
            Code::InvalidArgument,
            "resources.pids_limit",
        ),
        (
            "negative blkio weight",
            res(|r| r.blkio_weight = -3),
            Code::InvalidArgument,
            "resources.blkio_weight",
        ),
        (
            "negative device numbers",
            res(|r| {
                r.devices = vec![pb::DeviceRule {
                    r#type: "c".into(),
                    major: -2,
                    minor: -2,
                    ..Default::default()
                }]
            }),
            Code::InvalidArgument,
            "resources.devices[0]",
        ),
        (
            "unknown network mode",
            Box::new(|r| {
                r.network = Some(pb::NetworkConfig {
                    mode: -1,
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "network.mode",
        ),
    ];
    for (what, mutate, code, field) in cases {
        let mut r = d.request(&["true"]);
        mutate(&mut r);
        let err = c.create(r).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(
            err.message().starts_with(field),
            "{what}: {:?} should name {field}",
            err.message()
        );
    }

    // Unicode where it is allowed goes through as it is.
    let mut r = d.request(&["sh", "-c", "echo \"$GREETING\"; hostname"]);
    r.hostname = "hôte".into();
    r.labels.insert("clé".into(), "välue 🙂".into());
    r.process.as_mut().unwrap().env = vec!["GREETING=grüß dich 🙂".into()];
    let out = run(&mut c, r).await;
    assert_eq!(out.stdout(), "grüß dich 🙂\nhôte\n");

    // Ids and exec ids on the other calls.
    let live = d.request(&["sleep", "1000"]);
    let live_id = live.id.clone();
    c.run(live).await.unwrap();
    for id in ["a/b", "../x", "", "x\0"] {
        let err = c
            .state(pb::StateRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "state {id:?}");
        let err = c
            .kill(pb::KillRequest {
                id: id.into(),
                signal: 9,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "kill {id:?}");
        let err = c
            .delete(pb::DeleteRequest {
                id: id.into(),
                force: true,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "delete {id:?}");
    }
    let exec_id = "no-such-exec".to_string();
    let errs = vec![
        (
            "state",
            c.state(pb::StateRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "start",
            c.start(pb::StartRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "wait",
            c.wait(pb::WaitRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "kill",
            c.kill(pb::KillRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
                signal: 15,
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
        (
            "resize",
            c.resize_pty(pb::ResizePtyRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
                size: Some(pb::ConsoleSize { rows: 10, cols: 10 }),
            })
            .await
            .unwrap_err(),
        ),
        (
            "close stdin",
            c.close_stdin(pb::CloseStdinRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "logs",
            c.logs(pb::LogsRequest {
                id: live_id.clone(),
                exec_id: exec_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
    ];
    for (what, err) in errs {
        assert_eq!(err.code(), Code::NotFound, "{what}: {err:?}");
    }
    for bad in ["a/b", "x\0", "é"] {
        let err = c
            .state(pb::StateRequest {
                id: live_id.clone(),
                exec_id: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "exec id {bad:?}");
    }
    for signal in [-1, 65, i32::MAX] {
        let err = c
            .kill(pb::KillRequest {
                id: live_id.clone(),
                signal,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "signal {signal}");
    }
    let err = c
        .stop(pb::StopRequest {
            id: live_id.clone(),
            timeout_seconds: u32::MAX,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .stats_stream(pb::StatsStreamRequest {
            id: live_id.clone(),
            interval_ms: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // An attach whose first message is not `start`.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(1);
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Stdin(b"x".to_vec())),
    })
    .await
    .unwrap();
    let err = c
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Still serving, the same daemon.
    assert!(alive(daemon));
    c.info(pb::InfoRequest {}).await.unwrap();
    let out = run(&mut c, d.request(&["echo", "still serving"])).await;
    assert_eq!(out.stdout(), "still serving\n");
    assert_eq!(exec_echo(&mut c, &live_id, "live").await.stdout, b"live\n");
    delete(&mut c, &live_id, true).await;
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
    assert!(d.cgroup_dirs().is_empty());
}
