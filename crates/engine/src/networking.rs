//! A container's side of networking: the networks it is on, attached when
//! its init exists (before the program starts) and detached when it ends,
//! its `/etc/hosts` and `/etc/resolv.conf`, and its peers' hosts files.
//!
//! Name resolution on user networks is twofold, as docker's. The hosts
//! file: each container's is a file of its directory bind-mounted at
//! /etc/hosts, and whoever attaches or detaches a container rewrites (in
//! place: same inode, so the bind mount sees it) the files of every
//! running container on the networks concerned; lookups cost what a file
//! read costs. And DNS: resolv.conf names the embedded resolver of the
//! container's first user network (berth_network::resolver, one process per
//! network with running members, started here at attach), which answers
//! for members, aliases and ids of all the container's networks and
//! forwards the rest; so `nslookup` works, and a program that caches
//! /etc/hosts still finds peers that came later.

use berth_network::files::{self, HostEntry};
use berth_network::{Attach, Endpoint, EndpointConfig, Network, PortSpec};

use crate::config::{ContainerConfig, EndpointSettings};
use crate::error::{Context, Error, Result};
use crate::{Engine, Record, Status};

/// Whether the container gets interfaces of its own on bridges (not
/// none, host, or another container's namespace).
pub fn on_bridges(cfg: &ContainerConfig) -> bool {
    !matches!(cfg.network.as_str(), "none" | "host")
        && !cfg.network.starts_with("container:")
        && crate::pods::pod_of_mode(&cfg.network).is_none()
}

/// The names of the networks the container is connected to, as inspect's
/// NetworkSettings.Networks lists them: its mode (`none`, `host`, a
/// network) unless it left it, then those connected later.
pub fn connected_networks(cfg: &ContainerConfig) -> Vec<String> {
    let mode = (!cfg.left_network).then(|| cfg.network.clone());
    if !joins_networks(cfg) {
        return mode.into_iter().collect();
    }
    mode.into_iter()
        .chain(cfg.extra_networks.iter().cloned())
        .collect()
}

/// Whether the container's own namespace may be on networks: a bridge
/// mode, or none once the container left none (docker then lets it join
/// others, its mode still named none).
fn joins_networks(cfg: &ContainerConfig) -> bool {
    on_bridges(cfg) || (cfg.network == "none" && cfg.left_network)
}

/// A network namespace of its own with nothing but loopback
/// (`--network none`): its init brings `lo` up itself (the launcher asks
/// the runtime to), so nobody enters the namespace for it.
pub(crate) fn loopback_only(cfg: &ContainerConfig) -> bool {
    crate::pods::pod_of_mode(&cfg.network).is_none()
        && cfg.network == "none"
        && !joins_networks(cfg)
}

/// Docker's words for a container sharing a namespace (`host`,
/// `container:<id>`) asked to join a network.
const SHARED_NAMESPACE: &str =
    "container sharing network namespace with another container or host cannot be connected to any other network";
/// Docker's words for host asked of a container on other networks, or
/// taken from a running one.
const HOST_ONLY: &str =
    "container cannot be disconnected from host network or connected to host network";
/// Docker's words for none beside other networks.
const NONE_ALONE: &str =
    "container cannot be connected to multiple networks with one of the networks in private (none) mode";

impl From<berth_network::Error> for Error {
    fn from(e: berth_network::Error) -> Error {
        match e {
            berth_network::Error::NotFound(n) => Error::NoSuchNetwork(n),
            e => Error::Network(e),
        }
    }
}

impl Engine {
    /// The container's networks with what it asks of each.
    pub fn container_networks(
        &self,
        cfg: &ContainerConfig,
    ) -> Result<Vec<(Network, EndpointConfig)>> {
        if !joins_networks(cfg) || crate::rootless_net::applies(cfg) {
            // Rootless, the default network is pasta's: no bridge.
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        // --ip and --mac-address were asked of the mode's network.
        for (i, name) in connected_networks(cfg).iter().enumerate() {
            if name == "none" {
                // Connected to none after leaving every network: no
                // interface, loopback only.
                continue;
            }
            let net = self.networks.get(name)?;
            let ep = if i == 0 && !cfg.left_network {
                EndpointConfig {
                    aliases: cfg.network_aliases.clone(),
                    ip: cfg.ip,
                    mac: cfg.mac_address,
                }
            } else {
                // Each network its own aliases and address: a name given
                // for one is not answered on another.
                let s = cfg.endpoints.get(name).cloned().unwrap_or_default();
                EndpointConfig {
                    aliases: s.aliases,
                    ip: s.ipv4_address,
                    mac: None,
                }
            };
            out.push((net, ep));
        }
        Ok(out)
    }

    /// Checks at create what can be checked before a start: the networks
    /// exist, the options fit the mode.
    pub fn validate_network(&self, cfg: &ContainerConfig) -> Result<()> {
        if saferoot::idmap::in_unprivileged_user_namespace() && on_bridges(cfg) {
            crate::rootless_net::validate(cfg)?;
            if crate::rootless_net::applies(cfg) {
                return Ok(());
            }
        }
        if !on_bridges(cfg) {
            // Docker's daemon: ports are published on no other network
            // (host's and none's are kept and unused), nor a MAC address
            // given in the host's or another container's namespace.
            let shared = cfg.network == "host" || cfg.network.starts_with("container:");
            if cfg.network.starts_with("container:") && (!cfg.publish.is_empty() || cfg.publish_all)
            {
                return Err(Error::InvalidOption(
                    "conflicting options: port publishing and the container type network mode"
                        .into(),
                ));
            }
            if shared && cfg.mac_address.is_some() {
                return Err(Error::InvalidOption(
                    "conflicting options: mac-address and the network mode".into(),
                ));
            }
            if !cfg.network_aliases.is_empty() || cfg.ip.is_some() {
                return Err(Error::InvalidOption(format!(
                    "conflicting options: --network-alias and --ip need a bridge network, not {}",
                    cfg.network
                )));
            }
            if let Some(other) = cfg.network.strip_prefix("container:") {
                self.find(other)?;
            }
            return Ok(());
        }
        for (n, ep) in self.container_networks(cfg)? {
            check_endpoint(&n, &ep)?;
        }
        Ok(())
    }

    /// The ports to publish: `-p`, and with `-P` each exposed port not
    /// published already.
    fn ports_of(cfg: &ContainerConfig) -> Result<Vec<PortSpec>> {
        let mut ports = cfg.publish.clone();
        if cfg.publish_all {
            for p in berth_network::ports::from_exposed(&cfg.exposed_ports)
                .map_err(Error::InvalidOption)?
            {
                if !ports
                    .iter()
                    .any(|q| q.container_port == p.container_port && q.proto == p.proto)
                {
                    ports.push(p);
                }
            }
        }
        Ok(ports)
    }

    /// Connects the created container (init `pid`, waiting to start) to
    /// its networks, publishes its ports, writes its hosts file and its
    /// peers'. Nothing stays half done on failure.
    pub fn attach_network(&self, r: &Record, pid: i32) -> Result<()> {
        self.attach_network_as(r, pid, false)
    }

    /// [`Self::attach_network`]; a `held` start's names are left out of
    /// its leases (and so of its peers' DNS and hosts files) until
    /// [`Self::name_held`].
    pub fn attach_network_as(&self, r: &Record, pid: i32, held: bool) -> Result<()> {
        if let Some(pod) = crate::pods::pod_of_mode(&r.config.network) {
            // In the pod's namespace, attached when the pod was made.
            return self.pod_member_files(r, pod);
        }
        if loopback_only(&r.config) {
            // Loopback only, brought up by the init (launch::Init::loopback_up).
            return Ok(());
        }
        if !joins_networks(&r.config) {
            return Ok(());
        }
        if crate::rootless_net::applies(&r.config) {
            let dir = self.container_dir(&r.id);
            crate::rootless_net::attach(pid, &Self::ports_of(&r.config)?, &dir)?;
            return self.write_hosts(r, &[]);
        }
        let ports = Self::ports_of(&r.config)?;
        let networks = self.container_networks(&r.config)?;
        if networks.is_empty() {
            // Disconnected from every network: loopback only, as none.
            return Ok(berth_network::loopback_up_in(pid)?);
        }
        // Rootless: the bridges are in the user's network namespace, and
        // the ports are a forwarder's, started below from the host's.
        let rootless = self.user_netns()?;
        let endpoints = self.networks.attach(&Attach {
            container_id: &r.id,
            name: &r.name,
            pid,
            netns: None,
            networks,
            ports: if rootless { &[] } else { &ports },
            held,
        })?;
        let _lock = self.hosts_lock(&endpoints);
        if let Err(e) = self.write_hosts(r, &endpoints) {
            let _ = self.networks.detach(&r.id, false);
            return Err(e);
        }
        let ids: Vec<String> = endpoints.iter().map(|e| e.network_id.clone()).collect();
        self.refresh_peers(&ids, &r.id);
        drop(_lock);
        self.start_resolvers(r, &endpoints);
        if rootless && !ports.is_empty() {
            if let Err(e) = self.publish_rootless(r, &endpoints, &ports) {
                if let Err(u) = self.detach_network(r, false) {
                    tracing::warn!("undo the networks of {}: {u}", r.id);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// A held start's names on its networks, once it is released: peers
    /// resolve it from now on (the resolver reads the leases at each query;
    /// their hosts files are written again).
    pub fn name_held(&self, r: &Record) -> Result<()> {
        if crate::pods::pod_of_mode(&r.config.network).is_some()
            || !joins_networks(&r.config)
            || crate::rootless_net::applies(&r.config)
        {
            return Ok(());
        }
        let mut ids = Vec::new();
        for (net, cfg) in self.container_networks(&r.config)? {
            let names = berth_network::store::endpoint_names(&r.id, &r.name, &cfg.aliases);
            self.networks.set_names(&r.id, &net.id, &names)?;
            ids.push(net.id);
        }
        let _lock = self.hosts_lock_for(true);
        self.refresh_peers(&ids, &r.id);
        Ok(())
    }

    /// A rootless container's published ports: recorded (for `port`, `ps`,
    /// inspect) on its first network's address, and forwarded from the
    /// host by a process of their own (rootless_ports.rs).
    fn publish_rootless(
        &self,
        r: &Record,
        endpoints: &[Endpoint],
        ports: &[PortSpec],
    ) -> Result<()> {
        let Some(first) = endpoints.first() else {
            return Ok(());
        };
        let mappings = self.networks.record_ports(&r.id, ports, first.ip)?;
        crate::rootless_ports::start(
            std::path::Path::new("/proc/self/exe"),
            &crate::rootless_netns::path(&self.runroot),
            &self.container_dir(&r.id),
            &mappings,
        )
    }

    /// The user network whose resolver the container asks: its first one
    /// (the default bridge has no name resolution, as docker's), unless
    /// `--dns` names servers (asked directly then; docker would forward to
    /// them from 127.0.0.11).
    fn dns_network(&self, r: &Record) -> Option<Network> {
        if !r.config.dns.is_empty() {
            return None;
        }
        self.container_networks(&r.config)
            .ok()?
            .into_iter()
            .map(|(n, _)| n)
            .find(|n| !n.is_default())
    }

    /// The container's resolv.conf: the embedded resolver's (when
    /// `embedded` and it is on a user network) or the host's servers.
    pub fn resolv_text(&self, r: &Record, embedded: bool) -> String {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let dns = files::DnsConfig {
            servers: r.config.dns.clone(),
            search: r.config.dns_search.clone(),
            options: r.config.dns_options.clone(),
        };
        match self.dns_network(r).filter(|_| embedded) {
            Some(net) => files::embedded_resolv_conf(&host, &dns, net.gateway),
            None => files::resolv_conf(&host, &dns, r.config.network != "host"),
        }
    }

    /// Starts the resolvers of the container's user networks that have
    /// none running. When the one its resolv.conf names cannot run (port
    /// 53 of the gateway taken by another program), resolv.conf falls back
    /// to the host's servers: peers then resolve through /etc/hosts only.
    fn start_resolvers(&self, r: &Record, endpoints: &[Endpoint]) {
        let asked = self.dns_network(r).map(|n| n.id);
        for e in endpoints
            .iter()
            .filter(|e| e.network_name != berth_network::store::DEFAULT_NAME)
        {
            let Ok(net) = self.networks.get(&e.network_id) else {
                continue;
            };
            let started = berth_network::resolver::ensure(
                std::path::Path::new("/proc/self/exe"),
                &self.root,
                &self.runroot,
                &net,
            );
            if started.is_err() && asked.as_deref() == Some(net.id.as_str()) {
                let path = self.container_dir(&r.id).join("resolv.conf");
                let _ = std::fs::write(path, self.resolv_text(r, false));
            }
        }
    }

    /// Releases what the container held: ports, veths, leases; its peers
    /// forget it. Fine to call for a container that holds nothing.
    /// `init_gone`: its init is dead (reaped, or killed by the runtime's
    /// delete); then, unless something outside its pid namespace may hold
    /// its network namespace, the kernel removes the veths with the
    /// namespace and we need not wait for that.
    pub fn detach_network(&self, r: &Record, init_gone: bool) -> Result<()> {
        if saferoot::idmap::in_unprivileged_user_namespace() {
            let dir = self.container_dir(&r.id);
            if crate::rootless_net::applies(&r.config) {
                // No bridge, lease or port: only pasta to end.
                crate::rootless_net::detach(&dir);
                return Ok(());
            }
            crate::rootless_ports::stop(&dir);
            self.networks.release_ports(&r.id)?;
            match crate::rootless_netns::open_existing(&self.runroot) {
                Some(ns) => berth_network::netns::set(ns, &self.runroot),
                None => {
                    // Gone with the user's mount namespace (its pause
                    // process died), and every veth with it: rows only.
                    let ids = self.networks.detach(&r.id, true)?;
                    self.stop_idle_resolvers(&ids);
                    return Ok(());
                }
            }
        }
        let id = r.id.as_str();
        let ids = self
            .networks
            .detach_with(id, || init_gone && self.netns_dies_with_init(r))?;
        if !ids.is_empty() {
            let _lock = self.hosts_lock_for(true);
            self.refresh_peers(&ids, id);
        }
        self.stop_idle_resolvers(&ids);
        Ok(())
    }

    /// The resolvers of these networks that have no member left end now.
    fn stop_idle_resolvers(&self, network_ids: &[String]) {
        for nid in network_ids {
            let _ = berth_network::resolver::stop_if_idle(&self.runroot, nid, || {
                self.networks.members(nid).is_ok_and(|m| m.is_empty())
            });
        }
    }

    /// Whether only processes of the container's own pid namespace can be
    /// in its network namespace (they all die with its init): not so with
    /// a shared pid namespace (`exec`'d processes outlive the init) or
    /// while other containers joined the network namespace.
    fn netns_dies_with_init(&self, r: &Record) -> bool {
        if !matches!(r.config.pid_mode.as_str(), "" | "private") {
            return false;
        }
        let joined =
            |n: &str| n == format!("container:{}", r.id) || n == format!("container:{}", r.name);
        !self.db.list().is_ok_and(|all| {
            all.iter()
                .any(|o| o.status.is_active() && joined(&o.config.network))
        })
    }

    /// Hosts files are written under a lock of the root (user networks
    /// only): each writer reads the members after the last one wrote, so
    /// two containers starting at once both end up in each other's file.
    fn hosts_lock(&self, endpoints: &[Endpoint]) -> Option<nix::fcntl::Flock<std::fs::File>> {
        self.hosts_lock_for(
            endpoints
                .iter()
                .any(|e| e.network_name != berth_network::store::DEFAULT_NAME),
        )
    }

    pub(crate) fn hosts_lock_for(&self, needed: bool) -> Option<nix::fcntl::Flock<std::fs::File>> {
        if !needed {
            return None;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("hosts.lock"))
            .ok()?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok()
    }

    /// The container's /etc/hosts: its own address and name, then its
    /// peers on user networks (not the default one: docker's has no name
    /// resolution).
    fn hosts_text(&self, r: &Record, endpoints: &[Endpoint]) -> Result<String> {
        let extra = extra_hosts(&r.config.extra_hosts)?;
        let own = endpoints
            .first()
            .map(|e| (e.ip, r.config.hostname.as_str()));
        let hostname = if r.config.network == "host" {
            ""
        } else {
            r.config.hostname.as_str()
        };
        let mut peers: Vec<HostEntry> = Vec::new();
        for e in endpoints
            .iter()
            .filter(|e| e.network_name != berth_network::store::DEFAULT_NAME)
        {
            for m in self.networks.members(&e.network_id)? {
                // No names: a held start's, named once it runs.
                if m.container_id != r.id && !m.names.is_empty() {
                    peers.push(HostEntry {
                        ip: m.ip.to_string(),
                        names: m.names.clone(),
                    });
                }
            }
        }
        Ok(files::hosts(&extra, own, hostname, &peers))
    }

    /// Rewrites the hosts file in place (the bind mount holds its inode).
    fn write_hosts(&self, r: &Record, endpoints: &[Endpoint]) -> Result<()> {
        let text = self.hosts_text(r, endpoints)?;
        let path = self.container_dir(&r.id).join("hosts");
        std::fs::write(&path, text).ctx(|| format!("write {}", path.display()))
    }

    /// The hosts files of the running containers on these networks, but
    /// `except`'s. Best effort: a peer that is going away is skipped.
    fn refresh_peers(&self, network_ids: &[String], except: &str) {
        let mut done = std::collections::BTreeSet::new();
        for nid in network_ids {
            let Ok(members) = self.networks.members(nid) else {
                continue;
            };
            if members
                .first()
                .is_some_and(|m| m.network_name == berth_network::store::DEFAULT_NAME)
            {
                continue;
            }
            for m in members {
                if m.container_id == except || !done.insert(m.container_id.clone()) {
                    continue;
                }
                let Ok(Some(peer)) = self.db.get(&m.container_id) else {
                    continue;
                };
                if !matches!(
                    peer.status,
                    Status::Running | Status::Starting | Status::Paused
                ) {
                    continue;
                }
                if let Ok(eps) = self.networks.endpoints(&peer.id) {
                    let _ = self.write_hosts(&peer, &eps);
                }
            }
        }
    }

    /// `system check`: the resolver of each user network with running
    /// members started again if it is not running (killed, and no member
    /// joined since), and one with nothing left to serve ended. Returns
    /// what was fixed, one line each.
    pub fn check_resolvers(&self) -> Result<Vec<String>> {
        // Rootless: the resolvers listen in the user's network namespace.
        self.user_netns()?;
        let mut fixed = Vec::new();
        for net in self.networks.list()? {
            if net.is_default() {
                continue;
            }
            let running = berth_network::resolver::running(&self.runroot, &net.id);
            if self.networks.members(&net.id)?.is_empty() {
                if running {
                    // Its members were released above (killed monitors).
                    self.stop_idle_resolvers(std::slice::from_ref(&net.id));
                    fixed.push(format!("ended the idle resolver of network {}", net.name));
                }
                continue;
            }
            if running {
                continue;
            }
            berth_network::resolver::ensure(
                std::path::Path::new("/proc/self/exe"),
                &self.root,
                &self.runroot,
                &net,
            )?;
            fixed.push(format!("started the resolver of network {}", net.name));
        }
        Ok(fixed)
    }

    /// What inspect shows: endpoints and published ports. A member of a
    /// pod sharing the pod's network has none of its own: it answers on
    /// the pod's ports, and shows them (in `ps`, `port`, inspect), as
    /// podman's members do.
    pub fn network_state(&self, id: &str) -> (Vec<Endpoint>, Vec<berth_network::PortMapping>) {
        let endpoints = self.networks.endpoints(id).unwrap_or_default();
        let ports = self.networks.ports(id).unwrap_or_default();
        if endpoints.is_empty() && ports.is_empty() {
            let pod = self
                .db
                .get(id)
                .ok()
                .flatten()
                .and_then(|r| crate::pods::pod_of_mode(&r.config.network).map(str::to_string));
            if let Some(pod) = pod {
                return (endpoints, self.pod_ports(&pod));
            }
        }
        (endpoints, ports)
    }

    /// `network rm`: refused while a container is configured with it (a
    /// container that left it keeps only the mode's name, as docker's).
    pub fn remove_network(&self, key: &str) -> Result<Network> {
        let net = self.networks.get(key)?;
        for r in self.db.list()? {
            if connected_networks(&r.config)
                .iter()
                .any(|n| *n == net.name || *n == net.id)
            {
                return Err(Error::InUse(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    net.name, net.id
                )));
            }
        }
        if let Some(p) = self.pod_on_network(&net)? {
            return Err(Error::InUse(format!(
                "error while removing network: network {} id {} has active endpoints (pod {p})",
                net.name, net.id
            )));
        }
        self.stop_idle_resolvers(std::slice::from_ref(&net.id));
        self.user_netns()?;
        self.networks.remove(&net)?;
        berth_network::resolver::forget(&self.runroot, &net.id);
        Ok(net)
    }

    /// `network connect`: a created or stopped container gets the network
    /// at its next start; a running one now as well.
    pub fn connect(&self, r: &Record, net: &Network, settings: &EndpointSettings) -> Result<()> {
        if crate::rootless_net::applies(&r.config) {
            return Err(crate::rootless_net::default_beside_user_networks());
        }
        let mut cfg = r.config.clone();
        let live = matches!(r.status, Status::Running | Status::Paused)
            && crate::alive(r.pid, r.pid_start);
        let mut aliases = Vec::new();
        for a in &settings.aliases {
            if !aliases.contains(a) {
                aliases.push(a.clone());
            }
        }
        let ep_cfg = EndpointConfig {
            aliases,
            ip: settings.ipv4_address,
            mac: None,
        };
        check_endpoint(net, &ep_cfg)?;
        if connected_networks(&cfg).iter().any(|n| n == "none") {
            return Err(Error::Conflict(NONE_ALONE.into()));
        } else if !joins_networks(&cfg) {
            return Err(Error::Conflict(SHARED_NAMESPACE.into()));
        } else if self
            .container_networks(&cfg)?
            .iter()
            .any(|(n, _)| n.id == net.id)
        {
            if !live {
                // Docker's daemon takes the new endpoint settings for a
                // container that is not running (used at its next start).
                if [net.name.as_str(), net.id.as_str()].contains(&cfg.network.as_str()) {
                    cfg.network_aliases.clone_from(&ep_cfg.aliases);
                    cfg.ip = ep_cfg.ip;
                } else {
                    cfg.endpoints.insert(
                        net.name.clone(),
                        EndpointSettings {
                            aliases: ep_cfg.aliases.clone(),
                            ipv4_address: ep_cfg.ip,
                        },
                    );
                }
                return self.db.set_config(&r.id, &cfg);
            }
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                r.name, net.name
            )));
        } else if cfg.left_network
            && [net.name.as_str(), net.id.as_str()].contains(&cfg.network.as_str())
        {
            // Back on the network it left, with what this connect asks
            // (the old endpoint's settings went with it).
            cfg.left_network = false;
            cfg.network_aliases.clone_from(&ep_cfg.aliases);
            cfg.ip = ep_cfg.ip;
        } else {
            cfg.extra_networks.push(net.name.clone());
            cfg.endpoints.insert(
                net.name.clone(),
                EndpointSettings {
                    aliases: ep_cfg.aliases.clone(),
                    ipv4_address: ep_cfg.ip,
                },
            );
        }
        if live {
            // Live: the interface now, then the config (so a failure
            // changes nothing).
            self.user_netns()?;
            let _lock = self.hosts_lock_for(true);
            self.networks
                .connect_running((&r.id, &r.name), r.pid, net, &ep_cfg)?;
            if let Err(e) = self.db.set_config(&r.id, &cfg) {
                let _ = self.networks.disconnect_one(&r.id, net);
                return Err(e);
            }
            let eps = self.networks.endpoints(&r.id)?;
            self.write_hosts(r, &eps)?;
            self.refresh_peers(std::slice::from_ref(&net.id), &r.id);
            drop(_lock);
            // Its peers on the new network ask that network's resolver.
            let _ = berth_network::resolver::ensure(
                std::path::Path::new("/proc/self/exe"),
                &self.root,
                &self.runroot,
                net,
            );
            return Ok(());
        }
        self.db.set_config(&r.id, &cfg)
    }

    /// `network disconnect`: from the config, and from a running
    /// container's namespace now.
    pub fn disconnect(&self, r: &Record, net: &Network) -> Result<()> {
        let mut cfg = r.config.clone();
        let names = [net.name.as_str(), net.id.as_str()];
        if names.contains(&cfg.network.as_str()) && !cfg.left_network {
            // The mode stays, as docker's NetworkMode does; the container
            // is on what else it was connected to, or on nothing. The
            // endpoint's settings go with it, as docker's do.
            cfg.left_network = true;
            cfg.network_aliases.clear();
            cfg.ip = None;
        } else if let Some(i) = cfg
            .extra_networks
            .iter()
            .position(|n| names.contains(&n.as_str()))
        {
            let gone = cfg.extra_networks.remove(i);
            cfg.endpoints.remove(&gone);
        } else {
            return Err(not_connected(r, &net.name));
        }
        self.db.set_config(&r.id, &cfg)?;
        if matches!(r.status, Status::Running | Status::Paused) {
            self.user_netns()?;
            let _lock = self.hosts_lock_for(true);
            self.networks.disconnect_one(&r.id, net)?;
            let eps = self.networks.endpoints(&r.id)?;
            self.write_hosts(r, &eps)?;
            self.refresh_peers(std::slice::from_ref(&net.id), &r.id);
            drop(_lock);
            self.stop_idle_resolvers(std::slice::from_ref(&net.id));
        }
        Ok(())
    }
}

/// What docker refuses of one network's settings: aliases or an address
/// on the default bridge, an address outside the network's subnet.
fn check_endpoint(n: &Network, ep: &EndpointConfig) -> Result<()> {
    if n.is_default() && (ep.ip.is_some() || !ep.aliases.is_empty()) {
        return Err(Error::InvalidOption(
            "user specified IP address and network aliases are supported on user defined networks only".into(),
        ));
    }
    if let Some(ip) = ep.ip {
        if !n.subnet.usable(ip) || ip == n.gateway {
            return Err(Error::InvalidOption(format!(
                "invalid --ip {ip}: not a usable address of network {} ({})",
                n.name, n.subnet
            )));
        }
    }
    Ok(())
}

/// `--add-host host:ip` lines.
pub fn extra_hosts(list: &[String]) -> Result<Vec<HostEntry>> {
    list.iter()
        .map(|h| {
            let (host, ip) = h
                .split_once(':')
                .or_else(|| h.split_once('='))
                .filter(|(h, ip)| !h.is_empty() && ip.parse::<std::net::IpAddr>().is_ok())
                .ok_or_else(|| {
                    Error::InvalidOption(format!(
                        "invalid argument {h:?} for \"--add-host\": expected host:ip"
                    ))
                })?;
            Ok(HostEntry {
                ip: ip.to_string(),
                names: vec![host.to_string()],
            })
        })
        .collect()
}

/// `--mac-address 02:42:ac:11:00:02`.
pub fn parse_mac(s: &str) -> std::result::Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("invalid MAC address {s:?}: expected six hex bytes"));
    }
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| p.len() == 2)
            .ok_or_else(|| format!("invalid MAC address {s:?}: expected six hex bytes"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!("invalid MAC address {s:?}: a multicast address"));
    }
    Ok(mac)
}

fn not_connected(r: &Record, network: &str) -> Error {
    Error::Conflict(format!(
        "container {} is not connected to the network {network}",
        r.id
    ))
}

impl Engine {
    /// `network connect host|none`, by docker's rules: host only to a
    /// container in host mode, none only to one in none mode or on no
    /// network at all.
    pub fn connect_predefined(
        &self,
        r: &Record,
        kind: berth_network::predefined::Kind,
    ) -> Result<()> {
        use berth_network::predefined::Kind;
        let mut cfg = r.config.clone();
        let running = matches!(r.status, Status::Running | Status::Paused);
        match kind {
            Kind::Host if cfg.network != "host" => return Err(Error::Conflict(HOST_ONLY.into())),
            Kind::Host if running && !cfg.left_network => {
                return Err(Error::Conflict(format!(
                    "endpoint with name {} already exists in network host",
                    r.name
                )))
            }
            Kind::Host => cfg.left_network = false,
            Kind::None if cfg.network != "none" && !on_bridges(&cfg) => {
                return Err(Error::Conflict(SHARED_NAMESPACE.into()))
            }
            Kind::None => {
                let connected = connected_networks(&cfg);
                match connected.as_slice() {
                    // On no network: its namespace is already none's.
                    [] if cfg.network == "none" => cfg.left_network = false,
                    [] => cfg.extra_networks.push("none".into()),
                    [only] if only == "none" => {}
                    _ => return Err(Error::Conflict(NONE_ALONE.into())),
                }
            }
        }
        self.db.set_config(&r.id, &cfg)
    }

    /// `network disconnect host|none`: none leaves a container on no
    /// network (its namespace keeps loopback); host cannot be taken from
    /// a running container.
    pub fn disconnect_predefined(
        &self,
        r: &Record,
        kind: berth_network::predefined::Kind,
    ) -> Result<()> {
        let name = kind.name();
        let mut cfg = r.config.clone();
        if r.config.network == name && !r.config.left_network {
            if name == "host" && matches!(r.status, Status::Running | Status::Paused) {
                return Err(Error::Conflict(HOST_ONLY.into()));
            }
            cfg.left_network = true;
        } else if let Some(i) = cfg.extra_networks.iter().position(|n| n == name) {
            cfg.extra_networks.remove(i);
        } else {
            return Err(not_connected(r, name));
        }
        self.db.set_config(&r.id, &cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_hosts_parse() {
        assert_eq!(
            parse_mac("02:42:0a:00:00:05").unwrap(),
            [2, 0x42, 10, 0, 0, 5]
        );
        assert!(parse_mac("01:00:00:00:00:00").is_err());
        assert!(parse_mac("02:42").is_err());
        assert!(parse_mac("02:42:0a:00:00:5").is_err());
        let e = extra_hosts(&["db:10.0.0.9".into()]).unwrap();
        assert_eq!(
            (e[0].ip.as_str(), e[0].names[0].as_str()),
            ("10.0.0.9", "db")
        );
        assert!(extra_hosts(&["db".into()]).is_err());
        assert!(extra_hosts(&["db:notanip".into()]).is_err());
    }

    #[test]
    fn modes_with_bridges() {
        let mut c = ContainerConfig {
            network: "bridge".into(),
            ..Default::default()
        };
        assert!(on_bridges(&c));
        c.network = "mynet".into();
        assert!(on_bridges(&c));
        for m in ["none", "host", "container:x"] {
            c.network = m.into();
            assert!(!on_bridges(&c), "{m}");
        }
    }
}
