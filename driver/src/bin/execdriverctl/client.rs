//! The daemon's gRPC client as the commands hold it, and how an RPC's error becomes the
//! message we print.

use execdriver_proto::exec_driver_client::ExecDriverClient;
use tonic::transport::Channel;

pub type Client = ExecDriverClient<Channel>;

/// An RPC's reply, or its status's message.
pub fn st<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, String> {
    r.map(|r| r.into_inner())
        .map_err(|s| s.message().to_owned())
}
