//! `berth compose cp`, `attach` and `wait`: Compose v2's commands on the
//! existing containers of a service, through the same code as `berth cp`,
//! `berth attach` and `berth wait` once the service's replica is found.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_compose::members::{self, Member};
use berth_compose::Project;
use berth_engine::Engine;
use clap::Args;

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// The replica to copy from or to (default: from the first, to all)
    #[arg(long)]
    pub index: Option<u32>,
    /// Copy to the service's one-off containers (`run`) as well
    #[arg(long)]
    pub all: bool,
    /// SERVICE:SRC_PATH or SRC_PATH|-
    pub src: String,
    /// DEST_PATH|- or SERVICE:DEST_PATH
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching (default ctrl-p,ctrl-q)
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// The replica to attach to
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Do not attach stdin
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    pub service: String,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Take the project down (with its orphans) once the containers stopped
    #[arg(long)]
    pub down_project: bool,
    #[arg(required = true)]
    pub services: Vec<String>,
}

fn open(root: &Path, runroot: &Path) -> Result<Engine> {
    Engine::open(root, runroot).with_context(|| format!("open the store at {}", root.display()))
}

/// The service's containers (one-offs too with `oneoffs`), checked to be
/// one of the project's and to have some.
fn containers_of(
    engine: &Engine,
    p: &Project,
    service: &str,
    oneoffs: bool,
) -> Result<Vec<Member>> {
    p.service(service)?;
    let ms: Vec<Member> = members::list(engine, &p.name)?
        .into_iter()
        .filter(|m| m.service == service && (oneoffs || !m.oneoff))
        .collect();
    if ms.is_empty() {
        bail!("no container found for service {service:?}: run compose up first");
    }
    Ok(ms)
}

fn replicas(engine: &Engine, p: &Project, service: &str) -> Result<Vec<Member>> {
    containers_of(engine, p, service, false)
}

fn replica(ms: Vec<Member>, service: &str, index: u32) -> Result<Member> {
    ms.into_iter()
        .find(|m| m.number == index)
        .with_context(|| format!("service {service:?} has no container with index {index}"))
}

/// A `SERVICE:PATH` argument: the service and the path. As Compose reads
/// it, an absolute path, or one starting with `.`, is the host's even with
/// a `:` in it.
fn service_arg(a: &str) -> Option<(&str, &str)> {
    if a.starts_with('/') || a.starts_with('.') {
        return None;
    }
    let (s, path) = a.split_once(':')?;
    (!s.is_empty()).then_some((s, path))
}

pub fn cp(root: &Path, runroot: &Path, p: &Project, a: &CpArgs) -> Result<i32> {
    let engine = open(root, runroot)?;
    let opts = || berth_engine::cp::Options {
        archive: a.archive,
        follow_link: a.follow_link,
    };
    match (service_arg(&a.src), service_arg(&a.dest)) {
        (Some(_), Some(_)) => bail!("copying between services is not supported"),
        (Some((svc, path)), None) => {
            let m = replica(replicas(&engine, p, svc)?, svc, a.index.unwrap_or(1))?;
            let src = format!("{}:{path}", m.record.id);
            crate::cp::copy(&engine, &src, &a.dest, opts())?;
        }
        (None, Some((svc, path))) => {
            let ms = containers_of(&engine, p, svc, a.all && a.index.is_none())?;
            let targets = match a.index {
                Some(i) => vec![replica(ms, svc, i)?],
                // A stream on stdin can be read once: the first replica.
                None if a.src == "-" => vec![replica(ms, svc, 1)?],
                None => ms,
            };
            for m in targets {
                let dest = format!("{}:{path}", m.record.id);
                crate::cp::copy(&engine, &a.src, &dest, opts())?;
            }
        }
        (None, None) => bail!("must specify at least one service: SERVICE:PATH"),
    }
    Ok(0)
}

pub fn attach(root: &Path, runroot: &Path, p: &Project, a: &AttachArgs) -> Result<i32> {
    let engine = open(root, runroot)?;
    let m = replica(replicas(&engine, p, &a.service)?, &a.service, a.index)?;
    let keys = crate::run::detach_keys_of(a.detach_keys.as_deref())?;
    let c = engine.container_attach(&m.record.id)?;
    let session = berth_engine::attach::Options {
        tty: c.tty,
        stdin: !a.no_stdin && c.open_stdin,
        detach_keys: keys,
        sig_proxy: a.sig_proxy,
    };
    Ok(crate::run::attach_relay(c.stream, &session)?.exit_code())
}

/// Waits until every container of the services (one-offs too) stopped,
/// saying each as it does; the exit code is the last one's, as Compose's.
pub fn wait(root: &Path, runroot: &Path, p: &Project, a: &WaitArgs) -> Result<i32> {
    let engine = open(root, runroot)?;
    for s in &a.services {
        p.service(s)?;
    }
    let mut pending: Vec<Member> = members::list(&engine, &p.name)?
        .into_iter()
        .filter(|m| a.services.contains(&m.service))
        .collect();
    if pending.is_empty() {
        bail!("no containers for project {:?}", p.name);
    }
    let mut code = 0;
    let mut delay = 5;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for m in pending {
            // A container removed meanwhile has stopped too.
            let r = match engine.find(&m.record.id) {
                Ok(r) if r.status.is_active() => {
                    still.push(m);
                    continue;
                }
                Ok(r) => r,
                Err(e) if e.kind() == berth_engine::ErrorKind::NotFound => m.record,
                Err(e) => return Err(e.into()),
            };
            println!(
                "container {:?} exited with status code {}",
                r.id, r.exit_code
            );
            code = r.exit_code;
        }
        pending = still;
        if !pending.is_empty() {
            // As long as the containers run (the command's point); the
            // back-off keeps an idle wait cheap.
            std::thread::sleep(Duration::from_millis(delay));
            delay = (delay * 2).min(100);
        }
    }
    if a.down_project {
        let opts = berth_compose::down::DownOptions {
            volumes: false,
            remove_orphans: true,
            timeout: None,
        };
        berth_compose::down::down(&engine, p, &opts, &mut crate::compose_up::step)?;
    }
    Ok(code)
}
