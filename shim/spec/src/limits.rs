//! Numbers the driver and the shim must agree on.

use std::time::Duration;

/// Queued output bytes per attached client above which the shim stops reading the container's
/// output (backpressure).
pub const HIGH_WATER: usize = 4 << 20;

/// How long an attached client may hold the container's output up before the shim drops it
/// (the driver reports RESOURCE_EXHAUSTED to that client).
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
