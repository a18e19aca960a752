//! [`Config::validate`]: every field of a container.json checked, the error naming the first
//! field that is wrong as a typed [`Field`]. The value checks in [`check`] return only the
//! reason, so the driver applies the same rules to request fields and names them itself.

use std::net::IpAddr;
use std::path::Path;

use super::{
    CgroupField, Config, ConfigError, Field, MountField, NetworkField, User, MAX_MTU, MIN_MTU,
};
use crate::namespaces::Namespace;
use crate::network::{self as net, Cidr};

/// Maximum lengths for strings that end up in kernel calls.
pub const MAX_HOSTNAME: usize = 64;
pub const MAX_ARG_BYTES: usize = 128 * 1024;
/// The longest single argument or environment string execve(2) takes (MAX_ARG_STRLEN).
pub const MAX_EXEC_STRING: usize = 128 * 1024;
/// The most bytes of arguments and environment (strings, their NULs and pointers) a container
/// may ask for: half of what execve takes under the usual 8 MiB stack limit, so the command,
/// PATH/HOME/TERM added by the shim and the kernel's own auxv fit too.
pub const MAX_EXEC_BYTES: usize = 1 << 20;

/// Bind-mount destinations the container's own filesystems are at; and what may be bound
/// below /proc (the files lxcfs provides, as runc allows).
pub const RESERVED_DESTINATIONS: [&str; 3] = ["/dev", "/proc", "/sys"];
pub const PROC_FILES_ALLOWED: [&str; 8] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/loadavg",
    "/proc/meminfo",
    "/proc/slabinfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
];

/// Value checks shared by every front end: `Err` is the reason, the caller names the field.
pub mod check {
    use std::path::{Component, Path};

    pub fn no_nul(s: &str) -> Result<(), String> {
        if s.contains('\0') {
            return Err("contains a NUL byte".into());
        }
        Ok(())
    }

    /// A present, absolute path without NUL bytes.
    pub fn absolute(p: &Path) -> Result<(), String> {
        if p.as_os_str().is_empty() {
            return Err("missing".into());
        }
        if !p.is_absolute() {
            return Err(format!("{} is not an absolute path", p.display()));
        }
        if p.as_os_str().as_encoded_bytes().contains(&0) {
            return Err("contains a NUL byte".into());
        }
        Ok(())
    }

    pub fn no_dotdot(p: &Path) -> Result<(), String> {
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(format!("{} contains '..'", p.display()));
        }
        Ok(())
    }

    /// One `KEY=VALUE` environment entry.
    pub fn env_entry(e: &str) -> Result<(), String> {
        no_nul(e)?;
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() => Ok(()),
            _ => Err("must be KEY=VALUE".into()),
        }
    }

    /// A cgroup path piece: plain names separated by '/', no '..', nothing absolute.
    pub fn cgroup_component(s: &str, allow_slash: bool) -> Result<(), String> {
        if s.is_empty() {
            return if allow_slash {
                Ok(())
            } else {
                Err("missing".into())
            };
        }
        let bad = |why: &str| Err(format!("{s:?} {why}"));
        if s.len() > 200 {
            return bad("is longer than 200 bytes");
        }
        if !allow_slash && s.contains('/') {
            return bad("contains '/'");
        }
        for part in s.trim_matches('/').split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return bad("has an empty, '.' or '..' component");
            }
            // The daemon's parked shims' sets (`.pool-TOKEN`) are no container's to use.
            if part.starts_with(".pool-") {
                return bad("has a '.pool-' component (the daemon's own)");
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:@".contains(&b))
            {
                return bad("has characters outside [A-Za-z0-9_.:@-]");
            }
        }
        Ok(())
    }
}

fn at(field: Field) -> impl FnOnce(String) -> ConfigError {
    move |reason| ConfigError::new(field, reason)
}

impl Config {
    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hostname.len() > MAX_HOSTNAME {
            return Err(ConfigError::new(
                Field::Hostname,
                format!("longer than {MAX_HOSTNAME} bytes"),
            ));
        }
        if self.hostname.contains(['\0', '/']) {
            return Err(ConfigError::new(Field::Hostname, "contains NUL or '/'"));
        }
        if !self.hostname.is_empty() && !self.has_namespace(Namespace::Uts) {
            return Err(ConfigError::new(
                Field::Hostname,
                "setting a hostname needs the NEWUTS namespace",
            ));
        }
        if !self.has_namespace(Namespace::Mount) {
            return Err(ConfigError::new(
                Field::Namespaces,
                "NEWNS is required (the rootfs is pivoted into)",
            ));
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            if self.namespaces[..i].contains(ns) {
                return Err(ConfigError::new(
                    Field::Namespace(i),
                    format!("{ns} listed twice"),
                ));
            }
        }
        for (i, e) in self.environment.iter().enumerate() {
            check::env_entry(e).map_err(at(Field::Environment(i)))?;
        }
        for (i, c) in self.capabilities_mask.iter().enumerate() {
            if !crate::capabilities::is_valid(c) {
                return Err(ConfigError::new(
                    Field::CapabilitiesMask(i),
                    format!("unknown capability {c:?}"),
                ));
            }
        }
        for (i, m) in self.mounts.iter().enumerate() {
            let source = Field::Mount(i, MountField::Source);
            let destination = Field::Mount(i, MountField::Destination);
            check::absolute(&m.source).map_err(at(source))?;
            check::absolute(&m.destination).map_err(at(destination.clone()))?;
            check::no_dotdot(&m.destination).map_err(at(destination.clone()))?;
            if m.destination == Path::new("/") {
                return Err(ConfigError::new(destination, "cannot mount over /"));
            }
            let dest = m.destination.to_string_lossy();
            let dest = dest.trim_end_matches('/');
            if RESERVED_DESTINATIONS.contains(&dest) {
                return Err(ConfigError::new(
                    destination,
                    format!("cannot mount over {dest}: the container has its own"),
                ));
            }
            if dest.starts_with("/proc/") && !PROC_FILES_ALLOWED.contains(&dest) {
                return Err(ConfigError::new(
                    destination,
                    format!(
                        "{dest}: below /proc only {} may be bound (the container's /proc is its own)",
                        PROC_FILES_ALLOWED.join(", ")
                    ),
                ));
            }
        }
        if let Some(cg) = &self.cgroups {
            check::cgroup_component(&cg.name, false)
                .map_err(at(Field::Cgroups(CgroupField::Name)))?;
            check::cgroup_component(&cg.parent, true)
                .map_err(at(Field::Cgroups(CgroupField::Parent)))?;
            cg.validate_resources()?;
        }
        User::parse(&self.user).map_err(at(Field::User))?;
        if !self.working_dir.is_empty() {
            let cwd = Path::new(&self.working_dir);
            check::absolute(cwd).map_err(at(Field::WorkingDir))?;
            check::no_dotdot(cwd).map_err(at(Field::WorkingDir))?;
        }
        if let Some(rootfs) = &self.rootfs {
            check::absolute(rootfs).map_err(at(Field::Rootfs))?;
        }
        let mut arg_bytes = 0;
        for (i, a) in self.args.iter().enumerate() {
            check::no_nul(a).map_err(at(Field::Arg(i)))?;
            if a.len() >= MAX_EXEC_STRING {
                return Err(ConfigError::new(
                    Field::Arg(i),
                    format!(
                        "longer than {MAX_EXEC_STRING} bytes (the kernel's limit for one string)"
                    ),
                ));
            }
            arg_bytes += a.len() + 1;
        }
        // Arguments and environment together, as execve counts them (string, NUL, pointer).
        let mut exec_bytes = self.args.iter().map(|a| a.len() + 9).sum::<usize>();
        for (i, e) in self.environment.iter().enumerate() {
            if e.len() >= MAX_EXEC_STRING {
                return Err(ConfigError::new(
                    Field::Environment(i),
                    format!(
                        "longer than {MAX_EXEC_STRING} bytes (the kernel's limit for one string)"
                    ),
                ));
            }
            exec_bytes += e.len() + 9;
            if exec_bytes > MAX_EXEC_BYTES {
                return Err(ConfigError::new(
                    Field::Environment(i),
                    format!(
                        "the arguments and environment reach {exec_bytes} bytes here; at most {MAX_EXEC_BYTES} in all (execve would refuse them)"
                    ),
                ));
            }
        }
        if arg_bytes > MAX_ARG_BYTES {
            return Err(ConfigError::new(
                Field::Args,
                format!("longer than {MAX_ARG_BYTES} bytes"),
            ));
        }
        if self.args.first().is_some_and(|a| a.is_empty()) {
            return Err(ConfigError::new(Field::Arg(0), "empty command"));
        }
        self.check_networks()?;
        super::security::validate(self)?;
        super::mapped::validate(self)?;
        super::extended::validate(self)
    }

    /// The `networks` strategies: known types, with the fields each needs, well-formed.
    fn check_networks(&self) -> Result<(), ConfigError> {
        let own_netns = self.has_namespace(Namespace::Net);
        let joins = self
            .networks
            .iter()
            .filter(|n| n.kind == net::NETNS)
            .count();
        let veths = self.networks.iter().filter(|n| n.kind == net::VETH).count();
        let slirps = self
            .networks
            .iter()
            .filter(|n| n.kind == net::SLIRP4NETNS)
            .count();
        if veths > net::MAX_VETHS {
            return Err(ConfigError::new(
                Field::Networks,
                format!("{veths} veth networks; at most {}", net::MAX_VETHS),
            ));
        }
        let mut gateways = (false, false); // (IPv4, IPv6): one default route each
        for (i, n) in self.networks.iter().enumerate() {
            let field = |f: NetworkField| Field::Network(i, f);
            let err = |f: NetworkField, why: &str| Err(ConfigError::new(field(f), why));
            match n.kind.as_str() {
                "" => return err(NetworkField::Type, "missing"),
                net::LOOPBACK => {
                    // The seed's era wrote address/gateway/mtu on loopback too; they are ignored.
                    if !own_netns && joins == 0 {
                        return err(NetworkField::Type, "loopback needs the NEWNET namespace");
                    }
                }
                net::NETNS => {
                    if joins > 1 {
                        return err(NetworkField::Type, "only one netns network can be joined");
                    }
                    if veths > 0 || slirps > 0 {
                        return err(
                            NetworkField::Type,
                            "netns cannot be combined with veth or slirp4netns (the joined namespace is configured by its owner)",
                        );
                    }
                    let path = n.context.get(net::CONTEXT_NSPATH).map(String::as_str);
                    check::absolute(Path::new(path.unwrap_or("")))
                        .map_err(at(field(NetworkField::Context(net::CONTEXT_NSPATH))))?;
                }
                net::VETH => {
                    if !own_netns {
                        return err(NetworkField::Type, "veth needs the NEWNET namespace");
                    }
                    let bridge = n.context.get(net::CONTEXT_BRIDGE).map(String::as_str);
                    net::check_ifname(bridge.unwrap_or(""))
                        .map_err(at(field(NetworkField::Context(net::CONTEXT_BRIDGE))))?;
                    if let Some(prefix) = n.context.get(net::CONTEXT_PREFIX) {
                        let prefix_field = field(NetworkField::Context(net::CONTEXT_PREFIX));
                        if prefix.len() > net::MAX_PREFIX {
                            return Err(ConfigError::new(
                                prefix_field,
                                format!(
                                    "{prefix:?} is longer than {} bytes (the name gets at least 4 random digits within {})",
                                    net::MAX_PREFIX,
                                    net::IFNAME_MAX
                                ),
                            ));
                        }
                        if !prefix.is_empty() {
                            net::check_ifname(prefix).map_err(at(prefix_field))?;
                        }
                    }
                    self.check_veth(i, n, &mut gateways)?;
                }
                net::SLIRP4NETNS => self.check_slirp4netns(i, n, veths, slirps)?,
                other => {
                    return Err(ConfigError::new(
                        field(NetworkField::Type),
                        format!(
                            "unknown network type {other:?} (loopback, veth, netns, slirp4netns)"
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The user-mode network: in the container's own network namespace, alone (slirp4netns
    /// sets the address, gateway and default route itself), with an MTU slirp4netns takes.
    fn check_slirp4netns(
        &self,
        i: usize,
        n: &super::Network,
        veths: usize,
        slirps: usize,
    ) -> Result<(), ConfigError> {
        let field = |f: NetworkField| Field::Network(i, f);
        let err = |f: NetworkField, why: &str| Err(ConfigError::new(field(f), why));
        if !self.has_namespace(Namespace::Net) {
            return err(NetworkField::Type, "slirp4netns needs the NEWNET namespace");
        }
        if slirps > 1 {
            return err(NetworkField::Type, "at most one slirp4netns network");
        }
        if veths > 0 {
            return err(
                NetworkField::Type,
                "slirp4netns cannot be combined with veth (both would set the default route)",
            );
        }
        let fixed = "slirp4netns gives 10.0.2.100/24, gateway 10.0.2.2; leave it empty";
        if !n.address.is_empty() {
            return err(NetworkField::Address, fixed);
        }
        if !n.gateway.is_empty() {
            return err(NetworkField::Gateway, fixed);
        }
        if !n.mac_address.is_empty() {
            return err(NetworkField::MacAddress, "not supported with slirp4netns");
        }
        if let Some(key) = n.context.keys().next() {
            return Err(ConfigError::new(
                field(NetworkField::Contexts),
                format!("{key:?}: slirp4netns takes no context"),
            ));
        }
        if n.mtu != 0 && !(MIN_MTU..=net::SLIRP_MAX_MTU).contains(&n.mtu) {
            return Err(ConfigError::new(
                field(NetworkField::Mtu),
                format!(
                    "{} is not 0 ({}) or {MIN_MTU} to {}",
                    n.mtu,
                    net::SLIRP_DEFAULT_MTU,
                    net::SLIRP_MAX_MTU
                ),
            ));
        }
        Ok(())
    }

    /// A veth's address, gateway (one default route per family), MTU and MAC.
    fn check_veth(
        &self,
        i: usize,
        n: &super::Network,
        gateways: &mut (bool, bool),
    ) -> Result<(), ConfigError> {
        let field = |f: NetworkField| Field::Network(i, f);
        if n.address.is_empty() {
            return Err(ConfigError::new(field(NetworkField::Address), "missing"));
        }
        let cidr = Cidr::parse(&n.address).map_err(at(field(NetworkField::Address)))?;
        if cidr.addr.is_unspecified() || cidr.addr.is_multicast() || cidr.addr.is_loopback() {
            return Err(ConfigError::new(
                field(NetworkField::Address),
                format!("{} is not a unicast host address", cidr.addr),
            ));
        }
        if !n.gateway.is_empty() {
            let gateway = field(NetworkField::Gateway);
            let gw: IpAddr = n.gateway.parse().map_err(|_| {
                ConfigError::new(
                    gateway.clone(),
                    format!("{:?} is not an IP address", n.gateway),
                )
            })?;
            if !cidr.contains(gw) {
                return Err(ConfigError::new(
                    gateway,
                    format!("{gw} is not in {}/{}", cidr.network(), cidr.prefix),
                ));
            }
            if gw == cidr.addr {
                return Err(ConfigError::new(gateway, "is the container's own address"));
            }
            let seen = if gw.is_ipv4() {
                &mut gateways.0
            } else {
                &mut gateways.1
            };
            if std::mem::replace(seen, true) {
                return Err(ConfigError::new(
                    gateway,
                    "a second default route of the same family",
                ));
            }
        }
        if n.mtu != 0 && !(MIN_MTU..=MAX_MTU).contains(&n.mtu) {
            return Err(ConfigError::new(
                field(NetworkField::Mtu),
                format!(
                    "{} is not 0 (the bridge's) or {MIN_MTU} to {MAX_MTU}",
                    n.mtu
                ),
            ));
        }
        if !n.mac_address.is_empty() {
            net::parse_mac(&n.mac_address).map_err(at(field(NetworkField::MacAddress)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check::cgroup_component;

    #[test]
    fn cgroup_paths_keep_out_of_the_daemons_pool() {
        assert!(cgroup_component("execdriver/.pool-r1234-5", true).is_err());
        assert!(cgroup_component(".pool-x", false).is_err());
        assert!(cgroup_component("execdriver/pool-x", true).is_ok());
        assert!(cgroup_component("a/.hidden", true).is_ok());
        assert!(cgroup_component("a/../b", true).is_err());
    }
}
