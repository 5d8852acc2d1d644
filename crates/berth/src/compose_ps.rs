//! `berth compose ps/logs/top/port/images/ls`: the project's containers
//! shown; logs of several containers with Compose's `name  | ` prefixes
//! (coloured on a terminal), followed by one thread each.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use berth_compose::members::{self, Member};
use berth_compose::service::labels;
use berth_compose::Project;
use berth_engine::logs::LogOptions;
use berth_engine::{Engine, Status};
use clap::Args;

use crate::compose::chosen;

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show stopped containers too
    #[arg(short, long)]
    pub all: bool,
    /// Only the ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Only the service names
    #[arg(long)]
    pub services: bool,
    /// table (default), json, or a Go template ({{.Name}} {{.Service}} {{.State}} {{.Status}} {{.Ports}} ...)
    #[arg(long)]
    pub format: Option<String>,
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end of each container's log ("all" for every line)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Do not print the container name before each line
    #[arg(long)]
    pub no_log_prefix: bool,
    pub services: Vec<String>,
}

fn open(root: &Path, runroot: &Path) -> Result<Engine> {
    Engine::open(root, runroot).with_context(|| format!("open the store at {}", root.display()))
}

pub fn ps(root: &Path, runroot: &Path, p: &Project, a: &PsArgs) -> Result<i32> {
    let engine = open(root, runroot)?;
    let wanted = chosen(p, &a.names)?;
    let ms: Vec<Member> = members::list(&engine, &p.name)?
        .into_iter()
        .filter(|m| wanted.contains(&m.service) || (a.names.is_empty() && m.oneoff))
        .filter(|m| a.all || m.record.status.is_active())
        .collect();
    let mut out = std::io::stdout().lock();
    if a.services {
        let mut seen = Vec::new();
        for m in &ms {
            if !seen.contains(&m.service) {
                writeln!(out, "{}", m.service)?;
                seen.push(m.service.clone());
            }
        }
        return Ok(0);
    }
    if a.quiet {
        for m in &ms {
            writeln!(out, "{}", m.record.id)?;
        }
        return Ok(0);
    }
    let rows: Vec<serde_json::Value> = ms
        .iter()
        .map(|m| {
            let r = &m.record;
            serde_json::json!({
                "ID": r.id, "Name": r.name, "Image": r.config.image, "Command": crate::ps::command_text(r, true),
                "Project": p.name, "Service": m.service, "State": r.status.as_str(),
                "Health": r.health.as_ref().map(|h| h.status.clone()).unwrap_or_default(),
                "ExitCode": r.exit_code, "Status": crate::ps::status_text(r),
                "Publishers": engine.network_state(&r.id).1.iter().map(|pm| serde_json::json!({
                    "URL": pm.host_display().rsplit_once(':').map(|x| x.0.to_string()).unwrap_or_default(),
                    "TargetPort": pm.container_port, "PublishedPort": pm.host_port, "Protocol": pm.proto.as_str()})).collect::<Vec<_>>(),
                "Ports": crate::ps::ports_text(&engine, r),
            })
        })
        .collect();
    match a.format.as_deref() {
        Some("json") => {
            for r in &rows {
                writeln!(out, "{r}")?;
            }
        }
        None | Some("table") => {
            let table: Vec<[String; 7]> = rows
                .iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
                    [
                        s("Name"),
                        s("Image"),
                        s("Command"),
                        s("Service"),
                        crate::format::since(
                            r["ID"]
                                .as_str()
                                .and_then(|id| ms.iter().find(|m| m.record.id == id))
                                .map(|m| m.record.created.as_str()),
                        ),
                        s("Status"),
                        s("Ports"),
                    ]
                })
                .collect();
            let head = [
                "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
            ];
            let width: Vec<usize> = (0..7)
                .map(|i| {
                    table
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([head[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| {
                let mut l = String::new();
                for (i, c) in cells.iter().enumerate() {
                    if i + 1 == cells.len() {
                        l.push_str(c);
                    } else {
                        l.push_str(&format!("{c:<w$}   ", w = width[i]));
                    }
                }
                l.trim_end().to_string()
            };
            writeln!(out, "{}", line(&head.map(String::from)))?;
            for r in &table {
                writeln!(out, "{}", line(r))?;
            }
        }
        // A Go template over Compose's fields ({{.Name}}, {{.Service}},
        // {{.State}}, {{.Status}}, {{.Ports}}...), one line per container.
        Some(template) => {
            for r in &rows {
                let v = berth_template::Value::from_json(r);
                writeln!(out, "{}", crate::format::render_named(template, "ps", &v)?)?;
            }
        }
    }
    Ok(0)
}

/// Compose's colours for the name prefixes, in its order.
const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// One thread per container, each writing its container's entries with
/// the prefix; each ends with its container's log (when following: when
/// the container stops).
pub fn follow(
    root: &Path,
    runroot: &Path,
    ms: &[Member],
    colour: bool,
    timestamps: bool,
    tail: Option<usize>,
) -> Result<Vec<JoinHandle<()>>> {
    follow_with(root, runroot, ms, colour, timestamps, tail, true, true)
}

#[allow(clippy::too_many_arguments)]
fn follow_with(
    root: &Path,
    runroot: &Path,
    ms: &[Member],
    colour: bool,
    timestamps: bool,
    tail: Option<usize>,
    keep_following: bool,
    prefix: bool,
) -> Result<Vec<JoinHandle<()>>> {
    let colour = colour && std::io::stdout().is_terminal();
    let width = ms.iter().map(|m| m.record.name.len()).max().unwrap_or(0);
    let out = Arc::new(Mutex::new(()));
    let mut handles = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        let head = if !prefix {
            String::new()
        } else if colour {
            format!(
                "\x1b[{}m{:<width$}  |\x1b[0m ",
                COLOURS[i % COLOURS.len()],
                m.record.name
            )
        } else {
            format!("{:<width$}  | ", m.record.name)
        };
        let (root, runroot, id) = (
            root.to_path_buf(),
            runroot.to_path_buf(),
            m.record.id.clone(),
        );
        let out = Arc::clone(&out);
        handles.push(std::thread::spawn(move || {
            // An engine of its own: a connection is not shared across threads.
            let Ok(engine) = Engine::open(&root, &runroot) else {
                return;
            };
            let mut opts = LogOptions::default();
            opts.follow = keep_following;
            opts.timestamps = timestamps;
            opts.tail = tail;
            let Ok(stream) = engine.container_logs(&id, &opts) else {
                return;
            };
            for e in stream {
                let Ok(e) = e else { break };
                let text = e.text(timestamps);
                let _guard = out.lock();
                let mut o = std::io::stdout().lock();
                let mut failed = false;
                for line in text.split_inclusive('\n') {
                    failed |= write!(o, "{head}{line}").is_err();
                    if !line.ends_with('\n') {
                        failed |= writeln!(o).is_err();
                    }
                }
                if failed || o.flush().is_err() {
                    break; // our reader went away
                }
            }
        }));
    }
    Ok(handles)
}

pub fn logs(root: &Path, runroot: &Path, p: &Project, a: &LogsArgs) -> Result<i32> {
    let engine = open(root, runroot)?;
    let wanted = chosen(p, &a.services)?;
    let ms: Vec<Member> = members::list(&engine, &p.name)?
        .into_iter()
        .filter(|m| wanted.contains(&m.service))
        .collect();
    drop(engine);
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}: a number or \"all\""))?,
        ),
    };
    for h in follow_with(
        root,
        runroot,
        &ms,
        !a.no_color,
        a.timestamps,
        tail,
        a.follow,
        !a.no_log_prefix,
    )? {
        let _ = h.join();
    }
    Ok(0)
}

pub fn top(root: &Path, runroot: &Path, p: &Project, services: &[String]) -> Result<i32> {
    let engine = open(root, runroot)?;
    for m in crate::compose_up::members_of(&engine, p, services)? {
        if m.record.status != Status::Running {
            continue;
        }
        let t = engine.container_top(
            &m.record.id,
            &berth_engine::lifecycle::TopOptions::default(),
        )?;
        println!("{}", m.record.name);
        println!("{}", crate::lifecycle::top_table(&t, 0));
    }
    Ok(0)
}

pub fn port(
    root: &Path,
    runroot: &Path,
    p: &Project,
    service: &str,
    index: u32,
    private: u16,
    proto: &str,
) -> Result<i32> {
    let engine = open(root, runroot)?;
    p.service(service)?;
    let m = members::list(&engine, &p.name)?
        .into_iter()
        .find(|m| m.service == service && !m.oneoff && m.number == index)
        .with_context(|| format!("service {service:?} has no container {index}"))?;
    let ports = engine.container_ports(&m.record.id)?;
    match ports
        .iter()
        .find(|pm| pm.container_port == private && pm.proto.as_str() == proto)
    {
        Some(pm) => println!("{}", pm.host_display()),
        None => bail!("no port {private}/{proto} published for {}", m.record.name),
    }
    Ok(0)
}

pub fn images(root: &Path, runroot: &Path, p: &Project, quiet: bool) -> Result<i32> {
    let engine = open(root, runroot)?;
    let ms = members::list(&engine, &p.name)?;
    if !quiet {
        println!(
            "{:<24}{:<24}{:<16}IMAGE ID",
            "CONTAINER", "REPOSITORY", "TAG"
        );
    }
    for m in ms {
        let id = m.record.image_id.trim_start_matches("sha256:");
        if quiet {
            println!("{id}");
            continue;
        }
        let image = m
            .record
            .config
            .labels
            .get(labels::IMAGE)
            .cloned()
            .unwrap_or_else(|| m.record.config.image.clone());
        let (repo, tag) = image
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .unwrap_or((image.as_str(), "latest"));
        println!(
            "{:<24}{:<24}{:<16}{}",
            m.record.name,
            repo,
            tag,
            &id[..id.len().min(12)]
        );
    }
    Ok(0)
}

/// `ls`: projects found by their containers' labels.
pub fn ls(root: &Path, runroot: &Path, all: bool, quiet: bool) -> Result<i32> {
    let engine = open(root, runroot)?;
    let mut projects: std::collections::BTreeMap<String, (usize, usize, String)> =
        Default::default();
    for r in engine.list()? {
        let Some(name) = r.config.labels.get(labels::PROJECT) else {
            continue;
        };
        let e = projects.entry(name.clone()).or_default();
        e.0 += 1;
        if r.status.is_active() {
            e.1 += 1;
        }
        e.2 = r
            .config
            .labels
            .get(labels::CONFIG_FILES)
            .cloned()
            .unwrap_or_default();
    }
    if !quiet {
        println!("{:<24}{:<16}CONFIG FILES", "NAME", "STATUS");
    }
    for (name, (total, running, files)) in projects {
        if running == 0 && !all {
            continue;
        }
        if quiet {
            println!("{name}");
            continue;
        }
        let status = if running == total {
            format!("running({running})")
        } else if running == 0 {
            format!("exited({total})")
        } else {
            format!("running({running}), exited({})", total - running)
        };
        println!("{name:<24}{status:<16}{files}");
    }
    Ok(0)
}

/// `events`: the container events of the project's containers (those of
/// `services` when named), as they happen, until interrupted.
pub fn events(
    root: &Path,
    runroot: &Path,
    p: &Project,
    json: bool,
    services: &[String],
) -> Result<i32> {
    let engine = open(root, runroot)?;
    let wanted = chosen(p, services)?;
    let mut opts = berth_engine::events::EventOptions::default();
    opts.filters.push(("type".into(), "container".into()));
    // Whose container each id is (None: not the project's), asked once
    // per id: containers made after the stream began are found too.
    let mut known: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut out = std::io::stdout().lock();
    for e in engine.events(&opts)? {
        let e = e?;
        // The project's service a set of labels names.
        let service_in = |l: &std::collections::BTreeMap<String, String>| {
            (l.get(labels::PROJECT) == Some(&p.name))
                .then(|| l.get(labels::SERVICE).cloned())
                .flatten()
        };
        // The event's own labels name it (the container may be gone by
        // the time its event is read); a stored container otherwise.
        let service = known
            .entry(e.actor.clone())
            .or_insert_with(|| {
                service_in(&e.attributes).or_else(|| {
                    engine
                        .find(&e.actor)
                        .ok()
                        .and_then(|r| service_in(&r.config.labels))
                })
            })
            .clone();
        let Some(service) = service.filter(|s| wanted.contains(s)) else {
            continue;
        };
        let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.time_nano))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let written = if json {
            let v = serde_json::json!({
                "time": time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "type": "container", "action": e.action, "id": e.actor, "service": service,
                "attributes": e.attributes,
            });
            writeln!(out, "{v}")
        } else {
            let attrs: Vec<String> = e
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let stamp = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second(),
                time.microsecond()
            );
            writeln!(
                out,
                "{stamp} container {} {} ({})",
                e.action,
                e.actor,
                attrs.join(", ")
            )
        };
        if written.and_then(|()| out.flush()).is_err() {
            break; // our reader went away
        }
    }
    Ok(0)
}
