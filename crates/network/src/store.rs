//! Networks, leases and published ports: rows of `berth.db`, and the links
//! and nftables elements that go with them.
//!
//! Every allocation is one `BEGIN IMMEDIATE` transaction (the writer lock
//! first, then the read of what is taken, then the insert), and the
//! tables' UNIQUE constraints back it: two commands never get one address
//! or one host port. Host-wide choices (a bridge name, a subnet no route
//! uses yet) are made under a file lock in /run shared by every berth root
//! on the host, and the bridge is made before that lock is let go, so the
//! next root sees its route.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rusqlite::{params, Connection, OptionalExtension};

use crate::netlink::Netlink;
use crate::ports::{PortMapping, PortSpec, Proto};
use crate::subnet::Subnet;
use crate::{nft, nft_elements, Context, Error, Result};

/// The default network's name, as docker's.
pub const DEFAULT_NAME: &str = "bridge";

/// Where the default network's subnet is looked for: the first /16 of
/// 10.200-10.254 that no host route and no other network uses (podman's
/// default is 10.88.0.0/16 and its user networks 10.89.x.0/24; docker's
/// 172.17.0.0/16 and 172.18+).
const DEFAULT_POOL: (u8, u8) = (200, 254);

/// Where user networks without `--subnet` get theirs: /24s of
/// 10.199.0.0/16.
const USER_POOL_SECOND_OCTET: u8 = 199;

/// The host-wide lock for choices every berth root shares.
const HOST_LOCK: &str = "/run/berth-network.lock";

/// A `networks` row as read: id, name, bridge, subnet, gateway, internal,
/// created, labels, ipam.
type NetworkRow = (
    String,
    String,
    String,
    String,
    String,
    bool,
    String,
    String,
    String,
);

/// The columns of a `networks` row, in [`NetworkRow`]'s order.
const NETWORK_COLUMNS: &str = "id, name, bridge, subnet, gateway, internal, created, labels, ipam";

/// `network create`'s address settings beyond the subnet and gateway
/// (docker's IPAM configuration), kept as JSON in the row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Ipam {
    /// `--ip-range`: where containers' addresses are taken from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Subnet>,
    /// `--aux-address NAME=IP`: addresses no container is given.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aux_addresses: std::collections::BTreeMap<String, Ipv4Addr>,
    /// `--ipam-opt`: shown as the IPAM driver's options.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub options: std::collections::BTreeMap<String, String>,
    /// `--attachable`: shown; every berth network is.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attachable: bool,
    /// A subnet given without a gateway: docker shows no gateway in the
    /// IPAM configuration then (berth still takes the first address).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gateway_implied: bool,
}

/// A network as the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    pub created: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub ipam: Ipam,
}

impl Ipam {
    /// Whether the range and the aux addresses lie in `subnet` (the
    /// network's, if given), in docker's client's words when not.
    pub fn check(&self, subnet: Option<Subnet>) -> std::result::Result<(), String> {
        if let Some(r) = self.ip_range {
            match subnet {
                None => {
                    return Err("every ip-range or gateway must have a corresponding subnet".into())
                }
                Some(s) if !(s.contains(r.network()) && s.contains(r.broadcast())) => {
                    return Err(format!("no matching subnet for range {r}"))
                }
                Some(_) => {}
            }
        }
        match self
            .aux_addresses
            .values()
            .find(|ip| !subnet.is_some_and(|s| s.contains(**ip)))
        {
            Some(ip) => Err(format!("no matching subnet for aux-address {ip}")),
            None => Ok(()),
        }
    }
}

impl Network {
    /// The default bridge network (no name resolution, as docker's).
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NAME
    }
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub network_id: String,
    pub network_name: String,
    pub container_id: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// The host's end of the veth pair.
    pub veth: String,
    /// The container's end (eth0, eth1, ...).
    pub iface: String,
    /// Names peers resolve it by: its name, aliases, short id.
    pub names: Vec<String>,
}

/// What a container asks of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointConfig {
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
}

/// A container to connect: its init's pid (whose network namespace gets
/// the interfaces), the networks, the ports to publish (on the first
/// network's address).
#[derive(Debug)]
pub struct Attach<'a> {
    pub container_id: &'a str,
    pub name: &'a str,
    pub pid: i32,
    /// The network namespace as a file (a pod's bind-mounted one) instead
    /// of the init's `/proc/<pid>/ns/net`.
    pub netns: Option<&'a std::path::Path>,
    pub networks: Vec<(Network, EndpointConfig)>,
    pub ports: &'a [PortSpec],
    /// A held start (compose's, waiting on a dependency): its leases carry
    /// no names until [`Networks::set_names`] once its program runs, so
    /// peers resolve it only then, as docker resolves a container only
    /// once it started.
    pub held: bool,
}

/// The names peers resolve a container by on one network: its name, its
/// aliases there, its short id.
pub fn endpoint_names(container_id: &str, name: &str, aliases: &[String]) -> Vec<String> {
    let short = &container_id[..container_id.len().min(12)];
    let mut names = vec![name.to_string()];
    names.extend(aliases.iter().cloned());
    names.push(short.to_string());
    names.dedup();
    names
}

/// The networks of one berth root.
#[derive(Debug)]
pub struct Networks {
    conn: Rc<Connection>,
    root: PathBuf,
    /// The lock of choices shared by every root whose bridges live in the
    /// same network namespace ([`HOST_LOCK`] for the host's).
    host_lock: PathBuf,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::Db(e)
}

pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n.div_ceil(2)];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most the given length into the
        // buffer, which stays valid for the call.
        let r =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if r > 0 {
            filled += usize::try_from(r).unwrap_or(0);
        }
    }
    let mut s: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(n);
    s
}

pub(crate) fn now() -> String {
    berth_relay::clock::rfc3339_nanos()
}

/// The subnets of the host's routes, but the default route and loopback's.
fn routed_subnets(nl: &mut Netlink) -> Result<Vec<Subnet>> {
    Ok(nl
        .routes()
        .ctx(|| "list routes".into())?
        .into_iter()
        .filter(|r| r.prefix > 0 && !r.destination.is_loopback())
        .filter_map(|r| Subnet::parse(&format!("{}/{}", r.destination, r.prefix.min(30))).ok())
        .collect())
}

/// Holds the host-wide lock while alive.
struct HostLock(#[allow(dead_code)] nix::fcntl::Flock<File>);

fn host_lock(path: &Path) -> Result<HostLock> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx(|| format!("open {}", path.display()))?;
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        Error::Io {
            context: format!("lock {}", path.display()),
            source: e.into(),
        }
    })?;
    Ok(HostLock(l))
}

/// Brings up `lo` in the network namespace of process `pid`: a namespace
/// of its own without interfaces (`--network none`) still has loopback up,
/// as docker's do, so that programs talking to 127.0.0.1 work.
pub fn loopback_up_in(pid: i32) -> Result<()> {
    let ns_path = format!("/proc/{pid}/ns/net");
    let netns = File::open(&ns_path).ctx(|| format!("open {ns_path}"))?;
    let mut inside =
        Netlink::open_in(&netns).ctx(|| "enter the container's network namespace".into())?;
    loopback_up(&mut inside)
}

/// Brings up `lo` in the calling thread's network namespace (one it just
/// made: rootless berth's own, see the engine's rootless_netns.rs).
pub fn loopback_up_in_current() -> Result<()> {
    loopback_up(&mut netlink()?)
}

fn loopback_up(inside: &mut Netlink) -> Result<()> {
    if let Some(lo) = inside.link("lo").ctx(|| "find lo".into())? {
        inside.set_up(lo.index).ctx(|| "bring lo up".into())?;
    }
    Ok(())
}

/// Takes a removed network's bridge out of service (see bridge_trash.rs):
/// its address, its up state and its name go now, the device itself later
/// (a sweep). When that cannot be done, it is deleted here and now.
fn retire_bridge(nl: &mut Netlink, net: &Network) -> Result<()> {
    let retired = (|| {
        let Some(link) = nl.link(&net.bridge)? else {
            return Ok(false);
        };
        nl.delete_address(link.index, net.gateway, net.subnet.prefix)?;
        nl.set_down(link.index)?;
        nl.rename_clearing_alias(link.index, &crate::bridge_trash::trash_name())?;
        Ok::<_, std::io::Error>(true)
    })();
    match retired {
        Ok(true) => {
            crate::bridge_trash::retired();
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            tracing::warn!("retire bridge {}: {e}; deleting it now", net.bridge);
            nl.delete_link(&net.bridge)
                .ctx(|| format!("delete bridge {}", net.bridge))?;
            Ok(())
        }
    }
}

fn netlink() -> Result<Netlink> {
    crate::netns::run_in(Netlink::open).ctx(|| "open a netlink socket".into())
}

/// The MTU of the link the default route leaves through (1500 without one).
fn host_mtu(nl: &mut Netlink) -> u32 {
    let oif = nl
        .routes()
        .ok()
        .and_then(|r| r.into_iter().find(|r| r.prefix == 0).and_then(|r| r.oif));
    let links = nl.links().unwrap_or_default();
    oif.and_then(|i| links.iter().find(|l| l.index == i))
        .map_or(1500, |l| l.mtu)
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    // /proc/sys/net is the calling thread's namespace's.
    crate::netns::run_in(|| {
        if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
            return Ok(());
        }
        std::fs::write(path, value)
    })
    .ctx(|| format!("write {path}"))
}

/// The alias berth puts on its bridges: whose they are and what is theirs
/// in the nft sets, so leftovers of a root that is gone can be removed.
fn bridge_alias(root: &Path, net: &Network) -> String {
    format!(
        "berth:{}:{}:{}",
        net.subnet,
        u8::from(net.internal),
        root.display()
    )
}

fn parse_alias(alias: &str) -> Option<(Subnet, bool, PathBuf)> {
    let rest = alias.strip_prefix("berth:")?;
    let mut it = rest.splitn(3, ':');
    let subnet = Subnet::parse(it.next()?).ok()?;
    let internal = it.next()? == "1";
    Some((subnet, internal, PathBuf::from(it.next()?)))
}

impl Networks {
    /// The networks of the store at `root`, through a connection to its
    /// database (`berth_store::open`: the schema that holds these tables).
    pub fn open(conn: Rc<Connection>, root: &Path) -> Result<Networks> {
        Ok(Networks {
            conn,
            root: root.to_path_buf(),
            host_lock: PathBuf::from(HOST_LOCK),
        })
    }

    /// The same networks with their bridges in a network namespace of
    /// their own (rootless berth's): `lock` replaces the host-wide lock,
    /// which an ordinary user cannot make in /run and which guards a
    /// namespace that is not this one's.
    pub fn with_host_lock(mut self, lock: PathBuf) -> Networks {
        self.host_lock = lock;
        self
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkRow> {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
        ))
    }

    fn network_of(
        (id, name, bridge, subnet, gateway, internal, created, labels, ipam): NetworkRow,
    ) -> Result<Network> {
        Ok(Network {
            name,
            bridge,
            subnet: Subnet::parse(&subnet).map_err(Error::Damaged)?,
            gateway: gateway
                .parse()
                .map_err(|_| Error::Damaged(format!("bad gateway {gateway:?} in the database")))?,
            internal,
            created,
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            ipam: serde_json::from_str(&ipam)
                .map_err(|e| Error::Damaged(format!("network {id}'s IPAM settings: {e}")))?,
            id,
        })
    }

    /// Every network, the default one included once it was used.
    pub fn list(&self) -> Result<Vec<Network>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {NETWORK_COLUMNS} FROM networks ORDER BY created"
        ))?;
        let rows: Vec<_> = stmt
            .query_map([], Self::row)?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(Self::network_of).collect()
    }

    /// A network by name, id or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Network> {
        if key == DEFAULT_NAME {
            return self.default_network();
        }
        let exact = self
            .conn
            .query_row(
                &format!("SELECT {NETWORK_COLUMNS} FROM networks WHERE name = ?1 OR id = ?1"),
                params![key],
                Self::row,
            )
            .optional()?;
        if let Some(r) = exact {
            return Self::network_of(r);
        }
        let found: Vec<Network> = self
            .list()?
            .into_iter()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match found.len() {
            1 => Ok(found
                .into_iter()
                .next()
                .ok_or_else(|| Error::NotFound(key.into()))?),
            0 => Err(Error::NotFound(key.to_string())),
            _ => Err(Error::Ambiguous(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                found.len()
            ))),
        }
    }

    /// Whether a network of that name is recorded.
    fn name_taken(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM networks WHERE name = ?1",
                params![name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The default network, made (row and bridge) on first use.
    pub fn default_network(&self) -> Result<Network> {
        let get = || -> Result<Option<Network>> {
            self.conn
                .query_row(
                    &format!("SELECT {NETWORK_COLUMNS} FROM networks WHERE name = ?1"),
                    params![DEFAULT_NAME],
                    Self::row,
                )
                .optional()?
                .map(Self::network_of)
                .transpose()
        };
        if let Some(n) = get()? {
            return Ok(n);
        }
        let _lock = host_lock(&self.host_lock)?;
        if let Some(n) = get()? {
            return Ok(n);
        }
        let mut nl = netlink()?;
        self.reclaim_dead_roots(&mut nl);
        let links = nl.links().ctx(|| "list links".into())?;
        let bridge = (0..100)
            .map(|i| format!("berth{i}"))
            .find(|n| !links.iter().any(|l| l.name == *n))
            .ok_or_else(|| Error::Exhausted("no free berthN bridge name".into()))?;
        let subnet = self.free_subnet(
            &mut nl,
            (DEFAULT_POOL.0..=DEFAULT_POOL.1)
                .filter_map(|b| Subnet::parse(&format!("10.{b}.0.0/16")).ok()),
        )?;
        self.insert_and_make(
            &mut nl,
            DEFAULT_NAME,
            bridge,
            subnet,
            None,
            false,
            &Default::default(),
            Ipam::default(),
        )
    }

    /// Bridges of berth roots that no longer exist (their alias names the
    /// root): deleted with their subnets' nft elements.
    fn reclaim_dead_roots(&self, nl: &mut Netlink) {
        let Ok(links) = nl.links() else { return };
        let mut cmds = Vec::new();
        for l in links.iter().filter(|l| l.kind == "bridge") {
            let Some((subnet, internal, root)) = parse_alias(&l.alias) else {
                continue;
            };
            if !root.join("berth.db").exists() && nl.delete_link(&l.name).is_ok() {
                cmds.extend(nft::network("delete", subnet, internal));
            }
        }
        for c in cmds {
            // One by one because some may be gone already: not an error.
            let _ = nft::apply(&[c]);
        }
    }

    /// The first candidate that overlaps no host route and no network of
    /// ours.
    fn free_subnet(
        &self,
        nl: &mut Netlink,
        candidates: impl Iterator<Item = Subnet>,
    ) -> Result<Subnet> {
        let taken = self.taken_subnets(nl)?;
        candidates
            .into_iter()
            .find(|c| !taken.iter().any(|(t, _)| t.overlaps(*c)))
            .ok_or_else(|| {
                Error::Exhausted(
                    "could not find an available, non-overlapping IPv4 address pool: give one with --subnet"
                        .into(),
                )
            })
    }

    /// Subnets in use: host routes (not the default route) and our
    /// networks, each with what uses it.
    fn taken_subnets(&self, nl: &mut Netlink) -> Result<Vec<(Subnet, String)>> {
        let mut taken: Vec<(Subnet, String)> = routed_subnets(nl)?
            .into_iter()
            .map(|s| (s, "a host route".to_string()))
            .collect();
        for n in self.list()? {
            taken.push((n.subnet, format!("network {}", n.name)));
        }
        Ok(taken)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_and_make(
        &self,
        nl: &mut Netlink,
        name: &str,
        bridge: String,
        subnet: Subnet,
        gateway: Option<Ipv4Addr>,
        internal: bool,
        labels: &std::collections::BTreeMap<String, String>,
        ipam: Ipam,
    ) -> Result<Network> {
        let gateway = match gateway {
            Some(g) if !subnet.usable(g) => {
                return Err(Error::InvalidOption(format!(
                    "invalid gateway {g}: not a usable address of subnet {subnet}"
                )))
            }
            Some(g) => g,
            None => subnet
                .host(1)
                .ok_or_else(|| Error::InvalidOption(format!("subnet {subnet} is too small")))?,
        };
        let net = Network {
            id: random_hex(64),
            name: name.to_string(),
            bridge,
            subnet,
            gateway,
            internal,
            created: now(),
            labels: labels.clone(),
            ipam,
        };
        let res = self.conn.execute(
            "INSERT INTO networks (id, name, bridge, subnet, gateway, internal, created, labels, ipam) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                net.id,
                net.name,
                net.bridge,
                net.subnet.to_string(),
                net.gateway.to_string(),
                net.internal,
                net.created,
                serde_json::to_string(&net.labels).unwrap_or_else(|_| "{}".into()),
                serde_json::to_string(&net.ipam).unwrap_or_else(|_| "{}".into())
            ],
        );
        match res {
            Ok(_) => {}
            // name and bridge are both UNIQUE: a network of that name,
            // there now, is what the insert collided with (the bridge name
            // was picked free).
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation
                    && self.name_taken(name)? =>
            {
                return Err(Error::Exists(name.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self.make_bridge(nl, &net) {
            if let Err(u) = nl.delete_link(&net.bridge) {
                tracing::warn!(
                    "undo network {}: delete bridge {}: {u}",
                    net.name,
                    net.bridge
                );
            }
            if let Err(u) = self
                .conn
                .execute("DELETE FROM networks WHERE id = ?1", params![net.id])
            {
                tracing::warn!("undo network {}: delete its row: {u}", net.name);
            }
            return Err(e);
        }
        Ok(net)
    }

    /// A network's bridge made again (after a reboot or a manual delete),
    /// under the host lock, unless its subnet is now routed elsewhere:
    /// another root (or the host) took it while the bridge was gone, and
    /// two bridges with one subnet would share, and later delete, one
    /// another's set elements.
    fn make_bridge_again(&self, nl: &mut Netlink, net: &Network) -> Result<()> {
        if let Some(r) = routed_subnets(nl)?
            .into_iter()
            .find(|r| r.overlaps(net.subnet))
        {
            return Err(Error::Conflict(format!(
                "network {}: its subnet {} is now used by a host route ({r}); remove the network or that route",
                net.name, net.subnet
            )));
        }
        self.make_bridge(nl, net)
    }

    /// The bridge, its gateway address, its sysctls, its subnet in the nft
    /// sets (the table made if missing).
    fn make_bridge(&self, nl: &mut Netlink, net: &Network) -> Result<()> {
        let mtu = host_mtu(nl);
        nl.create_bridge(&net.bridge, mtu, &bridge_alias(&self.root, net))
            .ctx(|| format!("create bridge {}", net.bridge))?;
        let link = nl
            .link(&net.bridge)
            .ctx(|| format!("find bridge {}", net.bridge))?
            .ok_or_else(|| Error::Host(format!("bridge {} vanished", net.bridge)))?;
        // An MTU given at creation does not count as the user's, and
        // the kernel then retunes the bridge when ports come and go (back
        // to 1500 once empty). Only a change through the device's MTU
        // handler marks it as set: an equal value is skipped by the
        // kernel, so step off it and back.
        if link.mtu == mtu && mtu > 68 {
            nl.set_mtu(link.index, mtu - 1)
                .ctx(|| format!("set the MTU of bridge {}", net.bridge))?;
        }
        nl.set_mtu(link.index, mtu)
            .ctx(|| format!("set the MTU of bridge {}", net.bridge))?;
        nl.add_address(link.index, net.gateway, net.subnet.prefix)
            .ctx(|| format!("address bridge {}", net.bridge))?;
        // Published on 127.0.0.1: dnat'ed packets keep their loopback
        // source until postrouting masquerades them; the bridge must let
        // them be routed out.
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
            "1",
        )?;
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        // The rules loaded already (by this build, since boot): only the
        // subnet's elements, from here (nft_elements.rs says why).
        if nft::is_current() {
            match nft_elements::network(nft_elements::Verb::Add, net.subnet, net.internal) {
                Ok(()) => return Ok(()),
                // The table was flushed: loaded again below.
                Err(e) if e.kind == nft::NftErrorKind::Missing => {}
                Err(e) => return Err(e.into()),
            }
        }
        nft::install(nft::network("add", net.subnet, net.internal))?;
        Ok(())
    }

    /// `network create`.
    pub fn create(
        &self,
        name: &str,
        subnet: Option<Subnet>,
        gateway: Option<Ipv4Addr>,
        internal: bool,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Network> {
        self.create_with(name, subnet, gateway, internal, labels, Ipam::default())
    }

    /// [`Networks::create`] with docker's IPAM settings: `--ip-range` and
    /// `--aux-address`es inside the subnet (in docker's words when not),
    /// `--ipam-opt`, `--attachable`.
    pub fn create_with(
        &self,
        name: &str,
        subnet: Option<Subnet>,
        gateway: Option<Ipv4Addr>,
        internal: bool,
        labels: &std::collections::BTreeMap<String, String>,
        mut ipam: Ipam,
    ) -> Result<Network> {
        ipam.check(subnet).map_err(Error::InvalidOption)?;
        ipam.gateway_implied = subnet.is_some() && gateway.is_none();
        validate_name(name)?;
        if name == DEFAULT_NAME || name == "host" || name == "none" {
            return Err(Error::Conflict(format!(
                "operation is not permitted on predefined {name} network"
            )));
        }
        if let (Some(g), None) = (gateway, subnet) {
            return Err(Error::InvalidOption(format!(
                "--gateway {g} needs --subnet (the gateway must be in a known subnet)"
            )));
        }
        if self.get(name).is_ok_and(|n| n.name == name) {
            return Err(Error::Exists(name.to_string()));
        }
        let _lock = host_lock(&self.host_lock)?;
        let mut nl = netlink()?;
        let subnet = match subnet {
            Some(s) => {
                if let Some((_, who)) = self
                    .taken_subnets(&mut nl)?
                    .into_iter()
                    .find(|(t, _)| t.overlaps(s))
                {
                    return Err(Error::Conflict(format!(
                        "invalid pool request: subnet {s} overlaps with {who}"
                    )));
                }
                s
            }
            None => self.free_subnet(
                &mut nl,
                (0..=255u8).filter_map(|c| {
                    Subnet::parse(&format!("10.{USER_POOL_SECOND_OCTET}.{c}.0/24")).ok()
                }),
            )?,
        };
        let id_probe = random_hex(12);
        let bridge = format!("br-{id_probe}");
        self.insert_and_make(
            &mut nl, name, bridge, subnet, gateway, internal, labels, ipam,
        )
    }

    /// `network rm`: refused while a container is attached (the caller
    /// also refuses while a container is configured to use it).
    pub fn remove(&self, net: &Network) -> Result<()> {
        if net.is_default() {
            return Err(Error::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            )));
        }
        let users = self.members(&net.id)?;
        if let Some(u) = users.first() {
            return Err(Error::InUse(format!(
                "error while removing network: network {} id {} has active endpoints ({})",
                net.name,
                net.id,
                u.names.first().map_or("", String::as_str)
            )));
        }
        let mut nl = netlink()?;
        // Under the host lock: once the bridge is gone its route is, and
        // another root may choose the same subnet and add the same set
        // elements (an add of an element that is there is no error). Were
        // they deleted after that, outside the lock, the other root's
        // network would lose its NAT and filtering.
        let _lock = host_lock(&self.host_lock)?;
        retire_bridge(&mut nl, net)?;
        if let Err(e) = nft_elements::network(nft_elements::Verb::Delete, net.subnet, net.internal)
        {
            tracing::warn!("remove network {}: its nft rules stay: {e}", net.name);
        }
        self.conn
            .execute("DELETE FROM networks WHERE id = ?1", params![net.id])?;
        Ok(())
    }

    /// Connects a container (its init alive) to its networks and publishes
    /// its ports. On failure whatever was done is undone.
    pub fn attach(&self, a: &Attach<'_>) -> Result<Vec<Endpoint>> {
        match self.attach_inner(a) {
            Ok(e) => Ok(e),
            Err(e) => {
                if let Err(u) = self.detach(a.container_id, false) {
                    tracing::warn!("undo the attachment of {}: {u}", a.container_id);
                }
                Err(e)
            }
        }
    }

    fn attach_inner(&self, a: &Attach<'_>) -> Result<Vec<Endpoint>> {
        let ns_path = match a.netns {
            Some(p) => p.display().to_string(),
            None => format!("/proc/{}/ns/net", a.pid),
        };
        let netns = File::open(&ns_path).ctx(|| format!("open {ns_path}"))?;
        let mut nl = netlink()?;
        let mut inside =
            Netlink::open_in(&netns).ctx(|| "enter the container's network namespace".into())?;
        loopback_up(&mut inside)?;
        let mut endpoints = Vec::new();
        let mut routed = false;
        for (i, (net, cfg)) in a.networks.iter().enumerate() {
            let route = !net.internal && !routed;
            let ep = self.attach_one(
                &mut nl,
                &mut inside,
                &netns,
                (a.container_id, a.name),
                i,
                net,
                cfg,
                (route, a.held),
            )?;
            routed |= route;
            endpoints.push(ep);
        }
        if !a.ports.is_empty() {
            let Some(first) = endpoints.first() else {
                return Err(Error::InvalidOption(
                    "ports can only be published on a bridge network".into(),
                ));
            };
            let (ip, net) = (first.ip, &a.networks[0].0);
            let mut mappings = Vec::new();
            for spec in a.ports {
                mappings.push(self.reserve_port(a.container_id, spec, ip)?);
            }
            let mut cmds = Vec::new();
            for m in &mappings {
                cmds.extend(nft::port("create", m));
            }
            let res = match nft::apply(&cmds) {
                // The table is gone (a flushed ruleset): made again.
                Err(e) if e.kind == nft::NftErrorKind::Missing => {
                    nft::install(nft::network("add", net.subnet, net.internal))
                        .and_then(|()| nft::apply(&cmds))
                }
                r => r,
            };
            if let Err(e) = res {
                // Only our own rows: nothing of ours is in nft (one batch).
                self.conn.execute(
                    "DELETE FROM network_ports WHERE container_id = ?1",
                    params![a.container_id],
                )?;
                if e.kind == nft::NftErrorKind::Exists {
                    let taken = mappings
                        .iter()
                        .map(PortMapping::host_display)
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(Error::PortInUse(taken));
                }
                return Err(e.into());
            }
        }
        Ok(endpoints)
    }

    /// One network of a container: a lease (with no names if `held`, see
    /// [`Attach::held`]), the veth pair (`eth<i>` inside), its address, up,
    /// and the default route through it if `route`.
    #[allow(clippy::too_many_arguments)]
    fn attach_one(
        &self,
        nl: &mut Netlink,
        inside: &mut Netlink,
        netns: &File,
        (container_id, name): (&str, &str),
        i: usize,
        net: &Network,
        cfg: &EndpointConfig,
        (route, held): (bool, bool),
    ) -> Result<Endpoint> {
        let bridge = match nl
            .link(&net.bridge)
            .ctx(|| format!("find {}", net.bridge))?
        {
            Some(b) if nft::is_current() => b,
            Some(b) => {
                // Made by an older berth, whose rules lack what this one's
                // have (the localnet chain): loaded now, once.
                let _lock = host_lock(&self.host_lock)?;
                nft::install(nft::network("add", net.subnet, net.internal))?;
                b
            }
            None => {
                // Gone since (a reboot, a manual delete): made again.
                let _lock = host_lock(&self.host_lock)?;
                self.make_bridge_again(nl, net)?;
                nl.link(&net.bridge)
                    .ctx(|| format!("find {}", net.bridge))?
                    .ok_or_else(|| Error::Host(format!("bridge {} vanished", net.bridge)))?
            }
        };
        let names = endpoint_names(container_id, name, &cfg.aliases);
        let iface = format!("eth{i}");
        let veth = format!("vb{}{i}", &container_id[..container_id.len().min(10)]);
        let leased: &[String] = if held { &[] } else { &names };
        let ip = self.lease(net, container_id, cfg.ip, leased, &veth, &iface, cfg.mac)?;
        let mac = cfg.mac.unwrap_or_else(|| {
            let o = ip.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        });
        let mac_text = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let mut made = nl.create_veth(&veth, &iface, netns, bridge.index, bridge.mtu, Some(mac));
        if made
            .as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(libc::EEXIST))
        {
            // The previous life's, still going with its namespace. If it
            // cannot go, the create below says so.
            let _ = nl.delete_link(&veth);
            made = nl.create_veth(&veth, &iface, netns, bridge.index, bridge.mtu, Some(mac));
        }
        made.ctx(|| format!("create veth {veth}"))?;
        let link = inside
            .link(&iface)
            .ctx(|| format!("find {iface}"))?
            .ok_or_else(|| Error::Host(format!("{iface} is missing in the container")))?;
        inside
            .add_address(link.index, ip, net.subnet.prefix)
            .ctx(|| format!("address {iface}"))?;
        inside
            .set_up(link.index)
            .ctx(|| format!("bring {iface} up"))?;
        if route {
            inside
                .add_default_route(net.gateway)
                .ctx(|| "add the default route".into())?;
        }
        Ok(Endpoint {
            network_id: net.id.clone(),
            network_name: net.name.clone(),
            container_id: container_id.to_string(),
            ip,
            prefix: net.subnet.prefix,
            gateway: net.gateway,
            mac: mac_text,
            veth,
            iface,
            names,
        })
    }

    /// `network connect` of a running container (init `pid`): one more
    /// interface, on the first free `eth<n>`; a default route only if it
    /// had none. Undone on failure.
    pub fn connect_running(
        &self,
        (container_id, name): (&str, &str),
        pid: i32,
        net: &Network,
        cfg: &EndpointConfig,
    ) -> Result<Endpoint> {
        let have = self.endpoints(container_id)?;
        if have.iter().any(|e| e.network_id == net.id) {
            return Err(Error::Conflict(format!(
                "endpoint with name {name} already exists in network {}",
                net.name
            )));
        }
        let i = (0..)
            .find(|i| !have.iter().any(|e| e.iface == format!("eth{i}")))
            .unwrap_or(0);
        let ns_path = format!("/proc/{pid}/ns/net");
        let netns = File::open(&ns_path).ctx(|| format!("open {ns_path}"))?;
        let mut nl = netlink()?;
        let mut inside =
            Netlink::open_in(&netns).ctx(|| "enter the container's network namespace".into())?;
        let routed = inside
            .routes()
            .ctx(|| "list the container's routes".into())?
            .iter()
            .any(|r| r.prefix == 0);
        let route = !routed && !net.internal;
        match self.attach_one(
            &mut nl,
            &mut inside,
            &netns,
            (container_id, name),
            i,
            net,
            cfg,
            (route, false),
        ) {
            Ok(e) => Ok(e),
            Err(e) => {
                if let Err(u) = self.disconnect_one(container_id, net) {
                    tracing::warn!("undo the connection of {container_id} to {}: {u}", net.name);
                }
                Err(e)
            }
        }
    }

    /// Takes one network from a container: its veth deleted, its lease
    /// released (and its published ports, if they were on it).
    pub fn disconnect_one(&self, container_id: &str, net: &Network) -> Result<()> {
        let Some(ep) = self
            .endpoints(container_id)?
            .into_iter()
            .find(|e| e.network_id == net.id)
        else {
            return Ok(());
        };
        let ports: Vec<PortMapping> = self
            .ports(container_id)?
            .into_iter()
            .filter(|p| p.container_ip == ep.ip)
            .collect();
        if !ports.is_empty() {
            let cmds: Vec<_> = ports.iter().flat_map(|p| nft::port("delete", p)).collect();
            if let Err(e) = nft::apply(&cmds) {
                tracing::warn!(
                    "disconnect {container_id}: its published ports' nft rules stay: {e}"
                );
            }
            self.conn.execute(
                "DELETE FROM network_ports WHERE container_id = ?1 AND container_ip = ?2",
                params![container_id, ep.ip.to_string()],
            )?;
        }
        netlink()?
            .delete_link(&ep.veth)
            .ctx(|| format!("delete veth {}", ep.veth))?;
        self.conn.execute(
            "DELETE FROM network_leases WHERE container_id = ?1 AND network_id = ?2",
            params![container_id, net.id],
        )?;
        Ok(())
    }

    /// Records the published ports of a container whose forwarding is not
    /// nft's (rootless berth's, a process of its own): the rows only, each
    /// host port chosen and checked free on the host as for nft's. Undone
    /// on failure.
    pub fn record_ports(
        &self,
        container_id: &str,
        specs: &[PortSpec],
        ctr_ip: Ipv4Addr,
    ) -> Result<Vec<PortMapping>> {
        let mut out = Vec::new();
        for spec in specs {
            match self.reserve_port(container_id, spec, ctr_ip) {
                Ok(m) => out.push(m),
                Err(e) => {
                    self.release_ports(container_id)?;
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Forgets the published ports of a container ([`Networks::record_ports`]'s
    /// rows); nothing of nft's is touched.
    pub fn release_ports(&self, container_id: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM network_ports WHERE container_id = ?1",
            params![container_id],
        )?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn lease(
        &self,
        net: &Network,
        container_id: &str,
        want: Option<Ipv4Addr>,
        names: &[String],
        veth: &str,
        iface: &str,
        mac: Option<[u8; 6]>,
    ) -> Result<Ipv4Addr> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let res = (|| -> Result<Ipv4Addr> {
            let used: BTreeSet<Ipv4Addr> = self
                .conn
                .prepare("SELECT ip FROM network_leases WHERE network_id = ?1")?
                .query_map(params![net.id], |r| r.get::<_, String>(0))?
                .filter_map(|r| r.ok().and_then(|s| s.parse().ok()))
                .collect();
            let ip = match want {
                Some(ip) => {
                    if !net.subnet.usable(ip) || ip == net.gateway {
                        return Err(Error::InvalidOption(format!(
                            "invalid --ip {ip}: not a free address of network {} ({})",
                            net.name, net.subnet
                        )));
                    }
                    if used.contains(&ip) || net.ipam.aux_addresses.values().any(|a| *a == ip) {
                        return Err(Error::Conflict(format!(
                            "address {ip} is already in use on network {}",
                            net.name
                        )));
                    }
                    ip
                }
                // From --ip-range when there is one; never the gateway
                // nor an --aux-address.
                None => {
                    // docker's allocator skips a range's first address
                    // as it skips the subnet's (and the gateway after it).
                    let pool = net.ipam.ip_range.unwrap_or(net.subnet);
                    let start = if net.ipam.ip_range.is_some() { 1 } else { 2 };
                    (start..).map_while(|n| pool.host(n)).find(|ip| {
                        net.subnet.usable(*ip)
                            && *ip != net.gateway
                            && !used.contains(ip)
                            && !net.ipam.aux_addresses.values().any(|a| a == ip)
                    })
                }
                .ok_or_else(|| {
                    Error::Exhausted(format!(
                        "no free address left on network {} ({})",
                        net.name, net.subnet
                    ))
                })?,
            };
            let mac = mac.map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            });
            self.conn.execute(
                "INSERT INTO network_leases (network_id, container_id, ip, mac, veth, iface, names) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    net.id,
                    container_id,
                    ip.to_string(),
                    mac.unwrap_or_default(),
                    veth,
                    iface,
                    serde_json::to_string(names).unwrap_or_else(|_| "[]".into())
                ],
            )?;
            Ok(ip)
        })();
        match res {
            Ok(ip) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(ip)
            }
            Err(e) => {
                // The error is what counts; SQLite may have rolled back already.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// A host port for `spec`, recorded: a fixed one if free (here and on
    /// the host), else any free one of its range or of the kernel's.
    fn reserve_port(
        &self,
        container_id: &str,
        spec: &PortSpec,
        ctr_ip: Ipv4Addr,
    ) -> Result<PortMapping> {
        let host_ip = spec.host_ip;
        let shown = |p: u16| format!("{}:{p}", host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED));
        let candidates: Vec<u16> = if spec.host_port == 0 {
            Vec::new()
        } else {
            (spec.host_port..=spec.host_port_end.max(spec.host_port)).collect()
        };
        let try_port = |port: u16| -> Result<bool> {
            if !host_port_free(spec.proto, host_ip, port) {
                return Ok(false);
            }
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let res = (|| -> Result<bool> {
                let clash: i64 = self.conn.query_row(
                    "SELECT COUNT(*) FROM network_ports WHERE proto = ?1 AND host_port = ?2 \
                     AND (host_ip = ?3 OR host_ip = '' OR ?3 = '')",
                    params![
                        spec.proto.as_str(),
                        port,
                        host_ip.map(|i| i.to_string()).unwrap_or_default()
                    ],
                    |r| r.get(0),
                )?;
                if clash > 0 {
                    return Ok(false);
                }
                self.conn.execute(
                    "INSERT INTO network_ports (container_id, proto, host_ip, host_port, \
                     container_ip, container_port) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        container_id,
                        spec.proto.as_str(),
                        host_ip.map(|i| i.to_string()).unwrap_or_default(),
                        port,
                        ctr_ip.to_string(),
                        spec.container_port
                    ],
                )?;
                Ok(true)
            })();
            match res {
                Ok(ok) => {
                    self.conn.execute_batch("COMMIT")?;
                    Ok(ok)
                }
                Err(e) => {
                    // The error is what counts; SQLite may have rolled back already.
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        };
        let mapping = |port| PortMapping {
            host_ip,
            host_port: port,
            container_ip: ctr_ip,
            container_port: spec.container_port,
            proto: spec.proto,
        };
        if candidates.is_empty() {
            for _ in 0..64 {
                let port = ephemeral_port(spec.proto, host_ip)?;
                if try_port(port)? {
                    return Ok(mapping(port));
                }
            }
            return Err(Error::Exhausted("no free host port found".into()));
        }
        for &port in &candidates {
            if try_port(port)? {
                return Ok(mapping(port));
            }
        }
        Err(Error::PortInUse(match candidates.as_slice() {
            [one] => shown(*one),
            [a, .., b] => format!("{}-{b}", shown(*a)),
            [] => shown(0),
        }))
    }

    /// Disconnects a container from everything: its published ports out
    /// of nft, its veths deleted, its leases and ports released. Returns
    /// the networks it was on. Safe to call again (or for a container that
    /// never was attached).
    ///
    /// `netns_gone`: the caller knows the container's network namespace
    /// has no process left, so the kernel deletes its veths as it frees
    /// the namespace (in a worker, after we are gone); deleting them here
    /// would make the caller wait for the same teardown (17 ms of a 46 ms
    /// `run --rm`, measured).
    pub fn detach(&self, container_id: &str, netns_gone: bool) -> Result<Vec<String>> {
        self.detach_with(container_id, || netns_gone)
    }

    /// [`Networks::detach`] asking `netns_gone` only when the container
    /// has veths to delete (the caller's answer may cost a look at every
    /// container).
    pub fn detach_with(
        &self,
        container_id: &str,
        netns_gone: impl FnOnce() -> bool,
    ) -> Result<Vec<String>> {
        let ports = self.ports(container_id)?;
        if !ports.is_empty() {
            let cmds: Vec<_> = ports.iter().flat_map(|p| nft::port("delete", p)).collect();
            if nft::apply(&cmds).is_err() {
                // Some already gone: the rest one by one (a failure now is
                // one of those).
                for c in cmds {
                    let _ = nft::apply(&[c]);
                }
            }
        }
        let eps = self.endpoints(container_id)?;
        if !eps.is_empty() && !netns_gone() {
            let mut nl = netlink()?;
            for e in &eps {
                nl.delete_link(&e.veth)
                    .ctx(|| format!("delete veth {}", e.veth))?;
            }
        }
        // Each DELETE is a write transaction even when it matches nothing
        // (a container on no network, its every end): only what is there.
        if !ports.is_empty() {
            self.conn.execute(
                "DELETE FROM network_ports WHERE container_id = ?1",
                params![container_id],
            )?;
        }
        // A lease of a network gone from the table is not an endpoint.
        let leased = !eps.is_empty()
            || self.conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM network_leases WHERE container_id = ?1)",
                params![container_id],
                |r| r.get::<_, bool>(0),
            )?;
        if leased {
            self.conn.execute(
                "DELETE FROM network_leases WHERE container_id = ?1",
                params![container_id],
            )?;
        }
        Ok(eps.into_iter().map(|e| e.network_id).collect())
    }

    fn endpoints_where(&self, clause: &str, key: &str) -> Result<Vec<Endpoint>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT l.network_id, n.name, l.container_id, l.ip, n.subnet, n.gateway, l.mac, \
             l.veth, l.iface, l.names FROM network_leases l JOIN networks n ON n.id = l.network_id \
             WHERE {clause} ORDER BY l.iface"
        ))?;
        let rows = stmt
            .query_map(params![key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .filter_map(
                |(nid, nname, cid, ip, subnet, gw, mac, veth, iface, names)| {
                    let ip: Ipv4Addr = ip.parse().ok()?;
                    let mac = if mac.is_empty() {
                        let o = ip.octets();
                        format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
                    } else {
                        mac
                    };
                    Some(Endpoint {
                        network_id: nid,
                        network_name: nname,
                        container_id: cid,
                        ip,
                        prefix: Subnet::parse(&subnet).ok()?.prefix,
                        gateway: gw.parse().ok()?,
                        mac,
                        veth,
                        iface,
                        names: serde_json::from_str(&names).unwrap_or_default(),
                    })
                },
            )
            .collect())
    }

    /// A container's endpoints, first network first.
    pub fn endpoints(&self, container_id: &str) -> Result<Vec<Endpoint>> {
        self.endpoints_where("l.container_id = ?1", container_id)
    }

    /// The containers on a network.
    pub fn members(&self, network_id: &str) -> Result<Vec<Endpoint>> {
        self.endpoints_where("l.network_id = ?1", network_id)
    }

    /// The names a held start's lease on one network gets once its program
    /// runs (see [`Attach::held`]).
    pub fn set_names(&self, container_id: &str, network_id: &str, names: &[String]) -> Result<()> {
        self.conn.execute(
            "UPDATE network_leases SET names = ?3 WHERE container_id = ?1 AND network_id = ?2",
            params![
                container_id,
                network_id,
                serde_json::to_string(names).unwrap_or_else(|_| "[]".into())
            ],
        )?;
        Ok(())
    }

    /// A container's published ports.
    pub fn ports(&self, container_id: &str) -> Result<Vec<PortMapping>> {
        let mut stmt = self.conn.prepare(
            "SELECT proto, host_ip, host_port, container_ip, container_port FROM network_ports \
             WHERE container_id = ?1 ORDER BY container_port, proto",
        )?;
        let rows = stmt
            .query_map(params![container_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u16>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, u16>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(proto, hip, hport, cip, cport)| {
                Some(PortMapping {
                    host_ip: hip.parse().ok(),
                    host_port: hport,
                    container_ip: cip.parse().ok()?,
                    container_port: cport,
                    proto: Proto::parse(&proto)?,
                })
            })
            .collect())
    }

    /// Containers holding leases (for `system check`).
    pub fn leaseholders(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT container_id FROM network_leases UNION SELECT container_id FROM network_ports",
        )?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// `system check`: leases and ports of containers that are not
    /// running (`running` says which are) released with their veths; nft
    /// port elements into our subnets that no container holds removed;
    /// bridges of roots that are gone removed; each network's bridge and
    /// rules made again if missing. Returns what was fixed, one line each.
    pub fn check(&self, running: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let mut fixed = Vec::new();
        for id in self.leaseholders()? {
            if !running(&id) {
                self.detach(&id, false)?;
                fixed.push(format!(
                    "released the addresses and ports of container {id}"
                ));
            }
        }
        let mut nl = netlink()?;
        {
            let _lock = host_lock(&self.host_lock)?;
            self.reclaim_dead_roots(&mut nl);
        }
        // Bridges a killed sweep left retired (any root's, see
        // bridge_trash.rs): deleted here too, and not counted, since
        // another command's sweep may be deleting them right now.
        if let Ok(sweeper) = crate::bridge_trash::Sweeper::open() {
            if let Err(e) = sweeper.sweep() {
                tracing::warn!("check: delete retired bridges: {e}");
            }
        }
        let nets = self.list()?;
        if !nets.is_empty() {
            // The rules as this build has them (make_bridge below adds
            // only a network's elements once they are loaded).
            nft::install(Vec::new())?;
        }
        for n in &nets {
            if nl.link(&n.bridge).ctx(|| "find a bridge".into())?.is_none() {
                let _lock = host_lock(&self.host_lock)?;
                self.make_bridge_again(&mut nl, n)?;
                fixed.push(format!(
                    "made bridge {} of network {} again",
                    n.bridge, n.name
                ));
            } else {
                // Existing bridges: rules, sets and MTU as they should be.
                self.make_bridge(&mut nl, n)?;
            }
        }
        let held: BTreeSet<Ipv4Addr> = nets
            .iter()
            .flat_map(|n| self.members(&n.id).unwrap_or_default())
            .map(|e| e.ip)
            .collect();
        for (proto, host_ip, port, ctr) in nft::published()? {
            if nets.iter().any(|n| n.subnet.contains(ctr)) && !held.contains(&ctr) {
                let m = PortMapping {
                    host_ip,
                    host_port: port,
                    container_ip: ctr,
                    container_port: 0,
                    proto,
                };
                if let Err(e) = nft::apply(&nft::port("delete", &m)) {
                    tracing::warn!(
                        "check: remove the stale published port {}: {e}",
                        m.host_port
                    );
                }
                fixed.push(format!(
                    "removed the stale published port {}/{}",
                    m.host_display(),
                    proto.as_str()
                ));
            }
        }
        // Veths named after containers of ours that are gone.
        for l in nl.links().ctx(|| "list links".into())? {
            if l.kind != "veth" || !l.name.starts_with("vb") {
                continue;
            }
            let owned = nets.iter().any(|n| {
                nl.link(&n.bridge)
                    .ok()
                    .flatten()
                    .is_some_and(|b| l.master == Some(b.index))
            });
            let known = self
                .leaseholders()?
                .iter()
                .any(|c| l.name.get(2..12).is_some_and(|p| c.starts_with(p)));
            if owned && !known && nl.delete_link(&l.name).is_ok() {
                fixed.push(format!("deleted the leftover veth {}", l.name));
            }
        }
        Ok(fixed)
    }
}

/// Whether nothing on the host holds the port (a bind that succeeds).
fn host_port_free(proto: Proto, ip: Option<Ipv4Addr>, port: u16) -> bool {
    let addr = std::net::SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    match proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).is_ok(),
        Proto::Udp => std::net::UdpSocket::bind(addr).is_ok(),
    }
}

/// A port the kernel considers free now.
fn ephemeral_port(proto: Proto, ip: Option<Ipv4Addr>) -> Result<u16> {
    let addr = std::net::SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    let local = match proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Proto::Udp => std::net::UdpSocket::bind(addr).and_then(|l| l.local_addr()),
    };
    Ok(local.ctx(|| "find a free host port".into())?.port())
}

/// Network names as docker allows them.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOption(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Networks) {
        let dir = tempfile::tempdir().unwrap();
        let conn = berth_store::open(&dir.path().join(berth_store::FILE)).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        let n = Networks::open(Rc::new(conn), dir.path()).unwrap();
        (dir, n)
    }

    fn net(n: &Networks, name: &str, subnet: &str) -> Network {
        let net = Network {
            id: random_hex(64),
            name: name.into(),
            bridge: format!("t{}", &random_hex(8)),
            subnet: Subnet::parse(subnet).unwrap(),
            gateway: Subnet::parse(subnet).unwrap().host(1).unwrap(),
            internal: false,
            created: now(),
            labels: Default::default(),
            ipam: Default::default(),
        };
        n.conn
            .execute(
                "INSERT INTO networks (id, name, bridge, subnet, gateway, internal, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
                params![
                    net.id,
                    net.name,
                    net.bridge,
                    subnet,
                    net.gateway.to_string(),
                    net.created
                ],
            )
            .unwrap();
        net
    }

    #[test]
    fn leases_come_from_the_ip_range_and_skip_aux_addresses() {
        let (_d, n) = store();
        let mut r = net(&n, "r", "10.2.0.0/24");
        r.ipam.ip_range = Some(Subnet::parse("10.2.0.128/25").unwrap());
        r.ipam
            .aux_addresses
            .insert("a".into(), Ipv4Addr::new(10, 2, 0, 129));
        let names = vec!["c".to_string()];
        let lease = |id: &str, want| n.lease(&r, id, want, &names, "v", "eth0", None);
        // docker's: the range's first address and the aux one are skipped.
        assert_eq!(lease("c1", None).unwrap(), Ipv4Addr::new(10, 2, 0, 130));
        assert_eq!(lease("c2", None).unwrap(), Ipv4Addr::new(10, 2, 0, 131));
        assert!(matches!(
            lease("c3", Some(Ipv4Addr::new(10, 2, 0, 129))),
            Err(Error::Conflict(_))
        ));
        // --ip may still name an address of the subnet outside the range.
        assert_eq!(
            lease("c4", Some(Ipv4Addr::new(10, 2, 0, 9))).unwrap(),
            Ipv4Addr::new(10, 2, 0, 9)
        );
    }

    #[test]
    fn leases_are_unique_and_released() {
        let (_d, n) = store();
        let a = net(&n, "a", "10.1.0.0/29");
        let names = vec!["c".to_string()];
        let ips: Vec<_> = (0..5)
            .map(|i| {
                n.lease(&a, &format!("c{i}"), None, &names, "v", "eth0", None)
                    .unwrap()
            })
            .collect();
        assert_eq!(ips[0], Ipv4Addr::new(10, 1, 0, 2), "the gateway is .1");
        assert_eq!(ips[4], Ipv4Addr::new(10, 1, 0, 6));
        let full = n
            .lease(&a, "c5", None, &names, "v", "eth0", None)
            .unwrap_err();
        assert!(full.to_string().contains("no free address"), "{full}");
        n.detach("c2", false).unwrap();
        assert_eq!(
            n.lease(&a, "c6", None, &names, "v", "eth0", None).unwrap(),
            ips[2]
        );
        let taken = n
            .lease(&a, "c7", Some(ips[0]), &names, "v", "eth0", None)
            .unwrap_err();
        assert!(taken.to_string().contains("already in use"), "{taken}");
        let gw = n
            .lease(&a, "c7", Some(a.gateway), &names, "v", "eth0", None)
            .unwrap_err();
        assert!(gw.to_string().contains("invalid --ip"), "{gw}");
        assert_eq!(n.members(&a.id).unwrap().len(), 5);
        assert_eq!(n.endpoints("c0").unwrap()[0].network_name, "a");
    }

    #[test]
    fn concurrent_leases_never_collide() {
        let (dir, n) = store();
        let a = net(&n, "a", "10.2.0.0/24");
        drop(n);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let root = dir.path().to_path_buf();
                let a = a.clone();
                std::thread::spawn(move || {
                    let conn = berth_store::open(&root.join(berth_store::FILE)).unwrap();
                    conn.busy_timeout(std::time::Duration::from_secs(10))
                        .unwrap();
                    let n = Networks::open(Rc::new(conn), &root).unwrap();
                    (0..20)
                        .map(|i| {
                            n.lease(&a, &format!("t{t}c{i}"), None, &[], "v", "e", None)
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<Ipv4Addr> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let unique: BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }

    #[test]
    fn ports_reserved_once_wildcard_covers_addresses() {
        let (_d, n) = store();
        let ctr = Ipv4Addr::new(10, 3, 0, 2);
        // A port nobody holds on the host: ask the kernel for one.
        let port = ephemeral_port(Proto::Tcp, None).unwrap();
        let spec = PortSpec {
            host_ip: None,
            host_port: port,
            host_port_end: port,
            container_port: 80,
            proto: Proto::Tcp,
        };
        let m = n.reserve_port("c1", &spec, ctr).unwrap();
        assert_eq!(m.host_port, port);
        let again = n.reserve_port("c2", &spec, ctr).unwrap_err();
        assert!(matches!(again, Error::PortInUse(_)), "{again}");
        let lo = PortSpec {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            ..spec.clone()
        };
        assert!(
            n.reserve_port("c2", &lo, ctr).is_err(),
            "0.0.0.0 covers 127.0.0.1"
        );
        let udp = PortSpec {
            proto: Proto::Udp,
            ..spec.clone()
        };
        assert!(
            n.reserve_port("c2", &udp, ctr).is_ok(),
            "udp is another space"
        );
        let any = PortSpec {
            host_port: 0,
            host_port_end: 0,
            ..spec
        };
        assert_ne!(n.reserve_port("c3", &any, ctr).unwrap().host_port, 0);
        // A port the host holds.
        let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let p = held.local_addr().unwrap().port();
        let busy = PortSpec {
            host_ip: None,
            host_port: p,
            host_port_end: p,
            container_port: 80,
            proto: Proto::Tcp,
        };
        let e = n.reserve_port("c4", &busy, ctr).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Bind for 0.0.0.0:{p} failed: port is already allocated")
        );
        assert_eq!(n.ports("c1").unwrap().len(), 1);
        assert_eq!(n.ports("c2").unwrap()[0].proto, Proto::Udp);
    }

    #[test]
    fn aliases_round_trip() {
        let n = Network {
            id: "x".into(),
            name: "n".into(),
            bridge: "b".into(),
            subnet: Subnet::parse("10.9.0.0/24").unwrap(),
            gateway: Ipv4Addr::new(10, 9, 0, 1),
            internal: true,
            created: String::new(),
            labels: Default::default(),
            ipam: Default::default(),
        };
        let a = bridge_alias(Path::new("/tmp/a:b"), &n);
        assert_eq!(
            parse_alias(&a),
            Some((n.subnet, true, PathBuf::from("/tmp/a:b")))
        );
        assert!(validate_name("my-net_1.x").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(now().ends_with('Z'));
    }
}
