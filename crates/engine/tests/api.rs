//! The engine driven as a library, without the `berth` binary: containers
//! made, started, read, stopped and removed through `Engine`'s calls, as a
//! front end other than the command line (compose, a Docker-API socket)
//! drives them.
//!
//! A main of its own (libtest-mimic): `start_detached` re-executes the
//! running program as the container's monitor, so this test program
//! answers `__monitor` first, as any program embedding the engine must.
//! The tests run one at a time on the main thread: the engine forks, and
//! its contract is a single-threaded caller.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use berth_engine::events::EventOptions;
use berth_engine::lifecycle::{KillOptions, RemoveOptions, StopOptions, TopOptions, WaitOptions};
use berth_engine::logs::LogOptions;
use berth_engine::start::{StartOptions, Started};
use berth_engine::stats::StatsOptions;
use berth_engine::{ContainerConfig, Engine, Error, ErrorKind, Record, Status};
use libtest_mimic::{Arguments, Failed, Trial};

/// Long enough for anything here on a loaded machine; only reached when
/// the engine is broken.
const PATIENCE: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(served) = berth_engine::monitor::serve_if_asked(&args) {
        if let Some(m) = served.message() {
            eprintln!("{m}");
        }
        return ExitCode::from(served.code());
    }
    // A start with the caller's stdio runs the container from this
    // process, which the runtime allows only from a protected binary (as
    // berth's own main does for such commands).
    if nix::unistd::geteuid().is_root() {
        if let Err(e) = berth_runtime::exe::ensure_protected() {
            eprintln!("protect the test binary: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = vec![
        trial("logs_wait_inspect_events_rm", logs_wait_inspect_events_rm),
        trial(
            "follow_streams_until_the_container_exits",
            follow_streams_until_the_container_exits,
        ),
        trial(
            "stats_top_and_stop_with_a_timeout",
            stats_top_and_stop_with_a_timeout,
        ),
        trial(
            "rename_pause_kill_and_refusals",
            rename_pause_kill_and_refusals,
        ),
        trial(
            "an_event_stream_ends_when_stopped",
            an_event_stream_ends_when_stopped,
        ),
        trial("volumes_in_use_are_kept", volumes_in_use_are_kept),
        trial(
            "start_runs_attached_or_detached_and_attach_follows_the_state",
            start_runs_attached_or_detached_and_attach_follows_the_state,
        ),
        trial(
            "held_starts_run_on_the_word_or_are_called_off",
            held_starts_run_on_the_word_or_are_called_off,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

/// A test that needs root: skipped (said so) without it, a failure under
/// CI (the testkit's rule).
fn trial(name: &'static str, f: fn() -> Result<(), Failed>) -> Trial {
    Trial::test(name, move || {
        if !berth_testkit::root_or_skip(name) {
            return Ok(());
        }
        f()
    })
}

/// A store of the test's own with the busybox fixture imported as
/// `busybox` (CMD sh); removed with its containers when dropped.
struct Store {
    engine: Option<Engine>,
    _root: tempfile::TempDir,
    _runroot: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        let root = tempfile::tempdir().expect("temp root");
        // Run state lives on a tmpfs, as /run/berth does.
        let runroot = tempfile::Builder::new()
            .prefix("berth-api-")
            .tempdir_in("/run")
            .expect("temp runroot");
        let mut engine = Engine::open(root.path(), runroot.path()).expect("open the store");
        let work = tempfile::tempdir().expect("temp dir");
        let tar = berth_testkit::busybox_tar(work.path());
        let file = std::fs::File::open(&tar).expect("open the busybox tar");
        berth_image::archive::import_file(
            engine.images_mut(),
            file,
            &["CMD [\"sh\"]".to_string()],
            None,
            None,
            &["busybox".parse().expect("reference")],
        )
        .expect("import busybox");
        Store {
            engine: Some(engine),
            _root: root,
            _runroot: runroot,
        }
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("engine")
    }

    /// Creates a container running `args` (no network, a bounded log) and
    /// starts it detached.
    fn start(&mut self, name: &str, args: &[&str]) -> Record {
        let r = self.create(name, args);
        let engine = self.engine.as_mut().expect("engine");
        berth_engine::monitor::start_detached(engine, &r).expect("start");
        engine.find(&r.id).expect("find")
    }

    /// Creates a container running `args` (no network, a bounded log).
    fn create(&mut self, name: &str, args: &[&str]) -> Record {
        let engine = self.engine.as_mut().expect("engine");
        let cfg = ContainerConfig {
            image: "busybox".into(),
            cmd: args.iter().map(|a| a.to_string()).collect(),
            network: "none".into(),
            log: berth_engine::config::LogConfig {
                max_size: 1 << 20,
                max_file: 1,
                ..Default::default()
            },
            ..ContainerConfig::default()
        };
        engine.create(cfg, Some(name)).expect("create")
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(engine) = &self.engine {
            let mut opts = RemoveOptions::default();
            opts.force = true;
            for r in engine.list().unwrap_or_default() {
                let _ = engine.container_remove(&r.id, &opts);
            }
        }
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// A refusal because of the container's state (paused twice, rm while it
/// runs, kill of a stopped one, a wait past its deadline), by its kind.
fn refused_by_state(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotRunning)
}

/// A refusal of the request itself (an unknown filter) or because the
/// object is used (a volume in use), by its kind.
fn refused_as_invalid(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::InUse)
}

fn wait_opts() -> WaitOptions {
    let mut w = WaitOptions::default();
    w.deadline = Some(Instant::now() + PATIENCE);
    w
}

/// Logs as typed entries in order with their streams, the exit code from
/// wait, Docker's JSON from inspect, the journal's events, and nothing
/// left after rm.
fn logs_wait_inspect_events_rm() -> Result<(), Failed> {
    let mut s = Store::new();
    let before = time::OffsetDateTime::now_utc();
    let r = s.start(
        "api-logs",
        &["sh", "-c", "echo out; echo err >&2; echo more; exit 3"],
    );
    let e = s.engine();
    let exit = e.container_wait("api-logs", &wait_opts())?;
    check(exit.exit_code == 3, || {
        format!("exit code {}", exit.exit_code)
    })?;
    check(exit.id == r.id, || format!("wait reported {}", exit.id))?;

    let entries: Vec<_> = e
        .container_logs("api-logs", &LogOptions::default())?
        .collect::<Result<_, _>>()?;
    // Each stream in order (the two pipes are read as they come: their
    // relative order is not kept, by docker either).
    let of = |stderr: bool| -> Vec<&str> {
        entries
            .iter()
            .filter(|x| x.is_stderr() == stderr)
            .map(|x| x.log.as_str())
            .collect()
    };
    check(
        of(false) == ["out\n", "more\n"] && of(true) == ["err\n"],
        || format!("log entries {entries:?}"),
    )?;
    let mut tail = LogOptions::default();
    tail.tail = Some(1);
    let last: Vec<_> = e
        .container_logs("api-logs", &tail)?
        .collect::<Result<_, _>>()?;
    check(last.len() == 1 && entries.last() == Some(&last[0]), || {
        format!("--tail 1 gave {last:?} of {entries:?}")
    })?;
    let mut out = Vec::new();
    let mut err = Vec::new();
    for x in &entries {
        x.write_to(true, &mut out, &mut err)?;
    }
    let out = String::from_utf8(out)?;
    check(
        out.lines().count() == 2
            && out
                .lines()
                .all(|l| l.ends_with("Z out") || l.ends_with("Z more")),
        || format!("stdout with timestamps: {out:?}"),
    )?;
    check(String::from_utf8(err)?.ends_with("Z err\n"), || {
        "stderr with a timestamp".into()
    })?;

    // inspect is typed: the fields, as Docker names them when printed.
    let v = e.container_inspect("api-logs")?;
    check(v.id == r.id, || format!("Id {}", v.id))?;
    check(v.name == "/api-logs", || format!("Name {}", v.name))?;
    check(
        v.state.status == "exited" && v.state.exit_code == 3 && !v.state.running,
        || format!("State {:?}", v.state),
    )?;
    check(
        v.config
            .cmd
            .as_deref()
            .and_then(|c| c.first())
            .map(String::as_str)
            == Some("sh"),
        || format!("Config {:?}", v.config),
    )?;
    check(v.host_config.network_mode == "none", || {
        format!("HostConfig {:?}", v.host_config)
    })?;
    // And printed, Docker's names and shape.
    let json = berth_engine::inspect::types::to_value(&v);
    check(
        json["State"]["ExitCode"] == 3 && json["HostConfig"]["NetworkMode"] == "none",
        || format!("JSON {json}"),
    )?;

    let mut rm = RemoveOptions::default();
    rm.volumes = true;
    e.container_remove("api-logs", &rm)?;
    check(
        matches!(e.find(&r.id), Err(Error::NoSuchContainer(_))),
        || "the container is still found after rm".into(),
    )?;
    check(!e.container_dir(&r.id).exists(), || {
        format!("{} is left after rm", e.container_dir(&r.id).display())
    })?;
    check(!e.runtime_root().join(&r.id).exists(), || {
        "the runtime's state is left after rm".into()
    })?;

    // The journal: this container's life, in order.
    let mut opts = EventOptions::default();
    opts.since = Some(before);
    opts.until = Some(time::OffsetDateTime::now_utc());
    opts.filters = vec![("container".into(), "api-logs".into())];
    opts.deadline = Some(Instant::now() + PATIENCE);
    let actions: Vec<String> = e
        .events(&opts)?
        .map(|x| x.map(|x| x.action))
        .collect::<Result<_, _>>()?;
    let want = ["create", "start", "die", "destroy"];
    let mut it = actions.iter();
    check(want.iter().all(|w| it.any(|a| a == w)), || {
        format!("events {actions:?}, want {want:?} in order")
    })?;
    Ok(())
}

/// `logs --follow`: what the container writes after the stream opened,
/// each line once, and the end of the stream when the container exits.
fn follow_streams_until_the_container_exits() -> Result<(), Failed> {
    let mut s = Store::new();
    s.start(
        "api-follow",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done",
        ],
    );
    let e = s.engine();
    let mut opts = LogOptions::default();
    opts.follow = true;
    opts.deadline = Some(Instant::now() + PATIENCE);
    let lines: Vec<String> = e
        .container_logs("api-follow", &opts)?
        .map(|x| x.map(|x| x.log))
        .collect::<Result<_, _>>()?;
    check(
        lines == ["line1\n", "line2\n", "line3\n", "line4\n", "line5\n"],
        || format!("followed {lines:?}"),
    )?;
    // The stream ended because the container did, not at the deadline.
    let r = e.find("api-follow")?;
    check(r.status == Status::Exited, || {
        format!("status {}", r.status)
    })?;

    // A container whose monitor and init were killed (no exit will ever
    // be recorded by them) ends the stream too.
    let r = s.start("api-orphan", &["sleep", "1000"]);
    let e = s.engine();
    check(r.monitor_pid > 0 && r.pid > 0, || {
        format!("pids {} {}", r.monitor_pid, r.pid)
    })?;
    for pid in [r.monitor_pid, r.pid] {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)?;
    }
    let deadline = Instant::now() + PATIENCE;
    opts.deadline = Some(deadline);
    let left: Vec<_> = e
        .container_logs("api-orphan", &opts)?
        .collect::<Result<_, _>>()?;
    check(left.is_empty(), || format!("entries {left:?}"))?;
    check(Instant::now() < deadline, || {
        "the followed log of a dead container ended only at the deadline".into()
    })?;
    let r = e.find("api-orphan")?;
    check(r.status == Status::Exited, || {
        format!("status {}", r.status)
    })?;
    Ok(())
}

/// Stats of a running container, its processes, and stop: a container
/// that ignores SIGTERM (sh as pid 1) is killed once the timeout passes.
fn stats_top_and_stop_with_a_timeout() -> Result<(), Failed> {
    let mut s = Store::new();
    let r = s.start("api-stats", &["sh", "-c", "while :; do sleep 1; done"]);
    let e = s.engine();
    let mut opts = StatsOptions::default();
    opts.containers = vec!["api-stats".into()];
    opts.deadline = Some(Instant::now() + PATIENCE);
    let reports: Vec<_> = e.container_stats(&opts)?.collect::<Result<_, _>>()?;
    check(reports.len() == 1, || {
        format!("{} reports, want one", reports.len())
    })?;
    let one = &reports[0];
    check(one.len() == 1 && one[0].id == r.id, || {
        format!("report {one:?}")
    })?;
    let usage = one[0]
        .usage
        .as_ref()
        .ok_or("no usage for a running container")?;
    check(usage.pids >= 1, || format!("pids {}", usage.pids))?;
    check(
        usage.memory_used > 0 && usage.memory_limit >= usage.memory_used,
        || format!("memory {} of {}", usage.memory_used, usage.memory_limit),
    )?;
    check(usage.cpu_percent.is_some(), || "no CPU figure".into())?;

    // Streamed: a report a second until the caller has enough.
    opts.stream = true;
    let stream = e.container_stats(&opts)?;
    let two: Vec<_> = stream.take(2).collect::<Result<_, _>>()?;
    check(
        two.len() == 2
            && two.iter().all(|r| {
                r.len() == 1 && r[0].usage.as_ref().is_some_and(|u| u.cpu_percent.is_some())
            }),
        || format!("streamed reports {two:?}"),
    )?;
    // A wait that gives up says so, typed, while the container runs on.
    let mut short = WaitOptions::default();
    short.deadline = Some(Instant::now());
    check(
        matches!(
            e.container_wait("api-stats", &short),
            Err(x) if refused_by_state(&x)
        ),
        || "wait past its deadline did not fail".into(),
    )?;

    let top = e.container_top("api-stats", &TopOptions::default())?;
    check(top.titles.iter().any(|t| t == "PID"), || {
        format!("top titles {:?}", top.titles)
    })?;
    check(
        top.processes.iter().any(|p| {
            p.len() == top.titles.len() && p.last().is_some_and(|c| c.contains("while :"))
        }),
        || format!("top {:?}", top.processes),
    )?;

    let mut stop = StopOptions::default();
    stop.timeout = Some(1);
    e.container_stop("api-stats", &stop)?;
    let v = e.container_inspect("api-stats")?;
    // SIGKILL's code: the stop signal alone did not end it.
    check(
        v.state.status == "exited" && v.state.exit_code == 137,
        || format!("State {:?}", v.state),
    )?;
    // A stopped container: stats have nothing to read, and stop again is
    // no error.
    e.container_stop("api-stats", &stop)?;
    Ok(())
}

/// rename, pause/unpause, kill with a signal, and the typed refusals a
/// front end words for its user.
fn rename_pause_kill_and_refusals() -> Result<(), Failed> {
    let mut s = Store::new();
    let r = s.start(
        "api-old",
        &[
            "sh",
            "-c",
            "trap 'exit 42' USR1; while :; do sleep 0.1; done",
        ],
    );
    let e = s.engine();
    e.container_rename("api-old", "api-new")?;
    check(e.find("api-new")?.id == r.id, || {
        "renamed container not found".into()
    })?;
    check(
        matches!(e.find("api-old"), Err(Error::NoSuchContainer(_))),
        || "the old name still finds it".into(),
    )?;
    check(
        matches!(
            e.container_rename("api-new", "bad name!"),
            Err(Error::InvalidName(_))
        ),
        || "a bad name was accepted".into(),
    )?;

    e.container_pause("api-new")?;
    check(e.find("api-new")?.status == Status::Paused, || {
        "not paused".into()
    })?;
    check(
        matches!(e.container_pause("api-new"), Err(x) if refused_by_state(&x)),
        || "paused twice".into(),
    )?;
    e.container_unpause("api-new")?;
    check(e.find("api-new")?.status == Status::Running, || {
        "not running again".into()
    })?;

    // A running container is not removed without force.
    check(
        matches!(
            e.container_remove("api-new", &RemoveOptions::default()),
            Err(x) if refused_by_state(&x)
        ),
        || "a running container was removed without force".into(),
    )?;

    let mut kill = KillOptions::default();
    kill.signal = Some(libc::SIGUSR1);
    e.container_kill("api-new", &kill)?;
    let exit = e.container_wait("api-new", &wait_opts())?;
    check(exit.exit_code == 42, || {
        format!("exit code {} after USR1", exit.exit_code)
    })?;
    check(
        matches!(e.container_kill("api-new", &kill), Err(x) if refused_by_state(&x)),
        || "killed a stopped container".into(),
    )?;
    check(
        matches!(
            e.container_logs("nosuch", &LogOptions::default()),
            Err(Error::NoSuchContainer(_))
        ),
        || "logs of a missing container".into(),
    )?;
    Ok(())
}

/// A live event stream waits for new events; another thread's stop ends
/// it.
fn an_event_stream_ends_when_stopped() -> Result<(), Failed> {
    let s = Store::new();
    let e = s.engine();
    let mut opts = EventOptions::default();
    opts.deadline = Some(Instant::now() + PATIENCE);
    let mut stream = e.events(&opts)?;
    let stop = stream.stop_handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stop.stop();
    });
    let got = stream.next();
    stopper.join().map_err(|_| "stopper panicked")?;
    check(got.is_none(), || {
        format!("an event from an idle store: {got:?}")
    })?;
    check(
        Instant::now() < opts.deadline.unwrap_or_else(Instant::now),
        || "the stream ended at its deadline, not when stopped".into(),
    )?;
    check(
        matches!(
            e.events(&{
                let mut o = EventOptions::default();
                o.filters = vec![("colour".into(), "red".into())];
                o
            }),
            Err(x) if refused_as_invalid(&x)
        ),
        || "an unknown filter was accepted".into(),
    )?;
    Ok(())
}

/// Volumes as objects: listed, inspected as Docker's JSON, refused removal
/// while a container's config names them, removed (and journaled) after.
fn volumes_in_use_are_kept() -> Result<(), Failed> {
    let mut s = Store::new();
    s.engine()
        .volumes()
        .create(Some("api-vol"), &Default::default())?;
    let e = s.engine();
    check(e.volume_list()?.iter().any(|v| v.name == "api-vol"), || {
        "the volume is not listed".into()
    })?;
    let v = e.volume_inspect("api-vol")?;
    check(v.name == "api-vol" && v.driver == "local", || {
        format!("volume {v:?}")
    })?;
    let mountpoint = v.mountpoint.clone();
    check(mountpoint.is_dir(), || {
        format!("mountpoint {}", mountpoint.display())
    })?;

    let engine = s.engine.as_mut().expect("engine");
    let cfg = ContainerConfig {
        image: "busybox".into(),
        cmd: vec!["true".into()],
        network: "none".into(),
        mounts: vec![berth_engine::config::Mount {
            kind: "volume".into(),
            source: "api-vol".into(),
            destination: "/data".into(),
            ..Default::default()
        }],
        ..ContainerConfig::default()
    };
    let r = engine.create(cfg, Some("api-vol-user"))?;
    let e = s.engine();
    // system df: the volume's bytes, in use by the created container.
    std::fs::write(mountpoint.join("blob"), vec![7u8; 100_000])?;
    let du = e.disk_usage()?;
    check(
        du.volumes.count == 1
            && du.volumes.active == 1
            && du.volumes.size >= 100_000
            && du.volumes.reclaimable == 0,
        || format!("volumes {:?}", du.volumes),
    )?;
    check(
        du.containers.count == 1 && du.containers.active == 0 && du.images.active == 1,
        || format!("df {du:?}"),
    )?;
    check(
        matches!(e.remove_volume("api-vol"), Err(x) if refused_as_invalid(&x)),
        || "a volume in use was removed".into(),
    )?;
    e.container_remove(&r.id, &RemoveOptions::default())?;
    e.remove_volume("api-vol")?;
    check(
        matches!(e.volume("api-vol"), Err(Error::NoSuchVolume(_))),
        || "the volume is still there".into(),
    )?;
    check(!mountpoint.exists(), || {
        format!("{} is left", mountpoint.display())
    })?;
    check(
        matches!(e.volume_inspect("api-vol"), Err(Error::NoSuchVolume(_))),
        || "inspect of a removed volume".into(),
    )?;
    Ok(())
}

/// `start` with the caller's stdio runs the container here until it ends
/// (its output in the caller's file, its exit code reported); without, under
/// a monitor that runs on, and a second start does nothing. `attach`
/// connects to a running container (journaled) and refuses a stopped one
/// by its kind.
fn start_runs_attached_or_detached_and_attach_follows_the_state() -> Result<(), Failed> {
    let mut s = Store::new();
    s.create("api-fg", &["sh", "-c", "echo hi; echo oops >&2; exit 4"]);
    s.create("api-bg", &["sleep", "600"]);
    let before = time::OffsetDateTime::now_utc();
    let dir = tempfile::tempdir()?;
    let file = |name: &str| -> Result<std::os::fd::OwnedFd, std::io::Error> {
        Ok(std::fs::File::create(dir.path().join(name))?.into())
    };
    let e = s.engine.as_mut().expect("engine");
    let mut fg = StartOptions::default();
    fg.attach = Some(berth_relay::relay::Caller {
        stdin: None,
        stdout: Some(file("out")?),
        stderr: Some(file("err")?),
    });
    let started = e.container_start("api-fg", fg)?;
    check(matches!(started, Started::Exited(4)), || {
        format!("attached start: {started:?}")
    })?;
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name));
    check(read("out")? == "hi\n" && read("err")? == "oops\n", || {
        format!(
            "caller's stdout {:?}, stderr {:?}",
            read("out"),
            read("err")
        )
    })?;
    let refused = e.container_attach("api-fg");
    check(
        matches!(&refused, Err(x @ Error::AttachStopped) if x.kind() == ErrorKind::NotRunning),
        || format!("attach to an exited container: {refused:?}"),
    )?;

    let started = e.container_start("api-bg", StartOptions::default())?;
    check(matches!(started, Started::Detached), || {
        format!("detached start: {started:?}")
    })?;
    check(e.find("api-bg")?.status == Status::Running, || {
        "not running after a detached start".into()
    })?;
    let again = e.container_start("api-bg", StartOptions::default())?;
    check(matches!(again, Started::AlreadyRunning), || {
        format!("second start: {again:?}")
    })?;
    let a = e.container_attach("api-bg")?;
    check(!a.tty && !a.open_stdin, || format!("attachment {a:?}"))?;
    drop(a);
    e.container_pause("api-bg")?;
    let refused = e.container_attach("api-bg");
    check(matches!(refused, Err(Error::AttachPaused)), || {
        format!("attach to a paused container: {refused:?}")
    })?;
    e.container_unpause("api-bg")?;

    let mut opts = EventOptions::default();
    opts.since = Some(before);
    opts.until = Some(time::OffsetDateTime::now_utc());
    opts.filters = vec![("container".into(), "api-bg".into())];
    opts.deadline = Some(Instant::now() + PATIENCE);
    let actions: Vec<String> = e
        .events(&opts)?
        .map(|x| x.map(|x| x.action))
        .collect::<Result<_, _>>()?;
    check(
        actions.iter().filter(|a| *a == "start").count() == 1
            && actions.iter().any(|a| a == "attach"),
        || format!("events {actions:?}: one start, an attach"),
    )?;
    Ok(())
}

/// `monitor::start_held`: the container is made ready to run (the
/// runtime's container exists) but its program does not run and it counts
/// as created; released, it runs; its Held dropped, the start is called
/// off, the runtime's container deleted, and a later start works.
fn held_starts_run_on_the_word_or_are_called_off() -> Result<(), Failed> {
    use berth_engine::monitor::{start_held, Held};
    let mut s = Store::new();
    let go = s.create("api-held-go", &["sh", "-c", "echo ran; exec sleep 60"]);
    let off = s.create("api-held-off", &["sh", "-c", "echo ran; exec sleep 60"]);
    let e = s.engine();
    let held_go = start_held(e, &go, PATIENCE)?;
    let held_off = start_held(e, &off, PATIENCE)?;
    let prepared = |id: &str| berth_runtime::Container::load(&e.runtime_root(), id).is_ok();
    let deadline = Instant::now() + PATIENCE;
    while !(prepared(&go.id) && prepared(&off.id)) {
        check(Instant::now() < deadline, || {
            "the held starts never made the runtime's containers".into()
        })?;
        std::thread::sleep(Duration::from_millis(10));
    }
    for r in [&go, &off] {
        let now = e.find(&r.id)?;
        let state = e.container_inspect(&r.id)?.state.status;
        check(
            !now.status.is_active() || now.status == Status::Starting,
            || format!("{}: held but {:?}", r.name, now.status),
        )?;
        check(state == "created", || {
            format!("{}: inspect says {state}", r.name)
        })?;
    }
    drop(held_off);
    let results = Held::release_all(vec![held_go]);
    check(results.len() == 1 && results[0].is_ok(), || {
        format!("release: {results:?}")
    })?;
    check(e.find(&go.id)?.status == Status::Running, || {
        "released but not running".into()
    })?;
    // Called off: created again, with the reason, its program never run.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = e.find(&off.id)?;
        if now.status == Status::Created && now.error.contains("called off") {
            break;
        }
        check(Instant::now() < deadline, || {
            format!("the dropped start was never called off: {now:?}")
        })?;
        std::thread::sleep(Duration::from_millis(10));
    }
    check(!prepared(&off.id), || {
        "the called-off start left the runtime's container".into()
    })?;
    let logs: Vec<_> = e
        .container_logs(&off.id, &LogOptions::default())?
        .collect::<Result<_, _>>()?;
    check(logs.is_empty(), || format!("its program ran: {logs:?}"))?;
    berth_engine::monitor::start_detached(e, &e.find(&off.id)?)?;
    check(e.find(&off.id)?.status == Status::Running, || {
        "a start after the called-off one does not run".into()
    })?;
    Ok(())
}
