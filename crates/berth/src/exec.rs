//! `exec`: a process in a running container.

use anyhow::{bail, Context, Result};
use berth_engine::Engine;
use clap::Args;

use crate::run_flags::{env_entry, env_files};
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
    /// Read environment variables from a file of KEY=VALUE lines
    #[arg(long)]
    env_file: Vec<std::path::PathBuf>,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(long)]
    privileged: bool,
    /// Keys that would detach from the exec's terminal (not implemented:
    /// an exec's terminal ends with berth; checked, and refused with -it)
    #[arg(long, value_name = "KEYS")]
    detach_keys: Option<String>,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub(crate) fn exec(engine: &Engine, a: &ExecArgs) -> Result<i32> {
    if let Some(keys) = &a.detach_keys {
        crate::run::detach_keys_of(Some(keys))?;
        if a.tty && a.interactive {
            bail!("exec --detach-keys is not implemented: berth cannot detach from an exec's terminal (the exec ends with berth)");
        }
    }
    let r = engine.find(&a.container)?;
    // CVE-2019-5736: a container with a user namespace of its own keeps our
    // binary out of its processes' reach (the runtime checks its maps
    // again); any other is entered from a read-only view of the binary:
    // the command starts again from there (nothing is written yet).
    if !(r.config.id_map.is_some() && berth_runtime::exe::root_owned_and_closed()) {
        berth_runtime::exe::ensure_protected()?;
    }
    if a.tty && a.interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let mut env = env_files(&a.env_file)?;
    env.extend(a.env.iter().filter_map(|e| env_entry(e)));
    let req = berth_engine::exec::ExecRequest {
        command: a.command.clone(),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        privileged: a.privileged,
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
    };
    let session = match engine.exec(&r, &req) {
        Ok(s) => s,
        Err(e @ (berth_engine::Error::NotRunning(_) | berth_engine::Error::ExecPaused(_))) => {
            return Err(crate::FromDaemon::wrap(e.into(), true))
        }
        // The process could not be started (no such program, no such
        // user, ...): docker's client prints the reason on stdout and
        // exits 126, whatever the reason; 1 stays for "no such
        // container" and "not running".
        Err(e) => {
            println!("{:#}", anyhow::Error::from(e));
            return Ok(126);
        }
    };
    if a.detach {
        return Ok(0);
    }
    let berth_engine::exec::ExecSession { exec_id, pid, io } = session;
    let code = match io {
        berth_engine::exec::ExecIo::Pipes { streams, input } => berth_relay::relay::relay(
            nix::unistd::Pid::from_raw(pid),
            streams,
            Some(&crate::run::own_stdio(a.interactive)?),
            None,
            &mut berth_relay::relay::NoHooks,
            berth_relay::relay::Clients {
                server: None,
                input,
                tty: false,
            },
        )
        .context("relay the process's stdio"),
        berth_engine::exec::ExecIo::Terminal(console) => berth_runtime::terminal::finish_exec(
            berth_runtime::ExecOutcome::Detached(pid),
            Some(console),
            |master, pid| {
                use std::os::fd::AsFd;
                let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
                let user = berth_relay::terminal::UserTerminal {
                    stdin: stdin.as_fd(),
                    stdout: stdout.as_fd(),
                };
                berth_relay::terminal::relay_and_wait(master, pid, user, &mut |_| {})
            },
        )
        .map_err(anyhow::Error::from),
        berth_engine::exec::ExecIo::Discarded => Ok(0),
    };
    // What went wrong relaying (after the process started) is ours to
    // say, not the process's: as before, exit 126 with the reason.
    let code = match code {
        Ok(c) => c,
        Err(e) => {
            println!("{e:#}");
            return Ok(126);
        }
    };
    engine.exec_ended(&r, &exec_id, code);
    Ok(code)
}
