//! `berth compose exec` and `berth compose run`: a process in a service's
//! running container (through `berth exec`'s code), or a one-off container
//! of the service, its dependencies brought up first.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use berth_compose::members;
use berth_compose::oneoff::RunOptions;
use berth_compose::up::{up, UpOptions};
use berth_compose::Project;
use berth_engine::Engine;
use clap::{Args, Parser};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Run the command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Give extended privileges to the process
    #[arg(long)]
    pub privileged: bool,
    /// Run the command as this user
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory of the command
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Disable pseudo-TTY allocation (the default when stdin is not a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// The replica to run in
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container's id
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Add or override a label
    #[arg(short, long)]
    pub label: Vec<String>,
    /// Override the entrypoint (a command line)
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Do not start the services it depends on
    #[arg(long)]
    pub no_deps: bool,
    /// The container's name
    #[arg(long)]
    pub name: Option<String>,
    /// Publish the service's ports
    #[arg(long)]
    pub service_ports: bool,
    /// Run as this user
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn open(root: &Path, runroot: &Path) -> Result<Engine> {
    Engine::open(root, runroot).with_context(|| format!("open the store at {}", root.display()))
}

pub fn exec(root: &Path, runroot: &Path, p: &Project, a: &ExecArgs) -> Result<i32> {
    let engine = open(root, runroot)?;
    p.service(&a.service)?;
    let m = members::list(&engine, &p.name)?
        .into_iter()
        .find(|m| m.service == a.service && !m.oneoff && m.number == a.index)
        .with_context(|| format!("service {:?} is not running", a.service))?;
    let terminal = std::io::stdin().is_terminal();
    let mut words = vec!["exec".to_string()];
    if a.detach {
        words.push("-d".into());
    } else {
        words.push("-i".into());
    }
    if !a.no_tty && terminal && !a.detach {
        words.push("-t".into());
    }
    for e in &a.env {
        words.extend(["-e".into(), e.clone()]);
    }
    if let Some(u) = &a.user {
        words.extend(["-u".into(), u.clone()]);
    }
    if let Some(w) = &a.workdir {
        words.extend(["-w".into(), w.clone()]);
    }
    if a.privileged {
        words.push("--privileged".into());
    }
    words.push(m.record.id.clone());
    words.extend(a.command.iter().cloned());
    #[derive(Parser)]
    struct Words {
        #[command(flatten)]
        args: crate::exec::ExecArgs,
    }
    let parsed = Words::try_parse_from(&words)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or("")))?;
    crate::exec::exec(&engine, &parsed.args)
}

pub fn run(root: &Path, runroot: &Path, p: &Project, a: &RunArgs) -> Result<i32> {
    let mut engine = open(root, runroot)?;
    p.service(&a.service)?;
    let deps = p.dependencies(&a.service);
    if !a.no_deps && !deps.is_empty() {
        let opts = UpOptions {
            services: deps,
            no_recreate: true,
            ..UpOptions::default()
        };
        let mut images = crate::compose_up::front_end_images(root, runroot);
        up(
            &mut engine,
            p,
            &opts,
            &mut images,
            &mut crate::compose_up::step,
        )?;
    }
    // The service's own image, pulled or built as `up` would.
    let mut images = crate::compose_up::front_end_images(root, runroot);
    berth_compose::up::ensure_image(
        &mut engine,
        p,
        &a.service,
        &UpOptions::default(),
        &mut images,
        &mut crate::compose_up::step,
    )?;
    let terminal = std::io::stdin().is_terminal();
    let entrypoint = a
        .entrypoint
        .as_deref()
        .map(berth_compose::shell::split)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--entrypoint: {e}"))?;
    let o = RunOptions {
        command: a.command.clone(),
        entrypoint,
        env: a.env.clone(),
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        name: a.name.clone(),
        remove: a.rm,
        service_ports: a.service_ports,
        tty: !a.no_tty && terminal && !a.detach,
        interactive: !a.detach,
        labels: a.label.clone(),
    };
    let (cfg, name) = berth_compose::oneoff::config(p, &a.service, &o, engine.root())?;
    let r = engine.create(cfg, Some(&name))?;
    if a.detach {
        berth_engine::monitor::start_detached(&engine, &r)?;
        println!("{name}");
        return Ok(0);
    }
    let code = if r.config.tty {
        let session = berth_engine::attach::Options {
            tty: true,
            stdin: r.config.open_stdin,
            detach_keys: crate::run::detach_keys_of(None)?,
            sig_proxy: true,
        };
        crate::run::run_attached(&engine, &r, &session)?
    } else {
        berth_engine::monitor::run(
            &mut engine,
            &r.id,
            berth_engine::monitor::Mode::Foreground {
                caller: crate::run::own_stdio(r.config.open_stdin)?,
            },
        )?
    };
    Ok(code)
}
