//! `berth`: docker's command lines over berth's libraries. This binary only
//! parses flags and prints; the work is in the library crates.
//!
//! One module per verb or family (see CONTRIBUTING.md): the container
//! subcommands are dispatched in containers.rs to run.rs, exec.rs, logs.rs,
//! lifecycle.rs...; the image store's listings are in images.rs, system df
//! and check in system.rs, the registry commands in transfer.rs. The image
//! store's other commands (import, load, save, tag, rmi, image inspect)
//! are dispatched here.

mod archives;
mod broken_pipe;
mod building;
mod compose;
mod compose_attach;
mod compose_images;
mod compose_ps;
mod compose_run;
mod compose_up;
mod containers;
mod cp;
mod diagnostics;
mod errors;
mod events;
mod exec;
mod format;
mod image_inspect;
mod image_names;
mod images;
mod info;
mod inspect;
mod kube;
mod lifecycle;
mod logs;
mod manifest;
mod networks;
mod pods;
mod protection;
mod prune;
mod ps;
mod quick_parse;
mod reexec;
mod rootless;
mod run;
mod run_flags;
mod search;
mod shell_docs;
mod stats;
mod store;
mod sweeper;
mod system;
mod times;
mod transfer;
mod units;
mod usage;
mod version;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

// The names every module reaches as `crate::...`.
pub(crate) use crate::broken_pipe::die_of_broken_pipe;
pub(crate) use crate::errors::{
    damaged_database, error_kind, invalid_filter, ClientSide, FromDaemon,
};
use crate::errors::{failed, finish, print_error, run_failed, with_default_tag};
use crate::images::{ImageCommand, ImagesArgs};
use crate::system::SystemCommand;

/// berth's command line: the global options and one subcommand enum.
/// `Cli` knows every command; `RunLine` only `run`, whose tree is built in
/// a fraction of the time (see `quick_parse`). One definition for both, so
/// that the options cannot drift apart.
macro_rules! command_line {
    ($(#[$meta:meta])* $name:ident, $commands:ty) => {
        $(#[$meta])*
        #[derive(Debug, Parser)]
        #[command(
            name = "berth",
            version,
            about = "Containers with docker's command lines, daemonless"
        )]
        struct $name {
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
            #[arg(long, global = true, default_value = "64g", value_parser = berth_relay::size::ram_in_bytes)]
            max_layer_size: u64,
            /// Diagnostics to show: debug, info, warn, error, fatal (default: BERTH_LOG, else warn)
            #[arg(short = 'l', long)]
            log_level: Option<String>,
            /// Debug diagnostics (--log-level debug)
            #[arg(short = 'D', long)]
            debug: bool,
            /// Where docker's client config is (config.json: registry credentials)
            #[arg(long, value_name = "DIR")]
            config: Option<PathBuf>,
            #[command(flatten)]
            daemon: usage::DaemonFlags,
            #[command(subcommand)]
            command: $commands,
        }
    };
}

command_line!(Cli, Command);
command_line!(
    /// The command line of `berth run` alone: see `quick_parse`.
    RunLine,
    quick_parse::RunOnly
);

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
        /// The image's platform, os/arch[/variant] (default: this host's)
        #[arg(long)]
        platform: Option<String>,
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
        #[arg(long, value_parser = images::parse_platform)]
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
    /// Manage Docker image manifests and manifest lists (inspect)
    #[command(subcommand)]
    Manifest(manifest::ManifestCommand),
    /// Search the Docker Hub for images
    #[command(override_usage = "berth search [OPTIONS] TERM")]
    Search(search::SearchArgs),
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
        /// Do not delete untagged parents (berth's images have none: accepted)
        #[arg(long)]
        no_prune: bool,
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
        /// Sizes and dates in human-readable form (--human=false: bytes and RFC 3339)
        #[arg(short = 'H', long, num_args = 0..=1, default_value = "true", default_missing_value = "true", require_equals = true)]
        human: bool,
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
    /// Manage pods: containers sharing network, IPC and UTS namespaces
    #[command(subcommand)]
    Pod(pods::PodCommand),
    /// Play and generate Kubernetes YAML
    #[command(subcommand)]
    Kube(kube::KubeCommand),
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

/// `args` parsed by the whole command tree, or the exit code after clap's
/// answer (help, version, a mistake in docker's words).
fn parse(args: &[std::ffi::OsString]) -> Result<Cli, ExitCode> {
    // Building clap's command tree costs as much as the parse: only for
    // the command lines that can have trailing arguments.
    let trailing = args
        .iter()
        .any(|a| ["run", "create", "exec", "top"].iter().any(|w| a == w));
    // One tree for both: it is the parse's main cost (about a
    // millisecond of a start).
    use clap::{CommandFactory, FromArgMatches};
    let mut tree = Cli::command();
    let words = if trailing {
        usage::end_flags_before_trailing(&tree, args.to_vec())
    } else {
        args.to_vec()
    };
    tree.try_get_matches_from_mut(words)
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m))
        // A fresh tree for the words of the refusal: the parsed one has
        // clap's own help and version flags added.
        .map_err(|e| usage::refused(&Cli::command(), &e, args))
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // berth as a container's monitor or init, or a network's resolver.
    if let Some(code) = reexec::serve_if_asked(&args) {
        return code;
    }
    broken_pipe::quiet_on_broken_stdio();
    // An ordinary user's berth joins its user namespace while it has one
    // thread, before anything else (re-executions included) runs.
    if let Err(code) = rootless::enter() {
        return code;
    }
    // The re-execution (see below) before clap's parse, which costs as much
    // as a process start: done once, not twice.
    if protection::early_protection(&args) {
        if let Err(e) = berth_runtime::exe::ensure_protected() {
            eprintln!("Error: {e}");
            return ExitCode::from(125);
        }
    }
    let args = usage::management_aliases(args);
    // A `run` with a tree of its own, everything else (and whatever that
    // tree refuses) with the whole one.
    let mut cli = match quick_parse::run_line(&args) {
        Some(cli) => cli,
        None => match parse(&args) {
            Ok(cli) => cli,
            Err(code) => return code,
        },
    };
    // The store's paths go into specs, sockets and other processes' command
    // lines (the monitor runs elsewhere): a relative --root must not be
    // read against another directory.
    for p in [&mut cli.root, &mut cli.runroot] {
        if let Ok(abs) = std::path::absolute(&*p) {
            *p = abs;
        }
    }
    if let Err(code) = cli.daemon.refuse_remote() {
        return code;
    }
    if let Some(dir) = &cli.config {
        // SAFETY: still single-threaded here (no thread is started before
        // the command runs), so nothing reads the environment meanwhile.
        unsafe { std::env::set_var("DOCKER_CONFIG", dir) };
    }
    let level = if cli.debug && cli.log_level.is_none() {
        Some("debug")
    } else {
        cli.log_level.as_deref()
    };
    if let Err(code) = diagnostics::install(level) {
        return code;
    }
    if protection::starts_container_processes(&cli.command) {
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
            | Command::Search(_)
            | Command::Manifest(_)
            | Command::Version { .. }
            | Command::Completion { .. }
            | Command::Man { .. }
    ) && !cli.command.compose_without_store();
    if uses_store {
        if let Err(code) = store::secure_store(&cli) {
            return code;
        }
    }
    if let Command::Container(ContainerGroup::Commands(containers::ContainerCommand::Inspect {
        format,
        kind: None,
        size,
        names,
    })) = &cli.command
    {
        return finish(
            &cli.root,
            inspect::inspect_containers(&cli.root, &cli.runroot, names, format.as_deref(), *size),
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
        Command::Kube(k) => {
            return match kube::run(&cli.root, &cli.runroot, k) {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(125)),
                Err(e) => failed(&cli.root, &e, 125),
            };
        }
        Command::Pod(p) => {
            return match pods::run(&cli.root, &cli.runroot, p) {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(125)),
                // podman's code for a failed pod command.
                Err(e) => failed(&cli.root, &e, 125),
            };
        }
        Command::Compose(c) => return finish(&cli.root, compose::run(&cli.root, &cli.runroot, c)),
        Command::Network(n) => {
            let r = networks::run(&cli.root, &cli.runroot, n).map_err(|e| {
                // docker's client checks names for rm and inspect itself;
                // the rest is the daemon's answer.
                if networks::daemon_words(n) && !e.is::<format::TemplateFailure>() {
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
            return run_failed(&cli.root, e, "run");
        }
        // create's own flag errors are the client's: worded and exited
        // as run's; what the daemon refuses is an ordinary failure.
        if let (containers::ContainerCommand::Create(_), Err(e)) = (c, &r) {
            if !e.is::<FromDaemon>() {
                return run_failed(&cli.root, e, "create");
            }
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

/// The commands that print and return no container's exit code.
fn run(cli: Cli) -> Result<()> {
    let open = || store::open(&cli);
    match &cli.command {
        Command::Containers(_)
        | Command::Container(_)
        | Command::Volume(_)
        | Command::Network(_)
        | Command::Pod(_)
        | Command::Kube(_)
        | Command::Compose(_)
        | Command::Build(_)
        | Command::Image(ImageCommand::Build(_)) => {
            unreachable!("container and build commands are dispatched in main")
        }
        Command::Builder(c) => building::builder(store::open_engine(&cli)?, c).map(|_| ()),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::images(&open()?, a),
        Command::Import {
            change,
            message,
            platform,
            file,
            reference,
        } => archives::import(
            &mut open()?,
            file,
            reference.as_deref(),
            change,
            message.as_deref(),
            platform.as_deref(),
        ),
        Command::Load {
            input,
            quiet: _,
            platform,
        } => archives::load(&mut open()?, input.as_deref(), platform.as_ref()),
        Command::Save {
            output,
            format,
            images,
        } => archives::save(open, output.as_deref(), format, images),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => transfer::pull(&mut open()?, a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => transfer::push(&open()?, a),
        Command::Login(a) => transfer::login(a),
        Command::Logout(a) => transfer::logout(a),
        Command::Search(a) => search::search(a).map(|_| ()),
        Command::Manifest(c) => manifest::manifest(c).map(|_| ()),
        Command::Version { format } => version::version(format.as_deref()),
        Command::Info { format } => info::info(&store::open_engine(&cli)?, format.as_deref()),
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
            image_names::tag(&mut open()?, source, target)
        }
        Command::Rmi { force, images, .. }
        | Command::Image(ImageCommand::Rm { force, images, .. }) => {
            image_names::rmi(&mut store::open_engine(&cli)?, &cli.root, *force, images)
        }
        Command::History {
            no_trunc,
            quiet,
            format,
            human,
            image,
        } => images::history(
            &open()?,
            image,
            *no_trunc,
            *quiet,
            format.as_deref(),
            *human,
        ),
        Command::Image(ImageCommand::Inspect { format, images }) => {
            image_inspect::inspect(open, format.as_deref(), images)
        }
        Command::Image(ImageCommand::Prune { .. })
        | Command::System(SystemCommand::Prune { .. }) => {
            unreachable!("handled above")
        }
        Command::System(SystemCommand::Df { format, verbose }) => {
            let engine = store::open_engine(&cli)?;
            if *verbose {
                system::system_df_verbose(&engine, format.as_deref())
            } else {
                system::system_df(&engine, format.as_deref())
            }
        }
        Command::System(SystemCommand::Check { rebuild }) => system::check(&cli, *rebuild),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The management-command aliases step over exactly the root's
    /// options that take a value.
    #[test]
    fn aliases_know_every_root_option_with_a_value() {
        let cmd = Cli::command();
        let mut taking: Vec<String> = Vec::new();
        for a in cmd
            .get_arguments()
            .filter(|a| a.get_action().takes_values())
        {
            taking.extend(a.get_long().map(|l| format!("--{l}")));
            taking.extend(a.get_short().map(|c| format!("-{c}")));
        }
        taking.sort();
        let mut listed: Vec<String> = usage::GLOBAL_WITH_VALUE
            .iter()
            .map(|s| s.to_string())
            .collect();
        listed.sort();
        assert_eq!(taking, listed);
    }
}
