//! berth re-executed as something other than a command line: a
//! container's monitor or init (`__monitor`, `--init`), a network's
//! embedded DNS resolver (`__dns`). Answered before clap sees the
//! arguments.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::diagnostics;

/// The exit code when `args` ask for one of the re-executions (after
/// serving it), `None` for a command line.
pub(crate) fn serve_if_asked(args: &[OsString]) -> Option<ExitCode> {
    if args
        .get(1)
        .is_some_and(|a| a == berth_engine::monitor::MONITOR_ARG)
    {
        // The monitor's stderr is the container's monitor.log: warnings go
        // there. A bad BERTH_LOG already failed the command that started it.
        let _ = diagnostics::install(None);
    }
    // An ordinary user's pause process, which keeps their namespace.
    if let Some(code) = berth_engine::rootless::serve_pause_if_asked(args) {
        return Some(ExitCode::from(code));
    }
    // A rootless container's published ports on a user network.
    if let Some(code) = berth_engine::rootless_ports::serve_if_asked(args) {
        return Some(ExitCode::from(code));
    }
    // berth as a container's init (--init) or as a container's monitor.
    if let Some(served) = berth_engine::monitor::serve_if_asked(args) {
        if let Some(m) = served.message() {
            eprintln!("{m}");
        }
        return Some(ExitCode::from(served.code()));
    }
    if args
        .get(1)
        .is_some_and(|a| a == berth_network::resolver::RESOLVER_ARG)
    {
        // A network's embedded DNS: runs no container, so no protected
        // re-execution is needed. Once detached it has no stderr: its
        // diagnostics go to its log (a bad BERTH_LOG already failed the
        // command that started it).
        let args = &args[2..];
        if let Some(log) = berth_network::resolver::log_path_of(args) {
            let env = std::env::var(diagnostics::ENV).ok();
            if let Ok(filter) = diagnostics::filter(None, env.as_deref()) {
                diagnostics::init_to_file(filter, log);
            }
        }
        return Some(match berth_network::resolver::main(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // For the starter, before the resolver detached; for the
                // log, after.
                tracing::error!("{e}");
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        });
    }
    None
}
