//! A real Debian base for image round trips: the debootstrap minbase
//! tarball of scripts/debian-base.sh (made once, cached under
//! `$BERTH_TEST_CACHE` or target/debian-base, shared by parallel tests
//! under its lock), and Debian packages downloaded once beside it, for
//! builds that install them without reaching a mirror from a RUN step.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::snippet::installed;

/// The cache directory of the Debian fixtures.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("BERTH_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::target_dir().join("debian-base"))
}

/// None (said, or a failure under CI) when `tool` is missing.
fn need(tool: &str, package: &str) -> Option<()> {
    if installed(tool) {
        return Some(());
    }
    let why = format!("{tool} is not installed (apt-get install {package})");
    assert!(std::env::var_os("CI").is_none(), "{why}, and CI is set");
    eprintln!("skipped: {why}");
    None
}

/// The minbase rootfs tarball (numeric owners, xattrs), made on first use;
/// None without debootstrap (a failure under CI).
pub fn base_tar() -> Option<PathBuf> {
    need("debootstrap", "debootstrap")?;
    let script = crate::snippet::tests_dir().join("../scripts/debian-base.sh");
    let out = Command::new(&script)
        .arg(cache_dir())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "no tarball at {}", path.display());
    Some(path)
}

/// A directory holding the .deb files of `packages` (not their
/// dependencies), downloaded once with `apt-get download` from the mirror
/// apt uses; None without apt-get (a failure under CI).
pub fn debs(packages: &[&str]) -> Option<PathBuf> {
    need("apt-get", "apt")?;
    let base = cache_dir();
    fs::create_dir_all(&base).expect("create the Debian cache dir");
    let dest = base.join(format!("debs-{}", packages.join("+")));
    let lock = fs::File::create(base.join(".debs.lock")).expect("create the debs lock");
    // Held until the function returns; other test processes wait here.
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the debs");
    if !dest.join(".complete").exists() {
        let tmp = base.join("debs.tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).expect("create the debs dir");
        let out = Command::new("apt-get")
            .arg("download")
            .args(packages)
            .current_dir(&tmp)
            .output()
            .expect("run apt-get download");
        assert!(
            out.status.success(),
            "apt-get download {packages:?} failed (apt-get update first?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = fs::remove_dir_all(&dest);
        fs::rename(&tmp, &dest).expect("install the debs");
        fs::write(dest.join(".complete"), b"").expect("mark the debs complete");
    }
    Some(dest)
}
