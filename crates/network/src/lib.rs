//! berth's container networking: Linux bridges, one veth pair per
//! container and network, addresses leased from the network's subnet (rows
//! of `berth.db`), NAT and published ports in one nftables table, and the
//! files (`/etc/hosts`, `/etc/resolv.conf`) and the per-network resolver
//! (resolver.rs) through which containers on a user network find each
//! other by name.
//!
//! ```text
//! host                                   container netns (/proc/<pid>/ns/net)
//!  berth0 (bridge, gateway 10.200.0.1/16)
//!   └─ vb<id><n> ── veth ──────────────── eth<n> 10.200.0.2/16, default via gateway
//! nft table ip berth: masquerade out, dnat published ports (see nft.rs)
//! ```
//!
//! Daemonless: nothing runs for the whole engine between commands (a user
//! network with running members has its resolver process, see resolver.rs). The kernel holds
//! links and rules; the database holds networks, leases and ports; whoever
//! starts or ends a container adds or removes its part.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

pub mod bridge_trash;
pub mod dns;
pub mod files;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod nft_elements;
pub mod ports;
pub mod predefined;
pub mod resolver;
pub mod store;
pub mod subnet;

pub use ports::{PortMapping, PortSpec, Proto};
pub use store::{
    loopback_up_in, loopback_up_in_current, Attach, Endpoint, EndpointConfig, Network, Networks,
};
pub use subnet::Subnet;

/// What can go wrong, each naming the thing and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// network {0} not found
    #[error("network {0} not found")]
    NotFound(String),
    /// network with name {0} already exists
    #[error("network with name {0} already exists")]
    Exists(String),
    /// A flag or name the caller gave is wrong: "{0}" ("invalid --ip x:
    /// ...", "invalid network name ...").
    #[error("{0}")]
    InvalidOption(String),
    /// A prefix that names several networks: "{0}" ("network x is
    /// ambiguous (2 matches found based on ID prefix)").
    #[error("{0}")]
    Ambiguous(String),
    /// The request contradicts another network or endpoint: "{0}"
    /// ("endpoint with name x already exists in network y").
    #[error("{0}")]
    Conflict(String),
    /// The network is used by containers: "{0}" ("... has active
    /// endpoints").
    #[error("{0}")]
    InUse(String),
    /// No free address, port, subnet or bridge name is left: "{0}".
    #[error("{0}")]
    Exhausted(String),
    /// The host's side of a network is not as recorded (a bridge or an
    /// interface vanished): "{0}".
    #[error("{0}")]
    Host(String),
    /// A row of the network store that cannot be read back: "{0}".
    #[error("{0}")]
    Damaged(String),
    /// A network's DNS resolver could not be started or stopped: "{0}".
    #[error("{0}")]
    Resolver(String),
    /// `berth __dns` was called wrongly (berth's own use): "{0}".
    #[error("{0}")]
    Usage(String),
    /// Bind for {0} failed: port is already allocated
    #[error("Bind for {0} failed: port is already allocated")]
    PortInUse(String),
    /// {context}: {source}
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Nft(#[from] nft::NftError),
    /// database: {0}
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
