//! Device nodes in the container's /dev: the six every container gets, the
//! spec's own, and the /dev symlinks. In a user namespace mknod is not
//! allowed, so the host's node is bind-mounted instead (as runc does).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::error::{Context, Error, Result};
use crate::syscall::{fd_path, mkdir_all_in_root};

/// A device node to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (the OCI spec's list).
pub fn default_devices() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: PathBuf::from(format!("/dev/{name}")),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

impl Device {
    pub fn from_spec(d: &LinuxDevice) -> Result<Device> {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::SpecInvalid(format!(
                    "device {}: type 'a' is only valid in cgroup rules",
                    d.path().display()
                )))
            }
        };
        if !d.path().starts_with("/dev") {
            return Err(Error::SpecInvalid(format!(
                "device path {} is not under /dev",
                d.path().display()
            )));
        }
        Ok(Device {
            path: d.path().clone(),
            kind,
            major: u64::try_from(d.major()).unwrap_or(0),
            minor: u64::try_from(d.minor()).unwrap_or(0),
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        })
    }
}

/// Makes `dev` inside `root`: mknod, or a bind of the host node when
/// `bind_from_host` (user namespaces).
pub fn create(root: &OwnedFd, dev: &Device, bind_from_host: bool) -> Result<()> {
    let parent = dev.path.parent().unwrap_or(Path::new("/dev"));
    let dir = mkdir_all_in_root(root, parent)?;
    // With no /dev tmpfs the image's /dev is used: `dev -> proc/sys/kernel`
    // must not put nodes (or host device binds) into the kernel's trees.
    let what = format!("device {}", dev.path.display());
    super::guard::check_outside_kernel_trees(root, &dir, &what)?;
    let file_name = dev.path.file_name().unwrap_or_default();
    if bind_from_host {
        let name = file_name.to_str().ok_or_else(|| {
            Error::SpecInvalid(format!("device path {} is not UTF-8", dev.path.display()))
        })?;
        let target = super::guard::file_target(&dir, name, &what)?;
        return mount(
            Some(&dev.path),
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind device {}", dev.path.display()));
    }
    let name = CString::new(file_name.as_encoded_bytes())
        .map_err(|_| Error::SpecInvalid(format!("device path {}", dev.path.display())))?;
    let mode = dev.kind.bits() | dev.mode;
    let rdev = makedev(dev.major, dev.minor);
    let mknod = || {
        // SAFETY: `dir` is a live directory descriptor (O_PATH is accepted
        // as dirfd) and `name` one NUL-terminated component.
        Errno::result(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, rdev) })
    };
    match mknod() {
        Ok(_) => {}
        Err(Errno::EEXIST) => {
            // SAFETY: as above; removes whatever the rootfs had there.
            let _ = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
            mknod().ctx(|| format!("mknod {}", dev.path.display()))?;
        }
        Err(e) => return Err(e).ctx(|| format!("mknod {}", dev.path.display())),
    }
    // SAFETY: as above; AT_SYMLINK_NOFOLLOW keeps the chown on the node.
    let rc = unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            dev.uid,
            dev.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Errno::result(rc).ctx(|| format!("chown {}", dev.path.display()))?;
    Ok(())
}

/// The /dev symlinks every container has.
pub fn create_symlinks(root: &OwnedFd, ptmx: bool) -> Result<()> {
    let dev = mkdir_all_in_root(root, Path::new("/dev"))?;
    super::guard::check_outside_kernel_trees(root, &dev, "/dev")?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if ptmx {
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        let t = CString::new(target).unwrap_or_default();
        let n = CString::new(name).unwrap_or_default();
        if name == "ptmx" {
            // SAFETY: live dirfd, NUL-terminated component; a node the
            // rootfs may have had at /dev/ptmx is replaced by the link.
            let _ = unsafe { libc::unlinkat(dev.as_raw_fd(), n.as_ptr(), 0) };
        }
        // SAFETY: live dirfd and NUL-terminated strings.
        let rc = unsafe { libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) };
        match Errno::result(rc) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("symlink /dev/{name}")),
        }
    }
    Ok(())
}
