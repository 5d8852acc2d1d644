//! The host's `kernel.core_pattern`, the prize of attacks on the runtime's
//! mounts and sysctl writes (the host kernel runs it, as root, on every
//! crash): saved, checked, and put back even when a test fails.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub const PATH: &str = "/proc/sys/kernel/core_pattern";

/// What an attack writes: a pipe to a program, as a real exploit would.
pub const EVIL: &str = "|/pwned-by-berth-test %p";

static TURN: Mutex<()> = Mutex::new(());

/// The saved value; one test of a process at a time holds it.
#[derive(Debug)]
pub struct HostCorePattern {
    saved: String,
    _turn: MutexGuard<'static, ()>,
}

impl HostCorePattern {
    pub fn save() -> HostCorePattern {
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        HostCorePattern {
            saved: std::fs::read_to_string(PATH).expect("read the host's core_pattern"),
            _turn: turn,
        }
    }

    /// Panics if the host's value changed (after putting it back).
    pub fn assert_untouched(&self, what: &str) {
        let now = std::fs::read_to_string(PATH).expect("read the host's core_pattern");
        if now != self.saved {
            let _ = std::fs::write(PATH, &self.saved);
            panic!("{what}: the container wrote the host's core_pattern: {now:?}");
        }
    }
}

impl Drop for HostCorePattern {
    fn drop(&mut self) {
        if std::fs::read_to_string(PATH).ok().as_deref() != Some(&self.saved) {
            let _ = std::fs::write(PATH, &self.saved);
        }
    }
}
