//! Clients that send the socket's path as `:authority` (grpcio, grpc-java, Bazel, some
//! grpc-go: the path itself, or percent-encoded without its leading slash) are served like any
//! other (the h2 patch, third_party/h2/PATCH.md): raw HTTP/2 requests carrying such
//! authorities, and a plain grpcio channel opened with no options.

use std::process::Command;

use execdriver_tests::foreign::{self, grpc_unary, Exchange};
use execdriver_tests::{pb, Daemon};
use prost::Message;

const INFO: &str = "/execdriver.v1.ExecDriver/Info";

/// The daemon's h2 says (at debug) when it ignores an authority: the tests show they sent one.
const LOG: [&str; 2] = ["--log-level", "info,h2::server=debug"];
const IGNORED: &str = "ignoring malformed authority";

fn assert_info(ex: &Exchange, what: &str) {
    assert_eq!(ex.reset, None, "{what}: the stream was reset: {ex:?}");
    assert_eq!(ex.status(), Some("200"), "{what}: {ex:?}");
    assert_eq!(ex.grpc_status(), Some("0"), "{what}: {ex:?}");
    assert!(ex.ended, "{what}: {ex:?}");
    let messages = ex.grpc_messages();
    assert_eq!(messages.len(), 1, "{what}: {ex:?}");
    let info = pb::InfoResponse::decode(messages[0]).expect("an InfoResponse");
    assert!(!info.version.is_empty(), "{what}: {info:?}");
}

#[test]
fn raw_requests_with_a_socket_path_as_authority_are_served() {
    let d = Daemon::start_with(&LOG);
    let path = d.socket.display().to_string();
    // What grpcio sends: the path percent-encoded, without its leading slash.
    let grpcio = path.trim_start_matches('/').replace('/', "%2F");
    for authority in [
        "/run/x.sock",
        path.as_str(),
        "run%2Fx.sock",
        "%2Frun%2Fx.sock",
        grpcio.as_str(),
        "unix:///run/x.sock",
        "/run/dir with space/x.sock",
        // Valid authorities, as before.
        "localhost",
        "localhost:50051",
    ] {
        let ex = grpc_unary(&d.socket, authority, INFO, &[])
            .unwrap_or_else(|e| panic!("{authority}: {e}\n{}", d.log()));
        assert_info(&ex, authority);
    }
    // No :authority at all (HTTP/2 allows it).
    let ex = foreign::request(
        &d.socket,
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", INFO),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
        &[0; 5],
    )
    .unwrap();
    assert_info(&ex, "no :authority");
    assert!(d.log().contains(IGNORED), "{}", d.log());
}

/// The patch's bounds: CONNECT names its target in :authority, so a path there is still
/// malformed and the stream is reset with PROTOCOL_ERROR, as h2 always did.
#[test]
fn a_connect_to_a_socket_path_is_still_refused() {
    let d = Daemon::start();
    let ex = foreign::request(
        &d.socket,
        &[(":method", "CONNECT"), (":authority", "/run/x.sock")],
        &[],
    )
    .unwrap();
    assert_eq!(ex.reset, Some(1), "{ex:?}");
    // The connection serves on.
    let ex = grpc_unary(&d.socket, "/run/x.sock", INFO, &[]).unwrap();
    assert_info(&ex, "after the CONNECT");
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An integration harness written the obvious way: `grpc.insecure_channel("unix://" + path)`
/// and nothing else (no `grpc.default_authority`). Unary calls with raw protobuf bytes, so no
/// generated code is needed.
#[test]
fn a_plain_grpcio_channel_works() {
    foreign::require_python("grpc");
    let d = Daemon::start_with(&LOG);
    let script = r#"
import sys, grpc
channel = grpc.insecure_channel("unix://" + sys.argv[1])
def call(method, request):
    return channel.unary_unary(method)(request, timeout=10)
print(call("/execdriver.v1.ExecDriver/Info", b"").hex())
print(call("/grpc.health.v1.Health/Check", b"").hex())
try:
    call("/execdriver.v1.ExecDriver/State", b"\x0a\x04nope")
    print("State of no container succeeded")
except grpc.RpcError as e:
    print(e.code().name, e.details())
channel.close()
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&d.socket)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "grpcio failed ({}):\n{stdout}\n{}\ndaemon log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let info = pb::InfoResponse::decode(&unhex(lines[0])[..]).expect("an InfoResponse");
    assert!(!info.version.is_empty(), "{info:?}");
    let health = tonic_health::pb::HealthCheckResponse::decode(&unhex(lines[1])[..]).unwrap();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert!(lines[2].starts_with("NOT_FOUND"), "{stdout}");
    // grpcio did send the socket's path (if a later grpcio sends `localhost`, this test no
    // longer covers the patch and should say so).
    assert!(
        d.log().contains(IGNORED),
        "grpcio sent a valid :authority; daemon log:\n{}",
        d.log()
    );
}
