//! `berth compose up/down/create/start/stop/restart/kill/rm/pause/unpause`:
//! flags in, one berth-compose call, Compose's progress lines on stderr.
//! An attached `up` follows every container's output with coloured
//! `name  | ` prefixes and stops them all on ctrl-c.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_compose::down::{down, DownOptions};
use berth_compose::members::{self, Member};
use berth_compose::up::{up, Step, UpOptions};
use berth_compose::Project;
use berth_engine::Engine;
use clap::Args;

use crate::compose::{chosen, ComposeCommand};
pub use crate::compose_images::front_end_images;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detached: run the containers in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Do not build an image, even if it is missing
    #[arg(long)]
    pub no_build: bool,
    /// Pull images: always, missing, never
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Recreate containers even if their configuration has not changed
    #[arg(long)]
    pub force_recreate: bool,
    /// Do not recreate containers that exist
    #[arg(long)]
    pub no_recreate: bool,
    /// Do not start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Scale SERVICE to NUM instances
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Wait for services to be running or healthy (implies -d)
    #[arg(long)]
    pub wait: bool,
    /// Most seconds to wait for the project (and for each dependency)
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Stop all containers if any container was stopped
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// The exit code of this service's container (implies --abort-on-container-exit)
    #[arg(long, value_name = "SERVICE")]
    pub exit_code_from: Option<String>,
    /// Remove containers of services not in the files
    #[arg(long)]
    pub remove_orphans: bool,
    /// Seconds to wait when stopping containers being recreated
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<u32>,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove the named volumes of the file and the containers' anonymous volumes
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove containers of services not in the files
    #[arg(long)]
    pub remove_orphans: bool,
    /// Seconds to wait before killing
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<u32>,
    /// Remove images: local (those built without a name) or all
    #[arg(long, value_name = "TYPE")]
    pub rmi: Option<String>,
}

fn open(root: &Path, runroot: &Path) -> Result<Engine> {
    Engine::open(root, runroot).with_context(|| format!("open the store at {}", root.display()))
}

/// Compose's progress line.
pub fn step(s: Step) {
    if s.kind == "Warning" {
        eprintln!("berth compose: warning: {}", s.state);
    } else {
        eprintln!(" \u{2714} {} {}  {}", s.kind, s.name, s.state);
    }
}

fn up_options(a: &UpArgs, no_start: bool) -> Result<UpOptions> {
    let mut scale = BTreeMap::new();
    for s in &a.scale {
        let Some((svc, n)) = s.split_once('=') else {
            bail!("invalid --scale {s:?}: want SERVICE=NUM");
        };
        let n: u32 = n
            .parse()
            .with_context(|| format!("invalid --scale {s:?}: {n:?} is not a number"))?;
        scale.insert(svc.to_string(), n);
    }
    if a.force_recreate && a.no_recreate {
        bail!("--force-recreate and --no-recreate are incompatible");
    }
    if let Some(p) = &a.pull {
        if !["always", "missing", "never"].contains(&p.as_str()) {
            bail!("invalid --pull {p:?}: always, missing or never");
        }
    }
    let o = UpOptions {
        services: a.services.clone(),
        no_deps: a.no_deps,
        force_recreate: a.force_recreate,
        no_recreate: a.no_recreate,
        scale,
        remove_orphans: a.remove_orphans,
        build: a.build,
        no_build: a.no_build,
        pull: a.pull.clone(),
        timeout: a.timeout,
        wait_timeout: a.wait_timeout.map(Duration::from_secs),
        no_start,
    };
    if a.build && a.no_build {
        bail!("--build and --no-build are incompatible");
    }
    Ok(o)
}

/// The container commands of a loaded project.
pub fn run(root: &Path, runroot: &Path, p: &Project, c: &ComposeCommand) -> Result<i32> {
    let mut engine = open(root, runroot)?;
    let mut images = front_end_images(root, runroot);
    match c {
        ComposeCommand::Up(a) | ComposeCommand::Create(a) => {
            let create_only = matches!(c, ComposeCommand::Create(_));
            for w in p.unsupported_keys() {
                eprintln!("berth compose: warning: {w}");
            }
            let opts = up_options(a, create_only)?;
            let members = up(&mut engine, p, &opts, &mut images, &mut step)?;
            if create_only {
                return Ok(0);
            }
            if a.wait {
                let wanted = berth_compose::up::selected(p, &a.services, a.no_deps);
                let deadline = std::time::Instant::now()
                    + opts.wait_timeout.unwrap_or(Duration::from_secs(300));
                berth_compose::wait::running_or_healthy(&engine, p, &wanted, deadline, &mut step)?;
                return Ok(0);
            }
            if a.detach {
                return Ok(0);
            }
            let members: Vec<Member> = members
                .into_iter()
                .filter(|m| {
                    !m.oneoff
                        && (a.services.is_empty()
                            || berth_compose::up::selected(p, &a.services, a.no_deps)
                                .contains(&m.service))
                })
                .collect();
            drop(engine);
            attached(root, runroot, p, members, a)
        }
        ComposeCommand::Down(a) => {
            if let Some(r) = &a.rmi {
                if r != "local" && r != "all" {
                    bail!("invalid --rmi {r:?}: local or all");
                }
            }
            let opts = DownOptions {
                volumes: a.volumes,
                remove_orphans: a.remove_orphans,
                timeout: a.timeout,
            };
            down(&engine, p, &opts, &mut step)?;
            if let Some(r) = &a.rmi {
                for (name, s) in p.services() {
                    if r == "all" || s.get("image").is_none() {
                        let image = berth_compose::service::image_name(p, name, s);
                        if engine.remove_image(&image, false).is_ok() {
                            step(Step {
                                kind: "Image",
                                name: image,
                                state: "Removed".into(),
                            });
                        }
                    }
                }
            }
            Ok(0)
        }
        ComposeCommand::Scale { no_deps, services } => {
            // Compose v2's scale: `up -d` of the named services at those
            // counts, the containers that exist left as they are.
            #[derive(clap::Parser)]
            struct Words {
                #[command(flatten)]
                a: UpArgs,
            }
            let mut a = <Words as clap::Parser>::parse_from(["up", "-d", "--no-recreate"]).a;
            a.no_deps = *no_deps;
            for s in services {
                let Some((svc, _)) = s.split_once('=') else {
                    bail!("invalid scale argument {s:?}: want SERVICE=REPLICAS");
                };
                a.scale.push(s.clone());
                a.services.push(svc.to_string());
            }
            up(
                &mut engine,
                p,
                &up_options(&a, false)?,
                &mut images,
                &mut step,
            )?;
            Ok(0)
        }
        ComposeCommand::Start { services } => {
            // A dependency level at a time, its containers together;
            // running ones are left as they are, as Compose does.
            let ms = members_of(&engine, p, services)?;
            for level in berth_compose::up::levels(p, &chosen(p, services)?)? {
                let mut stopped = Vec::new();
                for m in ms.iter().filter(|m| level.contains(&m.service)) {
                    if m.record.status.is_active() {
                        step(Step {
                            kind: "Container",
                            name: m.record.name.clone(),
                            state: "Started".into(),
                        });
                    } else {
                        stopped.push(m.record.clone());
                    }
                }
                berth_compose::up::start_all(&engine, &stopped, &mut step)?;
            }
            Ok(0)
        }
        ComposeCommand::Stop { timeout, services } => {
            let ms = members_of(&engine, p, services)?;
            berth_compose::down::stop_in_order(&engine, p, &ms, *timeout)?;
            ms.iter().for_each(|m| {
                step(Step {
                    kind: "Container",
                    name: m.record.name.clone(),
                    state: "Stopped".into(),
                })
            });
            Ok(0)
        }
        ComposeCommand::Restart { timeout, services } => {
            // As Compose v2: a dependency level at a time, what it depends
            // on first; the containers of a level stopped together, then
            // started together.
            let ms = members_of(&engine, p, services)?;
            for level in berth_compose::up::levels(p, &chosen(p, services)?)? {
                let mine: Vec<Member> = ms
                    .iter()
                    .filter(|m| level.contains(&m.service))
                    .cloned()
                    .collect();
                berth_compose::down::stop_together(&engine, &mine, *timeout)?;
                let records: Vec<_> = mine.into_iter().map(|m| m.record).collect();
                berth_compose::up::start_all(&engine, &records, &mut step)?;
                // Docker's restart event, as the engine's restart sends.
                for r in &records {
                    engine.db().container_event(r, "restart", &[]);
                }
            }
            Ok(0)
        }
        ComposeCommand::Kill { signal, services } => {
            let sig =
                berth_runtime::signal::parse_signal(signal).map_err(|e| anyhow::anyhow!("{e}"))?;
            let running: Vec<String> = services.clone();
            each(&engine, p, &running, "Killed", |e, m| {
                if !m.record.status.is_active() {
                    return Ok(());
                }
                let mut k = berth_engine::lifecycle::KillOptions::default();
                k.signal = Some(sig);
                e.container_kill(&m.record.id, &k).map_err(Into::into)
            })
        }
        ComposeCommand::Rm {
            force,
            stop,
            volumes,
            services,
        } => {
            let ms = members_of(&engine, p, services)?;
            if *stop {
                // A service before what it depends on, as docker-compose
                // 1.29's `rm -s` (its project.stop) and `stop` do.
                berth_compose::down::stop_in_order(&engine, p, &ms, None)?;
            }
            let mut stopped = Vec::new();
            for m in &ms {
                let r = engine.find(&m.record.id)?;
                if !r.status.is_active() {
                    stopped.push(r);
                }
            }
            // docker-compose 1.29's words, on stdout: what would go, and
            // without -f a question whose answer must be y or yes (end of
            // input: no, nothing removed, exit 0).
            if stopped.is_empty() {
                println!("No stopped containers");
                return Ok(0);
            }
            if !*force {
                let names: Vec<&str> = stopped.iter().map(|r| r.name.as_str()).collect();
                if !confirm_removal(&names)? {
                    return Ok(0);
                }
            }
            for r in stopped {
                let mut o = berth_engine::lifecycle::RemoveOptions::default();
                o.volumes = *volumes;
                engine.container_remove(&r.id, &o)?;
                step(Step {
                    kind: "Container",
                    name: r.name.clone(),
                    state: "Removed".into(),
                });
            }
            Ok(0)
        }
        ComposeCommand::Pause { services } => each(&engine, p, services, "Paused", |e, m| {
            e.container_pause(&m.record.id).map_err(Into::into)
        }),
        ComposeCommand::Unpause { services } => each(&engine, p, services, "Unpaused", |e, m| {
            e.container_unpause(&m.record.id).map_err(Into::into)
        }),
        ComposeCommand::Build { .. }
        | ComposeCommand::Pull { .. }
        | ComposeCommand::Push { .. } => crate::compose_images::run(&mut engine, p, c, &mut images),
        other => bail!("berth compose: {other:?} is not handled here"),
    }
}

/// docker-compose 1.29's question before `rm` without -f (its `yesno`):
/// the containers named, then one line of stdin; y or yes (any case)
/// removes them.
fn confirm_removal(names: &[&str]) -> Result<bool> {
    use std::io::{BufRead, Write};
    let mut out = std::io::stdout().lock();
    writeln!(out, "Going to remove {}", names.join(", "))?;
    write!(out, "Are you sure? [yN] ")?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// The project's service containers of `services` (all when empty).
pub fn members_of(engine: &Engine, p: &Project, services: &[String]) -> Result<Vec<Member>> {
    let wanted = chosen(p, services)?;
    Ok(members::list(engine, &p.name)?
        .into_iter()
        .filter(|m| !m.oneoff && wanted.contains(&m.service))
        .collect())
}

fn each(
    engine: &Engine,
    p: &Project,
    services: &[String],
    done: &str,
    f: impl Fn(&Engine, &Member) -> Result<()>,
) -> Result<i32> {
    for m in members_of(engine, p, services)? {
        f(engine, &m)?;
        step(Step {
            kind: "Container",
            name: m.record.name.clone(),
            state: done.into(),
        });
    }
    Ok(0)
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Follows every container's output until they all stop; ctrl-c (or,
/// with --abort-on-container-exit, the first exit) stops them all.
fn attached(
    root: &Path,
    runroot: &Path,
    p: &Project,
    members: Vec<Member>,
    a: &UpArgs,
) -> Result<i32> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { sigaction(s, &act) }.context("catch ctrl-c")?;
    }
    let abort = a.abort_on_container_exit || a.exit_code_from.is_some();
    let followers = crate::compose_ps::follow(root, runroot, &members, !a.no_color, false, None)?;
    let engine = open(root, runroot)?;
    let mut stopping = false;
    let mut exited = std::collections::BTreeSet::new();
    loop {
        let done = followers.iter().all(std::thread::JoinHandle::is_finished);
        // Compose's line for each container whose output ended (its
        // follower is done), once, after its last lines.
        for (m, f) in members.iter().zip(&followers) {
            if f.is_finished() && exited.insert(m.record.id.clone()) {
                if let Ok(r) = engine.find(&m.record.id) {
                    println!("{} exited with code {}", r.name, r.exit_code);
                }
            }
        }
        if done {
            break;
        }
        let exited = abort
            && members.iter().any(|m| {
                engine
                    .find(&m.record.id)
                    .is_ok_and(|r| !r.status.is_active())
            });
        if !stopping && (INTERRUPTED.load(Ordering::SeqCst) || exited) {
            stopping = true;
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            let now = members::list(&engine, &p.name)?;
            let mine: Vec<Member> = now
                .into_iter()
                .filter(|m| members.iter().any(|o| o.record.id == m.record.id))
                .collect();
            berth_compose::down::stop_together(&engine, &mine, a.timeout)?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for f in followers {
        let _ = f.join();
    }
    if let Some(svc) = &a.exit_code_from {
        let m = members
            .iter()
            .find(|m| &m.service == svc)
            .with_context(|| format!("no such service: {svc}"))?;
        return Ok(engine.find(&m.record.id)?.exit_code);
    }
    Ok(if stopping && INTERRUPTED.load(Ordering::SeqCst) {
        130
    } else {
        0
    })
}
