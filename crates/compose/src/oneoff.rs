//! `run`: a one-off container of a service (`<project>-<service>-run-<id>`,
//! `com.docker.compose.oneoff=True`) with the command line's overrides;
//! its ports are not published (Compose's default, without
//! `--service-ports`), and `restart` does not apply.

use berth_engine::ContainerConfig;

use crate::error::Result;
use crate::service;
use crate::Project;

/// `run`'s overrides.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The command (empty: the service's).
    pub command: Vec<String>,
    /// `--entrypoint` (a command line, split as a shell would).
    pub entrypoint: Option<Vec<String>>,
    /// `-e KEY=VALUE` (or `KEY`, from the caller's environment).
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--rm`.
    pub remove: bool,
    /// `--service-ports`: publish the service's ports.
    pub service_ports: bool,
    /// `-T` not given and a terminal on our side.
    pub tty: bool,
    /// Our stdin goes to the container.
    pub interactive: bool,
    /// `-l KEY=VALUE`.
    pub labels: Vec<String>,
}

/// The one-off container's configuration and name.
pub fn config(
    p: &Project,
    svc: &str,
    o: &RunOptions,
    engine_root: &std::path::Path,
) -> Result<(ContainerConfig, String)> {
    let mut c = service::container_config(p, svc, 1, true, engine_root)?;
    c.labels.remove(service::labels::NUMBER);
    if !o.command.is_empty() {
        c.cmd = o.command.clone();
    }
    if let Some(e) = &o.entrypoint {
        c.entrypoint_override = Some(e.clone());
    }
    for e in &o.env {
        let entry = match e.split_once('=') {
            Some(_) => Some(e.clone()),
            None => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        };
        if let Some(entry) = entry {
            let key = entry.split('=').next().unwrap_or("").to_string();
            c.env.retain(|x| x.split('=').next() != Some(key.as_str()));
            c.env.push(entry);
        }
    }
    if let Some(u) = &o.user {
        c.user = u.clone();
    }
    if let Some(w) = &o.workdir {
        c.working_dir = w.clone();
    }
    for l in &o.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        c.labels.insert(k.to_string(), v.to_string());
    }
    if !o.service_ports {
        c.publish.clear();
    }
    // A one-off is not one of the service's replicas: peers do not reach
    // it by the service's name.
    c.network_aliases.retain(|a| a != svc);
    for ep in c.endpoints.values_mut() {
        ep.aliases.retain(|a| a != svc);
    }
    c.restart = berth_engine::config::RestartPolicy::default();
    c.auto_remove = o.remove;
    c.tty = o.tty;
    c.open_stdin = o.interactive;
    let name = o.name.clone().unwrap_or_else(|| {
        let id = berth_engine::random_id();
        format!("{}-{svc}-run-{}", p.name, &id[..12])
    });
    Ok((c, name))
}
