//! `berth info`: docker's system-wide report, in docker's layout and with
//! docker's fields for `--format` (`{{.ServerVersion}}`, `{{.NCPU}}`,
//! `{{json .}}` ...), so that the scripts asking "is it up, and on what?"
//! get their answer. The values are berth's: its store, its runtime, and
//! the host as docker's daemon reads it (affinity CPUs, /proc/meminfo,
//! /etc/os-release). Everything here is cheap: two queries of the store
//! and a few small files, nothing that walks layers or reaches a registry.

use std::path::Path;
use std::rc::Rc;

use anyhow::Result;
use berth_template::{Map, Value};
use sha2::Digest;

use crate::format;

/// docker's registry for unqualified names, which berth pulls from too.
const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// The name berth's runtime goes by in `Runtimes` (as in `version`).
const RUNTIME: &str = "berth-runtime";

/// A Go struct of docker's API types (plain JSON, no HTML escaping).
fn go_struct(
    type_name: &str,
    fields: Vec<(&str, Value)>,
    json_tags: Vec<(&'static str, &'static str)>,
) -> Value {
    format::go_struct(type_name, fields, false, json_tags)
}

fn int(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A slice Go would hold as nil: printed `[]` by a template (`json` writes
/// it `[]` here where docker writes `null`).
fn no_strings() -> Value {
    Value::strings(Vec::<String>::new())
}

fn commit(id: &str) -> Value {
    go_struct(
        "types.Commit",
        vec![("ID", Value::from(id)), ("Expected", Value::from(id))],
        vec![],
    )
}

/// What the host lets berth limit, as docker's sysinfo asks the cgroup
/// files; only limits berth has flags for (no kernel memory, no
/// --oom-kill-disable: those stay false).
#[derive(Debug, Default)]
struct CgroupSupport {
    memory: bool,
    swap: bool,
    cfs_period: bool,
    cfs_quota: bool,
    shares: bool,
    cpuset: bool,
    pids: bool,
}

fn cgroup_support(unified: bool) -> CgroupSupport {
    use berth_runtime::cgroups::{v1, ROOT};
    if unified {
        let controllers =
            std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        // Swap is limited below the root only: asked of our own cgroup,
        // as docker asks of its daemon's.
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            .unwrap_or_default();
        let own = Path::new(ROOT).join(own.trim_start_matches('/'));
        return CgroupSupport {
            memory: has("memory"),
            swap: has("memory") && own.join("memory.swap.max").exists(),
            cfs_period: has("cpu"),
            cfs_quota: has("cpu"),
            shares: has("cpu"),
            cpuset: has("cpuset"),
            pids: has("pids"),
        };
    }
    let hierarchies = v1::host_hierarchies();
    let file = |controller: &str, name: &str| {
        hierarchies
            .iter()
            .find(|h| h.has(controller))
            .is_some_and(|h| Path::new(&h.mount_point).join(name).exists())
    };
    let mounted = |controller: &str| hierarchies.iter().any(|h| h.has(controller));
    CgroupSupport {
        memory: mounted("memory"),
        swap: file("memory", "memory.memsw.limit_in_bytes"),
        cfs_period: file("cpu", "cpu.cfs_period_us"),
        cfs_quota: file("cpu", "cpu.cfs_quota_us"),
        shares: file("cpu", "cpu.shares"),
        cpuset: mounted("cpuset"),
        pids: mounted("pids"),
    }
}

/// A sysctl that reads `1`.
fn sysctl_on(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1")
}

/// docker's warnings for what the host lacks, in its words; only for
/// what berth offers.
fn warnings(
    c: &CgroupSupport,
    ip_forward: bool,
    nf_iptables: bool,
    nf_ip6tables: bool,
) -> Vec<String> {
    let mut w = Vec::new();
    for (ok, text) in [
        (c.memory, "WARNING: No memory limit support"),
        (c.swap, "WARNING: No swap limit support"),
        (c.cfs_quota, "WARNING: No cpu cfs quota support"),
        (c.cfs_period, "WARNING: No cpu cfs period support"),
        (c.shares, "WARNING: No cpu shares support"),
        (c.cpuset, "WARNING: No cpuset support"),
        (ip_forward, "WARNING: IPv4 forwarding is disabled"),
        (nf_iptables, "WARNING: bridge-nf-call-iptables is disabled"),
        (
            nf_ip6tables,
            "WARNING: bridge-nf-call-ip6tables is disabled",
        ),
    ] {
        if !ok {
            w.push(text.to_string());
        }
    }
    w
}

/// A key of /etc/os-release (or /usr/lib/os-release), unquoted.
fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// docker's "Operating System": PRETTY_NAME (`Linux` without one), with
/// " (containerized)" when PID 1 is in a cgroup other than the root or
/// init.scope, which is how docker tells that it runs in a container.
fn operating_system() -> String {
    let mut name = os_release("PRETTY_NAME")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Linux".into());
    let containerized = std::fs::read_to_string("/proc/1/cgroup").is_ok_and(|t| {
        t.lines().any(|l| {
            let path = l.rsplit(':').next().unwrap_or("/");
            path != "/" && path != "/init.scope"
        })
    });
    if containerized {
        name.push_str(" (containerized)");
    }
    name
}

/// The CPUs this process may run on (Go's runtime.NumCPU, which docker
/// reports): the affinity mask, not the machine's count.
fn ncpu() -> usize {
    use nix::sched::{sched_getaffinity, CpuSet};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .count(),
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// MemTotal of /proc/meminfo, in bytes.
fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let kib = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
                kib.trim().parse::<i64>().ok()
            })
        })
        .map_or(0, |k| k.saturating_mul(1024))
}

/// The kernel's release and machine (uname -r, uname -m).
fn uname() -> (String, String) {
    // SAFETY: utsname is plain old data; uname fills it and its fields
    // are NUL-terminated strings within the struct.
    let (release, machine) = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return (String::new(), std::env::consts::ARCH.to_string());
        }
        (
            std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned(),
            std::ffi::CStr::from_ptr(u.machine.as_ptr())
                .to_string_lossy()
                .into_owned(),
        )
    };
    (release, machine)
}

/// The file system holding the store, named as docker's graphdriver names
/// a backing file system.
fn backing_fs(root: &Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(root) else {
        return "<unknown>".into();
    };
    // The f_type magic numbers of linux/magic.h that docker names.
    #[allow(clippy::cast_sign_loss)]
    let magic = st.filesystem_type().0 as u64 & 0xffff_ffff;
    match magic {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        0x8584_58F6 => "ramfs",
        0x7371_7368 => "squashfs",
        0xF2F5_2010 => "f2fs",
        _ => "<unknown>",
    }
    .into()
}

/// A stable id for this store on this machine, in docker 20.10's form
/// (twelve groups of four base32 characters): the hash of the machine id
/// and the store's path, so nothing has to be written to answer.
fn engine_id(root: &Path) -> String {
    let machine = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
        .unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(machine.trim().as_bytes());
    h.update([0]);
    h.update(root.as_os_str().as_encoded_bytes());
    let digest = h.finalize();
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    // 30 bytes are 240 bits: 48 characters of five bits, in fours.
    let mut chars = String::with_capacity(59);
    let (mut acc, mut bits, mut in_group) = (0u64, 0, 0);
    for &b in &digest[..30] {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            if in_group == 4 {
                chars.push(':');
                in_group = 0;
            }
            let i = usize::try_from((acc >> bits) & 31).unwrap_or(0);
            chars.push(char::from(ALPHABET[i]));
            in_group += 1;
        }
    }
    chars
}

/// Now as Go's RFC3339Nano prints it (the fraction without its trailing
/// zeros), in UTC.
fn system_time() -> String {
    let t = time::OffsetDateTime::now_utc();
    let frac = format!("{:09}", t.nanosecond());
    let frac = frac.trim_end_matches('0');
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        if frac.is_empty() { "" } else { "." },
        frac
    )
}

/// Open descriptors and threads of this process (docker reports its
/// daemon's file descriptors and goroutines).
fn process_counts() -> (usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1);
    (fds, threads)
}

/// The numbers of the store that `info` shows.
#[derive(Debug)]
pub struct StoreCounts {
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
    pub images: usize,
}

impl StoreCounts {
    pub fn of(engine: &berth_engine::Engine) -> Result<StoreCounts> {
        let mut c = StoreCounts {
            running: 0,
            paused: 0,
            stopped: 0,
            images: engine.images().list()?.len(),
        };
        for r in engine.list()? {
            // docker's three states; a restarting or starting container
            // is neither running nor paused.
            match r.status {
                berth_engine::Status::Running => c.running += 1,
                berth_engine::Status::Paused => c.paused += 1,
                _ => c.stopped += 1,
            }
        }
        Ok(c)
    }
}

/// docker's `system.info`: types.Info's fields (promoted from the embedded
/// struct, as Go's templates and json see them), then the client's.
fn model(root: &Path, counts: &StoreCounts) -> Value {
    let v = env!("CARGO_PKG_VERSION");
    let unified = berth_runtime::cgroups::host_layout() == berth_runtime::cgroups::Layout::Unified;
    let cg = cgroup_support(unified);
    let ip_forward = sysctl_on("/proc/sys/net/ipv4/ip_forward");
    let nf_iptables = sysctl_on("/proc/sys/net/bridge/bridge-nf-call-iptables");
    let nf_ip6tables = sysctl_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables");
    let (kernel, machine) = uname();
    let (nfd, threads) = process_counts();
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let exe = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "berth".into());
    let warnings = warnings(&cg, ip_forward, nf_iptables, nf_ip6tables);
    let plugins = go_struct(
        "types.PluginsInfo",
        vec![
            ("Volume", Value::strings(["local"])),
            // What --network takes: bridge (and user bridges), host, none.
            ("Network", Value::strings(["bridge", "host", "null"])),
            ("Authorization", no_strings()),
            ("Log", Value::strings(["json-file"])),
        ],
        vec![],
    );
    let index = go_struct(
        "registry.IndexInfo",
        vec![
            ("Name", Value::from("docker.io")),
            ("Mirrors", no_strings()),
            ("Secure", Value::Bool(true)),
            ("Official", Value::Bool(true)),
        ],
        vec![],
    );
    let registry = go_struct(
        "registry.ServiceConfig",
        vec![
            ("AllowNondistributableArtifactsCIDRs", no_strings()),
            ("AllowNondistributableArtifactsHostnames", no_strings()),
            // Docker's default insecure range: loopback registries may
            // answer over plain HTTP (also any registries.conf marks).
            (
                "InsecureRegistryCIDRs",
                Value::strings(vec!["127.0.0.0/8".to_string()]),
            ),
            (
                "IndexConfigs",
                Value::Map(Rc::new(Map {
                    entries: [("docker.io".to_string(), index)].into_iter().collect(),
                    zero: Value::Nil,
                    nil: false,
                })),
            ),
            ("Mirrors", no_strings()),
        ],
        vec![],
    );
    let runtime_entry = go_struct(
        "types.Runtime",
        vec![
            ("Path", Value::from(exe.as_str())),
            ("Args", no_strings()),
            ("Shim", Value::Nil),
        ],
        vec![
            ("Path", "path"),
            ("Args", "runtimeArgs,omitempty"),
            ("Shim", "-"),
        ],
    );
    let swarm = go_struct(
        "swarm.Info",
        vec![
            ("NodeID", Value::from("")),
            ("NodeAddr", Value::from("")),
            ("LocalNodeState", Value::from("inactive")),
            ("ControlAvailable", Value::Bool(false)),
            ("Error", Value::from("")),
            (
                "RemoteManagers",
                Value::List(Rc::new(Vec::new()), berth_template::Elem::Any),
            ),
            ("Nodes", Value::Int(0)),
            ("Managers", Value::Int(0)),
            ("Cluster", Value::Nil),
            ("Warnings", no_strings()),
        ],
        vec![
            ("Nodes", ",omitempty"),
            ("Managers", ",omitempty"),
            ("Cluster", ",omitempty"),
            ("Warnings", ",omitempty"),
        ],
    );
    let client = go_struct(
        "*system.clientInfo",
        vec![
            ("Debug", Value::Bool(false)),
            ("Context", Value::from("default")),
            (
                "Plugins",
                Value::List(Rc::new(Vec::new()), berth_template::Elem::Any),
            ),
            ("Warnings", no_strings()),
        ],
        vec![],
    );
    let b = Value::Bool;
    go_struct(
        "system.info",
        vec![
            ("ID", Value::from(engine_id(root))),
            (
                "Containers",
                int(counts.running + counts.paused + counts.stopped),
            ),
            ("ContainersRunning", int(counts.running)),
            ("ContainersPaused", int(counts.paused)),
            ("ContainersStopped", int(counts.stopped)),
            ("Images", int(counts.images)),
            ("Driver", Value::from("overlay2")),
            (
                "DriverStatus",
                Value::List(
                    Rc::new(vec![Value::strings([
                        "Backing Filesystem".to_string(),
                        backing_fs(root),
                    ])]),
                    berth_template::Elem::Any,
                ),
            ),
            (
                "SystemStatus",
                Value::List(Rc::new(Vec::new()), berth_template::Elem::Any),
            ),
            ("Plugins", plugins),
            ("MemoryLimit", b(cg.memory)),
            ("SwapLimit", b(cg.swap)),
            ("KernelMemory", b(false)),
            ("KernelMemoryTCP", b(false)),
            ("CPUCfsPeriod", b(cg.cfs_period)),
            ("CPUCfsQuota", b(cg.cfs_quota)),
            ("CPUShares", b(cg.shares)),
            ("CPUSet", b(cg.cpuset)),
            ("PidsLimit", b(cg.pids)),
            ("IPv4Forwarding", b(ip_forward)),
            ("BridgeNfIptables", b(nf_iptables)),
            ("BridgeNfIP6tables", b(nf_ip6tables)),
            ("Debug", b(false)),
            ("NFd", int(nfd)),
            ("OomKillDisable", b(false)),
            ("NGoroutines", int(threads)),
            ("SystemTime", Value::from(system_time())),
            ("LoggingDriver", Value::from("json-file")),
            ("CgroupDriver", Value::from("cgroupfs")),
            (
                "CgroupVersion",
                Value::from(if unified { "2" } else { "1" }),
            ),
            ("NEventsListener", Value::Int(0)),
            ("KernelVersion", Value::from(kernel)),
            ("OperatingSystem", Value::from(operating_system())),
            (
                "OSVersion",
                Value::from(os_release("VERSION_ID").unwrap_or_default()),
            ),
            ("OSType", Value::from("linux")),
            ("Architecture", Value::from(machine)),
            ("IndexServerAddress", Value::from(INDEX_SERVER)),
            ("RegistryConfig", registry),
            ("NCPU", int(ncpu())),
            ("MemTotal", Value::Int(mem_total())),
            (
                "GenericResources",
                Value::List(Rc::new(Vec::new()), berth_template::Elem::Any),
            ),
            (
                "DockerRootDir",
                Value::from(root.to_string_lossy().into_owned()),
            ),
            // berth's registry client takes no proxy.
            ("HTTPProxy", Value::from("")),
            ("HTTPSProxy", Value::from("")),
            ("NoProxy", Value::from("")),
            ("Name", Value::from(hostname)),
            ("Labels", Value::strings(Vec::<String>::new())),
            ("ExperimentalBuild", b(false)),
            ("ServerVersion", Value::from(v)),
            ("ClusterStore", Value::from("")),
            ("ClusterAdvertise", Value::from("")),
            (
                "Runtimes",
                Value::Map(Rc::new(Map {
                    entries: [(RUNTIME.to_string(), runtime_entry)].into_iter().collect(),
                    zero: Value::Nil,
                    nil: false,
                })),
            ),
            ("DefaultRuntime", Value::from(RUNTIME)),
            ("Swarm", swarm),
            // Containers outlive every berth command: there is no daemon
            // whose restart could stop them.
            ("LiveRestoreEnabled", b(true)),
            ("Isolation", Value::from("")),
            // --init runs berth itself as the container's pid 1.
            ("InitBinary", Value::from("berth")),
            // No containerd: its commit is empty, as docker shows one it
            // cannot ask.
            ("ContainerdCommit", commit("")),
            ("RuncCommit", commit(v)),
            ("InitCommit", commit(v)),
            (
                "SecurityOptions",
                Value::strings(["name=seccomp,profile=default"]),
            ),
            ("ProductLicense", Value::from("")),
            (
                "DefaultAddressPools",
                Value::List(Rc::new(Vec::new()), berth_template::Elem::Any),
            ),
            ("Warnings", Value::strings(warnings)),
            ("ClientInfo", client),
            ("ClientErrors", no_strings()),
        ],
        vec![
            ("SystemStatus", ",omitempty"),
            ("CPUCfsPeriod", "CpuCfsPeriod"),
            ("CPUCfsQuota", "CpuCfsQuota"),
            ("BridgeNfIP6tables", "BridgeNfIp6tables"),
            ("CgroupVersion", ",omitempty"),
            ("HTTPProxy", "HttpProxy"),
            ("HTTPSProxy", "HttpsProxy"),
            ("ClusterStore", ",omitempty"),
            ("ClusterAdvertise", ",omitempty"),
            ("ProductLicense", ",omitempty"),
            ("DefaultAddressPools", ",omitempty"),
            ("ClientErrors", ",omitempty"),
        ],
    )
}

/// `berth info [--format F]`.
pub fn info(root: &Path, engine: &berth_engine::Engine, format: Option<&str>) -> Result<()> {
    let counts = StoreCounts::of(engine)?;
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let model = model(&root, &counts);
    match format {
        // Docker 23's shorthand (20.10 prints the word), as `version` takes it.
        Some("json") => println!("{}", model.to_json().map_err(anyhow::Error::msg)?),
        Some(f) => println!("{}", format::render_named(f, "", &model)?),
        None => print!("{}", pretty(&model)),
    }
    if format.is_none() {
        if let Some(Value::List(w, _)) = field(&model, "Warnings") {
            for line in w.iter() {
                eprintln!("{}", line.to_go_string());
            }
        }
    }
    Ok(())
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Struct(s) => s.field(name),
        _ => None,
    }
}

/// docker's layout of `info` without --format.
fn pretty(m: &Value) -> String {
    let s = |name: &str| field(m, name).map(Value::to_go_string).unwrap_or_default();
    let list = |name: &str| match field(m, name) {
        Some(Value::List(l, _)) => l.iter().map(Value::to_go_string).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let mut o = String::new();
    let mut line = |t: String| {
        o.push_str(&t);
        o.push('\n');
    };
    line("Client:".into());
    line(" Context:    default".into());
    line(" Debug Mode: false".into());
    line(String::new());
    line("Server:".into());
    line(format!(" Containers: {}", s("Containers")));
    line(format!("  Running: {}", s("ContainersRunning")));
    line(format!("  Paused: {}", s("ContainersPaused")));
    line(format!("  Stopped: {}", s("ContainersStopped")));
    line(format!(" Images: {}", s("Images")));
    line(format!(" Server Version: {}", s("ServerVersion")));
    line(format!(" Storage Driver: {}", s("Driver")));
    if let Some(Value::List(pairs, _)) = field(m, "DriverStatus") {
        for p in pairs.iter() {
            if let Value::List(kv, _) = p {
                if let [k, v] = kv.as_slice() {
                    line(format!("  {}: {}", k.to_go_string(), v.to_go_string()));
                }
            }
        }
    }
    line(format!(" Logging Driver: {}", s("LoggingDriver")));
    line(format!(" Cgroup Driver: {}", s("CgroupDriver")));
    line(format!(" Cgroup Version: {}", s("CgroupVersion")));
    let plugins = field(m, "Plugins");
    let plugin = |k: &str| {
        plugins
            .and_then(|p| field(p, k))
            .map(|v| match v {
                Value::List(l, _) => l
                    .iter()
                    .map(Value::to_go_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            })
            .unwrap_or_default()
    };
    line(" Plugins:".into());
    line(format!("  Volume: {}", plugin("Volume")));
    line(format!("  Network: {}", plugin("Network")));
    line(format!("  Log: {}", plugin("Log")));
    line(" Swarm: inactive".into());
    line(format!(" Runtimes: {RUNTIME}"));
    line(format!(" Default Runtime: {}", s("DefaultRuntime")));
    line(format!(" Init Binary: {}", s("InitBinary")));
    line(format!(" {RUNTIME} version: {}", env!("CARGO_PKG_VERSION")));
    line(format!(" init version: {}", env!("CARGO_PKG_VERSION")));
    line(" Security Options:".into());
    line("  seccomp".into());
    line("   Profile: default".into());
    line(format!(" Kernel Version: {}", s("KernelVersion")));
    line(format!(" Operating System: {}", s("OperatingSystem")));
    line(format!(" OSType: {}", s("OSType")));
    line(format!(" Architecture: {}", s("Architecture")));
    line(format!(" CPUs: {}", s("NCPU")));
    let mem = match field(m, "MemTotal") {
        Some(Value::Int(n)) => format::binary_size(u64::try_from(*n).unwrap_or(0)),
        _ => String::new(),
    };
    line(format!(" Total Memory: {mem}"));
    line(format!(" Name: {}", s("Name")));
    line(format!(" ID: {}", s("ID")));
    line(format!(" Docker Root Dir: {}", s("DockerRootDir")));
    line(" Debug Mode: false".into());
    line(format!(" Registry: {INDEX_SERVER}"));
    line(" Labels:".into());
    for l in list("Labels") {
        line(format!("  {l}"));
    }
    line(" Experimental: false".into());
    line(" Insecure Registries:".into());
    line("  127.0.0.0/8".into());
    line(format!(
        " Live Restore Enabled: {}",
        s("LiveRestoreEnabled")
    ));
    line(String::new());
    o
}
