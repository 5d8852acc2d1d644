//! `berth-runtime`: runc's command line over berth's runtime library, so
//! containerd, podman and Kubernetes can use it in place of runc.

mod log;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_runtime::{Container, CreateOptions, ExecOptions};
use clap::{Parser, Subcommand};
use oci_spec::runtime::{Capability, Process};

/// Where container state lives when `--root` is not given.
const DEFAULT_ROOT: &str = "/run/berth-runtime";

#[derive(Debug, Parser)]
#[command(
    name = "berth-runtime",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0"),
    about = "Run OCI containers: a runc-compatible runtime, part of berth"
)]
struct Cli {
    /// Directory for the state of containers
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// File to write the runtime's log to (errors, and debug with --debug)
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the log file
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: log::Format,
    /// Write debug lines to the log
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; the systemd cgroup driver is not implemented, cgroupfs is used
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility (rootless is detected from the uid)
    #[arg(long = "rootless", id = "global_rootless", num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Accepted for runc compatibility; checkpointing is not supported
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a container from a bundle; its program waits for `start`
    Create(CreateArgs),
    /// Start the program of a created container
    Start { id: String },
    /// Create and start a container, and wait for it unless --detach
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal to a container's init (default SIGTERM)
    Kill {
        /// Send the signal to every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete containers and their state
    Delete {
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Run a process inside a running container
    Exec(Box<ExecArgs>),
    /// Change the resource limits of a running container
    Update(Box<UpdateArgs>),
    /// Print a container's resource usage and OOM events as JSON lines
    Events {
        /// Print the usage once and exit
        #[arg(long)]
        stats: bool,
        /// Time between usage lines (5s, 500ms, 1m)
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List the processes of a container (table: ps(1) output; json: pids)
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers
    #[command(alias = "ls")]
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print what this runtime supports, as JSON (runtime-spec features)
    Features,
    /// Write a default config.json into a bundle
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for an unprivileged user (user namespace, no cgroups)
        #[arg(long)]
        rootless: bool,
    },
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Bundle directory (holding config.json)
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master of a terminal container
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// File to write the init's pid to
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root (for a rootfs on a ramdisk)
    #[arg(long)]
    no_pivot: bool,
    /// Accepted for runc compatibility; no session keyring is made
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many extra fds (from 3 on) to the container
    #[arg(long, default_value_t = 0)]
    preserve_fds: i32,
    id: String,
}

#[derive(Debug, clap::Args)]
struct UpdateArgs {
    /// linux.resources as JSON, from a file or - for stdin
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k, m, g suffix; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for none)
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1 for none)
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long)]
    cpu_share: Option<u64>,
    /// CPUs allowed (0-3, 0,1)
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes allowed
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (0 or -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    id: String,
}

#[derive(Debug, clap::Args)]
struct ExecArgs {
    /// Unix socket that receives the pty master
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Environment variables to set (KEY=value)
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    tty: bool,
    /// User as uid[:gid]
    #[arg(short, long)]
    user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    /// A process.json describing the process (instead of arguments)
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short, long)]
    detach: bool,
    /// File to write the process's pid to
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility (SELinux is not supported)
    #[arg(long)]
    process_label: Option<String>,
    /// Accepted for runc compatibility (AppArmor is not supported)
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    no_new_privs: bool,
    /// Add a capability to the process
    #[arg(short, long)]
    cap: Vec<String>,
    /// Pass this many extra fds (from 3 on) to the process
    #[arg(long, default_value_t = 0)]
    preserve_fds: i32,
    /// Allow exec in a paused container (accepted; exec still refuses)
    #[arg(long)]
    ignore_paused: bool,
    /// Accepted for runc compatibility
    #[arg(long)]
    cgroup: Vec<String>,
    id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    // Re-executed before clap's parse when the command surely starts
    // container processes (the parse costs as much as a start); the parsed
    // command decides again below.
    if starts_container_processes_raw() {
        if let Err(e) = berth_runtime::exe::ensure_protected() {
            eprintln!("berth-runtime: {e}");
            return ExitCode::from(1);
        }
    }
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run { .. } | Command::Exec(_)
    ) {
        // Before anything that starts a container process: from here on
        // we run from a read-only view of our binary (CVE-2019-5736).
        if let Err(e) = berth_runtime::exe::ensure_protected() {
            eprintln!("berth-runtime: {e}");
            return ExitCode::from(1);
        }
    }
    let logger = log::Logger {
        file: cli.log.clone(),
        format: cli.log_format,
        debug: cli.debug,
    };
    logger.debug(&format!(
        "berth-runtime {:?}",
        std::env::args().collect::<Vec<_>>()
    ));
    match run(&cli, &logger) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            let msg = format!("{e:#}");
            logger.error(&msg);
            eprintln!("berth-runtime: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The subcommand word of our raw arguments (runc's global flags skipped)
/// is create, run or exec.
fn starts_container_processes_raw() -> bool {
    let mut words = std::env::args_os().skip(1);
    while let Some(w) = words.next() {
        let w = w.to_string_lossy();
        match w.as_ref() {
            "--root" | "--log" | "--log-format" | "--criu" => {
                words.next();
            }
            w if w.starts_with("--") => {}
            w if w.starts_with('-') => return false,
            w => return matches!(w, "create" | "run" | "exec"),
        }
    }
    false
}

fn run(cli: &Cli, logger: &log::Logger) -> Result<i32> {
    let root = &cli.root;
    if !matches!(cli.command, Command::Features | Command::Spec { .. }) {
        // Checked at every start: a state root other users can enter gives
        // them every container's spec (its environment) and console sockets.
        if let Some(t) = berth_runtime::state::secure_root(root)?.filter(|t| !t.empty) {
            let msg = format!("closed the state root to other users: {t}");
            logger.warnings(std::slice::from_ref(&msg));
        }
    }
    match &cli.command {
        Command::Create(a) => {
            Container::create(create_options(root, a)?)?;
            Ok(0)
        }
        Command::Start { id } => {
            logger.warnings(&Container::load(root, id)?.start()?);
            Ok(0)
        }
        Command::Run {
            create,
            detach,
            keep,
        } => run_container(root, create, *detach, *keep, logger),
        Command::State { id } => {
            let c = Container::load(root, id)?;
            let status = c.status();
            print_json(&c.state.report(status))?;
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = berth_runtime::signal::parse_signal(signal)?;
            Container::load(root, id)?.kill(sig, *all)?;
            Ok(0)
        }
        Command::Delete { force, ids } => {
            for id in ids {
                match Container::load(root, id) {
                    Ok(c) => logger.warnings(&c.delete(*force)?),
                    // runc: a forced delete of what is not there succeeds.
                    Err(berth_runtime::Error::ContainerNotFound(_)) if *force => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(0)
        }
        Command::Exec(a) => exec(root, a),
        Command::Update(a) => {
            let resources = update_resources(a)?;
            Container::load(root, &a.id)?.update(&resources)?;
            Ok(0)
        }
        Command::Events {
            stats,
            interval,
            id,
        } => events(root, id, *stats, interval),
        Command::Pause { id } => {
            Container::load(root, id)?.pause()?;
            Ok(0)
        }
        Command::Resume { id } => {
            Container::load(root, id)?.resume()?;
            Ok(0)
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(root, id, format, ps_args),
        Command::List { format, quiet } => list(root, format, *quiet),
        Command::Features => {
            print_json(&features())?;
            Ok(0)
        }
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("file {} exists; remove it first", path.display());
            }
            let spec = berth_runtime::template::default_spec_json(*rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
    }
}

fn create_options(root: &Path, a: &CreateArgs) -> Result<CreateOptions> {
    if a.preserve_fds < 0 {
        bail!("--preserve-fds must not be negative");
    }
    Ok(CreateOptions {
        rootfs_mount: None,
        spec: None,
        stdio: None,
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        root: root.to_path_buf(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds + listen_fds(),
        // runc's CLI leaves the network to the caller (a hook, CNI).
        loopback_up: false,
    })
}

/// Socket-activation fds ($LISTEN_FDS) are passed on, as runc does.
fn listen_fds() -> i32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn run_container(
    root: &Path,
    a: &CreateArgs,
    detach: bool,
    keep: bool,
    logger: &log::Logger,
) -> Result<i32> {
    let mut opts = create_options(root, a)?;
    // A foreground terminal without a console socket: we are the client.
    let own_console = if !detach && a.console_socket.is_none() && wants_terminal(&a.bundle) {
        let s = berth_runtime::terminal::ConsoleSocket::new(root, &a.id)?;
        opts.console_socket = Some(s.path.clone());
        Some(s)
    } else {
        None
    };
    let mut c = Container::create(opts)?;
    let master = match own_console
        .as_ref()
        .map(berth_runtime::terminal::ConsoleSocket::receive_master)
        .transpose()
    {
        Ok(m) => m,
        Err(e) => {
            let _ = c.delete(true);
            return Err(e.into());
        }
    };
    match c.start() {
        Ok(w) => logger.warnings(&w),
        Err(e) => {
            let _ = Container::load(root, &a.id).map(|c| c.delete(true));
            return Err(e.into());
        }
    }
    if detach {
        return Ok(0);
    }
    let pid = nix::unistd::Pid::from_raw(c.state.pid);
    let code = match master {
        Some(m) => relay_terminal(m, pid)?,
        None => berth_runtime::container::wait_forwarding_signals(pid)?,
    };
    if !keep {
        logger.warnings(&c.delete(true)?);
    }
    Ok(code)
}

/// Whether the bundle's process asks for a terminal (peeked without the
/// whole config).
fn wants_terminal(bundle: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek {
        process: Option<PeekProcess>,
    }
    #[derive(serde::Deserialize)]
    struct PeekProcess {
        terminal: Option<bool>,
    }
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<Peek>(&t).ok())
        .and_then(|p| p.process?.terminal)
        .unwrap_or(false)
}

fn exec(root: &Path, a: &ExecArgs) -> Result<i32> {
    let c = Container::load(root, &a.id)?;
    let process = match &a.process {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("read process file {}", path.display()))?;
            serde_json::from_slice::<Process>(&text)
                .with_context(|| format!("invalid process file {}", path.display()))?
        }
        None => exec_process_from_flags(&c, a)?,
    };
    if a.preserve_fds < 0 {
        bail!("--preserve-fds must not be negative");
    }
    let own_console =
        if !a.detach && a.console_socket.is_none() && process.terminal().unwrap_or(false) {
            Some(berth_runtime::terminal::ConsoleSocket::new(root, &a.id)?)
        } else {
            None
        };
    let opts = ExecOptions {
        process,
        console_socket: own_console
            .as_ref()
            .map(|s| s.path.clone())
            .or_else(|| a.console_socket.clone()),
        pid_file: a.pid_file.clone(),
        detach: a.detach || own_console.is_some(),
        preserve_fds: a.preserve_fds + listen_fds(),
        stdio: None,
    };
    Ok(berth_runtime::terminal::finish_exec(
        c.exec(opts)?,
        own_console,
        relay_terminal,
    )?)
}

/// Relays our terminal to the container's pty `master` until `pid` exits;
/// its exit code.
fn relay_terminal(master: std::os::fd::OwnedFd, pid: nix::unistd::Pid) -> std::io::Result<i32> {
    use std::os::fd::AsFd;
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    let user = berth_relay::terminal::UserTerminal {
        stdin: stdin.as_fd(),
        stdout: stdout.as_fd(),
    };
    berth_relay::terminal::relay_and_wait(master, pid, user, &mut |_| {})
}

/// runc's rule: the container's own process is the template; flags
/// override it.
fn exec_process_from_flags(c: &Container, a: &ExecArgs) -> Result<Process> {
    if a.command.is_empty() {
        bail!("exec needs a command (or --process)");
    }
    let mut p = c.state.config.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u.parse::<u32>(), g.parse::<u32>()),
            None => (u.parse::<u32>(), Ok(0)),
        };
        let (Ok(uid), Ok(gid)) = (uid, gid) else {
            bail!("invalid --user {u:?}: use uid[:gid] with numbers");
        };
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
                .with_context(|| format!("unknown capability {name:?}"))?;
            let add = |s: Option<std::collections::HashSet<Capability>>| {
                let mut s = s.unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, pm) = (
                add(caps.bounding().clone()),
                add(caps.effective().clone()),
                add(caps.permitted().clone()),
            );
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// Go's duration form, as runc takes it: `5s`, `500ms`, `1m`, `1h` (a
/// bare number is seconds, as berth-runtime always took it); positive.
fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let t = s.trim();
    let nanos = match t.parse::<f64>() {
        Ok(secs) if secs.is_finite() => Some((secs * 1e9) as i128),
        _ => berth_relay::clock::go_duration(t),
    }
    .with_context(|| format!("invalid interval {s:?}: use 5s, 500ms, 1m"))?;
    if nanos <= 0 {
        bail!("invalid interval {s:?}: must be positive");
    }
    let nanos =
        u64::try_from(nanos).with_context(|| format!("invalid interval {s:?}: too long"))?;
    Ok(std::time::Duration::from_nanos(nanos))
}

/// runc's `events`: a stats line every interval and an oom line when the
/// OOM killer acts, until the container stops; `--stats`: one line.
fn events(root: &Path, id: &str, once: bool, interval: &str) -> Result<i32> {
    let interval = parse_duration(interval)?;
    let c = Container::load(root, id)?;
    let cgroups = c
        .state
        .cgroups
        .clone()
        .with_context(|| format!("container {id} has no cgroups"))?;
    let emit = |typ: &str, data: Option<serde_json::Value>| -> Result<()> {
        let mut line = serde_json::json!({"type": typ, "id": id});
        if let Some(d) = data {
            line["data"] = d;
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    };
    let stats = || serde_json::to_value(cgroups.stats()).map(Some);
    if once {
        emit("stats", stats()?)?;
        return Ok(0);
    }
    let mut ooms = cgroups.oom_kills();
    let mut next = std::time::Instant::now();
    loop {
        let now_ooms = cgroups.oom_kills();
        if now_ooms > ooms {
            emit("oom", None)?;
            ooms = now_ooms;
        }
        if std::time::Instant::now() >= next {
            emit("stats", stats()?)?;
            next += interval;
        }
        match Container::load(root, id) {
            Ok(c) if c.status() != berth_runtime::Status::Stopped => {}
            _ => {
                // An OOM kill is often what stopped it: report it first.
                if cgroups.oom_kills() > ooms {
                    emit("oom", None)?;
                }
                return Ok(0);
            }
        }
        std::thread::sleep(interval.min(std::time::Duration::from_millis(200)));
    }
}

/// A memory flag of `update` as runc reads it: `-1` (no limit) or a size
/// in docker's units (`512`, `64k`, `512M`, `2gb`, `1.5g`).
fn parse_memory(flag: &str, s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let n = berth_relay::size::ram_in_bytes(s)
        .map_err(|e| anyhow::anyhow!("invalid value for {flag}: {e}"))?;
    // The parser refuses what a signed 64-bit count cannot hold.
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The resources `update` applies: the --resources JSON, or the flags.
fn update_resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    if let Some(path) = &a.resources {
        let text = if path == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s
        } else {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        };
        return serde_json::from_str(&text)
            .with_context(|| format!("invalid resources in {}", path.display()));
    }
    let mut r = serde_json::json!({});
    let memory =
        |flag: &str, v: &Option<String>| v.as_deref().map(|s| parse_memory(flag, s)).transpose();
    if let Some(v) = memory("memory", &a.memory)? {
        r["memory"]["limit"] = v.into();
    }
    if let Some(v) = memory("memory-reservation", &a.memory_reservation)? {
        r["memory"]["reservation"] = v.into();
    }
    if let Some(v) = memory("memory-swap", &a.memory_swap)? {
        r["memory"]["swap"] = v.into();
    }
    if let Some(v) = a.cpu_period {
        r["cpu"]["period"] = v.into();
    }
    if let Some(v) = a.cpu_quota {
        r["cpu"]["quota"] = v.into();
    }
    if let Some(v) = a.cpu_share {
        r["cpu"]["shares"] = v.into();
    }
    if let Some(v) = &a.cpuset_cpus {
        r["cpu"]["cpus"] = v.clone().into();
    }
    if let Some(v) = &a.cpuset_mems {
        r["cpu"]["mems"] = v.clone().into();
    }
    if let Some(v) = a.pids_limit {
        r["pids"]["limit"] = v.into();
    }
    if r.as_object().is_some_and(|o| o.is_empty()) {
        bail!("update needs --resources or at least one limit flag");
    }
    Ok(serde_json::from_value(r)?)
}

/// runc's `ps`: json is the list of pids; table runs ps(1) on the host and
/// keeps the header and the container's processes.
fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let c = Container::load(root, id)?;
    match format {
        "json" => print_json(&c.pids()?)?,
        "table" => c.ps_table(ps_args)?.iter().for_each(|l| println!("{l}")),
        other => bail!("invalid --format {other:?}: use table or json"),
    }
    Ok(0)
}

fn list(root: &Path, format: &str, quiet: bool) -> Result<i32> {
    let containers = Container::list(root)?;
    if quiet {
        for c in &containers {
            println!("{}", c.id());
        }
        return Ok(0);
    }
    match format {
        "json" => {
            let reports: Vec<_> = containers
                .iter()
                .map(|c| c.state.report(c.status()))
                .collect();
            print_json(&reports)?;
        }
        "table" => {
            let rows: Vec<[String; 6]> = containers
                .iter()
                .map(|c| {
                    let status = c.status();
                    let r = c.state.report(status);
                    [
                        c.id().to_string(),
                        r.pid.to_string(),
                        status.to_string(),
                        c.state.bundle.display().to_string(),
                        c.state.created.clone(),
                        if c.state.owner.is_empty() {
                            "root".into()
                        } else {
                            c.state.owner.clone()
                        },
                    ]
                })
                .collect();
            print_table(
                &["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
                &rows,
            );
        }
        other => bail!("invalid --format {other:?}: use table or json"),
    }
    Ok(0)
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut width = header.map(str::len);
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = width[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// What this runtime supports (runtime-spec `features.md`); only what is
/// implemented is claimed.
fn features() -> serde_json::Value {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": berth_runtime::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime",
            "nostrictatime", "nosuid", "private", "rbind", "relatime", "remount", "ro",
            "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
            "strictatime", "suid", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
                          "SCMP_ARCH_AARCH64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {"io.github.berth.runtime.version": env!("CARGO_PKG_VERSION")}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(
            parse_duration("5s").unwrap(),
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            parse_duration("250ms").unwrap(),
            std::time::Duration::from_millis(250)
        );
        assert_eq!(
            parse_duration("1m").unwrap(),
            std::time::Duration::from_secs(60)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn sizes_parse_like_runc() {
        let m = |s: &str| parse_memory("memory", s);
        assert_eq!(m("512").unwrap(), 512);
        assert_eq!(m("64k").unwrap(), 65536);
        assert_eq!(m("512M").unwrap(), 512 << 20);
        assert_eq!(m("2gb").unwrap(), 2 << 30);
        assert_eq!(m("-1").unwrap(), -1);
        // runc: only -1 means no limit; another negative is no size.
        assert!(m("-5").is_err());
        assert_eq!(
            m("lots").unwrap_err().to_string(),
            "invalid value for memory: invalid size: 'lots'"
        );
    }

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn podman_and_containerd_command_lines_parse() {
        for line in [
            "berth-runtime --log-format=json --log /x/oci-log create --bundle /b --pid-file /p --console-socket /s --preserve-fds 2 ID",
            "berth-runtime --root /r --log /l --log-format json exec --process /p --detach --pid-file /f --console-socket /s ID",
            "berth-runtime --systemd-cgroup kill --all ID 9",
            "berth-runtime delete --force ID",
            "berth-runtime --debug run -d --bundle /b ID",
            "berth-runtime exec ID sh -c true",
            "berth-runtime spec --rootless",
        ] {
            Cli::try_parse_from(line.split(' ')).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
}
