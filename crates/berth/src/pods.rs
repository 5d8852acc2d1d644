//! `berth pod ...`: pods in podman's command lines and words (create, ls,
//! inspect, start, stop, restart, kill, rm, prune, top, logs) over the
//! engine's pod calls (berth_engine::pods); `run --pod` joins one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_engine::pods::{PodConfig, PodCreateOptions, PodSummary};
use berth_engine::Engine;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::format;

#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Create a pod: namespaces its containers share
    Create {
        /// The pod's name (default: a generated one)
        #[arg(long)]
        name: Option<String>,
        /// Publish a port of the pod: [ip:][hostPort:]containerPort[/proto]
        #[arg(short, long)]
        publish: Vec<String>,
        /// Namespaces to share: net, ipc, uts (default all three)
        #[arg(long, default_value = "net,ipc,uts")]
        share: String,
        /// Set metadata (key=value)
        #[arg(short, long)]
        label: Vec<String>,
        /// The members' hostname (default: the pod's name)
        #[arg(long)]
        hostname: Option<String>,
        /// bridge (the default), a user network, none or host
        #[arg(long, alias = "net", default_value = "bridge")]
        network: String,
        /// Another name of the pod on a user network
        #[arg(long, alias = "net-alias")]
        network_alias: Vec<String>,
        /// Add a line to the members' /etc/hosts (host:ip)
        #[arg(long)]
        add_host: Vec<String>,
        /// DNS servers of the members
        #[arg(long)]
        dns: Vec<String>,
        /// Size of the /dev/shm the members share (default 64m)
        #[arg(long)]
        shm_size: Option<String>,
        /// podman's infra container: berth's pods need none (the
        /// namespaces are held by files), so only false is accepted
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        infra: Option<bool>,
        /// The members' user namespace: host, or auto[:size=N] (one of the
        /// pod's own, the default)
        #[arg(long)]
        userns: Option<String>,
    },
    /// List pods
    #[command(alias = "ls", alias = "list")]
    Ps {
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate the ids
        #[arg(long)]
        no_trunc: bool,
        /// The containers' names too
        #[arg(long)]
        ctr_names: bool,
        /// The containers' ids too
        #[arg(long)]
        ctr_ids: bool,
        /// The containers' states too
        #[arg(long)]
        ctr_status: bool,
        /// name=, id=, label=, status=
        #[arg(short, long)]
        filter: Vec<String>,
        /// Go template ({{.ID}} {{.Name}} {{.Status}} {{.NumberOfContainers}} ...) or json
        #[arg(long)]
        format: Option<String>,
    },
    /// Show pods as JSON
    Inspect {
        /// Go template over the JSON
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Start the pods' containers
    Start {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop the pods' containers
    Stop {
        /// Seconds before SIGKILL
        #[arg(short, long)]
        time: Option<u32>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Restart the pods' containers
    Restart {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Send a signal to the pods' containers
    Kill {
        /// The signal (default KILL)
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pods and their containers
    Rm {
        /// Stop and remove running containers too; no error for a missing pod
        #[arg(short, long)]
        force: bool,
        /// With -f: seconds the containers get to stop before SIGKILL
        /// (default: killed at once)
        #[arg(short, long)]
        time: Option<u32>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove every pod none of whose containers runs
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// The processes of a pod's containers
    Top {
        pod: String,
        /// ps options (default -ef)
        ps_args: Vec<String>,
    },
    /// The logs of a pod's containers, each line after its container's id
    Logs {
        /// Only this container's
        #[arg(short, long)]
        container: Option<String>,
        /// Each line with its time
        #[arg(short, long)]
        timestamps: bool,
        /// Only the last N lines of each
        #[arg(long)]
        tail: Option<usize>,
        pod: String,
    },
}

pub fn run(root: &Path, runroot: &Path, cmd: &PodCommand) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    match cmd {
        PodCommand::Create {
            name,
            publish,
            share,
            label,
            hostname,
            network,
            network_alias,
            add_host,
            dns,
            shm_size,
            infra,
            userns,
        } => {
            if *infra == Some(true) {
                bail!("--infra: berth's pods hold their namespaces without an infra container; only --infra=false is accepted");
            }
            let mut ports = Vec::new();
            for p in publish {
                ports.extend(berth_network::ports::parse(p).map_err(anyhow::Error::msg)?);
            }
            let mut labels = BTreeMap::new();
            for l in label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                labels.insert(k.to_string(), v.to_string());
            }
            let config = PodConfig {
                hostname: hostname.clone().unwrap_or_default(),
                labels,
                share: share
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                network: network.clone(),
                network_aliases: network_alias.clone(),
                publish: ports,
                extra_hosts: add_host.clone(),
                dns: dns.clone(),
                userns: userns.clone().unwrap_or_default(),
                shm_size: shm_size
                    .as_deref()
                    .map(|s| crate::run_flags::size_flag("--shm-size", s))
                    .transpose()?
                    .unwrap_or(0),
                ..PodConfig::default()
            };
            if config.share.is_empty() {
                bail!("--share {share:?}: name the namespaces to share (net, ipc, uts)");
            }
            let pod = engine.pod_create(&PodCreateOptions::new(name.as_deref(), config))?;
            println!("{}", pod.id);
            Ok(0)
        }
        PodCommand::Ps {
            quiet,
            no_trunc,
            ctr_names,
            ctr_ids,
            ctr_status,
            filter,
            format,
        } => {
            let mut list = engine.pod_list()?;
            for f in filter {
                let (k, v) = f
                    .split_once('=')
                    .with_context(|| format!("invalid filter {f:?}: use key=value"))?;
                match k {
                    "name" => list.retain(|s| s.pod.name.contains(v)),
                    "id" => list.retain(|s| s.pod.id.starts_with(v)),
                    "status" => list.retain(|s| s.status().eq_ignore_ascii_case(v)),
                    "label" => list.retain(|s| {
                        let labels = &s.pod.config.labels;
                        match v.split_once('=') {
                            Some((lk, lv)) => labels.get(lk).is_some_and(|x| x == lv),
                            None => labels.contains_key(v),
                        }
                    }),
                    _ => bail!("invalid filter {k:?}: one of name, id, label, status"),
                }
            }
            let id = |s: &str| -> String {
                if *no_trunc {
                    s.to_string()
                } else {
                    s.chars().take(12).collect()
                }
            };
            let mut out = std::io::stdout().lock();
            if *quiet {
                for s in &list {
                    writeln!(out, "{}", id(&s.pod.id))?;
                }
                return Ok(0);
            }
            match format.as_deref() {
                Some("json") => {
                    let docs: Vec<Value> = list.iter().map(ps_json).collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&docs)?)?;
                }
                None | Some("") | Some("table") => {
                    let mut text = String::from("POD ID\tNAME\tSTATUS\tCREATED\tINFRA ID\t");
                    let extra = *ctr_names || *ctr_ids || *ctr_status;
                    if *ctr_ids {
                        text.push_str("IDS\t");
                    }
                    if *ctr_names {
                        text.push_str("NAMES\t");
                    }
                    if *ctr_status {
                        text.push_str("STATUS\t");
                    }
                    if !extra {
                        text.push_str("# OF CONTAINERS\t");
                    }
                    text.push('\n');
                    for s in &list {
                        text.push_str(&format!(
                            "{}\t{}\t{}\t{}\t\t",
                            id(&s.pod.id),
                            s.pod.name,
                            s.status(),
                            format::since(Some(&s.pod.created)),
                        ));
                        let join = |f: &dyn Fn(&berth_engine::Record) -> String| {
                            s.members.iter().map(f).collect::<Vec<_>>().join(",")
                        };
                        if *ctr_ids {
                            text.push_str(&join(&|r| id(&r.id)));
                            text.push('\t');
                        }
                        if *ctr_names {
                            text.push_str(&join(&|r| r.name.clone()));
                            text.push('\t');
                        }
                        if *ctr_status {
                            text.push_str(&join(&|r| r.status.to_string()));
                            text.push('\t');
                        }
                        if !extra {
                            text.push_str(&format!("{}\t", s.members.len()));
                        }
                        text.push('\n');
                    }
                    // podman's tabwriter: minimum width 12, padding 2.
                    let aligned = berth_template::tabwriter::align(&text, 12, 2);
                    for line in aligned.lines() {
                        writeln!(out, "{}", line.trim_end())?;
                    }
                }
                Some(f) => {
                    let fmt = format::ListFormat::new(Some(f), "")?;
                    let rows = list.iter().map(|s| {
                        use berth_template::Value as V;
                        let [label, labels] = format::label_fields(&s.pod.config.labels);
                        format::context(
                            "entities.ListPodsReport",
                            vec![
                                ("Created", V::from(format::since(Some(&s.pod.created)))),
                                ("ID", V::from(id(&s.pod.id))),
                                ("InfraID", V::from("")),
                                label,
                                labels,
                                ("Name", V::from(s.pod.name.as_str())),
                                ("Networks", V::from(s.pod.config.network.as_str())),
                                ("NumberOfContainers", V::from(s.members.len().to_string())),
                                ("Status", V::from(s.status())),
                            ],
                        )
                    });
                    let header = format::header(&[
                        ("ID", "POD ID"),
                        ("Name", "NAME"),
                        ("Status", "STATUS"),
                        ("Created", "CREATED"),
                        ("InfraID", "INFRA ID"),
                        ("NumberOfContainers", "# OF CONTAINERS"),
                        ("Networks", "NETWORKS"),
                        ("Labels", "LABELS"),
                    ]);
                    fmt.write(&header, rows, &mut out)?;
                }
            }
            Ok(0)
        }
        PodCommand::Inspect { format, pods } => {
            let mut docs = Vec::new();
            let mut missing = None;
            for key in pods {
                match engine.pod_inspect(key) {
                    Ok(v) => docs.push(berth_engine::inspect::types::to_value(&v)),
                    // podman's words for inspect.
                    Err(berth_engine::Error::NoSuchPod(k)) => {
                        missing = Some(anyhow::anyhow!("no such pod {k}"));
                    }
                    Err(e) => missing = Some(e.into()),
                }
            }
            match format {
                Some(f) => {
                    for d in &docs {
                        println!(
                            "{}",
                            format::render_named(f, "pod", &berth_template::Value::from_json(d))?
                        );
                    }
                }
                // podman prints one pod as an object, several as an array.
                None if docs.len() == 1 => println!("{}", format::inspect_json(&docs[0])?),
                None => println!("{}", format::inspect_json(&Value::Array(docs))?),
            }
            if let Some(e) = missing {
                bail!("inspecting object: {e}");
            }
            Ok(0)
        }
        PodCommand::Start { pods } => each(pods, None, |k| Ok(engine.pod_start(k)?.id)),
        PodCommand::Stop { time, pods } => each(pods, None, |k| Ok(engine.pod_stop(k, *time)?.id)),
        PodCommand::Restart { pods } => each(pods, None, |k| Ok(engine.pod_restart(k, None)?.id)),
        PodCommand::Kill { signal, pods } => {
            let sig = berth_runtime::signal::parse_signal(signal)
                .map_err(|e| anyhow::anyhow!("invalid signal {signal:?}: {e}"))?;
            each(pods, None, |k| Ok(engine.pod_kill(k, sig)?.id))
        }
        PodCommand::Rm { force, time, pods } => each(pods, Some(*force), |k| {
            if let (true, Some(t)) = (*force, time) {
                engine.pod_stop(k, Some(*t))?;
            }
            Ok(engine.pod_remove(k, *force)?.id)
        }),
        PodCommand::Prune { force: _ } => {
            for p in engine.pod_prune()? {
                println!("{}", p.id);
            }
            Ok(0)
        }
        PodCommand::Top { pod, ps_args } => {
            let lines = engine
                .pod_top(pod, ps_args)
                .context("unable to look up requested container")?;
            for line in lines {
                println!("{line}");
            }
            Ok(0)
        }
        PodCommand::Logs {
            container,
            timestamps,
            tail,
            pod,
        } => {
            let s = engine.pod_summary(pod)?;
            let members: Vec<&berth_engine::Record> = match container {
                Some(c) => {
                    let r = engine.find(c)?;
                    if r.config.pod != s.pod.id {
                        bail!("container {c} is not in pod {pod}");
                    }
                    s.members.iter().filter(|m| m.id == r.id).collect()
                }
                None => s.members.iter().collect(),
            };
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            for r in members {
                let mut opts = berth_engine::logs::LogOptions::default();
                opts.timestamps = *timestamps;
                opts.tail = *tail;
                for e in engine.container_logs(&r.id, &opts)? {
                    let e = e?;
                    let line = format!("{} {}", &r.id[..12], e.text(*timestamps));
                    let w: &mut dyn Write = if e.is_stderr() { &mut err } else { &mut out };
                    let _ = w.write_all(line.as_bytes());
                }
            }
            Ok(0)
        }
    }
}

/// One verb over several pods: each pod's id printed as it is done, the
/// failures said one line each; exit 125 if any failed, as podman's, but
/// for `pod rm` of missing pods: 1 (or nothing with -f).
fn each(
    keys: &[String],
    rm: Option<bool>,
    mut f: impl FnMut(&str) -> Result<String>,
) -> Result<i32> {
    let mut code = 0;
    for key in keys {
        match f(key) {
            Ok(id) => println!("{id}"),
            Err(e)
                if rm.is_some()
                    && e.downcast_ref::<berth_engine::Error>()
                        .is_some_and(|e| matches!(e, berth_engine::Error::NoSuchPod(_))) =>
            {
                if rm != Some(true) {
                    eprintln!("Error: {e:#}");
                    code = code.max(1);
                }
            }
            Err(e) => {
                eprintln!("Error: {e:#}");
                code = 125;
            }
        }
    }
    Ok(code)
}

/// A pod as `pod ps --format json` lists it.
fn ps_json(s: &PodSummary) -> Value {
    json!({
        "Cgroup": "",
        "Containers": s.members.iter().map(|r| json!({
            "Id": r.id,
            "Names": r.name,
            "Status": r.status.as_str(),
        })).collect::<Vec<_>>(),
        "Created": s.pod.created,
        "Id": s.pod.id,
        "InfraId": "",
        "Name": s.pod.name,
        "Namespace": "",
        "Networks": [s.pod.config.network.clone()],
        "Status": s.status(),
        "Labels": s.pod.config.labels,
    })
}
