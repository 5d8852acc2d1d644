//! `inspect`: Docker's documents for containers, images, volumes and
//! networks, typed (types.rs). Made here, not in a front end, so that the
//! command line and any other caller (compose, a Docker-API socket) show
//! the same object; scripts read it with `--format '{{.State.Pid}}'` and jq.

pub mod types;

use std::collections::BTreeMap;
use std::path::Path;

use berth_image::store::{Image, ImageStore};

use crate::{Engine, Record, Result, Status};
use types::*;

impl Engine {
    /// Docker's `ContainerJSON` of the container `key` (a name, an id or
    /// an id's prefix), its state made truthful first.
    pub fn container_inspect(&self, key: &str) -> Result<ContainerJson> {
        let r = self.find(key)?;
        Ok(container_json(self, &r))
    }

    /// Docker's `ContainerJSON` of a record the caller already holds.
    pub fn container_json(&self, r: &Record) -> ContainerJson {
        container_json(self, r)
    }

    /// Docker's `ImageInspect` of the image `key` (a reference or an id).
    pub fn image_inspect(&self, key: &str) -> Result<ImageInspect> {
        let img = self.images.resolve(key)?;
        Ok(image_json(&self.images, &img)?)
    }

    /// Docker's `Volume` of the volume `name`.
    pub fn volume_inspect(&self, name: &str) -> Result<crate::volumes::Volume> {
        self.volumes.get(name)
    }

    /// Docker's `NetworkResource` of the network `key` (a name, an id or
    /// an id's prefix), with the containers attached to it.
    pub fn network_inspect(&self, key: &str) -> Result<NetworkResource> {
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
) -> std::result::Result<ImageInspect, berth_image::store::StoreError> {
    let (_, config) = store.manifest_and_config(img)?;
    let familiar = |t: &str| {
        t.parse::<berth_image::Reference>()
            .map(|r| r.familiar())
            .unwrap_or_else(|_| t.to_string())
    };
    let text = |k: &str| config[k].as_str().unwrap_or("").to_string();
    let some_text = |k: &str| config[k].as_str().map(str::to_string);
    // docker's sizes: the layers' file bytes, not their tars'.
    let size = store.content_size(img)?;
    Ok(ImageInspect {
        id: img.id.to_string(),
        repo_tags: img.tags.iter().map(|t| familiar(t)).collect(),
        repo_digests: img.digests.iter().map(|d| familiar(d)).collect(),
        parent: text("parent"),
        comment: config["history"]
            .as_array()
            .and_then(|h| h.last())
            .and_then(|h| h["comment"].as_str())
            .unwrap_or("")
            .to_string(),
        created: some_text("created"),
        container: text("container"),
        container_config: Config::from_image(&config["container_config"]),
        docker_version: text("docker_version"),
        author: text("author"),
        config: Config::from_image(&config["config"]),
        architecture: some_text("architecture"),
        variant: some_text("variant").filter(|v| !v.is_empty()),
        os: some_text("os"),
        size,
        virtual_size: size,
        graph_driver: image_graph_driver(store, img),
        root_fs: RootFs {
            r#type: "layers".into(),
            layers: config["rootfs"]["diff_ids"].as_array().map(|ids| {
                ids.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            }),
        },
        metadata: ImageMetadata {
            last_tag_time: "0001-01-01T00:00:00Z".into(),
        },
    })
}

/// Where an image's layers are, in the shape of docker's overlay2 data:
/// the top layer's directory as UpperDir, the ones below as LowerDir (top
/// first, `:`-joined); MergedDir and WorkDir, as docker's, name places
/// only a container's overlay uses.
fn image_graph_driver(store: &ImageStore, img: &Image) -> GraphDriver {
    let mut data = GraphDriverData::default();
    if let Some((top, below)) = img.layers.split_last() {
        if !below.is_empty() {
            let lower: Vec<String> = below
                .iter()
                .rev()
                .map(|c| store.layer_dir(c).display().to_string())
                .collect();
            data.lower_dir = Some(lower.join(":"));
        }
        let upper = store.layer_dir(top);
        let dir = upper.parent().map(Path::to_path_buf).unwrap_or_default();
        data.merged_dir = Some(dir.join("merged").display().to_string());
        data.upper_dir = Some(upper.display().to_string());
        data.work_dir = Some(dir.join("work").display().to_string());
    }
    GraphDriver {
        data,
        name: "overlay2".into(),
    }
}

fn network_json(engine: &Engine, n: &berth_network::Network) -> NetworkResource {
    let mut containers = BTreeMap::new();
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
            NetworkMember {
                name,
                endpoint_id: String::new(),
                mac_address: m.mac.clone(),
                ipv4_address: format!("{}/{}", m.ip, m.prefix),
                ipv6_address: String::new(),
            },
        );
    }
    NetworkResource {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.created.clone(),
        scope: "local".into(),
        driver: "bridge".into(),
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            options: Some(n.ipam.options.clone()),
            config: vec![IpamPool {
                subnet: n.subnet.to_string(),
                ip_range: n.ipam.ip_range.map(|r| r.to_string()),
                gateway: (!n.ipam.gateway_implied).then(|| n.gateway.to_string()),
                aux_addresses: n
                    .ipam
                    .aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            }],
        },
        internal: n.internal,
        attachable: n.ipam.attachable,
        ingress: false,
        config_from: ConfigReference::default(),
        config_only: false,
        containers,
        options: BTreeMap::from([(
            "com.docker.network.bridge.name".to_string(),
            n.bridge.clone(),
        )]),
        labels: n.labels.clone(),
    }
}

/// Docker's container JSON (the parts berth knows).
fn container_json(engine: &Engine, r: &Record) -> ContainerJson {
    let c = &r.config;
    let dir = engine.container_dir(&r.id);
    let path = |p: &Path| p.display().to_string();
    let time = |t: &str| {
        if t.is_empty() {
            "0001-01-01T00:00:00Z".to_string()
        } else {
            t.to_string()
        }
    };
    let state = ContainerState {
        status: match r.status {
            Status::Starting => "created",
            s => s.as_str(),
        }
        .to_string(),
        running: matches!(
            r.status,
            Status::Running | Status::Paused | Status::Restarting
        ),
        paused: r.status == Status::Paused,
        restarting: r.status == Status::Restarting,
        oom_killed: r.oom_killed,
        dead: false,
        pid: r.pid,
        exit_code: r.exit_code,
        error: r.error.clone(),
        started_at: time(&r.started_at),
        finished_at: time(&r.finished_at),
        // A pointer docker leaves out when the container has no healthcheck.
        health: (c.health.is_some() || r.health.is_some()).then(|| r.health.clone()),
    };
    let mut port_bindings = BTreeMap::new();
    for p in &c.publish {
        for i in 0..=p.host_port_end.saturating_sub(p.host_port) {
            let host_port = if p.host_port == 0 {
                String::new()
            } else {
                (p.host_port + i).to_string()
            };
            port_bindings.insert(
                format!("{}/{}", p.container_port + i, p.proto.as_str()),
                vec![PortBinding {
                    host_ip: p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    host_port,
                }],
            );
        }
    }
    let mounts = mounts(engine, &c.mounts);
    let res = &c.resources;
    let or_null = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let host_config = HostConfig {
        binds: mounts.binds,
        container_id_file: String::new(),
        // The options as given, as docker shows them (its defaults, and
        // berth's bounded ones, are not listed).
        log_config: LogConfig {
            r#type: c.log.driver.name().to_string(),
            config: c.log.opts.clone().into_iter().collect(),
        },
        network_mode: c.network.clone(),
        port_bindings,
        restart_policy: RestartPolicy {
            name: c.restart.name.clone(),
            maximum_retry_count: c.restart.max_retries,
        },
        auto_remove: c.auto_remove,
        volume_driver: String::new(),
        volumes_from: or_null(&c.volumes_from),
        cap_add: c.cap_add.clone(),
        cap_drop: c.cap_drop.clone(),
        // berth gives every container a cgroup namespace of its own.
        cgroupns_mode: if c.cgroupns == "host" {
            "host"
        } else {
            "private"
        }
        .into(),
        dns: c.dns.clone(),
        dns_options: c.dns_options.clone(),
        dns_search: c.dns_search.clone(),
        extra_hosts: c.extra_hosts.clone(),
        group_add: c.group_add.clone(),
        // Docker 20.10's daemon default (default-ipc-mode) is private.
        ipc_mode: if c.ipc_mode.is_empty() {
            "private".into()
        } else {
            c.ipc_mode.clone()
        },
        cgroup: String::new(),
        links: None,
        oom_score_adj: c.oom_score_adj.unwrap_or(0),
        pid_mode: c.pid_mode.clone(),
        privileged: c.privileged,
        publish_all_ports: c.publish_all,
        readonly_rootfs: c.read_only,
        security_opt: or_null(&c.security_opt),
        sysctls: (!c.sysctls.is_empty()).then(|| c.sysctls.clone()),
        tmpfs: mounts.tmpfs,
        uts_mode: c.uts_mode.clone(),
        userns_mode: c.userns.clone(),
        shm_size: if c.shm_size == 0 {
            64 << 20
        } else {
            c.shm_size
        },
        // The OCI runtime: berth's own, in process.
        runtime: "berth-runtime".into(),
        console_size: [0, 0],
        isolation: String::new(),
        cpu_shares: res.cpu_shares.unwrap_or(0),
        memory: res.memory.unwrap_or(0),
        nano_cpus: res.nano_cpus.unwrap_or(0),
        cgroup_parent: c.cgroup_parent.clone(),
        blkio_weight: res.blkio_weight.unwrap_or(0),
        blkio_weight_device: res
            .blkio_weight_device
            .iter()
            .map(|d| WeightDevice {
                path: d.path.clone(),
                weight: d.rate,
            })
            .collect(),
        blkio_device_read_bps: throttles(&res.device_read_bps),
        blkio_device_write_bps: throttles(&res.device_write_bps),
        blkio_device_read_iops: throttles(&res.device_read_iops),
        blkio_device_write_iops: throttles(&res.device_write_iops),
        cpu_period: res.cpu_period.unwrap_or(0),
        cpu_quota: res.cpu_quota.unwrap_or(0),
        cpu_realtime_period: res.cpu_rt_period.unwrap_or(0),
        cpu_realtime_runtime: res.cpu_rt_runtime.unwrap_or(0),
        cpuset_cpus: res.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: res.cpuset_mems.clone().unwrap_or_default(),
        devices: c
            .devices
            .iter()
            .map(|d| DeviceMapping {
                path_on_host: d.host.clone(),
                path_in_container: d.container.clone(),
                cgroup_permissions: d.permissions.clone(),
            })
            .collect(),
        device_cgroup_rules: or_null(&c.device_cgroup_rules),
        device_requests: None,
        kernel_memory: res.kernel_memory.unwrap_or(0),
        kernel_memory_tcp: 0,
        memory_reservation: res.memory_reservation.unwrap_or(0),
        memory_swap: res.memory_swap.unwrap_or(0),
        memory_swappiness: res.memory_swappiness,
        oom_kill_disable: res.oom_kill_disable,
        pids_limit: res.pids_limit,
        ulimits: (!c.ulimits.is_empty()).then(|| {
            c.ulimits
                .iter()
                .map(|u| Ulimit {
                    name: u.name.clone(),
                    hard: u.hard,
                    soft: u.soft,
                })
                .collect()
        }),
        cpu_count: 0,
        cpu_percent: 0,
        io_maximum_iops: 0,
        io_maximum_bandwidth: 0,
        mounts: mounts.long,
        masked_paths: (!c.privileged).then(|| strings(berth_runtime::template::MASKED_PATHS)),
        readonly_paths: (!c.privileged).then(|| strings(berth_runtime::template::READONLY_PATHS)),
        init: c.init.then_some(true),
    };
    let config = Config {
        hostname: c.hostname.clone(),
        domainname: c.domainname.clone(),
        user: c.user.clone(),
        attach_stdin: c.attach_stdin,
        attach_stdout: c.attach_stdout,
        attach_stderr: c.attach_stderr,
        // The image's EXPOSE and --expose, as "80/tcp": {}.
        exposed_ports: (!c.exposed_ports.is_empty()).then(|| {
            c.exposed_ports
                .iter()
                .map(|p| (port_key(p), Empty {}))
                .collect()
        }),
        tty: c.tty,
        open_stdin: c.open_stdin,
        stdin_once: c.stdin_once,
        env: Some(c.env.clone()),
        cmd: Some(c.cmd.clone()),
        healthcheck: c.health.as_ref().map(health_config),
        args_escaped: false,
        image: c.image.clone(),
        volumes: None,
        working_dir: c.working_dir.clone(),
        entrypoint: or_null(&c.entrypoint),
        network_disabled: false,
        mac_address: String::new(),
        on_build: None,
        labels: Some(c.labels.clone()),
        stop_signal: c.stop_signal.clone(),
        stop_timeout: c.stop_timeout.map(i64::from),
        shell: None,
        // podman's field, which docker does not have: shown only when set.
        healthcheck_on_failure_action: (!c.health_on_failure.is_none())
            .then(|| c.health_on_failure.as_str().to_string()),
        readiness_check: c.readiness.as_ref().map(health_config),
        other: serde_json::Map::new(),
    };
    let lower_dir = engine
        .images
        .resolve(&r.image_id)
        .map(|img| {
            img.layers
                .iter()
                .rev()
                .map(|c| engine.images.layer_dir(c).display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    ContainerJson {
        id: r.id.clone(),
        created: r.created.clone(),
        path: c.args.first().cloned().unwrap_or_default(),
        args: c.args.iter().skip(1).cloned().collect(),
        state,
        image: r.image_id.clone(),
        resolv_conf_path: path(&dir.join("resolv.conf")),
        hostname_path: path(&dir.join("hostname")),
        hosts_path: path(&dir.join("hosts")),
        // docker's none driver has no file.
        log_path: match c.log.driver {
            crate::config::LogDriver::None => String::new(),
            _ => path(&engine.log_path(&r.id)),
        },
        name: format!("/{}", r.name),
        restart_count: r.restart_count,
        // The layout Docker calls overlay2 (overlayfs with many lower
        // layers); scripts compare against that name.
        driver: "overlay2".into(),
        platform: "linux".into(),
        mount_label: String::new(),
        process_label: String::new(),
        app_armor_profile: String::new(),
        exec_ids: None,
        host_config,
        graph_driver: GraphDriver {
            data: GraphDriverData {
                // The image's layers under the container's, top first.
                lower_dir: Some(lower_dir),
                // A running container's rootfs is mounted in its own mount
                // namespace only: its view from the host is its init's root.
                merged_dir: Some(if r.status == Status::Running && r.pid > 0 {
                    format!("/proc/{}/root", r.pid)
                } else {
                    path(&dir.join("fs/merged"))
                }),
                upper_dir: Some(path(&dir.join("fs/upper"))),
                work_dir: Some(path(&dir.join("fs/work"))),
            },
            name: "overlay2".into(),
        },
        size_rw: None,
        size_root_fs: None,
        mounts: mounts.points,
        config,
        network_settings: network_settings(engine, r),
    }
}

/// A container's mounts in the places docker shows them.
struct Mounts {
    /// `Mounts`: every mount but `--tmpfs`'s.
    points: Vec<MountPoint>,
    /// `HostConfig.Binds`: `-v`'s binds and named volumes, as given.
    binds: Vec<String>,
    /// `HostConfig.Tmpfs`: `--tmpfs`'s, destination → options.
    tmpfs: Option<BTreeMap<String, String>>,
    /// `HostConfig.Mounts`: `--mount`'s, as given.
    long: Vec<HostMount>,
}

/// A healthcheck (or readiness check) as docker's `Config.Healthcheck`.
fn health_config(h: &crate::health::HealthConfig) -> HealthConfig {
    HealthConfig {
        test: h.test.clone(),
        interval: h.interval_ns,
        timeout: h.timeout_ns,
        start_period: h.start_period_ns,
        start_interval: 0,
        retries: h.retries.into(),
    }
}

fn mounts(engine: &Engine, list: &[crate::config::Mount]) -> Mounts {
    use crate::config::MountSyntax;
    let mut out = Mounts {
        points: Vec::new(),
        binds: Vec::new(),
        tmpfs: None,
        long: Vec::new(),
    };
    for m in list {
        let syntax = m.syntax();
        if syntax == MountSyntax::Tmpfs {
            out.tmpfs
                .get_or_insert_with(BTreeMap::new)
                .insert(m.destination.clone(), m.options.join(","));
            continue;
        }
        let volume = (m.kind == "volume")
            .then(|| engine.volumes.get(&m.source).ok())
            .flatten();
        let anonymous = volume.as_ref().is_some_and(|v| v.anonymous);
        // -v's options as given; a stored mount from before they were
        // kept says only whether it was read-only.
        let given = if m.mode.is_empty() && m.read_only {
            "ro"
        } else {
            m.mode.as_str()
        };
        let given_propagation = m
            .options
            .iter()
            .find(|o| o.contains("shared") || o.contains("slave") || o.contains("private"));
        let (mode, propagation) = match (m.kind.as_str(), syntax) {
            ("volume", MountSyntax::Short) if given.is_empty() && !anonymous => ("z", ""),
            ("volume", MountSyntax::Short) => (given, ""),
            ("volume", _) => ("z", ""),
            ("bind", s) => (
                if s == MountSyntax::Short { given } else { "" },
                given_propagation.map_or("rprivate", String::as_str),
            ),
            _ => ("", ""),
        };
        out.points.push(MountPoint {
            r#type: m.kind.clone(),
            name: if m.kind == "volume" {
                m.source.clone()
            } else {
                String::new()
            },
            source: match (&volume, m.kind.as_str()) {
                (Some(v), _) => v.mountpoint.display().to_string(),
                (None, "tmpfs") => String::new(),
                (None, _) => m.source.clone(),
            },
            destination: m.destination.clone(),
            driver: if m.kind == "volume" {
                "local".into()
            } else {
                String::new()
            },
            mode: mode.into(),
            rw: !m.read_only,
            propagation: propagation.into(),
        });
        match syntax {
            MountSyntax::Short if !anonymous && m.kind != "tmpfs" => {
                let mut bind = format!("{}:{}", m.source, m.destination);
                if !given.is_empty() {
                    bind = format!("{bind}:{given}");
                }
                out.binds.push(bind);
            }
            MountSyntax::Long => out.long.push(HostMount {
                r#type: m.kind.clone(),
                // docker keeps --mount as given: an anonymous volume has
                // no source.
                source: if m.kind == "tmpfs" || anonymous {
                    String::new()
                } else {
                    m.source.clone()
                },
                target: m.destination.clone(),
                read_only: m.read_only,
                consistency: m.consistency.clone(),
                bind_options: (given_propagation.is_some() || m.nonrecursive).then(|| {
                    BindOptions {
                        propagation: given_propagation.cloned().unwrap_or_default(),
                        non_recursive: m.nonrecursive,
                    }
                }),
                volume_options: m.volume_options.as_ref().map(|o| VolumeOptions {
                    no_copy: o.no_copy,
                    labels: o.labels.clone(),
                    driver_config: VolumeDriver {
                        name: o.driver.clone(),
                        options: o.driver_options.clone(),
                    },
                }),
                tmpfs_options: tmpfs_options(m),
            }),
            _ => {}
        }
    }
    out
}

/// `--mount type=tmpfs`'s size and mode as docker keeps them.
fn tmpfs_options(m: &crate::config::Mount) -> Option<TmpfsOptions> {
    if m.kind != "tmpfs" {
        return None;
    }
    let mut t = TmpfsOptions::default();
    for o in &m.options {
        if let Some(v) = o.strip_prefix("size=") {
            t.size_bytes = berth_relay::size::ram_in_bytes(v).unwrap_or(0);
        } else if let Some(v) = o.strip_prefix("mode=") {
            t.mode = u32::from_str_radix(v, 8).unwrap_or(0);
        }
    }
    (t.size_bytes != 0 || t.mode != 0).then_some(t)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// An exposed port as docker keys it: "80" is "80/tcp".
fn port_key(p: &str) -> String {
    if p.contains('/') {
        p.to_string()
    } else {
        format!("{p}/tcp")
    }
}

/// Docker's `ThrottleDevice` list: null when there is none.
fn throttles(list: &[crate::config::DeviceRate]) -> Option<Vec<ThrottleDevice>> {
    (!list.is_empty()).then(|| {
        list.iter()
            .map(|d| ThrottleDevice {
                path: d.path.clone(),
                rate: d.rate,
            })
            .collect()
    })
}

/// Inspect's NetworkSettings: docker's shape, the first network's address
/// at the top level (as docker shows the default bridge's).
fn network_settings(engine: &Engine, r: &Record) -> NetworkSettings {
    let (eps, ports) = engine.network_state(&r.id);
    let mut port_map: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    for e in &r.config.exposed_ports {
        port_map.insert(port_key(e), None);
    }
    for m in &ports {
        let key = format!("{}/{}", m.container_port, m.proto.as_str());
        let entry = PortBinding {
            host_ip: m
                .host_ip
                .map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string()),
            host_port: m.host_port.to_string(),
        };
        port_map
            .entry(key)
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(entry);
    }
    let c = &r.config;
    let mut networks = BTreeMap::new();
    let names = crate::networking::connected_networks(c);
    let endpoint_id = |e: &berth_network::Endpoint| {
        format!("{}{}", e.container_id.get(..32).unwrap_or(""), e.veth)
    };
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
        let ipam_config = match ip {
            Some(ip) => Some(EndpointIpamConfig {
                ipv4_address: Some(ip.to_string()),
            }),
            None if connected => Some(EndpointIpamConfig::default()),
            None => None,
        };
        let shown_aliases = (name != "bridge" && (ep.is_some() || connected)).then(|| {
            let mut a = aliases;
            a.push(r.id[..r.id.len().min(12)].to_string());
            a
        });
        let settings = EndpointSettings {
            ipam_config,
            links: None,
            aliases: shown_aliases,
            network_id: ep.map(|e| e.network_id.clone()).unwrap_or_default(),
            endpoint_id: ep.map(endpoint_id).unwrap_or_default(),
            gateway: ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
            ip_address: ep.map(|e| e.ip.to_string()).unwrap_or_default(),
            ip_prefix_len: ep.map_or(0, |e| e.prefix),
            ipv6_gateway: String::new(),
            global_ipv6_address: String::new(),
            global_ipv6_prefix_len: 0,
            mac_address: ep.map(|e| e.mac.clone()).unwrap_or_default(),
            driver_opts: None,
            dns_names: ep.map(|e| e.names.clone()),
        };
        networks.insert(name, settings);
    }
    let first = eps.first();
    NetworkSettings {
        bridge: String::new(),
        sandbox_id: String::new(),
        hairpin_mode: false,
        link_local_ipv6_address: String::new(),
        link_local_ipv6_prefix_len: 0,
        ports: port_map,
        sandbox_key: if r.pid > 0 {
            format!("/proc/{}/ns/net", r.pid)
        } else {
            String::new()
        },
        secondary_ip_addresses: None,
        secondary_ipv6_addresses: None,
        endpoint_id: first.map(endpoint_id).unwrap_or_default(),
        gateway: first.map(|e| e.gateway.to_string()).unwrap_or_default(),
        global_ipv6_address: String::new(),
        global_ipv6_prefix_len: 0,
        ip_address: first.map(|e| e.ip.to_string()).unwrap_or_default(),
        ip_prefix_len: first.map_or(0, |e| e.prefix),
        ipv6_gateway: String::new(),
        mac_address: first.map(|e| e.mac.clone()).unwrap_or_default(),
        networks,
    }
}
