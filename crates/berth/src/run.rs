//! `run` and `create`: make a container (pulling its image as `--pull`
//! says) and start it, attached or detached.

use std::io::Write;

use anyhow::{bail, Context, Result};
use berth_engine::config::ContainerConfig;
use berth_engine::{Engine, Record};

use crate::run_flags::{config_from, RunArgs, Stream};

/// `--cidfile`: made (empty) before the container, as docker's client
/// does, so that a file already there stops the command before anything
/// is created.
pub(crate) fn open_cidfile(a: &RunArgs) -> Result<Option<std::fs::File>> {
    let Some(p) = &a.cidfile else {
        return Ok(None);
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "container ID file found, make sure the other container isn't running or delete {}",
            p.display()
        ),
        Err(e) => Err(anyhow::anyhow!(
            "failed to create the container ID file: {e}"
        )),
    }
}

pub(crate) fn write_cidfile(f: Option<std::fs::File>, r: &Record) -> Result<()> {
    if let Some(mut f) = f {
        f.write_all(r.id.as_bytes())
            .context("write the container ID file")?;
    }
    Ok(())
}

/// `--detach-keys`, docker's default when absent.
pub(crate) fn detach_keys_of(flag: Option<&str>) -> Result<Vec<u8>> {
    Ok(match flag {
        Some(k) => berth_engine::attach::parse_detach_keys(k)?,
        None => berth_engine::attach::DEFAULT_DETACH_KEYS.to_vec(),
    })
}

/// Starts `r` under a monitor with us attached: its exit code, or 0 when
/// the user detached (the container runs on).
pub(crate) fn run_attached(
    engine: &Engine,
    r: &Record,
    session: &berth_engine::attach::Options,
) -> berth_engine::Result<i32> {
    let stream = berth_engine::monitor::start_attached(engine, r)?;
    Ok(attach_relay(stream, session)?.exit_code())
}

/// Our own stdio as a foreground relay's caller (copies of the
/// descriptors: the relay owns what it is given); our stdin only with
/// `stdin`.
pub(crate) fn own_stdio(stdin: bool) -> std::io::Result<berth_relay::relay::Caller> {
    use std::os::fd::AsFd;
    Ok(berth_relay::relay::Caller {
        stdin: match stdin {
            true => Some(std::io::stdin().as_fd().try_clone_to_owned()?),
            false => None,
        },
        stdout: Some(std::io::stdout().as_fd().try_clone_to_owned()?),
        stderr: Some(std::io::stderr().as_fd().try_clone_to_owned()?),
    })
}

/// [`berth_engine::attach::relay`] with our own stdio as the user's.
pub(crate) fn attach_relay(
    stream: std::os::unix::net::UnixStream,
    session: &berth_engine::attach::Options,
) -> berth_engine::Result<berth_engine::attach::Outcome> {
    use std::os::fd::AsFd;
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let user = berth_engine::attach::UserStdio {
        stdin: stdin.as_fd(),
        stdout: stdout.as_fd(),
        stderr: stderr.as_fd(),
    };
    berth_engine::attach::relay(stream, session, user)
}

/// Creates the container, pulling its image first as `--pull` says
/// (docker's default: when the store lacks it).
pub(crate) fn create_pulling(
    engine: &mut Engine,
    a: &RunArgs,
    cfg: ContainerConfig,
) -> Result<Record> {
    let policy = a.pull.as_deref().unwrap_or("missing");
    if policy == "always" {
        crate::transfer::pull_for_run(engine.images_mut(), &a.registry, &a.image, false)?;
    }
    match engine.create(cfg.clone(), a.name.as_deref()) {
        Err(berth_engine::Error::ImageNotFound(image)) if policy == "missing" => {
            eprintln!("Unable to find image '{image}' locally");
            crate::transfer::pull_for_run(engine.images_mut(), &a.registry, &a.image, false)?;
            Ok(engine.create(cfg, a.name.as_deref())?)
        }
        r => Ok(r?),
    }
}

impl RunArgs {
    /// Whether `run` starts the container in this process (in the
    /// foreground without a terminal), not under a monitor of its own.
    pub fn forks_here(&self) -> bool {
        !self.detach && !self.tty
    }

    /// Whether the caller gets the container's `s`: the streams `-a`
    /// names, else stdout and stderr.
    fn attaches(&self, s: Stream) -> bool {
        self.attach.is_empty() || self.attach.contains(&s)
    }

    /// A foreground run's relay: the output streams it attaches, and
    /// stdin whenever it is open (`-i` attaches it whatever `-a` says, in
    /// docker's client too).
    fn caller(&self, open_stdin: bool) -> std::io::Result<berth_relay::relay::Caller> {
        let mut caller = own_stdio(open_stdin)?;
        if !self.attaches(Stream::Stdout) {
            caller.stdout = None;
        }
        if !self.attaches(Stream::Stderr) {
            caller.stderr = None;
        }
        Ok(caller)
    }
}

pub(crate) fn run(engine: &mut Engine, a: &RunArgs) -> Result<i32> {
    if a.detach && !a.attach.is_empty() {
        // docker's client, before anything is made.
        eprintln!("Conflicting options: -a and -d");
        return Ok(1);
    }
    let cfg = config_from(a)?;
    let keys = detach_keys_of(a.detach_keys.as_deref())?;
    if a.tty && a.interactive && !a.detach && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        // Docker's client refuses before creating anything: a terminal
        // session needs one on this side (`-it` in a pipeline or in CI).
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let cidfile = open_cidfile(a)?;
    let mut cfg = cfg;
    // `-a stdin` alone: docker's client runs the container as `-d` does
    // (the id printed, exit 0 once it started) when none of its output is
    // attached.
    let output_attached = a.attaches(Stream::Stdout) || a.attaches(Stream::Stderr);
    if !output_attached {
        // Run as -d (below): docker's client leaves at once and the
        // container's stdin ends with it; ours is never fed, so it ends
        // now rather than keep a reader waiting forever.
        cfg.open_stdin = false;
    }
    let r = create_pulling(engine, a, cfg).map_err(|e| {
        if let Some(p) = &a.cidfile {
            let _ = std::fs::remove_file(p);
        }
        from_daemon(e)
    })?;
    write_cidfile(cidfile, &r)?;
    if a.detach || !output_attached {
        // docker's client prints the id once the container exists, before
        // it starts it.
        println!("{}", r.id);
        if let Err(e) = berth_engine::monitor::start_detached(engine, &r) {
            // A container that cannot start is not left behind with --rm.
            if a.rm {
                let _ = engine.remove(&engine.find(&r.id)?, true, true);
            }
            return Err(from_daemon_at_start(e.into()));
        }
        return Ok(0);
    }
    // With a terminal: a monitor of its own and us attached, so that the
    // detach keys leave it running (docker's `run -it`, ctrl-p ctrl-q).
    let outcome = if r.config.tty {
        let session = berth_engine::attach::Options {
            tty: true,
            stdin: r.config.open_stdin,
            detach_keys: keys,
            sig_proxy: a.sig_proxy,
        };
        run_attached(engine, &r, &session)
    } else {
        berth_engine::monitor::run(
            engine,
            &r.id,
            berth_engine::monitor::Mode::Foreground {
                caller: a.caller(r.config.open_stdin)?,
            },
        )
    };
    match outcome {
        Ok(code) => Ok(code),
        Err(e) => {
            if a.rm {
                if let Ok(r) = engine.find(&r.id) {
                    let _ = engine.remove(&r, true, true);
                }
            }
            Err(from_daemon_at_start(e.into()))
        }
    }
}

/// A failure of what docker's daemon does for `run` and `create` (make and
/// start the container), worded as docker's client words the daemon's
/// answers; the client's own checks of the command line stay plain.
pub(crate) fn from_daemon(e: anyhow::Error) -> anyhow::Error {
    crate::FromDaemon::wrap(e, true)
}

/// [`from_daemon`] for what failed starting the container (its ports,
/// devices, networks, program): docker's client gives no usage hint then.
fn from_daemon_at_start(e: anyhow::Error) -> anyhow::Error {
    crate::FromDaemon::wrap(e, false)
}

/// docker's exit code for a container whose program could not be started:
/// 127 when it does not exist, 126 when it cannot be executed, else 125.
// The runtime's init reports the failure as text across the process
// boundary; typed kinds are the engine library's issue (16).
pub fn start_failure_code(e: &anyhow::Error) -> u8 {
    use berth_engine::ErrorKind as K;
    match crate::error_kind(e) {
        Some(K::ExecutableNotFound | K::FileNotFound) => 127,
        Some(K::NotExecutable | K::PermissionDenied) => 126,
        _ => 125,
    }
}
