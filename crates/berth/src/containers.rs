//! The container subcommands (docker's flags) and their dispatch: each
//! verb's code is in the module named after it (run.rs, exec.rs, logs.rs,
//! events.rs, stats.rs, inspect.rs, cp.rs, lifecycle.rs for the manage
//! verbs); start and attach are still here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_engine::start::{StartOptions, Started};
use berth_engine::Engine;
use clap::Subcommand;

use crate::cp::copy;
use crate::events::events;
use crate::exec::{exec, ExecArgs};
use crate::inspect::inspect;
use crate::lifecycle;
use crate::logs::logs;
use crate::ps::{ps, PsArgs};
use crate::run::{create_pulling, detach_keys_of, from_daemon, open_cidfile, run, write_cidfile};
use crate::run_flags::{config_from, RunArgs};
use crate::stats::stats;

/// `stop` and `restart`: a grace time and the containers.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (negative: no end, as docker's daemon)
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_negative_numbers = true
    )]
    time: Option<i64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Create a new container
    Create(Box<RunArgs>),
    /// Start one or more stopped containers
    Start {
        /// Attach stdout/stderr and wait for the container
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin
        #[arg(short, long)]
        interactive: bool,
        /// Override the key sequence for detaching (default ctrl-p,ctrl-q)
        #[arg(long)]
        detach_keys: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Copy files/folders between a container and the local filesystem
    #[command(
        override_usage = "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
    )]
    Cp {
        /// Archive mode (copy all uid/gid information)
        #[arg(short, long)]
        archive: bool,
        /// Always follow symbol link in SRC_PATH
        #[arg(short = 'L', long)]
        follow_link: bool,
        /// Suppress progress output during copy
        #[arg(short, long)]
        quiet: bool,
        src: String,
        dest: String,
    },
    /// Get real time events (from berth's journal)
    Events {
        /// Show events created since timestamp (RFC 3339, unix seconds, or a duration ago)
        #[arg(long)]
        since: Option<String>,
        /// Stream events until this timestamp
        #[arg(long)]
        until: Option<String>,
        /// Filter output based on conditions provided (container, event, image, type, volume)
        #[arg(short, long)]
        filter: Vec<String>,
        /// Format output using a Go template ('{{json .}}')
        #[arg(long)]
        format: Option<String>,
    },
    /// Attach local standard input, output, and error streams to a running container
    Attach {
        /// Do not attach stdin
        #[arg(long)]
        no_stdin: bool,
        /// Proxy all received signals to the process
        #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// Override the key sequence for detaching (default ctrl-p,ctrl-q)
        #[arg(long)]
        detach_keys: Option<String>,
        container: String,
    },
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill {
        /// Signal to send
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm {
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
        /// Remove the container's anonymous volumes
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs(Box<crate::logs::LogsArgs>),
    /// Block until containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec(Box<ExecArgs>),
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Pause all processes within containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Inspect changes to files on a container's filesystem
    Diff { container: String },
    /// Export a container's filesystem as a tar archive
    Export {
        /// Write to this file instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
        container: String,
    },
    /// Display the running processes of a container (ps options after it)
    Top {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_options: Vec<String>,
    },
    /// Create a new image from a container's changes
    Commit {
        /// Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR)
        #[arg(short, long)]
        change: Vec<String>,
        /// Commit message
        #[arg(short, long)]
        message: Option<String>,
        /// Author
        #[arg(short, long)]
        author: Option<String>,
        /// Pause the container while committing
        #[arg(short, long, default_value = "true", action = clap::ArgAction::Set)]
        pause: bool,
        container: String,
        /// Repository and tag for the image
        reference: Option<String>,
    },
    /// Update the resource limits or restart policy of containers
    Update(Box<lifecycle::UpdateArgs>),
    /// Display containers' resource usage (live, or once with --no-stream)
    Stats {
        /// Show all containers (default: running)
        #[arg(short, long)]
        all: bool,
        /// Print one sample and exit
        #[arg(long)]
        no_stream: bool,
        /// Do not truncate ids
        #[arg(long)]
        no_trunc: bool,
        /// Go template ({{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}} ...), table TEMPLATE, or json
        #[arg(long)]
        format: Option<String>,
        containers: Vec<String>,
    },
    /// List port mappings (none until networking publishes ports)
    Port {
        container: String,
        port: Option<String>,
    },
    /// Display detailed information on containers or images
    Inspect {
        /// Go-template-like format ({{.State.Status}}, {{json .Config}})
        #[arg(short, long)]
        format: Option<String>,
        /// Only this kind of object: container, image, network or volume
        #[arg(long = "type")]
        kind: Option<String>,
        /// Display total file sizes if the type is container
        #[arg(short, long)]
        size: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Runs a container command; returns the exit code to leave with.
pub fn dispatch(root: &Path, runroot: &Path, cmd: &ContainerCommand) -> Result<i32> {
    let mut engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    match cmd {
        ContainerCommand::Run(a) => run(&mut engine, a),
        ContainerCommand::Create(a) => {
            let cfg = config_from(a)?;
            let cidfile = open_cidfile(a)?;
            let r = create_pulling(&mut engine, a, cfg).map_err(|e| {
                if let Some(p) = &a.cidfile {
                    let _ = std::fs::remove_file(p);
                }
                from_daemon(e)
            })?;
            write_cidfile(cidfile, &r)?;
            println!("{}", r.id);
            Ok(0)
        }
        ContainerCommand::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => {
            let keys = detach_keys_of(detach_keys.as_deref())?;
            let mut code = 0;
            for c in containers {
                let attached = *attach || *interactive;
                let opts = {
                    let mut o = StartOptions::default();
                    o.attach = attached
                        .then(|| crate::run::own_stdio(*interactive))
                        .transpose()?;
                    o
                };
                match engine.container_start(c, opts)? {
                    Started::AlreadyRunning if *attach => {}
                    Started::AlreadyRunning | Started::Detached => println!("{c}"),
                    Started::Terminal { stream, open_stdin } => {
                        let session = berth_engine::attach::Options {
                            tty: true,
                            stdin: *interactive && open_stdin,
                            detach_keys: keys.clone(),
                            sig_proxy: true,
                        };
                        code = crate::run::attach_relay(stream, &session)?.exit_code();
                    }
                    Started::Exited(exit) => code = exit,
                }
            }
            Ok(code)
        }
        ContainerCommand::Stop(a) => lifecycle::stop(&engine, a.time, &a.containers),
        ContainerCommand::Restart(a) => lifecycle::restart(&engine, a.time, &a.containers),
        ContainerCommand::Kill { signal, containers } => {
            lifecycle::kill(&engine, signal, containers)
        }
        ContainerCommand::Rm {
            force,
            containers,
            volumes,
        } => lifecycle::rm(&engine, *force, *volumes, containers),
        ContainerCommand::Ps(a) => ps(&engine, a).map(|()| 0),
        ContainerCommand::Logs(a) => logs(&engine, a).map(|()| 0),
        ContainerCommand::Wait { containers } => lifecycle::wait(&engine, containers),
        ContainerCommand::Exec(a) => exec(&engine, a),
        ContainerCommand::Events {
            since,
            until,
            filter,
            format,
        } => events(
            &engine,
            since.as_deref(),
            until.as_deref(),
            filter,
            format.as_deref(),
        )
        .map(|()| 0),
        ContainerCommand::Cp {
            archive,
            follow_link,
            quiet: _,
            src,
            dest,
        } => {
            copy(
                &engine,
                src,
                dest,
                berth_engine::cp::Options {
                    archive: *archive,
                    follow_link: *follow_link,
                },
            )?;
            Ok(0)
        }
        ContainerCommand::Attach {
            no_stdin,
            sig_proxy,
            detach_keys,
            container,
        } => {
            let keys = detach_keys_of(detach_keys.as_deref())?;
            let a = engine.container_attach(container)?;
            let session = berth_engine::attach::Options {
                tty: a.tty,
                stdin: !*no_stdin && a.open_stdin,
                detach_keys: keys,
                sig_proxy: *sig_proxy,
            };
            Ok(crate::run::attach_relay(a.stream, &session)?.exit_code())
        }
        ContainerCommand::Rename {
            container,
            new_name,
        } => lifecycle::rename(&engine, container, new_name),
        ContainerCommand::Diff { container } => lifecycle::diff(&engine, container),
        ContainerCommand::Export { output, container } => {
            lifecycle::export(&engine, output.as_ref(), container)
        }
        ContainerCommand::Top {
            container,
            ps_options,
        } => lifecycle::top(&engine, container, ps_options),
        ContainerCommand::Update(a) => lifecycle::update(&engine, a),
        ContainerCommand::Commit {
            change,
            message,
            author,
            pause,
            container,
            reference,
        } => lifecycle::commit(
            &mut engine,
            &lifecycle::CommitArgs {
                change,
                message: message.as_deref(),
                author: author.as_deref(),
                pause: *pause,
                container,
                reference: reference.as_deref(),
            },
        ),
        ContainerCommand::Stats {
            all,
            no_stream,
            no_trunc,
            format,
            containers,
        } => stats(
            &engine,
            *all,
            *no_stream,
            *no_trunc,
            format.as_deref(),
            containers,
        )
        .map(|()| 0),
        ContainerCommand::Port { container, port } => {
            lifecycle::port(&engine, container, port.as_deref())
        }
        ContainerCommand::Pause { containers } => lifecycle::pause(&engine, containers, true),
        ContainerCommand::Unpause { containers } => lifecycle::pause(&engine, containers, false),
        ContainerCommand::Inspect {
            format,
            kind,
            size,
            names,
        } => inspect(&engine, names, format.as_deref(), kind.as_deref(), *size),
    }
}

/// An error of `cmd` as docker's client words it: the commands whose
/// failures docker reports as its daemon's answer get that form (see
/// [`crate::FromDaemon`]); the others (rm, inspect, logs, exec, port...)
/// docker's client checks itself and words "Error: ...".
pub fn as_docker_reports(cmd: &ContainerCommand, e: anyhow::Error) -> anyhow::Error {
    use ContainerCommand as C;
    if e.downcast_ref::<crate::FromDaemon>().is_some() {
        return e;
    }
    let then = match cmd {
        // With -a docker's client finds the container itself first.
        C::Start { attach: true, .. }
        | C::Start {
            interactive: true, ..
        } if e
            .downcast_ref::<berth_engine::Error>()
            .is_some_and(|e| matches!(e, berth_engine::Error::NoSuchContainer(_))) =>
        {
            return e
        }
        C::Start { containers, .. } => Some(format!(
            "failed to start containers: {}",
            containers.join(", ")
        )),
        C::Rename { container, .. } => {
            Some(format!("failed to rename container named {container}"))
        }
        C::Top { .. }
        | C::Wait { .. }
        | C::Diff { .. }
        | C::Export { .. }
        | C::Commit { .. }
        | C::Stats { .. } => None,
        _ => return e,
    };
    crate::FromDaemon {
        error: e,
        then,
        help: true,
    }
    .into()
}
