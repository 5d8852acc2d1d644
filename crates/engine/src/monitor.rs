//! Starting a container and staying with it until it ends: the monitor.
//!
//! A detached container's monitor is a process of its own (forked twice, in
//! a session of its own, its stdio on /dev/null): it mounts the rootfs,
//! writes config.json, creates and starts the container through the runtime
//! library with pipes for stdout and stderr, writes what comes through them
//! to the json-file log, reaps the init (it is the container's subreaper),
//! records the exit, applies the restart policy and, with `--rm`, removes
//! the container. A foreground `berth run` does the same in-process, also
//! copying the output to its own stdout and stderr and forwarding signals.
//!
//! Small on purpose: no threads, no async runtime, one poll loop.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

use crate::db::{Record, Status};
use crate::error::{Context, Error, Result};
use crate::health::OnFailure;
use crate::logs;
use crate::spec;
use crate::Engine;

/// Who watches the container.
#[derive(Debug)]
pub enum Mode {
    /// We do, in the foreground, relaying between the caller's stdio (the
    /// descriptors the front end hands in) and the container's pipes; with
    /// its stdin, that feeds the container's (`run -i`, `start -ai`).
    /// An `auto_remove` container is removed before [`run`] returns, its
    /// files moved into the store's trash: the caller, once it has given
    /// the exit code, deletes them with [`crate::trash::sweep`] (the CLI
    /// forks a child for it).
    Foreground { caller: berth_relay::relay::Caller },
    /// A monitor process, which reports on `notify` once the container
    /// runs; with `wait_attach`, once it listens for clients, and then
    /// waits for one before starting the container (`run -it`). With
    /// `hold` (see [`start_held`]), the container is made ready to run
    /// (created, its network attached) and started only once a byte comes
    /// through it before its deadline; its end closing first calls the
    /// start off.
    Detached {
        notify: OwnedFd,
        wait_attach: bool,
        hold: Option<(OwnedFd, Instant)>,
    },
    /// A monitor back from berth-monitor, which relayed the container's
    /// life until it exited with `code`: record it, restart or finish.
    Resumed { code: i32 },
}

/// The hidden first argument with which the `berth` binary runs
/// [`main`]: `berth __monitor ROOT RUNROOT ID [attach]`, its report pipe
/// on fd 3.
pub const MONITOR_ARG: &str = "__monitor";

/// The last argument of a monitor that waits for a client to attach.
const WAIT_ATTACH_ARG: &str = "attach";

/// `berth __monitor ROOT RUNROOT ID exited CODE`: berth-monitor handing a
/// container's exit back.
const EXITED_ARG: &str = "exited";

/// `berth __monitor ROOT RUNROOT ID hold SECONDS`: a held start (see
/// [`start_held`]), its go pipe on fd 4.
const HOLD_ARG: &str = "hold";

/// Starts the container under a monitor process of its own; returns once
/// the container runs (or with the reason it could not start).
///
/// The monitor is our own binary executed afresh (`/proc/self/exe
/// __monitor ...`, in a new session, twice forked): a fresh process holds
/// no copy of our heap (its memory is only what it uses) and no SQLite
/// connection inherited across fork, which SQLite forbids.
///
/// The caller must be single-threaded: it forks.
pub fn start_detached(engine: &Engine, r: &Record) -> Result<()> {
    spawn(engine, r, false)
}

/// Starts the container under a monitor of its own with a client attached
/// from the start, so that no output is missed: `run -it`, `start -a` of a
/// container with a terminal. Returns the connection to relay with
/// [`attach::relay`](crate::attach::relay); an error that keeps the
/// container from starting arrives there.
pub fn start_attached(engine: &Engine, r: &Record) -> Result<std::os::unix::net::UnixStream> {
    spawn(engine, r, true)?;
    crate::attach::connect(&engine.runroot, &r.id)
}

/// Starts several containers at once, each under a monitor of its own
/// (as [`start_detached`]): every monitor is spawned first, then their
/// reports are awaited, so the containers start side by side and the whole
/// takes about as long as the slowest (compose starts the services of one
/// dependency level so). One result per record, in their order.
///
/// The caller must be single-threaded: it forks.
pub fn start_detached_all(engine: &Engine, records: &[Record]) -> Vec<Result<()>> {
    await_all(begin_detached_all(engine, records))
}

/// Awaits starts [`begin_detached_all`] began, in their order. Each
/// report pipe closes when its monitor has reported (or died): read in
/// turn, the waits overlap.
pub fn await_all(starting: Vec<Result<Starting>>) -> Vec<Result<()>> {
    starting
        .into_iter()
        .map(|s| s.and_then(Starting::wait))
        .collect()
}

/// A monitor spawned by [`begin_detached_all`], starting its container.
/// Dropped unawaited, the start goes on: only its report is lost.
#[derive(Debug)]
pub struct Starting {
    report: OwnedFd,
}

impl Starting {
    /// Returns once the container runs, or with why it could not start.
    pub fn wait(self) -> Result<()> {
        await_report(&self.report)
    }
}

/// Spawns a monitor for each record (as [`start_detached`]) without
/// waiting for their reports, so that the caller can begin other work
/// while the containers start and await each when it needs it (compose
/// begins the held starts of the services waiting on a condition once
/// what they wait on runs, not once every service of the level does).
/// One result per record, in their order.
///
/// The caller must be single-threaded: it forks.
pub fn begin_detached_all(engine: &Engine, records: &[Record]) -> Vec<Result<Starting>> {
    records
        .iter()
        .map(|r| launch(engine, r, false, None).map(|report| Starting { report }))
        .collect()
}

/// A container whose monitor has made it ready to run (the runtime's
/// container created, its network attached) and waits for the word to
/// start it: [`Held::release_all`]. Dropped unreleased, or past the
/// deadline given to [`start_held`], the monitor calls the start off and
/// the container stays created.
#[derive(Debug)]
pub struct Held {
    report: OwnedFd,
    go: OwnedFd,
}

/// Begins the start of `r` under a monitor of its own and holds it just
/// before its program runs, for at most `hold`: compose prepares a
/// service's containers while what it depends on becomes healthy, so that
/// once it is, the start that remains is only the program's exec. The
/// container counts as created (not running) while held.
///
/// The caller must be single-threaded: it forks.
pub fn start_held(engine: &Engine, r: &Record, hold: Duration) -> Result<Held> {
    let (go_rd, go) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    let report = launch(engine, r, false, Some((go_rd, hold)))?;
    Ok(Held { report, go })
}

impl Held {
    /// Starts the held containers together; one result per container, in
    /// their order: as [`start_detached_all`]'s.
    pub fn release_all(held: Vec<Held>) -> Vec<Result<()>> {
        let reports: Vec<OwnedFd> = held
            .into_iter()
            .map(|h| {
                // A monitor that is gone reports why below.
                let _ = nix::unistd::write(&h.go, b"g");
                h.report
            })
            .collect();
        reports.iter().map(await_report).collect()
    }
}

fn spawn(engine: &Engine, r: &Record, wait_attach: bool) -> Result<()> {
    let rd = launch(engine, r, wait_attach, None)?;
    await_report(&rd)
}

/// Spawns the monitor of `r` (which goes on to start the container) and
/// returns the read end of its report pipe; with `hold`, the read end of
/// its go pipe (put on the monitor's fd 4) and how long it may wait.
fn launch(
    engine: &Engine,
    r: &Record,
    wait_attach: bool,
    hold: Option<(OwnedFd, Duration)>,
) -> Result<OwnedFd> {
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    let hold_secs = hold
        .as_ref()
        .map(|(_, d)| d.as_secs().max(1).to_string())
        .unwrap_or_default();
    let mut args = vec![
        std::ffi::OsStr::new("berth-monitor"),
        std::ffi::OsStr::new(MONITOR_ARG),
        engine.root.as_os_str(),
        engine.runroot.as_os_str(),
        std::ffi::OsStr::new(&r.id),
    ];
    if wait_attach {
        args.push(std::ffi::OsStr::new(WAIT_ATTACH_ARG));
    }
    if hold.is_some() {
        args.push(std::ffi::OsStr::new(HOLD_ARG));
        args.push(std::ffi::OsStr::new(&hold_secs));
    }
    let argv = c_strings(&args).ok_or_else(|| Error::Nul("a path contains a NUL byte".into()))?;
    // SAFETY: the process is single-threaded (the engine's contract), so
    // the child may run arbitrary code; it ends in exec or _exit.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(rd);
            let _ = nix::unistd::setsid();
            // SAFETY: as above; the grandchild becomes the monitor.
            if let Ok(ForkResult::Child) = unsafe { nix::unistd::fork() } {
                // The go pipe moved off fd 3 first, which the report
                // pipe takes; both without close-on-exec. Every other
                // descriptor of the caller's (a script's `exec 7>`, a pipe
                // its reader waits on to end) closed at the exec, or the
                // monitor would hold it for the container's life.
                let go = hold.as_ref().map(|(g, _)| {
                    let g = g.as_raw_fd();
                    if g == 3 {
                        nix::unistd::dup(g).unwrap_or(g)
                    } else {
                        g
                    }
                });
                let placed = nix::unistd::dup2(wr.as_raw_fd(), 3).is_ok()
                    && go.is_none_or(|g| nix::unistd::dup2(g, 4).is_ok())
                    && cloexec_from(if go.is_some() { 5 } else { 4 });
                if placed {
                    // From a read-only view of our binary: the monitor
                    // starts the container and its health checks
                    // (CVE-2019-5736), and the caller (`run -d`) need not
                    // have re-executed itself for it.
                    let _ = berth_runtime::exe::exec_protected(&argv, false);
                }
                let _ = nix::unistd::write(&wr, b"cannot execute the monitor");
            }
            // SAFETY: _exit ends the process without running destructors
            // of state shared with the parent.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            drop(hold);
            // The middle process ends at once (its child, the monitor, is
            // the init's now).
            let _ = waitpid(child, None);
            Ok(rd)
        }
    }
}

/// Marks every descriptor from `first` up close-on-exec (left open until
/// the exec, so that a failed exec can still report): close_range(2), or
/// each of /proc/self/fd on a kernel before 5.11.
fn cloexec_from(first: u32) -> bool {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes two integers and a flag, and touches
    // only the descriptor table.
    if unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) } == 0 {
        return true;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.into_iter()
        .filter(|fd| u32::try_from(*fd).is_ok_and(|fd| fd >= first))
        .all(|fd| {
            // SAFETY: F_SETFD on a descriptor number; the one read_dir used
            // (closed since) fails with EBADF, which is harmless.
            let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            r == 0 || nix::errno::Errno::last() == nix::errno::Errno::EBADF
        })
}

/// Reads a monitor's report to its end: "ok" once the container runs,
/// else why it could not start.
fn await_report(rd: &OwnedFd) -> Result<()> {
    let mut report = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(rd.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => report.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).ctx(|| "read the monitor's report".into()),
        }
    }
    let report = String::from_utf8_lossy(&report);
    match report.strip_prefix("ok") {
        Some(_) => Ok(()),
        None if report.is_empty() => Err(Error::Monitor(
            "the container's monitor died before the container started".into(),
        )),
        None => Err(Error::from_report(report.as_bytes())),
    }
}

/// For a program that embeds the engine: detached containers are watched
/// by the program itself, re-executed as `PROGRAM __monitor ROOT RUNROOT
/// ID` (see [`start_detached`]), and `--init` runs it as the container's
/// init. Called first thing in `main` with the process's arguments: `None`
/// when this process is neither (go on), else the exit code to leave with
/// at once, or why the monitor could not protect its binary (CVE-2019-5736)
/// for the caller to print (exit 125 then, as `berth` does).
pub fn serve_if_asked(args: &[std::ffi::OsString]) -> Option<Served> {
    if args.first().is_some_and(|a| crate::init::is_init(a)) {
        return Some(match crate::init::main(&args[1..]) {
            Ok(code) => Served::Exit(code),
            Err(e) => Served::Failed {
                message: format!("berth-init: {e}"),
                code: e.exit_code(),
            },
        });
    }
    if args.get(1).is_none_or(|a| a != MONITOR_ARG) {
        return None;
    }
    // The monitor starts health checks and restarts in the container.
    if let Err(e) = berth_runtime::exe::ensure_protected() {
        return Some(Served::Failed {
            message: format!("Error: {e}"),
            code: 125,
        });
    }
    Some(match main(&args[2..]) {
        Ok(code) => Served::Exit(code),
        // A wrong command line: the usage.
        Err(e) => Served::Failed {
            message: e.to_string(),
            code: 2,
        },
    })
}

/// What [`serve_if_asked`] did, for the program to leave with.
#[derive(Debug)]
pub enum Served {
    /// It ran: leave with this code (the container's, or the monitor's).
    Exit(i32),
    /// It could not: print `message` on stderr and leave with `code`.
    Failed { message: String, code: i32 },
}

impl Served {
    /// The process's exit status (the low byte, as the kernel keeps it).
    pub fn code(&self) -> u8 {
        let (Served::Exit(c) | Served::Failed { code: c, .. }) = self;
        u8::try_from(c & 0xff).unwrap_or(1)
    }

    /// What to print on stderr before leaving, if anything.
    pub fn message(&self) -> Option<&str> {
        match self {
            Served::Exit(_) => None,
            Served::Failed { message, .. } => Some(message),
        }
    }
}

/// The monitor process (`berth __monitor ROOT RUNROOT ID`, fd 3 its report
/// pipe): stdio on /dev/null, stderr to `monitor.log` beside the
/// container's log, then [`run`]. Returns the exit code to leave with;
/// what goes wrong once the monitor runs is written to `monitor.log`, only
/// a wrong command line is returned (for the binary to print).
pub fn main(args: &[std::ffi::OsString]) -> Result<i32> {
    let (root, runroot, id, tail) = match args {
        [root, runroot, id, tail @ ..] => (root, runroot, id, tail),
        _ => return Err(usage()),
    };
    let id = id.to_string_lossy();
    let (root, runroot) = (std::path::Path::new(root), std::path::Path::new(runroot));
    let resumed = |code: &std::ffi::OsString| -> Option<Mode> {
        let code = code.to_str()?.parse().ok()?;
        Some(Mode::Resumed { code })
    };
    let mode = match tail {
        [e, code] if e == EXITED_ARG => match resumed(code) {
            Some(m) => m,
            None => return Err(usage()),
        },
        [] | [_] | [_, _] => {
            let (wait_attach, hold_secs) = match tail {
                [] => (false, None),
                [a] if a == WAIT_ATTACH_ARG => (true, None),
                [h, secs] if h == HOLD_ARG => match secs.to_str().and_then(|s| s.parse().ok()) {
                    Some(s) => (false, Some(s)),
                    None => return Err(usage()),
                },
                _ => return Err(usage()),
            };
            let hold = hold_secs.map(|s: u64| {
                // SAFETY: fd 4 was put there for us by start_held (with
                // the hold argument) and nothing else in this fresh
                // process owns it.
                let go = unsafe { OwnedFd::from_raw_fd(4) };
                let _ = nix::fcntl::fcntl(
                    go.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                );
                (go, Instant::now() + Duration::from_secs(s))
            });
            // SAFETY: fd 3 was put there for us by start_detached and nothing
            // else in this fresh process owns it.
            let notify = unsafe { OwnedFd::from_raw_fd(3) };
            let _ = nix::fcntl::fcntl(
                notify.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            Mode::Detached {
                notify,
                wait_attach,
                hold,
            }
        }
        _ => return Err(usage()),
    };
    Ok(monitor_main(root, runroot, &id, mode))
}

fn usage() -> Error {
    Error::Usage(format!(
        "usage: berth {MONITOR_ARG} ROOT RUNROOT ID [{WAIT_ATTACH_ARG} | {EXITED_ARG} CODE | {HOLD_ARG} SECONDS]"
    ))
}

/// One line in the container's `monitor.log` (beside its json-file log):
/// what goes wrong in a monitor, which has no terminal to say it on, is on
/// record there.
fn note(root: &std::path::Path, id: &str, what: &dyn std::fmt::Display) {
    use std::io::Write;
    let path = root.join("containers").join(id).join("monitor.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "monitor of {id}: {what}");
    }
}

fn monitor_main(root: &std::path::Path, runroot: &std::path::Path, id: &str, mode: Mode) -> i32 {
    if let Ok(null) = nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty()) {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null, fd);
        }
        if null > 2 {
            let _ = nix::unistd::close(null);
        }
    }
    // stderr: a file beside the log, so what kills a monitor is on record.
    let diag = root.join("containers").join(id).join("monitor.log");
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&diag)
    {
        let _ = nix::unistd::dup2(f.as_raw_fd(), 2);
    }
    let _ = std::env::set_current_dir("/");
    let mut engine = match Engine::open(root, runroot) {
        Ok(e) => e,
        Err(e) => {
            if let Mode::Detached { notify, .. } = &mode {
                let _ = nix::unistd::write(notify, e.to_report().as_bytes());
            }
            note(root, id, &e);
            return 1;
        }
    };
    match run(&mut engine, id, mode) {
        Ok(code) => code,
        Err(e) => {
            note(root, id, &e);
            1
        }
    }
}

/// Runs the container until it ends for good (restarts included); returns
/// its last exit code.
pub fn run(engine: &mut Engine, id: &str, mode: Mode) -> Result<i32> {
    let (caller, mut notify, wait_attach, resumed, mut hold) = match mode {
        Mode::Detached {
            notify,
            wait_attach,
            hold,
        } => (None, Some(notify), wait_attach, None, hold),
        Mode::Foreground { caller } => (Some(caller), None, false, None, None),
        Mode::Resumed { code } => (None, None, false, Some(code), None),
    };
    // Clients may attach to any running container (a socket costs little).
    let mut server = crate::attach::Server::bind(&engine.runroot, id);
    let result = match (&mut server, wait_attach) {
        (Err(e), true) => Err(Error::Monitor(format!("cannot attach: {e}"))),
        (Ok(s), true) => {
            // The client connects once we answer, before anything starts.
            if let Some(n) = notify.take() {
                let _ = nix::unistd::write(&n, b"ok");
            }
            s.wait_for_client(Duration::from_secs(30))
                .map_err(|e| Error::Monitor(e.to_string()))
                .and_then(|()| {
                    run_inner(
                        engine,
                        id,
                        caller.as_ref(),
                        &mut notify,
                        Some(s),
                        None,
                        &mut hold,
                    )
                })
        }
        (s, false) => run_inner(
            engine,
            id,
            caller.as_ref(),
            &mut notify,
            s.as_mut().ok(),
            resumed,
            &mut hold,
        ),
    };
    if let Err(e) = &result {
        // Could not start: the container stays created, with the reason.
        if let Some(n) = notify.take() {
            let _ = nix::unistd::write(&n, e.to_report().as_bytes());
        }
        if let Ok(s) = &mut server {
            s.fail(&e.to_report());
        }
        if let Ok(Some(r)) = engine.db.get(id) {
            let _ = engine.cleanup_runtime(&r);
            // A container that ran keeps its exit code; one that could not
            // start stays created, with the reason.
            let (status, code) = match resumed {
                Some(code) => (Status::Exited, code),
                None => (Status::Created, 0),
            };
            let _ = engine
                .db
                .set_exited(id, status, code, &e.to_string(), false);
        }
    }
    result
}

fn run_inner(
    engine: &mut Engine,
    id: &str,
    caller: Option<&berth_relay::relay::Caller>,
    notify: &mut Option<OwnedFd>,
    mut server: Option<&mut crate::attach::Server>,
    resumed: Option<i32>,
    hold: &mut Option<(OwnedFd, Instant)>,
) -> Result<i32> {
    let row = match resumed {
        None => {
            let me = crate::own_pid();
            engine
                .db
                .set_monitor(id, Status::Starting, me, crate::start_time(me))?
        }
        Some(_) => engine.db.get(id)?,
    };
    let mut r = row.ok_or_else(|| Error::NoSuchContainer(id.to_string()))?;
    let snapshot = engine.snapshot(&r)?;
    let mut log = logs::Writer::open(
        &engine.log_target(&r),
        r.config.log.max_size,
        r.config.log.max_file,
    )
    .ctx(|| format!("open log {}", engine.log_target(&r).display()))?;
    // Restarts back off from 100 ms, doubling up to a minute.
    let backoff = |n: u32| Duration::from_millis(100 << n.min(10)).min(Duration::from_secs(60));
    let mut host_mounted = None;
    let mut pending = resumed;
    loop {
        let life = match pending.take() {
            // berth-monitor relayed this life and handed its end back.
            Some(code) => Life {
                code,
                health_restart: false,
                runtime: None,
            },
            None => {
                let (rootfs, spec) = prepare_start(engine, &r, &snapshot, &mut host_mounted)?;
                run_once(
                    engine,
                    &mut r,
                    caller,
                    notify,
                    &mut log,
                    server.as_deref_mut(),
                    (rootfs, spec),
                    hold.take(),
                )?
            }
        };
        let code = life.code;
        log.flush();
        // Kept from the start, or loaded once (its state holds the whole
        // spec) for the OOM count and the delete; the OOM count before the
        // cgroups go with it.
        let runtime = life
            .runtime
            .or_else(|| berth_runtime::Container::load(&engine.runtime_root(), id).ok());
        let oom = runtime
            .as_ref()
            .and_then(|c| c.state.cgroups.as_ref().map(|m| m.oom_kills() > 0))
            .unwrap_or(false);
        if oom {
            engine.db.container_event(&r, "oom", &[]);
        }
        // A foreground --rm trashes what it would delete (either way the
        // runtime's container is gone: a restart creates it anew).
        let _ = match runtime {
            Some(c) if caller.is_some() && r.config.auto_remove => {
                engine.delete_runtime_to_trash(c)
            }
            Some(c) => c.delete(true).map(drop).map_err(Error::from),
            None => Ok(()),
        };
        // Its ports, veths and leases go with each life (a restart takes
        // them again).
        if let Err(e) = engine.detach_network(&r, true) {
            note(&engine.root, id, &format_args!("release its network: {e}"));
        }
        // Not ready while it is not running: out of its kube Services.
        engine.refresh_service_hosts(&r, false);
        let code_text = code.to_string();
        let die = [("exitCode", code_text.as_str())];
        let Some(mut fresh) = engine.db.get(id)? else {
            // Removed meanwhile (`rm -f` gave up waiting): its end is told.
            engine.db.container_event(&r, "die", &die);
            return Err(Error::NoSuchContainer(id.into()));
        };
        r.restart_count = fresh.restart_count;
        // The exit and its `die` event in one commit: whoever sees the
        // event finds the exit recorded.
        let exited = |status: Status| {
            engine.db.in_transaction(|db| {
                db.set_exited(id, status, code, "", oom)?;
                db.container_event(&r, "die", &die);
                Ok(())
            })
        };
        if (life.health_restart && !fresh.stopped_by_user)
            || r.config
                .restart
                .restarts(code, r.restart_count, fresh.stopped_by_user)
        {
            exited(Status::Restarting)?;
            let stopped = wait_backoff(engine, id, backoff(r.restart_count))?;
            r.restart_count += 1;
            if stopped || engine.db.stop_requested(id)? {
                engine.db.set_exited(id, Status::Exited, code, "", oom)?;
                let _ = snapshot.unmount();
                finish(&mut server, code);
                return Ok(code);
            }
            // Attached clients end with the container's first life, as
            // docker's do.
            finish(&mut server, code);
            continue;
        }
        let _ = snapshot.unmount();
        if r.config.auto_remove {
            // Marked for removal with its exit (Docker's "removal in
            // progress"): nothing can start it again meanwhile.
            exited(Status::Removing)?;
            fresh.status = Status::Removing;
            if caller.is_some() {
                // The caller waits for the exit code: the container
                // goes now, its files once the code is reported.
                engine.remove_to_trash(&fresh, true, true)?;
            } else {
                engine.remove(&fresh, true, true)?;
            }
        } else {
            exited(Status::Exited)?;
        }
        // Told last: an attached `run --rm` returns once the container is
        // gone.
        finish(&mut server, code);
        return Ok(code);
    }
}

/// How often a monitor in restart back-off looks whether the user stopped
/// the container: `stop`, `kill` and `rm -f` wait for it to record the exit,
/// so this bounds how long they take (Docker returns at once), while a
/// back-off of up to a minute costs a few thousand one-row reads.
const BACKOFF_STEP: Duration = Duration::from_millis(20);

/// Sleeps for a restart back-off of `length`, in short steps; true as soon
/// as the user stopped (or removed) the container, so it is not started
/// again and the one who stopped it does not wait out the back-off.
fn wait_backoff(engine: &Engine, id: &str, length: Duration) -> Result<bool> {
    let deadline = std::time::Instant::now() + length;
    loop {
        if engine.db.stop_requested(id)? {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        std::thread::sleep(left.min(BACKOFF_STEP));
    }
}

/// Before each start: the rootfs (returned as a detached mount for the
/// runtime, see Snapshot::mount_detached; on a kernel without the new mount
/// API mounted here, as before, once: `host_mounted` remembers), volumes
/// filled, the spec built.
fn prepare_start(
    engine: &Engine,
    r: &Record,
    snapshot: &berth_image::snapshot::Snapshot,
    host_mounted: &mut Option<bool>,
) -> Result<(Option<OwnedFd>, oci_spec::runtime::Spec)> {
    let crate::launch::Rootfs { detached, lookup } = crate::launch::mount_rootfs(
        snapshot,
        host_mounted,
        r.config.auto_remove,
        r.config.id_map.as_ref(),
    )?;
    let dir = engine.container_dir(&r.id);
    let joins = joins(engine, r)?;
    // Before volumes are filled from the image: a `VOLUME /etc` gets the
    // regular files too, as it does from Docker's init layer.
    crate::initlayer::own_etc_files(&lookup)?;
    // Volumes: filled from the image when empty, then bound like binds.
    let mut spec_config = r.config.clone();
    for m in spec_config.mounts.iter_mut().filter(|m| m.kind == "volume") {
        // A volume with the local driver's options is mounted first.
        engine.volumes.mount(&m.source)?;
        // nocopy: the volume stays as it is.
        let no_copy = m.volume_options.as_ref().is_some_and(|o| o.no_copy);
        let filled = !no_copy
            && engine
                .volumes
                .populate(&m.source, &lookup, &m.destination)?;
        if let (true, Some(map)) = (filled, &r.config.id_map) {
            // Copied through the idmapped view: owners as the host sees
            // the container's, brought back to the image's own.
            crate::userns::unshift_tree(&engine.volumes.get(&m.source)?.mountpoint, map)?;
        }
        m.source = engine
            .volumes
            .get(&m.source)?
            .mountpoint
            .to_string_lossy()
            .into_owned();
        m.kind = "bind".into();
    }
    let rootfs = match r.config.id_map {
        Some(_) => crate::userns::rootfs_mount_point()?,
        None => snapshot.merged.as_path(),
    };
    let spec = spec::build(
        &spec_config,
        &r.id,
        &spec::Paths {
            rootfs,
            lookup: &lookup,
            dir: &dir,
        },
        &joins,
    )?;
    let spec = match crate::pods::pod_of_mode(&r.config.ipc_mode) {
        Some(pod) => share_pod_shm(spec, &crate::pods::pod_shm(engine, pod))?,
        None => spec,
    };
    Ok((detached, spec))
}

/// A member sharing its pod's IPC namespace gets the pod's /dev/shm (a
/// bind of the one tmpfs) instead of a tmpfs of its own.
fn share_pod_shm(
    mut spec: oci_spec::runtime::Spec,
    shm: &std::path::Path,
) -> Result<oci_spec::runtime::Spec> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let Some(m) = mounts
        .iter_mut()
        .find(|m| m.destination() == std::path::Path::new("/dev/shm"))
    else {
        return Ok(spec);
    };
    // In a user namespace the runtime cannot reach the pod's run
    // directory (host root's alone): the bind is cloned before and seen
    // through the container's mapping, as volumes are (`idmap`).
    let userns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    let mut options: Vec<String> = ["rbind", "rprivate", "nosuid", "noexec", "nodev"]
        .map(String::from)
        .to_vec();
    if userns {
        options.push("idmap".into());
    }
    *m = oci_spec::runtime::MountBuilder::default()
        .destination("/dev/shm")
        .typ("bind")
        .source(shm)
        .options(options)
        .build()
        .map_err(|e| Error::Monitor(format!("the pod's /dev/shm mount: {e}")))?;
    spec.set_mounts(Some(mounts));
    Ok(spec)
}

fn finish(server: &mut Option<&mut crate::attach::Server>, code: i32) {
    if let Some(s) = server {
        s.finish(code);
    }
}

/// Namespace paths for `--pid/--ipc/--uts container:X`.
fn joins(engine: &Engine, r: &Record) -> Result<spec::Joins> {
    let path = |mode: &str, ns: &str| -> Result<Option<String>> {
        if let Some(pod) = crate::pods::pod_of_mode(mode) {
            return engine.pod_namespace_path(pod, ns).map(Some);
        }
        let Some(other) = mode.strip_prefix("container:") else {
            return Ok(None);
        };
        let o = engine.find(other)?;
        if o.status != Status::Running || !crate::alive(o.pid, o.pid_start) {
            return Err(Error::Monitor(format!(
                "cannot join container {other}: it is not running"
            )));
        }
        Ok(Some(format!("/proc/{}/ns/{ns}", o.pid)))
    };
    // A container sharing another's namespaces shares its user namespace;
    // a pod's member, the pod's.
    let user = match &r.config.id_map {
        Some(_) if !r.config.pod.is_empty() => {
            Some(engine.pod_namespace_path(&r.config.pod, "user")?)
        }
        Some(_) => [
            &r.config.network,
            &r.config.pid_mode,
            &r.config.ipc_mode,
            &r.config.uts_mode,
        ]
        .into_iter()
        .find(|m| m.starts_with("container:"))
        .map(|m| path(m, "user"))
        .transpose()?
        .flatten(),
        None => None,
    };
    Ok(spec::Joins {
        user,
        pid: path(&r.config.pid_mode, "pid")?,
        ipc: path(&r.config.ipc_mode, "ipc")?,
        uts: path(&r.config.uts_mode, "uts")?,
        net: path(&r.config.network, "net")?,
    })
}

/// Whether the go byte of a held start comes through `go` before
/// `deadline` (its end closed, or the deadline passed: no).
fn released(go: &OwnedFd, deadline: Instant) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(go.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {
                let mut b = [0u8; 1];
                return matches!(nix::unistd::read(go.as_raw_fd(), &mut b), Ok(1));
            }
            Err(_) => return false,
        }
    }
}

fn dup_cloexec(fd: RawFd) -> Result<OwnedFd> {
    let n = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).ctx(|| "dup".into())?;
    // SAFETY: fcntl just returned this new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// One life of the container: create, start (once `hold`'s go comes, if
/// held), relay, reap. Returns the exit code.
#[allow(clippy::too_many_arguments)] // each is one part of a life; see run_inner
fn run_once(
    engine: &mut Engine,
    r: &mut Record,
    caller: Option<&berth_relay::relay::Caller>,
    notify: &mut Option<OwnedFd>,
    log: &mut logs::Writer,
    server: Option<&mut crate::attach::Server>,
    (rootfs, spec): (Option<OwnedFd>, oci_spec::runtime::Spec),
    hold: Option<(OwnedFd, Instant)>,
) -> Result<Life> {
    let id = r.id.clone();
    let console = if r.config.tty {
        Some(berth_runtime::terminal::ConsoleSocket::new(
            &engine.runroot,
            &id,
        )?)
    } else {
        None
    };
    // stdout and stderr: pipes to the log (and to attached clients, and to
    // our own stdio in the foreground). stdin: with -i a pipe, which the
    // relay feeds from our stdin in the foreground and attached clients
    // feed otherwise (docker keeps it open); /dev/null without. Never our
    // own descriptors: see stdio::Pipes.
    let mut pipes = crate::stdio::Pipes::new(r.config.open_stdin)?;
    let mut c = crate::launch::create(
        &engine.runtime_root(),
        crate::launch::Init {
            id: id.clone(),
            bundle: engine.container_dir(&id),
            spec,
            stdio: pipes.take_stdio()?,
            rootfs,
            console_socket: console.as_ref().map(|c| c.path.clone()),
            loopback_up: crate::networking::loopback_only(&r.config),
        },
    )?;
    let master = match console
        .as_ref()
        .map(berth_runtime::terminal::ConsoleSocket::receive_master)
    {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            let _ = c.delete(true);
            return Err(e.into());
        }
        None => None,
    };
    drop(console);
    // The init exists and waits: its network namespace gets its
    // interfaces before the program runs.
    if let Err(e) = engine.attach_network_as(r, c.state.pid, hold.is_some()) {
        let _ = c.delete(true);
        return Err(e);
    }
    if let Some((go, deadline)) = hold {
        // Named only once released, as docker resolves a container once it
        // starts: before, a peer would reach an address nothing listens on.
        let named = if released(&go, deadline) {
            engine.name_held(r)
        } else {
            Err(Error::Monitor(
                "the start was called off before the container ran".into(),
            ))
        };
        if let Err(e) = named {
            let _ = engine.detach_network(r, false);
            let _ = c.delete(true);
            return Err(e);
        }
    }
    if let Err(e) = c.start() {
        let _ = engine.detach_network(r, false);
        let _ = berth_runtime::Container::load(&engine.runtime_root(), &id).map(|c| c.delete(true));
        return Err(e.into());
    }
    let pid = c.state.pid;
    // The runtime's view (with the whole spec) is not needed while waiting,
    // and a monitor that stays for the container's life gives it back. In
    // the foreground, it is kept for the end instead of read again from
    // state.json (parsing the whole spec).
    let runtime = caller.is_some().then_some(c);
    r.pid = pid;
    r.pid_start = crate::start_time(pid);
    r.monitor_pid = crate::own_pid();
    r.monitor_start = crate::start_time(r.monitor_pid);
    r.started_at = crate::now();
    r.status = Status::Running;
    let checker = r
        .config
        .health
        .as_ref()
        .and_then(crate::health::Checker::new);
    let readiness = r
        .config
        .readiness
        .as_ref()
        .and_then(crate::health::Checker::new);
    let health_state = stored_health(checker.as_ref(), readiness.as_ref());
    // Running, its event and its (new) health in one commit.
    engine.db.in_transaction(|db| {
        db.set_running(r)?;
        db.container_event(r, "start", &[]);
        db.set_health(&id, health_state.as_ref())
    })?;
    // A pod member running: its kube Services' names may lead to it now.
    engine.refresh_service_hosts(r, true);
    if let Some(n) = notify.take() {
        let _ = nix::unistd::write(&n, b"ok");
    }
    if caller.is_none() {
        // From here on the monitor idles for the container's life: give
        // back what starting it used.
        engine.release_memory();
    }
    let pid = Pid::from_raw(pid);
    let mut health = HealthWatch {
        last: checker.as_ref().map(|c| c.health.status.clone()),
        last_ready: readiness.as_ref().map(|c| c.health.status.clone()),
        checker,
        readiness,
        runtime_root: engine.runtime_root(),
        record: r,
        engine,
        acted: None,
        kill_at: None,
    };
    // With a terminal, input goes to its master (when stdin is open) and
    // the output is one stream.
    let (streams, input) = match master {
        Some(m) => {
            // The terminal replaced the pipes in the container.
            drop(pipes);
            let input = if r.config.open_stdin {
                Some(dup_cloexec(m.as_raw_fd())?)
            } else {
                None
            };
            (vec![(m, 0)], input)
        }
        None => (pipes.streams, pipes.input),
    };
    if let Some(i) = &input {
        // Never blocked by a container that does not read its input.
        let _ = nix::fcntl::fcntl(
            i.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        );
    }
    // Waiting is berth-monitor's, when nothing else needs this process: no
    // healthcheck to run, no client attached (run -it stays here).
    if caller.is_none()
        && health.checker.is_none()
        && health.readiness.is_none()
        && server.as_ref().is_none_or(|s| s.clients() == 0)
    {
        let e = hand_over(engine, r, pid, &streams, input.as_ref(), server.as_deref());
        // Only back on failure: relay here instead.
        note(&engine.root, &id, &format_args!("berth-monitor: {e}"));
    }
    let code = berth_relay::relay::relay(
        pid,
        streams,
        caller,
        Some(log),
        &mut health,
        berth_relay::relay::Clients {
            server,
            input,
            tty: r.config.tty,
        },
    )
    .ctx(|| "relay the container's output".into())?;
    Ok(Life {
        code,
        health_restart: health.acted == Some(OnFailure::Restart),
        runtime,
    })
}

/// How one life of the container ended.
struct Life {
    code: i32,
    /// Its healthcheck's `--health-on-failure=restart` ended it: it starts
    /// again whatever its restart policy.
    health_restart: bool,
    /// The runtime's container as created, when kept (see `run_once`).
    runtime: Option<berth_runtime::Container>,
}

/// Execs berth-monitor (beside our binary) to relay the container's life
/// in this process with a fraction of the memory; it execs us back with
/// the exit code (Mode::Resumed). Returns only if that could not be done.
fn hand_over(
    engine: &Engine,
    r: &Record,
    pid: Pid,
    streams: &[(OwnedFd, usize)],
    input: Option<&OwnedFd>,
    server: Option<&crate::attach::Server>,
) -> String {
    let Ok(berth) = berth_runtime::exe::original_path() else {
        return "cannot find our own binary".into();
    };
    let lean = berth.with_file_name("berth-monitor");
    if !lean.exists() {
        return format!("{} is missing", lean.display());
    }
    let listener = match server.map(crate::attach::Server::listener_dup).transpose() {
        Ok(l) => l,
        Err(e) => return format!("attach socket: {e}"),
    };
    let fd = |f: Option<&OwnedFd>| -> String {
        match f {
            Some(f) => {
                // Inherited across exec.
                let _ = nix::fcntl::fcntl(
                    f.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                );
                f.as_raw_fd().to_string()
            }
            None => "-1".into(),
        }
    };
    let stream = |n: usize| streams.iter().find(|(_, s)| *s == n).map(|(f, _)| f);
    let args: Vec<std::ffi::OsString> = vec![
        "berth-monitor".into(),
        berth.into_os_string(),
        engine.root.clone().into_os_string(),
        engine.runroot.clone().into_os_string(),
        r.id.clone().into(),
        pid.as_raw().to_string().into(),
        engine.log_target(r).into_os_string(),
        r.config.log.max_size.to_string().into(),
        r.config.log.max_file.to_string().into(),
        if r.config.tty { "1" } else { "0" }.into(),
        fd(stream(0)).into(),
        fd(stream(1)).into(),
        fd(input).into(),
        fd(listener.as_ref()).into(),
    ];
    let (Some(argv), Ok(path)) = (
        c_strings(&args),
        std::ffi::CString::new(lean.as_os_str().as_encoded_bytes().to_vec()),
    ) else {
        return "a path contains a NUL byte".into();
    };
    match nix::unistd::execv(&path, &argv) {
        Err(e) => format!("exec {}: {e}", lean.display()),
        Ok(never) => match never {},
    }
}

/// Arguments for exec(2); None if one holds a NUL byte.
fn c_strings(args: &[impl AsRef<std::ffi::OsStr>]) -> Option<Vec<std::ffi::CString>> {
    args.iter()
        .map(|a| std::ffi::CString::new(a.as_ref().as_encoded_bytes().to_vec()).ok())
        .collect()
}

/// The row's health: the healthcheck's state with the readiness check's
/// beside it; None without either.
fn stored_health(
    checker: Option<&crate::health::Checker>,
    readiness: Option<&crate::health::Checker>,
) -> Option<crate::health::Health> {
    if checker.is_none() && readiness.is_none() {
        return None;
    }
    let mut h = checker.map(|c| c.health.clone()).unwrap_or_default();
    h.readiness = readiness.map(|c| Box::new(c.health.clone()));
    Some(h)
}

/// The healthcheck and the readiness check as the poll loop drives them:
/// results go to the row.
struct HealthWatch<'a> {
    checker: Option<crate::health::Checker>,
    /// The readiness check: its results are recorded, never acted on.
    readiness: Option<crate::health::Checker>,
    runtime_root: std::path::PathBuf,
    record: &'a Record,
    engine: &'a Engine,
    /// The status last recorded: a change is an event.
    last: Option<String>,
    /// The readiness check's last status: a change may change the pod's
    /// readiness.
    last_ready: Option<String>,
    /// What `--health-on-failure` did once the container turned unhealthy
    /// (once per life: no more checks after it).
    acted: Option<OnFailure>,
    /// When a stop or restart on failure sends SIGKILL (the stop signal
    /// went first, the stop timeout is given to it).
    kill_at: Option<Instant>,
}

impl berth_relay::relay::Hooks for HealthWatch<'_> {
    fn timeout(&self) -> Option<Duration> {
        if self.acted.is_some() {
            return self
                .kill_at
                .map(|at| at.saturating_duration_since(Instant::now()));
        }
        [&self.checker, &self.readiness]
            .into_iter()
            .flatten()
            .map(crate::health::Checker::due_in)
            .min()
    }

    fn tick(&mut self) {
        if self.acted.is_some() {
            if self.kill_at.is_some_and(|at| Instant::now() >= at) {
                self.kill_at = None;
                self.signal(libc::SIGKILL);
            }
            return;
        }
        if self.checker.is_none() && self.readiness.is_none() {
            return;
        }
        let Ok(container) = berth_runtime::Container::load(&self.runtime_root, &self.record.id)
        else {
            return;
        };
        if let Some(h) = self.checker.as_mut().and_then(|c| c.tick(&container)) {
            self.record(&h);
        }
        if let Some(h) = self.readiness.as_mut().and_then(|c| c.tick(&container)) {
            self.record_ready(&h);
        }
    }

    fn reaped(&mut self, pid: i32, code: i32) {
        if let Some(h) = self.checker.as_mut().and_then(|c| c.reaped(pid, code)) {
            self.record(&h);
        } else if let Some(h) = self.readiness.as_mut().and_then(|c| c.reaped(pid, code)) {
            self.record_ready(&h);
        }
    }

    /// One descriptor for the poll loop: the healthcheck's output while it
    /// runs, else the readiness check's. `readable` drains both, and each
    /// check's output is drained again when it ends.
    fn poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.checker
            .as_ref()
            .and_then(crate::health::Checker::output_fd)
            .or_else(|| {
                self.readiness
                    .as_ref()
                    .and_then(crate::health::Checker::output_fd)
            })
    }

    fn readable(&mut self) {
        for c in [&mut self.checker, &mut self.readiness]
            .into_iter()
            .flatten()
        {
            c.output_ready();
        }
    }
}

impl HealthWatch<'_> {
    fn store(&self) {
        let h = stored_health(self.checker.as_ref(), self.readiness.as_ref());
        let _ = self.engine.db.set_health(&self.record.id, h.as_ref());
    }

    fn record(&mut self, h: &crate::health::Health) {
        self.store();
        if self.last.as_deref() != Some(h.status.as_str()) {
            self.engine.db.container_event(
                self.record,
                &format!("health_status: {}", h.status),
                &[],
            );
            self.last = Some(h.status.clone());
            // A healthcheck with no action is a readiness probe (kube
            // play's lone one): see crate::readiness.
            self.engine.refresh_service_hosts(self.record, true);
            if h.status == "unhealthy" {
                self.on_failure();
            }
        }
    }

    /// A readiness check's result: recorded, and the pod's Services'
    /// names follow a change; no event (docker has no such check) and no
    /// action.
    fn record_ready(&mut self, h: &crate::health::Health) {
        self.store();
        if self.last_ready.as_deref() != Some(h.status.as_str()) {
            self.last_ready = Some(h.status.clone());
            self.engine.refresh_service_hosts(self.record, true);
        }
    }

    /// The container turned unhealthy: `--health-on-failure`'s action.
    /// kill and stop count as the user's (no restart policy brings the
    /// container back, as podman's do); restart leaves the monitor's loop
    /// to start it again.
    fn on_failure(&mut self) {
        let action = self.record.config.health_on_failure;
        if action == OnFailure::None || self.acted.is_some() {
            return;
        }
        self.acted = Some(action);
        if matches!(action, OnFailure::Kill | OnFailure::Stop) {
            let _ = self.engine.db.set_stopped_by_user(&self.record.id, true);
        }
        if action == OnFailure::Kill {
            self.signal(libc::SIGKILL);
            return;
        }
        let sig = match self.record.config.stop_signal.as_str() {
            "" => libc::SIGTERM,
            s => berth_runtime::signal::parse_signal(s).unwrap_or(libc::SIGTERM),
        };
        self.signal(sig);
        let grace = self.record.config.stop_timeout.unwrap_or(10);
        self.kill_at = Some(Instant::now() + Duration::from_secs(grace.into()));
    }

    /// A signal to the container's init, with its event (as `kill` and
    /// `stop` record theirs).
    fn signal(&self, sig: i32) {
        if berth_runtime::signal::send(self.record.pid, sig).is_ok() {
            self.engine
                .db
                .container_event(self.record, "kill", &[("signal", &sig.to_string())]);
        }
    }
}

impl std::fmt::Debug for HealthWatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthWatch")
            .field("id", &self.record.id)
            .finish()
    }
}
