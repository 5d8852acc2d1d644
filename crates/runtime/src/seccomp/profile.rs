//! berth's default seccomp profile (Docker's policy), kept as data in
//! `profiles/seccomp-default.json` in Docker's profile format, and resolved
//! for one container: rules whose `includes` the container meets (all the
//! capabilities, the architecture) and whose `excludes` it does not.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The profile as shipped.
pub const DEFAULT_PROFILE: &str = include_str!("../../profiles/seccomp-default.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
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
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
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
    let invalid = |e: &dyn std::fmt::Display| Error::SpecInvalid(format!("seccomp profile: {e}"));
    // Parsed straight into the spec's own types: no JSON value is built and
    // read back (that was half of the time this took, in every `run`).
    let p: Profile = serde_json::from_str(profile_json).map_err(|e| invalid(&e))?;
    let arch = native_arch();
    // Only this architecture's names are read: a profile may name
    // architectures the spec's types do not know for other machines.
    let arch_of = |name: &str| -> Result<Arch> {
        serde_json::from_value(serde_json::Value::from(name)).map_err(|e| invalid(&e))
    };
    let mut arches = vec![arch_of(arch)?];
    for m in p.arch_map.iter().filter(|m| m.architecture == arch) {
        for sub in &m.sub_architectures {
            arches.push(arch_of(sub)?);
        }
    }
    let has = |c: &String| caps.contains(c);
    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    for r in p.syscalls {
        let included = r.includes.caps.iter().all(has)
            && (r.includes.arches.is_empty() || r.includes.arches.iter().any(|a| a == arch));
        let excluded =
            r.excludes.caps.iter().any(has) || r.excludes.arches.iter().any(|a| a == arch);
        if !included || excluded {
            continue;
        }
        let mut rule = LinuxSyscallBuilder::default()
            .names(r.names)
            .action(r.action);
        if let Some(e) = r.errno_ret {
            rule = rule.errno_ret(e);
        }
        if !r.args.is_empty() {
            rule = rule.args(r.args);
        }
        syscalls.push(rule.build().map_err(|e| invalid(&e))?);
    }
    let mut s = LinuxSeccomp::default();
    s.set_default_action(p.default_action);
    s.set_default_errno_ret(p.default_errno_ret);
    s.set_architectures(Some(arches));
    s.set_syscalls(Some(syscalls));
    Ok(s)
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

    /// The JSON assembly `resolve` replaced, kept as the reference the
    /// typed one must equal.
    fn resolve_through_json(profile_json: &str, caps: &[String]) -> LinuxSeccomp {
        use serde_json::{json, Value};
        let p: Value = serde_json::from_str(profile_json).unwrap();
        let arch = native_arch();
        let mut arches = vec![json!(arch)];
        for m in p["archMap"].as_array().unwrap() {
            if m["architecture"] == arch {
                arches.extend(m["subArchitectures"].as_array().unwrap().iter().cloned());
            }
        }
        let list = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        let mut syscalls = Vec::new();
        for r in p["syscalls"].as_array().unwrap() {
            let has = |c: &String| caps.contains(c);
            let (inc, exc) = (&r["includes"], &r["excludes"]);
            let included = list(&inc["caps"]).iter().all(has)
                && (list(&inc["arches"]).is_empty()
                    || list(&inc["arches"]).iter().any(|a| a == arch));
            let excluded = list(&exc["caps"]).iter().any(has)
                || list(&exc["arches"]).iter().any(|a| a == arch);
            if !included || excluded {
                continue;
            }
            let mut rule = json!({"names": r["names"], "action": r["action"]});
            if let Some(e) = r.get("errnoRet") {
                rule["errnoRet"] = e.clone();
            }
            if r["args"].as_array().is_some_and(|a| !a.is_empty()) {
                rule["args"] = r["args"].clone();
            }
            syscalls.push(rule);
        }
        let mut s = json!({
            "defaultAction": p["defaultAction"],
            "architectures": arches,
            "syscalls": syscalls,
        });
        if let Some(e) = p.get("defaultErrnoRet") {
            s["defaultErrnoRet"] = e.clone();
        }
        serde_json::from_value(s).unwrap()
    }

    /// The typed resolution gives the very spec (and config.json text) the
    /// JSON assembly gave, for no capabilities, Docker's default set, one
    /// that opens rules (admin, ptrace, bpf) and every capability.
    #[test]
    fn typed_resolution_equals_the_json_assembly() {
        let docker = "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP \
                      SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE";
        let opening = "SYS_ADMIN SYS_PTRACE BPF PERFMON SYS_BOOT SYS_MODULE SYS_NICE \
                       SYS_PACCT SYS_RAWIO SYS_TIME SYS_TTY_CONFIG SYSLOG DAC_READ_SEARCH \
                       SYS_RESOURCE";
        let caps = |names: &str| -> Vec<String> {
            names
                .split_whitespace()
                .map(|c| format!("CAP_{c}"))
                .collect()
        };
        let all = [caps(docker), caps(opening)].concat();
        for set in [Vec::new(), caps(docker), caps(opening), all] {
            let typed = resolve(DEFAULT_PROFILE, &set).unwrap();
            let reference = resolve_through_json(DEFAULT_PROFILE, &set);
            assert_eq!(typed, reference, "{set:?}");
            assert_eq!(
                serde_json::to_string(&typed).unwrap(),
                serde_json::to_string(&reference).unwrap()
            );
        }
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
