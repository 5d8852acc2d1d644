//! `berth info`: docker's system-wide report, in docker's layout and with
//! docker's fields for `--format` (`{{.ServerVersion}}`, `{{.NCPU}}`,
//! `{{json .}}` ...), so that the scripts asking "is it up, and on what?"
//! get their answer. The values are berth's (berth_engine::system_info):
//! its store, its runtime, and the host as docker's daemon reads it.

use std::rc::Rc;

use anyhow::Result;
use berth_engine::system_info::SystemInfo;
use berth_template::{Map, Value};

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

/// docker's `system.info`: types.Info's fields (promoted from the embedded
/// struct, as Go's templates and json see them), then the client's.
fn model(i: &SystemInfo) -> Value {
    let v = env!("CARGO_PKG_VERSION");
    let cg = &i.cgroups;
    let exe = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "berth".into());
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
            ("ID", Value::from(i.id.as_str())),
            ("Containers", int(i.running + i.paused + i.stopped)),
            ("ContainersRunning", int(i.running)),
            ("ContainersPaused", int(i.paused)),
            ("ContainersStopped", int(i.stopped)),
            ("Images", int(i.images)),
            ("Driver", Value::from("overlay2")),
            (
                "DriverStatus",
                Value::List(
                    Rc::new(vec![Value::strings([
                        "Backing Filesystem".to_string(),
                        i.backing_fs.clone(),
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
            ("IPv4Forwarding", b(i.ip_forward)),
            ("BridgeNfIptables", b(i.bridge_nf_iptables)),
            ("BridgeNfIP6tables", b(i.bridge_nf_ip6tables)),
            ("Debug", b(false)),
            ("NFd", int(i.fds)),
            ("OomKillDisable", b(false)),
            ("NGoroutines", int(i.threads)),
            ("SystemTime", Value::from(i.system_time.as_str())),
            ("LoggingDriver", Value::from("json-file")),
            ("CgroupDriver", Value::from("cgroupfs")),
            (
                "CgroupVersion",
                Value::from(if i.cgroup_unified { "2" } else { "1" }),
            ),
            ("NEventsListener", Value::Int(0)),
            ("KernelVersion", Value::from(i.kernel_version.as_str())),
            ("OperatingSystem", Value::from(i.operating_system.as_str())),
            ("OSVersion", Value::from(i.os_version.as_str())),
            ("OSType", Value::from("linux")),
            ("Architecture", Value::from(i.architecture.as_str())),
            ("IndexServerAddress", Value::from(INDEX_SERVER)),
            ("RegistryConfig", registry),
            ("NCPU", int(i.ncpu)),
            ("MemTotal", Value::Int(i.mem_total)),
            (
                "GenericResources",
                Value::List(Rc::new(Vec::new()), berth_template::Elem::Any),
            ),
            (
                "DockerRootDir",
                Value::from(i.root.to_string_lossy().into_owned()),
            ),
            // berth's registry client takes no proxy.
            ("HTTPProxy", Value::from("")),
            ("HTTPSProxy", Value::from("")),
            ("NoProxy", Value::from("")),
            ("Name", Value::from(i.hostname.as_str())),
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
            ("Warnings", Value::strings(i.warnings.clone())),
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
pub fn info(engine: &berth_engine::Engine, format: Option<&str>) -> Result<()> {
    let model = model(&engine.system_info()?);
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
