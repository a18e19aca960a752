//! The execdriver.v1 gRPC contract: generated messages, the tonic client and server.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("execdriver.v1");

    /// The encoded FileDescriptorSet of execdriver.v1, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/execdriver_descriptor.bin"));
}

pub use v1::*;
