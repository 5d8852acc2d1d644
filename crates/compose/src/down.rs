//! `down`: the project's containers stopped (a dependency level at a
//! time, dependents first) and removed together, then
//! its networks, and with `volumes` its named volumes (and the containers'
//! anonymous ones); `--remove-orphans` takes the containers of services
//! the files no longer have.

use berth_engine::lifecycle::KillOptions;
use berth_engine::Engine;

use crate::error::{Error, Result};
use crate::members::{self, Member};
use crate::up::{remove_member, Step};
use crate::Project;

/// `down`'s options.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// `-v`.
    pub volumes: bool,
    pub remove_orphans: bool,
    /// `-t`: seconds before SIGKILL.
    pub timeout: Option<u32>,
}

/// Takes the project down.
pub fn down(
    engine: &Engine,
    p: &Project,
    opts: &DownOptions,
    report: &mut dyn FnMut(Step),
) -> Result<()> {
    let all = members::list(engine, &p.name)?;
    let (mine, orphans): (Vec<Member>, Vec<Member>) = all
        .into_iter()
        .partition(|m| m.oneoff || p.knows(&m.service));
    let mut gone = mine;
    if opts.remove_orphans {
        gone.extend(orphans);
    } else if !orphans.is_empty() {
        let names: Vec<&str> = orphans.iter().map(|m| m.record.name.as_str()).collect();
        report(Step {
            kind: "Warning",
            name: p.name.clone(),
            state: format!("found orphan containers ([{}]) for this project: run down with --remove-orphans to remove them", names.join(" ")),
        });
    }
    stop_in_order(engine, p, &gone, opts.timeout)?;
    remove_together(engine, &gone, opts.volumes, report)?;
    for key in p.network_names() {
        if p.external("networks", &key) {
            continue;
        }
        let name = p.resource_name("networks", &key);
        if engine.network_lookup(&name).is_err() {
            continue;
        }
        engine
            .network_remove(&name)
            .map_err(Error::engine(format!("remove network {name}")))?;
        report(Step {
            kind: "Network",
            name,
            state: "Removed".into(),
        });
    }
    if opts.volumes {
        for key in p.volume_names() {
            if p.external("volumes", &key) {
                continue;
            }
            let name = p.resource_name("volumes", &key);
            if engine.volume(&name).is_err() {
                continue;
            }
            engine
                .remove_volume(&name)
                .map_err(Error::engine(format!("remove volume {name}")))?;
            report(Step {
                kind: "Volume",
                name,
                state: "Removed".into(),
            });
        }
    }
    Ok(())
}

/// Removes the (stopped) containers at once, one thread and one
/// connection to the store each: a removal is mostly unmounting and
/// unlinking, which overlap well. Nothing here forks.
fn remove_together(
    engine: &Engine,
    members: &[Member],
    anonymous: bool,
    report: &mut dyn FnMut(Step),
) -> Result<()> {
    let (root, runroot) = (engine.root().to_path_buf(), engine.runroot().to_path_buf());
    let results: Vec<(String, Result<()>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .iter()
            .map(|m| {
                let (root, runroot) = (&root, &runroot);
                scope.spawn(move || {
                    let done = berth_engine::Engine::open(root, runroot)
                        .map_err(Error::engine(format!("remove {}", m.record.name)))
                        .and_then(|e| remove_member(&e, m, Some(0), anonymous));
                    (m.record.name.clone(), done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        String::new(),
                        Err(Error::Option("a removal thread panicked".into())),
                    )
                })
            })
            .collect()
    });
    let mut first_error = None;
    for (name, r) in results {
        match r {
            Ok(()) => report(Step {
                kind: "Container",
                name,
                state: "Removed".into(),
            }),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Stops the members in reverse dependency order, as Compose does (a
/// service stops before what it depends on, so that it may still use it
/// while it ends): the containers of one dependency level get their stop
/// signal together, and the next level's once those processes have ended
/// (or were killed past the stop timeout). Their monitors' bookkeeping
/// (the exit recorded, the runtime's container and veths gone) is waited
/// for once, for all, at the end. One-off containers and those of services
/// the files no longer have go with the first level.
pub fn stop_in_order(
    engine: &Engine,
    p: &Project,
    members: &[Member],
    timeout: Option<u32>,
) -> Result<()> {
    let services: Vec<String> = p
        .services()
        .map(|(n, _)| n.to_string())
        .filter(|n| members.iter().any(|m| m.service == *n))
        .collect();
    let mut levels = crate::up::levels(p, &services)?;
    levels.reverse();
    let mut first = true;
    let mut batches: Vec<Vec<Member>> = Vec::new();
    for level in levels {
        batches.push(
            members
                .iter()
                .filter(|m| {
                    (level.contains(&m.service) && !m.oneoff)
                        || (first && (m.oneoff || !p.knows(&m.service)))
                })
                .cloned()
                .collect(),
        );
        first = false;
    }
    if first {
        // No service of the files has a container: only one-offs and
        // orphans.
        batches.push(members.to_vec());
    }
    let last = batches.len().saturating_sub(1);
    for (i, batch) in batches.iter().enumerate() {
        signal_all(engine, batch)?;
        if i < last {
            wait_ended(engine, batch, timeout)?;
        }
    }
    settle_all(engine, members, timeout)
}

/// Waits until the processes of `members` have ended, each within its stop
/// timeout (`timeout`, else its own, else 10 s); one still running then is
/// stopped at once (SIGKILL).
fn wait_ended(engine: &Engine, members: &[Member], timeout: Option<u32>) -> Result<()> {
    let start = std::time::Instant::now();
    let mut delay = 1;
    let mut left: Vec<&Member> = members
        .iter()
        .filter(|m| m.record.status.is_active())
        .collect();
    while !left.is_empty() {
        let mut late = Vec::new();
        left.retain(|m| {
            if !berth_engine::alive(m.record.pid, m.record.pid_start) {
                return false;
            }
            let limit = timeout.or(m.record.config.stop_timeout).unwrap_or(10);
            if start.elapsed() >= std::time::Duration::from_secs(limit.into()) {
                late.push(*m);
                return false;
            }
            true
        });
        let mut kill = berth_engine::lifecycle::StopOptions::default();
        kill.timeout = Some(0);
        for m in late {
            match engine.container_stop(&m.record.id, &kill) {
                Err(e) if e.kind() != berth_engine::ErrorKind::NotFound => {
                    return Err(Error::engine(format!("stop {}", m.record.name))(e))
                }
                _ => {}
            }
        }
        if !left.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(delay));
            delay = (delay * 2).min(5);
        }
    }
    Ok(())
}

/// Sends every running container its stop signal at once, then waits for
/// each (the engine's stop, which kills after the timeout): the project
/// stops in about the time its slowest container takes, not their sum.
pub fn stop_together(engine: &Engine, members: &[Member], timeout: Option<u32>) -> Result<()> {
    signal_all(engine, members)?;
    settle_all(engine, members, timeout)
}

/// Sends every running container of `members` its stop signal.
fn signal_all(engine: &Engine, members: &[Member]) -> Result<()> {
    for m in members.iter().filter(|m| m.record.status.is_active()) {
        engine
            .db()
            .set_stopped_by_user(&m.record.id, true)
            .map_err(Error::engine(format!("stop {}", m.record.name)))?;
        let sig = if m.record.config.stop_signal.is_empty() {
            libc::SIGTERM
        } else {
            berth_runtime_signal(&m.record.config.stop_signal)
        };
        let mut k = KillOptions::default();
        k.signal = Some(sig);
        // Already gone, or restarting: the stop that settles it says.
        let _ = engine.container_kill(&m.record.id, &k);
    }
    Ok(())
}

/// The engine's stop of each (signalled) running container: its exit
/// recorded, SIGKILL past the timeout.
fn settle_all(engine: &Engine, members: &[Member], timeout: Option<u32>) -> Result<()> {
    for m in members.iter().filter(|m| m.record.status.is_active()) {
        let mut s = berth_engine::lifecycle::StopOptions::default();
        s.timeout = timeout;
        match engine.container_stop(&m.record.id, &s) {
            Err(e) if e.kind() != berth_engine::ErrorKind::NotFound => {
                return Err(Error::engine(format!("stop {}", m.record.name))(e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A stop signal's number (SIGTERM for one berth cannot read: the engine's
/// stop reports that one itself).
fn berth_runtime_signal(name: &str) -> i32 {
    let n = name.trim_start_matches("SIG").to_ascii_uppercase();
    match n.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        other => other.parse().unwrap_or(libc::SIGTERM),
    }
}
