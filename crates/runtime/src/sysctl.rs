//! The spec's sysctls: which ones a container may set, and writing them.
//!
//! Most sysctls are global to the host: `kernel.core_pattern` set from a
//! container names the program the host kernel runs, as root, on every
//! crash. Only those that live in a namespace the container owns are
//! accepted (runc's and Docker's rule): the IPC ones with a new IPC
//! namespace, `net.*` with a network namespace that is not the host's,
//! `kernel.domainname` with a UTS namespace.

use std::path::Path;

use nix::fcntl::OFlag;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};
use crate::rootfs::{guard::ProcFs, Prepared};

const IPC: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The key in its dotted form (`net/ipv4/ip_forward` → `net.ipv4.ip_forward`)
/// after checking it names one file below /proc/sys.
fn dotted(key: &str) -> Result<String> {
    let bad = key.is_empty()
        || key.contains("..")
        || key.contains('\0')
        || key.starts_with(['.', '/'])
        || key.ends_with(['.', '/'])
        || key.contains('/') && key.contains('.');
    if bad {
        return Err(Error::SpecInvalid(format!("invalid sysctl name {key:?}")));
    }
    Ok(key.replace('/', "."))
}

/// Whether the namespace of `typ` in `namespaces` is the container's own:
/// listed, and (when joined by path) not the one the runtime itself is in.
fn owns(namespaces: &[LinuxNamespace], typ: LinuxNamespaceType) -> bool {
    let Some(ns) = namespaces.iter().find(|n| n.typ() == typ) else {
        return false;
    };
    let Some(path) = ns.path() else { return true };
    let own = match typ {
        LinuxNamespaceType::Network => "/proc/self/ns/net",
        LinuxNamespaceType::Ipc => "/proc/self/ns/ipc",
        LinuxNamespaceType::Uts => "/proc/self/ns/uts",
        _ => return false,
    };
    match (nix::sys::stat::stat(path), nix::sys::stat::stat(own)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// Refuses a sysctl that is not in a namespace the container owns.
pub fn check(key: &str, namespaces: &[LinuxNamespace]) -> Result<()> {
    let k = dotted(key)?;
    let (needs, what) = if IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
        (LinuxNamespaceType::Ipc, "IPC")
    } else if k.starts_with("net.") {
        (LinuxNamespaceType::Network, "network")
    } else if k == "kernel.domainname" {
        (LinuxNamespaceType::Uts, "UTS")
    } else {
        return Err(Error::SpecInvalid(format!(
            "sysctl {key:?} is not namespaced: setting it from a container would change the host"
        )));
    };
    if !owns(namespaces, needs) {
        return Err(Error::SpecInvalid(format!(
            "sysctl {key:?} needs the container's own {what} namespace"
        )));
    }
    Ok(())
}

/// Checks every sysctl of `spec` (at create, before anything is made).
pub fn check_all(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let namespaces = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for key in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flat_map(|m| m.keys())
    {
        check(key, &namespaces)?;
    }
    Ok(())
}

/// Writes the spec's sysctls through the container's own procfs (run in
/// the init after pivot_root): each file is opened below /proc/sys without
/// symlinks and without crossing a mount, and checked to be procfs, so
/// nothing planted in the rootfs (a symlink, a volume, a bind) can turn the
/// write into one on another file.
pub fn apply(spec: &Spec, prepared: &Prepared, root: &std::os::fd::OwnedFd) -> Result<()> {
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().clone()) else {
        return Ok(());
    };
    if sysctls.is_empty() {
        return Ok(());
    }
    check_all(spec)?;
    let proc = ProcFs::open(root, prepared.proc_mount_id).map_err(|e| Error::ProcFs {
        what: "sysctls need the container's procfs".into(),
        reason: e.to_string(),
    })?;
    for (key, value) in sysctls {
        let rel = Path::new("sys").join(dotted(&key)?.replace('.', "/"));
        let fd = proc
            .open_path(&rel, OFlag::O_WRONLY)
            .ctx(|| format!("set sysctl {key}={value}: open /proc/{}", rel.display()))?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, value.as_bytes())
            .ctx(|| format!("set sysctl {key}={value}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceBuilder;

    fn ns(types: &[LinuxNamespaceType]) -> Vec<LinuxNamespace> {
        types
            .iter()
            .map(|t| LinuxNamespaceBuilder::default().typ(*t).build().unwrap())
            .collect()
    }

    #[test]
    fn only_namespaced_sysctls_pass() {
        let all = ns(&[
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
        ]);
        assert!(check("net.ipv4.ip_forward", &all).is_ok());
        assert!(check("net/ipv4/ip_forward", &all).is_ok());
        assert!(check("kernel.shmmax", &all).is_ok());
        assert!(check("fs.mqueue.msg_max", &all).is_ok());
        assert!(check("kernel.domainname", &all).is_ok());
        for bad in [
            "kernel.core_pattern",
            "kernel/core_pattern",
            "vm.overcommit_memory",
            "kernel.hostname",
            "net/../kernel/core_pattern",
            "net.ipv4/../../kernel",
            "",
        ] {
            assert!(check(bad, &all).is_err(), "{bad}");
        }
        let none = ns(&[LinuxNamespaceType::Mount]);
        assert!(check("net.ipv4.ip_forward", &none).is_err());
        assert!(check("kernel.shmmax", &none).is_err());
    }
}
