//! Compiles the CRI subset the CRI tests and benchmark use (proto/runtime/v1/api.proto) with
//! protox (no system protoc) into a tonic client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "proto/runtime/v1/api.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
