//! Linux security modules: an AppArmor profile is applied at the
//! program's execve; what this host cannot honour (no AppArmor, no
//! SELinux) is refused, never ignored: a container that asked for
//! confinement must not run without it.

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
}

fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuses labels and profiles this host cannot apply (before anything is
/// made).
pub fn check(spec: &Spec) -> Result<()> {
    let process = spec.process().as_ref();
    if let Some(p) = process.and_then(|p| p.apparmor_profile().as_ref()) {
        if !p.is_empty() && !apparmor_enabled() {
            return Err(Error::SpecInvalid(format!(
                "process.apparmorProfile {p:?} is set, but AppArmor is not enabled on this host"
            )));
        }
    }
    let selinux_label = process.and_then(|p| p.selinux_label().as_ref());
    let mount_label = spec.linux().as_ref().and_then(|l| l.mount_label().as_ref());
    for (what, label) in [
        ("process.selinuxLabel", selinux_label),
        ("linux.mountLabel", mount_label),
    ] {
        if label.is_some_and(|l| !l.is_empty()) {
            return Err(Error::SpecInvalid(if selinux_enabled() {
                format!("{what} is not supported yet")
            } else {
                format!("{what} is set, but SELinux is not enabled on this host")
            }));
        }
    }
    Ok(())
}

/// Has the kernel switch to the spec's AppArmor profile at the next
/// execve (the program's); [`check`] made sure AppArmor is there.
pub fn apply_apparmor(profile: Option<&String>) -> Result<()> {
    let Some(p) = profile.filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    // Through the container's own procfs, checked, as every write under
    // /proc (rootfs::guard): an image cannot redirect it.
    let proc = crate::rootfs::guard::ProcFs::open_current()?;
    let value = format!("exec {p}");
    proc.write_own("attr/apparmor/exec", &value)
        .or_else(|_| proc.write_own("attr/exec", &value))
        .map_err(|e| Error::Security(format!("set AppArmor profile {p:?}: {e}")))
}
