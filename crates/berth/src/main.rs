//! `berth`: docker's command lines over berth's libraries. This binary only
//! parses flags and prints; the work is in the library crates.
//!
//! One module per verb or family (see CONTRIBUTING.md): the container
//! subcommands are dispatched in containers.rs to run.rs, exec.rs, logs.rs,
//! lifecycle.rs...; the image store's listings are in images.rs, system df
//! and check in system.rs, the registry commands in transfer.rs. The image
//! store's other commands (import, load, save, tag, rmi, image inspect)
//! are dispatched here.

mod building;
mod compose;
mod compose_images;
mod compose_ps;
mod compose_run;
mod compose_up;
mod containers;
mod cp;
mod diagnostics;
mod events;
mod exec;
mod format;
mod images;
mod info;
mod inspect;
mod lifecycle;
mod logs;
mod networks;
mod prune;
mod ps;
mod run;
mod run_flags;
mod shell_docs;
mod stats;
mod system;
mod transfer;
mod usage;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_image::archive;
use berth_image::store::{Image, ImageStore};
use berth_image::Reference;
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::images::{history, ImageCommand, ImagesArgs};
use crate::system::{rebuild_database, system_df, untrusted_database};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Containers with docker's command lines, daemonless"
)]
struct Cli {
    /// Where run state is kept (the runtime's state, console sockets): a tmpfs
    #[arg(
        long,
        global = true,
        default_value = "/run/berth",
        env = "BERTH_RUNROOT"
    )]
    runroot: PathBuf,
    /// Where images and containers are stored
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/berth",
        env = "BERTH_ROOT"
    )]
    root: PathBuf,
    /// Most uncompressed bytes one layer may unpack to (k, m, g suffixes): bounds decompression bombs
    #[arg(long, global = true, default_value = "64g", value_parser = parse_size)]
    max_layer_size: u64,
    /// Diagnostics to show: debug, info, warn, error, fatal (default: BERTH_LOG, else warn)
    #[arg(short = 'l', long)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Containers(containers::ContainerCommand),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerGroup),
    /// List images
    Images(ImagesArgs),
    /// Create an image from a rootfs tarball (a file, or - for stdin)
    Import {
        /// Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR)
        #[arg(short, long)]
        change: Vec<String>,
        /// Commit message for the history
        #[arg(short, long)]
        message: Option<String>,
        file: String,
        /// Repository and tag for the image
        reference: Option<String>,
    },
    /// Load images from an archive (docker-archive, oci-archive) or an OCI layout directory
    Load {
        /// Read from this file instead of stdin
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Suppress the load output (accepted for docker compatibility: berth shows no progress for load)
        #[arg(short, long)]
        quiet: bool,
        /// Platform to load from a multi-platform archive, os/arch[/variant] (default: this host's)
        #[arg(long, value_parser = parse_platform)]
        platform: Option<berth_image::oci::Platform>,
    },
    /// Save images to an archive (docker-archive, oci-archive) or an OCI layout directory (oci-dir)
    Save {
        /// Write to this file instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Archive format
        #[arg(long, default_value = "docker-archive")]
        format: String,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Add a name to an image
    Tag { source: String, target: String },
    /// Download an image from a registry
    Pull(transfer::PullArgs),
    /// Upload an image to a registry
    Push(transfer::PushArgs),
    /// Log in to a registry (credentials are stored in the auth file, mode 0600)
    Login(transfer::LoginArgs),
    /// Log out of a registry
    Logout(transfer::LogoutArgs),
    /// Show the berth version information (Docker's layout; berth has no daemon)
    Version {
        /// Go-template format over Docker's fields ({{.Client.Version}}, {{.Server.Version}}, ...) or json
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Display system-wide information
    Info {
        /// Go template over Docker's fields ({{.ServerVersion}}, {{.NCPU}}, {{json .}} ...) or json
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove images
    Rmi {
        /// Remove an image by id even with several tags
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show an image's history
    History {
        /// Do not truncate
        #[arg(long)]
        no_trunc: bool,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
        /// Go template ({{.ID}} {{.CreatedSince}} {{.CreatedBy}} {{.Comment}} ...), table TEMPLATE, or json
        #[arg(long)]
        format: Option<String>,
        image: String,
    },
    /// Build an image from a Dockerfile (or Containerfile) and a context
    Build(Box<building::BuildArgs>),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(building::BuilderCommand),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(networks::NetworkCommand),
    /// Define and run applications of several containers (Docker Compose)
    Compose(compose::ComposeArgs),
    /// Manage berth's storage
    #[command(subcommand)]
    System(SystemCommand),
    /// Print the completion script for a shell (bash, zsh, fish)
    Completion { shell: shell_docs::CompletionShell },
    /// Write berth's man pages (one per command) into a directory
    #[command(name = "__man", hide = true)]
    Man { dir: PathBuf },
}

impl Command {
    /// `compose config` and `compose version` read files only.
    fn compose_without_store(&self) -> bool {
        matches!(self, Command::Compose(c) if c.reads_files_only())
    }
}

/// `berth container <command>`: the container commands, plus `ls`.
#[derive(Debug, Subcommand)]
enum ContainerGroup {
    #[command(flatten)]
    Commands(containers::ContainerCommand),
    /// List containers
    #[command(alias = "list")]
    Ls(ps::PsArgs),
    /// Remove all stopped containers
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Filter: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]
        #[arg(long)]
        filter: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Remove stopped containers, unused networks, dangling images (and
    /// with -a every unused image, with --volumes unused anonymous volumes)
    Prune {
        /// Remove every image no container uses, not only dangling ones
        #[arg(short, long)]
        all: bool,
        /// Prune anonymous volumes too
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Filter: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Show disk use
    Df {
        /// Go template ({{.Type}} {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}), table TEMPLATE, or json
        #[arg(long)]
        format: Option<String>,
    },
    /// Find and repair what interrupted commands left behind
    Check {
        /// When the database cannot be trusted: move it aside and make a new
        /// one from the images whose manifest, config and layers are on disk
        /// (deleting nothing)
        #[arg(long)]
        rebuild: bool,
    },
}

/// Installs the diagnostics subscriber (see [`diagnostics`]); a bad level
/// is one line and exit 1, as docker's.
fn init_diagnostics(level: Option<&str>) -> Result<(), ExitCode> {
    let env = std::env::var(diagnostics::ENV).ok();
    match diagnostics::filter(level, env.as_deref()) {
        Ok(f) => {
            diagnostics::init(f);
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(1))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == berth_engine::monitor::MONITOR_ARG)
    {
        // The monitor's stderr is the container's monitor.log: warnings go
        // there. A bad BERTH_LOG already failed the command that started it.
        let _ = init_diagnostics(None);
    }
    // berth as a container's init (--init) or as a container's monitor.
    if let Some(served) = berth_engine::monitor::serve_if_asked(&args) {
        if let Some(m) = served.message() {
            eprintln!("{m}");
        }
        return ExitCode::from(served.code());
    }
    if args
        .get(1)
        .is_some_and(|a| a == berth_network::resolver::RESOLVER_ARG)
    {
        // A network's embedded DNS: runs no container, so no protected
        // re-execution is needed.
        return match berth_network::resolver::main(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    quiet_on_broken_stdio();
    // The re-execution (see below) before clap's parse, which costs as much
    // as a process start: done once, not twice.
    if early_protection(&args) {
        if let Err(e) = berth_runtime::exe::ensure_protected() {
            eprintln!("Error: {e}");
            return ExitCode::from(125);
        }
    }
    // Building clap's command tree costs as much as the parse: only for
    // the command lines that can have trailing arguments.
    let trailing = args
        .iter()
        .any(|a| ["run", "create", "exec", "top"].iter().any(|w| a == w));
    let words = if trailing {
        use clap::CommandFactory;
        usage::end_flags_before_trailing(&Cli::command(), args.clone())
    } else {
        args.clone()
    };
    let mut cli = match Cli::try_parse_from(words) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::CommandFactory;
            return usage::refused(&Cli::command(), &e, &args);
        }
    };
    // The store's paths go into specs, sockets and other processes' command
    // lines (the monitor runs elsewhere): a relative --root must not be
    // read against another directory.
    for p in [&mut cli.root, &mut cli.runroot] {
        if let Ok(abs) = std::path::absolute(&*p) {
            *p = abs;
        }
    }
    if let Err(code) = init_diagnostics(cli.log_level.as_deref()) {
        return code;
    }
    if starts_container_processes(&cli.command) {
        // Before anything forks into a container: from here on we run from
        // a read-only view of our binary (CVE-2019-5736, see berth_runtime::exe).
        if let Err(e) = berth_runtime::exe::ensure_protected() {
            eprintln!("Error: {e}");
            return ExitCode::from(125);
        }
    }
    // login and logout touch only the auth file: a user without a store
    // (or without the right to make one) can still use them.
    let uses_store = !matches!(
        cli.command,
        Command::Login(_)
            | Command::Logout(_)
            | Command::Version { .. }
            | Command::Completion { .. }
            | Command::Man { .. }
    ) && !cli.command.compose_without_store();
    if uses_store {
        if let Err(code) = secure_store(&cli) {
            return code;
        }
    }
    if let Command::Container(ContainerGroup::Commands(containers::ContainerCommand::Inspect {
        format,
        kind: None,
        names,
    })) = &cli.command
    {
        return finish(
            &cli.root,
            inspect::inspect_containers(&cli.root, &cli.runroot, names, format.as_deref()),
        );
    }
    let containers = match &cli.command {
        Command::Containers(c) | Command::Container(ContainerGroup::Commands(c)) => Some(c),
        Command::Container(ContainerGroup::Ls(a)) => {
            return finish(
                &cli.root,
                ps::ps_command(&cli.root, &cli.runroot, a).map(|()| 0),
            )
        }
        Command::Container(ContainerGroup::Prune { force, filter }) => {
            let kind = prune::Kind::Containers;
            return finish(
                &cli.root,
                prune::prune(&cli.root, &cli.runroot, kind, *force, filter),
            );
        }
        Command::Image(ImageCommand::Prune { all, force, filter }) => {
            let kind = prune::Kind::Images { all: *all };
            return finish(
                &cli.root,
                prune::prune(&cli.root, &cli.runroot, kind, *force, filter),
            );
        }
        Command::System(SystemCommand::Prune {
            all,
            volumes,
            force,
            filter,
        }) => {
            return finish(
                &cli.root,
                prune::system(&cli.root, &cli.runroot, *all, *volumes, *force, filter),
            );
        }
        Command::Volume(v) => {
            return finish(&cli.root, volumes::volume(&cli.root, &cli.runroot, v))
        }
        Command::Compose(c) => return finish(&cli.root, compose::run(&cli.root, &cli.runroot, c)),
        Command::Network(n) => {
            let r = networks::run(&cli.root, &cli.runroot, n).map_err(|e| {
                // docker's client checks names for rm and inspect itself;
                // the rest is the daemon's answer.
                if networks::daemon_words(n) {
                    FromDaemon::wrap(e, true)
                } else {
                    e
                }
            });
            return finish(&cli.root, r);
        }
        Command::Build(a) | Command::Image(ImageCommand::Build(a)) => {
            return match building::build(&cli.root, &cli.runroot, cli.max_layer_size, a) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    print_error(&cli.root, &e);
                    ExitCode::from(1)
                }
            }
        }
        _ => None,
    };
    if let Some(c) = containers {
        let r = containers::dispatch(&cli.root, &cli.runroot, c)
            .map_err(|e| containers::as_docker_reports(c, e));
        if let (containers::ContainerCommand::Run(_), Err(e)) = (c, &r) {
            if berth_relay::relay::caller_output_lost() {
                die_of_broken_pipe();
            }
            return run_failed(&cli.root, e);
        }
        return finish(&cli.root, r);
    }
    let root = cli.root.clone();
    // The image commands whose failures docker reports as its daemon's.
    let daemon_words = matches!(
        cli.command,
        Command::Tag { .. } | Command::History { .. } | Command::Save { .. }
    );
    let latest = !matches!(cli.command, Command::Save { .. });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = if daemon_words && !e.is::<ClientSide>() && !e.is::<format::TemplateFailure>() {
                FromDaemon::wrap(with_default_tag(e, latest), true)
            } else {
                e
            };
            failed(&root, &e, 1)
        }
    }
}

/// Reports `e` and gives the exit code: a template's failure as docker
/// words and codes it, anything else as "Error: ..." with `code`.
fn failed(root: &std::path::Path, e: &anyhow::Error, code: u8) -> ExitCode {
    if let Some(t) = e.downcast_ref::<format::TemplateFailure>() {
        eprintln!("{t}");
        return ExitCode::from(t.code);
    }
    print_error(root, e);
    ExitCode::from(code)
}

/// A reader of our stdout or stderr that goes away (`berth ps | head -1`,
/// `berth logs c | true`) ends us quietly, as SIGPIPE ends cat or docker,
/// wherever we were writing: no panic in println, no "Broken pipe" error.
/// A broken pipe elsewhere (a child's stdin, a container's input, a
/// monitor's socket) stays an EPIPE error for the code at hand, which must
/// clean up; and the relays, which must outlive their caller's pipe to
/// reap and record the container, ignore SIGPIPE while they run.
fn quiet_on_broken_stdio() {
    extern "C" fn on_sigpipe(_: libc::c_int) {
        let mut fds = [1, 2].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        });
        // SAFETY: poll and signal are async-signal-safe; fds is a valid
        // array of two pollfd.
        unsafe {
            // POLLERR: a pipe without readers; POLLHUP: a socket whose
            // peer closed.
            if libc::poll(fds.as_mut_ptr(), 2, 0) > 0
                && fds
                    .iter()
                    .any(|f| f.revents & (libc::POLLERR | libc::POLLHUP) != 0)
            {
                // Delivered as the handler returns: the default action,
                // death by SIGPIPE (141 in a shell).
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
    }
    let act = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_sigpipe),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only makes async-signal-safe calls; no other
    // thread exists yet.
    let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGPIPE, &act) };
}

/// Dies as SIGPIPE's default would: after a foreground container whose
/// output lost its reader (`berth run img yes | head -1`), the exit status
/// docker's client leaves (141 in a shell), once the container is reaped
/// and recorded.
pub(crate) fn die_of_broken_pipe() -> ! {
    // SAFETY: restoring the default disposition and raising the signal
    // touch no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

/// `version`: Docker's fields, so that `version --format '{{.Server.Version}}'`
/// answers; the "server" is the engine each berth command runs.
fn version(format: Option<&str>) -> Result<()> {
    let v = env!("CARGO_PKG_VERSION");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let model = json!({
        "Client": {"Platform": {"Name": "berth"}, "Version": v, "Os": "linux", "Arch": arch, "Context": "default"},
        "Server": {
            "Platform": {"Name": "berth (no daemon: each command runs the engine)"},
            "Version": v, "Os": "linux", "Arch": arch,
            "Components": [
                {"Name": "Engine", "Version": v},
                {"Name": "berth-runtime", "Version": v, "Details": {"OCIVersion": berth_runtime::OCI_VERSION}},
            ],
        },
    });
    match format {
        Some("json") => println!("{model}"),
        Some(f) => println!(
            "{}",
            format::render_named(f, "version", &format::typed(&model, "system.versionInfo"))?
        ),
        None => {
            println!("Client:");
            println!(" Version:           {v}");
            println!(" OS/Arch:           linux/{arch}");
            println!(" Context:           default");
            println!();
            println!("Server: berth (no daemon: each command runs the engine)");
            println!(" Engine:");
            println!("  Version:          {v}");
            println!("  OS/Arch:          linux/{arch}");
            println!(" berth-runtime:");
            println!("  Version:          {v}");
            println!("  OCI runtime-spec: {}", berth_runtime::OCI_VERSION);
        }
    }
    Ok(())
}

/// The commands that start processes inside a container (and so must run
/// from a protected binary); the runtime library refuses the others if
/// they try.
fn starts_container_processes(cmd: &Command) -> bool {
    use containers::ContainerCommand as C;
    match cmd {
        Command::Containers(c) | Command::Container(ContainerGroup::Commands(c)) => match c {
            // -d and -t start the container under a monitor, executed
            // from a read-only view of our binary itself.
            C::Run(a) => a.forks_here(),
            C::Start { .. } | C::Restart { .. } | C::Exec(_) => true,
            _ => false,
        },
        Command::Build(_) | Command::Image(ImageCommand::Build(_)) => true,
        // up and create may build images (build steps run containers).
        Command::Compose(c) => matches!(
            c.command,
            compose::ComposeCommand::Up(_)
                | compose::ComposeCommand::Create(_)
                | compose::ComposeCommand::Run(_)
                | compose::ComposeCommand::Exec(_)
                | compose::ComposeCommand::Build { .. }
        ),
        _ => false,
    }
}

/// A look at the raw arguments, before clap: the commands that surely
/// start container processes in this process (exec, build, start,
/// restart, a foreground run). Wrong either way is only slower or caught:
/// [`starts_container_processes`] decides again on the parsed command,
/// and the runtime refuses an unprotected binary.
fn early_protection(args: &[std::ffi::OsString]) -> bool {
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    let mut cmd = None;
    while let Some(w) = words.next() {
        match w.as_ref() {
            "--root" | "--runroot" | "--max-layer-size" => {
                words.next();
            }
            w if w.starts_with("--root=")
                || w.starts_with("--runroot=")
                || w.starts_with("--max-layer-size=") => {}
            w if w.starts_with('-') => return false,
            "container" | "image" => {}
            w => {
                cmd = Some(w.to_string());
                break;
            }
        }
    }
    match cmd.as_deref() {
        Some("exec" | "build" | "start" | "restart") => true,
        Some("run") => !words
            .take_while(|w| w.starts_with('-') && w.as_ref() != "--")
            .any(|w| {
                w == "--detach"
                    || w == "--tty"
                    || (!w.starts_with("--")
                        && w[1..].chars().all(|c| "dit".contains(c))
                        && w[1..].chars().any(|c| c == 'd' || c == 't'))
            }),
        _ => false,
    }
}

/// Closes the store and the run state to other users before any command
/// reads or writes them, and says so when an existing one was open.
fn secure_store(cli: &Cli) -> Result<(), ExitCode> {
    match berth_engine::secure_store(&cli.root, &cli.runroot) {
        Ok(changed) => {
            // An empty directory exposed nothing: closed without a word.
            let what: Vec<String> = changed
                .iter()
                .filter(|t| !t.empty)
                .map(|t| format!("{} (was {:04o})", t.path.display(), t.was))
                .collect();
            if what.is_empty() {
                return Ok(());
            }
            eprintln!(
                "berth: notice: closed the store to other users: {} made owner-only",
                what.join(", ")
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("Error: secure the store: {e}");
            Err(ExitCode::from(125))
        }
    }
}

/// The exit code of a container command: the container's own for
/// run/start -a/exec, and docker's client's codes when berth itself failed:
/// 1, except for `run` (see [`run_failed`]).
fn finish(root: &std::path::Path, r: Result<i32>) -> ExitCode {
    if berth_relay::relay::caller_output_lost() {
        die_of_broken_pipe();
    }
    match r {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => failed(root, &e, 1),
    }
}

/// A `run` that failed before its container's program ran: docker's
/// client says `docker: <error>.` and `See 'docker run --help'.`, and exits
/// 127 when the program does not exist, 126 when it cannot be executed,
/// 125 for every other failure (no such image, name in use, bad flags...).
fn run_failed(root: &std::path::Path, e: &anyhow::Error) -> ExitCode {
    let daemon = e.downcast_ref::<FromDaemon>();
    let text = match (damaged_database(root, e.as_ref()), daemon) {
        (Some(line), _) => line,
        (None, Some(d)) => format!("Error response from daemon: {:#}", d.error),
        (None, None) => format!("{e:#}"),
    };
    let help = if daemon.is_none_or(|d| d.help) {
        "\nSee 'berth run --help'."
    } else {
        ""
    };
    eprintln!("berth: {}.{help}", text.trim_end_matches('.'));
    ExitCode::from(run::start_failure_code(e))
}

/// One line on stderr. A damaged database can surface in any query of any
/// command; whichever it is, the user learns which file is damaged, what
/// SQLite says, and where to go next, instead of a query's context.
fn print_error(root: &std::path::Path, e: &anyhow::Error) {
    if let Some(line) = damaged_database(root, e.as_ref()) {
        eprintln!("Error: {line}");
    } else if let Some(c) = e.downcast_ref::<ClientSide>() {
        eprintln!("{c}");
    } else if let Some(d) = e.downcast_ref::<FromDaemon>() {
        eprintln!("Error response from daemon: {:#}", d.error);
        if let Some(then) = &d.then {
            eprintln!("Error: {then}");
        }
    } else {
        eprintln!("Error: {e:#}");
    }
}

/// Where writing to `p` lands: its symlinks followed, even to a name that
/// does not exist yet (as opening it for writing would).
fn follow_links(p: &std::path::Path) -> PathBuf {
    let mut at = p.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&at) {
            Ok(next) => {
                at = match at.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                }
            }
            Err(_) => break,
        }
    }
    at
}

/// "No such image: NAME:latest", as docker's daemon names an image given
/// without a tag (for tag and history; save keeps the name as given).
fn with_default_tag(e: anyhow::Error, latest: bool) -> anyhow::Error {
    match e.downcast_ref::<berth_image::store::StoreError>() {
        Some(berth_image::store::StoreError::NotFound(n))
            if latest && !n.rsplit('/').next().unwrap_or(n).contains(':') && !n.contains('@') =>
        {
            anyhow::anyhow!("No such image: {n}:latest")
        }
        _ => e,
    }
}

/// An error docker's client finds itself (and words without "Error
/// response from daemon") in a command whose other failures are the
/// daemon's.
#[derive(Debug)]
pub(crate) struct ClientSide(pub String);

impl std::fmt::Display for ClientSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientSide {}

/// A filter key the command does not know, in docker's words.
pub(crate) fn invalid_filter(key: &str) -> anyhow::Error {
    FromDaemon::wrap(anyhow::anyhow!("Invalid filter '{key}'"), true)
}

/// What kind of failure `e` is, from the first of the libraries' typed
/// errors in its chain (a [`FromDaemon`] is looked through).
pub(crate) fn error_kind(e: &anyhow::Error) -> Option<berth_engine::ErrorKind> {
    use berth_engine::error as kinds;
    if let Some(d) = e.downcast_ref::<FromDaemon>() {
        return error_kind(&d.error);
    }
    e.chain().find_map(|c| {
        if let Some(e) = c.downcast_ref::<berth_engine::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<berth_runtime::Error>() {
            Some(kinds::runtime_kind(e.kind()))
        } else if let Some(e) = c.downcast_ref::<berth_image::store::StoreError>() {
            Some(kinds::image_kind(e))
        } else {
            c.downcast_ref::<berth_network::Error>()
                .map(kinds::network_kind)
        }
    })
}

/// An error that docker's client reports as its daemon's answer
/// ("Error response from daemon: ..."), for the commands where docker
/// does: scripts and people match on these words. `then` is the line
/// docker's client adds after it for some commands.
#[derive(Debug)]
pub(crate) struct FromDaemon {
    pub error: anyhow::Error,
    pub then: Option<String>,
    /// For `run`: docker's client adds "See 'docker run --help'." to what
    /// failed while making the container, not to what failed starting it.
    pub help: bool,
}

impl FromDaemon {
    /// `e` as the daemon's answer (unless it already is one); `help`: see
    /// the field.
    pub fn wrap(e: anyhow::Error, help: bool) -> anyhow::Error {
        if e.is::<FromDaemon>() {
            return e;
        }
        FromDaemon {
            error: e,
            then: None,
            help,
        }
        .into()
    }
}

impl std::fmt::Display for FromDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for FromDaemon {}

/// The line for a damaged database anywhere in `e`'s chain, for commands
/// that report an error per item (`rm a b`, `rmi a b`) and go on.
pub(crate) fn damaged_database(
    root: &std::path::Path,
    e: &(dyn std::error::Error + 'static),
) -> Option<String> {
    berth_image::database::find_damage(e).map(|cause| {
        format!(
            "database {} is damaged: {cause} (`berth system check` says how to recover)",
            root.join(berth_image::database::FILE).display()
        )
    })
}

fn open_engine(cli: &Cli) -> Result<berth_engine::Engine> {
    let mut e = berth_engine::Engine::open(&cli.root, &cli.runroot)
        .with_context(|| format!("open the store at {}", cli.root.display()))?;
    e.images_mut().max_layer_bytes = cli.max_layer_size;
    Ok(e)
}

fn open(cli: &Cli) -> Result<ImageStore> {
    let mut store = ImageStore::open(&cli.root)
        .with_context(|| format!("open the store at {}", cli.root.display()))?;
    store.max_layer_bytes = cli.max_layer_size;
    Ok(store)
}

/// `512`, `64k`, `10m`, `64g` (binary units).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("invalid size {s:?}: a number with an optional k, m or g"))
}

/// `linux/arm64`, `linux/arm/v7`.
fn parse_platform(s: &str) -> Result<berth_image::oci::Platform, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match parts[..] {
        [os, arch] | [os, arch, _] if ok(os) && ok(arch) && parts.get(2).is_none_or(|v| ok(v)) => {
            Ok(berth_image::oci::Platform {
                os: os.to_ascii_lowercase(),
                architecture: arch.to_ascii_lowercase(),
                variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
            })
        }
        _ => Err(format!(
            "invalid platform {s:?}: use os/arch or os/arch/variant, as linux/arm64"
        )),
    }
}

fn parse_ref(s: &str) -> Result<Reference> {
    s.parse::<Reference>()
        .map_err(|e| anyhow::anyhow!("{s:?}: {e}"))
}

/// Journals an image event (best effort, like every event).
fn image_event(store: &ImageStore, action: &str, img: &Image, name: Option<&str>) {
    // Through the store's connection: one per command.
    let db = berth_engine::Db::with_connection(store.connection());
    let name = match name {
        Some(n) => n.to_string(),
        None => img.tags.first().map(|t| familiar(t)).unwrap_or_default(),
    };
    db.event("image", action, &img.id.to_string(), &[("name", &name)]);
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Containers(_)
        | Command::Container(_)
        | Command::Volume(_)
        | Command::Network(_)
        | Command::Compose(_)
        | Command::Build(_)
        | Command::Image(ImageCommand::Build(_)) => {
            unreachable!("container and build commands are dispatched in main")
        }
        Command::Builder(c) => building::builder(&cli.root, c),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::images(&open(&cli)?, a),
        Command::Import {
            change,
            message,
            file,
            reference,
        } => {
            let mut store = open(&cli)?;
            let tags = reference
                .iter()
                .map(|r| parse_ref(r))
                .collect::<Result<Vec<_>>>()?;
            let img = if file == "-" {
                archive::import(
                    &mut store,
                    std::io::stdin().lock(),
                    change,
                    message.as_deref(),
                    &tags,
                )?
            } else {
                let f = std::fs::File::open(file).with_context(|| format!("open {file}"))?;
                archive::import_file(&mut store, f, change, message.as_deref(), &tags)?
            };
            image_event(&store, "import", &img, None);
            println!("{}", img.id);
            Ok(())
        }
        Command::Load {
            input,
            quiet: _,
            platform,
        } => {
            let mut store = open(&cli)?;
            let platform = platform.as_ref();
            let loaded = match input {
                Some(p) if p.is_dir() => archive::load_dir(&mut store, p, platform)?,
                Some(p) => archive::load_file(
                    &mut store,
                    std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?,
                    platform,
                )?,
                None => archive::load(&mut store, std::io::stdin().lock(), platform)?,
            };
            for archive::Loaded { image: img, names } in loaded {
                image_event(&store, "load", &img, None);
                // The names the archive gave, not the others the image had.
                if names.is_empty() {
                    println!("Loaded image ID: {}", img.id);
                }
                // -q quiets progress only: docker prints these lines still.
                for t in &names {
                    println!("Loaded image: {}", familiar(&t.to_string()));
                }
            }
            Ok(())
        }
        Command::Save {
            output,
            format,
            images,
        } => {
            if format == "oci-dir" {
                let store = open(&cli)?;
                let dir = output
                    .as_ref()
                    .context("save --format oci-dir needs -o DIRECTORY")?;
                let mut sel = Vec::new();
                for name in images {
                    let img = store.resolve(name)?;
                    let tags = img.tags.iter().map(|t| familiar(t)).collect();
                    sel.push((img, tags));
                }
                archive::save_oci_dir(&store, &sel, dir)?;
                return Ok(());
            }
            type Saver = fn(
                &ImageStore,
                &[(Image, Vec<String>)],
                Box<dyn std::io::Write>,
            ) -> Result<(), berth_image::store::StoreError>;
            let save: Saver = match format.as_str() {
                "docker-archive" => |s, i, o| archive::save_docker(s, i, o),
                "oci-archive" => |s, i, o| archive::save_oci(s, i, o),
                other => {
                    bail!("save --format {other:?}: use docker-archive, oci-archive or oci-dir")
                }
            };
            let store = open(&cli)?;
            let mut sel = Vec::new();
            for name in images {
                let img = store.resolve(name)?;
                let tags = match parse_ref(name) {
                    Ok(r) if img.tags.contains(&r.to_string()) => vec![familiar(&r.to_string())],
                    _ => img.tags.iter().map(|t| familiar(t)).collect(),
                };
                sel.push((img, tags));
            }
            match output {
                Some(p) => {
                    // A device, fifo or socket (`-o /dev/null`, a pipe) is
                    // written into, as docker does: renaming a file over it
                    // would replace the host's /dev/null with a file.
                    let target = follow_links(p);
                    let special = std::fs::metadata(&target).is_ok_and(|m| !m.is_file());
                    if special {
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .open(&target)
                            .with_context(|| format!("open {}", p.display()))?;
                        save(&store, &sel, Box::new(std::io::BufWriter::new(f)))?;
                    } else {
                        // A file is written beside (through a symlink, beside
                        // its target) and renamed when complete: an
                        // interrupted save leaves no half archive under the
                        // name.
                        let tmp = target.with_extension("berth-partial");
                        let f = std::fs::File::create(&tmp)
                            .with_context(|| format!("create {}", tmp.display()))?;
                        save(&store, &sel, Box::new(std::io::BufWriter::new(f)))?;
                        std::fs::rename(&tmp, &target)
                            .with_context(|| format!("write {}", p.display()))?;
                    }
                }
                None => {
                    let out = std::io::stdout();
                    if std::io::IsTerminal::is_terminal(&out) {
                        bail!(
                            "refusing to write an archive to a terminal: use -o FILE or a redirect"
                        );
                    }
                    save(&store, &sel, Box::new(out.lock()))?;
                }
            }
            Ok(())
        }
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => {
            transfer::pull(&mut open(&cli)?, a)
        }
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => transfer::push(&open(&cli)?, a),
        Command::Login(a) => transfer::login(a),
        Command::Logout(a) => transfer::logout(a),
        Command::Version { format } => version(format.as_deref()),
        Command::Info { format } => info::info(&cli.root, &open_engine(&cli)?, format.as_deref()),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut out = std::io::stdout().lock();
            shell_docs::completion(&mut Cli::command(), *shell, &mut out);
            Ok(())
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            shell_docs::man_pages(&Cli::command(), dir).map(|_| ())
        }
        Command::Tag { source, target } | Command::Image(ImageCommand::Tag { source, target }) => {
            let mut store = open(&cli)?;
            // docker's client checks the new name itself, in these words.
            let target = target.parse::<Reference>().map_err(|e| {
                let why = match e {
                    berth_image::reference::ReferenceError::Uppercase(_) => {
                        "invalid reference format: repository name must be lowercase"
                    }
                    _ => "invalid reference format",
                };
                ClientSide(format!(
                    "Error parsing reference: {target:?} is not a valid repository/tag: {why}"
                ))
            })?;
            store.tag(source, &target)?;
            let img = store.resolve(&target.to_string())?;
            image_event(&store, "tag", &img, Some(&familiar(&target.to_string())));
            Ok(())
        }
        Command::Rmi { force, images } | Command::Image(ImageCommand::Rm { force, images }) => {
            let mut engine = open_engine(&cli)?;
            let mut failed = false;
            for name in images {
                match engine.remove_image(name, *force) {
                    // Docker names what it untagged as a user writes it.
                    Ok(lines) => lines
                        .iter()
                        .for_each(|l| match l.strip_prefix("Untagged: ") {
                            Some(r) => println!("Untagged: {}", familiar(r)),
                            None => println!("{l}"),
                        }),
                    Err(e) => {
                        match damaged_database(&cli.root, &e) {
                            Some(line) => eprintln!("Error: {line}"),
                            None => eprintln!("Error: {e}"),
                        }
                        // docker: with -f, an image that is not there is no
                        // failure (teardown under `set -e`).
                        let missing = matches!(
                            e,
                            berth_engine::Error::Image(berth_image::store::StoreError::NotFound(_))
                                | berth_engine::Error::ImageNotFound(_)
                        );
                        failed |= !(*force && missing);
                    }
                }
            }
            if failed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::History {
            no_trunc,
            quiet,
            format,
            image,
        } => history(&open(&cli)?, image, *no_trunc, *quiet, format.as_deref()),
        Command::Image(ImageCommand::Inspect {
            format: Some(f),
            images,
        }) => {
            let mut inspector = format::Inspector::new(f)?;
            let store = open(&cli)?;
            for name in images {
                match store.resolve(name) {
                    Ok(img) => inspector.add(
                        &berth_engine::inspect::image_json(&store, &img)?,
                        "types.ImageInspect",
                        true,
                    ),
                    Err(_) => inspector.error(format!("Error: No such image: {name}")),
                }
            }
            let code = inspector.finish(&mut std::io::stdout().lock())?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Image(ImageCommand::Inspect { images, .. }) => {
            let store = open(&cli)?;
            let mut out = Vec::new();
            let mut missing = None;
            // docker prints what it found, then the first missing name.
            for name in images {
                match store.resolve(name) {
                    Ok(img) => out.push(berth_engine::inspect::image_json(&store, &img)?),
                    Err(e @ berth_image::store::StoreError::NotFound(_)) => {
                        missing.get_or_insert(e);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            println!("{}", format::inspect_json(&serde_json::Value::Array(out))?);
            match missing {
                Some(e) => Err(e.into()),
                None => Ok(()),
            }
        }
        Command::Image(ImageCommand::Prune { .. })
        | Command::System(SystemCommand::Prune { .. }) => {
            unreachable!("handled above")
        }
        Command::System(SystemCommand::Df { format }) => {
            system_df(&open_engine(&cli)?, format.as_deref())
        }
        Command::System(SystemCommand::Check { rebuild }) => {
            // Everything below removes what the database does not name (layers,
            // blobs, runtime state, network leftovers): first make sure it is
            // the database that named them.
            let distrust = berth_image::database::audit(&cli.root)
                .with_context(|| format!("audit the store at {}", cli.root.display()))?;
            match (distrust, rebuild) {
                (Some(d), false) => {
                    eprintln!("{}", untrusted_database(&cli.root, &d));
                    std::process::exit(1);
                }
                (Some(d), true) => return rebuild_database(&cli.root, &d),
                (None, true) => {
                    eprintln!("the database is sound: nothing to rebuild; checking as usual");
                }
                (None, false) => {}
            }
            let mut store = open(&cli)?;
            let r = store.check()?;
            println!("temp files removed: {}", r.temp_files);
            println!("unreferenced blobs removed: {}", r.unreferenced_blobs);
            println!("unreferenced layers removed: {}", r.unreferenced_layers);
            println!("corrupt blobs removed: {}", r.corrupt_blobs.len());
            println!("corrupt layers removed: {}", r.corrupt_layers.len());
            for m in &r.missing {
                println!("missing: {m}");
            }
            let engine = open_engine(&cli)?;
            let running = |id: &str| {
                engine.find(id).is_ok_and(|c| {
                    matches!(
                        c.status,
                        berth_engine::Status::Running
                            | berth_engine::Status::Paused
                            | berth_engine::Status::Starting
                            | berth_engine::Status::Restarting
                    )
                })
            };
            let stale = engine.check_runtime()?;
            println!("container leftovers removed: {}", stale.len());
            for s in &stale {
                println!("  {s}");
            }
            let mut fixed = engine.networks().check(running)?;
            fixed.extend(engine.check_resolvers()?);
            println!("network leftovers removed: {}", fixed.len());
            for f in &fixed {
                println!("  {f}");
            }
            if !r.missing.is_empty() {
                bail!(
                    "{} missing files: remove and reload the images that use them",
                    r.missing.len()
                );
            }
            Ok(())
        }
    }
}

/// `docker.io/library/busybox:latest` as docker prints it: `busybox:latest`.
pub(crate) fn familiar(full: &str) -> String {
    full.parse::<Reference>()
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn early_protection_knows_the_commands_that_fork_into_containers() {
        let yes = |line: &str| {
            let args: Vec<std::ffi::OsString> = line.split_whitespace().map(Into::into).collect();
            early_protection(&args)
        };
        assert!(yes("berth run --rm busybox true"));
        assert!(yes("berth --root /x run -e A=1 busybox true"));
        assert!(yes("berth container exec c sh"));
        assert!(yes("berth image build ."));
        assert!(yes("berth --runroot=/r start c"));
        // A monitor of their own starts these containers.
        assert!(!yes("berth run -d busybox true"));
        assert!(!yes("berth run -it busybox sh"));
        assert!(!yes("berth run --detach --rm busybox true"));
        // Nothing to protect, or for clap to judge.
        assert!(!yes("berth ps -a"));
        assert!(!yes("berth --help run"));
        assert!(!yes("berth images"));
    }

    #[test]
    fn platforms_parse_as_os_arch_variant() {
        let p = parse_platform("linux/arm/v7").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm", Some("v7"))
        );
        assert_eq!(parse_platform("linux/amd64").unwrap().variant, None);
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux/am d64",
        ] {
            let e = parse_platform(bad).unwrap_err();
            assert!(e.contains("os/arch"), "{bad}: {e}");
        }
    }
}
