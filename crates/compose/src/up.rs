//! `up`: the project's networks and volumes made, its images pulled or
//! built, each service's containers made to match the model in dependency
//! order (waiting on `depends_on` conditions), orphans reported or
//! removed, and with `--wait` every service running or healthy.
//!
//! A service's containers are recreated only when its configuration hash
//! (the `com.docker.compose.config-hash` label) changed, or when asked.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use berth_engine::lifecycle::{RemoveOptions, StopOptions};
use berth_engine::monitor::Held;
use berth_engine::{Engine, Record, Status};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::members::{self, Member};
use crate::service::{self, labels};
use crate::Project;

/// What `up` reports as it goes: `Container web-1 Started`...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// "Network", "Volume", "Container", "Image".
    pub kind: &'static str,
    pub name: String,
    /// "Creating", "Created", "Started", "Recreated", "Running", "Healthy",
    /// "Waiting", "Removed", "Pulled", "Built", "Warning: ...".
    pub state: String,
}

/// Pulls and builds images: the front end's (registry credentials and
/// progress are its business).
pub trait Images {
    /// Pulls `image` into the engine's store.
    fn pull(&mut self, engine: &mut Engine, image: &str) -> std::result::Result<(), String>;
    /// Builds the service's `build` section as `image`.
    fn build(
        &mut self,
        engine: &mut Engine,
        service: &str,
        build: &Value,
        image: &str,
    ) -> std::result::Result<(), String>;
}

/// `up`'s options.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Only these services (and, without `no_deps`, what they depend on).
    pub services: Vec<String>,
    pub no_deps: bool,
    pub force_recreate: bool,
    pub no_recreate: bool,
    /// `--scale svc=N`.
    pub scale: BTreeMap<String, u32>,
    pub remove_orphans: bool,
    /// `--build`: build images even when present.
    pub build: bool,
    /// `--no-build`: never build.
    pub no_build: bool,
    /// `--pull`: "always", "missing", "never" (default: the service's
    /// pull_policy, else missing).
    pub pull: Option<String>,
    /// Seconds to stop a container being recreated (`-t`).
    pub timeout: Option<u32>,
    /// How long a `depends_on` condition (and `--wait`) may take.
    pub wait_timeout: Option<Duration>,
    /// Create only (`create`): no start.
    pub no_start: bool,
}

/// The default bound on a dependency's condition.
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(300);

/// Brings the project up; returns its containers as they are after.
pub fn up(
    engine: &mut Engine,
    p: &Project,
    opts: &UpOptions,
    images: &mut dyn Images,
    report: &mut dyn FnMut(Step),
) -> Result<Vec<Member>> {
    for s in &opts.services {
        p.service(s)?;
    }
    for s in opts.scale.keys() {
        p.service(s)?;
    }
    let wanted = selected(p, &opts.services, opts.no_deps);
    let order: Vec<String> = p
        .start_order()?
        .into_iter()
        .filter(|s| wanted.contains(s))
        .collect();
    crate::resources::networks(engine, p, &order, report)?;
    crate::resources::volumes(engine, p, &order, report)?;
    let existing = members::list(engine, &p.name)?;
    orphans(engine, p, &existing, opts.remove_orphans, report)?;
    for svc in &order {
        ensure_image(engine, p, svc, opts, images, report)?;
    }
    let deadline = Instant::now() + opts.wait_timeout.unwrap_or(DEPENDENCY_TIMEOUT);
    // Each round starts every service whose dependencies hold, so that
    // services nobody waits on start while others wait on a healthcheck
    // (Compose starts them concurrently; the order of starts is the
    // same as one by one).
    let mut pending: Vec<String> = order;
    let mut waiting: BTreeSet<String> = BTreeSet::new();
    let mut known: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    // The starts of services that wait on others, made ready while they
    // wait (see hold_all); dropped unreleased on an error, which calls
    // them off.
    let mut held: Option<BTreeMap<String, Vec<(Record, Held)>>> = None;
    let mut delay = 2;
    // Woken by a commit (a dependency's health) instead of a tick.
    let store = engine.watch_store();
    while !pending.is_empty() {
        // The services whose dependencies hold now (a dependency level),
        // made to match the model, then started together.
        let mut ready = Vec::new();
        for svc in &pending {
            if opts.no_start
                || dependencies_hold(engine, p, svc, &pending, &mut waiting, &mut known, report)?
            {
                ready.push(svc.clone());
            }
        }
        let mut to_release = Vec::new();
        let mut unheld = Vec::new();
        for svc in &ready {
            match held.as_mut().and_then(|h| h.remove(svc)) {
                Some(h) => to_release.extend(h),
                None => unheld.push(svc.clone()),
            }
        }
        release_all(to_release, report)?;
        pending.retain(|s| !ready.contains(s));
        let hold_now = held.is_none() && !opts.no_start;
        // What the services left wait on is made and started first, then
        // their held starts begin, then the rest of the level is made and
        // started (nothing waits on it, and it only has to run by the
        // end): on a busy machine the chain's head and the held starts'
        // preparation (on the chain's path once a short healthcheck
        // interval has passed) get the processors first. The level's
        // starts are awaited together.
        let (first, rest): (Vec<String>, Vec<String>) = if hold_now {
            unheld
                .into_iter()
                .partition(|svc| waited_on(p, svc, &pending))
        } else {
            (unheld, Vec::new())
        };
        let mut to_start = Vec::new();
        for svc in &first {
            to_start.extend(converge(engine, p, svc, opts, &existing, report)?);
        }
        let (mut records, mut starting) = begin_all(engine, to_start)?;
        if hold_now {
            // What is left waits on a condition (a healthcheck, a
            // completion): its containers are made (as Compose v2 creates
            // every container before it starts any) and their starts
            // taken as far as they go without running the program, so
            // that once the condition holds only the program's exec is
            // left. A service's containers are still started only once
            // its dependencies hold.
            let mut h = BTreeMap::new();
            for svc in &pending {
                let records = converge(engine, p, svc, opts, &existing, report)?;
                h.insert(svc.clone(), hold_all(engine, records, deadline)?);
            }
            held = Some(h);
        }
        let mut to_start = Vec::new();
        for svc in &rest {
            to_start.extend(converge(engine, p, svc, opts, &existing, report)?);
        }
        let (rest, rest_starting) = begin_all(engine, to_start)?;
        records.extend(rest);
        starting.extend(rest_starting);
        report_starts(&records, berth_engine::monitor::await_all(starting), report)?;
        if !ready.is_empty() {
            delay = 2;
            continue;
        }
        if Instant::now() > deadline {
            return Err(Error::Dependency(format!(
                "gave up waiting for the dependencies of {}",
                pending.join(", ")
            )));
        }
        store.wait(Duration::from_millis(delay));
        // A few milliseconds apart at most: a dependency's row is one
        // read, and a dependent's start waits on this poll.
        delay = (delay * 2).min(5);
    }
    members::list(engine, &p.name)
}

/// Begins each container's start and holds it before its program runs,
/// for at most until `deadline` (see [`berth_engine::monitor::start_held`]).
fn hold_all(
    engine: &Engine,
    records: Vec<Record>,
    deadline: Instant,
) -> Result<Vec<(Record, Held)>> {
    let hold = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
    let mut out = Vec::new();
    for r in records {
        engine
            .db()
            .set_stopped_by_user(&r.id, false)
            .map_err(Error::engine(format!("start {}", r.name)))?;
        let h = berth_engine::monitor::start_held(engine, &r, hold)
            .map_err(Error::engine(format!("start {}", r.name)))?;
        out.push((r, h));
    }
    Ok(out)
}

/// Starts held containers together, each reported as it is known to run;
/// the first failure is returned once all have been tried.
fn release_all(held: Vec<(Record, Held)>, report: &mut dyn FnMut(Step)) -> Result<()> {
    let (records, held): (Vec<Record>, Vec<Held>) = held.into_iter().unzip();
    report_starts(&records, Held::release_all(held), report)
}

/// Reports each container whose start succeeded as Started; the first
/// failure is returned once all are reported.
fn report_starts(
    records: &[Record],
    results: Vec<berth_engine::Result<()>>,
    report: &mut dyn FnMut(Step),
) -> Result<()> {
    let mut first_error = None;
    for (r, res) in records.iter().zip(results) {
        match res {
            Ok(()) => report(Step {
                kind: "Container",
                name: r.name.clone(),
                state: "Started".into(),
            }),
            Err(e) => {
                first_error.get_or_insert(Error::engine(format!("start {}", r.name))(e));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `services` in dependency levels: each level's services depend only on
/// those of earlier levels (dependencies outside `services` are taken as
/// met), so a level's containers may start together.
pub fn levels(p: &Project, services: &[String]) -> Result<Vec<Vec<String>>> {
    let mut left: Vec<String> = p
        .start_order()?
        .into_iter()
        .filter(|s| services.contains(s))
        .collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    while !left.is_empty() {
        let level: Vec<String> = left
            .iter()
            .filter(|s| p.dependencies(s).iter().all(|d| !left.contains(d)))
            .cloned()
            .collect();
        if level.is_empty() {
            // start_order refused cycles already; never loop on one.
            out.push(left);
            break;
        }
        left.retain(|s| !level.contains(s));
        out.push(level);
    }
    Ok(out)
}

/// The services `up SERVICE...` touches.
pub fn selected(p: &Project, services: &[String], no_deps: bool) -> BTreeSet<String> {
    if services.is_empty() {
        return p.services().map(|(n, _)| n.to_string()).collect();
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = services.to_vec();
    while let Some(s) = todo.pop() {
        if out.insert(s.clone()) && !no_deps {
            todo.extend(
                p.dependencies(&s)
                    .into_iter()
                    .filter(|d| p.service(d).is_ok()),
            );
        }
    }
    out
}

fn orphans(
    engine: &mut Engine,
    p: &Project,
    existing: &[Member],
    remove: bool,
    report: &mut dyn FnMut(Step),
) -> Result<()> {
    let found: Vec<&Member> = existing
        .iter()
        .filter(|m| !m.oneoff && !p.knows(&m.service))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    if remove {
        for m in found {
            remove_member(engine, m, None, true)?;
            report(Step {
                kind: "Container",
                name: m.record.name.clone(),
                state: "Removed".into(),
            });
        }
    } else {
        let names: Vec<&str> = found.iter().map(|m| m.record.name.as_str()).collect();
        report(Step {
            kind: "Warning",
            name: p.name.clone(),
            state: format!(
                "found orphan containers ([{}]) for this project: if you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up",
                names.join(" ")
            ),
        });
    }
    Ok(())
}

/// Makes the service's image present: built (with `build` in `opts`, or
/// when missing and buildable), else pulled by its pull policy.
pub fn ensure_image(
    engine: &mut Engine,
    p: &Project,
    svc: &str,
    opts: &UpOptions,
    images: &mut dyn Images,
    report: &mut dyn FnMut(Step),
) -> Result<()> {
    let s = p.service(svc)?;
    let image = service::image_name(p, svc, s);
    let present = engine.images().resolve(&image).is_ok();
    let policy = opts
        .pull
        .clone()
        .or_else(|| s["pull_policy"].as_str().map(String::from))
        .unwrap_or_else(|| "missing".into());
    let build = s.get("build").filter(|b| b.is_object());
    if let Some(b) = build {
        if opts.build || policy == "build" || (!present && !opts.no_build) {
            images
                .build(engine, svc, b, &image)
                .map_err(|e| Error::Option(format!("service {svc:?}: build: {e}")))?;
            report(Step {
                kind: "Image",
                name: image,
                state: "Built".into(),
            });
            return Ok(());
        }
    }
    let pull = match policy.as_str() {
        "always" => true,
        "never" => false,
        "missing" | "if_not_present" | "build" => !present,
        other => {
            return Err(Error::Option(format!(
                "service {svc:?}: pull_policy {other:?}: want always, missing, never or build"
            )))
        }
    };
    if pull && (s.get("image").is_some() || build.is_none()) {
        images
            .pull(engine, &image)
            .map_err(|e| Error::Option(format!("service {svc:?}: pull {image}: {e}")))?;
        report(Step {
            kind: "Image",
            name: image,
            state: "Pulled".into(),
        });
    } else if !present {
        return Err(Error::Option(format!(
            "service {svc:?}: image {image:?} not found locally; pull it or build it"
        )));
    }
    Ok(())
}

/// Whether every `depends_on` of `svc` holds now: the dependency was
/// started this round or before (it is not `pending`), and its containers
/// meet the condition. A condition that never will is an error; the
/// containers waited on are reported once (`waiting`).
fn dependencies_hold(
    engine: &Engine,
    p: &Project,
    svc: &str,
    pending: &[String],
    waiting: &mut BTreeSet<String>,
    known: &mut BTreeMap<String, Vec<Member>>,
    report: &mut dyn FnMut(Step),
) -> Result<bool> {
    let deps = p.service(svc)?["depends_on"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (dep, spec) in deps {
        if p.service(&dep).is_err() {
            continue; // not required and not active
        }
        if pending.contains(&dep) {
            return Ok(false);
        }
        let condition = spec["condition"].as_str().unwrap_or("service_started");
        if condition == "service_started" {
            continue;
        }
        // The dependency's containers are listed once (it is started and
        // will not change), then only their rows are read each round.
        if !known.contains_key(&dep) {
            let ms: Vec<Member> = members::list(engine, &p.name)?
                .into_iter()
                .filter(|m| m.service == dep && !m.oneoff)
                .collect();
            known.insert(dep.clone(), ms);
        }
        let members = &known[&dep];
        if members.is_empty() {
            return Err(Error::Dependency(format!(
                "service {svc:?} depends on {dep:?}, which has no container"
            )));
        }
        let mut all = true;
        for m in members {
            let r = engine
                .find(&m.record.id)
                .map_err(Error::engine(format!("inspect {}", m.record.name)))?;
            match condition_state(&r, condition) {
                Err(e) => {
                    return Err(Error::Dependency(format!(
                        "dependency failed to start: {e}"
                    )))
                }
                Ok(true) => {
                    if waiting.remove(&r.name) {
                        let state = if condition == "service_healthy" {
                            "Healthy"
                        } else {
                            "Exited"
                        };
                        report(Step {
                            kind: "Container",
                            name: r.name.clone(),
                            state: state.into(),
                        });
                    }
                }
                Ok(false) => {
                    all = false;
                    if waiting.insert(r.name.clone()) {
                        report(Step {
                            kind: "Container",
                            name: r.name.clone(),
                            state: "Waiting".into(),
                        });
                    }
                }
            }
        }
        if !all {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `r` meets `condition` (Ok(false): not yet; Err: never will).
pub fn condition_state(r: &Record, condition: &str) -> std::result::Result<bool, String> {
    match condition {
        "service_healthy" => match r.health.as_ref().map(|h| h.status.as_str()) {
            Some("healthy") => Ok(true),
            Some("unhealthy") => Err(format!("container {} is unhealthy", r.name)),
            _ if !r.status.is_active() => {
                Err(format!("container {} exited ({})", r.name, r.exit_code))
            }
            None if r.config.health.is_none() => {
                Err(format!("container {} has no healthcheck", r.name))
            }
            _ => Ok(false),
        },
        "service_completed_successfully" => match r.status {
            Status::Exited if r.exit_code == 0 => Ok(true),
            Status::Exited => Err(format!("container {} exited ({})", r.name, r.exit_code)),
            Status::Created => Err(format!("container {} was never started", r.name)),
            _ => Ok(false),
        },
        _ => Ok(r.status.is_active() || r.status == Status::Exited),
    }
}

/// Makes the service's containers match the model (created, recreated,
/// removed past the scale); returns those to start.
fn converge(
    engine: &mut Engine,
    p: &Project,
    svc: &str,
    opts: &UpOptions,
    existing: &[Member],
    report: &mut dyn FnMut(Step),
) -> Result<Vec<Record>> {
    let mut to_start = Vec::new();
    let hash = p.config_hash(svc)?;
    let n = opts.scale.get(svc).copied().unwrap_or_else(|| p.scale(svc));
    let mine: Vec<&Member> = existing
        .iter()
        .filter(|m| m.service == svc && !m.oneoff)
        .collect();
    for m in mine.iter().filter(|m| m.number > n || m.number == 0) {
        remove_member(engine, m, opts.timeout, true)?;
        report(Step {
            kind: "Container",
            name: m.record.name.clone(),
            state: "Removed".into(),
        });
    }
    for i in 1..=n {
        let current = mine.iter().find(|m| m.number == i);
        let stale = current.is_some_and(|m| {
            opts.force_recreate
                || (!opts.no_recreate
                    && m.record.config.labels.get(labels::CONFIG_HASH) != Some(&hash))
        });
        let r = match current {
            Some(m) if !stale => m.record.clone(),
            Some(m) => {
                let r = recreate(engine, p, svc, i, m, opts.timeout)?;
                report(Step {
                    kind: "Container",
                    name: r.name.clone(),
                    state: "Recreated".into(),
                });
                r
            }
            None => {
                let r = create(engine, p, svc, i)?;
                report(Step {
                    kind: "Container",
                    name: r.name.clone(),
                    state: "Created".into(),
                });
                r
            }
        };
        if opts.no_start {
            continue;
        }
        if matches!(
            r.status,
            Status::Running | Status::Restarting | Status::Starting
        ) {
            report(Step {
                kind: "Container",
                name: r.name.clone(),
                state: "Running".into(),
            });
            continue;
        }
        if r.status == Status::Paused {
            engine
                .container_unpause(&r.id)
                .map_err(Error::engine(format!("unpause {}", r.name)))?;
            report(Step {
                kind: "Container",
                name: r.name.clone(),
                state: "Running".into(),
            });
            continue;
        }
        to_start.push(r);
    }
    Ok(to_start)
}

/// Starts the containers side by side (their monitors spawned at once),
/// each reported as it is known to run; the first failure is returned
/// once all have been tried.
pub fn start_all(engine: &Engine, records: &[Record], report: &mut dyn FnMut(Step)) -> Result<()> {
    let (fresh, starting) = begin_all(engine, records.to_vec())?;
    report_starts(&fresh, berth_engine::monitor::await_all(starting), report)
}

/// Spawns the containers' monitors side by side without awaiting them:
/// the records as read again (their state now) and one start per record.
fn begin_all(
    engine: &Engine,
    records: Vec<Record>,
) -> Result<(
    Vec<Record>,
    Vec<berth_engine::Result<berth_engine::monitor::Starting>>,
)> {
    let mut fresh = Vec::new();
    for r in records {
        let r = engine
            .find(&r.id)
            .map_err(Error::engine(format!("start {}", r.name)))?;
        engine
            .db()
            .set_stopped_by_user(&r.id, false)
            .map_err(Error::engine(format!("start {}", r.name)))?;
        fresh.push(r);
    }
    let starting = berth_engine::monitor::begin_detached_all(engine, &fresh);
    Ok((fresh, starting))
}

/// Whether a service still pending depends on `svc`.
fn waited_on(p: &Project, svc: &str, pending: &[String]) -> bool {
    pending
        .iter()
        .any(|s| p.dependencies(s).iter().any(|d| d == svc))
}

fn create(engine: &mut Engine, p: &Project, svc: &str, n: u32) -> Result<Record> {
    let cfg = service::container_config(p, svc, n, false, engine.root())?;
    let name = service::container_name(p, svc, n);
    engine
        .create(cfg, Some(&name))
        .map_err(Error::engine(format!("create container {name}")))
}

/// Replaces the member `old` with a container of the current model that
/// keeps its anonymous volumes, as Compose does: the data of `volumes:
/// [/data]` (or of the image's VOLUME) outlives a change of the service.
/// The old one is stopped and renamed out of the way, the new one made,
/// then the old removed with the anonymous volumes nobody uses now.
fn recreate(
    engine: &mut Engine,
    p: &Project,
    svc: &str,
    n: u32,
    old: &Member,
    timeout: Option<u32>,
) -> Result<Record> {
    let name = service::container_name(p, svc, n);
    let kept: Vec<(String, String)> = old
        .record
        .config
        .mounts
        .iter()
        .filter(|m| {
            m.kind == "volume" && engine.volumes().get(&m.source).is_ok_and(|v| v.anonymous)
        })
        .map(|m| (m.destination.clone(), m.source.clone()))
        .collect();
    let mut cfg = service::container_config(p, svc, n, false, engine.root())?;
    let image_volumes = image_volumes(engine, &cfg.image);
    for (dest, volume) in &kept {
        match cfg.mounts.iter_mut().find(|m| m.destination == *dest) {
            Some(m) if m.kind == "volume" && m.source.is_empty() => m.source.clone_from(volume),
            Some(_) => {} // now a named volume, a bind or a tmpfs: not kept
            None if image_volumes.contains(dest) => {
                cfg.mounts.push(berth_engine::config::Mount {
                    kind: "volume".into(),
                    source: volume.clone(),
                    destination: dest.clone(),
                    ..berth_engine::config::Mount::default()
                });
            }
            None => {}
        }
    }
    let mut stop = StopOptions::default();
    stop.timeout = timeout;
    engine
        .container_stop(&old.record.id, &stop)
        .map_err(Error::engine(format!("stop {}", old.record.name)))?;
    let aside = format!("{}_{}", &old.record.id[..12], old.record.name);
    engine
        .container_rename(&old.record.id, &aside)
        .map_err(Error::engine(format!("rename {}", old.record.name)))?;
    let r = match engine.create(cfg, Some(&name)) {
        Ok(r) => r,
        Err(e) => {
            // The old one back under its name, as it was (stopped).
            let _ = engine.container_rename(&old.record.id, &name);
            return Err(Error::engine(format!("create container {name}"))(e));
        }
    };
    remove_member(engine, old, timeout, true)?;
    Ok(r)
}

/// The image's VOLUME paths (none when it cannot be read: the create
/// that follows says why).
fn image_volumes(engine: &Engine, image: &str) -> Vec<String> {
    let Ok(img) = engine.images().resolve(image) else {
        return Vec::new();
    };
    engine
        .image_config(&img)
        .ok()
        .and_then(|c| {
            c["Volumes"]
                .as_object()
                .map(|v| v.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// Stops (within `timeout` seconds) and removes a container with its
/// anonymous volumes (`anonymous`).
pub fn remove_member(
    engine: &Engine,
    m: &Member,
    timeout: Option<u32>,
    anonymous: bool,
) -> Result<()> {
    let mut stop = StopOptions::default();
    stop.timeout = timeout;
    match engine.container_stop(&m.record.id, &stop) {
        Ok(()) => {}
        Err(e) if e.kind() == berth_engine::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::engine(format!("stop {}", m.record.name))(e)),
    }
    let mut rm = RemoveOptions::default();
    rm.force = true;
    rm.volumes = anonymous;
    match engine.container_remove(&m.record.id, &rm) {
        Err(e) if e.kind() != berth_engine::ErrorKind::NotFound => {
            Err(Error::engine(format!("remove {}", m.record.name))(e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_put_each_service_after_what_it_depends_on() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("compose.yaml"),
            "services:\n  web: {image: b, depends_on: [api, cache]}\n  api: {image: b, depends_on: [db]}\n  db: {image: b}\n  cache: {image: b}\n  worker: {image: b}\n",
        )
        .unwrap();
        let p = Project::load(&crate::LoadOptions {
            cwd: d.path().to_path_buf(),
            project_name: Some("lv".into()),
            ..crate::LoadOptions::default()
        })
        .unwrap();
        let all: Vec<String> = p.services().map(|(n, _)| n.to_string()).collect();
        let mut got = levels(&p, &all).unwrap();
        got.iter_mut().for_each(|l| l.sort());
        assert_eq!(
            got,
            vec![vec!["cache", "db", "worker"], vec!["api"], vec!["web"]]
        );
        // A dependency left out counts as met.
        let some = vec!["web".to_string(), "api".to_string()];
        assert_eq!(levels(&p, &some).unwrap(), vec![vec!["api"], vec!["web"]]);
    }
}
