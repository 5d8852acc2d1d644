//! `exec`: a process in a running container.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_engine::config::ContainerConfig;
use berth_engine::{Engine, Record, Status};
use clap::Args;

use crate::run_flags::env_entry;
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(short, long)]
    detach: bool,
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long)]
    env: Vec<String>,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(long)]
    privileged: bool,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub(crate) fn exec(engine: &Engine, a: &ExecArgs) -> Result<i32> {
    let r = engine.find(&a.container)?;
    if a.tty && a.interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    // Not running by its record, or no runtime state to exec in: docker's
    // one answer for both.
    let c = Some(&r)
        .filter(|r| r.status == Status::Running)
        .and_then(|r| berth_runtime::Container::load(&engine.runtime_root(), &r.id).ok())
        .ok_or_else(|| {
            crate::FromDaemon::wrap(anyhow::anyhow!("Container {} is not running", r.id), true)
        })?;
    match exec_in(engine, a, &r, &c) {
        Ok(code) => Ok(code),
        // The process could not be started (no such program, no such
        // user, ...): docker's client prints the reason on stdout and
        // exits 126, whatever the reason; 1 stays for "no such
        // container" and "not running".
        Err(e) => {
            println!("{e:#}");
            Ok(126)
        }
    }
}

/// The part of exec that starts the process in the running container `c`
/// and relays its stdio until it ends.
fn exec_in(engine: &Engine, a: &ExecArgs, r: &Record, c: &berth_runtime::Container) -> Result<i32> {
    let mut process = c.state.config.process().clone().unwrap_or_default();
    process.set_args(Some(a.command.clone()));
    process.set_terminal(Some(a.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for e in a.env.iter().filter_map(|e| env_entry(e)) {
        let k = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(k.as_str()));
        env.push(e);
    }
    if a.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    if let Some(w) = &a.workdir {
        process.set_cwd(w.into());
    }
    if let Some(u) = &a.user {
        let rootfs = PathBuf::from(format!("/proc/{}/root", r.pid));
        let user = berth_engine::spec::resolve_user(&rootfs, u, &r.config.group_add)?;
        let mut pu = process.user().clone();
        pu.set_uid(user.uid);
        pu.set_gid(user.gid);
        pu.set_additional_gids(Some(user.additional_gids));
        process.set_user(pu);
    }
    if a.privileged {
        let all: Vec<String> = berth_engine::spec::capabilities(&ContainerConfig {
            privileged: true,
            ..Default::default()
        })?;
        // oci-spec parses the bare name ("CHOWN"), not the CAP_ form the
        // engine lists: parsing "CAP_CHOWN" failed for every name and left
        // the process with no capabilities at all.
        let set: std::collections::HashSet<oci_spec::runtime::Capability> = all
            .iter()
            .map(|c| c.strip_prefix("CAP_").unwrap_or(c).parse())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("exec --privileged: {e}"))?;
        let mut caps = process.capabilities().clone().unwrap_or_default();
        caps.set_bounding(Some(set.clone()));
        caps.set_effective(Some(set.clone()));
        caps.set_permitted(Some(set));
        process.set_capabilities(Some(caps));
    }
    let console = if a.tty && !a.detach {
        Some(berth_runtime::terminal::ConsoleSocket::new(
            engine.runroot(),
            &format!("exec-{}", &r.id[..12]),
        )?)
    } else {
        None
    };
    if a.tty && a.detach {
        bail!("exec -d -t: a detached terminal has no reader; leave out -t");
    }
    // Without a terminal the process gets pipes that we relay (or
    // /dev/null, detached), never our own descriptors: see stdio::Pipes.
    let mut pipes = match (&console, a.detach) {
        (Some(_), _) => None,
        (None, true) => Some(berth_engine::stdio::Pipes::discard()?),
        (None, false) => Some(berth_engine::stdio::Pipes::new(a.interactive)?),
    };
    let opts = berth_runtime::ExecOptions {
        process,
        console_socket: console.as_ref().map(|c| c.path.clone()),
        pid_file: None,
        // Waited for here, by the relay, not by the runtime.
        detach: true,
        preserve_fds: 0,
    };
    let exec_id = berth_engine::random_id();
    let command = a.command.join(" ");
    let ev = [("execID", exec_id.as_str())];
    engine
        .db()
        .container_event(r, &format!("exec_create: {command}"), &ev);
    engine
        .db()
        .container_event(r, &format!("exec_start: {command}"), &ev);
    let outcome = match &mut pipes {
        Some(p) => p.around(|| c.exec(&opts))?,
        None => c.exec(&opts),
    }?;
    let code = match (outcome, pipes) {
        (_, _) if a.detach => 0,
        (berth_runtime::ExecOutcome::Detached(pid), Some(p)) => berth_relay::relay::relay(
            nix::unistd::Pid::from_raw(pid),
            p.streams,
            Some(&crate::run::own_stdio(a.interactive)?),
            None,
            &mut berth_relay::relay::NoHooks,
            berth_relay::relay::Clients {
                server: None,
                input: p.input,
                tty: false,
            },
        )
        .context("relay the process's stdio")?,
        (outcome, _) => berth_runtime::terminal::finish_exec(outcome, console, |master, pid| {
            use std::os::fd::AsFd;
            let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
            let user = berth_relay::terminal::UserTerminal {
                stdin: stdin.as_fd(),
                stdout: stdout.as_fd(),
            };
            berth_relay::terminal::relay_and_wait(master, pid, user, &mut |_| {})
        })?,
    };
    if !a.detach {
        let code_text = code.to_string();
        engine.db().container_event(
            r,
            "exec_die",
            &[("execID", exec_id.as_str()), ("exitCode", &code_text)],
        );
    }
    Ok(code)
}
