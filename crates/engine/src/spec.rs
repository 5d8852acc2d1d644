//! A container's OCI runtime spec, made from its config the way Docker makes
//! one: Docker's default capabilities, masked and read-only paths, seccomp
//! profile and device rules, plus what the user asked for.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{self as oci, Spec};

use crate::config::ContainerConfig;
use crate::error::{Error, Result};

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The PATH a container gets when its image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths of the container that the spec refers to.
#[derive(Debug)]
pub struct Paths<'a> {
    /// Where the rootfs is mounted for the container (the spec's root).
    pub rootfs: &'a Path,
    /// Where we can read it now (`/proc/self/fd/N` of a detached mount, or
    /// the mount point): the image's user database is looked up there.
    pub lookup: &'a Path,
    /// The container's directory (hostname, hosts, resolv.conf live there).
    pub dir: &'a Path,
}

/// Namespace paths of other containers for `--pid/--ipc/--uts container:X`
/// (resolved by the caller to `/proc/<pid>/ns/<type>`).
#[derive(Debug, Default)]
pub struct Joins {
    /// The user namespace of the container whose other namespaces it
    /// joins (it has no rights in them from one of its own).
    pub user: Option<String>,
    pub pid: Option<String>,
    pub ipc: Option<String>,
    pub uts: Option<String>,
    /// `--network container:X`.
    pub net: Option<String>,
}

/// Normalises a capability name: `net_admin` → `CAP_NET_ADMIN`.
pub fn cap_name(s: &str) -> String {
    let up = s.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capabilities the container's process gets.
pub fn capabilities(cfg: &ContainerConfig) -> Result<Vec<String>> {
    if cfg.privileged {
        return Ok(caps_held());
    }
    let known = caps_all();
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| (*s).to_string()).collect();
    for d in &cfg.cap_drop {
        if d.eq_ignore_ascii_case("all") {
            caps.clear();
            continue;
        }
        let n = cap_name(d);
        if !known.contains(&n) {
            return Err(Error::InvalidOption(format!(
                "invalid CapDrop: unknown capability: {:?}",
                cap_name(d)
            )));
        }
        caps.retain(|c| *c != n);
    }
    for a in &cfg.cap_add {
        if a.eq_ignore_ascii_case("all") {
            return Ok(caps_held());
        }
        let n = cap_name(a);
        if !known.contains(&n) {
            return Err(Error::InvalidOption(format!(
                "invalid CapAdd: unknown capability: {:?}",
                cap_name(a)
            )));
        }
        if !caps.contains(&n) {
            caps.push(n);
        }
    }
    Ok(caps)
}

/// "All" capabilities (`--privileged`, `--cap-add ALL`): those berth
/// itself may hand on (its bounding set), as podman gives. A host whose
/// root lacks one (here CAP_SYS_RESOURCE) still runs privileged
/// containers; the runtime refuses a capability it does not hold.
fn caps_held() -> Vec<String> {
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_default();
    caps_all()
        .into_iter()
        .filter(|c| {
            c.parse::<caps::Capability>()
                .map_or(true, |cap| bounding.contains(&cap))
        })
        .collect()
}

fn caps_all() -> Vec<String> {
    caps_list()
        .into_iter()
        .map(|c| format!("CAP_{}", c.to_ascii_uppercase()))
        .collect()
}

fn caps_list() -> Vec<&'static str> {
    vec![
        "chown",
        "dac_override",
        "dac_read_search",
        "fowner",
        "fsetid",
        "kill",
        "setgid",
        "setuid",
        "setpcap",
        "linux_immutable",
        "net_bind_service",
        "net_broadcast",
        "net_admin",
        "net_raw",
        "ipc_lock",
        "ipc_owner",
        "sys_module",
        "sys_rawio",
        "sys_chroot",
        "sys_ptrace",
        "sys_pacct",
        "sys_admin",
        "sys_boot",
        "sys_nice",
        "sys_resource",
        "sys_time",
        "sys_tty_config",
        "mknod",
        "lease",
        "audit_write",
        "audit_control",
        "setfcap",
        "mac_override",
        "mac_admin",
        "syslog",
        "wake_alarm",
        "block_suspend",
        "audit_read",
        "perfmon",
        "bpf",
        "checkpoint_restore",
    ]
}

/// The user the process runs as: `uid`, `uid:gid`, `name`, `name:group`,
/// resolved in the container's /etc/passwd and /etc/group.
pub use saferoot::userdb::User;

/// Resolves `spec` (docker's `-u`) and `group_add` (`--group-add`)
/// against the rootfs's user database.
pub fn resolve_user(rootfs: &Path, spec: &str, group_add: &[String]) -> Result<User> {
    let root: OwnedFd = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(|fd| {
        // SAFETY: open returned a new descriptor that nothing else owns.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    })
    .map_err(|e| Error::Rootfs(format!("open rootfs {}: {e}", rootfs.display())))?;
    // An unreadable file is as good as none: Docker's rules then apply to
    // numeric ids only.
    let read = |p| saferoot::userdb::read_in_root(&root, p).ok().flatten();
    let passwd = read("/etc/passwd").unwrap_or_default();
    let group = read("/etc/group").unwrap_or_default();
    parse_user(spec, group_add, &passwd, &group)
}

/// The pure part of [`resolve_user`]: Docker's rules, kept once in
/// [`saferoot::userdb::resolve_user`].
pub fn parse_user(spec: &str, group_add: &[String], passwd: &str, group: &str) -> Result<User> {
    saferoot::userdb::resolve_user(spec, group_add, passwd, group)
        .map_err(|e| Error::NoSuchUser(e.to_string()))
}

/// The process environment: PATH first if the image has none, HOSTNAME,
/// TERM for a terminal, HOME for the user, then the config's variables.
fn environment(cfg: &ContainerConfig, user: &User) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let has = |k: &str| cfg.env.iter().any(|e| e.split('=').next() == Some(k));
    if !has("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.push(format!("HOSTNAME={}", cfg.hostname));
    if cfg.tty && !has("TERM") {
        env.push("TERM=xterm".into());
    }
    if !has("HOME") {
        env.push(format!("HOME={}", user.home));
    }
    env.extend(cfg.env.iter().cloned());
    env
}

fn rlimit_name(n: &str) -> Result<String> {
    let known = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    if known.contains(&n) {
        Ok(format!("RLIMIT_{}", n.to_ascii_uppercase()))
    } else {
        Err(Error::InvalidOption(format!("invalid ulimit type: {n}")))
    }
}

/// Docker's device cgroup rules: nothing but the usual character devices.
fn default_device_rules() -> Result<Vec<oci::LinuxDeviceCgroup>> {
    let c = Some(oci::LinuxDeviceType::C);
    let mut rules = vec![
        device_rule(false, None, None, None, "rwm")?,
        // mknod of any node is allowed; using one needs a rule below.
        device_rule(true, c, None, None, "m")?,
        device_rule(true, Some(oci::LinuxDeviceType::B), None, None, "m")?,
    ];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        rules.push(device_rule(true, c, Some(major), Some(minor), "rwm")?);
    }
    rules.push(device_rule(true, c, Some(136), None, "rwm")?);
    Ok(rules)
}

/// One device cgroup rule; what is `None` matches any.
fn device_rule(
    allow: bool,
    typ: Option<oci::LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<oci::LinuxDeviceCgroup> {
    let mut rule = oci::LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access)
        .build()
        .map_err(built("device rule"))?;
    rule.set_typ(typ);
    rule.set_major(major);
    rule.set_minor(minor);
    Ok(rule)
}

/// Maps an oci-spec builder's error into ours, naming what was built.
fn built(what: &'static str) -> impl Fn(oci_spec::OciSpecError) -> Error {
    move |source| Error::SpecBuild { what, source }
}

/// The container's limits in the OCI form (`linux.resources`, devices
/// aside).
pub fn resources(cfg: &ContainerConfig) -> Result<oci::LinuxResources> {
    let r = &cfg.resources;
    let mut out = oci::LinuxResources::default();
    let mut memory = oci::LinuxMemory::default();
    if let Some(m) = r.memory {
        memory.set_limit(Some(m));
        // Docker: no --memory-swap means twice the memory.
        memory.set_swap(Some(r.memory_swap.unwrap_or(m * 2)));
    } else if let Some(s) = r.memory_swap {
        memory.set_swap(Some(s));
    }
    if let Some(m) = r.memory_reservation {
        memory.set_reservation(Some(m));
    }
    memory.set_swappiness(r.memory_swappiness);
    if r.oom_kill_disable {
        memory.set_disable_oom_killer(Some(true));
    }
    if memory != oci::LinuxMemory::default() {
        out.set_memory(Some(memory));
    }
    let mut cpu = oci::LinuxCpu::default();
    if let Some(n) = r.nano_cpus {
        cpu.set_period(Some(100_000));
        cpu.set_quota(Some(n / 10_000));
    }
    if let Some(q) = r.cpu_quota {
        cpu.set_quota(Some(q));
    }
    if let Some(p) = r.cpu_period {
        cpu.set_period(Some(p));
    }
    if let Some(s) = r.cpu_shares {
        cpu.set_shares(Some(s));
    }
    if let Some(c) = &r.cpuset_cpus {
        cpu.set_cpus(Some(c.clone()));
    }
    if let Some(m) = &r.cpuset_mems {
        cpu.set_mems(Some(m.clone()));
    }
    if let Some(p) = r.cpu_rt_period {
        cpu.set_realtime_period(u64::try_from(p).ok());
    }
    cpu.set_realtime_runtime(r.cpu_rt_runtime);
    if cpu != oci::LinuxCpu::default() {
        out.set_cpu(Some(cpu));
    }
    if let Some(io) = block_io(r)? {
        out.set_block_io(Some(io));
    }
    if let Some(p) = r.pids_limit {
        let pids = oci::LinuxPidsBuilder::default()
            .limit(p)
            .build()
            .map_err(built("pids limit"))?;
        out.set_pids(Some(pids));
    }
    Ok(out)
}

/// `--blkio-weight` and the devices' weights and throttles, the devices
/// by their host numbers.
fn block_io(r: &crate::config::Resources) -> Result<Option<oci::LinuxBlockIo>> {
    let numbers = |path: &str| -> Result<(i64, i64)> {
        let (_, major, minor, _) = host_device(path)?;
        let n = |v: u64| {
            i64::try_from(v)
                .map_err(|_| Error::Device(format!("{path}: device number out of range")))
        };
        Ok((n(major)?, n(minor)?))
    };
    let throttles =
        |list: &[crate::config::DeviceRate]| -> Result<Option<Vec<oci::LinuxThrottleDevice>>> {
            if list.is_empty() {
                return Ok(None);
            }
            list.iter()
                .map(|d| {
                    let (major, minor) = numbers(&d.path)?;
                    oci::LinuxThrottleDeviceBuilder::default()
                        .major(major)
                        .minor(minor)
                        .rate(d.rate)
                        .build()
                        .map_err(built("device throttle"))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some)
        };
    let mut io = oci::LinuxBlockIo::default();
    io.set_weight(r.blkio_weight);
    if !r.blkio_weight_device.is_empty() {
        let weights = r
            .blkio_weight_device
            .iter()
            .map(|d| {
                let (major, minor) = numbers(&d.path)?;
                oci::LinuxWeightDeviceBuilder::default()
                    .major(major)
                    .minor(minor)
                    .weight(u16::try_from(d.rate).unwrap_or(u16::MAX))
                    .build()
                    .map_err(built("device weight"))
            })
            .collect::<Result<Vec<_>>>()?;
        io.set_weight_device(Some(weights));
    }
    io.set_throttle_read_bps_device(throttles(&r.device_read_bps)?);
    io.set_throttle_write_bps_device(throttles(&r.device_write_bps)?);
    io.set_throttle_read_iops_device(throttles(&r.device_read_iops)?);
    io.set_throttle_write_iops_device(throttles(&r.device_write_iops)?);
    Ok((io != oci::LinuxBlockIo::default()).then_some(io))
}

/// The container's cgroup: under berth's own, or under `--cgroup-parent`
/// as docker makes it (`mygrp` and `/mygrp` both give `/mygrp/<id>`).
pub fn cgroups_path(cfg: &ContainerConfig, id: &str) -> String {
    match cfg.cgroup_parent.trim_matches('/') {
        "" => format!("/berth/{id}"),
        parent => format!("/{parent}/{id}"),
    }
}

/// A `--device-cgroup-rule` ("c 1:3 mr", checked by the CLI) as an allow
/// rule.
fn cgroup_rule(rule: &str) -> Result<oci::LinuxDeviceCgroup> {
    let bad = || Error::InvalidOption(format!("invalid device cgroup format '{rule}'"));
    let mut parts = rule.split(' ');
    let (Some(kind), Some(nums), Some(access), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let typ = match kind {
        "a" => None,
        "b" => Some(oci::LinuxDeviceType::B),
        "c" => Some(oci::LinuxDeviceType::C),
        _ => return Err(bad()),
    };
    let (major, minor) = nums.split_once(':').ok_or_else(bad)?;
    let number = |s: &str| -> Result<Option<i64>> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| bad())
        }
    };
    device_rule(true, typ, number(major)?, number(minor)?, access)
}

/// A mount of the spec.
fn mount<S: AsRef<str>>(
    destination: impl Into<PathBuf>,
    typ: &str,
    source: impl Into<PathBuf>,
    options: &[S],
) -> Result<oci::Mount> {
    oci::MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(
            options
                .iter()
                .map(|o| o.as_ref().to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(built("mount"))
}

/// A namespace of the spec: made afresh, or joined at `path`.
fn namespace(typ: oci::LinuxNamespaceType, path: Option<&str>) -> Result<oci::LinuxNamespace> {
    let mut ns = oci::LinuxNamespaceBuilder::default()
        .typ(typ)
        .build()
        .map_err(built("namespace"))?;
    ns.set_path(path.map(PathBuf::from));
    Ok(ns)
}

/// A capability by its name (`CAP_CHOWN`), as oci-spec knows it.
fn capability(name: &str) -> Result<oci::Capability> {
    name.strip_prefix("CAP_")
        .unwrap_or(name)
        .parse()
        .map_err(|_| Error::InvalidOption(format!("unknown capability: {name:?}")))
}

/// The container's process: its command, user, environment, capabilities
/// and limits.
fn process(cfg: &ContainerConfig, user: &User, caps: &[String]) -> Result<oci::Process> {
    let mut rlimits = Vec::new();
    for u in &cfg.ulimits {
        let name = rlimit_name(&u.name)?;
        let typ: oci::PosixRlimitType = name
            .parse()
            .map_err(|_| Error::InvalidOption(format!("invalid ulimit type: {}", u.name)))?;
        let limit = oci::PosixRlimitBuilder::default()
            .typ(typ)
            .soft(u.soft)
            .hard(u.hard)
            .build()
            .map_err(built("rlimit"))?;
        rlimits.push(limit);
    }
    let mut args = cfg.args.clone();
    if cfg.init {
        args.splice(0..0, [crate::init::PATH.to_string(), "--".to_string()]);
    }
    let set: oci::Capabilities = caps.iter().map(|c| capability(c)).collect::<Result<_>>()?;
    // Every field set, here and below: the types' defaults are youki's
    // idea of a container (`sh`, TERM=xterm, a nofile limit, three
    // capabilities in every set), not an empty one. The inheritable and
    // ambient sets stay empty, as Docker leaves them.
    let mut capabilities = oci::LinuxCapabilities::default();
    capabilities.set_bounding(Some(set.clone()));
    capabilities.set_effective(Some(set.clone()));
    capabilities.set_permitted(Some(set));
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);
    let oci_user = oci::UserBuilder::default()
        .uid(user.uid)
        .gid(user.gid)
        .additional_gids(user.additional_gids.clone())
        .build()
        .map_err(built("user"))?;
    let mut p = oci::Process::default();
    p.set_terminal(Some(cfg.tty));
    p.set_console_size(None);
    p.set_user(oci_user);
    p.set_args(Some(args));
    p.set_command_line(None);
    p.set_env(Some(environment(cfg, user)));
    p.set_cwd(if cfg.working_dir.is_empty() {
        PathBuf::from("/")
    } else {
        PathBuf::from(&cfg.working_dir)
    });
    p.set_capabilities(Some(capabilities));
    p.set_rlimits(Some(rlimits));
    p.set_no_new_privileges(Some(cfg.no_new_privileges));
    p.set_apparmor_profile(None);
    p.set_oom_score_adj(cfg.oom_score_adj);
    p.set_selinux_label(None);
    p.set_io_priority(None);
    p.set_scheduler(None);
    p.set_exec_cpu_affinity(None);
    Ok(p)
}

/// The container's mounts: the kernel's file systems first, then the
/// engine's files, --init, volumes and binds, parents first.
fn mounts(cfg: &ContainerConfig, paths: &Paths<'_>) -> Result<Vec<oci::Mount>> {
    let shm = if cfg.shm_size == 0 {
        64 << 20
    } else {
        cfg.shm_size
    };
    let rw_if_privileged = if cfg.privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", rw_if_privileged],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", rw_if_privileged],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    // `--ipc none`: a namespace of its own and no /dev/shm (Docker's).
    if cfg.ipc_mode != "host" && cfg.ipc_mode != "none" && !cfg.ipc_mode.starts_with("container:") {
        let size = format!("size={shm}");
        mounts.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", size.as_str()],
        )?);
    }
    // The kernel filesystems above come first; what follows (the engine's
    // files, --init, volumes and binds) is ordered parents first, as Docker
    // does: a `VOLUME /etc` must not cover the engine's /etc/hosts.
    let defaults = mounts.len();
    for (file, dest) in [
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        let src = paths.dir.join(file);
        if src.exists() {
            let mut opts = vec!["rbind", "rprivate", if cfg.read_only { "ro" } else { "rw" }];
            if cfg.id_map.is_some() {
                opts.push("idmap");
            }
            mounts.push(mount(dest, "bind", src, &opts)?);
        }
    }
    if cfg.init {
        // Our own (static) binary, read-only: the container cannot change it.
        let exe = berth_runtime::exe::original_path()
            .map_err(|e| Error::InitBinary(format!("--init: find berth's binary: {e}")))?;
        if crate::init::needs_loader(&exe)
            .map_err(|e| Error::InitBinary(format!("--init: read {}: {e}", exe.display())))?
        {
            return Err(Error::InitBinary(format!(
                "--init needs a static berth (scripts/build-release.sh); {} is dynamically linked",
                exe.display()
            )));
        }
        mounts.push(mount(
            crate::init::PATH,
            "bind",
            exe,
            &["bind", "ro", "nosuid", "nodev", "rprivate"],
        )?);
    }
    for m in &cfg.mounts {
        match m.kind.as_str() {
            "tmpfs" => {
                let mut opts = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "noexec".to_string(),
                ];
                opts.extend(m.options.iter().cloned());
                mounts.push(mount(&m.destination, "tmpfs", "tmpfs", &opts)?);
            }
            _ => {
                let mut opts = vec![
                    // bind-nonrecursive: the directory without the mounts below it.
                    if m.nonrecursive { "bind" } else { "rbind" }.to_string(),
                    if m.read_only { "ro" } else { "rw" }.to_string(),
                ];
                opts.extend(m.options.iter().cloned());
                if !opts.iter().any(|o| {
                    o.ends_with("private") || o.ends_with("shared") || o.ends_with("slave")
                }) {
                    opts.push("rprivate".into());
                }
                // Seen through the container's mapping: the host's root is
                // its root, and what its root writes is the host root's
                // (as Docker users expect of a volume or a bind).
                if cfg.id_map.is_some() {
                    opts.push("idmap".into());
                }
                mounts.push(mount(&m.destination, "bind", &m.source, &opts)?);
            }
        }
    }
    mounts[defaults..].sort_by_key(|m| m.destination().components().count());
    Ok(mounts)
}

/// The namespaces the container gets or joins.
fn namespaces(cfg: &ContainerConfig, joins: &Joins) -> Result<Vec<oci::LinuxNamespace>> {
    use oci::LinuxNamespaceType as T;
    let mut out = vec![namespace(T::Mount, None)?];
    for (typ, mode, join) in [
        (T::Pid, &cfg.pid_mode, &joins.pid),
        (T::Ipc, &cfg.ipc_mode, &joins.ipc),
        (T::Uts, &cfg.uts_mode, &joins.uts),
        (T::Network, &cfg.network, &joins.net),
    ] {
        if mode != "host" {
            out.push(namespace(typ, join.as_deref())?);
        }
    }
    if cfg.cgroupns != "host" {
        out.push(namespace(T::Cgroup, None)?);
    }
    if let Some(path) = &joins.user {
        out.push(namespace(T::User, Some(path))?);
    } else if cfg.id_map.is_some() {
        out.push(namespace(T::User, None)?);
    }
    Ok(out)
}

/// The `linux` section: namespaces, cgroups, devices, id mappings, and
/// (unprivileged) masked paths and seccomp.
fn linux(cfg: &ContainerConfig, id: &str, joins: &Joins, caps: &[String]) -> Result<oci::Linux> {
    let mut resources = resources(cfg)?;
    let mut device_rules = if cfg.privileged {
        vec![device_rule(true, None, None, None, "rwm")?]
    } else {
        default_device_rules()?
    };
    let mut devices = Vec::new();
    for d in &cfg.devices {
        let (typ, major, minor, mode) = host_device(&d.host)?;
        let major = i64::try_from(major)
            .map_err(|_| Error::Device(format!("{}: device major out of range", d.host)))?;
        let minor = i64::try_from(minor)
            .map_err(|_| Error::Device(format!("{}: device minor out of range", d.host)))?;
        let device = oci::LinuxDeviceBuilder::default()
            .path(&d.container)
            .typ(typ)
            .major(major)
            .minor(minor)
            .file_mode(mode)
            .uid(0u32)
            .gid(0u32)
            .build()
            .map_err(built("device"))?;
        devices.push(device);
        device_rules.push(device_rule(
            true,
            Some(typ),
            Some(major),
            Some(minor),
            &d.permissions,
        )?);
    }
    for rule in &cfg.device_cgroup_rules {
        device_rules.push(cgroup_rule(rule)?);
    }
    resources.set_devices(Some(device_rules));
    let mut linux = oci::Linux::default();
    linux.set_net_devices(None);
    linux.set_namespaces(Some(namespaces(cfg, joins)?));
    linux.set_resources(Some(resources));
    linux.set_cgroups_path(Some(PathBuf::from(cgroups_path(cfg, id))));
    linux.set_devices(Some(devices));
    linux.set_sysctl(Some(cfg.sysctls.clone().into_iter().collect()));
    let (uids, gids) = match (&cfg.id_map, &joins.user) {
        (Some(m), None) => {
            let map = |host| {
                oci::LinuxIdMappingBuilder::default()
                    .container_id(0u32)
                    .host_id(host)
                    .size(m.size)
                    .build()
                    .map_err(built("id mapping"))
            };
            (Some(vec![map(m.uid)?]), Some(vec![map(m.gid)?]))
        }
        _ => (None, None),
    };
    linux.set_uid_mappings(uids);
    linux.set_gid_mappings(gids);
    linux.set_rootfs_propagation(None);
    linux.set_mount_label(None);
    linux.set_intel_rdt(None);
    linux.set_memory_policy(None);
    linux.set_personality(None);
    linux.set_time_offsets(None);
    let strings = |l: &[&str]| l.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let (masked, readonly, seccomp) = if cfg.privileged {
        (None, None, None)
    } else {
        let seccomp = match cfg.seccomp.as_str() {
            "" => Some(berth_runtime::seccomp::profile::default_for(caps)?),
            "unconfined" => None,
            file => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    Error::InvalidOption(format!("opening seccomp profile ({file}) failed: {e}"))
                })?;
                Some(berth_runtime::seccomp::profile::resolve(&text, caps)?)
            }
        };
        (
            Some(strings(berth_runtime::template::MASKED_PATHS)),
            Some(strings(berth_runtime::template::READONLY_PATHS)),
            seccomp,
        )
    };
    linux.set_masked_paths(masked);
    linux.set_readonly_paths(readonly);
    linux.set_seccomp(seccomp);
    Ok(linux)
}

/// Builds the OCI spec of the container, typed: the launcher hands it to
/// the runtime in memory.
pub fn build(cfg: &ContainerConfig, id: &str, paths: &Paths<'_>, joins: &Joins) -> Result<Spec> {
    if cfg.args.is_empty() {
        return Err(Error::InvalidOption(
            "no command specified: the image has no CMD or ENTRYPOINT".into(),
        ));
    }
    let user = resolve_user(paths.lookup, &cfg.user, &cfg.group_add)?;
    let caps = capabilities(cfg)?;
    let process = process(cfg, &user, &caps)?;
    let mounts = mounts(cfg, paths)?;
    let linux = linux(cfg, id, joins, &caps)?;
    let root = oci::RootBuilder::default()
        .path(paths.rootfs)
        .readonly(cfg.read_only)
        .build()
        .map_err(built("root"))?;
    // Every field set: `Spec::default()` is youki's example container.
    let mut spec = Spec::default();
    spec.set_version(berth_runtime::OCI_VERSION.to_string());
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts));
    spec.set_process(Some(process));
    spec.set_hostname(Some(cfg.hostname.clone()));
    spec.set_domainname(Some(cfg.domainname.clone()));
    spec.set_hooks(None);
    // A signal sent to a pid-namespace init that has no handler yet is
    // dropped: one `stop` sends in the moment between exec and
    // berth-init's signalfd would be lost. Blocked, it waits for it.
    spec.set_annotations(cfg.init.then(|| {
        [(
            berth_runtime::EXEC_SIGNALS_BLOCKED.to_string(),
            "true".to_string(),
        )]
        .into()
    }));
    spec.set_linux(Some(linux));
    spec.set_solaris(None);
    spec.set_windows(None);
    spec.set_vm(None);
    spec.set_zos(None);
    spec.set_uid_mappings(None);
    spec.set_gid_mappings(None);
    Ok(spec)
}

/// Type, major, minor and mode of a host device node.
fn host_device(path: &str) -> Result<(oci::LinuxDeviceType, u64, u64, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path).map_err(|e| {
        Error::Device(format!(
            "error gathering device information while adding custom device {path:?}: {e}"
        ))
    })?;
    let typ = if m.file_type().is_char_device() {
        oci::LinuxDeviceType::C
    } else if m.file_type().is_block_device() {
        oci::LinuxDeviceType::B
    } else {
        return Err(Error::Device(format!("{path} is not a device node")));
    };
    let rdev = m.rdev();
    Ok((
        typ,
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev),
        m.mode() & 0o777,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Docker's device cgroup rules: nothing but the usual character devices.
    fn reference_device_rules() -> Vec<Value> {
        let mut rules = vec![
            json!({"allow": false, "access": "rwm"}),
            // mknod of any node is allowed; using one needs a rule below.
            json!({"allow": true, "type": "c", "access": "m"}),
            json!({"allow": true, "type": "b", "access": "m"}),
        ];
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
            (10, 200),
        ] {
            rules.push(
                json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}),
            );
        }
        rules.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
        rules
    }

    /// The container's limits in the OCI form (`linux.resources`, devices
    /// aside).
    fn reference_resources(cfg: &ContainerConfig) -> Value {
        let mut resources = json!({});
        let r = &cfg.resources;
        let mut memory = serde_json::Map::new();
        if let Some(m) = r.memory {
            memory.insert("limit".into(), json!(m));
            // Docker: no --memory-swap means twice the memory.
            let swap = r.memory_swap.unwrap_or(m * 2);
            memory.insert("swap".into(), json!(swap));
        } else if let Some(s) = r.memory_swap {
            memory.insert("swap".into(), json!(s));
        }
        if let Some(m) = r.memory_reservation {
            memory.insert("reservation".into(), json!(m));
        }
        if !memory.is_empty() {
            resources["memory"] = Value::Object(memory);
        }
        let mut cpu = serde_json::Map::new();
        if let Some(n) = r.nano_cpus {
            cpu.insert("period".into(), json!(100_000));
            cpu.insert("quota".into(), json!(n / 10_000));
        }
        if let Some(q) = r.cpu_quota {
            cpu.insert("quota".into(), json!(q));
        }
        if let Some(p) = r.cpu_period {
            cpu.insert("period".into(), json!(p));
        }
        if let Some(s) = r.cpu_shares {
            cpu.insert("shares".into(), json!(s));
        }
        if let Some(c) = &r.cpuset_cpus {
            cpu.insert("cpus".into(), json!(c));
        }
        if let Some(m) = &r.cpuset_mems {
            cpu.insert("mems".into(), json!(m));
        }
        if !cpu.is_empty() {
            resources["cpu"] = Value::Object(cpu);
        }
        if let Some(p) = r.pids_limit {
            resources["pids"] = json!({"limit": p});
        }
        resources
    }

    /// The spec as it was assembled before it was typed: through JSON.
    fn reference_build(
        cfg: &ContainerConfig,
        id: &str,
        paths: &Paths<'_>,
        joins: &Joins,
    ) -> Result<Spec> {
        if cfg.args.is_empty() {
            return Err(Error::InvalidOption(
                "no command specified: the image has no CMD or ENTRYPOINT".into(),
            ));
        }
        let user = resolve_user(paths.lookup, &cfg.user, &cfg.group_add)?;
        let caps = capabilities(cfg)?;
        let mut rlimits = Vec::new();
        for u in &cfg.ulimits {
            rlimits.push(json!({"type": rlimit_name(&u.name)?, "soft": u.soft, "hard": u.hard}));
        }
        let mut args = cfg.args.clone();
        if cfg.init {
            args.splice(0..0, [crate::init::PATH.to_string(), "--".to_string()]);
        }
        let mut process = json!({
            "terminal": cfg.tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args,
            "env": environment(cfg, &user),
            "cwd": if cfg.working_dir.is_empty() { "/" } else { cfg.working_dir.as_str() },
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "rlimits": rlimits,
            "noNewPrivileges": cfg.no_new_privileges,
        });
        if let Some(adj) = cfg.oom_score_adj {
            process["oomScoreAdj"] = json!(adj);
        }

        let shm = if cfg.shm_size == 0 {
            64 << 20
        } else {
            cfg.shm_size
        };
        let mut mounts = vec![
            json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if cfg.privileged { "rw" } else { "ro" }]}),
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if cfg.privileged { "rw" } else { "ro" }]}),
            json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        ];
        // `--ipc none`: a namespace of its own and no /dev/shm (Docker's).
        if cfg.ipc_mode != "host"
            && cfg.ipc_mode != "none"
            && !cfg.ipc_mode.starts_with("container:")
        {
            mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}));
        }
        // The kernel filesystems above come first; what follows (the engine's
        // files, --init, volumes and binds) is ordered parents first, as Docker
        // does: a `VOLUME /etc` must not cover the engine's /etc/hosts.
        let defaults = mounts.len();
        for (file, dest) in [
            ("hostname", "/etc/hostname"),
            ("hosts", "/etc/hosts"),
            ("resolv.conf", "/etc/resolv.conf"),
        ] {
            let src = paths.dir.join(file);
            if src.exists() {
                let mut opts = vec!["rbind", "rprivate", if cfg.read_only { "ro" } else { "rw" }];
                if cfg.id_map.is_some() {
                    opts.push("idmap");
                }
                mounts.push(
                    json!({"destination": dest, "type": "bind", "source": src, "options": opts}),
                );
            }
        }
        if cfg.init {
            // Our own (static) binary, read-only: the container cannot change it.
            let exe = berth_runtime::exe::original_path()
                .map_err(|e| Error::InitBinary(format!("--init: find berth's binary: {e}")))?;
            if crate::init::needs_loader(&exe)
                .map_err(|e| Error::InitBinary(format!("--init: read {}: {e}", exe.display())))?
            {
                return Err(Error::InitBinary(format!(
                    "--init needs a static berth (scripts/build-release.sh); {} is dynamically linked",
                    exe.display()
                )));
            }
            mounts.push(
                json!({"destination": crate::init::PATH, "type": "bind", "source": exe,
                               "options": ["bind", "ro", "nosuid", "nodev", "rprivate"]}),
            );
        }
        for m in &cfg.mounts {
            match m.kind.as_str() {
                "tmpfs" => {
                    let mut opts = vec![
                        "nosuid".to_string(),
                        "nodev".to_string(),
                        "noexec".to_string(),
                    ];
                    opts.extend(m.options.iter().cloned());
                    mounts.push(json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": opts}));
                }
                _ => {
                    let mut opts = vec![
                        "rbind".to_string(),
                        if m.read_only { "ro" } else { "rw" }.to_string(),
                    ];
                    opts.extend(m.options.iter().cloned());
                    if !opts.iter().any(|o| {
                        o.ends_with("private") || o.ends_with("shared") || o.ends_with("slave")
                    }) {
                        opts.push("rprivate".into());
                    }
                    // Seen through the container's mapping: the host's root is
                    // its root, and what its root writes is the host root's
                    // (as Docker users expect of a volume or a bind).
                    if cfg.id_map.is_some() {
                        opts.push("idmap".into());
                    }
                    mounts.push(json!({"destination": m.destination, "type": "bind", "source": m.source, "options": opts}));
                }
            }
        }
        mounts[defaults..].sort_by_key(|m| {
            m["destination"]
                .as_str()
                .map_or(0, |d| Path::new(d).components().count())
        });

        let mut namespaces = vec![json!({"type": "mount"})];
        for (typ, mode, join) in [
            ("pid", &cfg.pid_mode, &joins.pid),
            ("ipc", &cfg.ipc_mode, &joins.ipc),
            ("uts", &cfg.uts_mode, &joins.uts),
            ("network", &cfg.network, &joins.net),
        ] {
            match (mode.as_str(), join) {
                ("host", _) => {}
                (_, Some(path)) => namespaces.push(json!({"type": typ, "path": path})),
                _ => namespaces.push(json!({"type": typ})),
            }
        }
        namespaces.push(json!({"type": "cgroup"}));
        if let Some(path) = &joins.user {
            namespaces.push(json!({"type": "user", "path": path}));
        } else if cfg.id_map.is_some() {
            namespaces.push(json!({"type": "user"}));
        }

        let mut resources = reference_resources(cfg);
        let mut device_rules = if cfg.privileged {
            vec![json!({"allow": true, "access": "rwm"})]
        } else {
            reference_device_rules()
        };
        let mut devices = Vec::new();
        for d in &cfg.devices {
            let (typ, major, minor, mode) = host_device(&d.host)?;
            devices.push(json!({"path": d.container, "type": typ, "major": major, "minor": minor, "fileMode": mode, "uid": 0, "gid": 0}));
            device_rules.push(json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": d.permissions}));
        }
        resources["devices"] = json!(device_rules);

        let mut linux = json!({
            "namespaces": namespaces,
            "resources": resources,
            "cgroupsPath": format!("/berth/{id}"),
            "devices": devices,
            "sysctl": cfg.sysctls,
        });
        if let (Some(m), None) = (&cfg.id_map, &joins.user) {
            linux["uidMappings"] = json!([{"containerID": 0, "hostID": m.uid, "size": m.size}]);
            linux["gidMappings"] = json!([{"containerID": 0, "hostID": m.gid, "size": m.size}]);
        }
        if !cfg.privileged {
            linux["maskedPaths"] = json!(berth_runtime::template::MASKED_PATHS);
            linux["readonlyPaths"] = json!(berth_runtime::template::READONLY_PATHS);
            let seccomp = match cfg.seccomp.as_str() {
                "" => Some(berth_runtime::seccomp::profile::default_for(&caps)?),
                "unconfined" => None,
                file => {
                    let text = std::fs::read_to_string(file).map_err(|e| {
                        Error::InvalidOption(format!(
                            "opening seccomp profile ({file}) failed: {e}"
                        ))
                    })?;
                    Some(berth_runtime::seccomp::profile::resolve(&text, &caps)?)
                }
            };
            if let Some(s) = seccomp {
                linux["seccomp"] = serde_json::to_value(s).map_err(|source| Error::Encode {
                    what: "seccomp profile",
                    source,
                })?;
            }
        }
        let mut spec = json!({
            "ociVersion": berth_runtime::OCI_VERSION,
            "process": process,
            "root": {"path": paths.rootfs, "readonly": cfg.read_only},
            "hostname": cfg.hostname,
            "domainname": cfg.domainname,
            "mounts": mounts,
            "linux": linux,
        });
        if cfg.init {
            // A signal sent to a pid-namespace init that has no handler yet is
            // dropped: one `stop` sends in the moment between exec and
            // berth-init's signalfd would be lost. Blocked, it waits for it.
            spec["annotations"] = json!({berth_runtime::EXEC_SIGNALS_BLOCKED: "true"});
        }
        // Assembled as JSON (Docker's defaults read best that way), typed once
        // here, in memory: no text is written and parsed back.
        serde_json::from_value(spec).map_err(|source| Error::Encode {
            what: "spec",
            source,
        })
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nadm:x:4:www\nstaff:x:50:\n";

    /// A container directory with the engine's files, and a rootfs whose
    /// user database the spec looks users up in.
    fn fixture() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("rootfs/etc")).unwrap();
        std::fs::write(t.path().join("rootfs/etc/passwd"), PASSWD).unwrap();
        std::fs::write(t.path().join("rootfs/etc/group"), GROUP).unwrap();
        std::fs::create_dir_all(t.path().join("ctr")).unwrap();
        for f in ["hostname", "hosts", "resolv.conf"] {
            std::fs::write(t.path().join("ctr").join(f), "x\n").unwrap();
        }
        t
    }

    fn option_sets() -> Vec<(ContainerConfig, Joins)> {
        use crate::config::{Device, Mount, Ulimit};
        let plain = ContainerConfig {
            args: vec!["true".into()],
            hostname: "abc".into(),
            ..ContainerConfig::default()
        };
        let mut busy = plain.clone();
        busy.user = "www".into();
        busy.group_add = vec!["staff".into()];
        busy.env = vec!["A=1".into()];
        busy.working_dir = "/srv".into();
        busy.tty = true;
        busy.read_only = true;
        busy.domainname = "example.org".into();
        busy.cap_add = vec!["sys_admin".into()];
        busy.cap_drop = vec!["NET_RAW".into()];
        busy.no_new_privileges = true;
        busy.oom_score_adj = Some(-500);
        busy.shm_size = 1 << 20;
        busy.ulimits = vec![Ulimit {
            name: "nofile".into(),
            soft: 1000,
            hard: 2000,
        }];
        busy.resources.memory = Some(64 << 20);
        busy.resources.memory_reservation = Some(32 << 20);
        busy.resources.nano_cpus = Some(1_500_000_000);
        busy.resources.cpu_shares = Some(512);
        busy.resources.cpuset_cpus = Some("0".into());
        busy.resources.pids_limit = Some(100);
        busy.sysctls = [("net.ipv4.ip_forward".to_string(), "1".to_string())].into();
        busy.devices = vec![Device {
            host: "/dev/null".into(),
            container: "/dev/mynull".into(),
            permissions: "rw".into(),
        }];
        busy.mounts = vec![
            Mount {
                kind: "tmpfs".into(),
                source: String::new(),
                destination: "/run/a/b".into(),
                read_only: false,
                options: vec!["size=1m".into()],
                create_source: false,
                ..Mount::default()
            },
            Mount {
                kind: "bind".into(),
                source: "/srv/data".into(),
                destination: "/data".into(),
                read_only: true,
                options: vec!["rshared".into()],
                create_source: true,
                ..Mount::default()
            },
            Mount {
                kind: "volume".into(),
                source: "/var/lib/v".into(),
                destination: "/etc".into(),
                read_only: false,
                options: Vec::new(),
                create_source: false,
                ..Mount::default()
            },
        ];
        busy.id_map = Some(crate::userns::IdMap {
            uid: 100_000,
            gid: 200_000,
            size: 65536,
        });
        let joined = Joins {
            pid: Some("/proc/1/ns/pid".into()),
            net: Some("/proc/1/ns/net".into()),
            ..Joins::default()
        };
        let mut host = plain.clone();
        host.privileged = true;
        host.network = "host".into();
        host.pid_mode = "host".into();
        host.ipc_mode = "host".into();
        host.uts_mode = "host".into();
        host.resources.memory_swap = Some(1 << 30);
        host.resources.cpu_quota = Some(50_000);
        host.resources.cpu_period = Some(100_000);
        host.resources.cpuset_mems = Some("0".into());
        let mut user_joined = plain.clone();
        user_joined.ipc_mode = "none".into();
        user_joined.seccomp = "unconfined".into();
        user_joined.id_map = busy.id_map;
        let in_userns = Joins {
            user: Some("/proc/1/ns/user".into()),
            ipc: Some("/proc/1/ns/ipc".into()),
            uts: Some("/proc/1/ns/uts".into()),
            ..Joins::default()
        };
        vec![
            (plain, Joins::default()),
            (busy, joined),
            (host, Joins::default()),
            (user_joined, in_userns),
        ]
    }

    /// The typed assembly makes the very spec the JSON one made (checked
    /// typed: capability sets are hash sets, so their JSON order varies):
    /// a field forgotten, or one left at oci-spec's default (youki's `sh`,
    /// its nofile limit, its capabilities) would differ.
    #[test]
    fn typed_spec_is_the_json_one() {
        let t = fixture();
        let (rootfs, dir) = (t.path().join("rootfs"), t.path().join("ctr"));
        let paths = Paths {
            rootfs: &rootfs,
            lookup: &rootfs,
            dir: &dir,
        };
        for (n, (cfg, joins)) in option_sets().iter().enumerate() {
            let typed = build(cfg, "cid", &paths, joins).unwrap();
            let reference = reference_build(cfg, "cid", &paths, joins).unwrap();
            assert_eq!(typed, reference, "option set {n}");
            // And the same text for config.json, up to the order of sets.
            let sorted = |s: &Spec| {
                let mut v = serde_json::to_value(s).unwrap();
                for set in ["bounding", "effective", "permitted"] {
                    if let Some(a) = v["process"]["capabilities"][set].as_array_mut() {
                        a.sort_by_key(|c| c.as_str().unwrap_or_default().to_string());
                    }
                }
                v
            };
            assert_eq!(sorted(&typed), sorted(&reference), "option set {n}");
        }
    }

    #[test]
    fn resources_alone_are_typed_too() {
        for (cfg, _) in option_sets() {
            let typed = resources(&cfg).unwrap();
            let reference: oci::LinuxResources =
                serde_json::from_value(reference_resources(&cfg)).unwrap();
            assert_eq!(typed, reference);
        }
    }

    #[test]
    fn users_resolve_like_docker() {
        let none: &[String] = &[];
        let u = parse_user("", none, PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        // Docker 20.10, checked: the primary group first, then the groups
        // naming the user, unless a group was given; --group-add last.
        let u = parse_user("www", none, PASSWD, GROUP).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (33, 33, vec![33, 4])
        );
        let u = parse_user("33:staff", none, PASSWD, GROUP).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (33, 50, vec![50])
        );
        let u = parse_user("1234:99", none, PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1234, 99, "/"));
        let u = parse_user("1234", none, PASSWD, GROUP).unwrap();
        assert_eq!((u.gid, u.additional_gids.clone()), (0, vec![0]));
        let add = ["staff".to_string(), "4".to_string(), "33".to_string()];
        let u = parse_user("www", &add, PASSWD, GROUP).unwrap();
        assert_eq!(u.additional_gids, vec![33, 4, 50]);
        assert!(parse_user("www", &["nosuch".to_string()], PASSWD, GROUP).is_err());
        assert!(parse_user("nobody", none, PASSWD, GROUP).is_err());
        assert!(parse_user("www:nogroup", none, PASSWD, GROUP).is_err());
    }

    #[test]
    fn capabilities_add_and_drop() {
        let mut cfg = ContainerConfig::default();
        assert_eq!(capabilities(&cfg).unwrap().len(), DEFAULT_CAPS.len());
        cfg.cap_drop = vec!["net_raw".into()];
        cfg.cap_add = vec!["SYS_ADMIN".into()];
        let caps = capabilities(&cfg).unwrap();
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        cfg.cap_drop = vec!["ALL".into()];
        cfg.cap_add = vec!["kill".into()];
        assert_eq!(capabilities(&cfg).unwrap(), vec!["CAP_KILL".to_string()]);
        cfg.cap_add = vec!["bogus".into()];
        assert!(capabilities(&cfg).is_err());
    }
}
