//! Runs a container through the engine library and prints its output from
//! its log, as a front end other than `berth` would: no `berth` binary,
//! no command line of berth's in between.
//!
//! ```text
//! berth pull busybox        # or import: the example uses berth's store
//! cargo run --example run_logs -- busybox sh -c 'echo hello; echo oops >&2'
//! ```
//!
//! The store is berth's (`BERTH_ROOT`, default /var/lib/berth; run state in
//! `BERTH_RUNROOT`, default /run/berth); root is needed, as for `berth run`.
//! The container is removed at the end and the example exits with its code.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::lifecycle::{RemoveOptions, WaitOptions};
use berth_engine::logs::LogOptions;
use berth_engine::{ContainerConfig, Engine};

fn main() -> ExitCode {
    // The engine watches a detached container from a re-execution of the
    // running program: answer it before anything else.
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(served) = berth_engine::monitor::serve_if_asked(&args) {
        if let Some(m) = served.message() {
            eprintln!("{m}");
        }
        return ExitCode::from(served.code());
    }
    let words: Vec<String> = std::env::args().skip(1).collect();
    let Some((image, cmd)) = words.split_first() else {
        eprintln!("usage: run_logs IMAGE [COMMAND [ARG...]]");
        return ExitCode::from(2);
    };
    match run(image, cmd) {
        Ok(code) => exit_code(code),
        Err(e) => {
            eprintln!("run_logs: {e}");
            ExitCode::from(125)
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}

fn dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn run(image: &str, cmd: &[String]) -> berth_engine::Result<i32> {
    let root = dir("BERTH_ROOT", "/var/lib/berth");
    let runroot = dir("BERTH_RUNROOT", "/run/berth");
    let mut engine = Engine::open(&root, &runroot)?;
    let cfg = ContainerConfig {
        image: image.to_string(),
        cmd: cmd.to_vec(),
        network: "none".into(),
        ..ContainerConfig::default()
    };
    let r = engine.create(cfg, None)?;
    let outcome = (|| -> berth_engine::Result<i32> {
        berth_engine::monitor::start_detached(&engine, &r)?;
        // Followed until the container exits: each entry goes where the
        // container wrote it.
        let mut opts = LogOptions::default();
        opts.follow = true;
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        for entry in engine.container_logs(&r.id, &opts)? {
            let written = entry?.write_to(false, &mut out, &mut err);
            if written.is_err() {
                break; // our reader went away: the container runs to its end regardless
            }
        }
        Ok(engine
            .container_wait(&r.id, &WaitOptions::default())?
            .exit_code)
    })();
    let mut rm = RemoveOptions::default();
    rm.force = true;
    rm.volumes = true;
    let removed = engine.container_remove(&r.id, &rm);
    let code = outcome?;
    removed?;
    Ok(code)
}
