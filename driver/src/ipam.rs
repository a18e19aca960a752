//! Addresses for bridge-mode containers, handed out from the daemon's subnet.
//!
//! The allocations live in `<root>/ipam.json` (written atomically and durably on every change),
//! so an address is never handed out twice, also across a restart of the daemon: at start the
//! file is read and reconciled with the containers found in the root (allocations of
//! containers that are gone are dropped, addresses of containers the file lacks are added).
//! Free addresses are taken round-robin after the last one handed out, so an address that was
//! just released is not reused at once (neighbours may still cache its MAC).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::convert::BridgeNetwork;
use crate::error::{Error, Result};

/// The file in the daemon's root.
pub const FILE: &str = "ipam.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    /// The subnet the file was written for (informational).
    #[serde(default)]
    subnet: String,
    /// Address -> container id.
    #[serde(default)]
    allocations: BTreeMap<Ipv4Addr, String>,
    /// The last address handed out.
    #[serde(default)]
    last: Option<Ipv4Addr>,
}

pub struct Ipam {
    dir: PathBuf,
    net: BridgeNetwork,
    allocations: BTreeMap<Ipv4Addr, String>,
    last: Option<Ipv4Addr>,
}

impl Ipam {
    /// Reads `<dir>/ipam.json` (none yet: no allocations). An unreadable file is set aside as
    /// `ipam.json.bad` and rebuilt by [`Ipam::reconcile`].
    pub fn open(dir: &Path, net: &BridgeNetwork) -> Result<Ipam> {
        let path = dir.join(FILE);
        let stored = match std::fs::read(&path) {
            Ok(data) => match serde_json::from_slice::<Stored>(&data) {
                Ok(s) => s,
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "unreadable; rebuilding from the containers");
                    let _ = std::fs::rename(&path, dir.join(format!("{FILE}.bad")));
                    Stored::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
        };
        Ok(Ipam {
            dir: dir.to_owned(),
            net: net.clone(),
            allocations: stored.allocations,
            last: stored.last,
        })
    }

    /// Makes the allocations match the containers that exist: `owners` maps each known
    /// container to the address it has (None: no bridge address). Saves the result.
    pub fn reconcile(&mut self, owners: &BTreeMap<String, Option<Ipv4Addr>>) -> Result<()> {
        self.allocations.retain(|addr, id| {
            let keep = owners.get(id).is_some_and(|a| *a == Some(*addr));
            if !keep {
                warn!(address = %addr, id = %id, "releasing the address of a container that is gone");
            }
            keep
        });
        for (id, addr) in owners {
            if let Some(addr) = addr {
                match self.allocations.get(addr) {
                    Some(other) if other != id => {
                        warn!(address = %addr, id = %id, other = %other, "address held by two containers")
                    }
                    Some(_) => {}
                    None => {
                        self.allocations.insert(*addr, id.clone());
                    }
                }
            }
        }
        self.save()
    }

    /// Hands `id` an address: `requested` if it is free, else the next free one. Saved before
    /// it returns.
    pub fn allocate(&mut self, id: &str, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        let addr = match requested {
            Some(a) => {
                if let Some(owner) = self.allocations.get(&a) {
                    return Err(Error::FailedPrecondition(format!(
                        "network.address: {a} is in use by container {owner}"
                    )));
                }
                if !self.usable(a) {
                    return Err(Error::invalid(
                        "network.address",
                        format!("{a} is not a free host address of {}", self.net.subnet),
                    ));
                }
                a
            }
            None => self.next_free().ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "network.address: no free address left in {}",
                    self.net.subnet
                ))
            })?,
        };
        let previous_last = self.last;
        self.allocations.insert(addr, id.to_owned());
        if requested.is_none() {
            self.last = Some(addr);
        }
        if let Err(e) = self.save() {
            self.allocations.remove(&addr);
            self.last = previous_last;
            return Err(e);
        }
        Ok(addr)
    }

    /// Releases every address of `id`. Saved before it returns.
    pub fn release(&mut self, id: &str) -> Result<()> {
        let before = self.allocations.len();
        self.allocations.retain(|_, owner| owner != id);
        if self.allocations.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Address -> container id.
    pub fn allocations(&self) -> &BTreeMap<Ipv4Addr, String> {
        &self.allocations
    }

    fn usable(&self, a: Ipv4Addr) -> bool {
        self.net.subnet.contains(IpAddr::V4(a))
            && self.net.is_host_address(a)
            && a != self.net.gateway
    }

    fn next_free(&self) -> Option<Ipv4Addr> {
        let first = u32::from(self.net.first_host());
        let last = u32::from(self.net.last_host());
        let count = last - first + 1;
        let start = match self.last.map(u32::from) {
            Some(l) if (first..=last).contains(&l) => l - first + 1,
            _ => 0,
        };
        (0..count)
            .map(|i| Ipv4Addr::from(first + (start + i) % count))
            .find(|a| *a != self.net.gateway && !self.allocations.contains_key(a))
    }

    fn save(&self) -> Result<()> {
        let stored = Stored {
            subnet: self.net.subnet.to_string(),
            allocations: self.allocations.clone(),
            last: self.last,
        };
        let data =
            serde_json::to_vec_pretty(&stored).map_err(|e| Error::Internal(e.to_string()))?;
        execdriver_spec::state::write_atomic(&self.dir, FILE, &data, true).map_err(Error::io(
            format!("writing {}", self.dir.join(FILE).display()),
        ))
    }
}

/// Drops from `<dir>/ipam.json` every allocation whose container is not in `keep` (for
/// `execdriverd --cleanup`, which runs without the daemon's network flags). Returns what was
/// released. No file: nothing to do.
pub fn prune(
    dir: &Path,
    keep: &std::collections::BTreeSet<String>,
) -> Result<Vec<(Ipv4Addr, String)>> {
    let path = dir.join(FILE);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
    };
    let mut stored: Stored = serde_json::from_slice(&data)
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    let released: Vec<(Ipv4Addr, String)> = stored
        .allocations
        .iter()
        .filter(|(_, id)| !keep.contains(*id))
        .map(|(a, id)| (*a, id.clone()))
        .collect();
    if released.is_empty() {
        return Ok(released);
    }
    stored.allocations.retain(|_, id| keep.contains(id));
    let data = serde_json::to_vec_pretty(&stored).map_err(|e| Error::Internal(e.to_string()))?;
    execdriver_spec::state::write_atomic(dir, FILE, &data, true)
        .map_err(Error::io(format!("writing {}", path.display())))?;
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "execdriver-ipam-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn net(subnet: &str) -> BridgeNetwork {
        BridgeNetwork::new("br0", subnet, None, 0).unwrap()
    }

    #[test]
    fn hands_out_free_addresses_round_robin_and_persists() {
        let dir = tmp();
        let n = net("192.0.2.0/29"); // hosts .1-.6, gateway .1
        let mut ipam = Ipam::open(&dir, &n).unwrap();
        let a = ipam.allocate("a", None).unwrap();
        let b = ipam.allocate("b", None).unwrap();
        assert_eq!(a, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(b, Ipv4Addr::new(192, 0, 2, 3));
        ipam.release("a").unwrap();
        // Not .2 again at once: round robin.
        assert_eq!(
            ipam.allocate("c", None).unwrap(),
            Ipv4Addr::new(192, 0, 2, 4)
        );
        // Reopened: the same allocations, and the round robin goes on.
        let mut again = Ipam::open(&dir, &n).unwrap();
        assert_eq!(again.allocations().len(), 2);
        assert_eq!(
            again.allocate("d", None).unwrap(),
            Ipv4Addr::new(192, 0, 2, 5)
        );
        assert_eq!(
            again.allocate("e", None).unwrap(),
            Ipv4Addr::new(192, 0, 2, 6)
        );
        // Wraps around, skipping the gateway and what is taken: .2 is free.
        assert_eq!(
            again.allocate("f", None).unwrap(),
            Ipv4Addr::new(192, 0, 2, 2)
        );
        match again.allocate("g", None) {
            Err(Error::FailedPrecondition(m)) => assert!(m.contains("no free address"), "{m}"),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn requested_addresses_and_conflicts() {
        let dir = tmp();
        let mut ipam = Ipam::open(&dir, &net("10.9.0.0/24")).unwrap();
        let want = Ipv4Addr::new(10, 9, 0, 50);
        assert_eq!(ipam.allocate("a", Some(want)).unwrap(), want);
        match ipam.allocate("b", Some(want)) {
            Err(Error::FailedPrecondition(m)) => {
                assert!(m.starts_with("network.address"), "{m}");
                assert!(m.contains("container a"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        for bad in [[10, 9, 0, 1], [10, 9, 0, 0], [10, 9, 0, 255], [10, 9, 1, 1]] {
            assert!(ipam.allocate("b", Some(Ipv4Addr::from(bad))).is_err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reconcile_drops_the_gone_and_adds_the_missing() {
        let dir = tmp();
        let n = net("10.9.0.0/24");
        let mut ipam = Ipam::open(&dir, &n).unwrap();
        ipam.allocate("gone", None).unwrap();
        let kept = ipam.allocate("kept", None).unwrap();
        let owners = BTreeMap::from([
            ("kept".to_string(), Some(kept)),
            ("unrecorded".to_string(), Some(Ipv4Addr::new(10, 9, 0, 77))),
            ("hostnet".to_string(), None),
        ]);
        ipam.reconcile(&owners).unwrap();
        let again = Ipam::open(&dir, &n).unwrap();
        let got: Vec<(Ipv4Addr, String)> = again
            .allocations()
            .iter()
            .map(|(a, i)| (*a, i.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (kept, "kept".to_string()),
                (Ipv4Addr::new(10, 9, 0, 77), "unrecorded".to_string())
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prune_keeps_only_the_named() {
        let dir = tmp();
        let n = net("10.9.0.0/24");
        let mut ipam = Ipam::open(&dir, &n).unwrap();
        let a = ipam.allocate("a", None).unwrap();
        let b = ipam.allocate("b", None).unwrap();
        let keep = std::collections::BTreeSet::from(["a".to_string()]);
        assert_eq!(prune(&dir, &keep).unwrap(), vec![(b, "b".to_string())]);
        assert!(prune(&dir, &keep).unwrap().is_empty());
        let again = Ipam::open(&dir, &n).unwrap();
        assert_eq!(again.allocations().len(), 1);
        assert_eq!(again.allocations()[&a], "a");
        std::fs::remove_dir_all(&dir).unwrap();
        // No file: nothing.
        assert!(prune(&dir, &keep).unwrap().is_empty());
    }
}
