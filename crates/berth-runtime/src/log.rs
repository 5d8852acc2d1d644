//! runc's `--log` and `--log-format`: clients such as conmon and the
//! containerd shim read errors from this file (JSON lines with `level`,
//! `msg` and `time`), so it follows runc's format.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug)]
pub struct Logger {
    pub file: Option<PathBuf>,
    pub format: Format,
    pub debug: bool,
}

impl Logger {
    fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let time = now();
        let line = match self.format {
            Format::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}"),
        };
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }

    /// Warnings (a failed poststart or poststop hook) go to the log and to
    /// stderr; the command still succeeds.
    pub fn warnings(&self, msgs: &[String]) {
        for m in msgs {
            self.write("warning", m);
            eprintln!("berth-runtime: warning: {m}");
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }
}

fn now() -> String {
    berth_runtime::state::now_rfc3339()
}
