//! The user's network objects: create, ls, inspect (inspect.rs), rm,
//! connect and disconnect, each recorded in the event journal. How a
//! container is wired to them at start is networking.rs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_network::{Network, Subnet};

use crate::{Engine, Result};

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
}

impl Engine {
    /// The ports published for the container `key` (host address and port
    /// chosen at its start; none while it is stopped).
    pub fn container_ports(&self, key: &str) -> Result<Vec<berth_network::PortMapping>> {
        let r = self.find(key)?;
        Ok(self.network_state(&r.id).1)
    }

    /// Every network, the default bridge first.
    pub fn network_list(&self) -> Result<Vec<Network>> {
        let mut list = vec![self.networks.default_network()?];
        list.extend(
            self.networks
                .list()?
                .into_iter()
                .filter(|n| !n.is_default()),
        );
        Ok(list)
    }

    /// Creates a bridge network.
    pub fn network_create(&self, opts: &NetworkCreateOptions) -> Result<Network> {
        let n = self.networks.create(
            &opts.name,
            opts.subnet,
            opts.gateway,
            opts.internal,
            &opts.labels,
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
        let n = self.networks.get(network)?;
        let r = self.find(container)?;
        self.connect(&r, &n, &opts.aliases)?;
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
        let n = self.networks.get(network)?;
        let r = self.find(container)?;
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
