//! A daemon's bridge is its own: two daemons handing out addresses from one bridge would give
//! two containers the same address. A daemon claims its bridge by binding an abstract unix
//! socket named after it; abstract names belong to the network namespace, as the bridge does,
//! and the kernel releases the name when the daemon exits however it ends. A second daemon
//! asking for the bridge is refused with the root of the one that holds it.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::Path;

use crate::error::{Error, Result};

fn name(bridge: &str) -> String {
    format!("execdriver/bridge/{bridge}")
}

/// Claims `bridge` for the daemon of `root` until the process exits. A thread answers whoever
/// asks who holds it with the root's path.
pub fn bridge(bridge: &str, root: &Path) -> Result<()> {
    let addr = SocketAddr::from_abstract_name(name(bridge).as_bytes())
        .map_err(|e| Error::Internal(format!("--bridge {bridge}: {e}")))?;
    let listener = match UnixListener::bind_addr(&addr) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(Error::FailedPrecondition(format!(
                "--bridge {bridge}: another execdriverd in this network namespace uses it \
                 (root {}); give each daemon a bridge and a subnet of its own",
                holder(bridge).unwrap_or_else(|| "unknown".into())
            )))
        }
        Err(e) => return Err(Error::Internal(format!("claiming --bridge {bridge}: {e}"))),
    };
    let answer = root.display().to_string();
    std::thread::Builder::new()
        .name("bridge-claim".into())
        .spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.write_all(answer.as_bytes());
            }
        })
        .map_err(|e| Error::Internal(format!("claiming --bridge {bridge}: {e}")))?;
    Ok(())
}

/// The root of the daemon holding `bridge`, if it answers.
fn holder(bridge: &str) -> Option<String> {
    let addr = SocketAddr::from_abstract_name(name(bridge).as_bytes()).ok()?;
    let conn = UnixStream::connect_addr(&addr).ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .ok()?;
    let mut out = String::new();
    conn.take(4096).read_to_string(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_is_claimed_once_and_the_refusal_names_the_holder() {
        let bridge = format!("edclaim{}", std::process::id());
        bridge_claim_ok(&bridge);
        let err = super::bridge(&bridge, Path::new("/other/root")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/first/root"), "{text}");
        assert!(text.contains(&format!("--bridge {bridge}")), "{text}");
    }

    fn bridge_claim_ok(bridge: &str) {
        super::bridge(bridge, Path::new("/first/root")).unwrap();
    }
}
