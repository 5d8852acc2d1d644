//! One service of the resolved model as the engine's `ContainerConfig`:
//! the keys berth acts on (see project.rs's list), each in Docker
//! Compose's meaning, plus Compose's labels on every container.

use std::collections::BTreeMap;

use berth_engine::config::{Device, LogConfig, LogDriver, Mount, RestartPolicy, Ulimit};
use berth_engine::health::HealthConfig;
use berth_engine::ContainerConfig;
use serde_json::Value;

use crate::canon::scalar_text;
use crate::error::{Error, Result};
use crate::units::{duration_ns, size};
use crate::Project;

/// The labels Compose puts on containers, networks and volumes.
pub mod labels {
    pub const PROJECT: &str = "com.docker.compose.project";
    pub const SERVICE: &str = "com.docker.compose.service";
    pub const NUMBER: &str = "com.docker.compose.container-number";
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    pub const VERSION: &str = "com.docker.compose.version";
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
    pub const IMAGE: &str = "com.docker.compose.image";
    pub const NETWORK: &str = "com.docker.compose.network";
    pub const VOLUME: &str = "com.docker.compose.volume";
}

/// Compose's version label: berth's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The image a service runs: its `image`, else `<project>-<service>` (the
/// name Compose gives a built image).
pub fn image_name(p: &Project, service: &str, s: &Value) -> String {
    s["image"]
        .as_str()
        .map_or_else(|| format!("{}-{service}", p.name), String::from)
}

/// The container name of replica `n` (`container_name`, else
/// `<project>-<service>-<n>`).
pub fn container_name(p: &Project, service: &str, n: u32) -> String {
    match p.model["services"][service]["container_name"].as_str() {
        Some(c) => c.to_string(),
        None => format!("{}-{service}-{n}", p.name),
    }
}

/// Where this project keeps files it makes for containers (secrets and
/// configs from the environment or inline content).
pub fn state_dir(engine_root: &std::path::Path, project: &str) -> std::path::PathBuf {
    engine_root.join("compose").join(project)
}

/// The configuration of replica `n` of `service`; `oneoff` for `run`.
pub fn container_config(
    p: &Project,
    service: &str,
    n: u32,
    oneoff: bool,
    engine_root: &std::path::Path,
) -> Result<ContainerConfig> {
    let s = p.service(service)?;
    let bad = |key: &str, problem: String| Error::Invalid {
        file: p
            .files
            .first()
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
        path: format!("services.{service}.{key}"),
        problem,
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(scalar_text).collect())
            .unwrap_or_default()
    };
    let mut c = ContainerConfig {
        image: image_name(p, service, s),
        ..ContainerConfig::default()
    };
    if let Some(cmd) = s.get("command").filter(|v| !v.is_null()) {
        c.cmd = strings(cmd);
    }
    if let Some(e) = s.get("entrypoint").filter(|v| !v.is_null()) {
        c.entrypoint_override = Some(strings(e));
    }
    if let Some(env) = s["environment"].as_object() {
        for (k, v) in env {
            if !v.is_null() {
                c.env.push(format!("{k}={}", scalar_text(v)));
            }
        }
    }
    let text = |key: &str| s.get(key).map(scalar_text).unwrap_or_default();
    c.working_dir = text("working_dir");
    c.user = text("user");
    c.hostname = text("hostname");
    c.domainname = text("domainname");
    c.stop_signal = text("stop_signal");
    c.read_only = s["read_only"].as_bool().unwrap_or(false);
    c.privileged = s["privileged"].as_bool().unwrap_or(false);
    c.init = s["init"].as_bool().unwrap_or(false);
    c.tty = s["tty"].as_bool().unwrap_or(false);
    c.open_stdin = s["stdin_open"].as_bool().unwrap_or(false);
    c.cap_add = strings(&s["cap_add"]);
    c.cap_drop = strings(&s["cap_drop"]);
    c.group_add = strings(&s["group_add"]);
    c.dns = strings(&s["dns"]);
    c.dns_search = strings(&s["dns_search"]);
    c.dns_options = strings(&s["dns_opt"]);
    c.extra_hosts = strings(&s["extra_hosts"]);
    c.exposed_ports = strings(&s["expose"])
        .into_iter()
        .map(|e| {
            if e.contains('/') {
                e
            } else {
                format!("{e}/tcp")
            }
        })
        .collect();
    if let Some(m) = s["sysctls"].as_object() {
        c.sysctls = m.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect();
    }
    if let Some(v) = s.get("oom_score_adj").and_then(Value::as_i64) {
        c.oom_score_adj = i32::try_from(v).ok();
    }
    if let Some(g) = s.get("stop_grace_period") {
        let ns = duration_ns(&scalar_text(g)).map_err(|e| bad("stop_grace_period", e))?;
        c.stop_timeout = u32::try_from(ns.div_ceil(1_000_000_000)).ok();
    }
    if let Some(r) = s.get("restart") {
        c.restart = RestartPolicy::parse(&scalar_text(r)).map_err(|e| bad("restart", e))?;
    }
    if let Some(sz) = s.get("shm_size") {
        c.shm_size = size(&scalar_text(sz)).map_err(|e| bad("shm_size", e))?;
    }
    resources(s, &mut c).map_err(|(k, e)| bad(&k, e))?;
    if let Some(u) = s["ulimits"].as_object() {
        for (name, v) in u {
            let (soft, hard) = match v {
                Value::Object(m) => (
                    m.get("soft").and_then(Value::as_u64),
                    m.get("hard").and_then(Value::as_u64),
                ),
                other => {
                    let n = scalar_text(other).parse::<u64>().ok();
                    (n, n)
                }
            };
            let (Some(soft), Some(hard)) = (soft, hard) else {
                return Err(bad(
                    &format!("ulimits.{name}"),
                    "want a number or soft and hard".into(),
                ));
            };
            c.ulimits.push(Ulimit {
                name: name.clone(),
                soft,
                hard,
            });
        }
    }
    for d in strings(&s["devices"]) {
        let mut parts = d.splitn(3, ':');
        let host = parts.next().unwrap_or("").to_string();
        let container = parts.next().map_or_else(|| host.clone(), String::from);
        let permissions = parts.next().unwrap_or("rwm").to_string();
        c.devices.push(Device {
            host,
            container,
            permissions,
        });
    }
    for opt in strings(&s["security_opt"]) {
        let (k, v) = opt.split_once([':', '=']).unwrap_or((opt.as_str(), ""));
        match k {
            "no-new-privileges" => c.no_new_privileges = v.is_empty() || v == "true",
            "seccomp" => c.seccomp = v.to_string(),
            _ => {
                return Err(bad(
                    "security_opt",
                    format!("{opt:?} is not supported by berth"),
                ))
            }
        }
    }
    if let Some(l) = s.get("logging") {
        let driver = match l["driver"].as_str().unwrap_or("json-file") {
            "json-file" => LogDriver::JsonFile,
            "local" => LogDriver::Local,
            "none" => LogDriver::None,
            d => {
                return Err(bad(
                    "logging.driver",
                    format!("{d:?}: berth has the json-file, local and none log drivers"),
                ))
            }
        };
        let opt = |k: &str| l["options"].get(k).map(scalar_text);
        let opts = l["options"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect())
            .unwrap_or_default();
        c.log = LogConfig {
            driver,
            opts,
            max_size: opt("max-size")
                .map(|v| size(&v))
                .transpose()
                .map_err(|e| bad("logging.options.max-size", e))?
                .unwrap_or(0),
            max_file: opt("max-file").and_then(|v| v.parse().ok()).unwrap_or(0),
        };
    }
    if let Some(h) = s.get("healthcheck") {
        c.health = health(h).map_err(|(k, e)| bad(&format!("healthcheck.{k}"), e))?;
    }
    for (i, t) in strings(&s["tmpfs"]).into_iter().enumerate() {
        let (dest, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if !dest.starts_with('/') {
            return Err(bad(
                &format!("tmpfs.{i}"),
                format!("{dest:?} is not an absolute path"),
            ));
        }
        c.mounts.push(Mount {
            kind: "tmpfs".into(),
            destination: dest.to_string(),
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect(),
            ..Mount::default()
        });
    }
    mounts(p, service, s, &mut c).map_err(|(k, e)| bad(&k, e))?;
    secret_files(p, service, s, engine_root, &mut c).map_err(|(k, e)| bad(&k, e))?;
    networking(p, service, s, &mut c).map_err(|(k, e)| bad(&k, e))?;
    // Compose's labels last: a service's own labels cannot fake them.
    if let Some(l) = s["labels"].as_object() {
        c.labels = l.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect();
    }
    let files: Vec<String> = p.files.iter().map(|f| f.display().to_string()).collect();
    let deps: Vec<String> = s["depends_on"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(d, v)| {
                    format!(
                        "{d}:{}:{}",
                        v["condition"].as_str().unwrap_or("service_started"),
                        v["restart"].as_bool().unwrap_or(false)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in [
        (labels::PROJECT, p.name.clone()),
        (labels::SERVICE, service.to_string()),
        (labels::NUMBER, n.to_string()),
        (labels::CONFIG_HASH, p.config_hash(service)?),
        (
            labels::ONEOFF,
            if oneoff { "True" } else { "False" }.to_string(),
        ),
        (labels::VERSION, VERSION.to_string()),
        (labels::WORKING_DIR, p.directory.display().to_string()),
        (labels::CONFIG_FILES, files.join(",")),
        (labels::DEPENDS_ON, deps.join(",")),
        (labels::IMAGE, c.image.clone()),
    ] {
        c.labels.insert(k.to_string(), v);
    }
    Ok(c)
}

type KeyError = (String, String);

fn resources(s: &Value, c: &mut ContainerConfig) -> std::result::Result<(), KeyError> {
    let limits = &s["deploy"]["resources"]["limits"];
    let reservations = &s["deploy"]["resources"]["reservations"];
    let sized = |v: &Value, key: &str| -> std::result::Result<Option<i64>, KeyError> {
        match v {
            Value::Null => Ok(None),
            v => size(&scalar_text(v))
                .map(|n| i64::try_from(n).ok())
                .map_err(|e| (key.to_string(), e)),
        }
    };
    c.resources.memory = sized(&s["mem_limit"], "mem_limit")?
        .or(sized(&limits["memory"], "deploy.resources.limits.memory")?);
    c.resources.memory_reservation = sized(&s["mem_reservation"], "mem_reservation")?.or(sized(
        &reservations["memory"],
        "deploy.resources.reservations.memory",
    )?);
    let cpus = s.get("cpus").or(limits.get("cpus")).map(scalar_text);
    if let Some(cpus) = cpus {
        let f: f64 = cpus.parse().map_err(|_| {
            (
                "cpus".to_string(),
                format!("{cpus:?} is not a number of CPUs"),
            )
        })?;
        #[allow(clippy::cast_possible_truncation)]
        let nano = (f * 1e9).round() as i64;
        c.resources.nano_cpus = Some(nano);
    }
    c.resources.pids_limit = s["pids_limit"].as_i64().or(limits["pids"].as_i64());
    Ok(())
}

fn health(h: &Value) -> std::result::Result<Option<HealthConfig>, KeyError> {
    if h["disable"].as_bool() == Some(true) {
        return Ok(Some(HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        }));
    }
    let d = |k: &str| -> std::result::Result<u64, KeyError> {
        match h.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => duration_ns(&scalar_text(v)).map_err(|e| (k.to_string(), e)),
        }
    };
    let test: Vec<String> = h["test"]
        .as_array()
        .map(|a| a.iter().map(scalar_text).collect())
        .unwrap_or_default();
    if test.is_empty() {
        // Only timings: the image's test with these timings is not
        // something berth can merge at create; keep the image's.
        return Ok(None);
    }
    Ok(Some(HealthConfig {
        test,
        interval_ns: d("interval")?,
        timeout_ns: d("timeout")?,
        retries: h["retries"]
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0),
        start_period_ns: d("start_period")?,
    }))
}

fn mounts(
    p: &Project,
    service: &str,
    s: &Value,
    c: &mut ContainerConfig,
) -> std::result::Result<(), KeyError> {
    let Some(vols) = s["volumes"].as_array() else {
        return Ok(());
    };
    for (i, v) in vols.iter().enumerate() {
        let kind = v["type"].as_str().unwrap_or("volume");
        let target = v["target"].as_str().unwrap_or("").to_string();
        let read_only = v["read_only"].as_bool().unwrap_or(false);
        let mount = match kind {
            "bind" => Mount {
                kind: "bind".into(),
                source: v["source"].as_str().unwrap_or("").to_string(),
                destination: target,
                read_only,
                options: v["bind"]["propagation"]
                    .as_str()
                    .map(String::from)
                    .into_iter()
                    .collect(),
                create_source: v["bind"]["create_host_path"].as_bool().unwrap_or(false),
                ..Mount::default()
            },
            "volume" => Mount {
                kind: "volume".into(),
                source: v["source"]
                    .as_str()
                    .map(|src| p.resource_name("volumes", src))
                    .unwrap_or_default(),
                destination: target,
                read_only,
                ..Mount::default()
            },
            "tmpfs" => Mount {
                kind: "tmpfs".into(),
                destination: target,
                options: v["tmpfs"]["size"]
                    .as_u64()
                    .map(|s| format!("size={s}"))
                    .into_iter()
                    .collect(),
                ..Mount::default()
            },
            other => {
                return Err((
                    format!("volumes.{i}.type"),
                    format!("{other:?} mounts are not supported by berth (service {service})"),
                ))
            }
        };
        c.mounts.push(mount);
    }
    Ok(())
}

/// Secrets at `/run/secrets/<target>`, configs at `/<target>`: a file
/// source bound read-only; an environment or inline source written under
/// the project's state directory first.
fn secret_files(
    p: &Project,
    service: &str,
    s: &Value,
    engine_root: &std::path::Path,
    c: &mut ContainerConfig,
) -> std::result::Result<(), KeyError> {
    for kind in ["secrets", "configs"] {
        let Some(list) = s[kind].as_array() else {
            continue;
        };
        for (i, item) in list.iter().enumerate() {
            let at = || format!("{kind}.{i}");
            let src = item["source"].as_str().unwrap_or("");
            let def = &p.model[kind][src];
            let target = item["target"].as_str().unwrap_or(src);
            let dest = if target.starts_with('/') {
                target.to_string()
            } else if kind == "secrets" {
                format!("/run/secrets/{target}")
            } else {
                format!("/{target}")
            };
            let source = if let Some(f) = def["file"].as_str() {
                f.to_string()
            } else {
                let content = if let Some(var) = def["environment"].as_str() {
                    p.environment
                        .get(var)
                        .cloned()
                        .ok_or_else(|| (at(), format!("{kind} {src}: variable {var} is not set")))?
                } else if let Some(text) = def["content"].as_str() {
                    text.to_string()
                } else {
                    return Err((
                        at(),
                        format!(
                            "{kind} {src}: berth supports file, environment and content sources"
                        ),
                    ));
                };
                let dir = state_dir(engine_root, &p.name).join(kind).join(service);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| (at(), format!("{}: {e}", dir.display())))?;
                let f = dir.join(src);
                std::fs::write(&f, content).map_err(|e| (at(), format!("{}: {e}", f.display())))?;
                f.display().to_string()
            };
            c.mounts.push(Mount {
                kind: "bind".into(),
                source,
                destination: dest,
                read_only: true,
                ..Mount::default()
            });
        }
    }
    Ok(())
}

fn networking(
    p: &Project,
    service: &str,
    s: &Value,
    c: &mut ContainerConfig,
) -> std::result::Result<(), KeyError> {
    if let Some(mode) = s["network_mode"].as_str() {
        c.network = match mode.split_once(':') {
            Some(("service", other)) => format!("container:{}", container_name(p, other, 1)),
            _ => mode.to_string(),
        };
    }
    let mut ports = Vec::new();
    for (i, port) in s["ports"].as_array().into_iter().flatten().enumerate() {
        let mut spec = String::new();
        if let Some(ip) = port["host_ip"].as_str() {
            spec.push_str(ip);
            spec.push(':');
        }
        if let Some(published) = port["published"].as_str() {
            spec.push_str(published);
            spec.push(':');
        } else if !spec.is_empty() {
            spec.push(':');
        }
        spec.push_str(&scalar_text(&port["target"]));
        spec.push('/');
        spec.push_str(port["protocol"].as_str().unwrap_or("tcp"));
        ports.extend(berth_network::ports::parse(&spec).map_err(|e| (format!("ports.{i}"), e))?);
    }
    c.publish = ports;
    let Some(nets) = s["networks"].as_object() else {
        return Ok(());
    };
    // The network with the highest priority first, then by name
    // (Compose's order of connection).
    let mut ordered: Vec<(&String, &Value)> = nets.iter().collect();
    ordered.sort_by_key(|(name, v)| {
        (
            std::cmp::Reverse(v["priority"].as_i64().unwrap_or(0)),
            (*name).clone(),
        )
    });
    for (i, (key, v)) in ordered.iter().enumerate() {
        let name = p.resource_name("networks", key);
        // Each network its own aliases and address (docker's
        // EndpointSettings): the service's name on all of them.
        let mut aliases = vec![service.to_string()];
        for a in v["aliases"].as_array().into_iter().flatten() {
            let a = scalar_text(a);
            if !aliases.contains(&a) {
                aliases.push(a);
            }
        }
        let ip = match v["ipv4_address"].as_str() {
            Some(ip) => Some(ip.parse().map_err(|_| {
                (
                    format!("networks.{key}.ipv4_address"),
                    format!("{ip:?} is not an IPv4 address"),
                )
            })?),
            None => None,
        };
        if i == 0 {
            c.network = name;
            c.ip = ip;
            c.network_aliases = aliases;
        } else {
            c.extra_networks.push(name.clone());
            c.endpoints.insert(
                name,
                berth_engine::config::EndpointSettings {
                    aliases,
                    ipv4_address: ip,
                },
            );
        }
    }
    Ok(())
}

/// Labels for a network or volume the project makes.
pub fn resource_labels(p: &Project, kind_label: &str, key: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(labels::PROJECT.to_string(), p.name.clone());
    l.insert(kind_label.to_string(), key.to_string());
    l.insert(labels::VERSION.to_string(), VERSION.to_string());
    l
}
