//! `run` and `create`'s flags (and `update`'s resource flags), and the
//! parsers of their values; the container config they make is built in
//! run_flags/config.rs, their mounts read in run_flags/mounts.rs.

pub(crate) mod config;
mod mounts;

use std::path::PathBuf;

use anyhow::{bail, Result};
use berth_engine::config::DeviceRate;
use clap::Args;

pub(crate) use config::{config_from, env_files};

impl RunArgs {
    /// Whether the container `run` would make gets a user namespace of its
    /// own (not a pod's or another container's, not the host's) and our
    /// binary is root's and closed to others: then its processes cannot
    /// write the binary (CVE-2019-5736) and `run` need not re-execute
    /// itself from a read-only view of it. The runtime checks again from
    /// the container's own maps before it forks, and refuses otherwise.
    pub(crate) fn own_user_namespace_protects(&self) -> bool {
        let joins = [
            Some(&self.network),
            self.pid.as_ref(),
            self.ipc.as_ref(),
            self.uts.as_ref(),
        ]
        .into_iter()
        .flatten()
        .any(|m| m.starts_with("container:"));
        // What makes the engine's default the host's namespace
        // (berth_engine::userns::wants_host): a device, the host's pid or
        // ipc namespace, an OOM score.
        let wants_host = !self.device.is_empty()
            || self.pid.as_deref() == Some("host")
            || self.ipc.as_deref() == Some("host")
            || self.oom_score_adj.is_some();
        !self.privileged
            && self.pod.is_none()
            && !joins
            && !wants_host
            && matches!(
                berth_engine::userns::Mode::parse(self.userns.as_deref().unwrap_or("")),
                Ok(berth_engine::userns::Mode::Private { .. })
            )
            && berth_runtime::exe::root_owned_and_closed()
    }
}

/// The resource flags `run`, `create` and `update` share.
#[derive(Debug, Args)]
pub struct ResourceArgs {
    /// Memory limit (b, k, m, g)
    #[arg(short, long)]
    memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(long)]
    memory_reservation: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpus: Option<f64>,
    #[arg(short = 'c', long)]
    cpu_shares: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    cpuset_mems: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight, 10 to 1000 (0: unset)
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// CPU real-time period in microseconds
    #[arg(long)]
    cpu_rt_period: Option<i64>,
    /// CPU real-time runtime in microseconds
    #[arg(long)]
    cpu_rt_runtime: Option<i64>,
    /// Kernel memory limit (deprecated: recorded, not applied, as Docker warns)
    #[arg(long)]
    kernel_memory: Option<String>,
}

impl ResourceArgs {
    /// No resource flag given (`update` then has nothing to do).
    pub(crate) fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.memory_reservation.is_none()
            && self.cpus.is_none()
            && self.cpu_shares.is_none()
            && self.cpu_quota.is_none()
            && self.cpu_period.is_none()
            && self.cpuset_cpus.is_none()
            && self.cpuset_mems.is_none()
            && self.pids_limit.is_none()
            && self.blkio_weight.is_none()
            && self.cpu_rt_period.is_none()
            && self.cpu_rt_runtime.is_none()
            && self.kernel_memory.is_none()
    }

    /// `--blkio-weight` as dockerd takes it (run, create and update): 0 is
    /// unset, a weight the host cannot apply is dropped with its warning,
    /// one it could must be in range.
    fn blkio_weight(&self) -> Result<Option<u16>> {
        let Some(w) = self.blkio_weight.filter(|w| *w != 0) else {
            return Ok(None);
        };
        if !config::host_has_blkio_weights() {
            eprintln!("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.");
            return Ok(None);
        }
        if !(10..=1000).contains(&w) {
            return Err(crate::FromDaemon::wrap(
                anyhow::anyhow!("Range of blkio weight is from 10 to 1000"),
                true,
            ));
        }
        Ok(Some(w))
    }

    /// The limits as the engine keeps them; bad values are one-line errors.
    pub(crate) fn resources(&self) -> Result<berth_engine::config::Resources> {
        let memory = self
            .memory
            .as_deref()
            .map(|s| memory_flag("-m, --memory", s))
            .transpose()?;
        let nano_cpus = match self.cpus {
            Some(c) if !c.is_finite() => bail!("invalid --cpus {c}: a number of CPUs"),
            // 0 is no limit; a negative number the daemon's range refuses.
            Some(0.0) => None,
            #[allow(clippy::cast_possible_truncation)]
            Some(c) => Some((c * 1e9) as i64),
            None => None,
        };
        let r = berth_engine::config::Resources {
            memory,
            memory_swap: match self.memory_swap.as_deref() {
                Some("-1") => Some(-1),
                Some(s) => Some(memory_flag("--memory-swap", s)?),
                None => None,
            },
            memory_reservation: self
                .memory_reservation
                .as_deref()
                .map(|s| memory_flag("--memory-reservation", s))
                .transpose()?,
            nano_cpus,
            cpu_shares: self.cpu_shares,
            cpu_quota: self.cpu_quota,
            cpu_period: self.cpu_period,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight()?,
            cpu_rt_period: self.cpu_rt_period,
            cpu_rt_runtime: self.cpu_rt_runtime,
            kernel_memory: self
                .kernel_memory
                .as_deref()
                .map(|s| memory_flag("--kernel-memory", s))
                .transpose()?,
            ..Default::default()
        };
        daemon_checks(&r).map_err(|e| crate::FromDaemon::wrap(anyhow::anyhow!(e), true))?;
        Ok(r)
    }
}

/// What docker's daemon checks of the limits before a container is made
/// or updated, in its order and words (verifyPlatformContainerResources
/// in Docker 20.10).
fn daemon_checks(r: &berth_engine::config::Resources) -> std::result::Result<(), String> {
    const MIN: i64 = 6 << 20;
    let (memory, swap) = (r.memory.unwrap_or(0), r.memory_swap.unwrap_or(0));
    let reservation = r.memory_reservation.unwrap_or(0);
    if memory != 0 && memory < MIN {
        return Err("Minimum memory limit allowed is 6MB".into());
    }
    if memory > 0 && swap > 0 && swap < memory {
        return Err(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if reservation > 0 && reservation < MIN {
        return Err("Minimum memory reservation allowed is 6MB".into());
    }
    if memory > 0 && reservation > 0 && memory < reservation {
        return Err(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        );
    }
    if r.kernel_memory.is_some_and(|k| k > 0 && k < MIN) {
        return Err("Minimum kernel memory limit allowed is 6MB".into());
    }
    let nano = r.nano_cpus.unwrap_or(0);
    if nano > 0 && r.cpu_period.is_some_and(|p| p > 0) {
        return Err("Conflicting options: Nano CPUs and CPU Period cannot both be set".into());
    }
    if nano > 0 && r.cpu_quota.is_some_and(|q| q > 0) {
        return Err("Conflicting options: Nano CPUs and CPU Quota cannot both be set".into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if nano < 0
        || nano
            > i64::try_from(cpus)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000_000)
    {
        return Err(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        ));
    }
    if r.cpu_period
        .is_some_and(|p| p != 0 && !(1000..=1_000_000).contains(&p))
    {
        return Err(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .into(),
        );
    }
    if r.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
        return Err("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
    }
    for (value, what, file, online) in [
        (
            &r.cpuset_cpus,
            "cpus",
            "cpuset.cpus",
            "/sys/devices/system/cpu/online",
        ),
        (
            &r.cpuset_mems,
            "mems",
            "cpuset.mems",
            "/sys/devices/system/node/online",
        ),
    ] {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        let asked = uint_list(value).ok_or_else(|| {
            format!("Invalid value {value} for cpuset {what}: invalid format: {value}")
        })?;
        // The host's, as the cpuset cgroup's root says (the kernel's
        // online list where there is none).
        let host = ["/sys/fs/cgroup/cpuset/", "/sys/fs/cgroup/"]
            .iter()
            .find_map(|d| {
                std::fs::read_to_string(format!("{d}{file}.effective"))
                    .ok()
                    .or_else(|| std::fs::read_to_string(format!("{d}{file}")).ok())
            })
            .filter(|s| !s.trim().is_empty())
            .or_else(|| std::fs::read_to_string(online).ok())
            .unwrap_or_default();
        let host = host.trim();
        let available = uint_list(host).unwrap_or_default();
        if !asked.iter().all(|n| available.contains(n)) {
            let nodes = if what == "cpus" {
                "CPUs"
            } else {
                "memory nodes"
            };
            return Err(format!(
                "Requested {nodes} are not available - requested {value}, available: {host}"
            ));
        }
    }
    Ok(())
}

/// A cpuset list (`0-3,7`) as Docker's ParseUintList reads it.
fn uint_list(s: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut out = std::collections::BTreeSet::new();
    if s.is_empty() {
        return Some(out);
    }
    for part in s.split(',') {
        match part.split_once('-') {
            None => {
                out.insert(part.parse().ok()?);
            }
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                out.extend(a..=b);
            }
        }
    }
    Some(out)
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
    /// Disable the OOM killer
    #[arg(long)]
    oom_kill_disable: bool,
    /// Tune the container's memory swappiness (0 to 100)
    #[arg(long, allow_hyphen_values = true)]
    memory_swappiness: Option<i64>,
    /// Block I/O weight of a device: PATH:WEIGHT
    #[arg(long, value_parser = config::weight_device)]
    blkio_weight_device: Vec<DeviceRate>,
    /// Limit the read rate from a device: PATH:RATE (b, k, m, g)
    #[arg(long, value_parser = config::bps_device)]
    device_read_bps: Vec<DeviceRate>,
    /// Limit the write rate to a device: PATH:RATE (b, k, m, g)
    #[arg(long, value_parser = config::bps_device)]
    device_write_bps: Vec<DeviceRate>,
    /// Limit the read rate from a device: PATH:IO-PER-SECOND
    #[arg(long, value_parser = config::iops_device)]
    device_read_iops: Vec<DeviceRate>,
    /// Limit the write rate to a device: PATH:IO-PER-SECOND
    #[arg(long, value_parser = config::iops_device)]
    device_write_iops: Vec<DeviceRate>,
    /// Cgroup namespace: host or private (the default)
    #[arg(long)]
    cgroupns: Option<String>,
    /// The cgroup the container's cgroup is made under
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// A rule for the devices cgroup: 'TYPE MAJOR:MINOR ACCESS' (c 1:3 mr)
    #[arg(long, value_parser = config::device_rule)]
    device_cgroup_rule: Vec<String>,
    /// Read labels from a file of key=value lines
    #[arg(long)]
    label_file: Vec<PathBuf>,
    /// Mount the volumes and binds of a container: NAME[:ro|rw]
    #[arg(long)]
    volumes_from: Vec<String>,
    /// Expose a port or a range of ports: PORT[-PORT][/tcp|udp]
    #[arg(long)]
    expose: Vec<String>,
    /// Skip image verification (berth verifies digests, not signatures)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    disable_content_trust: Option<bool>,
    /// Container isolation technology: default (the only one on Linux)
    #[arg(long)]
    isolation: Option<String>,
    /// Runtime: berth's own (runc-compatible; "runc" and "berth" name it)
    #[arg(long)]
    runtime: Option<String>,
    /// Not supported: GPUs
    #[arg(long)]
    gpus: Option<String>,
    /// Not supported: per-container storage options
    #[arg(long)]
    storage_opt: Vec<String>,
    /// Volume driver: local (the only one)
    #[arg(long)]
    volume_driver: Option<String>,
    /// Not supported: legacy links (containers on a user network reach each other by name)
    #[arg(long)]
    link: Vec<String>,
    /// Bind mount: /host/path:/container/path[:ro|rw|z|Z]
    #[arg(short, long)]
    volume: Vec<String>,
    /// Attach a filesystem mount: type=bind|volume|tmpfs,source=,target=[,readonly][,bind-*|volume-*|tmpfs-* options]
    #[arg(long, value_parser = mounts::parse_mount)]
    mount: Vec<berth_engine::config::Mount>,
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
    #[arg(long, allow_hyphen_values = true)]
    oom_score_adj: Option<i64>,
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
    /// Join a pod's shared namespaces (berth pod create)
    #[arg(long)]
    pod: Option<String>,
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
    /// Logging driver: json-file (the default), local or none
    #[arg(long)]
    log_driver: Option<String>,
    /// max-size= (default 20m; -1: unbounded), max-file= (default 5; 1 when max-size is given with json-file), compress= (local)
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
    /// Action once the container turns unhealthy: none, kill, restart, stop
    #[arg(long, value_name = "ACTION")]
    health_on_failure: Option<String>,
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

/// A size flag (`512m`, `1.5g`, `64MiB`: docker's binary units, see
/// berth_relay::size), refused in docker's client's words.
pub(crate) fn size_flag(flag: &str, s: &str) -> Result<u64> {
    berth_relay::size::ram_in_bytes(s)
        .map_err(|e| anyhow::anyhow!("invalid argument {s:?} for {flag:?} flag: {e}"))
}

/// A memory flag: a size the engine keeps as a signed count.
fn memory_flag(flag: &str, s: &str) -> Result<i64> {
    // The parser refuses what a signed 64-bit count cannot hold.
    size_flag(flag, s).map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

pub(crate) fn key_value(flag: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("invalid argument {s:?} for \"{flag}\": expected key=value"),
    }
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
        assert_eq!(memory_flag("-m, --memory", "512m").unwrap(), 512 << 20);
        assert_eq!(size_flag("--shm-size", "64MiB").unwrap(), 64 << 20);
        assert_eq!(
            memory_flag("-m, --memory", "lots").unwrap_err().to_string(),
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
        );
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
