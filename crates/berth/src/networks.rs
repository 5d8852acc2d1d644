//! `berth network ...`: user networks (bridges with their own subnet, on
//! which containers find each other by name) and the default `bridge`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_engine::Engine;
use clap::Subcommand;
use serde_json::{json, Value};

use berth_network::predefined::{Kind, Predefined};

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

/// A network as the listings show it: a bridge (the default one or a
/// user's), or docker's `host` and `none`.
enum Listed {
    Bridge(berth_network::Network),
    Predefined(Predefined),
}

impl Listed {
    fn name(&self) -> &str {
        match self {
            Listed::Bridge(n) => &n.name,
            Listed::Predefined(p) => p.kind.name(),
        }
    }

    fn id(&self) -> &str {
        match self {
            Listed::Bridge(n) => &n.id,
            Listed::Predefined(p) => &p.id,
        }
    }

    fn driver(&self) -> &'static str {
        match self {
            Listed::Bridge(_) => "bridge",
            Listed::Predefined(p) => p.kind.driver(),
        }
    }

    fn created(&self) -> &str {
        match self {
            Listed::Bridge(n) => &n.created,
            Listed::Predefined(p) => &p.created,
        }
    }

    /// Docker's `type=builtin`: the networks every daemon has.
    fn builtin(&self) -> bool {
        match self {
            Listed::Bridge(n) => n.is_default(),
            Listed::Predefined(_) => true,
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        match self {
            Listed::Bridge(n) => n.labels.clone(),
            Listed::Predefined(_) => BTreeMap::new(),
        }
    }

    fn internal(&self) -> bool {
        matches!(self, Listed::Bridge(n) if n.internal)
    }

    fn json(&self, engine: &Engine) -> Value {
        match self {
            Listed::Bridge(n) => network_json(engine, n),
            Listed::Predefined(p) => predefined_json(engine, p),
        }
    }
}

/// A network by name, id or id prefix: the bridges first, then host and
/// none (whose names no bridge can have).
fn lookup(engine: &Engine, key: &str) -> Result<Listed, berth_network::Error> {
    let predefined = || berth_network::predefined::find(&engine.root, key);
    if Kind::from_name(key).is_some() {
        if let Some(p) = predefined()? {
            return Ok(Listed::Predefined(p));
        }
    }
    match engine.networks.get(key) {
        Ok(n) => Ok(Listed::Bridge(n)),
        Err(berth_network::Error::NotFound(k)) => match predefined()? {
            Some(p) => Ok(Listed::Predefined(p)),
            None => Err(berth_network::Error::NotFound(k)),
        },
        Err(e) => Err(e),
    }
}

/// `host` or `none` as docker's inspect shows it: no addresses, the
/// running containers in that mode as members.
fn predefined_json(engine: &Engine, p: &Predefined) -> Value {
    let mut containers = serde_json::Map::new();
    for r in engine.list().unwrap_or_default() {
        let member = r.config.network == p.kind.name()
            && !r.config.left_network
            && matches!(
                r.status,
                berth_engine::db::Status::Running | berth_engine::db::Status::Paused
            );
        if member {
            containers.insert(
                r.id.clone(),
                json!({
                    "Name": r.name,
                    "EndpointID": "",
                    "MacAddress": "",
                    "IPv4Address": "",
                    "IPv6Address": "",
                }),
            );
        }
    }
    json!({
        "Name": p.kind.name(),
        "Id": p.id,
        "Created": p.created,
        "Scope": "local",
        "Driver": p.kind.driver(),
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": {},
        "Labels": {},
    })
}

fn network_json(engine: &Engine, n: &berth_network::Network) -> Value {
    let mut containers = serde_json::Map::new();
    for m in engine.networks.members(&n.id).unwrap_or_default() {
        let name = engine
            .db
            .get(&m.container_id)
            .ok()
            .flatten()
            .map(|r| r.name)
            .unwrap_or_default();
        containers.insert(
            m.container_id.clone(),
            json!({
                "Name": name,
                "MacAddress": m.mac,
                "IPv4Address": format!("{}/{}", m.ip, m.prefix),
                "IPv6Address": "",
            }),
        );
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}]},
        "Internal": n.internal,
        "Attachable": false,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": n.labels,
    })
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
            name,
        } => {
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
            let n = engine
                .networks
                .create(name, subnet, gateway, *internal, &labels)?;
            engine.db.event(
                "network",
                "create",
                &n.id,
                &[("name", &n.name), ("type", "bridge")],
            );
            println!("{}", n.id);
            Ok(0)
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            filter,
            format,
        } => {
            let mut list = vec![Listed::Bridge(engine.networks.default_network()?)];
            list.extend(
                engine
                    .networks
                    .list()?
                    .into_iter()
                    .filter(|n| !n.is_default())
                    .map(Listed::Bridge),
            );
            list.extend(
                berth_network::predefined::list(&engine.root)?
                    .into_iter()
                    .map(Listed::Predefined),
            );
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
                        "builtin" => list.retain(Listed::builtin),
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
            if let Some(f) = format {
                let mut inspector = format::Inspector::new(f)?;
                for key in networks {
                    match lookup(&engine, key) {
                        Ok(n) => inspector.add(&n.json(&engine), "types.NetworkResource", true),
                        Err(e) => inspector.error(format!("Error: {e}")),
                    }
                }
                return inspector.finish(&mut std::io::stdout().lock());
            }
            let mut out = Vec::new();
            let mut missing = None;
            for key in networks {
                match lookup(&engine, key) {
                    Ok(n) => out.push(n.json(&engine)),
                    Err(e) => missing = Some(berth_engine::Error::from(e)),
                }
            }
            println!("{}", serde_json::to_string_pretty(&Value::Array(out))?);
            if let Some(e) = missing {
                bail!("{e}");
            }
            Ok(0)
        }
        NetworkCommand::Rm { force, networks } => {
            let mut failed = None;
            for key in networks {
                if let Ok(Listed::Predefined(p)) = lookup(&engine, key) {
                    eprintln!(
                        "Error response from daemon: {} is a pre-defined network and cannot be removed",
                        p.kind.name()
                    );
                    failed = Some(());
                    continue;
                }
                match engine.remove_network(key) {
                    Ok(n) => {
                        engine.db.event(
                            "network",
                            "destroy",
                            &n.id,
                            &[("name", &n.name), ("type", "bridge")],
                        );
                        println!("{key}");
                    }
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
            network,
            container,
        } => {
            let r = engine.find(container)?;
            let n = match lookup(&engine, network)? {
                Listed::Bridge(n) => n,
                Listed::Predefined(p) => {
                    engine.connect_predefined(&r, p.kind)?;
                    engine.db.event(
                        "network",
                        "connect",
                        &p.id,
                        &[("container", &r.id), ("name", p.kind.name())],
                    );
                    return Ok(0);
                }
            };
            engine.connect(&r, &n, alias)?;
            engine.db.event(
                "network",
                "connect",
                &n.id,
                &[("container", &r.id), ("name", &n.name)],
            );
            Ok(0)
        }
        NetworkCommand::Disconnect {
            force: _,
            network,
            container,
        } => {
            let r = engine.find(container)?;
            let n = match lookup(&engine, network) {
                Ok(Listed::Bridge(n)) => n,
                Ok(Listed::Predefined(p)) => {
                    engine.disconnect_predefined(&r, p.kind)?;
                    engine.db.event(
                        "network",
                        "disconnect",
                        &p.id,
                        &[("container", &r.id), ("name", p.kind.name())],
                    );
                    return Ok(0);
                }
                // Docker's answer for a network the container is not on,
                // whether or not it exists.
                Err(berth_network::Error::NotFound(_)) => {
                    anyhow::bail!(
                        "container {} is not connected to the network {network}",
                        r.id
                    )
                }
                Err(e) => return Err(e.into()),
            };
            engine.disconnect(&r, &n)?;
            engine.db.event(
                "network",
                "disconnect",
                &n.id,
                &[("container", &r.id), ("name", &n.name)],
            );
            Ok(0)
        }
    }
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
