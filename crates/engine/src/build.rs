//! `berth build`: a Dockerfile and a context made into an image, without a
//! daemon. The pure part (parsing, expansion, stages, the image config) is
//! crate `build`'s; this executes it:
//!
//! ```text
//! each needed stage, in order:
//!   base: scratch, an image (resolved or pulled by the caller), or a stage
//!   each step: key = sha256(parent key, instruction, content it reads)
//!     cached?  -> the cache's layers
//!     RUN      -> overlay over the layers, the runtime runs it, upper -> layer
//!     COPY/ADD -> overlay mounted here, files copied in, upper -> layer
//!     WORKDIR  -> overlay mounted here, the directory made if missing
//!                 (USER's, as BuildKit makes it) -> a layer if it was
//!     other    -> config only (history entry, empty layer)
//! the target: config + layers + history -> image, tags last
//! ```
//!
//! Nothing is tagged unless the whole build succeeds; layers of steps that
//! ran are named by the cache (one transaction, after a filesystem sync)
//! even when a later step fails, so the next build starts from there.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_build::copy;
use berth_build::stage::{self, Action, Base, CopyStep, RunStep, Step, WorkdirStep};
use berth_image::cache::{BuiltLayer, CacheEntry};
use berth_image::snapshot::Snapshot;
use berth_image::store::{Image, ImageStore};
use berth_image::{Digest, Reference};
use nix::fcntl::OFlag;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::config::{ContainerConfig, Mount};
use crate::error::{Context, Error, Result};
use crate::Engine;

/// What to build and how (`berth build`'s flags).
#[derive(Debug, Default)]
pub struct Options {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's name in messages, and its text.
    pub dockerfile_name: String,
    pub dockerfile: String,
    /// `.dockerignore`'s patterns, if any.
    pub ignore: Option<berth_build::ignore::IgnoreMatcher>,
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// Run every step (results are still cached for later builds).
    pub no_cache: bool,
    /// `--label`: added to the image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--layers=false`: each stage's changes in one layer, no cache.
    pub no_layers: bool,
    /// `--squash`: the target stage's new layers as one.
    pub squash: bool,
    /// `--timestamp`/`SOURCE_DATE_EPOCH`: every time in the image (history,
    /// created, file times clamped) is this, so that the same inputs give
    /// the same image.
    pub timestamp: Option<i64>,
    /// `--secret id=X,src=FILE`.
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--network`: RUN's network unless a step says otherwise.
    pub network: String,
    /// What every RUN step's container gets (`--memory`, `--cpu-*`,
    /// `--ulimit`, `--shm-size`, `--add-host`, `--cgroup-parent`,
    /// `--security-opt`): these fields of it, the rest ignored.
    pub step: StepSettings,
}

/// The settings of `build`'s flags that every RUN step's container gets,
/// as docker's classic builder gives them.
#[derive(Debug, Default, Clone)]
pub struct StepSettings {
    pub resources: crate::config::Resources,
    pub ulimits: Vec<crate::config::Ulimit>,
    /// Bytes of /dev/shm (0: docker's 64 MiB).
    pub shm_size: u64,
    /// `host:ip` entries for the step's /etc/hosts.
    pub extra_hosts: Vec<String>,
    pub cgroup_parent: String,
    /// A seccomp profile's path, or `unconfined`.
    pub seccomp: String,
    pub no_new_privileges: bool,
}

/// Where the build's progress goes. Step ids are in the order steps start.
pub trait Reporter {
    /// A step starts: `[stage 2/5] RUN make`.
    fn start(&mut self, id: usize, title: &str);
    /// Output of a RUN.
    fn output(&mut self, id: usize, data: &[u8]);
    /// The step's result came from the cache.
    fn cached(&mut self, id: usize);
    /// The step ran, taking `took`.
    fn done(&mut self, id: usize, took: Duration);
    /// A step without output of its own: `writing image`, a warning.
    fn note(&mut self, text: &str);
    /// A step failed (in a stage built by a child process, which reports
    /// it before it ends).
    fn failed(&mut self) {}
    /// A step starts, with the Dockerfile line of its instruction (docker's
    /// classic log numbers and quotes instructions as written).
    fn begin(&mut self, id: usize, title: &str, _line: usize) {
        self.start(id, title);
    }
    /// What a step made, as a 64-hex id: the base image's for FROM (empty
    /// for scratch), the step's cache key otherwise (the same when the
    /// step is cached).
    fn made(&mut self, _id: usize, _made: &str) {}
    /// A RUN step's container (`build-` and hex).
    fn container(&mut self, _id: usize, _container: &str) {}
    /// A RUN step's process ended with a non-zero `code`.
    fn run_failed(&mut self, _id: usize, _command: &str, _code: i32) {}
    /// Whether processes building stages at once may share this reporter
    /// (each writes whole lines to the same stderr). A live terminal view
    /// cannot be shared: stages are then built one after another.
    fn concurrent_ok(&self) -> bool {
        true
    }
}

/// Resolves an image name a stage starts from (or COPY --from names): the
/// caller finds it in the store or pulls it, as `--pull` says.
pub type Resolve<'a> = dyn FnMut(&mut ImageStore, &str) -> Result<Image> + 'a;

/// What a build made.
#[derive(Debug)]
pub struct Outcome {
    pub image: Image,
}

/// A stage's (or a base image's) result.
#[derive(Debug, Clone)]
struct Built {
    layers: Vec<BuiltLayer>,
    /// The image JSON: architecture, os, config, author...; history and
    /// rootfs are kept apart.
    image: Value,
    history: Vec<Value>,
    /// The cache key of the last step.
    key: String,
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn diffs(layers: &[BuiltLayer]) -> Vec<Digest> {
    layers.iter().map(|l| l.diff.clone()).collect()
}

/// Set by SIGINT, SIGTERM or SIGHUP during a build: the running step is
/// killed and the build fails, leaving nothing behind.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Catches the signals that end a build, without SA_RESTART, so a blocked
/// read returns and the builder can clean up. SIGPIPE too, while the build
/// runs: a reader of our progress that goes away (`berth build . | head`)
/// ends the build as a client that goes away ends docker's, with the step
/// killed and nothing left behind, not with a death mid-step; the returned
/// guard gives SIGPIPE back its previous disposition.
fn catch_signals() -> Result<SigpipeRestored> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { sigaction(s, &act) }.ctx(|| format!("catch {s}"))?;
    }
    // SAFETY: as above.
    let previous = unsafe { sigaction(Signal::SIGPIPE, &act) }.ctx(|| "catch SIGPIPE".into())?;
    Ok(SigpipeRestored(previous))
}

/// SIGPIPE's disposition from before the build, put back when dropped.
struct SigpipeRestored(nix::sys::signal::SigAction);

impl Drop for SigpipeRestored {
    fn drop(&mut self) {
        // SAFETY: puts back the disposition sigaction returned.
        let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGPIPE, &self.0) };
    }
}

/// Builds the image. Progress goes to `rep`; names of base images go to
/// `resolve`. SIGINT, SIGTERM and SIGHUP stop it cleanly.
pub fn build(
    engine: &mut Engine,
    opts: &Options,
    resolve: &mut Resolve<'_>,
    rep: &mut dyn Reporter,
) -> Result<Outcome> {
    let _sigpipe = catch_signals()?;
    // Limits a rootless build cannot apply are refused, as run's are.
    crate::rootless::refuse_limits(&ContainerConfig {
        resources: opts.step.resources.clone(),
        ..Default::default()
    })?;
    crate::networking::extra_hosts(&opts.step.extra_hosts)?;
    let plan = berth_build::load(&opts.dockerfile_name, &opts.dockerfile)
        .map_err(|e| Error::Dockerfile(e.to_string()))?;
    if plan.stages.is_empty() {
        return Err(Error::Dockerfile(format!(
            "{}: no FROM instruction: nothing to build",
            opts.dockerfile_name
        )));
    }
    let order = plan
        .build_order(opts.target.as_deref(), &opts.build_args)
        .map_err(|e| Error::Dockerfile(e.to_string()))?;
    let target = *order
        .last()
        .ok_or_else(|| Error::Build("no stage to build".into()))?;
    for unused in stage::unused_build_args(&plan, &order, &opts.build_args) {
        rep.note(&format!(
            "[Warning] one or more build args were not consumed: {unused}"
        ));
    }
    let mut b = Builder {
        engine,
        opts,
        plan: &plan,
        resolve,
        rep,
        done: vec![None; plan.stages.len()],
        pending: Vec::new(),
        next_id: 0,
    };
    let mut deps = Vec::with_capacity(order.len());
    for &i in &order {
        deps.push((
            i,
            plan.dependencies(i, &opts.build_args)
                .map_err(|e| Error::Dockerfile(e.to_string()))?,
        ));
    }
    let parallel = b.rep.concurrent_ok();
    let result = (|| {
        let mut remaining = deps;
        while !remaining.is_empty() {
            // The stages whose dependencies are built: independent of each
            // other, so they run at once, one per process.
            let (ready, rest): (Vec<_>, Vec<_>) = remaining
                .into_iter()
                .partition(|(_, d)| d.iter().all(|j| b.done[*j].is_some()));
            remaining = rest;
            let ready: Vec<usize> = ready.into_iter().map(|(i, _)| i).collect();
            if ready.is_empty() {
                return Err(Error::Dockerfile(
                    "stages depend on each other in a cycle".into(),
                ));
            }
            if ready.len() == 1 || !parallel {
                for i in ready {
                    let built = b.stage(i, i == target)?;
                    b.done[i] = Some(built);
                }
            } else {
                b.stages_at_once(&ready, target)?;
            }
        }
        b.finish(target)
    })();
    // What ran stays usable by the next build, failed or not.
    let pending = std::mem::take(&mut b.pending);
    let saved = b.engine.images.cache_put(&pending);
    let outcome = result?;
    saved?;
    Ok(outcome)
}

struct Builder<'a, 'r> {
    engine: &'a mut Engine,
    opts: &'a Options,
    plan: &'a stage::Plan,
    resolve: &'a mut Resolve<'r>,
    rep: &'a mut dyn Reporter,
    done: Vec<Option<Built>>,
    /// Cache entries of the steps that ran, recorded at the end.
    pending: Vec<(String, CacheEntry)>,
    next_id: usize,
}

impl Builder<'_, '_> {
    fn invalid(&self, step: &Step, message: impl std::fmt::Display) -> Error {
        Error::Build(format!(
            "{}:{}: {}: {message}",
            self.plan.file, step.line, step.keyword
        ))
    }

    fn copy_failed(&self, step: &Step, source: copy::CopyError) -> Error {
        Error::BuildCopy {
            file: self.plan.file.clone(),
            line: step.line,
            keyword: step.keyword,
            source: Box::new(source),
        }
    }

    fn stage_name(&self, i: usize) -> String {
        self.plan.stages[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{i}"))
    }

    fn now(&self) -> String {
        match self.opts.timestamp {
            Some(t) => rfc3339(
                time::OffsetDateTime::from_unix_timestamp(t)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            ),
            None => rfc3339(time::OffsetDateTime::now_utc()),
        }
    }

    /// An image as a stage's starting point.
    fn base_image(&mut self, name: &str) -> Result<Built> {
        let img = (self.resolve)(&mut self.engine.images, name)?;
        let (_, config) = self.engine.images.manifest_and_config(&img)?;
        let layers = self.engine.images.built_layers(&img)?;
        let history = config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut image = Map::new();
        for k in [
            "architecture",
            "os",
            "variant",
            "os.version",
            "author",
            "config",
        ] {
            if let Some(v) = config.get(k) {
                image.insert(k.into(), v.clone());
            }
        }
        Ok(Built {
            layers,
            image: Value::Object(image),
            history,
            key: sha(&["image", &img.id.to_string()]),
        })
    }

    fn scratch() -> Built {
        let p = berth_image::oci::host_platform();
        Built {
            layers: Vec::new(),
            image: json!({"architecture": p.architecture, "os": "linux", "config": {}}),
            history: Vec::new(),
            key: sha(&["scratch"]),
        }
    }

    /// Runs stage `i`'s steps over its base.
    fn stage(&mut self, i: usize, is_target: bool) -> Result<Built> {
        let base = match self
            .plan
            .base(i, &self.opts.build_args)
            .map_err(|e| Error::Dockerfile(e.to_string()))?
        {
            Base::Scratch => Self::scratch(),
            Base::Image(name) => self.base_image(&name)?,
            Base::Stage(s) => self.done[s]
                .clone()
                .ok_or_else(|| Error::Build(format!("stage {s} was not built before stage {i}")))?,
        };
        let outcome = stage::evaluate(self.plan, i, &base.image, &self.opts.build_args)
            .map_err(|e| Error::Dockerfile(e.to_string()))?;
        let total = outcome.steps.len() + 1;
        let name = self.stage_name(i);
        let from = self.next_id;
        self.next_id += 1;
        self.rep.begin(
            from,
            &format!("[{name} 1/{total}] FROM {}", self.plan.stages[i].base),
            self.plan.stages[i].line,
        );
        self.rep.done(from, Duration::ZERO);
        // An image base is shown by its id, as docker does; scratch by
        // none; a stage by its last step's key.
        let base_id = match self.plan.base(i, &self.opts.build_args) {
            Ok(Base::Image(n)) => self
                .engine
                .images
                .resolve(&n)
                .map_or_else(|_| base.key.clone(), |img| img.id.to_string()),
            Ok(Base::Scratch) => String::new(),
            _ => base.key.clone(),
        };
        self.rep.made(from, &base_id);

        // One layer for the whole stage: --layers=false, or the squashed
        // target.
        let single = self.opts.no_layers || (self.opts.squash && is_target);
        let use_cache = !single && !self.opts.no_cache;
        let (mut key, mut layers, mut history) = (base.key, base.layers, base.history);
        // Layers made for a reproducible build differ (file times clamped):
        // they are cached apart.
        let clamp = self
            .opts
            .timestamp
            .map(|t| t.to_string())
            .unwrap_or_default();
        // With `single`: the overlay all the stage's steps write to.
        let mut stage_work: Option<Work> = None;
        for (n, step) in outcome.steps.iter().enumerate() {
            if interrupted() {
                return Err(Error::Interrupted);
            }
            let id = self.next_id;
            self.next_id += 1;
            self.rep.begin(
                id,
                &format!("[{name} {}/{total}] {}", n + 2, step.text),
                step.line,
            );
            let started = Instant::now();
            let read = self.reads(step)?;
            key = sha(&[&key, &step.cache_text, &read.key, &clamp]);
            if use_cache {
                if let Some(e) = self.engine.images.cache_get(&key)? {
                    // A WORKDIR's layer is there when it made one.
                    let made_layer = e.layers.len() > layers.len();
                    layers = e.layers;
                    let created = match self.opts.timestamp {
                        Some(_) => self.now(),
                        None => e.created,
                    };
                    history.push(history_entry(step, &read, &created, made_layer));
                    self.rep.cached(id);
                    self.rep.made(id, &key);
                    continue;
                }
            }
            let created = self.now();
            let mut made_layer = step.makes_layer();
            if let Action::Workdir(w) = &step.action {
                let work = match stage_work.take() {
                    Some(w) => w,
                    None => Work::new(&self.engine.images, &layers)?,
                };
                let made = self.workdir(step, w, &work)?;
                if single {
                    stage_work = Some(work);
                } else if made {
                    layers.push(work.commit(&self.engine.images, &layers, self.opts.timestamp)?);
                    made_layer = true;
                }
            } else if step.makes_layer() {
                // A step's own overlay, or the stage's one kept across steps.
                let work = match stage_work.take() {
                    Some(w) => w,
                    None => Work::new(&self.engine.images, &layers)?,
                };
                match &step.action {
                    Action::Run(r) => self.run(step, r, &work, id)?,
                    Action::Copy(c) => self.copy(step, c, &read, &work)?,
                    Action::Meta | Action::Workdir(_) => {}
                }
                if single {
                    stage_work = Some(work);
                } else {
                    layers.push(work.commit(&self.engine.images, &layers, self.opts.timestamp)?);
                }
            }
            let mut entry = history_entry(step, &read, &created, made_layer);
            if single {
                // buildah's: the stage's one layer is its last entry's.
                entry["empty_layer"] = json!(true);
            }
            history.push(entry);
            if !single {
                self.pending.push((
                    key.clone(),
                    CacheEntry {
                        layers: layers.clone(),
                        created,
                    },
                ));
            }
            self.rep.done(id, started.elapsed());
            self.rep.made(id, &key);
        }
        if single {
            let work = match stage_work.take() {
                Some(w) => w,
                None => Work::new(&self.engine.images, &layers)?,
            };
            layers.push(work.commit(&self.engine.images, &layers, self.opts.timestamp)?);
            if let Some(m) = history.last_mut().and_then(Value::as_object_mut) {
                m.remove("empty_layer");
            }
        }
        Ok(Built {
            layers,
            image: outcome.config,
            history,
            key,
        })
    }

    /// Builds `stages` (independent of each other) at once: all but the
    /// last in forked children, each with its own connection to the store,
    /// the last here. A child sends its stage's result back as JSON on a
    /// pipe and records its cache entries itself. The caller is
    /// single-threaded (the runtime forks too).
    fn stages_at_once(&mut self, stages: &[usize], target: usize) -> Result<()> {
        let (last, others) = stages
            .split_last()
            .ok_or_else(|| Error::Build("no stage to build".into()))?;
        let mut children = Vec::new();
        let mut failure = None;
        // Progress ids: each stage gets a range of its own.
        let mut base_id = self.next_id;
        for &i in others {
            let ids = base_id;
            base_id += self.plan.stages[i].instructions.len() + 8;
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
            // SAFETY: the process is single-threaded here (the builder
            // never keeps threads across steps), so the child may run
            // ordinary code; it leaves with _exit, never returning.
            match unsafe { nix::unistd::fork() }.ctx(|| "fork a stage builder".into())? {
                nix::unistd::ForkResult::Child => {
                    drop(r);
                    self.next_id = ids;
                    let code = self.child_stage(i, i == target, w);
                    // SAFETY: ends the child without running the parent's
                    // destructors (its database connection, scratch
                    // directories) a second time.
                    unsafe { libc::_exit(code) };
                }
                nix::unistd::ForkResult::Parent { child } => {
                    drop(w);
                    children.push((i, child, r));
                }
            }
        }
        self.next_id = base_id;
        match self.stage(*last, *last == target) {
            Ok(built) => self.done[*last] = Some(built),
            Err(e) => {
                // The others stop too, cleaning up after themselves.
                for (_, pid, _) in &children {
                    let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGTERM);
                }
                failure = Some(e);
            }
        }
        for (i, pid, r) in children {
            let mut text = String::new();
            let read = std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut text);
            let status = loop {
                match nix::sys::wait::waitpid(pid, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    s => break s,
                }
            };
            if failure.is_some() {
                continue;
            }
            let got = match (read, status) {
                (Ok(_), Ok(nix::sys::wait::WaitStatus::Exited(_, 0))) => {
                    serde_json::from_str::<ChildResult>(&text)
                        .map_err(|e| Error::Build(format!("stage {i}'s builder: {e}")))
                }
                _ => Err(Error::Build(
                    match serde_json::from_str::<ChildResult>(&text) {
                        Ok(ChildResult::Failed(m)) => m,
                        _ => format!("the builder of stage {} died", self.stage_name(i)),
                    },
                )),
            };
            match got {
                Ok(ChildResult::Built(b)) => self.done[i] = Some(b.into_built()?),
                Ok(ChildResult::Failed(m)) => failure = Some(Error::Build(m)),
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A forked child's work: builds stage `i` with a connection of its
    /// own, records its cache entries, writes the result to `out`.
    fn child_stage(&mut self, i: usize, is_target: bool, out: OwnedFd) -> i32 {
        let result = Engine::open(&self.engine.root, &self.engine.runroot).and_then(|mut own| {
            // The parent's connection is not ours to use or close.
            std::mem::swap(self.engine, &mut own);
            std::mem::forget(own);
            self.pending.clear();
            let built = self.stage(i, is_target);
            let pending = std::mem::take(&mut self.pending);
            self.engine.images.cache_put(&pending)?;
            built
        });
        let (msg, code) = match result {
            Ok(b) => (ChildResult::Built(SentBuilt::from_built(&b)), 0),
            Err(e) => {
                self.rep.failed();
                (ChildResult::Failed(e.to_string()), 1)
            }
        };
        let text = serde_json::to_vec(&msg).unwrap_or_default();
        let _ = berth_relay::relay::write_all(std::os::fd::AsFd::as_fd(&out), &text);
        code
    }

    /// The image of the target stage, stored and tagged.
    fn finish(&mut self, target: usize) -> Result<Outcome> {
        let built = self.done[target]
            .take()
            .ok_or_else(|| Error::Build("the target stage was not built".into()))?;
        let mut image = match built.image {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let created = built
            .history
            .last()
            .and_then(|h| h.get("created"))
            .cloned()
            .unwrap_or_else(|| json!(self.now()));
        if !self.opts.labels.is_empty() {
            let config = image
                .entry("config")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| Error::Build("image config is not an object".into()))?;
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            for (k, v) in &self.opts.labels {
                labels[k] = json!(v);
            }
        }
        image.insert("created".into(), created);
        image.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diffs(&built.layers).iter().map(ToString::to_string).collect::<Vec<_>>()}),
        );
        image.insert("history".into(), Value::Array(built.history));
        let bytes = serde_json::to_vec(&Value::Object(image)).map_err(|source| Error::Encode {
            what: "image config",
            source,
        })?;
        let img = self
            .engine
            .images
            .add_built_image(&bytes, &built.layers, &self.opts.tags)?;
        self.rep.note(&format!("writing image {}", img.id));
        for t in &self.opts.tags {
            self.rep.note(&format!("naming to {t}"));
        }
        Ok(Outcome { image: img })
    }

    /// What a step reads besides its instruction, hashed for its key.
    fn reads(&mut self, step: &Step) -> Result<Reads> {
        match &step.action {
            Action::Meta | Action::Workdir(_) => Ok(Reads::default()),
            Action::Copy(c) => {
                let from = flag(&c.flags, "from");
                let mut source = None;
                let (source_key, hash) = match from {
                    None => {
                        let src = copy::Source::Context {
                            dir: &self.opts.context,
                            ignore: self.opts.ignore.as_ref(),
                        };
                        (
                            String::new(),
                            copy::checksum(&src, c).map_err(|e| self.copy_failed(step, e))?,
                        )
                    }
                    Some(f) => {
                        let built = self.source_of(step, f)?;
                        let view = View::new(&self.engine.images, &built.layers)?;
                        let src = copy::Source::Rootfs(view.root());
                        let hash =
                            copy::checksum(&src, c).map_err(|e| self.copy_failed(step, e))?;
                        source = Some(view);
                        (built.key, hash)
                    }
                };
                // A URL's content is only known by downloading it: without
                // --checksum the step runs every time (and what follows).
                let volatile = if c.add
                    && flag(&c.flags, "checksum").is_none()
                    && c.sources.iter().any(|s| copy::is_url(s))
                {
                    crate::random_id()
                } else {
                    String::new()
                };
                let dir = from.is_none()
                    && c.sources.len() == 1
                    && c.heredocs.is_empty()
                    && resolve_in(&self.opts.context, &c.sources[0]).is_ok_and(|p| p.is_dir());
                Ok(Reads {
                    key: sha(&[&source_key, &hash, &volatile]),
                    hash,
                    dir,
                    source,
                })
            }
            Action::Run(r) => {
                // Bind mounts read the context or a stage: their content
                // decides the outcome as a COPY's does.
                let mut parts = Vec::new();
                for m in mounts(r).map_err(|e| self.invalid(step, e))? {
                    if m.kind != MountKind::Bind {
                        continue;
                    }
                    match &m.from {
                        Some(f) => parts.push(self.source_of(step, f)?.key),
                        None => {
                            let probe = CopyStep {
                                line: r.line,
                                add: false,
                                flags: Vec::new(),
                                sources: vec![m.source.clone().unwrap_or_else(|| "/".into())],
                                dest: "/".into(),
                                heredocs: Vec::new(),
                                workdir: "/".into(),
                            };
                            let src = copy::Source::Context {
                                dir: &self.opts.context,
                                ignore: self.opts.ignore.as_ref(),
                            };
                            parts.push(
                                copy::checksum(&src, &probe)
                                    .map_err(|e| self.copy_failed(step, e))?,
                            );
                        }
                    }
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                Ok(Reads {
                    key: sha(&refs),
                    ..Reads::default()
                })
            }
        }
    }

    /// The built stage or image that `--from=X` names.
    fn source_of(&mut self, step: &Step, name: &str) -> Result<Built> {
        match self.plan.find(name) {
            Some(i) => self.done[i].clone().ok_or_else(|| {
                self.invalid(step, format!("stage {name:?} is not built before this one"))
            }),
            None if name.parse::<usize>().is_ok() => Err(self.invalid(
                step,
                format!("invalid --from={name}: there is no stage {name}"),
            )),
            None => self.base_image(name).map_err(|e| {
                self.invalid(
                    step,
                    format!("--from={name}: no stage of that name, and no such image: {e}"),
                )
            }),
        }
    }

    /// COPY/ADD into the step's overlay, mounted here for the while. With
    /// `--link` the files go straight into the new layer (the upper
    /// directory, nothing mounted), so they depend on nothing below: no
    /// symlink of the image is followed; `--chown` names still come from
    /// the image.
    fn copy(&mut self, step: &Step, c: &CopyStep, read: &Reads, work: &Work) -> Result<()> {
        let link = flag(&c.flags, "link").is_some_and(|v| v != "false");
        let src = match &read.source {
            None => copy::Source::Context {
                dir: &self.opts.context,
                ignore: self.opts.ignore.as_ref(),
            },
            Some(v) => copy::Source::Rootfs(v.root()),
        };
        if link {
            let users = View::new(&self.engine.images, &work.below)?;
            let opts = copy::ApplyOptions {
                users_root: users.root(),
                http: None,
            };
            copy::apply(&src, c, &work.snap.upper, &opts).map_err(|e| self.copy_failed(step, e))?;
            return Ok(());
        }
        work.snap.mount()?;
        let result = (|| {
            let merged = &work.snap.merged;
            // WORKDIR's directory exists once a step runs in it.
            let root = std::fs::File::open(merged).ctx(|| format!("open {}", merged.display()))?;
            saferoot::mkdir_all_in_root(&root.into(), Path::new(&c.workdir))
                .map_err(|e| self.invalid(step, e))?;
            let opts = copy::ApplyOptions {
                users_root: merged,
                http: None,
            };
            copy::apply(&src, c, merged, &opts).map_err(|e| self.copy_failed(step, e))?;
            Ok(())
        })();
        work.snap.unmount()?;
        result
    }

    /// WORKDIR's directory made in the step's overlay when missing, as
    /// Docker's builders do (a final `WORKDIR /srv/x` leaves `/srv/x` in
    /// the image): mode 0755, owned by USER as BuildKit resolves it in the
    /// image's own passwd and group. Says whether anything was made.
    fn workdir(&mut self, step: &Step, w: &WorkdirStep, work: &Work) -> Result<bool> {
        if w.path == "/" {
            return Ok(false);
        }
        work.snap.mount()?;
        let result = (|| {
            let merged = &work.snap.merged;
            let root: OwnedFd = std::fs::File::open(merged)
                .ctx(|| format!("open {}", merged.display()))?
                .into();
            let read = |file: &str| {
                if w.user.is_empty() {
                    return Ok(None);
                }
                saferoot::userdb::read_in_root(&root, file)
                    .ctx(|| format!("read /{file} of the image"))
            };
            let (passwd, group) = (read("etc/passwd")?, read("etc/group")?);
            let owner = saferoot::userdb::resolve_workdir_owner(
                &w.user,
                passwd.as_deref(),
                group.as_deref(),
            );
            let (_, made) = saferoot::mkdir_all_in_root_owned(&root, Path::new(&w.path), owner)
                .map_err(|e| self.invalid(step, e))?;
            Ok(made)
        })();
        work.snap.unmount()?;
        result
    }

    fn run(&mut self, step: &Step, r: &RunStep, work: &Work, id: usize) -> Result<()> {
        let specs = mounts(r).map_err(|e| self.invalid(step, e))?;
        let network = match flag(&r.flags, "network").unwrap_or(&self.opts.network) {
            "" | "default" | "host" => "host",
            "none" => "none",
            other => {
                return Err(self.invalid(
                    step,
                    format!("unsupported --network={other}: use default, none or host"),
                ))
            }
        };
        if let Some(s) = flag(&r.flags, "security") {
            if s != "sandbox" {
                return Err(self.invalid(step, format!("--security={s} is not supported")));
            }
        }
        for f in &r.flags {
            if !matches!(f.name.as_str(), "mount" | "network" | "security") {
                return Err(self.invalid(step, format!("unknown flag: --{}", f.name)));
            }
        }
        // Host views of stages that bind mounts read, alive for the run.
        let mut views = Vec::new();
        let mut cfg_mounts = Vec::new();
        let mut locks = Vec::new();
        for m in &specs {
            let target = join_target(&r.workdir, &m.target);
            match m.kind {
                MountKind::Tmpfs => {
                    let mut options = Vec::new();
                    if let Some(s) = &m.size {
                        options.push(format!("size={s}"));
                    }
                    cfg_mounts.push(Mount {
                        kind: "tmpfs".into(),
                        source: String::new(),
                        destination: target,
                        read_only: false,
                        options,
                        ..Default::default()
                    });
                }
                MountKind::Secret => {
                    let sid = m.id.clone().unwrap_or_else(|| {
                        Path::new(&m.target)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    let target = if m.target.is_empty() {
                        format!("/run/secrets/{sid}")
                    } else {
                        target
                    };
                    match self.opts.secrets.get(&sid) {
                        Some(src) => cfg_mounts.push(Mount {
                            kind: "bind".into(),
                            source: src.to_string_lossy().into_owned(),
                            destination: target,
                            read_only: true,
                            options: vec!["nosuid".into(), "nodev".into(), "noexec".into()],
                            ..Default::default()
                        }),
                        None if m.required => {
                            return Err(self.invalid(
                                step,
                                format!("secret {sid} is required but not given (--secret id={sid},src=FILE)"),
                            ))
                        }
                        None => {}
                    }
                }
                MountKind::Cache => {
                    let cid = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self
                        .engine
                        .root
                        .join("build-cache-mounts")
                        .join(sha(&["cache-mount", &cid]));
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir)
                            .ctx(|| format!("create cache mount {}", dir.display()))?;
                        std::os::unix::fs::chown(&dir, m.uid, m.gid)
                            .ctx(|| format!("chown {}", dir.display()))?;
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(
                            &dir,
                            std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755)),
                        )
                        .ctx(|| format!("chmod {}", dir.display()))?;
                    }
                    if m.sharing == "locked" {
                        let f =
                            std::fs::File::open(&dir).ctx(|| format!("open {}", dir.display()))?;
                        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
                            .map_err(|(_, e)| e)
                            .ctx(|| format!("lock {}", dir.display()))?;
                        locks.push(lock);
                    }
                    cfg_mounts.push(Mount {
                        kind: "bind".into(),
                        source: dir.to_string_lossy().into_owned(),
                        destination: target,
                        read_only: m.read_only,
                        options: Vec::new(),
                        ..Default::default()
                    });
                }
                MountKind::Bind => {
                    let source = m.source.clone().unwrap_or_else(|| "/".into());
                    let root = match &m.from {
                        None => self.opts.context.clone(),
                        Some(f) => {
                            let built = self.source_of(step, f)?;
                            let view = View::new(&self.engine.images, &built.layers)?;
                            let p = view.root().to_path_buf();
                            views.push(view);
                            p
                        }
                    };
                    let host = resolve_in(&root, &source).map_err(|e| self.invalid(step, e))?;
                    if !m.read_only {
                        // Writes go to a scratch overlay and are dropped.
                        let w = Work::over(&self.engine.images, &host)?;
                        w.snap.mount()?;
                        let p = w.snap.merged.clone();
                        views.push(View { work: w });
                        cfg_mounts.push(Mount {
                            kind: "bind".into(),
                            source: p.to_string_lossy().into_owned(),
                            destination: target,
                            read_only: false,
                            options: Vec::new(),
                            ..Default::default()
                        });
                    } else {
                        cfg_mounts.push(Mount {
                            kind: "bind".into(),
                            source: host.to_string_lossy().into_owned(),
                            destination: target,
                            read_only: true,
                            options: Vec::new(),
                            ..Default::default()
                        });
                    }
                }
            }
        }
        let argv = run_argv(r);
        let step_settings = &self.opts.step;
        // Docker's classic builder (and buildah) name the step's container
        // by an id and show its first 12 digits as the hostname.
        let hex = crate::random_id();
        let cfg = ContainerConfig {
            args: argv.clone(),
            env: r.env.clone(),
            user: r.user.clone(),
            working_dir: r.workdir.clone(),
            network: network.into(),
            hostname: hex[..12].into(),
            mounts: cfg_mounts,
            resources: step_settings.resources.clone(),
            ulimits: step_settings.ulimits.clone(),
            shm_size: step_settings.shm_size,
            extra_hosts: step_settings.extra_hosts.clone(),
            cgroup_parent: step_settings.cgroup_parent.clone(),
            seccomp: step_settings.seccomp.clone(),
            no_new_privileges: step_settings.no_new_privileges,
            ..Default::default()
        };
        let code = self.run_container(work, &cfg, &format!("build-{}", &hex[..16]), id)?;
        drop(views);
        drop(locks);
        if interrupted() {
            return Err(Error::Interrupted);
        }
        if code != 0 {
            self.rep.run_failed(id, &argv.join(" "), code);
            return Err(self.invalid(
                step,
                format!(
                    "process {:?} did not complete successfully: exit code: {code}",
                    argv.join(" ")
                ),
            ));
        }
        Ok(())
    }

    /// Runs `cfg` in `work`'s snapshot, its output to the reporter;
    /// returns the exit code. What the runtime made only to mount over
    /// (mount points the image lacked) is taken out of the layer again.
    fn run_container(
        &mut self,
        work: &Work,
        cfg: &ContainerConfig,
        cid: &str,
        id: usize,
    ) -> Result<i32> {
        self.rep.container(id, cid);
        let bundle = work.dir.path().join("bundle");
        std::fs::create_dir_all(&bundle).ctx(|| format!("create {}", bundle.display()))?;
        // --add-host's entries first, as docker's builder writes them.
        let extra = crate::networking::extra_hosts(&cfg.extra_hosts)?;
        let mut hosts = berth_network::files::hosts(&extra, None, &cfg.hostname, &[]);
        if cfg.network == "host" {
            // The host's names too, as its network is the step's.
            hosts.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
        }
        std::fs::write(bundle.join("hosts"), hosts).ctx(|| "write hosts".into())?;
        std::fs::write(bundle.join("hostname"), format!("{}\n", cfg.hostname))
            .ctx(|| "write hostname".into())?;
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(
            bundle.join("resolv.conf"),
            berth_network::files::resolv_conf(
                &resolv,
                &berth_network::files::DnsConfig::default(),
                cfg.network != "host",
            ),
        )
        .ctx(|| "write resolv.conf".into())?;

        // A step's root is the host's unless the host's setting asks for
        // a namespace of its own (then ids from the pool for the step's
        // life): Dockerfiles do what a user namespace refuses (mknod of
        // device nodes into the image, as Docker's builder allows), so the
        // containers' built-in default is not the builder's.
        let lease = match crate::userns::configured_mode()? {
            Some(crate::userns::Mode::Private { size }) => Some(crate::userns::Lease::take(
                self.engine.db.connection(),
                cid,
                size,
            )?),
            Some(crate::userns::Mode::Host) | None => None,
        };
        let id_map = lease.as_ref().map(|l| l.map);
        let cfg = &ContainerConfig {
            id_map,
            ..cfg.clone()
        };
        let crate::launch::Rootfs { detached, lookup } =
            crate::launch::mount_rootfs(&work.snap, &mut None, false, id_map.as_ref())?;
        // Mount points the runtime will have to make in the rootfs.
        let mut made = Vec::new();
        let mut dests: Vec<String> = [
            "/proc",
            "/dev",
            "/sys",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        dests.extend(cfg.mounts.iter().map(|m| m.destination.clone()));
        for d in dests {
            let target = PathBuf::from(&d);
            let mut p = PathBuf::from("/");
            for c in target.components().skip(1) {
                p.push(c);
                if std::fs::symlink_metadata(lookup.join(p.strip_prefix("/").unwrap_or(&p)))
                    .is_err()
                {
                    made.push((p.clone(), target.clone()));
                    break;
                }
            }
        }
        let spec = crate::spec::build(
            cfg,
            cid,
            &crate::spec::Paths {
                rootfs: match id_map {
                    Some(_) => crate::userns::rootfs_mount_point()?,
                    None => &work.snap.merged,
                },
                lookup: &lookup,
                dir: &bundle,
            },
            &crate::spec::Joins::default(),
        )?;
        // The step's stdout and stderr: one pipe, read into the progress.
        let mut pipes = crate::stdio::Pipes::merged()?;
        let (out_r, _) = pipes
            .streams
            .pop()
            .ok_or_else(|| Error::Process("the RUN step has no output pipe".into()))?;
        // The step's environment holds build arguments (tokens): the
        // launcher writes config.json 0600.
        let mut c = crate::launch::create(
            &self.engine.runtime_root(),
            crate::launch::Init {
                id: cid.to_string(),
                bundle: bundle.clone(),
                spec,
                stdio: pipes.take_stdio()?,
                rootfs: detached,
                console_socket: None,
                // RUN --network=none: loopback up, as buildkit's and
                // docker's are.
                loopback_up: cfg.network == "none",
            },
        )?;
        if let Err(e) = c.start().map_err(Error::from) {
            let _ = c.delete(true);
            return Err(e);
        }
        let pid = nix::unistd::Pid::from_raw(c.state.pid);
        drop(c);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match nix::unistd::read(out_r.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.rep.output(id, &buf[..n]);
                    // Progress that lost its reader (SIGPIPE) ends the step.
                    if interrupted() {
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {
                    if interrupted() {
                        // Its pid namespace goes with it: nothing of the
                        // step keeps running.
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                    continue;
                }
                Err(e) => {
                    return Err(Error::Sys {
                        context: "read RUN output".into(),
                        source: e,
                    })
                }
            }
        }
        let code = loop {
            match nix::sys::wait::waitpid(pid, None) {
                Ok(status) => match berth_relay::relay::exit_code(status) {
                    Some(code) => break code,
                    None => continue,
                },
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        context: "wait for RUN".into(),
                        source: e,
                    })
                }
            }
        };
        if let Ok(c) = berth_runtime::Container::load(&self.engine.runtime_root(), cid) {
            let _ = c.delete(true);
        }
        let _ = work.snap.unmount();
        for (first, target) in made.iter().rev() {
            work.snap.remove_mount_stub(first, target);
        }
        Ok(code)
    }
}

/// An image's file system as one tar stream (`--output type=tar|local`):
/// its layers mounted read-only, walked without following links.
pub fn export_rootfs(engine: &Engine, img: &Image, out: impl Write) -> Result<()> {
    let layers = engine.images.built_layers(img)?;
    let view = View::new(&engine.images, &layers)?;
    let root = crate::cp::Root::dir(view.root(), "the image")?;
    crate::cp::archive(&root, Path::new("/"), out)?;
    Ok(())
}

/// What a step read, for its key and its history.
#[derive(Debug, Default)]
struct Reads {
    /// Hashed into the step's cache key.
    key: String,
    /// The content hash of COPY/ADD sources (`sha256:...`).
    hash: String,
    /// A COPY of one source that is a directory (history says `dir:`).
    dir: bool,
    /// COPY --from's stage or image, mounted to hash it and kept for the
    /// copy itself.
    source: Option<View>,
}

/// The step's history entry; `made_layer`: whether it added a layer (else
/// `empty_layer`).
fn history_entry(step: &Step, read: &Reads, created: &str, made_layer: bool) -> Value {
    let created_by = match &step.action {
        Action::Copy(c) => {
            let named = c.sources.iter().filter(|s| !s.starts_with("<<")).count();
            let what = if named + c.heredocs.len() > 1 {
                "multi"
            } else if read.dir {
                "dir"
            } else {
                "file"
            };
            let hash = read.hash.strip_prefix("sha256:").unwrap_or(&read.hash);
            format!(
                "/bin/sh -c #(nop) {} {what}:{hash} in {} ",
                step.keyword, c.dest
            )
        }
        _ => step.created_by.clone(),
    };
    let mut e = json!({"created": created, "created_by": created_by});
    if !step.author.is_empty() {
        e["author"] = json!(step.author);
    }
    if !made_layer {
        e["empty_layer"] = json!(true);
    }
    e
}

/// A stage's result as a child builder sends it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum ChildResult {
    Built(SentBuilt),
    Failed(String),
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SentBuilt {
    /// (diff_id, size), bottom first.
    layers: Vec<(String, u64)>,
    image: Value,
    history: Vec<Value>,
    key: String,
}

impl SentBuilt {
    fn from_built(b: &Built) -> SentBuilt {
        SentBuilt {
            layers: b
                .layers
                .iter()
                .map(|l| (l.diff.to_string(), l.size))
                .collect(),
            image: b.image.clone(),
            history: b.history.clone(),
            key: b.key.clone(),
        }
    }

    fn into_built(self) -> Result<Built> {
        let layers = self
            .layers
            .into_iter()
            .map(|(d, size)| {
                Ok(BuiltLayer {
                    diff: d
                        .parse()
                        .map_err(|e| Error::Build(format!("a stage builder sent {d:?}: {e}")))?,
                    size,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Built {
            layers,
            image: self.image,
            history: self.history,
            key: self.key,
        })
    }
}

/// The value of flag `--name` (the last one given).
fn flag<'f>(flags: &'f [berth_build::parser::Flag], name: &str) -> Option<&'f str> {
    flags
        .iter()
        .rev()
        .find(|f| f.name == name)
        .map(|f| f.value.as_deref().unwrap_or(""))
}

/// The argv of a RUN: heredocs become part of the shell script (BuildKit:
/// `RUN <<EOF` alone runs the body; `RUN cmd <<EOF` gives the shell the
/// whole text, which feeds the body to `cmd`).
fn run_argv(r: &RunStep) -> Vec<String> {
    if r.heredocs.is_empty() {
        return r.argv.clone();
    }
    let mut argv = r.argv.clone();
    let Some(script) = argv.last_mut() else {
        return argv;
    };
    let only =
        r.heredocs.len() == 1 && script.trim().starts_with("<<") && !script.trim().contains(' ');
    if only {
        let body = &r.heredocs[0].content;
        if body.starts_with("#!") {
            // A script with its own interpreter: run it as a file would
            // run, through a here-document the shell writes to a pipe.
            *script = format!(
                "f=$(mktemp) && cat > \"$f\" <<'BERTH_HEREDOC_EOF'\n{body}BERTH_HEREDOC_EOF\nchmod +x \"$f\" && \"$f\"; s=$?; rm -f \"$f\"; exit $s"
            );
        } else {
            *script = body.clone();
        }
        return argv;
    }
    let mut text = script.clone();
    for h in &r.heredocs {
        text.push('\n');
        text.push_str(&h.content);
        if !h.content.ends_with('\n') && !h.content.is_empty() {
            text.push('\n');
        }
        text.push_str(&h.name);
    }
    *script = text;
    argv
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountKind {
    Bind,
    Cache,
    Secret,
    Tmpfs,
}

/// One `RUN --mount=...`.
#[derive(Debug, Clone)]
struct MountSpec {
    kind: MountKind,
    target: String,
    source: Option<String>,
    from: Option<String>,
    id: Option<String>,
    read_only: bool,
    sharing: String,
    required: bool,
    size: Option<String>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

fn mounts(r: &RunStep) -> std::result::Result<Vec<MountSpec>, String> {
    r.flags
        .iter()
        .filter(|f| f.name == "mount")
        .map(|f| parse_mount(f.value.as_deref().unwrap_or("")))
        .collect()
}

/// BuildKit's `--mount` syntax: comma-separated `key=value` (or bare
/// boolean keys), `type` bind by default.
fn parse_mount(s: &str) -> std::result::Result<MountSpec, String> {
    let mut m = MountSpec {
        kind: MountKind::Bind,
        target: String::new(),
        source: None,
        from: None,
        id: None,
        read_only: true,
        sharing: "shared".into(),
        required: false,
        size: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut ro: Option<bool> = None;
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
            None => (part.trim().to_ascii_lowercase(), None),
        };
        let val = || {
            v.clone()
                .ok_or_else(|| format!("--mount: {k} needs a value"))
        };
        let boolean = || -> std::result::Result<bool, String> {
            match v.as_deref() {
                None | Some("true") | Some("1") => Ok(true),
                Some("false") | Some("0") => Ok(false),
                Some(x) => Err(format!("--mount: invalid {k}={x}")),
            }
        };
        let number = |radix: u32| -> std::result::Result<u32, String> {
            let t = val()?;
            u32::from_str_radix(&t, radix).map_err(|_| format!("--mount: invalid {k}={t}"))
        };
        match k.as_str() {
            "type" => {
                m.kind = match val()?.as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "secret" => MountKind::Secret,
                    "tmpfs" => MountKind::Tmpfs,
                    "ssh" => return Err("--mount=type=ssh is not implemented yet".into()),
                    t => return Err(format!("--mount: unknown type {t:?}")),
                }
            }
            "target" | "dst" | "destination" => m.target = val()?,
            "source" | "src" => m.source = Some(val()?),
            "from" => m.from = Some(val()?),
            "id" => m.id = Some(val()?),
            "ro" | "readonly" => ro = Some(boolean()?),
            "rw" | "readwrite" => ro = Some(!boolean()?),
            "sharing" => {
                let s = val()?;
                if !matches!(s.as_str(), "shared" | "private" | "locked") {
                    return Err(format!(
                        "--mount: invalid sharing={s}: use shared, private or locked"
                    ));
                }
                m.sharing = s;
            }
            "required" => m.required = boolean()?,
            "size" => m.size = Some(val()?),
            "mode" => m.mode = Some(number(8)?),
            "uid" => m.uid = Some(number(10)?),
            "gid" => m.gid = Some(number(10)?),
            other => return Err(format!("--mount: unknown option {other:?}")),
        }
    }
    m.read_only = ro.unwrap_or(m.kind == MountKind::Bind);
    if m.target.is_empty() && m.kind != MountKind::Secret {
        return Err("--mount: target is required".into());
    }
    Ok(m)
}

/// A mount target: relative ones are taken from the working directory.
fn join_target(workdir: &str, target: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        stage::join_workdir(workdir, target)
    }
}

/// The host path of `path` inside `root`, every component resolved as if
/// `root` were `/` (so neither `..` nor a symlink leaves it).
fn resolve_in(root: &Path, path: &str) -> std::result::Result<PathBuf, String> {
    let dir = crate::cp::open_path(root, OFlag::O_DIRECTORY).map_err(|e| e.to_string())?;
    let fd = saferoot::open_in_root(&dir, Path::new(path), OFlag::O_PATH | OFlag::O_CLOEXEC)
        .map_err(|e| format!("{path}: {e}"))?;
    std::fs::read_link(saferoot::fd_path(&fd)).map_err(|e| format!("{path}: {e}"))
}

/// A writable overlay over some layers, in a scratch directory of the
/// store; gone when dropped.
#[derive(Debug)]
struct Work {
    dir: tempfile::TempDir,
    snap: Snapshot,
    /// The layers below the overlay.
    below: Vec<BuiltLayer>,
}

impl Work {
    fn new(store: &ImageStore, layers: &[BuiltLayer]) -> Result<Work> {
        let dir = store.temp_dir()?;
        let mut lower: Vec<PathBuf> = berth_image::oci::chain_ids(&diffs(layers))
            .iter()
            .rev()
            .map(|c| store.layer_dir(c))
            .collect();
        if lower.is_empty() {
            let empty = dir.path().join("empty");
            std::fs::create_dir(&empty).ctx(|| format!("create {}", empty.display()))?;
            lower.push(empty);
        }
        let snap = Snapshot::prepare(&lower, &dir.path().join("snap"))?;
        Ok(Work {
            dir,
            snap,
            below: layers.to_vec(),
        })
    }

    /// An overlay over one host directory.
    fn over(store: &ImageStore, host: &Path) -> Result<Work> {
        let dir = store.temp_dir()?;
        let snap = Snapshot::prepare(&[host.to_path_buf()], &dir.path().join("snap"))?;
        Ok(Work {
            dir,
            snap,
            below: Vec::new(),
        })
    }

    /// The changes as a new layer over `below`.
    fn commit(
        &self,
        store: &ImageStore,
        below: &[BuiltLayer],
        clamp: Option<i64>,
    ) -> Result<BuiltLayer> {
        let _ = self.snap.unmount();
        let tar = self.dir.path().join("layer.tar");
        let f = std::fs::File::create(&tar).ctx(|| format!("create {}", tar.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        berth_image::snapshot::diff_clamped(&self.snap.upper, &mut w, clamp)?;
        w.flush().ctx(|| format!("write {}", tar.display()))?;
        drop(w);
        // The upper directory itself becomes the layer (moved, not copied).
        let layer = store.add_layer_dir(&diffs(below), &self.snap.upper, &tar)?;
        let _ = std::fs::remove_file(&tar);
        Ok(layer)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = self.snap.clone().remove();
    }
}

/// A read-only view of some layers, mounted on the host (COPY --from, a
/// bind mount from a stage).
#[derive(Debug)]
struct View {
    work: Work,
}

impl View {
    fn new(store: &ImageStore, layers: &[BuiltLayer]) -> Result<View> {
        let work = Work::new(store, layers)?;
        work.snap.mount_readonly()?;
        Ok(View { work })
    }

    fn root(&self) -> &Path {
        &self.work.snap.merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_like_buildkit() {
        let m = parse_mount("type=cache,target=/root/.cache,id=pip,sharing=locked").unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert_eq!(m.target, "/root/.cache");
        assert_eq!(m.id.as_deref(), Some("pip"));
        assert!(!m.read_only);
        let m = parse_mount("target=/src,source=app,from=builder").unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert!(m.read_only);
        assert_eq!(m.from.as_deref(), Some("builder"));
        let m = parse_mount("type=bind,target=/x,rw").unwrap();
        assert!(!m.read_only);
        let m = parse_mount("type=secret,id=tok,required").unwrap();
        assert!(m.required && m.target.is_empty());
        let m = parse_mount("type=cache,target=/c,mode=0700,uid=10,gid=20").unwrap();
        assert_eq!((m.mode, m.uid, m.gid), (Some(0o700), Some(10), Some(20)));
        for bad in [
            "type=nope,target=/x",
            "type=cache",
            "type=cache,target=/x,sharing=odd",
            "type=bind,target=/x,bogus=1",
            "type=cache,target=/x,uid=me",
            "type=ssh",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }

    fn run_step(argv: &[&str], heredocs: &[(&str, &str)]) -> RunStep {
        RunStep {
            line: 1,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            user: String::new(),
            workdir: "/".into(),
            env: Vec::new(),
            flags: Vec::new(),
            heredocs: heredocs
                .iter()
                .map(|(n, c)| berth_build::parser::Heredoc {
                    name: n.to_string(),
                    content: c.to_string(),
                    expand: true,
                    strip_tabs: false,
                })
                .collect(),
        }
    }

    #[test]
    fn heredocs_become_the_script() {
        let r = run_step(&["/bin/sh", "-c", "<<EOF"], &[("EOF", "echo a\necho b\n")]);
        assert_eq!(run_argv(&r), vec!["/bin/sh", "-c", "echo a\necho b\n"]);
        let r = run_step(&["/bin/sh", "-c", "cat <<EOF > /x"], &[("EOF", "hi\n")]);
        assert_eq!(run_argv(&r)[2], "cat <<EOF > /x\nhi\nEOF");
        let r = run_step(
            &["/bin/sh", "-c", "<<EOF"],
            &[("EOF", "#!/bin/sh\necho x\n")],
        );
        assert!(run_argv(&r)[2].contains("chmod +x"));
        let r = run_step(&["/bin/sh", "-c", "true"], &[]);
        assert_eq!(run_argv(&r), vec!["/bin/sh", "-c", "true"]);
    }

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(sha(&["ab", "c"]), sha(&["a", "bc"]));
        assert_eq!(sha(&["x"]), sha(&["x"]));
    }
}
