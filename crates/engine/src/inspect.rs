//! `inspect`: Docker's JSON for containers, images, volumes and networks.
//! Made here, not in a front end, so that the command line and any other
//! caller (compose, a Docker-API socket) show the same object; scripts
//! read it with `--format '{{.State.Pid}}'` and jq.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_image::store::{Image, ImageStore};
use serde_json::{json, Value};

use crate::{Engine, Record, Result, Status};

impl Engine {
    /// Docker's `ContainerJSON` of the container `key` (a name, an id or
    /// an id's prefix), its state made truthful first.
    pub fn container_inspect(&self, key: &str) -> Result<Value> {
        let r = self.find(key)?;
        Ok(container_json(self, &r))
    }

    /// Docker's `ContainerJSON` of a record the caller already holds.
    pub fn container_json(&self, r: &Record) -> Value {
        container_json(self, r)
    }

    /// Docker's `ImageInspect` of the image `key` (a reference or an id).
    pub fn image_inspect(&self, key: &str) -> Result<Value> {
        let img = self.images.resolve(key)?;
        Ok(image_json(&self.images, &img)?)
    }

    /// Docker's `Volume` of the volume `name`.
    pub fn volume_inspect(&self, name: &str) -> Result<Value> {
        let v = self.volumes.get(name)?;
        Ok(serde_json::to_value(&v).unwrap_or(Value::Null))
    }

    /// Docker's `NetworkResource` of the network `key` (a name, an id or
    /// an id's prefix), with the containers attached to it.
    pub fn network_inspect(&self, key: &str) -> Result<Value> {
        Ok(match self.network_lookup(key)? {
            crate::networks::NetworkEntry::Bridge(n) => network_json(self, &n),
            crate::networks::NetworkEntry::Predefined(p) => self.predefined_json(&p),
        })
    }
}

/// Docker's `ImageInspect` of an image in `store` (for callers that hold
/// only the image store, as `image inspect` does).
pub fn image_json(
    store: &ImageStore,
    img: &Image,
) -> std::result::Result<Value, berth_image::store::StoreError> {
    let (_, config) = store.manifest_and_config(img)?;
    let familiar = |t: &str| {
        t.parse::<berth_image::Reference>()
            .map(|r| r.familiar())
            .unwrap_or_else(|_| t.to_string())
    };
    let repo_digests: Vec<String> = img.digests.iter().map(|d| familiar(d)).collect();
    Ok(json!({
        "Id": img.id.to_string(),
        "RepoTags": img.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": config["history"].as_array().and_then(|h| h.last()).and_then(|h| h["comment"].as_str()).unwrap_or(""),
        "Author": config["author"].as_str().unwrap_or(""),
        "Created": config["created"],
        "Config": config["config"],
        "Architecture": config["architecture"],
        "Os": config["os"],
        "Size": img.size,
        "RootFS": {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }))
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

/// Docker's container JSON (the parts berth knows).
fn container_json(engine: &Engine, r: &Record) -> Value {
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
    let names = crate::networking::connected_networks(c);
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
