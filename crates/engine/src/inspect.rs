//! `inspect`: Docker's JSON for containers, images, volumes and networks.
//! Made here, not in a front end, so that the command line and any other
//! caller (compose, a Docker-API socket) show the same object; scripts
//! read it with `--format '{{.State.Pid}}'` and jq.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// A Go map as encoding/json writes it: keys sorted (objects otherwise
/// keep the order they are built in, which is Go's struct order here).
fn go_map(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
    let sorted: BTreeMap<String, Value> = entries.into_iter().collect();
    Value::Object(sorted.into_iter().collect())
}

/// Docker's `container.Config` from an image config's `config` (or what
/// a container has): every field docker always writes, in its order, with
/// Go's zero value where the source has none; the `omitempty` ones only
/// when set. Fields docker does not know are kept, after.
fn docker_config(src: &Value) -> Value {
    let get = |k: &str| src.get(k).cloned().unwrap_or(Value::Null);
    let or = |k: &str, zero: Value| match src.get(k) {
        Some(v) if !v.is_null() => v.clone(),
        _ => zero,
    };
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    put("Hostname", or("Hostname", json!("")));
    put("Domainname", or("Domainname", json!("")));
    put("User", or("User", json!("")));
    put("AttachStdin", or("AttachStdin", json!(false)));
    put("AttachStdout", or("AttachStdout", json!(false)));
    put("AttachStderr", or("AttachStderr", json!(false)));
    if let Some(p) = src.get("ExposedPorts").filter(|v| !v.is_null()) {
        put("ExposedPorts", p.clone());
    }
    put("Tty", or("Tty", json!(false)));
    put("OpenStdin", or("OpenStdin", json!(false)));
    put("StdinOnce", or("StdinOnce", json!(false)));
    put("Env", get("Env"));
    put("Cmd", get("Cmd"));
    for k in ["Healthcheck", "ArgsEscaped"] {
        if let Some(v) = src.get(k).filter(|v| !v.is_null() && *v != &json!(false)) {
            put(k, v.clone());
        }
    }
    put("Image", or("Image", json!("")));
    put("Volumes", get("Volumes"));
    put("WorkingDir", or("WorkingDir", json!("")));
    put("Entrypoint", get("Entrypoint"));
    for k in ["NetworkDisabled", "MacAddress"] {
        if let Some(v) = src
            .get(k)
            .filter(|v| !v.is_null() && *v != &json!(false) && *v != &json!(""))
        {
            put(k, v.clone());
        }
    }
    put("OnBuild", get("OnBuild"));
    put("Labels", get("Labels"));
    for k in ["StopSignal", "StopTimeout", "Shell"] {
        if let Some(v) = src.get(k).filter(|v| !v.is_null() && *v != &json!("")) {
            put(k, v.clone());
        }
    }
    const KNOWN: &[&str] = &[
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "ExposedPorts",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "Env",
        "Cmd",
        "Healthcheck",
        "ArgsEscaped",
        "Image",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "NetworkDisabled",
        "MacAddress",
        "OnBuild",
        "Labels",
        "StopSignal",
        "StopTimeout",
        "Shell",
    ];
    if let Some(m) = src.as_object() {
        for (k, v) in m {
            if !KNOWN.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Docker's `ImageInspect` of an image in `store` (for callers that hold
/// only the image store, as `image inspect` does), in its field order.
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
    // docker's sizes: the layers' file bytes, not their tars'.
    let size = store.content_size(img)?;
    let container_config = match config.get("container_config") {
        Some(c) if c.is_object() => docker_config(c),
        _ => docker_config(&json!({})),
    };
    Ok(json!({
        "Id": img.id.to_string(),
        "RepoTags": img.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": repo_digests,
        "Parent": config["parent"].as_str().unwrap_or(""),
        "Comment": config["history"].as_array().and_then(|h| h.last()).and_then(|h| h["comment"].as_str()).unwrap_or(""),
        "Created": config["created"],
        "Container": config["container"].as_str().unwrap_or(""),
        "ContainerConfig": container_config,
        "DockerVersion": config["docker_version"].as_str().unwrap_or(""),
        "Author": config["author"].as_str().unwrap_or(""),
        "Config": docker_config(&config["config"]),
        "Architecture": config["architecture"],
        "Os": config["os"],
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": image_graph_driver(store, img),
        "RootFS": {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }))
}

/// Where an image's layers are, in the shape of docker's overlay2 data:
/// the top layer's directory as UpperDir, the ones below as LowerDir (top
/// first, `:`-joined); MergedDir and WorkDir, as docker's, name places
/// only a container's overlay uses.
fn image_graph_driver(store: &ImageStore, img: &Image) -> Value {
    let mut data = Vec::new();
    if let Some((top, below)) = img.layers.split_last() {
        if !below.is_empty() {
            let lower: Vec<String> = below
                .iter()
                .rev()
                .map(|c| store.layer_dir(c).display().to_string())
                .collect();
            data.push(("LowerDir".to_string(), json!(lower.join(":"))));
        }
        let upper = store.layer_dir(top);
        let dir = upper.parent().map(Path::to_path_buf).unwrap_or_default();
        data.push(("MergedDir".to_string(), json!(dir.join("merged"))));
        data.push(("UpperDir".to_string(), json!(upper)));
        data.push(("WorkDir".to_string(), json!(dir.join("work"))));
    }
    json!({"Data": go_map(data), "Name": "overlay2"})
}

fn network_json(engine: &Engine, n: &berth_network::Network) -> Value {
    let mut containers = Vec::new();
    for m in engine.networks.members(&n.id).unwrap_or_default() {
        let name = engine
            .db
            .get(&m.container_id)
            .ok()
            .flatten()
            .map(|r| r.name)
            .unwrap_or_default();
        containers.push((
            m.container_id.clone(),
            json!({
                "Name": name,
                "EndpointID": "",
                "MacAddress": m.mac,
                "IPv4Address": format!("{}/{}", m.ip, m.prefix),
                "IPv6Address": "",
            }),
        ));
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
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": go_map(containers),
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": n.labels,
    })
}

/// Docker's container JSON (the parts berth knows), in docker's field
/// order; maps (labels, ports, networks) sorted as Go writes them.
fn container_json(engine: &Engine, r: &Record) -> Value {
    let c = &r.config;
    let dir = engine.container_dir(&r.id);
    let mut state = json!({
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
    });
    // A pointer docker leaves out when the container has no healthcheck.
    if c.health.is_some() || r.health.is_some() {
        state["Health"] = json!(r.health);
    }
    let mut port_bindings = Vec::new();
    for p in &c.publish {
        for i in 0..=p.host_port_end.saturating_sub(p.host_port) {
            let host_port = if p.host_port == 0 {
                String::new()
            } else {
                (p.host_port + i).to_string()
            };
            port_bindings.push((
                format!("{}/{}", p.container_port + i, p.proto.as_str()),
                json!([{
                    "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    "HostPort": host_port,
                }]),
            ));
        }
    }
    // The options as given, as docker shows them (its defaults, and
    // berth's bounded ones, are not listed).
    let log_config: Vec<(String, Value)> = c
        .log
        .opts
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let binds: Vec<String> = c
        .mounts
        .iter()
        .filter(|m| m.kind == "bind")
        .map(|m| {
            format!(
                "{}:{}{}",
                m.source,
                m.destination,
                if m.read_only { ":ro" } else { "" }
            )
        })
        .collect();
    // Empty lists stay `[]` where docker writes a nil slice's `null`: a
    // template prints both as `[]`, and berth's template values cannot
    // tell a nil slice from a null.
    let host_config = json!({
        "Binds": json!(binds),
        "ContainerIDFile": "",
        "LogConfig": {"Type": c.log.driver.name(), "Config": go_map(log_config)},
        "NetworkMode": c.network,
        "PortBindings": go_map(port_bindings),
        "RestartPolicy": {"Name": c.restart.name, "MaximumRetryCount": c.restart.max_retries},
        "AutoRemove": c.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": if c.volumes_from.is_empty() {
            Value::Null
        } else {
            json!(c.volumes_from)
        },
        "CapAdd": json!(c.cap_add),
        "CapDrop": json!(c.cap_drop),
        // berth gives every container a cgroup namespace of its own.
        "CgroupnsMode": if c.cgroupns == "host" { "host" } else { "private" },
        "Dns": c.dns,
        "DnsOptions": c.dns_options,
        "DnsSearch": c.dns_search,
        "ExtraHosts": json!(c.extra_hosts),
        "GroupAdd": json!(c.group_add),
        "IpcMode": c.ipc_mode,
        "Cgroup": "",
        "Links": Value::Null,
        "OomScoreAdj": c.oom_score_adj.unwrap_or(0),
        "PidMode": c.pid_mode,
        "Privileged": c.privileged,
        "PublishAllPorts": c.publish_all,
        "ReadonlyRootfs": c.read_only,
        "SecurityOpt": Value::Null,
        "UTSMode": c.uts_mode,
        "UsernsMode": c.userns,
        "ShmSize": if c.shm_size == 0 { 64 << 20 } else { c.shm_size },
        // The OCI runtime: berth's own, in process.
        "Runtime": "berth-runtime",
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "CpuShares": c.resources.cpu_shares.unwrap_or(0),
        "Memory": c.resources.memory.unwrap_or(0),
        "NanoCpus": c.resources.nano_cpus.unwrap_or(0),
        "CgroupParent": c.cgroup_parent,
        "BlkioWeight": c.resources.blkio_weight.unwrap_or(0),
        "BlkioWeightDevice": c.resources.blkio_weight_device.iter()
            .map(|d| json!({"Path": d.path, "Weight": d.rate})).collect::<Vec<_>>(),
        "BlkioDeviceReadBps": throttles(&c.resources.device_read_bps),
        "BlkioDeviceWriteBps": throttles(&c.resources.device_write_bps),
        "BlkioDeviceReadIOps": throttles(&c.resources.device_read_iops),
        "BlkioDeviceWriteIOps": throttles(&c.resources.device_write_iops),
        "CpuPeriod": c.resources.cpu_period.unwrap_or(0),
        "CpuQuota": c.resources.cpu_quota.unwrap_or(0),
        "CpuRealtimePeriod": c.resources.cpu_rt_period.unwrap_or(0),
        "CpuRealtimeRuntime": c.resources.cpu_rt_runtime.unwrap_or(0),
        "CpusetCpus": c.resources.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": c.resources.cpuset_mems.clone().unwrap_or_default(),
        "Devices": c.devices.iter().map(|d| json!({
            "PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": d.permissions,
        })).collect::<Vec<_>>(),
        "DeviceCgroupRules": if c.device_cgroup_rules.is_empty() {
            Value::Null
        } else {
            json!(c.device_cgroup_rules)
        },
        "DeviceRequests": Value::Null,
        "KernelMemory": c.resources.kernel_memory.unwrap_or(0),
        "KernelMemoryTCP": 0,
        "MemoryReservation": c.resources.memory_reservation.unwrap_or(0),
        "MemorySwap": c.resources.memory_swap.unwrap_or(0),
        "MemorySwappiness": c.resources.memory_swappiness,
        "OomKillDisable": c.resources.oom_kill_disable,
        "PidsLimit": c.resources.pids_limit,
        "Ulimits": if c.ulimits.is_empty() { Value::Null } else {
            json!(c.ulimits.iter().map(|u| json!({"Name": u.name, "Hard": u.hard, "Soft": u.soft})).collect::<Vec<_>>())
        },
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": if c.privileged { Value::Null } else { json!(berth_runtime::template::MASKED_PATHS) },
        "ReadonlyPaths": if c.privileged { Value::Null } else { json!(berth_runtime::template::READONLY_PATHS) },
    });
    let mut config = docker_config(&json!({
        "Hostname": c.hostname,
        "Domainname": c.domainname,
        "User": c.user,
        "AttachStdin": c.attach_stdin,
        "AttachStdout": c.attach_stdout,
        "AttachStderr": c.attach_stderr,
        // The image's EXPOSE and --expose, as "80/tcp": {}.
        "ExposedPorts": if c.exposed_ports.is_empty() {
            Value::Null
        } else {
            Value::Object(
                c.exposed_ports
                    .iter()
                    .map(|p| {
                        let key = if p.contains('/') { p.clone() } else { format!("{p}/tcp") };
                        (key, json!({}))
                    })
                    .collect(),
            )
        },
        "Tty": c.tty,
        "OpenStdin": c.open_stdin,
        "StdinOnce": c.stdin_once,
        "Env": c.env,
        "Cmd": c.cmd,
        "Image": c.image,
        "WorkingDir": c.working_dir,
        "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
        "Labels": c.labels,
        // omitempty in docker: absent unless the image or a flag set them.
        "StopSignal": c.stop_signal,
        "StopTimeout": c.stop_timeout,
        "Healthcheck": c.health.as_ref().map(|h| json!({
            "Test": h.test, "Interval": h.interval_ns, "Timeout": h.timeout_ns,
            "StartPeriod": h.start_period_ns, "Retries": h.retries,
        })),
    }));
    // podman's field, which docker does not have: shown only when set.
    if !c.health_on_failure.is_none() {
        config["HealthcheckOnFailureAction"] = json!(c.health_on_failure.as_str());
    }
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": c.args.first().cloned().unwrap_or_default(),
        "Args": c.args.iter().skip(1).collect::<Vec<_>>(),
        "State": state,
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        // docker's none driver has no file.
        "LogPath": match c.log.driver {
            crate::config::LogDriver::None => PathBuf::new(),
            _ => engine.log_path(&r.id),
        },
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        // The layout Docker calls overlay2 (overlayfs with many lower
        // layers); scripts compare against that name.
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": host_config,
        "GraphDriver": {
            "Data": {
                // The image's layers under the container's, top first.
                "LowerDir": engine.images.resolve(&r.image_id).map(|img| {
                    img.layers.iter().rev().map(|c| engine.images.layer_dir(c).display().to_string()).collect::<Vec<_>>().join(":")
                }).unwrap_or_default(),
                // A running container's rootfs is mounted in its own mount
                // namespace only: its view from the host is its init's root.
                "MergedDir": if r.status == Status::Running && r.pid > 0 {
                    PathBuf::from(format!("/proc/{}/root", r.pid))
                } else {
                    dir.join("fs/merged")
                },
                "UpperDir": dir.join("fs/upper"),
                "WorkDir": dir.join("fs/work"),
            },
            "Name": "overlay2",
        },
        "Mounts": c.mounts.iter().map(|m| json!({
            "Type": m.kind, "Source": m.source, "Destination": m.destination,
            "Mode": if m.read_only { "ro" } else { "" }, "RW": !m.read_only, "Propagation": "rprivate",
        })).collect::<Vec<_>>(),
        "Config": config,
        "NetworkSettings": network_settings(engine, r),
    })
}

/// Docker's `ThrottleDevice` list: null when there is none.
fn throttles(list: &[crate::config::DeviceRate]) -> Value {
    if list.is_empty() {
        return Value::Null;
    }
    list.iter()
        .map(|d| json!({"Path": d.path, "Rate": d.rate}))
        .collect()
}

/// Inspect's NetworkSettings: docker's shape, the first network's address
/// at the top level (as docker shows the default bridge's).
fn network_settings(engine: &Engine, r: &Record) -> Value {
    let (eps, ports) = engine.network_state(&r.id);
    let mut port_map = BTreeMap::new();
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
    let mut networks = Vec::new();
    let names = crate::networking::connected_networks(c);
    for (i, name) in names.into_iter().enumerate() {
        let ep = eps.iter().find(|e| e.network_name == name);
        // Docker's EndpointSettings: the first network's from run, the
        // others' from connect (whose IPAMConfig is `{}` without --ip); a
        // user network's aliases end with the short id once it has an
        // endpoint (connect makes one at once).
        let first = i == 0 && !c.left_network;
        let (aliases, ip, connected) = match c.endpoints.get(&name) {
            Some(s) if !first => (s.aliases.clone(), s.ipv4_address, true),
            _ if first => (c.network_aliases.clone(), c.ip, false),
            _ => (Vec::new(), None, true),
        };
        let ipam = match ip {
            Some(ip) => json!({"IPv4Address": ip.to_string()}),
            None if connected => json!({}),
            None => Value::Null,
        };
        let shown_aliases = if name != "bridge" && (ep.is_some() || connected) {
            let mut a = aliases;
            a.push(r.id[..r.id.len().min(12)].to_string());
            json!(a)
        } else {
            Value::Null
        };
        networks.push((
            name.clone(),
            json!({
                "IPAMConfig": ipam,
                "Links": Value::Null,
                "Aliases": shown_aliases,
                "NetworkID": ep.map(|e| e.network_id.clone()).unwrap_or_default(),
                "EndpointID": ep.map(|e| format!("{}{}", e.container_id.get(..32).unwrap_or(""), e.veth)).unwrap_or_default(),
                "Gateway": ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
                "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
                "IPPrefixLen": ep.map_or(0, |e| e.prefix),
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                "DriverOpts": Value::Null,
                "DNSNames": ep.map(|e| json!(e.names)).unwrap_or(Value::Null),
            }),
        ));
    }
    let first = eps.first();
    json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": go_map(port_map),
        "SandboxKey": if r.pid > 0 { format!("/proc/{}/ns/net", r.pid) } else { String::new() },
        "SecondaryIPAddresses": Value::Null,
        "SecondaryIPv6Addresses": Value::Null,
        "EndpointID": first.map(|e| format!("{}{}", e.container_id.get(..32).unwrap_or(""), e.veth)).unwrap_or_default(),
        "Gateway": first.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": first.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": first.map_or(0, |e| e.prefix),
        "IPv6Gateway": "",
        "MacAddress": first.map(|e| e.mac.clone()).unwrap_or_default(),
        "Networks": go_map(networks),
    })
}
