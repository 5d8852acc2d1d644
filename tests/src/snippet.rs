//! Bash snippets run against real clients (podman, containerd): the
//! captured result, and where the shell helpers live.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Result of a bash snippet.
#[derive(Debug)]
pub struct Out {
    pub snippet: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The exit code; -1 when killed by a signal.
    pub fn code(&self) -> i32 {
        self.code.unwrap_or(-1)
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "snippet: {}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.snippet, self.code, self.stdout, self.stderr
        )
    }
}

/// The repository's `tests/` directory (podman-env.sh and test data).
pub fn tests_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// True if `tool` is on PATH.
pub fn installed(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// `timeout -k 10 300 bash -c`: add the script (and its arguments) and the
/// environment, then [`capture`] it.
pub fn bash() -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "10", "300", "bash", "-c"]);
    c
}

/// Runs `cmd` (stdin from /dev/null) and captures its output, with the
/// CRs that `script` copies from a pty's line ends removed.
pub fn capture(mut cmd: Command, snippet: &str) -> Out {
    let output = cmd.stdin(Stdio::null()).output().expect("running bash");
    Out {
        snippet: snippet.to_string(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).replace('\r', ""),
        stderr: String::from_utf8_lossy(&output.stderr).replace('\r', ""),
    }
}

/// Removes a test's directory, unless the test failed and BERTH_TEST_KEEP
/// is set (then it is kept for a look, and said so).
pub fn remove_test_dir(dir: &Path) {
    if std::thread::panicking() && std::env::var_os("BERTH_TEST_KEEP").is_some() {
        eprintln!("keeping {}", dir.display());
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("removing {}: {e}", dir.display());
    }
}
