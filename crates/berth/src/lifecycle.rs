//! The verbs that manage existing containers: stop, restart, kill, rm,
//! wait, rename, pause, unpause, update, top, diff, export, commit, port.
//! Flags in, one engine call per container, docker's words out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_engine::changes::CommitOptions;
use berth_engine::config::RestartPolicy;
use berth_engine::lifecycle::{
    KillOptions, RemoveOptions, StopOptions, TopOptions, UpdateOptions, WaitOptions,
};
use berth_engine::Engine;
use clap::Args;

use crate::run_flags::ResourceArgs;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Applies `f` to each named container, printing the name given as docker
/// does; errors are printed and make the exit code 1.
fn each(
    engine: &Engine,
    names: &[String],
    f: impl Fn(&Engine, &str) -> berth_engine::Result<()>,
) -> Result<i32> {
    each_worded(engine, names, |_| String::new(), f)
}

/// [`each`], with what docker's daemon puts before each failure's reason
/// (`kill`'s "Cannot kill container: NAME: ").
fn each_worded(
    engine: &Engine,
    names: &[String],
    before: impl Fn(&str) -> String,
    f: impl Fn(&Engine, &str) -> berth_engine::Result<()>,
) -> Result<i32> {
    let mut code = 0;
    for n in names {
        match f(engine, n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                let e = anyhow::Error::from(e);
                match crate::damaged_database(engine.root(), e.as_ref()) {
                    Some(line) => eprintln!("Error: {line}"),
                    None => eprintln!("Error response from daemon: {}{e:#}", before(n)),
                }
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `-t` as the engine takes it: docker's daemon waits without end for a
/// negative time; the longest wait the engine knows (136 years) is that.
fn grace(time: Option<i64>) -> Option<u32> {
    time.map(|t| u32::try_from(t).unwrap_or(u32::MAX))
}

pub(crate) fn stop(engine: &Engine, time: Option<i64>, names: &[String]) -> Result<i32> {
    let mut opts = StopOptions::default();
    opts.timeout = grace(time);
    each(engine, names, |e, n| e.container_stop(n, &opts))
}

pub(crate) fn restart(engine: &Engine, time: Option<i64>, names: &[String]) -> Result<i32> {
    let mut opts = StopOptions::default();
    opts.timeout = grace(time);
    each(engine, names, |e, n| e.container_restart(n, &opts))
}

pub(crate) fn kill(engine: &Engine, signal: &str, names: &[String]) -> Result<i32> {
    let mut opts = KillOptions::default();
    opts.signal = match berth_runtime::signal::parse_signal(signal) {
        Ok(s) => Some(s),
        // docker's daemon refuses the signal for each container named.
        Err(_) => {
            for _ in names {
                eprintln!("Error response from daemon: Invalid signal: {signal}");
            }
            return Ok(1);
        }
    };
    // docker's words: "Cannot kill container: NAME: <why>".
    each_worded(
        engine,
        names,
        |n| format!("Cannot kill container: {n}: "),
        |e, n| e.container_kill(n, &opts),
    )
}

pub(crate) fn rm(engine: &Engine, force: bool, volumes: bool, names: &[String]) -> Result<i32> {
    let mut opts = RemoveOptions::default();
    opts.force = force;
    opts.volumes = volumes;
    let mut code = 0;
    for n in names {
        match engine.container_remove(n, &opts) {
            Ok(()) => println!("{n}"),
            // Docker's client words; with -f no failure (teardown
            // scripts under `set -e` rely on it).
            Err(e @ berth_engine::Error::NoSuchContainer(_)) => {
                eprintln!("Error: {e}");
                if !force {
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

pub(crate) fn wait(engine: &Engine, names: &[String]) -> Result<i32> {
    let mut failed = false;
    for c in names {
        match engine.container_wait(c, &WaitOptions::default()) {
            Ok(r) => println!("{}", r.exit_code),
            Err(e) => {
                match crate::damaged_database(engine.root(), &e) {
                    Some(line) => eprintln!("Error: {line}"),
                    None => eprintln!("Error response from daemon: {e}"),
                }
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

pub(crate) fn pause(engine: &Engine, names: &[String], paused: bool) -> Result<i32> {
    each(engine, names, |e, n| {
        if paused {
            e.container_pause(n)
        } else {
            e.container_unpause(n)
        }
    })
}

pub(crate) fn update(engine: &Engine, a: &UpdateArgs) -> Result<i32> {
    if a.resources.is_empty() && a.restart.is_none() {
        return Err(crate::ClientSide(
            "you must provide one or more flags when using this command".into(),
        )
        .into());
    }
    let mut opts = UpdateOptions::default();
    opts.resources = a.resources.resources()?;
    opts.restart = a
        .restart
        .as_deref()
        .map(RestartPolicy::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let code = each(engine, &a.containers, |e, n| e.container_update(n, &opts))?;
    // The daemon's warnings, after the names, on stdout as docker's client
    // prints them.
    if opts.resources.kernel_memory.is_some_and(|k| k > 0) {
        println!("Specifying a kernel memory limit is deprecated and will be removed in a future release.");
    }
    Ok(code)
}

/// `docker top`: the host's `ps` (default `-ef`) limited to the container's
/// processes, header kept.
pub(crate) fn top(engine: &Engine, container: &str, ps_options: &[String]) -> Result<i32> {
    let mut opts = TopOptions::default();
    opts.ps_args = ps_options.to_vec();
    let report = engine.container_top(container, &opts)?;
    // docker's client: a tabwriter with columns at least 20 wide, 3 apart.
    std::io::stdout()
        .lock()
        .write_all(top_table(&report, 20).as_bytes())?;
    Ok(0)
}

/// `report` as a table: its titles, then a row per process, in columns
/// at least `minwidth` wide and 3 apart (Go's tabwriter).
pub(crate) fn top_table(report: &berth_engine::lifecycle::TopReport, minwidth: usize) -> String {
    let mut text = report.titles.join("\t") + "\n";
    for row in &report.processes {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    berth_template::tabwriter::align(&text, minwidth, 3)
}

pub(crate) fn diff(engine: &Engine, container: &str) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    for c in engine.container_diff(container)? {
        writeln!(out, "{} {}", c.kind.letter(), c.path)?;
    }
    Ok(0)
}

pub(crate) fn export(engine: &Engine, output: Option<&PathBuf>, container: &str) -> Result<i32> {
    match output {
        Some(p) => {
            // Docker's client finds the container before it makes the file.
            engine.find(container)?;
            let f = std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?;
            engine.container_export(container, std::io::BufWriter::new(f))?;
        }
        None => {
            engine.find(container)?;
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            engine
                .container_export(container, std::io::BufWriter::new(std::io::stdout().lock()))?;
        }
    }
    Ok(0)
}

pub(crate) struct CommitArgs<'a> {
    pub change: &'a [String],
    pub message: Option<&'a str>,
    pub author: Option<&'a str>,
    pub pause: bool,
    pub container: &'a str,
    pub reference: Option<&'a str>,
}

pub(crate) fn commit(engine: &mut Engine, a: &CommitArgs) -> Result<i32> {
    engine.find(a.container)?;
    let mut opts = CommitOptions::default();
    opts.tags = a
        .reference
        .iter()
        .map(|t| {
            t.parse::<berth_image::Reference>()
                .map_err(|e| anyhow::anyhow!("{t:?}: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    opts.changes = a.change.to_vec();
    opts.message = a.message.map(str::to_string);
    opts.author = a.author.map(str::to_string);
    opts.pause = a.pause;
    let img = engine.container_commit(a.container, &opts)?;
    println!("{}", img.id);
    Ok(0)
}

pub(crate) fn rename(engine: &Engine, container: &str, new_name: &str) -> Result<i32> {
    engine.container_rename(container, new_name)?;
    Ok(0)
}

/// `port`: the container's published ports, or where one port is
/// published.
pub(crate) fn port(engine: &Engine, container: &str, port: Option<&str>) -> Result<i32> {
    let ports = engine.container_ports(container)?;
    let want = match port {
        Some(p) => {
            let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let num: u16 = num
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid port {p:?}: expected PORT[/PROTO]"))?;
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
