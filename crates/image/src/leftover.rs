//! Removing what a failed or finished step leaves behind. Such a removal
//! never fails the command (the step's own result is what the caller
//! reports, and `system check` removes what stays), but when it fails
//! something stays on disk: that is logged, not dropped. A path that is
//! already gone is what the removal wanted.

use std::io::ErrorKind;
use std::path::Path;

/// Removes directory `path` and everything under it.
pub(crate) fn remove_dir_all(path: &Path) {
    warn_unless_gone(path, std::fs::remove_dir_all(path));
}

/// Removes file `path`.
pub(crate) fn remove_file(path: &Path) {
    warn_unless_gone(path, std::fs::remove_file(path));
}

fn warn_unless_gone(path: &Path, r: std::io::Result<()>) {
    match r {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            tracing::warn!("remove {}: {e} (left behind)", path.display());
        }
        _ => {}
    }
}
