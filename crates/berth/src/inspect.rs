//! `inspect`: Docker's JSON for containers and images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_engine::{Engine, Record, Status};
use serde_json::{json, Value};

use crate::format;
/// `container inspect`: containers only, as docker's.
pub fn inspect_containers(
    root: &Path,
    runroot: &Path,
    names: &[String],
    format: Option<&str>,
) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    inspect(&engine, names, format, Some("container"))
}

/// Docker's container JSON (the parts berth knows).
pub fn container_json(engine: &Engine, r: &Record) -> Value {
    let c = &r.config;
    let dir = engine.container_dir(&r.id);
    let env: Vec<String> = c.env.clone();
    let labels: BTreeMap<String, String> = c.labels.clone();
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": c.args.first().cloned().unwrap_or_default(),
        "Args": c.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": match r.status { Status::Starting => "created", s => s.as_str() },
            "Running": matches!(r.status, Status::Running | Status::Paused | Status::Restarting),
            "Paused": r.status == Status::Paused,
            "Restarting": r.status == Status::Restarting,
            "OOMKilled": r.oom_killed,
            "Dead": false,
            "Pid": r.pid,
            "ExitCode": r.exit_code,
            "Error": r.error,
            "StartedAt": if r.started_at.is_empty() { "0001-01-01T00:00:00Z" } else { r.started_at.as_str() },
            "FinishedAt": if r.finished_at.is_empty() { "0001-01-01T00:00:00Z" } else { r.finished_at.as_str() },
            "Health": r.health,
        },
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": engine.log_path(&r.id),
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        // The layout Docker calls overlay2 (overlayfs with many lower
        // layers); scripts compare against that name.
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "Binds": c.mounts.iter().filter(|m| m.kind == "bind").map(|m| format!("{}:{}{}", m.source, m.destination, if m.read_only { ":ro" } else { "" })).collect::<Vec<_>>(),
            "NetworkMode": c.network,
            "RestartPolicy": {"Name": c.restart.name, "MaximumRetryCount": c.restart.max_retries},
            "AutoRemove": c.auto_remove,
            "OomScoreAdj": c.oom_score_adj.unwrap_or(0),
            "CapAdd": c.cap_add,
            "CapDrop": c.cap_drop,
            "Privileged": c.privileged,
            "ReadonlyRootfs": c.read_only,
            "PidMode": c.pid_mode,
            "IpcMode": c.ipc_mode,
            "UTSMode": c.uts_mode,
            "ShmSize": if c.shm_size == 0 { 64 << 20 } else { c.shm_size },
            "Memory": c.resources.memory.unwrap_or(0),
            "MemorySwap": c.resources.memory_swap.unwrap_or(0),
            "NanoCpus": c.resources.nano_cpus.unwrap_or(0),
            "CpuShares": c.resources.cpu_shares.unwrap_or(0),
            "CpusetCpus": c.resources.cpuset_cpus.clone().unwrap_or_default(),
            "PidsLimit": c.resources.pids_limit,
            "LogConfig": {"Type": "json-file", "Config": {}},
            "SecurityOpt": Value::Null,
        },
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "UpperDir": dir.join("fs/upper"),
                "WorkDir": dir.join("fs/work"),
                // A running container's rootfs is mounted in its own mount
                // namespace only: its view from the host is its init's root.
                "MergedDir": if r.status == Status::Running && r.pid > 0 {
                    PathBuf::from(format!("/proc/{}/root", r.pid))
                } else {
                    dir.join("fs/merged")
                },
            }
        },
        "Mounts": c.mounts.iter().map(|m| json!({
            "Type": m.kind, "Source": m.source, "Destination": m.destination,
            "Mode": if m.read_only { "ro" } else { "" }, "RW": !m.read_only, "Propagation": "rprivate",
        })).collect::<Vec<_>>(),
        "Config": {
            "Hostname": c.hostname,
            "Domainname": c.domainname,
            "User": c.user,
            "Tty": c.tty,
            "OpenStdin": c.open_stdin,
            "Env": env,
            "Cmd": c.cmd,
            "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
            "Image": c.image,
            "WorkingDir": c.working_dir,
            "Labels": labels,
            "StopSignal": if c.stop_signal.is_empty() { "SIGTERM" } else { c.stop_signal.as_str() },
            "StopTimeout": c.stop_timeout,
            "Healthcheck": c.health.as_ref().map(|h| json!({
                "Test": h.test, "Interval": h.interval_ns, "Timeout": h.timeout_ns,
                "Retries": h.retries, "StartPeriod": h.start_period_ns,
            })),
        },
        "NetworkSettings": network_settings(engine, r),
    })
}

/// Inspect's NetworkSettings: docker's shape, the first network's address
/// at the top level (as docker shows the default bridge's).
fn network_settings(engine: &Engine, r: &Record) -> Value {
    let (eps, ports) = engine.network_state(&r.id);
    let mut port_map = serde_json::Map::new();
    for e in &r.config.exposed_ports {
        let key = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        port_map.insert(key, Value::Null);
    }
    for m in &ports {
        let key = format!("{}/{}", m.container_port, m.proto.as_str());
        let entry = json!({
            "HostIp": m.host_ip.map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string()),
            "HostPort": m.host_port.to_string(),
        });
        match port_map.get_mut(&key) {
            Some(Value::Array(a)) => a.push(entry),
            _ => {
                port_map.insert(key, json!([entry]));
            }
        }
    }
    let c = &r.config;
    let mut networks = serde_json::Map::new();
    let names: Vec<String> = if berth_engine::networking::on_bridges(c) {
        std::iter::once(c.network.clone())
            .chain(c.extra_networks.iter().cloned())
            .collect()
    } else {
        vec![c.network.clone()]
    };
    for name in names {
        let ep = eps.iter().find(|e| e.network_name == name);
        networks.insert(
            name.clone(),
            json!({
                "Aliases": if ep.is_some() && name != "bridge" { json!(c.network_aliases) } else { Value::Null },
                "NetworkID": ep.map(|e| e.network_id.clone()).unwrap_or_default(),
                "EndpointID": ep.map(|e| format!("{}{}", e.container_id.get(..32).unwrap_or(""), e.veth)).unwrap_or_default(),
                "Gateway": ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
                "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
                "IPPrefixLen": ep.map_or(0, |e| e.prefix),
                "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                "DNSNames": ep.map(|e| json!(e.names)).unwrap_or(Value::Null),
            }),
        );
    }
    let first = eps.first();
    json!({
        "Bridge": "",
        "SandboxKey": if r.pid > 0 { format!("/proc/{}/ns/net", r.pid) } else { String::new() },
        "Ports": port_map,
        "Gateway": first.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "IPAddress": first.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": first.map_or(0, |e| e.prefix),
        "MacAddress": first.map(|e| e.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    })
}

pub(crate) fn inspect(
    engine: &Engine,
    names: &[String],
    format: Option<&str>,
    kind: Option<&str>,
) -> Result<i32> {
    // With -f, objects go through the template as docker's inspector
    // does (errors gathered, output at the end); without, as JSON.
    let mut inspector = format.map(format::Inspector::new).transpose()?;
    let mut out = Vec::new();
    let mut code = 0;
    for n in names {
        let container = if kind != Some("image") {
            engine.find(n).ok()
        } else {
            None
        };
        let v = match container {
            Some(r) => Some((container_json(engine, &r), "*types.ContainerJSON")),
            None if kind != Some("container") => match engine.images.resolve(n) {
                Ok(img) => Some((
                    crate::image_json(&engine.images, &img)?,
                    "types.ImageInspect",
                )),
                Err(_) => None,
            },
            None => None,
        };
        let missing = match kind {
            Some("container") => format!("Error: No such container: {n}"),
            Some("image") => format!("Error: No such image: {n}"),
            _ => format!("Error: No such object: {n}"),
        };
        match (v, inspector.as_mut()) {
            (Some((v, type_name)), Some(i)) => i.add(&v, type_name, true),
            (Some((v, _)), None) => out.push(v),
            (None, Some(i)) => i.error(missing),
            (None, None) => {
                eprintln!("{missing}");
                code = 1;
            }
        }
    }
    match inspector {
        Some(i) => i.finish(&mut std::io::stdout().lock()),
        None => {
            println!("{}", serde_json::to_string_pretty(&Value::Array(out))?);
            Ok(code)
        }
    }
}
