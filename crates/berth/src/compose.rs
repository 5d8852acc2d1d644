//! `berth compose`: Docker Compose's command lines over the berth-compose
//! library. This module holds the flags and the commands that only read
//! the files (config, ls, version); compose_up.rs makes and removes
//! containers, compose_ps.rs shows them (ps, logs, top, port, images).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_compose::{LoadOptions, Project};
use clap::{Args, Subcommand};

/// Flags of every compose command.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files (several are merged in order)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Alternate working directory (default: the first file's directory)
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Alternate environment files (default: .env in the project directory)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Parse, resolve and render the compose file in canonical format
    #[command(alias = "convert")]
    Config {
        /// Print the service names, one per line
        #[arg(long)]
        services: bool,
        /// Print the volume names, one per line
        #[arg(long)]
        volumes: bool,
        /// Only validate the configuration, print nothing
        #[arg(short, long)]
        quiet: bool,
        /// Output format: yaml or json
        #[arg(long, default_value = "yaml")]
        format: String,
    },
    /// Create and start containers
    Up(crate::compose_up::UpArgs),
    /// Stop and remove containers, networks (and with -v volumes)
    Down(crate::compose_up::DownArgs),
    /// Create containers for services
    Create(crate::compose_up::UpArgs),
    /// Start services
    Start { services: Vec<String> },
    /// Stop services
    Stop {
        /// Seconds to wait before killing
        #[arg(short = 't', long = "timeout")]
        timeout: Option<u32>,
        services: Vec<String>,
    },
    /// Restart services
    Restart {
        #[arg(short = 't', long = "timeout")]
        timeout: Option<u32>,
        services: Vec<String>,
    },
    /// Force stop services
    Kill {
        /// Signal to send
        #[arg(short = 's', long, default_value = "SIGKILL")]
        signal: String,
        services: Vec<String>,
    },
    /// Remove stopped service containers
    Rm {
        /// Do not ask to confirm
        #[arg(short, long)]
        force: bool,
        /// Stop the containers first
        #[arg(short, long)]
        stop: bool,
        /// Remove their anonymous volumes too
        #[arg(short, long)]
        volumes: bool,
        services: Vec<String>,
    },
    /// Pause services
    Pause { services: Vec<String> },
    /// Unpause services
    Unpause { services: Vec<String> },
    /// List containers
    Ps(crate::compose_ps::PsArgs),
    /// View output from containers
    Logs(crate::compose_ps::LogsArgs),
    /// Execute a command in a running container
    Exec(crate::compose_run::ExecArgs),
    /// Run a one-off command on a service
    Run(crate::compose_run::RunArgs),
    /// Build or rebuild services
    Build {
        /// Pull newer base images (accepted; berth resolves bases from its store or the registry)
        #[arg(long)]
        pull: bool,
        services: Vec<String>,
    },
    /// Pull service images
    Pull {
        /// Pull without printing progress
        #[arg(short, long)]
        quiet: bool,
        services: Vec<String>,
    },
    /// Push service images
    Push {
        /// Push what can be pushed, ignoring failures
        #[arg(long)]
        ignore_push_failures: bool,
        /// Print nothing but errors
        #[arg(short, long)]
        quiet: bool,
        services: Vec<String>,
    },
    /// Receive real time events from containers
    Events {
        /// Output events as a stream of JSON objects
        #[arg(long)]
        json: bool,
        services: Vec<String>,
    },
    /// Display the running processes
    Top { services: Vec<String> },
    /// Print the public port for a port binding
    Port {
        /// Replica number
        #[arg(long, default_value_t = 1)]
        index: u32,
        #[arg(long, default_value = "tcp")]
        protocol: String,
        service: String,
        private_port: u16,
    },
    /// List images used by the created containers
    Images {
        #[arg(short, long)]
        quiet: bool,
    },
    /// List running compose projects
    Ls {
        /// Show stopped projects too
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Scale services (SERVICE=REPLICAS), starting what they depend on
    Scale {
        /// Do not start the services they depend on
        #[arg(long)]
        no_deps: bool,
        #[arg(required = true, value_name = "SERVICE=REPLICAS")]
        services: Vec<String>,
    },
    /// Block until the containers of the services stop
    Wait(crate::compose_attach::WaitArgs),
    /// Copy files between a service's container and the local filesystem
    Cp(crate::compose_attach::CpArgs),
    /// Attach to a service's running container
    Attach(crate::compose_attach::AttachArgs),
    /// Show the compose version
    Version {
        #[arg(long)]
        short: bool,
    },
}

impl ComposeArgs {
    /// Whether the command reads the files only (no store needed).
    pub fn reads_files_only(&self) -> bool {
        matches!(
            self.command,
            ComposeCommand::Config { .. } | ComposeCommand::Version { .. }
        )
    }
}

/// Runs a compose command; the exit code.
pub fn run(root: &Path, runroot: &Path, a: &ComposeArgs) -> Result<i32> {
    match &a.command {
        ComposeCommand::Version { short } => {
            if *short {
                println!("{}", berth_compose::service::VERSION);
            } else {
                println!("berth compose version {}", berth_compose::service::VERSION);
            }
            return Ok(0);
        }
        ComposeCommand::Ls { all, quiet } => {
            return crate::compose_ps::ls(root, runroot, *all, *quiet)
        }
        _ => {}
    }
    let p = load(a)?;
    for w in &p.warnings {
        eprintln!("berth compose: warning: {w}");
    }
    match &a.command {
        ComposeCommand::Config {
            services,
            volumes,
            quiet,
            format,
        } => config(&p, *services, *volumes, *quiet, format),
        ComposeCommand::Ps(args) => crate::compose_ps::ps(root, runroot, &p, args),
        ComposeCommand::Logs(args) => crate::compose_ps::logs(root, runroot, &p, args),
        ComposeCommand::Top { services } => crate::compose_ps::top(root, runroot, &p, services),
        ComposeCommand::Port {
            index,
            protocol,
            service,
            private_port,
        } => crate::compose_ps::port(root, runroot, &p, service, *index, *private_port, protocol),
        ComposeCommand::Images { quiet } => crate::compose_ps::images(root, runroot, &p, *quiet),
        ComposeCommand::Events { json, services } => {
            crate::compose_ps::events(root, runroot, &p, *json, services)
        }
        ComposeCommand::Exec(args) => crate::compose_run::exec(root, runroot, &p, args),
        ComposeCommand::Run(args) => crate::compose_run::run(root, runroot, &p, args),
        ComposeCommand::Cp(args) => crate::compose_attach::cp(root, runroot, &p, args),
        ComposeCommand::Attach(args) => crate::compose_attach::attach(root, runroot, &p, args),
        ComposeCommand::Wait(args) => crate::compose_attach::wait(root, runroot, &p, args),
        other => crate::compose_up::run(root, runroot, &p, other),
    }
}

/// The project the flags, the environment and the working directory name.
fn load(a: &ComposeArgs) -> Result<Project> {
    let cwd = std::env::current_dir().context("the working directory")?;
    let environ: BTreeMap<String, String> = std::env::vars().collect();
    let opts = LoadOptions {
        files: a.files.clone(),
        project_name: a.project_name.clone(),
        project_directory: a.project_directory.clone(),
        env_files: a.env_files.clone(),
        profiles: a.profiles.clone(),
        cwd,
        environ,
    };
    Ok(Project::load(&opts)?)
}

fn config(p: &Project, services: bool, volumes: bool, quiet: bool, format: &str) -> Result<i32> {
    if quiet {
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    if services || volumes {
        if services {
            for (name, _) in p.services() {
                writeln!(out, "{name}")?;
            }
        }
        if volumes {
            for v in p.volume_names() {
                writeln!(out, "{v}")?;
            }
        }
        return Ok(0);
    }
    match format {
        "yaml" => write!(out, "{}", p.to_yaml())?,
        "json" => writeln!(out, "{}", serde_json::to_string_pretty(&p.escaped())?)?,
        other => anyhow::bail!("unsupported format {other:?}: yaml or json"),
    }
    Ok(0)
}

/// The services a command names, checked (all of them when none).
pub fn chosen(p: &Project, services: &[String]) -> Result<Vec<String>> {
    if services.is_empty() {
        return Ok(p.start_order()?);
    }
    for s in services {
        p.service(s)?;
    }
    Ok(services.to_vec())
}
