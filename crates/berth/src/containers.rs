//! The container commands: run, create, start, stop, restart, kill, rm, ps,
//! logs, wait, exec, inspect, rename, pause, unpause — docker's flags over
//! the engine.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_engine::config::{ContainerConfig, Device, LogConfig, Mount, RestartPolicy, Ulimit};
use berth_engine::{Engine, Record, Status};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::format;

/// A container's log when `--log-opt` sets no size: 20 MiB a file, five
/// files (Docker's `local` driver's bounds).
const DEFAULT_LOG_MAX_SIZE: u64 = 20 << 20;
const DEFAULT_LOG_MAX_FILE: u32 = 5;

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Create a new container
    Create(Box<RunArgs>),
    /// Start one or more stopped containers
    Start {
        /// Attach stdout/stderr and wait for the container
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin
        #[arg(short, long)]
        interactive: bool,
        /// Override the key sequence for detaching (default ctrl-p,ctrl-q)
        #[arg(long)]
        detach_keys: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Copy files/folders between a container and the local filesystem
    #[command(
        override_usage = "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
    )]
    Cp {
        /// Archive mode (copy all uid/gid information)
        #[arg(short, long)]
        archive: bool,
        /// Always follow symbol link in SRC_PATH
        #[arg(short = 'L', long)]
        follow_link: bool,
        /// Suppress progress output during copy
        #[arg(short, long)]
        quiet: bool,
        src: String,
        dest: String,
    },
    /// Get real time events (from berth's journal)
    Events {
        /// Show events created since timestamp (RFC 3339, unix seconds, or a duration ago)
        #[arg(long)]
        since: Option<String>,
        /// Stream events until this timestamp
        #[arg(long)]
        until: Option<String>,
        /// Filter output based on conditions provided (container, event, image, type, volume)
        #[arg(short, long)]
        filter: Vec<String>,
        /// Format output using a Go template ('{{json .}}')
        #[arg(long)]
        format: Option<String>,
    },
    /// Attach local standard input, output, and error streams to a running container
    Attach {
        /// Do not attach stdin
        #[arg(long)]
        no_stdin: bool,
        /// Proxy all received signals to the process
        #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// Override the key sequence for detaching (default ctrl-p,ctrl-q)
        #[arg(long)]
        detach_keys: Option<String>,
        container: String,
    },
    /// Stop one or more running containers
    Stop {
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<u32>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart {
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<u32>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill one or more running containers
    Kill {
        /// Signal to send
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm {
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
        /// Remove the container's anonymous volumes
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs {
        #[arg(short, long)]
        follow: bool,
        /// Number of lines from the end ("all" for all)
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show timestamps
        #[arg(short, long)]
        timestamps: bool,
        /// Only logs since this time (RFC 3339) or duration ago (10m, 1h)
        #[arg(long)]
        since: Option<String>,
        /// Only logs before this time or duration ago
        #[arg(long)]
        until: Option<String>,
        container: String,
    },
    /// Block until containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Pause all processes within containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Inspect changes to files on a container's filesystem
    Diff { container: String },
    /// Export a container's filesystem as a tar archive
    Export {
        /// Write to this file instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
        container: String,
    },
    /// Display the running processes of a container (ps options after it)
    Top {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_options: Vec<String>,
    },
    /// Create a new image from a container's changes
    Commit {
        /// Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR)
        #[arg(short, long)]
        change: Vec<String>,
        /// Commit message
        #[arg(short, long)]
        message: Option<String>,
        /// Author
        #[arg(short, long)]
        author: Option<String>,
        /// Pause the container while committing
        #[arg(short, long, default_value = "true", action = clap::ArgAction::Set)]
        pause: bool,
        container: String,
        /// Repository and tag for the image
        reference: Option<String>,
    },
    /// Update the resource limits or restart policy of containers
    Update(UpdateArgs),
    /// Display containers' resource usage (live, or once with --no-stream)
    Stats {
        /// Show all containers (default: running)
        #[arg(short, long)]
        all: bool,
        /// Print one sample and exit
        #[arg(long)]
        no_stream: bool,
        /// Do not truncate ids
        #[arg(long)]
        no_trunc: bool,
        /// Go template ({{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}} ...), table TEMPLATE, or json
        #[arg(long)]
        format: Option<String>,
        containers: Vec<String>,
    },
    /// List port mappings (none until networking publishes ports)
    Port {
        container: String,
        port: Option<String>,
    },
    /// Display detailed information on containers or images
    Inspect {
        /// Go-template-like format ({{.State.Status}}, {{json .Config}})
        #[arg(short, long)]
        format: Option<String>,
        /// Only this kind of object: container or image
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running)
    #[arg(short, long)]
    all: bool,
    /// Only ids
    #[arg(short, long)]
    quiet: bool,
    /// The n last created containers
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// The last created container
    #[arg(short, long)]
    latest: bool,
    #[arg(long)]
    no_trunc: bool,
    /// Filter: id=, name=, status=, label=, ancestor=, exited=
    #[arg(short, long)]
    filter: Vec<String>,
    /// Go-template-like format ({{.ID}} {{.Names}} {{.Status}} ...) or json
    #[arg(long)]
    format: Option<String>,
    /// Show sizes
    #[arg(short, long)]
    size: bool,
}

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
    fn resources(&self) -> Result<berth_engine::config::Resources> {
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
pub struct UpdateArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(short, long)]
    detach: bool,
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long)]
    env: Vec<String>,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(long)]
    privileged: bool,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (`-h` is `--hostname`, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Run in the background and print the container id
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
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
    #[arg(long)]
    shm_size: Option<String>,
    #[arg(long)]
    sysctl: Vec<String>,
    /// max-size= (default 20m; -1: unbounded), max-file= (default 5; 1 when max-size is given)
    #[arg(long)]
    log_opt: Vec<String>,
    /// Write the container id to this file
    #[arg(long)]
    cidfile: Option<PathBuf>,
    /// Proxy received signals to the container (foreground)
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching
    #[arg(long)]
    detach_keys: Option<String>,
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
    pull: Option<String>,
    #[command(flatten)]
    registry: crate::transfer::RegistryArgs,
    image: String,
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
fn config_from(a: &RunArgs) -> Result<ContainerConfig> {
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

/// A Go-style duration: `500ms`, `30s`, `1m30s`, `2h`, `1.5s`.
fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end]
            .parse()
            .map_err(|_| anyhow::anyhow!("{s:?} is not a duration (like 500ms, 30s, 1m30s)"))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => bail!("{s:?} is not a duration (like 500ms, 30s, 1m30s)"),
        };
        rest = &rest[u_end..];
        total += n * unit;
    }
    std::time::Duration::try_from_secs_f64(total)
        .map_err(|_| anyhow::anyhow!("{s:?} is out of range"))
}

/// `NAME=value`, or `NAME` alone: our value of it; None when `NAME` is
/// not set here (Docker then leaves it out, rather than setting it empty).
fn env_entry(e: &str) -> Option<String> {
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

/// Runs a container command; returns the exit code to leave with.
pub fn dispatch(root: &Path, runroot: &Path, cmd: &ContainerCommand) -> Result<i32> {
    let mut engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    match cmd {
        ContainerCommand::Run(a) => run(&mut engine, a),
        ContainerCommand::Create(a) => {
            let cfg = config_from(a)?;
            let cidfile = open_cidfile(a)?;
            let r = create_pulling(&mut engine, a, cfg).map_err(|e| {
                if let Some(p) = &a.cidfile {
                    let _ = std::fs::remove_file(p);
                }
                from_daemon(e)
            })?;
            write_cidfile(cidfile, &r)?;
            println!("{}", r.id);
            Ok(0)
        }
        ContainerCommand::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => {
            let keys = detach_keys_of(detach_keys.as_deref())?;
            let mut code = 0;
            for c in containers {
                let r = engine.find(c)?;
                if r.status.is_active() {
                    if !*attach {
                        println!("{c}");
                    }
                    continue;
                }
                engine.db.set_stopped_by_user(&r.id, false)?;
                if (*attach || *interactive) && r.config.tty {
                    let session = berth_engine::attach::Options {
                        tty: true,
                        stdin: *interactive && r.config.open_stdin,
                        detach_keys: keys.clone(),
                        sig_proxy: true,
                    };
                    code = run_attached(&engine, &r, &session)?;
                } else if *attach || *interactive {
                    code = berth_engine::monitor::run(
                        &mut engine,
                        &r.id,
                        berth_engine::monitor::Mode::Foreground {
                            stdin: *interactive,
                        },
                    )?;
                } else {
                    berth_engine::monitor::start_detached(&engine, &r)?;
                    println!("{c}");
                }
            }
            Ok(code)
        }
        ContainerCommand::Stop { time, containers } => each(&engine, containers, |e, r| {
            e.stop(r, *time)?;
            Ok(())
        }),
        ContainerCommand::Restart { time, containers } => each(&engine, containers, |e, r| {
            e.stop(r, *time)?;
            let r = e.find(&r.id)?;
            e.db.set_stopped_by_user(&r.id, false)?;
            berth_engine::monitor::start_detached(e, &r)?;
            e.db.container_event(&r, "restart", &[]);
            Ok(())
        }),
        ContainerCommand::Kill { signal, containers } => {
            let sig = berth_runtime::signal::parse_signal(signal)?;
            // docker's words: "Cannot kill container: NAME: <why>".
            each_worded(
                &engine,
                containers,
                |n| format!("Cannot kill container: {n}: "),
                |e, r| {
                    if sig == libc::SIGKILL || sig == libc::SIGTERM {
                        e.db.set_stopped_by_user(&r.id, true)?;
                    }
                    e.kill(r, sig)?;
                    Ok(())
                },
            )
        }
        ContainerCommand::Rm {
            force,
            containers,
            volumes,
        } => {
            let mut code = 0;
            for n in containers {
                match engine.find(n) {
                    Ok(r) => match engine.remove(&r, *force, *volumes) {
                        Ok(()) => println!("{n}"),
                        Err(e) => {
                            eprintln!("Error response from daemon: {e}");
                            code = 1;
                        }
                    },
                    // Docker's client words; with -f no failure (teardown
                    // scripts under `set -e` rely on it).
                    Err(e @ berth_engine::Error::NoSuchContainer(_)) => {
                        eprintln!("Error: {e}");
                        if !*force {
                            code = 1;
                        }
                    }
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        ContainerCommand::Ps(a) => ps(&engine, a).map(|()| 0),
        ContainerCommand::Logs {
            follow,
            tail,
            timestamps,
            since,
            until,
            container,
        } => logs(
            &engine,
            container,
            *follow,
            tail,
            *timestamps,
            since.as_deref(),
            until.as_deref(),
        )
        .map(|()| 0),
        ContainerCommand::Wait { containers } => {
            let mut failed = false;
            for c in containers {
                match engine.find(c).and_then(|r| engine.wait_exited(&r.id)) {
                    Ok(r) => println!("{}", r.exit_code),
                    Err(e) => {
                        match crate::damaged_database(&engine.root, &e) {
                            Some(line) => eprintln!("Error: {line}"),
                            None => eprintln!("Error response from daemon: {e}"),
                        }
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        ContainerCommand::Exec(a) => exec(&engine, a),
        ContainerCommand::Events {
            since,
            until,
            filter,
            format,
        } => events(
            &engine,
            since.as_deref(),
            until.as_deref(),
            filter,
            format.as_deref(),
        )
        .map(|()| 0),
        ContainerCommand::Cp {
            archive,
            follow_link,
            quiet: _,
            src,
            dest,
        } => {
            copy(
                &engine,
                src,
                dest,
                berth_engine::cp::Options {
                    archive: *archive,
                    follow_link: *follow_link,
                },
            )?;
            Ok(0)
        }
        ContainerCommand::Attach {
            no_stdin,
            sig_proxy,
            detach_keys,
            container,
        } => {
            let keys = detach_keys_of(detach_keys.as_deref())?;
            let r = engine.find(container)?;
            if r.status == Status::Paused {
                anyhow::bail!("You cannot attach to a paused container, unpause it first");
            }
            if r.status != Status::Running || !berth_engine::alive(r.pid, r.pid_start) {
                anyhow::bail!("You cannot attach to a stopped container, start it first");
            }
            let stream = berth_engine::attach::connect(&engine.runroot, &r.id)?;
            engine.db.container_event(&r, "attach", &[]);
            let session = berth_engine::attach::Options {
                tty: r.config.tty,
                stdin: !*no_stdin && r.config.open_stdin,
                detach_keys: keys,
                sig_proxy: *sig_proxy,
            };
            Ok(berth_engine::attach::relay(stream, &session)?.exit_code())
        }
        ContainerCommand::Rename {
            container,
            new_name,
        } => {
            let r = engine.find(container)?;
            berth_engine::names::validate(new_name)?;
            engine.db.rename(&r.id, new_name)?;
            let renamed = engine.find(&r.id)?;
            engine
                .db
                .container_event(&renamed, "rename", &[("oldName", &r.name)]);
            Ok(0)
        }
        ContainerCommand::Diff { container } => {
            let r = engine.find(container)?;
            let mut out = std::io::stdout().lock();
            for (kind, path) in engine.changes(&r)? {
                writeln!(out, "{kind} {path}")?;
            }
            Ok(0)
        }
        ContainerCommand::Export { output, container } => {
            let r = engine.find(container)?;
            match output {
                Some(p) => {
                    let f = std::fs::File::create(p)
                        .with_context(|| format!("create {}", p.display()))?;
                    engine.export(&r, std::io::BufWriter::new(f))?;
                }
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        bail!(
                            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                        );
                    }
                    engine.export(&r, std::io::BufWriter::new(std::io::stdout().lock()))?;
                }
            }
            Ok(0)
        }
        ContainerCommand::Top {
            container,
            ps_options,
        } => top(&engine, container, ps_options),
        ContainerCommand::Update(a) => {
            let res = a.resources.resources()?;
            let restart = a
                .restart
                .as_deref()
                .map(RestartPolicy::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            each(&engine, &a.containers, |e, r| {
                Ok(e.update(r, &res, restart.clone())?)
            })
        }
        ContainerCommand::Commit {
            change,
            message,
            author,
            pause,
            container,
            reference,
        } => {
            let r = engine.find(container)?;
            let tags = reference
                .iter()
                .map(|t| {
                    t.parse::<berth_image::Reference>()
                        .map_err(|e| anyhow::anyhow!("{t:?}: {e}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let img = engine.commit(
                &r,
                change,
                message.as_deref(),
                author.as_deref(),
                *pause,
                &tags,
            )?;
            println!("{}", img.id);
            Ok(0)
        }
        ContainerCommand::Stats {
            all,
            no_stream,
            no_trunc,
            format,
            containers,
        } => stats(
            &engine,
            *all,
            *no_stream,
            *no_trunc,
            format.as_deref(),
            containers,
        )
        .map(|()| 0),
        ContainerCommand::Port { container, port } => {
            let r = engine.find(container)?;
            let (_, ports) = engine.network_state(&r.id);
            let want = match port {
                Some(p) => {
                    let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
                    let num: u16 = num.parse().map_err(|_| {
                        anyhow::anyhow!("invalid port {p:?}: expected PORT[/PROTO]")
                    })?;
                    Some((num, proto.to_string()))
                }
                None => None,
            };
            let mut shown = 0;
            for m in &ports {
                match &want {
                    Some((n, proto)) => {
                        if m.container_port == *n && m.proto.as_str() == proto {
                            println!("{}", m.host_display());
                            shown += 1;
                        }
                    }
                    None => println!(
                        "{}/{} -> {}",
                        m.container_port,
                        m.proto.as_str(),
                        m.host_display()
                    ),
                }
            }
            if let (Some(p), 0) = (port, shown) {
                bail!("No public port '{p}' published for {container}");
            }
            Ok(0)
        }
        ContainerCommand::Pause { containers } => {
            each(&engine, containers, |e, r| Ok(e.set_paused(r, true)?))
        }
        ContainerCommand::Unpause { containers } => {
            each(&engine, containers, |e, r| Ok(e.set_paused(r, false)?))
        }
        ContainerCommand::Inspect {
            format,
            kind,
            names,
        } => inspect(&engine, names, format.as_deref(), kind.as_deref()),
    }
}

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

/// Applies `f` to each named container, printing the name given as docker
/// does; errors are printed and make the exit code 1.
fn each(
    engine: &Engine,
    names: &[String],
    f: impl Fn(&Engine, &Record) -> Result<()>,
) -> Result<i32> {
    each_worded(engine, names, |_| String::new(), f)
}

/// [`each`], with what docker's daemon puts before each failure's reason
/// (`kill`'s "Cannot kill container: NAME: ").
fn each_worded(
    engine: &Engine,
    names: &[String],
    before: impl Fn(&str) -> String,
    f: impl Fn(&Engine, &Record) -> Result<()>,
) -> Result<i32> {
    let mut code = 0;
    for n in names {
        match engine
            .find(n)
            .map_err(anyhow::Error::from)
            .and_then(|r| f(engine, &r))
        {
            Ok(()) => println!("{n}"),
            Err(e) => {
                match crate::damaged_database(&engine.root, e.as_ref()) {
                    Some(line) => eprintln!("Error: {line}"),
                    None => eprintln!("Error response from daemon: {}{e:#}", before(n)),
                }
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `--cidfile`: made (empty) before the container, as docker's client
/// does, so that a file already there stops the command before anything
/// is created.
fn open_cidfile(a: &RunArgs) -> Result<Option<std::fs::File>> {
    let Some(p) = &a.cidfile else {
        return Ok(None);
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "container ID file found, make sure the other container isn't running or delete {}",
            p.display()
        ),
        Err(e) => Err(anyhow::anyhow!(
            "failed to create the container ID file: {e}"
        )),
    }
}

fn write_cidfile(f: Option<std::fs::File>, r: &Record) -> Result<()> {
    if let Some(mut f) = f {
        f.write_all(r.id.as_bytes())
            .context("write the container ID file")?;
    }
    Ok(())
}

/// `events`: the journal's events, past ones with `--since`, then new
/// ones as they are written (polled) until `--until` or forever.
fn events(
    engine: &Engine,
    since: Option<&str>,
    until: Option<&str>,
    filters: &[String],
    format: Option<&str>,
) -> Result<()> {
    const KEYS: &[&str] = &["container", "event", "image", "type", "volume"];
    let since = since.map(parse_time).transpose()?;
    let until = until.map(parse_time).transpose()?;
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        if !KEYS.contains(&k) {
            return Err(crate::invalid_filter(k));
        }
        wanted.entry(k.to_string()).or_default().push(v.to_string());
    }
    let nanos = |t: time::OffsetDateTime| i64::try_from(t.unix_timestamp_nanos()).unwrap_or(0);
    let (since_n, until_n) = (since.map(nanos), until.map(nanos));
    let matches = |e: &berth_engine::events::Event| -> bool {
        let attr = |k: &str| e.attributes.get(k).map(String::as_str).unwrap_or("");
        wanted.iter().all(|(k, vals)| {
            vals.iter().any(|v| match k.as_str() {
                "container" => {
                    e.kind == "container" && (e.actor.starts_with(v.as_str()) || attr("name") == v)
                }
                "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
                "image" => {
                    attr("image") == v
                        || (e.kind == "image"
                            && (attr("name") == v
                                || e.actor
                                    .trim_start_matches("sha256:")
                                    .starts_with(v.as_str())))
                }
                "type" => e.kind == *v,
                "volume" => e.kind == "volume" && e.actor == *v,
                _ => false,
            })
        })
    };
    // Docker parses the format before it waits for events.
    let tmpl = format
        .map(berth_template::Template::parse)
        .transpose()
        .map_err(|e| format::TemplateFailure {
            message: format!("Error parsing format: {e}"),
            code: 64,
        })?;
    let mut out = std::io::stdout().lock();
    let mut seq = if since.is_some() {
        0
    } else {
        engine.db.last_event()?
    };
    loop {
        let batch = engine.db.events_after(seq, 500)?;
        for e in &batch {
            seq = e.seq;
            if since_n.is_some_and(|s| e.time_nano < s) || until_n.is_some_and(|u| e.time_nano > u)
            {
                continue;
            }
            if matches(e) {
                writeln!(out, "{}", event_line(e, tmpl.as_ref())?)?;
            }
        }
        out.flush()?;
        if batch.len() == 500 {
            continue;
        }
        if until_n.is_some_and(|u| nanos(time::OffsetDateTime::now_utc()) > u) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An event as docker prints it, or through `--format`.
fn event_line(
    e: &berth_engine::events::Event,
    format: Option<&berth_template::Template>,
) -> Result<String> {
    let secs = e.time_nano.div_euclid(1_000_000_000);
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.time_nano))
        .ok()
        .and_then(|t| {
            let f = time::format_description::parse_borrowed::<2>(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z",
            )
            .ok()?;
            t.format(&f).ok()
        })
        .unwrap_or_default();
    match format {
        Some(f) => {
            let v = json!({
                "status": e.action,
                "id": e.actor,
                "from": e.attributes.get("image").cloned().unwrap_or_default(),
                "Type": e.kind,
                "Action": e.action,
                "Actor": {"ID": e.actor, "Attributes": e.attributes},
                "scope": "local",
                "time": secs,
                "timeNano": e.time_nano,
            });
            f.execute(&format::typed(&v, "*events.Message"))
                .map_err(|e| {
                    format::TemplateFailure {
                        message: format!("Error parsing format: {e}"),
                        code: 64,
                    }
                    .into()
                })
        }
        None => {
            let attrs: Vec<String> = e
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            Ok(format!(
                "{time} {} {} {} ({})",
                e.kind,
                e.action,
                e.actor,
                attrs.join(", ")
            ))
        }
    }
}

/// `cp`: exactly one side is a container.
fn copy(engine: &Engine, src: &str, dest: &str, opts: berth_engine::cp::Options) -> Result<()> {
    use berth_engine::cp::{Arg, End, Root};
    let (s, d) = (Arg::parse(src), Arg::parse(dest));
    match (&s, &d) {
        (Arg::Container(..), Arg::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (Arg::Container(..), _) | (_, Arg::Container(..)) => {}
        _ => bail!("must specify at least one container source"),
    }
    let roots: Vec<Root> = [&s, &d]
        .iter()
        .map(|a| match a {
            Arg::Container(c, p) => {
                let r = engine.find(c).map_err(|e| match e {
                    // Docker's words name the path too.
                    berth_engine::Error::NoSuchContainer(_) => berth_engine::Error::Invalid(
                        format!("No such container:path: {c}:{}", p.display()),
                    ),
                    e => e,
                })?;
                Root::container(engine, &r)
            }
            _ => Root::host(),
        })
        .collect::<berth_engine::Result<_>>()?;
    fn end<'a>(a: &Arg, root: &'a Root) -> Result<End<'a>> {
        Ok(match a {
            Arg::Container(_, p) => End::Path(root, p.clone()),
            Arg::Host(p) => End::Path(root, berth_engine::cp::absolute_host(p)?),
            Arg::Stream => End::Stream,
        })
    }
    berth_engine::cp::copy(end(&s, &roots[0])?, end(&d, &roots[1])?, opts)?;
    Ok(())
}

/// `--detach-keys`, docker's default when absent.
fn detach_keys_of(flag: Option<&str>) -> Result<Vec<u8>> {
    Ok(match flag {
        Some(k) => berth_engine::attach::parse_detach_keys(k)?,
        None => berth_engine::attach::DEFAULT_DETACH_KEYS.to_vec(),
    })
}

/// Starts `r` under a monitor with us attached: its exit code, or 0 when
/// the user detached (the container runs on).
fn run_attached(
    engine: &Engine,
    r: &Record,
    session: &berth_engine::attach::Options,
) -> berth_engine::Result<i32> {
    let stream = berth_engine::monitor::start_attached(engine, r)?;
    Ok(berth_engine::attach::relay(stream, session)?.exit_code())
}

/// Creates the container, pulling its image first as `--pull` says
/// (docker's default: when the store lacks it).
fn create_pulling(engine: &mut Engine, a: &RunArgs, cfg: ContainerConfig) -> Result<Record> {
    let policy = a.pull.as_deref().unwrap_or("missing");
    if policy == "always" {
        crate::transfer::pull_for_run(&mut engine.images, &a.registry, &a.image, false)?;
    }
    match engine.create(cfg.clone(), a.name.as_deref()) {
        Err(berth_engine::Error::ImageNotFound(image)) if policy == "missing" => {
            eprintln!("Unable to find image '{image}' locally");
            crate::transfer::pull_for_run(&mut engine.images, &a.registry, &a.image, false)?;
            Ok(engine.create(cfg, a.name.as_deref())?)
        }
        r => Ok(r?),
    }
}

impl RunArgs {
    /// Whether `run` starts the container in this process (in the
    /// foreground without a terminal), not under a monitor of its own.
    pub fn forks_here(&self) -> bool {
        !self.detach && !self.tty
    }
}

fn run(engine: &mut Engine, a: &RunArgs) -> Result<i32> {
    let cfg = config_from(a)?;
    let keys = detach_keys_of(a.detach_keys.as_deref())?;
    if a.tty && a.interactive && !a.detach && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        // Docker's client refuses before creating anything: a terminal
        // session needs one on this side (`-it` in a pipeline or in CI).
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let cidfile = open_cidfile(a)?;
    let r = create_pulling(engine, a, cfg).map_err(|e| {
        if let Some(p) = &a.cidfile {
            let _ = std::fs::remove_file(p);
        }
        from_daemon(e)
    })?;
    write_cidfile(cidfile, &r)?;
    if a.detach {
        // docker's client prints the id once the container exists, before
        // it starts it.
        println!("{}", r.id);
        if let Err(e) = berth_engine::monitor::start_detached(engine, &r) {
            // A container that cannot start is not left behind with --rm.
            if a.rm {
                let _ = engine.remove(&engine.find(&r.id)?, true, true);
            }
            return Err(from_daemon_at_start(e.into()));
        }
        return Ok(0);
    }
    // With a terminal: a monitor of its own and us attached, so that the
    // detach keys leave it running (docker's `run -it`, ctrl-p ctrl-q).
    let outcome = if r.config.tty {
        let session = berth_engine::attach::Options {
            tty: true,
            stdin: r.config.open_stdin,
            detach_keys: keys,
            sig_proxy: a.sig_proxy,
        };
        run_attached(engine, &r, &session)
    } else {
        berth_engine::monitor::run(
            engine,
            &r.id,
            berth_engine::monitor::Mode::Foreground {
                stdin: r.config.open_stdin,
            },
        )
    };
    match outcome {
        Ok(code) => Ok(code),
        Err(e) => {
            if a.rm {
                if let Ok(r) = engine.find(&r.id) {
                    let _ = engine.remove(&r, true, true);
                }
            }
            Err(from_daemon_at_start(e.into()))
        }
    }
}

/// An error of `cmd` as docker's client words it: the commands whose
/// failures docker reports as its daemon's answer get that form (see
/// [`crate::FromDaemon`]); the others (rm, inspect, logs, exec, port...)
/// docker's client checks itself and words "Error: ...".
pub fn as_docker_reports(cmd: &ContainerCommand, e: anyhow::Error) -> anyhow::Error {
    use ContainerCommand as C;
    if e.downcast_ref::<crate::FromDaemon>().is_some() {
        return e;
    }
    let then = match cmd {
        // With -a docker's client finds the container itself first.
        C::Start { attach: true, .. }
        | C::Start {
            interactive: true, ..
        } if e
            .downcast_ref::<berth_engine::Error>()
            .is_some_and(|e| matches!(e, berth_engine::Error::NoSuchContainer(_))) =>
        {
            return e
        }
        C::Start { containers, .. } => Some(format!(
            "failed to start containers: {}",
            containers.join(", ")
        )),
        C::Rename { container, .. } => {
            Some(format!("failed to rename container named {container}"))
        }
        C::Top { .. }
        | C::Wait { .. }
        | C::Diff { .. }
        | C::Export { .. }
        | C::Commit { .. }
        | C::Stats { .. } => None,
        _ => return e,
    };
    crate::FromDaemon {
        error: e,
        then,
        help: true,
    }
    .into()
}

/// A failure of what docker's daemon does for `run` and `create` (make and
/// start the container), worded as docker's client words the daemon's
/// answers; the client's own checks of the command line stay plain.
fn from_daemon(e: anyhow::Error) -> anyhow::Error {
    crate::FromDaemon::wrap(e, true)
}

/// [`from_daemon`] for what failed starting the container (its ports,
/// devices, networks, program): docker's client gives no usage hint then.
fn from_daemon_at_start(e: anyhow::Error) -> anyhow::Error {
    crate::FromDaemon::wrap(e, false)
}

/// docker's exit code for a container whose program could not be started:
/// 127 when it does not exist, 126 when it cannot be executed, else 125.
// The runtime's init reports the failure as text across the process
// boundary; typed kinds are the engine library's issue (16).
pub fn start_failure_code(e: &anyhow::Error) -> u8 {
    let msg = format!("{e:#}");
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        125
    }
}

fn short(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

/// `Up 5 seconds`, `Exited (0) 3 seconds ago`, `Created`.
fn status_text(r: &Record) -> String {
    let ago = |t: &str| format::since(Some(t)).trim_end_matches(" ago").to_string();
    let health = match r.health.as_ref().map(|h| h.status.as_str()) {
        Some("starting") => " (health: starting)",
        Some("healthy") => " (healthy)",
        Some("unhealthy") => " (unhealthy)",
        _ => "",
    };
    // Docker has no such state: a container whose monitor died.
    let lost = if r.error == berth_engine::OUTPUT_LOST {
        " (monitor gone, output lost)"
    } else {
        ""
    };
    match r.status {
        Status::Running => format!("Up {}{health}{lost}", ago(&r.started_at)),
        Status::Paused => format!("Up {} (Paused){lost}", ago(&r.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {}",
            r.exit_code,
            format::since(Some(&r.finished_at))
        ),
        Status::Exited => format!(
            "Exited ({}) {}",
            r.exit_code,
            format::since(Some(&r.finished_at))
        ),
        Status::Starting => "Starting".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Created => "Created".into(),
    }
}

fn command_text(r: &Record, no_trunc: bool) -> String {
    // Docker's daemon quotes the arguments that hold a space.
    let words: Vec<String> = r
        .config
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i > 0 && a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect();
    let c = words.join(" ");
    let c = if !no_trunc && c.chars().count() > 20 {
        format!("{}…", c.chars().take(19).collect::<String>())
    } else {
        c
    };
    format!("\"{c}\"")
}

/// `berth volume ...`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        /// Set metadata (key=value)
        #[arg(short, long)]
        label: Vec<String>,
        /// Driver (only "local")
        #[arg(short, long, default_value = "local")]
        driver: String,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        /// dangling=true|false, name=PART, label=KEY[=VALUE]
        #[arg(short, long)]
        filter: Vec<String>,
        /// Go template ({{.Name}} {{.Driver}} {{.Mountpoint}} {{.Labels}} {{.Label "k"}} ...), table TEMPLATE, or json
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on volumes
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes (refused while a container uses one)
    Rm {
        /// Accepted for docker compatibility: in-use volumes are still kept
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (-a: all unused volumes)
    Prune {
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        force: bool,
    },
}

/// Runs a volume command.
pub fn volume(root: &Path, runroot: &Path, cmd: &VolumeCommand) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    let json = |v: &berth_engine::volumes::Volume| serde_json::to_value(v).unwrap_or(Value::Null);
    match cmd {
        VolumeCommand::Create {
            label,
            driver,
            name,
        } => {
            // docker's daemon answers, naming the volume.
            let daemon = |e: anyhow::Error| {
                crate::FromDaemon::wrap(
                    e.context(format!("create {}", name.as_deref().unwrap_or(""))),
                    false,
                )
            };
            if driver != "local" {
                return Err(daemon(anyhow::anyhow!(
                    "error looking up volume plugin {driver}: plugin {driver:?} not found"
                )));
            }
            let mut labels = BTreeMap::new();
            for l in label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                labels.insert(k.to_string(), v.to_string());
            }
            let v = engine
                .volumes
                .create(name.as_deref(), &labels)
                .map_err(|e| daemon(e.into()))?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeCommand::Ls {
            quiet,
            filter,
            format,
        } => {
            let mut list = engine.volumes.list()?;
            for f in filter {
                let (k, v) = key_value("--filter", f)?;
                let keep: Box<dyn Fn(&berth_engine::volumes::Volume) -> bool> = match k.as_str() {
                    "dangling" => {
                        let want = v == "true" || v == "1";
                        let used: Vec<bool> = list
                            .iter()
                            .map(|x| engine.volume_users(&x.name).is_ok_and(|u| !u.is_empty()))
                            .collect();
                        let names: Vec<String> = list
                            .iter()
                            .zip(used)
                            .filter(|(_, u)| *u != want)
                            .map(|(x, _)| x.name.clone())
                            .collect();
                        Box::new(move |x| names.contains(&x.name))
                    }
                    "name" => Box::new(move |x| x.name.contains(v.as_str())),
                    "label" => Box::new(move |x| match v.split_once('=') {
                        Some((k, val)) => x.labels.get(k).is_some_and(|y| y == val),
                        None => x.labels.contains_key(v.as_str()),
                    }),
                    _ => return Err(crate::invalid_filter(&k)),
                };
                list.retain(|x| keep(x));
            }
            if *quiet {
                for v in &list {
                    println!("{}", v.name);
                }
                return Ok(0);
            }
            let fmt = format::ListFormat::new(format.as_deref(), r"table {{.Driver}}\t{{.Name}}")?;
            let rows = list.iter().map(|v| {
                use berth_template::Value as V;
                let [label, labels] = format::label_fields(&v.labels);
                format::context(
                    "*formatter.volumeContext",
                    vec![
                        ("Driver", V::from(v.driver.as_str())),
                        label,
                        labels,
                        // Docker knows these only from `system df`.
                        ("Links", V::from("N/A")),
                        ("Mountpoint", V::from(v.mountpoint.display().to_string())),
                        ("Name", V::from(v.name.as_str())),
                        ("Scope", V::from(v.scope.as_str())),
                        ("Size", V::from("N/A")),
                    ],
                )
            });
            let header = format::header(&[
                ("Name", "VOLUME NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("Mountpoint", "MOUNTPOINT"),
                ("Labels", "LABELS"),
                ("Links", "LINKS"),
                ("Size", "SIZE"),
            ]);
            fmt.write(&header, rows, &mut std::io::stdout().lock())?;
            Ok(0)
        }
        VolumeCommand::Inspect { format, names } => {
            let mut inspector = format.as_deref().map(format::Inspector::new).transpose()?;
            let mut out = Vec::new();
            let mut code = 0;
            for n in names {
                match (engine.volumes.get(n), inspector.as_mut()) {
                    // Docker has no raw JSON of a volume to fall back on.
                    (Ok(v), Some(i)) => i.add(&json(&v), "types.Volume", false),
                    (Ok(v), None) => out.push(json(&v)),
                    (Err(e), Some(i)) => i.error(format!("Error: {e}")),
                    (Err(e), None) => {
                        eprintln!("Error: {e}");
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
        VolumeCommand::Rm { names, force } => {
            let mut code = 0;
            for n in names {
                match engine.remove_volume(n) {
                    Ok(()) => println!("{n}"),
                    // Docker: -f removes what is not there without a word.
                    Err(berth_engine::Error::NoSuchVolume(_)) if *force => println!("{n}"),
                    Err(e @ berth_engine::Error::NoSuchVolume(_)) => {
                        eprintln!("Error: {e}");
                        code = 1;
                    }
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        VolumeCommand::Prune { all, .. } => {
            println!("Deleted Volumes:");
            let mut freed = 0;
            for v in engine.volumes.list()? {
                if (*all || v.anonymous) && engine.volume_users(&v.name)?.is_empty() {
                    freed += dir_size(&v.mountpoint);
                    engine.volumes.remove(&v.name)?;
                    println!("{}", v.name);
                }
            }
            println!("\nTotal reclaimed space: {}", format::size(freed));
            Ok(0)
        }
    }
}

/// `berth container prune`: removes every container that is not running.
pub fn prune(root: &Path, runroot: &Path) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    let mut freed = 0;
    println!("Deleted Containers:");
    for r in engine.list()? {
        if matches!(r.status, Status::Exited | Status::Created) {
            freed += dir_size(&engine.container_dir(&r.id).join("fs/upper"));
            engine.remove(&r, false, false)?;
            println!("{}", r.id);
        }
    }
    println!("\nTotal reclaimed space: {}", format::size(freed));
    Ok(0)
}

/// `berth container ls`.
pub fn ps_command(root: &Path, runroot: &Path, a: &PsArgs) -> Result<()> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    ps(&engine, a)
}

fn ps(engine: &Engine, a: &PsArgs) -> Result<()> {
    let mut list = engine.list()?;
    let mut all = a.all;
    if let Some(n) = a.last.or(a.latest.then_some(1)) {
        list.truncate(n);
        all = true;
    }
    let mut filters: Vec<(String, String)> = Vec::new();
    for f in &a.filter {
        let (k, v) = key_value("--filter", f)?;
        if !["id", "name", "status", "label", "ancestor", "exited"].contains(&k.as_str()) {
            return Err(crate::invalid_filter(&k));
        }
        if k == "status" || k == "exited" {
            all = true;
        }
        filters.push((k, v));
    }
    let images = engine.images.list().unwrap_or_default();
    list.retain(|r| {
        (all || matches!(
            r.status,
            Status::Running | Status::Paused | Status::Restarting
        )) && filters.iter().all(|(k, v)| match k.as_str() {
            "id" => r.id.starts_with(v.as_str()),
            "name" => r.name.contains(v.as_str()),
            "status" => r.status.as_str() == v,
            "exited" => r.status == Status::Exited && r.exit_code.to_string() == *v,
            "label" => match v.split_once('=') {
                Some((k, val)) => r.config.labels.get(k).is_some_and(|x| x == val),
                None => r.config.labels.contains_key(v.as_str()),
            },
            "ancestor" => {
                r.config.image == *v
                    || r.image_id
                        .trim_start_matches("sha256:")
                        .starts_with(v.trim_start_matches("sha256:"))
                    || images.iter().any(|i| {
                        i.id.to_string() == r.image_id
                            && i.tags.iter().any(|t| familiar(t) == *v || t == v)
                    })
            }
            _ => false,
        })
    });
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &list {
            writeln!(out, "{}", short(&r.id, a.no_trunc))?;
        }
        return Ok(());
    }
    // Docker runs the format over an empty container first: a template
    // that fails fails before anything is listed, even with no containers.
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        let t = berth_template::Template::parse(f).map_err(|e| {
            anyhow::Error::from(format::TemplateFailure {
                message: format!("failed to parse template: {e}"),
                code: 1,
            })
        })?;
        t.execute(&ps_context(&PsRow::default()))
            .map_err(|e| format::TemplateFailure {
                message: format!("failed to execute template: {e}"),
                code: 1,
            })?;
    }
    let mut table = String::from(
        r"table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
    );
    if a.size {
        table.push_str(r"\t{{.Size}}");
    }
    let fmt = format::ListFormat::new(a.format.as_deref(), &table)?;
    // Only what the format reads is computed (sizes walk directories).
    let reads = |k: &str| fmt.reads_field(k);
    let rows: Vec<berth_template::Value> = list
        .iter()
        .map(|r| {
            let row = PsRow {
                id: short(&r.id, a.no_trunc),
                image: r.config.image.clone(),
                command: if reads("Command") {
                    command_text(r, a.no_trunc)
                } else {
                    String::new()
                },
                created_at: format::go_time(&r.created),
                running_for: format::since(Some(&r.created)),
                ports: if reads("Ports") {
                    ports_text(engine, r)
                } else {
                    String::new()
                },
                state: r.status.to_string(),
                status: status_text(r),
                size: if reads("Size") {
                    let rw = dir_size(&engine.container_dir(&r.id).join("fs/upper"));
                    let image = images
                        .iter()
                        .find(|i| i.id.to_string() == r.image_id)
                        .map_or(0, |i| i.size);
                    format!(
                        "{} (virtual {})",
                        format::size(rw),
                        format::size(rw + image)
                    )
                } else {
                    String::new()
                },
                names: r.name.clone(),
                labels: r.config.labels.clone(),
                mounts: r
                    .config
                    .mounts
                    .iter()
                    .map(|m| {
                        if a.no_trunc || m.source.chars().count() <= 15 {
                            m.source.clone()
                        } else {
                            format!("{}…", m.source.chars().take(14).collect::<String>())
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                local_volumes: r
                    .config
                    .mounts
                    .iter()
                    .filter(|m| m.kind == "volume")
                    .count(),
                // Docker lists the networks the container has endpoints on:
                // one sharing another's namespace has none of its own.
                networks: std::iter::once(r.config.network.clone())
                    .chain(r.config.extra_networks.iter().cloned())
                    .filter(|n| !n.is_empty() && !n.starts_with("container:"))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            ps_context(&row)
        })
        .collect();
    let header = format::header(&[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Networks", "NETWORKS"),
    ]);
    fmt.write(&header, rows, &mut out)?;
    Ok(())
}

/// What `ps` shows of one container, computed before formatting.
#[derive(Debug, Default)]
struct PsRow {
    id: String,
    image: String,
    command: String,
    created_at: String,
    running_for: String,
    ports: String,
    state: String,
    status: String,
    size: String,
    names: String,
    labels: BTreeMap<String, String>,
    mounts: String,
    local_volumes: usize,
    networks: String,
}

/// Docker's `*formatter.ContainerContext`: its methods, in the order its
/// JSON lists them.
fn ps_context(r: &PsRow) -> berth_template::Value {
    use berth_template::Value as V;
    let [label, labels] = format::label_fields(&r.labels);
    format::context(
        "*formatter.ContainerContext",
        vec![
            ("Command", V::from(r.command.as_str())),
            ("CreatedAt", V::from(r.created_at.as_str())),
            ("ID", V::from(r.id.as_str())),
            ("Image", V::from(r.image.as_str())),
            label,
            labels,
            ("LocalVolumes", V::from(r.local_volumes.to_string())),
            ("Mounts", V::from(r.mounts.as_str())),
            ("Names", V::from(r.names.as_str())),
            ("Networks", V::from(r.networks.as_str())),
            ("Ports", V::from(r.ports.as_str())),
            ("RunningFor", V::from(r.running_for.as_str())),
            ("Size", V::from(r.size.as_str())),
            ("State", V::from(r.state.as_str())),
            ("Status", V::from(r.status.as_str())),
        ],
    )
}

pub(crate) fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    total += m.len();
                }
            }
        }
    }
    total
}

use crate::familiar;

/// An RFC 3339 time, or a duration before now (`10m`, `1h30m`, `45s`).
fn parse_time(s: &str) -> Result<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return time::OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| anyhow::anyhow!("invalid time {s:?}: {e}"));
    }
    let d = parse_duration(s).map_err(|_| anyhow::anyhow!("invalid time or duration {s:?}"))?;
    Ok(time::OffsetDateTime::now_utc() - d)
}

fn logs(
    engine: &Engine,
    container: &str,
    follow: bool,
    tail: &str,
    timestamps: bool,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<()> {
    let r = engine.find(container)?;
    if r.error == berth_engine::OUTPUT_LOST {
        eprintln!(
            "warning: container {}: its monitor died, so what it printed since is not in its log",
            r.name
        );
    }
    let path = engine.log_path(&r.id);
    let since = since.map(parse_time).transpose()?;
    let until = until.map(parse_time).transpose()?;
    let tail: Option<usize> = match tail {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}: a number or \"all\""))?,
        ),
    };
    let in_range = |e: &berth_engine::logs::Entry| {
        let Ok(t) =
            time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
        else {
            return true;
        };
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    let print = |e: &berth_engine::logs::Entry| {
        let line = if timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        if e.stream == "stderr" {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(line.as_bytes());
            let _ = o.flush();
        }
    };
    let entries: Vec<_> = berth_engine::logs::read_all(&path)
        .into_iter()
        .filter(|e| in_range(e))
        .collect();
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    for e in &entries[skip..] {
        print(e);
    }
    if !follow {
        return Ok(());
    }
    // Follow: read what is appended until the container is no longer running.
    use std::io::{BufReader, Seek, SeekFrom};
    let mut pos = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    loop {
        let active = engine.db.get(&r.id)?.is_some_and(|x| x.status.is_active());
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0; // rotated
        }
        if len > pos {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(pos))?;
            let mut out = Vec::new();
            let used = berth_engine::logs::read_entries(BufReader::new(f), &mut out);
            pos += used;
            for e in out.iter().filter(|e| in_range(e)) {
                print(e);
            }
        }
        if !active {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn exec(engine: &Engine, a: &ExecArgs) -> Result<i32> {
    let r = engine.find(&a.container)?;
    if a.tty && a.interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let req = berth_engine::exec::ExecRequest {
        command: a.command.clone(),
        env: a.env.iter().filter_map(|e| env_entry(e)).collect(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        privileged: a.privileged,
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
    };
    let session = match engine.exec(&r, &req) {
        Ok(s) => s,
        Err(e @ berth_engine::Error::State { .. }) => {
            return Err(crate::FromDaemon::wrap(e.into(), true))
        }
        // The process could not be started (no such program, no such
        // user, ...): docker's client prints the reason on stdout and
        // exits 126, whatever the reason; 1 stays for "no such
        // container" and "not running".
        Err(e) => {
            println!("{:#}", anyhow::Error::from(e));
            return Ok(126);
        }
    };
    if a.detach {
        return Ok(0);
    }
    let berth_engine::exec::ExecSession { exec_id, pid, io } = session;
    let code = match io {
        berth_engine::exec::ExecIo::Pipes { streams, input } => berth_relay::relay::relay(
            nix::unistd::Pid::from_raw(pid),
            streams,
            Some(berth_relay::relay::Caller {
                stdin: a.interactive,
            }),
            None,
            &mut berth_relay::relay::NoHooks,
            berth_relay::relay::Clients {
                server: None,
                input,
                tty: false,
            },
        )
        .context("relay the process's stdio"),
        berth_engine::exec::ExecIo::Terminal(console) => berth_runtime::terminal::finish_exec(
            berth_runtime::ExecOutcome::Detached(pid),
            Some(console),
        )
        .map_err(anyhow::Error::from),
        berth_engine::exec::ExecIo::Discarded => Ok(0),
    };
    // What went wrong relaying (after the process started) is ours to
    // say, not the process's: as before, exit 126 with the reason.
    let code = match code {
        Ok(c) => c,
        Err(e) => {
            println!("{e:#}");
            return Ok(126);
        }
    };
    engine.exec_ended(&r, &exec_id, code);
    Ok(code)
}

/// Bytes received and sent on the container's interfaces (loopback aside),
/// from its network namespace's /proc/<pid>/net/dev.
fn net_io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

/// `docker stats`: CPU from two samples of the cgroup's usage, memory and
/// pids from the cgroups, network from the container's namespace.
fn stats(
    engine: &Engine,
    all: bool,
    no_stream: bool,
    no_trunc: bool,
    format: Option<&str>,
    names: &[String],
) -> Result<()> {
    let fmt = format::ListFormat::new(
        format,
        r"table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
    )?;
    let header = format::header(&[
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ]);
    let pick = || -> Result<Vec<Record>> {
        if names.is_empty() {
            Ok(engine
                .list()?
                .into_iter()
                .filter(|r| all || matches!(r.status, Status::Running | Status::Paused))
                .collect())
        } else {
            names.iter().map(|n| Ok(engine.find(n)?)).collect()
        }
    };
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kib| kib * 1024);
    let sample = |list: &[Record]| -> Vec<Option<(u64, std::time::Instant)>> {
        list.iter()
            .map(|r| {
                engine
                    .stats(r)
                    .ok()
                    .map(|s| (s.cpu.usage.total, std::time::Instant::now()))
            })
            .collect()
    };
    let mut list = pick()?;
    let mut before = sample(&list);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(if no_stream {
            500
        } else {
            1000
        }));
        let mut rows = Vec::new();
        for (r, prev) in list.iter().zip(&before) {
            let s = engine.stats(r).ok();
            let cpu = match (s.as_ref(), prev) {
                (Some(s), Some((u0, t0))) => {
                    let dt = t0.elapsed().as_nanos().max(1) as f64;
                    format!(
                        "{:.2}%",
                        (s.cpu.usage.total.saturating_sub(*u0)) as f64 / dt * 100.0
                    )
                }
                _ => "--".into(),
            };
            let (mem, mem_pct, pids) = match &s {
                Some(s) => {
                    let limit = if s.memory.usage.limit == 0 || s.memory.usage.limit > mem_total {
                        mem_total
                    } else {
                        s.memory.usage.limit
                    };
                    // docker's usage: without the inactive page cache
                    let cache = s
                        .memory
                        .raw
                        .get("total_inactive_file")
                        .or_else(|| s.memory.raw.get("inactive_file"))
                        .copied()
                        .unwrap_or(0);
                    let used = s.memory.usage.usage.saturating_sub(cache);
                    (
                        format!("{} / {}", binary_size(used), binary_size(limit)),
                        format!("{:.2}%", used as f64 / limit.max(1) as f64 * 100.0),
                        s.pids.current.to_string(),
                    )
                }
                None => ("--".into(), "--".into(), "--".into()),
            };
            let (rx, tx) = if r.pid > 0 { net_io(r.pid) } else { (0, 0) };
            let block = match &s {
                Some(s) => {
                    let (read, written) = s.blkio.totals();
                    format!("{} / {}", format::size(read), format::size(written))
                }
                None => "--".into(),
            };
            use berth_template::Value as V;
            // Docker's `.Container` is the container as the command line
            // named it (its id when none was named).
            let given = names
                .iter()
                .find(|n| r.id.starts_with(n.as_str()) || r.name == **n)
                .cloned()
                .unwrap_or_else(|| short(&r.id, no_trunc));
            rows.push(format::context(
                "*container.statsContext",
                vec![
                    ("BlockIO", V::from(block)),
                    ("CPUPerc", V::from(cpu)),
                    ("Container", V::from(given)),
                    ("ID", V::from(short(&r.id, no_trunc))),
                    ("MemPerc", V::from(mem_pct)),
                    ("MemUsage", V::from(mem)),
                    ("Name", V::from(r.name.as_str())),
                    (
                        "NetIO",
                        V::from(format!("{} / {}", format::size(rx), format::size(tx))),
                    ),
                    ("PIDs", V::from(pids)),
                ],
            ));
        }
        let mut out = std::io::stdout().lock();
        if !no_stream {
            write!(out, "\x1b[2J\x1b[H")?;
        }
        fmt.write(&header, rows, &mut out)?;
        out.flush()?;
        if no_stream {
            return Ok(());
        }
        list = pick()?;
        before = sample(&list);
    }
}

/// `1.5MiB`: binary units, as docker prints memory.
fn binary_size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.2}{}", units[u])
    }
}

/// `docker top`: the host's `ps` (default `-ef`) limited to the container's
/// processes, header kept.
fn top(engine: &Engine, container: &str, ps_options: &[String]) -> Result<i32> {
    let r = engine.find(container)?;
    for line in engine.top(&r, ps_options)? {
        println!("{line}");
    }
    Ok(0)
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

/// `0.0.0.0:8080->80/tcp, 53/udp` as ps shows published and exposed ports.
fn ports_text(engine: &Engine, r: &Record) -> String {
    let (_, ports) = engine.network_state(&r.id);
    let mut parts: Vec<String> = ports
        .iter()
        .map(|m| {
            format!(
                "{}->{}/{}",
                m.host_display(),
                m.container_port,
                m.proto.as_str()
            )
        })
        .collect();
    for e in &r.config.exposed_ports {
        let (n, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        if !ports
            .iter()
            .any(|m| m.container_port.to_string() == n && m.proto.as_str() == proto)
        {
            parts.push(format!("{n}/{proto}"));
        }
    }
    parts.join(", ")
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

fn inspect(
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
