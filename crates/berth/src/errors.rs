//! How a failed command is reported: docker's words (its client's own, or
//! "Error response from daemon") and docker's exit codes.

use std::process::ExitCode;

use anyhow::Result;

use crate::broken_pipe::die_of_broken_pipe;
use crate::{format, run};

/// Reports `e` and gives the exit code: a template's failure as docker
/// words and codes it, anything else as "Error: ..." with `code`.
pub(crate) fn failed(root: &std::path::Path, e: &anyhow::Error, code: u8) -> ExitCode {
    if let Some(t) = e.downcast_ref::<format::TemplateFailure>() {
        eprintln!("{t}");
        return ExitCode::from(t.code);
    }
    print_error(root, e);
    ExitCode::from(code)
}

/// The exit code of a container command: the container's own for
/// run/start -a/exec, and docker's client's codes when berth itself failed:
/// 1, except for `run` (see [`run_failed`]).
pub(crate) fn finish(root: &std::path::Path, r: Result<i32>) -> ExitCode {
    // The answer is known: what the command trashed is deleted meanwhile.
    crate::sweeper::after_command(root);
    if berth_relay::relay::caller_output_lost() {
        die_of_broken_pipe();
    }
    match r {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => failed(root, &e, 1),
    }
}

/// A `run` that failed before its container's program ran (or a `create`
/// refused by its own flags): docker's
/// client says `docker: <error>.` and `See 'docker run --help'.`, and exits
/// 127 when the program does not exist, 126 when it cannot be executed,
/// 125 for every other failure (no such image, name in use, bad flags...).
pub(crate) fn run_failed(root: &std::path::Path, e: &anyhow::Error, cmd: &str) -> ExitCode {
    let daemon = e.downcast_ref::<FromDaemon>();
    let text = match (damaged_database(root, e.as_ref()), daemon) {
        (Some(line), _) => line,
        (None, Some(d)) => format!("Error response from daemon: {:#}", d.error),
        (None, None) => format!("{e:#}"),
    };
    let help = if daemon.is_none_or(|d| d.help) {
        format!("\nSee 'berth {cmd} --help'.")
    } else {
        String::new()
    };
    eprintln!("berth: {}.{help}", text.trim_end_matches('.'));
    ExitCode::from(run::start_failure_code(e))
}

/// One line on stderr. A damaged database can surface in any query of any
/// command; whichever it is, the user learns which file is damaged, what
/// SQLite says, and where to go next, instead of a query's context.
pub(crate) fn print_error(root: &std::path::Path, e: &anyhow::Error) {
    if let Some(line) = damaged_database(root, e.as_ref()) {
        eprintln!("Error: {line}");
    } else if let Some(c) = e.downcast_ref::<ClientSide>() {
        eprintln!("{c}");
    } else if let Some(
        berth_engine::Error::AttachStopped | berth_engine::Error::NoOutputDirectory(_),
    ) = e.downcast_ref()
    {
        // docker's client finds these itself, and says them without
        // "Error:".
        eprintln!("{e}");
    } else if let Some(d) = e.downcast_ref::<FromDaemon>() {
        eprintln!("Error response from daemon: {:#}", d.error);
        if let Some(then) = &d.then {
            eprintln!("Error: {then}");
        }
    } else {
        eprintln!("Error: {e:#}");
    }
}

/// "No such image: NAME:latest", as docker's daemon names an image given
/// without a tag (for tag and history; save keeps the name as given).
pub(crate) fn with_default_tag(e: anyhow::Error, latest: bool) -> anyhow::Error {
    match e.downcast_ref::<berth_image::store::StoreError>() {
        Some(berth_image::store::StoreError::NotFound(n))
            if latest && !n.rsplit('/').next().unwrap_or(n).contains(':') && !n.contains('@') =>
        {
            anyhow::anyhow!("No such image: {n}:latest")
        }
        _ => e,
    }
}

/// An error docker's client finds itself (and words without "Error
/// response from daemon") in a command whose other failures are the
/// daemon's.
#[derive(Debug)]
pub(crate) struct ClientSide(pub String);

impl std::fmt::Display for ClientSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientSide {}

/// A file the client opens itself (`load -i`, `import FILE`): docker's
/// client prints Go's error as it is, `open F: no such file or directory`.
pub(crate) fn open_as_docker(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| {
        let words = match e.raw_os_error() {
            // Go's words are the C library's, lowercased.
            Some(n) => {
                let s = nix::errno::Errno::from_raw(n).desc();
                let mut c = s.chars();
                c.next()
                    .map(|f| f.to_lowercase().chain(c).collect())
                    .unwrap_or_default()
            }
            None => e.to_string(),
        };
        ClientSide(format!("open {}: {words}", path.display())).into()
    })
}

/// A filter key the command does not know, in docker's words.
pub(crate) fn invalid_filter(key: &str) -> anyhow::Error {
    FromDaemon::wrap(anyhow::anyhow!("Invalid filter '{key}'"), true)
}

/// What kind of failure `e` is, from the first of the libraries' typed
/// errors in its chain (a [`FromDaemon`] is looked through).
pub(crate) fn error_kind(e: &anyhow::Error) -> Option<berth_engine::ErrorKind> {
    use berth_engine::error as kinds;
    if let Some(d) = e.downcast_ref::<FromDaemon>() {
        return error_kind(&d.error);
    }
    e.chain().find_map(|c| {
        if let Some(e) = c.downcast_ref::<berth_engine::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<berth_runtime::Error>() {
            Some(kinds::runtime_kind(e.kind()))
        } else if let Some(e) = c.downcast_ref::<berth_image::store::StoreError>() {
            Some(kinds::image_kind(e))
        } else {
            c.downcast_ref::<berth_network::Error>()
                .map(kinds::network_kind)
        }
    })
}

/// An error that docker's client reports as its daemon's answer
/// ("Error response from daemon: ..."), for the commands where docker
/// does: scripts and people match on these words. `then` is the line
/// docker's client adds after it for some commands.
#[derive(Debug)]
pub(crate) struct FromDaemon {
    pub error: anyhow::Error,
    pub then: Option<String>,
    /// For `run`: docker's client adds "See 'docker run --help'." to what
    /// failed while making the container, not to what failed starting it.
    pub help: bool,
}

impl FromDaemon {
    /// `e` as the daemon's answer (unless it already is one); `help`: see
    /// the field.
    pub fn wrap(e: anyhow::Error, help: bool) -> anyhow::Error {
        if e.is::<FromDaemon>() {
            return e;
        }
        FromDaemon {
            error: e,
            then: None,
            help,
        }
        .into()
    }
}

impl std::fmt::Display for FromDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for FromDaemon {}

/// The line for a damaged database anywhere in `e`'s chain, for commands
/// that report an error per item (`rm a b`, `rmi a b`) and go on.
pub(crate) fn damaged_database(
    root: &std::path::Path,
    e: &(dyn std::error::Error + 'static),
) -> Option<String> {
    berth_image::database::find_damage(e).map(|cause| {
        format!(
            "database {} is damaged: {cause} (`berth system check` says how to recover)",
            root.join(berth_image::database::FILE).display()
        )
    })
}
