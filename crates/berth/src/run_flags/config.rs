//! The container's config that `run` and `create`'s flags make (the image
//! fills the rest at create).

use anyhow::{bail, Context, Result};
use berth_engine::config::{
    ContainerConfig, Device, DeviceRate, LogConfig, LogDriver, Mount, RestartPolicy, Ulimit,
};

use super::mounts::parse_volume;
use super::{env_entry, key_value, parse_duration, size_flag, RunArgs, Stream};

/// A container's log when `--log-opt` sets no size: 20 MiB a file, five
/// files (Docker's `local` driver's bounds).
const DEFAULT_LOG_MAX_SIZE: u64 = 20 << 20;
const DEFAULT_LOG_MAX_FILE: u32 = 5;

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
        // docker's client: -a's streams (stdout and stderr without it),
        // stdin with -i; none with -d.
        attach_stdin: !a.detach && (a.interactive || a.attach.contains(&Stream::Stdin)),
        attach_stdout: !a.detach && (a.attach.is_empty() || a.attach.contains(&Stream::Stdout)),
        attach_stderr: !a.detach && (a.attach.is_empty() || a.attach.contains(&Stream::Stderr)),
        stdin_once: !a.detach && a.interactive,
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
        restart: restart_policy(a)?,
        init: a.init,
        // Docker's client takes any int; its daemon checks the range.
        oom_score_adj: a
            .oom_score_adj
            .map(|n| {
                i32::try_from(n)
                    .ok()
                    .filter(|n| (-1000..=1000).contains(n))
                    .ok_or_else(|| {
                        crate::FromDaemon::wrap(
                            anyhow::anyhow!(
                                "Invalid value {n}, range for oom score adj is [-1000, 1000]"
                            ),
                            true,
                        )
                    })
            })
            .transpose()?,
        pod: a.pod.clone().unwrap_or_default(),
        ..Default::default()
    };
    // docker's daemon: what a namespace shared with the host or another
    // container cannot take, in its words.
    let conflict = |what: &str| {
        Err(crate::FromDaemon::wrap(
            anyhow::anyhow!("conflicting options: {what}"),
            true,
        ))
    };
    if !cfg.working_dir.is_empty() && !cfg.working_dir.starts_with('/') {
        return Err(crate::FromDaemon::wrap(
            anyhow::anyhow!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                cfg.working_dir
            ),
            true,
        ));
    }
    if cfg.uts_mode == "host" && !cfg.hostname.is_empty() {
        return conflict("hostname and the UTS mode");
    }
    if cfg.network.starts_with("container:") {
        if !cfg.hostname.is_empty() {
            return conflict("hostname and the network mode");
        }
        if !cfg.dns.is_empty() {
            return conflict("dns and the network mode");
        }
        if !cfg.extra_hosts.is_empty() {
            return conflict("custom host-to-IP mapping and the network mode");
        }
    }
    if cfg.network == "host" && (!cfg.publish.is_empty() || cfg.publish_all) {
        eprintln!("WARNING: Published ports are discarded when using host network mode");
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
    cfg.env = env_files(&a.env_file)?;
    cfg.env.extend(a.env.iter().filter_map(|e| env_entry(e)));
    // A label file's lines first, so that --label overrides them; a line
    // without '=' means nothing there (docker's).
    for f in &a.label_file {
        for (k, v) in key_value_file(f)? {
            if let Some(v) = v {
                cfg.labels.insert(k, v);
            }
        }
    }
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        cfg.labels.insert(k.to_string(), v.to_string());
    }
    for v in &a.volume {
        cfg.mounts.push(parse_volume(v)?);
    }
    cfg.volumes_from.clone_from(&a.volumes_from);
    for e in &a.expose {
        for p in expose_ports(e)? {
            if !cfg.exposed_ports.contains(&p) {
                cfg.exposed_ports.push(p);
            }
        }
    }
    refuse_unsupported(a)?;
    cfg.mounts.extend(a.mount.iter().cloned());
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
            syntax: berth_engine::config::MountSyntax::Tmpfs,
            ..Default::default()
        });
    }
    cfg.resources = a.resources.resources()?;
    run_resources(a, &mut cfg)?;
    cfg.ulimits = ulimits(&a.ulimit)?;
    security_opts(&a.security_opt, &mut cfg)?;
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
        cfg.shm_size = size_flag("--shm-size", s)?;
    }
    for s in &a.sysctl {
        let (k, v) = key_value("--sysctl", s)?;
        cfg.sysctls.insert(k, v);
    }
    cfg.log = log_config(a.log_driver.as_deref(), &a.log_opt)?;
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
    if let Some(action) = &a.health_on_failure {
        cfg.health_on_failure =
            berth_engine::health::OnFailure::parse(action).ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid --health-on-failure {action:?}: must be none, kill, restart or stop"
                )
            })?;
    }
    Ok(cfg)
}

/// `--log-driver` and `--log-opt`s, checked as dockerd checks them.
/// Docker's json-file keeps everything unless told, and a container that
/// prints without end then fills the disk: berth bounds it by default as
/// Docker's `local` driver is (20m, 5 files); `max-size=-1` is unbounded.
fn log_config(driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
    let driver = match driver.unwrap_or("json-file") {
        "json-file" => LogDriver::JsonFile,
        "local" => LogDriver::Local,
        "none" => LogDriver::None,
        d @ ("syslog" | "journald" | "gelf" | "fluentd" | "awslogs" | "splunk" | "etwlogs"
        | "gcplogs" | "logentries") => bail!(
            "failed to initialize logging driver: berth has no {d} log driver (json-file, local and none)"
        ),
        d => {
            return Err(crate::FromDaemon::wrap(
                anyhow::anyhow!("error looking up logging plugin {d}: plugin \"{d}\" not found"),
                true,
            ))
        }
    };
    if driver == LogDriver::None && !opts.is_empty() {
        bail!("invalid logging opts for driver none");
    }
    let (mut max_size, mut max_file, mut given) = (None, None, std::collections::BTreeMap::new());
    for o in opts {
        let (k, v) = key_value("--log-opt", o)?;
        match (driver, k.as_str()) {
            (_, "max-size") if v == "-1" => max_size = Some(0),
            // json-file's sizes count in thousands (docker's
            // FromHumanSize: `3k` rotates at 3000 bytes); local's in
            // 1024s (RAMInBytes).
            (_, "max-size") => {
                let n = if driver == LogDriver::Local {
                    berth_relay::size::ram_in_bytes(&v)
                } else {
                    berth_relay::size::from_human_size(&v)
                };
                match n {
                    Ok(0) => bail!(
                        "failed to initialize logging driver: max-size must be a positive number"
                    ),
                    Ok(n) => max_size = Some(n),
                    Err(e) => bail!("failed to initialize logging driver: {e}"),
                }
            }
            (_, "max-file") => {
                max_file = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| anyhow::anyhow!("invalid --log-opt max-file={v}"))?,
                )
            }
            // Rotated files are kept whole: compression is accepted and
            // not done.
            (LogDriver::Local, "compress") => {}
            (LogDriver::Local, _) => {
                return Err(crate::FromDaemon::wrap(
                    anyhow::anyhow!("unknown log opt '{k}' for log driver local"),
                    true,
                ))
            }
            _ => bail!("unknown log opt {k:?} for the json-file log driver"),
        }
        given.insert(k, v);
    }
    let (max_size, max_file) = match (driver, max_size) {
        (LogDriver::None, _) => (0, 0),
        // With a size given, json-file keeps one file unless told.
        (LogDriver::JsonFile, Some(size)) => (size, max_file.unwrap_or(1)),
        (_, size) => (
            size.unwrap_or(DEFAULT_LOG_MAX_SIZE),
            max_file.unwrap_or(DEFAULT_LOG_MAX_FILE),
        ),
    };
    Ok(LogConfig {
        max_size,
        max_file,
        driver,
        opts: given,
    })
}

/// The lines of an env or label file as docker's client reads them:
/// leading blanks dropped, blank lines and `#` comments skipped, a key
/// with whitespace refused; the value is None for a line without '='.
fn key_value_file(path: &std::path::Path) -> Result<Vec<(String, Option<String>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (line, None),
        };
        if k.contains(char::is_whitespace) {
            bail!("poorly formatted environment: variable '{k}' contains whitespaces");
        }
        out.push((k.to_string(), v));
    }
    Ok(out)
}

/// The variables of `--env-file`s: a name alone takes its value from our
/// environment (or is dropped if unset), as docker's client does.
pub(crate) fn env_files(files: &[std::path::PathBuf]) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for f in files {
        for (k, v) in key_value_file(f)? {
            env.extend(match v {
                Some(v) => Some(format!("{k}={v}")),
                None => env_entry(&k),
            });
        }
    }
    Ok(env)
}

/// `--expose PORT[-PORT][/PROTO]`: each port as "80/tcp".
fn expose_ports(e: &str) -> Result<Vec<String>> {
    let (range, proto) = e.split_once('/').unwrap_or((e, "tcp"));
    let bad = |why: String| anyhow::anyhow!("invalid range format for --expose: {e}, error: {why}");
    let port = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| bad(format!("strconv.ParseUint: parsing {s:?}: invalid syntax")))
    };
    let (lo, hi) = match range.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => (port(range)?, port(range)?),
    };
    if hi < lo {
        return Err(bad(format!(
            "Invalid range specified for the Port: {range}"
        )));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Flags docker has that berth accepts only in the one form it can honour,
/// or refuses with what to do instead.
fn refuse_unsupported(a: &RunArgs) -> Result<()> {
    let daemon = |m: String| crate::FromDaemon::wrap(anyhow::Error::msg(m), true);
    crate::transfer::no_content_trust(a.disable_content_trust)?;
    match a.isolation.as_deref() {
        None | Some("" | "default") => {}
        Some(i) => {
            return Err(daemon(format!(
                "Invalid isolation: {i:?} - linux only supports 'default'"
            )))
        }
    }
    match a.runtime.as_deref() {
        None | Some("berth" | "runc") => {}
        Some(r) => return Err(daemon(format!("Unknown runtime specified {r}"))),
    }
    if a.gpus.is_some() {
        bail!("berth has no GPU support (--gpus)");
    }
    if !a.storage_opt.is_empty() {
        bail!("--storage-opt is not supported: berth's overlay storage has no per-container size limit");
    }
    match a.volume_driver.as_deref() {
        None | Some("" | "local") => {}
        Some(d) => bail!("berth has only the local volume driver, not {d:?}"),
    }
    if !a.link.is_empty() {
        bail!("--link is not supported: put the containers on a user network (berth network create), where they reach each other by name");
    }
    Ok(())
}

/// `--restart` in docker's order: its client reads `NAME[:COUNT]` and
/// refuses it with --rm; its daemon then judges the policy.
fn restart_policy(a: &RunArgs) -> Result<RestartPolicy> {
    let (name, count) = RestartPolicy::read(&a.restart).map_err(anyhow::Error::msg)?;
    if a.rm && !matches!(name, "" | "no") {
        bail!("Conflicting options: --restart and --rm");
    }
    RestartPolicy::judge(name, count)
        .map_err(|e| crate::FromDaemon::wrap(anyhow::Error::msg(e), true))
}

/// The cgroup flags of run and create that update does not have, checked
/// and warned of as docker's client and daemon do on this kind of host.
fn run_resources(a: &RunArgs, cfg: &mut ContainerConfig) -> Result<()> {
    let r = &mut cfg.resources;
    r.memory_swappiness = match a.memory_swappiness {
        None | Some(-1) => None,
        Some(n @ 0..=100) => u64::try_from(n).ok(),
        Some(n) => bail!("invalid value: {n}. Valid memory swappiness range is 0-100"),
    };
    r.oom_kill_disable = a.oom_kill_disable;
    if r.oom_kill_disable && r.memory.is_none() {
        eprintln!("WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit may be dangerous.");
        eprintln!("WARNING: OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.");
    }
    if r.kernel_memory.is_some() {
        eprintln!("WARNING: Specifying a kernel memory limit is deprecated and will be removed in a future release.");
    }
    r.blkio_weight_device.clone_from(&a.blkio_weight_device);
    r.device_read_bps.clone_from(&a.device_read_bps);
    r.device_write_bps.clone_from(&a.device_write_bps);
    r.device_read_iops.clone_from(&a.device_read_iops);
    r.device_write_iops.clone_from(&a.device_write_iops);
    // The daemon's checks: weights the host cannot apply are dropped with
    // its warnings; a weight it could apply must be in range.
    // (--blkio-weight itself: in ResourceArgs::resources, for update too.)
    if !host_has_blkio_weights() && !r.blkio_weight_device.is_empty() {
        r.blkio_weight_device.clear();
        eprintln!("WARNING: Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.");
    }
    cfg.cgroupns = match a.cgroupns.as_deref() {
        None => String::new(),
        Some(m @ ("host" | "private")) => m.to_string(),
        Some(_) => bail!("--cgroupns: invalid CGROUP mode"),
    };
    cfg.cgroup_parent = a.cgroup_parent.clone().unwrap_or_default();
    cfg.device_cgroup_rules.clone_from(&a.device_cgroup_rule);
    Ok(())
}

/// `PATH:VALUE` of the device flags, as docker's client checks it.
fn device_value(flag_value: &str) -> Result<(String, String), String> {
    let (path, value) = flag_value
        .split_once(':')
        .filter(|(_, v)| !v.contains(':'))
        .ok_or_else(|| format!("bad format: {flag_value}"))?;
    if !path.starts_with("/dev/") {
        return Err(format!("bad format for device path: {flag_value}"));
    }
    Ok((path.to_string(), value.to_string()))
}

/// `--blkio-weight-device PATH:WEIGHT` (10 to 1000, or 0).
pub(crate) fn weight_device(s: &str) -> Result<DeviceRate, String> {
    let (path, v) = device_value(s)?;
    let rate = v
        .parse::<u16>()
        .ok()
        .filter(|n| *n == 0 || (10..=1000).contains(n))
        .ok_or_else(|| format!("invalid weight for device: {s}"))?;
    Ok(DeviceRate {
        path,
        rate: u64::from(rate),
    })
}

/// `--device-read-bps PATH:RATE` and `--device-write-bps`.
pub(crate) fn bps_device(s: &str) -> Result<DeviceRate, String> {
    let (path, v) = device_value(s)?;
    let rate = berth_relay::size::ram_in_bytes(&v).map_err(|_| {
        format!("invalid rate for device: {s}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb")
    })?;
    Ok(DeviceRate { path, rate })
}

/// `--device-read-iops PATH:N` and `--device-write-iops`.
pub(crate) fn iops_device(s: &str) -> Result<DeviceRate, String> {
    let (path, v) = device_value(s)?;
    let rate = v.parse::<u64>().map_err(|_| {
        format!("invalid rate for device: {s}. The correct format is <device-path>:<number>. Number must be a positive integer")
    })?;
    Ok(DeviceRate { path, rate })
}

/// `--device-cgroup-rule`, checked as docker's client does.
pub(crate) fn device_rule(s: &str) -> Result<String, String> {
    if valid_device_rule(s) {
        Ok(s.to_string())
    } else {
        Err(format!("invalid device cgroup format '{s}'"))
    }
}

/// Whether this host's blkio (v1) or io (v2) controller has weights: they
/// need the BFQ or CFQ I/O scheduler, which many VMs lack.
pub(crate) fn host_has_blkio_weights() -> bool {
    [
        "/sys/fs/cgroup/blkio/blkio.weight",
        "/sys/fs/cgroup/blkio/blkio.bfq.weight",
        "/sys/fs/cgroup/io.bfq.weight",
        "/sys/fs/cgroup/io.weight",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

/// Docker's form of a device cgroup rule: `TYPE MAJOR:MINOR ACCESS`, the
/// type one of a, b, c; major and minor numbers or `*`; access of r, w, m.
fn valid_device_rule(rule: &str) -> bool {
    let parts: Vec<&str> = rule.split(' ').collect();
    let number = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    match parts.as_slice() {
        [kind, nums, access] => {
            matches!(*kind, "a" | "b" | "c")
                && nums
                    .split_once(':')
                    .is_some_and(|(maj, min)| number(maj) && number(min))
                && (1..=3).contains(&access.len())
                && access.bytes().all(|b| matches!(b, b'r' | b'w' | b'm'))
        }
        _ => false,
    }
}

/// `--ulimit NAME=SOFT[:HARD]`s (run, create, build).
pub(crate) fn ulimits(list: &[String]) -> Result<Vec<Ulimit>> {
    list.iter()
        .map(|u| {
            let (name, v) = u
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid ulimit {u:?}: name=soft[:hard]"))?;
            let (soft, hard) = v.split_once(':').unwrap_or((v, v));
            let n = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| anyhow::anyhow!("invalid ulimit {u:?}: {s:?} is not a number"))
            };
            Ok(Ulimit {
                name: name.to_string(),
                soft: n(soft)?,
                hard: n(hard)?,
            })
        })
        .collect()
}

/// Valid JSON without the whitespace between its tokens, its keys in the
/// order written (Go's json.Compact).
fn json_compact(text: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(text.len()), false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// `--security-opt`s (run, create, build): seccomp and no-new-privileges
/// into `cfg`.
pub(crate) fn security_opts(list: &[String], cfg: &mut ContainerConfig) -> Result<()> {
    for s in list {
        let (k, v) = s.split_once(['=', ':']).unwrap_or((s.as_str(), ""));
        cfg.security_opt.push(match k {
            // docker's client sends the profile's content, compacted.
            "seccomp" if v != "unconfined" => std::fs::read_to_string(v)
                .ok()
                .filter(|t| serde_json::from_str::<serde_json::Value>(t).is_ok())
                .map_or_else(|| s.clone(), |t| format!("seccomp={}", json_compact(&t))),
            _ => s.clone(),
        });
        match k {
            "seccomp" => cfg.seccomp = v.to_string(),
            "no-new-privileges" => cfg.no_new_privileges = v.is_empty() || v == "true",
            // No LSM is applied by berth yet: accepted as docker accepts them
            // on hosts without AppArmor or SELinux.
            "apparmor" | "label" => {}
            _ => bail!("invalid --security-opt {s:?}"),
        }
    }
    Ok(())
}
