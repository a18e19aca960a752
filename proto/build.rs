//! Compiles proto/execdriver/v1/*.proto with protox (pure Rust: no system protoc) and generates
//! the tonic client and server. The encoded descriptor set is kept for gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["execdriver/v1/execdriver.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("execdriver_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Output relayed from a shim to an Attach client is sliced from the frame read, not
        // copied again.
        .bytes(".execdriver.v1.OutputChunk.data")
        .compile_fds(fds)?;
    Ok(())
}
