//! berth's default seccomp profile (Docker's policy), kept as data in
//! `profiles/seccomp-default.json` in Docker's profile format, and resolved
//! for one container: rules whose `includes` the container meets (all the
//! capabilities, the architecture) and whose `excludes` it does not.

use oci_spec::runtime::LinuxSeccomp;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The profile as shipped.
pub const DEFAULT_PROFILE: &str = include_str!("../../profiles/seccomp-default.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Value,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: Value,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

/// The seccomp name of the architecture this binary runs on.
pub fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "x86" => "SCMP_ARCH_X86",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "powerpc64" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        _ => "SCMP_ARCH_NATIVE",
    }
}

/// Resolves a Docker-format profile for a container whose bounding set is
/// `caps` (names like `CAP_SYS_ADMIN`).
pub fn resolve(profile_json: &str, caps: &[String]) -> Result<LinuxSeccomp> {
    let p: Profile = serde_json::from_str(profile_json)
        .map_err(|e| Error::SpecInvalid(format!("seccomp profile: {e}")))?;
    let arch = native_arch();
    let mut arches = vec![arch.to_string()];
    for m in p.arch_map.iter().filter(|m| m.architecture == arch) {
        arches.extend(m.sub_architectures.iter().cloned());
    }
    let has = |c: &String| caps.contains(c);
    let mut syscalls = Vec::new();
    for r in &p.syscalls {
        let included = r.includes.caps.iter().all(has)
            && (r.includes.arches.is_empty() || r.includes.arches.iter().any(|a| a == arch));
        let excluded =
            r.excludes.caps.iter().any(has) || r.excludes.arches.iter().any(|a| a == arch);
        if !included || excluded {
            continue;
        }
        let mut rule = json!({"names": r.names, "action": r.action});
        if let Some(e) = r.errno_ret {
            rule["errnoRet"] = json!(e);
        }
        if !r.args.is_empty() {
            rule["args"] = json!(r.args);
        }
        syscalls.push(rule);
    }
    let mut s = json!({
        "defaultAction": p.default_action,
        "architectures": arches,
        "syscalls": syscalls,
    });
    if let Some(e) = p.default_errno_ret {
        s["defaultErrnoRet"] = json!(e);
    }
    serde_json::from_value(s).map_err(|e| Error::SpecInvalid(format!("seccomp profile: {e}")))
}

/// berth's default profile for a container with bounding set `caps`.
pub fn default_for(caps: &[String]) -> Result<LinuxSeccomp> {
    resolve(DEFAULT_PROFILE, caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &LinuxSeccomp, action: &str) -> Vec<String> {
        let v = serde_json::to_value(s).unwrap();
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action && r.get("args").is_none())
            .flat_map(|r| {
                r["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn capabilities_open_their_syscalls_and_only_theirs() {
        let plain = default_for(&["CAP_CHOWN".into()]).unwrap();
        let allowed = names(&plain, "SCMP_ACT_ALLOW");
        for denied in [
            "keyctl",
            "add_key",
            "kexec_load",
            "unshare",
            "mount",
            "bpf",
            "kcmp",
            "pidfd_getfd",
            "io_uring_setup",
            "io_uring_enter",
        ] {
            assert!(
                !allowed.contains(&denied.to_string()),
                "{denied} allowed without capabilities"
            );
        }
        for ok in [
            "read",
            "execve",
            "setuid",
            "capset",
            "chroot",
            "sethostname",
            // Docker's current profile (kernels >= 4.8): debuggers work.
            "ptrace",
            "process_vm_readv",
        ] {
            assert!(allowed.contains(&ok.to_string()), "{ok} denied");
        }
        let admin = default_for(&["CAP_SYS_ADMIN".into()]).unwrap();
        let allowed = names(&admin, "SCMP_ACT_ALLOW");
        assert!(allowed.contains(&"mount".to_string()) && allowed.contains(&"unshare".to_string()));
        assert!(
            !allowed.contains(&"keyctl".to_string()),
            "keyctl is never allowed"
        );
        crate::seccomp::compile(&plain).unwrap();
        crate::seccomp::compile(&admin).unwrap();
    }
}
