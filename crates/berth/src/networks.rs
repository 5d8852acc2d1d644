//! `berth network ...`: user networks (bridges with their own subnet, on
//! which containers find each other by name) and the default `bridge`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_engine::networks::{ConnectOptions, NetworkCreateOptions, NetworkEntry};
use berth_engine::Engine;
use clap::Subcommand;

use crate::format;

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// Driver (only bridge)
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form (default: a free /24 of 10.199.0.0/16)
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway of the subnet (default: its first address)
        #[arg(long)]
        gateway: Option<String>,
        /// No outbound access: containers reach only each other and the host
        #[arg(long)]
        internal: bool,
        /// Enable IPv6 (not supported yet)
        #[arg(long)]
        ipv6: bool,
        /// Set metadata (key=value)
        #[arg(long)]
        label: Vec<String>,
        /// Driver options (none are supported)
        #[arg(short, long)]
        opt: Vec<String>,
        /// Containers' addresses from this range of the subnet (CIDR)
        #[arg(long)]
        ip_range: Option<String>,
        /// An address of the subnet no container gets: NAME=IP
        #[arg(long, value_name = "NAME=IP")]
        aux_address: Vec<String>,
        /// IP address management driver (only default)
        #[arg(long, default_value = "default")]
        ipam_driver: String,
        /// IPAM driver options, shown in inspect: KEY=VALUE
        #[arg(long, value_name = "KEY=VALUE")]
        ipam_opt: Vec<String>,
        /// Let containers attach by hand (every berth network does)
        #[arg(long)]
        attachable: bool,
        /// The network's scope (only local: berth has no swarm)
        #[arg(long)]
        scope: Option<String>,
        /// A swarm routing-mesh network (refused: berth has no swarm)
        #[arg(long)]
        ingress: bool,
        /// A configuration-only network (refused: for swarm services)
        #[arg(long)]
        config_only: bool,
        /// A network from a configuration-only one (refused: for swarm services)
        #[arg(long)]
        config_from: Option<String>,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate the ids
        #[arg(long)]
        no_trunc: bool,
        /// name=..., id=..., label=...
        #[arg(short, long)]
        filter: Vec<String>,
        /// Go template ({{.ID}} {{.Name}} {{.Driver}} {{.Labels}} {{.Label "k"}} ...), table TEMPLATE, or json
        #[arg(long)]
        format: Option<String>,
    },
    /// Show networks as JSON
    Inspect {
        /// Go template over the JSON ({{.IPAM.Config}}, {{range .Containers}}...)
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks
    #[command(alias = "remove")]
    Rm {
        /// Do not fail when a network does not exist
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every user network no container uses
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Filter: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Connect a container to a network (a running one at once)
    Connect {
        /// Another name on the network
        #[arg(long)]
        alias: Vec<String>,
        /// Its IPv4 address on the network
        #[arg(long)]
        ip: Option<String>,
        /// Its IPv6 address (not implemented: berth has no IPv6 networks)
        #[arg(long, value_name = "IP")]
        ip6: Option<String>,
        /// Link-local addresses (not implemented in berth)
        #[arg(long, value_name = "IP")]
        link_local_ip: Vec<String>,
        /// Driver options for the endpoint (not implemented in berth)
        #[arg(long, value_name = "OPT")]
        driver_opt: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
}

pub fn run(root: &Path, runroot: &Path, cmd: &NetworkCommand) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    match cmd {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            internal,
            ipv6,
            label,
            opt,
            ip_range,
            aux_address,
            ipam_driver,
            ipam_opt,
            attachable,
            scope,
            ingress,
            config_only,
            config_from,
            name,
        } => {
            // docker's daemon's words for what needs a swarm or a plugin.
            if *ingress {
                bail!("Ingress network can only be global scope network");
            }
            match scope.as_deref() {
                None | Some("local") => {}
                Some("swarm" | "global") => {
                    bail!("cannot create a swarm scoped network when swarm is not active")
                }
                Some(s) => bail!("invalid scope value: {s:?}"),
            }
            if ipam_driver != "default" {
                bail!("plugin {ipam_driver:?} not found");
            }
            if *config_only || config_from.is_some() {
                bail!("configuration-only networks (--config-only, --config-from) are for swarm services, which berth does not run");
            }
            if driver != "bridge" {
                bail!("network driver {driver:?} is not supported: only \"bridge\"");
            }
            if *ipv6 {
                bail!("--ipv6: IPv6 networks are not implemented yet");
            }
            if let Some(o) = opt.first() {
                bail!("driver option {o:?} is not supported");
            }
            let subnet = subnet
                .as_deref()
                .map(berth_network::Subnet::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let gateway = match gateway {
                Some(g) => Some(g.parse::<std::net::Ipv4Addr>().map_err(|_| {
                    anyhow::anyhow!("invalid --gateway {g:?}: not an IPv4 address")
                })?),
                None => None,
            };
            let mut labels = BTreeMap::new();
            for l in label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                labels.insert(k.to_string(), v.to_string());
            }
            let mut opts = NetworkCreateOptions::named(name);
            opts.subnet = subnet;
            opts.gateway = gateway;
            opts.internal = *internal;
            opts.labels = labels;
            opts.ipam = ipam_settings(subnet, ip_range.as_deref(), aux_address, ipam_opt)?;
            opts.ipam.attachable = *attachable;
            let n = engine.network_create(&opts)?;
            println!("{}", n.id);
            Ok(0)
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            filter,
            format,
        } => {
            let mut list = engine.network_list()?;
            // Docker's client sorts by name, naturally.
            list.sort_by(|a, b| format::natural_cmp(a.name(), b.name()));
            for f in filter {
                let (k, v) = f
                    .split_once('=')
                    .with_context(|| format!("invalid filter {f:?}: use key=value"))?;
                match k {
                    "name" => list.retain(|n| n.name().contains(v)),
                    "id" => list.retain(|n| n.id().starts_with(v)),
                    "driver" => list.retain(|n| n.driver() == v),
                    "type" => match v {
                        "builtin" => list.retain(NetworkEntry::builtin),
                        "custom" => list.retain(|n| !n.builtin()),
                        _ => {
                            return Err(crate::FromDaemon::wrap(
                                anyhow::anyhow!("invalid filter: 'type'='{v}'"),
                                true,
                            ))
                        }
                    },
                    "label" => list.retain(|n| {
                        let labels = n.labels();
                        match v.split_once('=') {
                            Some((lk, lv)) => labels.get(lk).is_some_and(|x| x == lv),
                            None => labels.contains_key(v),
                        }
                    }),
                    _ => return Err(crate::invalid_filter(k)),
                }
            }
            let id = |s: &str| -> String {
                if *no_trunc {
                    s.to_string()
                } else {
                    s.chars().take(12).collect()
                }
            };
            let mut out = std::io::stdout().lock();
            if *quiet {
                for n in &list {
                    writeln!(out, "{}", id(n.id()))?;
                }
                return Ok(0);
            }
            let fmt = format::ListFormat::new(
                format.as_deref(),
                r"table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
            )?;
            let rows = list.iter().map(|n| {
                use berth_template::Value as V;
                let [label, labels] = format::label_fields(&n.labels());
                format::context(
                    "*network.networkContext",
                    vec![
                        ("CreatedAt", V::from(format::go_time_exact(n.created()))),
                        ("Driver", V::from(n.driver())),
                        ("ID", V::from(id(n.id()))),
                        ("IPv6", V::from("false")),
                        ("Internal", V::from(n.internal().to_string())),
                        label,
                        labels,
                        ("Name", V::from(n.name())),
                        ("Scope", V::from("local")),
                    ],
                )
            });
            let header = format::header(&[
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("IPv6", "IPV6"),
                ("Internal", "INTERNAL"),
                ("Labels", "LABELS"),
                ("CreatedAt", "CREATED AT"),
            ]);
            fmt.write(&header, rows, &mut out)?;
            Ok(0)
        }
        NetworkCommand::Inspect { format, networks } => {
            format::inspect_each(networks, format.as_deref(), |key| {
                let json = engine
                    .network_inspect(key)
                    .map(|n| berth_engine::inspect::types::to_value(&n))
                    .map_err(|e| format!("Error: {e}"))?;
                Ok(format::Found {
                    json,
                    type_name: "types.NetworkResource",
                    raw_fallback: true,
                })
            })
        }
        NetworkCommand::Rm { force, networks } => {
            let mut failed = None;
            for key in networks {
                match engine.network_remove(key) {
                    Ok(_) => println!("{key}"),
                    Err(berth_engine::Error::NoSuchNetwork(_)) if *force => {}
                    // docker's client finds the network itself; the rest
                    // is the daemon's answer.
                    Err(e @ berth_engine::Error::NoSuchNetwork(_)) => {
                        eprintln!("Error: {e}");
                        failed = Some(());
                    }
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = Some(());
                    }
                }
            }
            Ok(if failed.is_some() { 1 } else { 0 })
        }
        NetworkCommand::Prune { force, filter } => {
            let kind = crate::prune::Kind::Networks;
            crate::prune::prune_in(engine, kind, *force, filter)
        }
        NetworkCommand::Connect {
            alias,
            ip,
            ip6,
            link_local_ip,
            driver_opt,
            network,
            container,
        } => {
            if ip6.is_some() {
                bail!("network connect --ip6 is not implemented: berth has no IPv6 networks");
            }
            if !link_local_ip.is_empty() || !driver_opt.is_empty() {
                bail!(
                    "network connect --link-local-ip and --driver-opt are not implemented in berth"
                );
            }
            let mut opts = ConnectOptions::default();
            opts.aliases.clone_from(alias);
            if let Some(ip) = ip {
                opts.ipv4_address =
                    Some(ip.parse().map_err(|_| {
                        anyhow::anyhow!("invalid --ip {ip:?}: not an IPv4 address")
                    })?);
            }
            engine.network_connect(network, container, &opts)?;
            Ok(0)
        }
        NetworkCommand::Disconnect {
            force: _,
            network,
            container,
        } => {
            engine.network_disconnect(network, container)?;
            Ok(0)
        }
    }
}

/// `--ip-range`, `--aux-address` and `--ipam-opt`, checked as docker's
/// client checks them (its words, without "Error response from daemon").
fn ipam_settings(
    subnet: Option<berth_network::Subnet>,
    ip_range: Option<&str>,
    aux: &[String],
    opts: &[String],
) -> Result<berth_network::store::Ipam> {
    let client = |m: String| format::failure(m, 1);
    let mut ipam = berth_network::store::Ipam::default();
    if let Some(r) = ip_range {
        ipam.ip_range = Some(
            berth_network::Subnet::parse(r)
                .map_err(|e| client(format!("invalid --ip-range {r:?}: {e}")))?,
        );
    }
    for a in aux {
        let (name, ip) = a
            .split_once('=')
            .ok_or_else(|| client(format!("bad format for aux-address {a:?}: use NAME=IP")))?;
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| {
            client(format!(
                "invalid aux-address {a:?}: {ip:?} is not an IPv4 address"
            ))
        })?;
        ipam.aux_addresses.insert(name.to_string(), ip);
    }
    for o in opts {
        let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
        ipam.options.insert(k.to_string(), v.to_string());
    }
    ipam.check(subnet).map_err(client)?;
    Ok(ipam)
}

/// Whether docker's client reports `cmd`'s failures as its daemon's
/// answer ("Error response from daemon: ...").
pub fn daemon_words(cmd: &NetworkCommand) -> bool {
    matches!(
        cmd,
        NetworkCommand::Create { .. }
            | NetworkCommand::Connect { .. }
            | NetworkCommand::Disconnect { .. }
    )
}
