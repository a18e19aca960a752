//! The names and values of container.json's `networks`: strategy types and context keys,
//! addresses with prefixes, MAC addresses, interface names. (Which strategies a config asks
//! for: `Config::veths` and `Config::netns_path`.) Setting them up is the shim's (`execdriver_shim::network`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `type` of the loopback strategy.
pub const LOOPBACK: &str = "loopback";
/// `type` of the veth-on-a-bridge strategy.
pub const VETH: &str = "veth";
/// `type` of the join-a-network-namespace strategy.
pub const NETNS: &str = "netns";
/// `type` of the user-mode strategy: `slirp4netns` gives the container's own network
/// namespace a tap device and routes its traffic through the host's sockets.
pub const SLIRP4NETNS: &str = "slirp4netns";
/// The tap device slirp4netns makes in the container.
pub const SLIRP_IFNAME: &str = "tap0";
/// What slirp4netns gives the container (its defaults, `--cidr` 10.0.2.0/24): the address,
/// the gateway (the host; its 127.0.0.1 too, as slirp4netns runs without
/// `--disable-host-loopback`) and the DNS forwarder.
pub const SLIRP_ADDRESS: &str = "10.0.2.100/24";
pub const SLIRP_GATEWAY: &str = "10.0.2.2";
pub const SLIRP_DNS: &str = "10.0.2.3";
/// The tap's MTU when `mtu` is 0 (what Podman and rootlesskit give slirp4netns).
pub const SLIRP_DEFAULT_MTU: u32 = 65520;
/// The largest MTU slirp4netns takes.
pub const SLIRP_MAX_MTU: u32 = 65521;
/// The veth strategy's `context` keys.
pub const CONTEXT_BRIDGE: &str = "bridge";
pub const CONTEXT_PREFIX: &str = "prefix";
/// The netns strategy's `context` key (libcontainer 2014's name).
pub const CONTEXT_NSPATH: &str = "nspath";
/// The host end's name prefix when `context.prefix` is not given.
pub const DEFAULT_PREFIX: &str = "veth";
/// The longest interface name the kernel takes (IFNAMSIZ less the NUL).
pub const IFNAME_MAX: usize = 15;
/// The longest veth prefix: it leaves at least 4 random hex digits within [`IFNAME_MAX`].
pub const MAX_PREFIX: usize = IFNAME_MAX - 4;
/// At most this many veth strategies per container.
pub const MAX_VETHS: usize = 16;

// ---------------------------------------------------------------------------------------------
// Addresses and names

/// An address with its prefix length, `10.88.0.2/16`; also a network, `10.88.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX` (IPv4 or IPv6).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let Some((a, p)) = s.split_once('/') else {
            return Err(format!("{s:?} is not ADDRESS/PREFIX (CIDR)"));
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} in {s:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{p:?} in {s:?} is not a prefix length 0 to {max}"))?;
        Ok(Cidr { addr, prefix })
    }

    fn mask(&self) -> u128 {
        let bits = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == 0 {
            0
        } else {
            (u128::MAX << (128 - self.prefix as u32)) >> (128 - bits)
        }
    }

    fn bits(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v) => u32::from(v) as u128,
            IpAddr::V6(v) => u128::from(v),
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        let n = Self::bits(self.addr) & self.mask();
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }

    /// Whether `ip` is in this network (same family, same network bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && Self::bits(ip) & self.mask() == Self::bits(self.addr) & self.mask()
    }

    /// The IPv4 broadcast address (all host bits set); None for IPv6.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(v) => Some(Ipv4Addr::from(u32::from(v) | !(self.mask() as u32))),
            IpAddr::V6(_) => None,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff`; it must be unicast and not all zeros.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    for (b, p) in mac.iter_mut().zip(&parts) {
        *b = (p.len() == 2)
            .then(|| u8::from_str_radix(p, 16).ok())
            .flatten()
            .ok_or_else(|| format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
    }
    if mac[0] & 1 != 0 {
        return Err(format!("{s:?} is a multicast address"));
    }
    if mac == [0; 6] {
        return Err(format!("{s:?} is all zeros"));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A random unicast MAC with the locally administered bit set (`x2:`, `x6:`, `xa:`, `xe:`).
pub fn random_mac() -> std::io::Result<[u8; 6]> {
    let mut mac = crate::id::random_bytes::<6>()?;
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}

/// Checks an interface name: 1 to 15 bytes, no '/', ':', whitespace or NUL, not "." or "..".
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing".into());
    }
    if name.len() > IFNAME_MAX {
        return Err(format!("{name:?} is longer than {IFNAME_MAX} bytes"));
    }
    if name == "." || name == ".." || name.bytes().any(|b| b <= b' ' || b"/:\x7f".contains(&b)) {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}

/// The host end's name: `prefix` and random hex digits, `IFNAME_MAX` bytes at most (8 digits
/// at most).
pub fn host_link_name(prefix: &str) -> std::io::Result<String> {
    let digits = (IFNAME_MAX - prefix.len().min(IFNAME_MAX)).min(8);
    let hex: String = crate::id::random_bytes::<4>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("{prefix}{}", &hex[..digits]))
}

/// The name of the `n`th veth inside the container: eth0, eth1, ...
pub fn peer_name(n: usize) -> String {
    format!("eth{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_arithmetic() {
        let c = Cidr::parse("10.88.3.7/16").unwrap();
        assert_eq!(c.to_string(), "10.88.3.7/16");
        assert_eq!(c.network(), "10.88.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(c.broadcast(), Some("10.88.255.255".parse().unwrap()));
        assert!(c.contains("10.88.200.1".parse().unwrap()));
        assert!(!c.contains("10.89.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let z = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(z.contains("1.2.3.4".parse().unwrap()));
        let v6 = Cidr::parse("fd00:1::5/64").unwrap();
        assert!(v6.contains("fd00:1::ffff".parse().unwrap()));
        assert!(!v6.contains("fd00:2::1".parse().unwrap()));
        assert_eq!(v6.broadcast(), None);
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0/8",
            "x/8",
            "10.0.0.1/",
            "::/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert_eq!(
            format_mac(&[2, 0x42, 0xac, 0x11, 0, 2]),
            "02:42:ac:11:00:02"
        );
        for bad in [
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "02:42:ac:11:00",
            "02:42:ac:11:00:2",
            "zz:42:ac:11:00:02",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        for _ in 0..32 {
            let m = random_mac().unwrap();
            assert_eq!(m[0] & 0x01, 0, "unicast");
            assert_eq!(m[0] & 0x02, 0x02, "locally administered");
        }
    }

    #[test]
    fn host_names_fit_ifnamsiz() {
        for prefix in ["veth", "", "x", "abcdefghijk"] {
            let n = host_link_name(prefix).unwrap();
            assert!(n.len() <= IFNAME_MAX, "{n}");
            assert!(n.starts_with(prefix));
            assert!(n.len() >= prefix.len() + 4, "{n}");
            check_ifname(&n).unwrap();
        }
        assert_ne!(
            host_link_name("veth").unwrap(),
            host_link_name("veth").unwrap()
        );
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
        assert!(check_ifname(&"x".repeat(16)).is_err());
        assert!(check_ifname("").is_err());
    }
}
