//! The user's network objects: create, ls, inspect (inspect.rs), rm,
//! connect and disconnect, each recorded in the event journal. How a
//! container is wired to them at start is networking.rs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::inspect::types::{ConfigReference, Ipam, NetworkMember, NetworkResource};
use berth_network::predefined::{Kind, Predefined};
use berth_network::{Network, Subnet};

use crate::{Engine, Error, Result};

/// A network as the listings show it: a bridge (the default one or a
/// user's), or docker's `host` and `none`.
#[derive(Debug, Clone)]
pub enum NetworkEntry {
    Bridge(Network),
    Predefined(Predefined),
}

impl NetworkEntry {
    pub fn name(&self) -> &str {
        match self {
            NetworkEntry::Bridge(n) => &n.name,
            NetworkEntry::Predefined(p) => p.kind.name(),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            NetworkEntry::Bridge(n) => &n.id,
            NetworkEntry::Predefined(p) => &p.id,
        }
    }

    pub fn driver(&self) -> &'static str {
        match self {
            NetworkEntry::Bridge(_) => "bridge",
            NetworkEntry::Predefined(p) => p.kind.driver(),
        }
    }

    pub fn created(&self) -> &str {
        match self {
            NetworkEntry::Bridge(n) => &n.created,
            NetworkEntry::Predefined(p) => &p.created,
        }
    }

    /// Docker's `type=builtin`: the networks every daemon has.
    pub fn builtin(&self) -> bool {
        match self {
            NetworkEntry::Bridge(n) => n.is_default(),
            NetworkEntry::Predefined(_) => true,
        }
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        match self {
            NetworkEntry::Bridge(n) => n.labels.clone(),
            NetworkEntry::Predefined(_) => BTreeMap::new(),
        }
    }

    pub fn internal(&self) -> bool {
        matches!(self, NetworkEntry::Bridge(n) if n.internal)
    }
}

/// `network create`.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct NetworkCreateOptions {
    pub name: String,
    /// Default: the next free /16 of berth's pool.
    pub subnet: Option<Subnet>,
    /// Default: the subnet's first address.
    pub gateway: Option<Ipv4Addr>,
    /// No route out of the network.
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// `--ip-range`, `--aux-address`, `--ipam-opt`, `--attachable`.
    pub ipam: berth_network::store::Ipam,
}

impl NetworkCreateOptions {
    /// Options for a network named `name`, the rest default.
    pub fn named(name: &str) -> Self {
        NetworkCreateOptions {
            name: name.to_string(),
            ..Self::default()
        }
    }
}

/// `network connect`.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Names the container also answers to on this network.
    pub aliases: Vec<String>,
    /// `--ip`: its address on this network.
    pub ipv4_address: Option<std::net::Ipv4Addr>,
}

impl Engine {
    /// The ports published for the container `key` (host address and port
    /// chosen at its start; none while it is stopped).
    pub fn container_ports(&self, key: &str) -> Result<Vec<berth_network::PortMapping>> {
        let r = self.find(key)?;
        Ok(self.network_state(&r.id).1)
    }

    /// Every network, the default bridge first.
    pub fn network_list(&self) -> Result<Vec<NetworkEntry>> {
        // Rootless: no default bridge (the default network is pasta, per
        // container); the user's networks, host and none are there.
        let mut list = Vec::new();
        if !saferoot::idmap::in_unprivileged_user_namespace() {
            list.push(NetworkEntry::Bridge(self.networks.default_network()?));
        }
        list.extend(
            self.networks
                .list()?
                .into_iter()
                .filter(|n| !n.is_default())
                .map(NetworkEntry::Bridge),
        );
        list.extend(
            berth_network::predefined::list(&self.root)?
                .into_iter()
                .map(NetworkEntry::Predefined),
        );
        Ok(list)
    }

    /// A network by name, id or id prefix: the bridges first, then host
    /// and none (whose names no bridge can have).
    pub fn network_lookup(
        &self,
        key: &str,
    ) -> std::result::Result<NetworkEntry, berth_network::Error> {
        let predefined = || berth_network::predefined::find(&self.root, key);
        if key == berth_network::store::DEFAULT_NAME
            && saferoot::idmap::in_unprivileged_user_namespace()
        {
            // Rootless: the default network is pasta's, with no bridge
            // (asking for it would make one on the host).
            return Err(berth_network::Error::NotFound(key.to_string()));
        }
        if Kind::from_name(key).is_some() {
            if let Some(p) = predefined()? {
                return Ok(NetworkEntry::Predefined(p));
            }
        }
        match self.networks.get(key) {
            Ok(n) => Ok(NetworkEntry::Bridge(n)),
            Err(berth_network::Error::NotFound(k)) => match predefined()? {
                Some(p) => Ok(NetworkEntry::Predefined(p)),
                None => Err(berth_network::Error::NotFound(k)),
            },
            Err(e) => Err(e),
        }
    }

    /// `host` or `none` as docker's inspect shows it: no addresses, the
    /// running containers in that mode as members.
    pub(crate) fn predefined_json(&self, p: &Predefined) -> NetworkResource {
        let mut containers = BTreeMap::new();
        for r in self.list().unwrap_or_default() {
            let member = r.config.network == p.kind.name()
                && !r.config.left_network
                && matches!(
                    r.status,
                    crate::db::Status::Running | crate::db::Status::Paused
                );
            if member {
                containers.insert(
                    r.id.clone(),
                    NetworkMember {
                        name: r.name,
                        endpoint_id: String::new(),
                        mac_address: String::new(),
                        ipv4_address: String::new(),
                        ipv6_address: String::new(),
                    },
                );
            }
        }
        NetworkResource {
            name: p.kind.name().to_string(),
            id: p.id.clone(),
            created: p.created.clone(),
            scope: "local".into(),
            driver: p.kind.driver().to_string(),
            enable_ipv6: false,
            ipam: Ipam {
                driver: "default".into(),
                options: None,
                config: Vec::new(),
            },
            internal: false,
            attachable: false,
            ingress: false,
            config_from: ConfigReference::default(),
            config_only: false,
            containers,
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Creates a bridge network.
    pub fn network_create(&self, opts: &NetworkCreateOptions) -> Result<Network> {
        // Rootless: the bridge is made in the user's network namespace.
        self.user_netns()?;
        let n = self.networks.create_with(
            &opts.name,
            opts.subnet,
            opts.gateway,
            opts.internal,
            &opts.labels,
            opts.ipam.clone(),
        )?;
        self.db.event(
            "network",
            "create",
            &n.id,
            &[("name", &n.name), ("type", "bridge")],
        );
        Ok(n)
    }

    /// Removes a network no container is configured with; the network
    /// removed.
    pub fn network_remove(&self, key: &str) -> Result<Network> {
        if let Ok(NetworkEntry::Predefined(p)) = self.network_lookup(key) {
            return Err(Error::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                p.kind.name()
            )));
        }
        let n = self.remove_network(key)?;
        self.db.event(
            "network",
            "destroy",
            &n.id,
            &[("name", &n.name), ("type", "bridge")],
        );
        Ok(n)
    }

    /// Connects a container to a network: now if it runs, and at its next
    /// starts.
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        opts: &ConnectOptions,
    ) -> Result<()> {
        let r = self.find(container)?;
        let found = self.network_lookup(network).map_err(|e| match e {
            // Docker's words for connect.
            berth_network::Error::NotFound(k) => Error::NetworkNotFound(k),
            e => e.into(),
        });
        let n = match found? {
            NetworkEntry::Bridge(n) => n,
            NetworkEntry::Predefined(p) => {
                self.connect_predefined(&r, p.kind)?;
                self.db.event(
                    "network",
                    "connect",
                    &p.id,
                    &[("container", &r.id), ("name", p.kind.name())],
                );
                return Ok(());
            }
        };
        self.connect(
            &r,
            &n,
            &crate::config::EndpointSettings {
                aliases: opts.aliases.clone(),
                ipv4_address: opts.ipv4_address,
            },
        )?;
        self.db.event(
            "network",
            "connect",
            &n.id,
            &[("container", &r.id), ("name", &n.name)],
        );
        Ok(())
    }

    /// Disconnects a container from a network.
    pub fn network_disconnect(&self, network: &str, container: &str) -> Result<()> {
        let r = self.find(container)?;
        let n = match self.network_lookup(network) {
            Ok(NetworkEntry::Bridge(n)) => n,
            Ok(NetworkEntry::Predefined(p)) => {
                self.disconnect_predefined(&r, p.kind)?;
                self.db.event(
                    "network",
                    "disconnect",
                    &p.id,
                    &[("container", &r.id), ("name", p.kind.name())],
                );
                return Ok(());
            }
            // Docker's answer for a network the container is not on,
            // whether or not it exists.
            Err(berth_network::Error::NotFound(_)) => {
                return Err(Error::Conflict(format!(
                    "container {} is not connected to the network {network}",
                    r.id
                )))
            }
            Err(e) => return Err(e.into()),
        };
        self.disconnect(&r, &n)?;
        self.db.event(
            "network",
            "disconnect",
            &n.id,
            &[("container", &r.id), ("name", &n.name)],
        );
        Ok(())
    }
}
