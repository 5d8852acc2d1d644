//! `run` and `create`'s flags, and the container config they make.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_engine::config::{ContainerConfig, Device, LogConfig, Mount, RestartPolicy, Ulimit};
use clap::Args;

/// A container's log when `--log-opt` sets no size: 20 MiB a file, five
/// files (Docker's `local` driver's bounds).
const DEFAULT_LOG_MAX_SIZE: u64 = 20 << 20;
const DEFAULT_LOG_MAX_FILE: u32 = 5;

/// The resource flags `run`, `create` and `update` share.
#[derive(Debug, Args)]
pub struct ResourceArgs {
    /// Memory limit (b, k, m, g)
    #[arg(short, long)]
    memory: Option<String>,
    #[arg(long)]
    memory_swap: Option<String>,
    #[arg(long)]
    memory_reservation: Option<String>,
    #[arg(long)]
    cpus: Option<f64>,
    #[arg(short = 'c', long)]
    cpu_shares: Option<u64>,
    #[arg(long)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    cpuset_mems: Option<String>,
    #[arg(long)]
    pids_limit: Option<i64>,
}

impl ResourceArgs {
    /// The limits as the engine keeps them; bad values are one-line errors.
    pub(crate) fn resources(&self) -> Result<berth_engine::config::Resources> {
        let memory = self
            .memory
            .as_deref()
            .map(|s| parse_bytes("--memory", s))
            .transpose()?;
        if memory.is_some_and(|m| m < 6 << 20) {
            bail!("minimum memory limit allowed is 6MB");
        }
        let nano_cpus = match self.cpus {
            Some(c) if !(c > 0.0 && c.is_finite()) => {
                bail!("invalid --cpus {c}: a positive number of CPUs")
            }
            #[allow(clippy::cast_possible_truncation)]
            Some(c) => Some((c * 1e9) as i64),
            None => None,
        };
        Ok(berth_engine::config::Resources {
            memory,
            memory_swap: match self.memory_swap.as_deref() {
                Some("-1") => Some(-1),
                Some(s) => Some(parse_bytes("--memory-swap", s)?),
                None => None,
            },
            memory_reservation: self
                .memory_reservation
                .as_deref()
                .map(|s| parse_bytes("--memory-reservation", s))
                .transpose()?,
            nano_cpus,
            cpu_shares: self.cpu_shares,
            cpu_quota: self.cpu_quota,
            cpu_period: self.cpu_period,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_limit: self.pids_limit,
        })
    }
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (`-h` is `--hostname`, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Run in the background and print the container id
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Attach to STDIN, STDOUT or STDERR (repeatable; default: stdout and stderr, and stdin with -i)
    #[arg(short, long, value_name = "STREAM", value_parser = parse_stream)]
    pub(crate) attach: Vec<Stream>,
    /// Keep stdin open
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub(crate) tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub(crate) rm: bool,
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Set environment variables (NAME=value, or NAME to take ours)
    #[arg(short, long)]
    env: Vec<String>,
    #[arg(long)]
    env_file: Vec<PathBuf>,
    #[arg(short, long)]
    workdir: Option<String>,
    /// user[:group]
    #[arg(short, long)]
    user: Option<String>,
    /// Additional groups to join (names from the image's /etc/group, or ids)
    #[arg(long)]
    group_add: Vec<String>,
    /// Overwrite the image's entrypoint ("" clears it)
    #[arg(long)]
    entrypoint: Option<String>,
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    #[arg(long)]
    domainname: Option<String>,
    /// host:ip lines for /etc/hosts
    #[arg(long)]
    add_host: Vec<String>,
    /// Set metadata (key=value)
    #[arg(short, long)]
    label: Vec<String>,
    /// Bind mount: /host/path:/container/path[:ro|rw|z|Z]
    #[arg(short, long)]
    volume: Vec<String>,
    /// type=bind|tmpfs,source=,target=,readonly
    #[arg(long)]
    mount: Vec<String>,
    /// tmpfs mount: /path[:options]
    #[arg(long)]
    tmpfs: Vec<String>,
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    resources: ResourceArgs,
    /// name=soft[:hard]
    #[arg(long)]
    ulimit: Vec<String>,
    #[arg(long)]
    cap_add: Vec<String>,
    #[arg(long)]
    cap_drop: Vec<String>,
    #[arg(long)]
    privileged: bool,
    /// seccomp=PROFILE|unconfined, no-new-privileges[:true], apparmor=, label=
    #[arg(long)]
    security_opt: Vec<String>,
    /// /dev/host[:/dev/container[:rwm]]
    #[arg(long)]
    device: Vec<String>,
    /// Run an init inside the container
    #[arg(long)]
    init: bool,
    /// Tune the OOM killer's preference for the container (-1000 to 1000)
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    oom_score_adj: Option<i32>,
    #[arg(long)]
    stop_signal: Option<String>,
    #[arg(long)]
    stop_timeout: Option<u32>,
    /// no, on-failure[:N], always, unless-stopped
    #[arg(long, default_value = "no")]
    restart: String,
    /// bridge (the default), a user network, none, host, or container:<name|id>
    #[arg(long, alias = "net", default_value = "bridge")]
    network: String,
    /// Publish a port: [ip:][hostPort:]containerPort[/tcp|udp], ranges too
    #[arg(short, long)]
    publish: Vec<String>,
    /// Publish every exposed port to a free host port
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Another name on the network (user networks)
    #[arg(long, alias = "net-alias")]
    network_alias: Vec<String>,
    /// IPv4 address on the network (user networks)
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (not supported yet)
    #[arg(long)]
    ip6: Option<String>,
    /// MAC address, 02:42:ac:11:00:02
    #[arg(long)]
    mac_address: Option<String>,
    /// DNS server for /etc/resolv.conf
    #[arg(long)]
    dns: Vec<String>,
    /// DNS search domain
    #[arg(long)]
    dns_search: Vec<String>,
    /// DNS option (ndots:2, ...)
    #[arg(long, alias = "dns-opt")]
    dns_option: Vec<String>,
    #[arg(long)]
    pid: Option<String>,
    #[arg(long)]
    ipc: Option<String>,
    #[arg(long)]
    uts: Option<String>,
    /// User namespace: host, or auto[:size=N] (a range of the host's ids:
    /// the default, see SECURITY.md)
    #[arg(long)]
    userns: Option<String>,
    #[arg(long)]
    shm_size: Option<String>,
    #[arg(long)]
    sysctl: Vec<String>,
    /// max-size= (default 20m; -1: unbounded), max-file= (default 5; 1 when max-size is given)
    #[arg(long)]
    log_opt: Vec<String>,
    /// Write the container id to this file
    #[arg(long)]
    pub(crate) cidfile: Option<PathBuf>,
    /// Proxy received signals to the container (foreground)
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    pub(crate) sig_proxy: bool,
    /// Override the key sequence for detaching
    #[arg(long)]
    pub(crate) detach_keys: Option<String>,
    /// Command to run to check health (run by the shell)
    #[arg(long)]
    health_cmd: Option<String>,
    /// Time between checks (ms|s|m|h), default 30s
    #[arg(long)]
    health_interval: Option<String>,
    /// Maximum time a check may run, default 30s
    #[arg(long)]
    health_timeout: Option<String>,
    /// Consecutive failures to report unhealthy, default 3
    #[arg(long)]
    health_retries: Option<u32>,
    /// Time to start before failures count
    #[arg(long)]
    health_start_period: Option<String>,
    /// Disable any healthcheck the image specifies
    #[arg(long)]
    no_healthcheck: bool,
    /// Image platform (only the host's is stored)
    #[arg(long)]
    platform: Option<String>,
    /// Pull image before running: missing (default), always, never
    #[arg(long)]
    pub(crate) pull: Option<String>,
    #[command(flatten)]
    pub(crate) registry: crate::transfer::RegistryArgs,
    pub(crate) image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `512`, `64k`, `10m`, `1g`, `1.5g`, `100b` (binary units), as docker's
/// memory flags take them.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|r| {
            !r.is_empty() && !r.ends_with(char::is_numeric)
                || r.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| {
            anyhow::anyhow!("invalid size {s:?} for {flag}: a number with an optional b, k, m or g")
        })?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let v = (n * mul as f64) as i64;
    Ok(v)
}

pub(crate) fn key_value(flag: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("invalid argument {s:?} for \"{flag}\": expected key=value"),
    }
}

/// The container's config from the flags (the image fills the rest at create).
pub(crate) fn config_from(a: &RunArgs) -> Result<ContainerConfig> {
    if a.ip6.is_some() {
        bail!("--ip6: IPv6 container networking is not implemented yet");
    }
    if a.network.is_empty() || a.network.starts_with("container:") && a.network.len() == 10 {
        bail!(
            "invalid --network {:?}: use bridge, none, host, a network name or container:<name|id>",
            a.network
        );
    }
    let mut publish = Vec::new();
    for p in &a.publish {
        publish.extend(berth_network::ports::parse(p).map_err(anyhow::Error::msg)?);
    }
    let ip = match &a.ip {
        Some(ip) => Some(
            ip.parse::<std::net::Ipv4Addr>()
                .map_err(|_| anyhow::anyhow!("invalid --ip {ip:?}: not an IPv4 address"))?,
        ),
        None => None,
    };
    let mac_address = match &a.mac_address {
        Some(m) => Some(berth_engine::networking::parse_mac(m).map_err(anyhow::Error::msg)?),
        None => None,
    };
    for d in &a.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            bail!("invalid --dns {d:?}: not an IP address");
        }
    }
    berth_engine::networking::extra_hosts(&a.add_host)?;
    if let Some(p) = &a.pull {
        if !["always", "missing", "never"].contains(&p.as_str()) {
            bail!("invalid --pull {p:?}: use always, missing or never");
        }
    }
    if let Some(p) = &a.platform {
        let host = berth_image::oci::host_platform();
        if *p != format!("{}/{}", host.os, host.architecture) {
            bail!(
                "--platform {p}: only the host's platform ({}/{}) can run here",
                host.os,
                host.architecture
            );
        }
    }
    let mut cfg = ContainerConfig {
        image: a.image.clone(),
        cmd: a.command.clone(),
        tty: a.tty,
        open_stdin: a.interactive,
        auto_remove: a.rm,
        read_only: a.read_only,
        privileged: a.privileged,
        network: match a.network.as_str() {
            "default" => "bridge".into(),
            n => n.to_string(),
        },
        publish,
        publish_all: a.publish_all,
        network_aliases: a.network_alias.clone(),
        ip,
        mac_address,
        dns: a.dns.clone(),
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
        working_dir: a.workdir.clone().unwrap_or_default(),
        user: a.user.clone().unwrap_or_default(),
        group_add: a.group_add.clone(),
        hostname: a.hostname.clone().unwrap_or_default(),
        domainname: a.domainname.clone().unwrap_or_default(),
        extra_hosts: a.add_host.clone(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        stop_signal: a.stop_signal.clone().unwrap_or_default(),
        stop_timeout: a.stop_timeout,
        pid_mode: a.pid.clone().unwrap_or_default(),
        ipc_mode: a.ipc.clone().unwrap_or_default(),
        uts_mode: a.uts.clone().unwrap_or_default(),
        userns: a.userns.clone().unwrap_or_default(),
        // docker's daemon judges the policy when it makes the container.
        restart: RestartPolicy::parse(&a.restart)
            .map_err(|e| crate::FromDaemon::wrap(anyhow::Error::msg(e), true))?,
        init: a.init,
        oom_score_adj: a.oom_score_adj,
        ..Default::default()
    };
    if cfg.auto_remove && cfg.restart.name != "no" {
        bail!("Conflicting options: --restart and --rm");
    }
    for (flag, mode) in [
        ("--pid", &cfg.pid_mode),
        ("--ipc", &cfg.ipc_mode),
        ("--uts", &cfg.uts_mode),
    ] {
        // Docker's IPC modes add none (a namespace of its own without
        // /dev/shm) and shareable (others may join it: any berth container).
        let ipc_only = flag == "--ipc" && matches!(mode.as_str(), "none" | "shareable");
        if !(mode.is_empty()
            || mode == "host"
            || mode == "private"
            || ipc_only
            || mode.starts_with("container:"))
        {
            bail!("invalid {flag} mode {mode:?}: use host or container:<name|id>");
        }
    }
    if let Some(e) = &a.entrypoint {
        cfg.entrypoint_override = Some(if e.is_empty() {
            vec![]
        } else {
            vec![e.clone()]
        });
    }
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("open env file {}", f.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            cfg.env.extend(env_entry(line));
        }
    }
    cfg.env.extend(a.env.iter().filter_map(|e| env_entry(e)));
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        cfg.labels.insert(k.to_string(), v.to_string());
    }
    for v in &a.volume {
        cfg.mounts.push(parse_volume(v)?);
    }
    for m in &a.mount {
        cfg.mounts.push(parse_mount(m)?);
    }
    for t in &a.tmpfs {
        let (dest, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        cfg.mounts.push(Mount {
            kind: "tmpfs".into(),
            source: "tmpfs".into(),
            destination: dest.to_string(),
            read_only: false,
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect(),
            ..Default::default()
        });
    }
    for m in &cfg.mounts {
        if !m.destination.starts_with('/') {
            bail!(
                "invalid mount destination {:?}: it must be an absolute path",
                m.destination
            );
        }
    }
    cfg.resources = a.resources.resources()?;
    for u in &a.ulimit {
        let (name, v) = u
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid ulimit {u:?}: name=soft[:hard]"))?;
        let (soft, hard) = v.split_once(':').unwrap_or((v, v));
        let n = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| anyhow::anyhow!("invalid ulimit {u:?}: {s:?} is not a number"))
        };
        cfg.ulimits.push(Ulimit {
            name: name.to_string(),
            soft: n(soft)?,
            hard: n(hard)?,
        });
    }
    for s in &a.security_opt {
        let (k, v) = s.split_once(['=', ':']).unwrap_or((s.as_str(), ""));
        match k {
            "seccomp" => cfg.seccomp = v.to_string(),
            "no-new-privileges" => cfg.no_new_privileges = v.is_empty() || v == "true",
            // No LSM is applied by berth yet: accepted as docker accepts them
            // on hosts without AppArmor or SELinux.
            "apparmor" | "label" => {}
            _ => bail!("invalid --security-opt {s:?}"),
        }
    }
    for d in &a.device {
        let mut parts = d.split(':');
        let host = parts.next().unwrap_or_default().to_string();
        let (container, perms) = match (parts.next(), parts.next()) {
            (Some(p), None) if p.chars().all(|c| "rwm".contains(c)) => {
                (host.clone(), p.to_string())
            }
            (Some(c), p) => (c.to_string(), p.unwrap_or("rwm").to_string()),
            (None, _) => (host.clone(), "rwm".to_string()),
        };
        cfg.devices.push(Device {
            host,
            container,
            permissions: perms,
        });
    }
    if let Some(s) = &a.shm_size {
        cfg.shm_size = u64::try_from(parse_bytes("--shm-size", s)?).unwrap_or(0);
    }
    for s in &a.sysctl {
        let (k, v) = key_value("--sysctl", s)?;
        cfg.sysctls.insert(k, v);
    }
    // Docker's json-file keeps everything unless told; a container that
    // prints without end then fills the disk. Bounded by default as
    // Docker's `local` driver is (20m, 5 files); `max-size=-1` is unbounded.
    let (mut max_size, mut max_file) = (None, None);
    for o in &a.log_opt {
        let (k, v) = key_value("--log-opt", o)?;
        match k.as_str() {
            "max-size" if v == "-1" => max_size = Some(0),
            "max-size" => {
                max_size = Some(
                    u64::try_from(parse_bytes("--log-opt max-size", &v)?)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| anyhow::anyhow!("invalid --log-opt max-size={v}"))?,
                )
            }
            "max-file" => {
                max_file = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| anyhow::anyhow!("invalid --log-opt max-file={v}"))?,
                )
            }
            _ => bail!("unknown log opt {k:?} for the json-file log driver"),
        }
    }
    cfg.log = match max_size {
        // With a size given, one file unless told (json-file's default).
        Some(max_size) => LogConfig {
            max_size,
            max_file: max_file.unwrap_or(1),
        },
        None => LogConfig {
            max_size: DEFAULT_LOG_MAX_SIZE,
            max_file: max_file.unwrap_or(DEFAULT_LOG_MAX_FILE),
        },
    };
    let dur = |flag: &str, v: &Option<String>| -> Result<u64> {
        v.as_deref().map_or(Ok(0), |s| {
            // A duration Go reads as negative: docker's client's words.
            if berth_relay::clock::go_duration(s.trim()).is_some_and(|n| n < 0) {
                bail!("{flag} cannot be negative");
            }
            let d = parse_duration(s).with_context(|| format!("invalid {flag}"))?;
            u64::try_from(d.as_nanos())
                .map_err(|_| anyhow::anyhow!("invalid {flag}: {s:?} is too long"))
        })
    };
    if a.no_healthcheck {
        if a.health_cmd.is_some() {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        cfg.health = Some(berth_engine::health::HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        });
    } else if let Some(cmd) = &a.health_cmd {
        cfg.health = Some(berth_engine::health::HealthConfig {
            test: vec!["CMD-SHELL".into(), cmd.clone()],
            interval_ns: dur("--health-interval", &a.health_interval)?,
            timeout_ns: dur("--health-timeout", &a.health_timeout)?,
            retries: a.health_retries.unwrap_or(0),
            start_period_ns: dur("--health-start-period", &a.health_start_period)?,
        });
    }
    Ok(cfg)
}

/// A Go-style duration: `500ms`, `30s`, `1m30s`, `2h`, `1.5s`; not negative.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration> {
    if s.trim().is_empty() {
        bail!("empty duration");
    }
    let nanos = berth_relay::clock::go_duration(s.trim())
        .filter(|n| *n >= 0)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is not a duration (like 500ms, 30s, 1m30s)"))?;
    let nanos = u64::try_from(nanos).map_err(|_| anyhow::anyhow!("{s:?} is out of range"))?;
    Ok(std::time::Duration::from_nanos(nanos))
}

/// `NAME=value`, or `NAME` alone: our value of it; None when `NAME` is
/// not set here (Docker then leaves it out, rather than setting it empty).
pub(crate) fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var_os(e).map(|v| format!("{e}={}", v.to_string_lossy()))
    }
}

fn parse_volume(v: &str) -> Result<Mount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        // An anonymous volume at this path.
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => bail!("invalid volume specification {v:?}"),
    };
    let mut m = Mount {
        kind: if src.is_empty() || !src.starts_with('/') {
            "volume"
        } else {
            "bind"
        }
        .into(),
        source: src.to_string(),
        destination: dst.to_string(),
        read_only: false,
        options: vec![],
        create_source: src.starts_with('/'),
    };
    if m.kind == "volume" && !src.is_empty() {
        berth_engine::volumes::validate(src)?;
    }
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.read_only = true,
            "rw" | "z" | "Z" | "consistent" | "cached" | "delegated" | "nocopy" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                m.options.push(o.to_string())
            }
            _ => bail!("invalid volume option {o:?} in {v:?}"),
        }
    }
    Ok(m)
}

fn parse_mount(s: &str) -> Result<Mount> {
    let mut m = Mount {
        kind: "volume".into(),
        ..Default::default()
    };
    for kv in s.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => m.kind = v.to_string(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.destination = v.to_string(),
            "readonly" | "ro" => m.read_only = v.is_empty() || v == "true" || v == "1",
            "bind-propagation" => m.options.push(v.to_string()),
            "tmpfs-size" => m.options.push(format!("size={v}")),
            "tmpfs-mode" => m.options.push(format!("mode={v}")),
            _ => bail!("invalid --mount field {k:?} in {s:?}"),
        }
    }
    match m.kind.as_str() {
        "bind" if m.source.starts_with('/') => {}
        "bind" => bail!("invalid --mount {s:?}: a bind needs an absolute source"),
        "tmpfs" => m.source = "tmpfs".into(),
        "volume" if m.source.is_empty() => {}
        "volume" => berth_engine::volumes::validate(&m.source)?,
        k => bail!("invalid --mount type {k:?}"),
    }
    if m.destination.is_empty() {
        bail!("invalid --mount {s:?}: target is required");
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_like_docker() {
        assert_eq!(
            parse_duration("1m30s").unwrap(),
            std::time::Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration("500ms").unwrap(),
            std::time::Duration::from_millis(500)
        );
        assert_eq!(
            parse_duration("1.5s").unwrap(),
            std::time::Duration::from_millis(1500)
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_bytes("-m", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("-m", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("-m", "100b").unwrap(), 100);
        assert!(parse_bytes("-m", "lots").is_err());
    }
}

/// A stream `run -a` attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

/// `-a` values as docker's client takes them (any case).
fn parse_stream(s: &str) -> Result<Stream, String> {
    match s.to_ascii_lowercase().as_str() {
        "stdin" => Ok(Stream::Stdin),
        "stdout" => Ok(Stream::Stdout),
        "stderr" => Ok(Stream::Stderr),
        _ => Err("valid streams are STDIN, STDOUT and STDERR".to_string()),
    }
}
