//! OCI hooks: programs the spec asks to run at points of the lifecycle,
//! each given the container's state as JSON on stdin, its own args and
//! environment, and killed when its timeout passes.
//!
//! Where each runs (runtime-spec config.md):
//! - prestart, createRuntime: runtime namespaces, once the container's
//!   namespaces exist and before pivot_root (the runtime runs them while
//!   the init waits);
//! - createContainer: container namespaces, before pivot_root (the init);
//! - startContainer: container namespaces, just before the program (the init);
//! - poststart: runtime namespaces, after the program started;
//! - poststop: runtime namespaces, after the container is deleted.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Error, Result};

/// The lifecycle points hooks attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    pub fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }
}

/// The hooks of one point.
pub fn of(hooks: Option<&Hooks>, point: Point) -> Vec<Hook> {
    let Some(h) = hooks else { return Vec::new() };
    let list = match point {
        #[allow(deprecated)]
        Point::Prestart => h.prestart(),
        Point::CreateRuntime => h.create_runtime(),
        Point::CreateContainer => h.create_container(),
        Point::StartContainer => h.start_container(),
        Point::Poststart => h.poststart(),
        Point::Poststop => h.poststop(),
    };
    list.clone().unwrap_or_default()
}

/// Runs the hooks of `point` in order; the first failure stops and is
/// returned.
pub fn run_all(hooks: &[Hook], point: Point, state: &[u8]) -> Result<()> {
    for h in hooks {
        run(h, state).map_err(|reason| Error::Hook {
            point: point.name(),
            path: h.path().clone(),
            reason,
        })?;
    }
    Ok(())
}

/// Runs one hook to its end or its timeout.
pub fn run(hook: &Hook, state: &[u8]) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE ignored).
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(u64::try_from(t.max(1)).unwrap_or(1)));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                let err = err.trim();
                return Err(if err.is_empty() {
                    format!("{status}")
                } else {
                    format!("{status}: {err}")
                });
            }
            Ok(None) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", hook.timeout().unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn stdin_args_env_exit_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","read s; echo \"$0 $1 $X $s\" > {}","zero","one"],"env":["X=ex"]}}"#,
            out.display()
        ));
        run(&h, b"{\"id\":\"c\"}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "zero one ex {\"id\":\"c\"}\n"
        );
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo boom >&2; exit 3"]}"#);
        let e = run(&h, b"").unwrap_err();
        assert!(e.contains("3") && e.contains("boom"), "{e}");
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 30"],"timeout":1}"#);
        assert!(run(&h, b"").unwrap_err().contains("timed out"));
        let h = hook(r#"{"path":"/nonexistent/hook"}"#);
        assert!(run(&h, b"").unwrap_err().contains("start"));
    }
}
