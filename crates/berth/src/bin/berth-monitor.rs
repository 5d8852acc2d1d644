//! `berth-monitor`: what stays with a detached container while it runs.
//!
//! berth's monitor (`berth __monitor`) starts the container, then, when
//! nothing else needs it (no healthcheck, no client attached yet), execs
//! this small program in its own process: the same pid (still the
//! container's parent), the streams, the attach socket and the container's
//! stdin handed over as descriptors. It relays the output to the json-file
//! log and to attached clients until the container exits, then execs berth
//! again (`__monitor ... exited CODE`) to record the exit and apply the
//! restart policy. A berth-sized process (SQLite, serde, the runtime) per
//! idle container would cost several times the memory.
//!
//! Usage (berth's, not a user's):
//! `berth-monitor BERTH ROOT RUNROOT ID PID LOG MAX_SIZE MAX_FILE TTY OUT ERR IN ATTACH`
//! with TTY 0 or 1 and descriptors as numbers (-1: none).

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use berth_relay::frames::{socket_path, Server};
use berth_relay::jsonlog::Writer;
use berth_relay::relay::{relay, Clients, NoHooks};

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code = match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            std::process::exit(1);
        }
    };
    let berth = &args[0];
    let code_text = code.to_string();
    let argv: Vec<&OsStr> = vec![
        OsStr::new("berth-monitor"),
        OsStr::new("__monitor"),
        &args[1],
        &args[2],
        &args[3],
        OsStr::new("exited"),
        OsStr::new(&code_text),
    ];
    let cstr = |s: &OsStr| CString::new(s.as_bytes()).unwrap_or_default();
    let argv: Vec<CString> = argv.into_iter().map(cstr).collect();
    let e = nix::unistd::execv(&cstr(berth), &argv);
    eprintln!(
        "berth-monitor: exec {} to record exit code {code}: {e:?}",
        Path::new(berth).display()
    );
    std::process::exit(1);
}

fn fd_arg(s: &OsStr) -> Result<Option<RawFd>, String> {
    let n: RawFd = s
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad descriptor {s:?}"))?;
    Ok((n >= 0).then_some(n))
}

fn num<T: std::str::FromStr>(s: &OsStr, what: &str) -> Result<T, String> {
    s.to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad {what} {s:?}"))
}

/// Relays until the container exits; its exit code.
fn run(args: &[OsString]) -> Result<i32, String> {
    let [_berth, _root, runroot, id, pid, log, max_size, max_file, tty, out, err, input, attach] =
        args
    else {
        return Err(format!("expected 13 arguments, got {}", args.len()));
    };
    let pid = nix::unistd::Pid::from_raw(num(pid, "pid")?);
    let tty = tty == "1";
    let own = |fd: Option<RawFd>| {
        fd.map(|fd| {
            // SAFETY: berth's monitor put this descriptor here for us, open
            // and owned by nothing else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
    };
    let mut streams = Vec::new();
    if let Some(o) = own(fd_arg(out)?) {
        streams.push((o, 0));
    }
    if let Some(e) = own(fd_arg(err)?) {
        streams.push((e, 1));
    }
    let input = own(fd_arg(input)?);
    let socket = socket_path(Path::new(runroot), &id.to_string_lossy());
    let mut server = fd_arg(attach)?.map(|fd| {
        // SAFETY: as above; a listening unix socket.
        unsafe { Server::from_fd(fd, socket) }
    });
    let mut log = Writer::open(
        Path::new(log),
        num(max_size, "max size")?,
        num(max_file, "max file")?,
    )
    .map_err(|e| format!("open log {}: {e}", Path::new(log).display()))?;
    let code = relay(
        pid,
        streams,
        None,
        Some(&mut log),
        &mut NoHooks,
        Clients {
            server: server.as_mut(),
            input,
            tty,
        },
    )
    .map_err(|e| format!("relay: {e}"))?;
    log.flush();
    if let Some(s) = &mut server {
        s.finish(code);
    }
    Ok(code)
}
