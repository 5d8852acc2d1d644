//! berth run by an ordinary user: the user's own paths as the defaults of
//! --root and --runroot, and the user's namespace joined before anything
//! else runs (see berth_engine::rootless).

use std::process::ExitCode;

use berth_engine::rootless;

/// For an ordinary user: sets BERTH_ROOT and BERTH_RUNROOT to the user's
/// own paths unless given (so clap's defaults, and every process berth
/// re-executes, see them), then joins the user's namespace. Called while
/// the process has one thread. Nothing for root.
pub(crate) fn enter() -> Result<(), ExitCode> {
    if !rootless::wanted() {
        return Ok(());
    }
    let uid = nix::unistd::getuid().as_raw();
    let paths = rootless::Paths::for_user(uid, |k| std::env::var_os(k)).map_err(fail)?;
    for (var, path) in [
        ("BERTH_ROOT", &paths.root),
        ("BERTH_RUNROOT", &paths.runroot),
    ] {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            // One thread yet: nothing reads the environment concurrently.
            std::env::set_var(var, path);
        }
    }
    let runroot = std::env::var_os("BERTH_RUNROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or(paths.runroot);
    let runroot = std::path::absolute(&runroot).unwrap_or(runroot);
    match rootless::enter(&runroot) {
        Ok(entered) => {
            if let Some(w) = entered.warning {
                eprintln!("berth: warning: {w}");
            }
            Ok(())
        }
        Err(e) => Err(fail(e)),
    }
}

fn fail(e: rootless::RootlessError) -> ExitCode {
    eprintln!("Error: {e}");
    ExitCode::from(125)
}
