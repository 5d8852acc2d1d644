//! The project's networks and volumes, made by `up` when missing (with
//! Compose's labels, `internal`, `ipam` and `driver_opts`); an external
//! one must exist already.

use std::collections::{BTreeMap, BTreeSet};

use berth_engine::networks::NetworkCreateOptions;
use berth_engine::Engine;

use crate::error::{Error, Result};
use crate::service::{self, labels};
use crate::up::Step;
use crate::Project;

/// Makes the networks the services of `order` use.
pub fn networks(
    engine: &mut Engine,
    p: &Project,
    order: &[String],
    report: &mut dyn FnMut(Step),
) -> Result<()> {
    let used: BTreeSet<String> = order
        .iter()
        .flat_map(|s| {
            p.model["services"][s]["networks"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    for key in used {
        let name = p.resource_name("networks", &key);
        let exists = engine.network_lookup(&name).is_ok();
        if p.external("networks", &key) {
            if !exists {
                return Err(Error::Option(format!(
                    "network {name} declared as external, but could not be found: create it with berth network create {name}"
                )));
            }
            continue;
        }
        if exists {
            continue;
        }
        let def = &p.model["networks"][&key];
        let driver = def["driver"].as_str().unwrap_or("bridge");
        if driver != "bridge" {
            return Err(Error::Option(format!(
                "network {key}: driver {driver:?} is not supported by berth (bridge only)"
            )));
        }
        let mut o = NetworkCreateOptions::named(&name);
        o.internal = def["internal"].as_bool().unwrap_or(false);
        o.labels = service::resource_labels(p, labels::NETWORK, &key);
        if let Some(l) = def["labels"].as_object() {
            for (k, v) in l {
                o.labels.insert(k.clone(), crate::canon::scalar_text(v));
            }
        }
        if let Some(cfg) = def["ipam"]["config"].as_array().and_then(|c| c.first()) {
            if let Some(subnet) = cfg["subnet"].as_str() {
                o.subnet = Some(
                    berth_network::Subnet::parse(subnet)
                        .map_err(|e| Error::Option(format!("network {key}: ipam subnet: {e}")))?,
                );
            }
            if let Some(gw) = cfg["gateway"].as_str() {
                o.gateway = Some(gw.parse().map_err(|_| {
                    Error::Option(format!(
                        "network {key}: ipam gateway {gw:?} is not an IPv4 address"
                    ))
                })?);
            }
            if let Some(r) = cfg["ip_range"].as_str() {
                o.ipam.ip_range =
                    Some(berth_network::Subnet::parse(r).map_err(|e| {
                        Error::Option(format!("network {key}: ipam ip_range: {e}"))
                    })?);
            }
            for (name, ip) in cfg["aux_addresses"].as_object().into_iter().flatten() {
                let ip = ip.as_str().and_then(|ip| ip.parse().ok()).ok_or_else(|| {
                    Error::Option(format!(
                        "network {key}: ipam aux_addresses.{name} is not an IPv4 address"
                    ))
                })?;
                o.ipam.aux_addresses.insert(name.clone(), ip);
            }
        }
        for (k, v) in def["ipam"]["options"].as_object().into_iter().flatten() {
            o.ipam
                .options
                .insert(k.clone(), crate::canon::scalar_text(v));
        }
        o.ipam.attachable = def["attachable"].as_bool().unwrap_or(false);
        engine
            .network_create(&o)
            .map_err(Error::engine(format!("create network {name}")))?;
        report(Step {
            kind: "Network",
            name,
            state: "Created".into(),
        });
    }
    Ok(())
}

/// Makes the named volumes the services of `order` mount.
pub fn volumes(
    engine: &mut Engine,
    p: &Project,
    order: &[String],
    report: &mut dyn FnMut(Step),
) -> Result<()> {
    let used: BTreeSet<String> = order
        .iter()
        .flat_map(|s| {
            p.model["services"][s]["volumes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|v| v["type"].as_str() == Some("volume"))
                        .filter_map(|v| v["source"].as_str().map(String::from))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    for key in used {
        let name = p.resource_name("volumes", &key);
        let exists = engine.volume(&name).is_ok();
        if p.external("volumes", &key) {
            if !exists {
                return Err(Error::Option(format!(
                    "external volume {name:?} not found: create it with berth volume create {name}"
                )));
            }
            continue;
        }
        if exists {
            continue;
        }
        let def = &p.model["volumes"][&key];
        let mut l = service::resource_labels(p, labels::VOLUME, &key);
        if let Some(more) = def["labels"].as_object() {
            for (k, v) in more {
                l.insert(k.clone(), crate::canon::scalar_text(v));
            }
        }
        let opts: BTreeMap<String, String> = def["driver_opts"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), crate::canon::scalar_text(v)))
                    .collect()
            })
            .unwrap_or_default();
        engine
            .volumes()
            .create_with_options(Some(&name), &l, &opts)
            .map_err(Error::engine(format!("create volume {name}")))?;
        report(Step {
            kind: "Volume",
            name,
            state: "Created".into(),
        });
    }
    Ok(())
}
