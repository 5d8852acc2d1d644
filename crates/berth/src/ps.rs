//! `ps` (`container ls`): the container table.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use berth_engine::{Engine, Record, Status};
use clap::Args;

use crate::format;
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running)
    #[arg(short, long)]
    all: bool,
    /// Only ids
    #[arg(short, long)]
    quiet: bool,
    /// The n last created containers (0 or -1: all)
    #[arg(short = 'n', long, allow_negative_numbers = true)]
    last: Option<i64>,
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

pub(crate) fn short(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

/// `Up 5 seconds`, `Exited (0) 3 seconds ago`, `Created`.
pub(crate) fn status_text(r: &Record) -> String {
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

pub(crate) fn command_text(r: &Record, no_trunc: bool) -> String {
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
    let c = if no_trunc {
        c
    } else {
        format::ellipsis(&c, 20)
    };
    // Go's strconv.Quote, as docker's client shows it.
    berth_template::quote(&c)
}

/// `berth container ls`.
pub fn ps_command(root: &Path, runroot: &Path, a: &PsArgs) -> Result<()> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    ps(&engine, a)
}

pub(crate) fn ps(engine: &Engine, a: &PsArgs) -> Result<()> {
    let filters = crate::prune::parse_filters("ps", "-f, --filter", &a.filter)?;
    let mut filter = berth_engine::filters::ContainerFilter::new(engine, filters)
        .map_err(|e| crate::FromDaemon::wrap(e.into(), true))?;
    // -n 0 (as -n -1, docker's default) is no limit.
    let limit = a
        .last
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .or(a.latest.then_some(1));
    let list = filter.apply(engine, engine.list()?, a.all, limit);
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
            let size = reads("Size").then(|| {
                let (rw, root) = engine.container_sizes(r);
                format!("{} (virtual {})", format::size(rw), format::size(root))
            });
            ps_context(&ps_row(engine, r, a.no_trunc, &reads, size))
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

/// One container's row: `reads` says which fields the format reads (the
/// others, costly to compute, stay empty); `size` is the Size column's.
fn ps_row(
    engine: &Engine,
    r: &Record,
    no_trunc: bool,
    reads: &dyn Fn(&str) -> bool,
    size: Option<String>,
) -> PsRow {
    PsRow {
        id: short(&r.id, no_trunc),
        image: r.config.image.clone(),
        command: if reads("Command") {
            command_text(r, no_trunc)
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
        size: size.unwrap_or_default(),
        names: r.name.clone(),
        labels: r.config.labels.clone(),
        mounts: r
            .config
            .mounts
            .iter()
            .map(|m| {
                if no_trunc {
                    m.source.clone()
                } else {
                    format::ellipsis(&m.source, 15)
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
        networks: berth_engine::networking::connected_networks(&r.config)
            .into_iter()
            .filter(|n| !n.is_empty() && !n.starts_with("container:"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Docker's container context for `system df -v`: every field, the Size
/// column the container's own layer.
pub(crate) fn container_context(
    engine: &Engine,
    r: &Record,
    no_trunc: bool,
    size: String,
) -> berth_template::Value {
    ps_context(&ps_row(engine, r, no_trunc, &|_| true, Some(size)))
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

/// `0.0.0.0:8080->80/tcp, 53/udp` as ps shows published and exposed ports.
pub(crate) fn ports_text(engine: &Engine, r: &Record) -> String {
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
