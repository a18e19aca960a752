//! Compiles the shim protocol (`proto/execdriver/shim/v1/shim.proto`, beside the gRPC contract)
//! with protox: pure Rust, no system protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = "execdriver/shim/v1/shim.proto";
    println!("cargo:rerun-if-changed={}", root.join(file).display());
    let fds = protox::compile([file], [&root])?;
    prost_build::Config::new()
        // Output is sliced from the frame the driver read, not copied again.
        .bytes([".execdriver.shim.v1.Output.data"])
        .compile_fds(fds)?;
    Ok(())
}
