//! seccomp: the spec's `linux.seccomp` compiled with libseccomp (the library
//! runc, crun and youki use, which knows every architecture's syscall
//! numbers) and loaded as late as possible before execve.
//!
//! runc's semantics: a rule whose action equals the default is skipped;
//! syscall names unknown to an architecture are skipped for it; several
//! conditions on the same argument become separate rules (libseccomp ANDs
//! conditions and cannot AND two on one argument; OCI means OR there).
//!
//! Compiling a profile the size of Docker's takes libseccomp milliseconds,
//! so a [`Program`] (the classic BPF it generates, and the load flags) is
//! compiled by the runtime before it forks, and kept in a cache under the
//! runtime root keyed by the profile's digest: the next container with the
//! same profile reads ~8 KiB instead.

pub mod profile;

use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

fn err(what: impl std::fmt::Display) -> Error {
    Error::SpecInvalid(format!("seccomp: {what}"))
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = i32::try_from(errno.unwrap_or(libc::EPERM.unsigned_abs())).map_err(err)?;
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(u16::try_from(errno).map_err(err)?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(err(
                "SCMP_ACT_NOTIFY (a seccomp agent) is not supported yet",
            ))
        }
    })
}

fn compare(
    op: LinuxSeccompOperator,
    index: usize,
    value: u64,
    value_two: Option<u64>,
) -> Result<ScmpArgCompare> {
    let arg = u32::try_from(index).map_err(err)?;
    if arg > 5 {
        return Err(err(format!("argument index {index} is out of range (0-5)")));
    }
    let (op, datum) = match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // OCI: `value` is the mask, `valueTwo` what the masked arg must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    };
    Ok(ScmpArgCompare::new(arg, op, datum))
}

/// An architecture name as the spec writes it (`SCMP_ARCH_X86_64`).
fn arch(a: &oci_spec::runtime::Arch) -> Result<ScmpArch> {
    let name = serde_json::to_value(a).map_err(err)?;
    let name = name.as_str().unwrap_or_default();
    ScmpArch::from_str(name).map_err(|_| err(format!("unknown architecture {name}")))
}

/// Compiles the filter (nothing is loaded yet): done before the container
/// reports ready, so a bad profile fails `create`.
pub fn compile(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(err)?;
    // no_new_privs follows the spec's process.noNewPrivileges, not
    // libseccomp's default of forcing it.
    ctx.set_ctl_nnp(false).map_err(err)?;
    // A binary tree of syscall numbers instead of one comparison after
    // another: the same decisions, but the kernel, which runs the filter
    // for every syscall number of every architecture to build its action
    // cache when it is loaded, walks a few branches instead of hundreds
    // (loading Docker's profile: see bench/engine-run.sh's phase notes).
    ctx.set_ctl_optimize(2).map_err(err)?;
    for a in s.architectures().iter().flatten() {
        let a = arch(a)?;
        if a != ScmpArch::native() {
            ctx.add_arch(a).map_err(err)?;
        }
    }
    for f in s.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => return Err(err(
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (for notify agents) is not supported yet",
            )),
        }
        .map_err(err)?;
    }
    for rule in s.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let conds: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| compare(a.op(), a.index(), a.value(), a.value_two()))
            .collect::<Result<_>>()?;
        let mut indexes: Vec<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            // A name this libseccomp does not know on any architecture:
            // skipped, as runc does (profiles name syscalls of newer kernels).
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if conds.is_empty() {
                ctx.add_rule(act, sys)
                    .map_err(|e| err(format!("{name}: {e}")))?;
            } else if repeated {
                for c in &conds {
                    ctx.add_rule_conditional(act, sys, std::slice::from_ref(c))
                        .map_err(|e| err(format!("{name}: {e}")))?;
                }
            } else {
                ctx.add_rule_conditional(act, sys, &conds)
                    .map_err(|e| err(format!("{name}: {e}")))?;
            }
        }
    }
    Ok(ctx)
}

/// The cache's directory under the runtime root: '@' is never in a
/// container id, so no container can claim this name.
pub const CACHE_DIR: &str = "@seccomp-cache";

/// Part of the cache key: how [`compile`] lays out the program (a program
/// cached by a build that laid it out otherwise is not reused).
const OPTIMIZE: &str = "tree";

/// A compiled filter: BPF instructions and the flags of seccomp(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Native-endian `struct sock_filter`s, 8 bytes each.
    bytes: Vec<u8>,
    flags: libc::c_ulong,
}

/// `struct sock_fprog` of <linux/filter.h>.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const libc::sock_filter,
}

impl Program {
    /// The program of `s`, from the cache in `cache_dir` or compiled (and
    /// then cached: written to a temp file and renamed, so a reader never
    /// sees half of one).
    pub fn for_profile(s: &LinuxSeccomp, cache_dir: &std::path::Path) -> Result<Program> {
        use sha2::Digest as _;
        let flags = Self::flags(s)?;
        let json = serde_json::to_vec(s).map_err(err)?;
        let version = libseccomp::ScmpVersion::current().map_err(err)?;
        let mut h = sha2::Sha256::new();
        h.update(format!(
            "{}.{}.{} {:?} {OPTIMIZE} ",
            version.major,
            version.minor,
            version.micro,
            ScmpArch::native()
        ));
        h.update(&json);
        let path = cache_dir.join(format!("{}.bpf", hex::encode(h.finalize())));
        if let Ok(bytes) = std::fs::read(&path) {
            if Self::decode(&bytes).is_some() {
                return Ok(Program { bytes, flags });
            }
        }
        let ctx = compile(s)?;
        std::fs::create_dir_all(cache_dir).map_err(err)?;
        let tmp = cache_dir.join(format!(".{}.tmp", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(err)?;
        ctx.export_bpf(&file).map_err(err)?;
        drop(file);
        let bytes = std::fs::read(&tmp).map_err(err)?;
        Self::decode(&bytes).ok_or_else(|| err("libseccomp exported a malformed program"))?;
        if std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(Program { bytes, flags })
    }

    fn flags(s: &LinuxSeccomp) -> Result<libc::c_ulong> {
        let mut flags = 0;
        for f in s.flags().iter().flatten() {
            flags |= match f {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => return Err(err(
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (for notify agents) is not supported yet",
                )),
            };
        }
        Ok(flags)
    }

    fn decode(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
        if bytes.is_empty()
            || !bytes.len().is_multiple_of(8)
            || bytes.len() / 8 > usize::from(u16::MAX)
        {
            return None;
        }
        Some(
            bytes
                .chunks_exact(8)
                .map(|c| libc::sock_filter {
                    code: u16::from_ne_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect(),
        )
    }

    /// Loads the filter into the calling thread (and, through execve, the
    /// container's program). Needs no_new_privs or CAP_SYS_ADMIN.
    pub fn load(&self) -> Result<()> {
        let filter = Self::decode(&self.bytes).ok_or_else(|| err("malformed program"))?;
        let prog = SockFprog {
            len: u16::try_from(filter.len()).map_err(err)?,
            filter: filter.as_ptr(),
        };
        // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads `prog` and the
        // `len` instructions it points to, all alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                std::ptr::from_ref(&prog),
            )
        };
        if rc != 0 {
            return Err(Error::Security(format!(
                "load seccomp filter: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn programs_are_cached_by_profile() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let a = Program::for_profile(&p, dir.path()).unwrap();
        let cached: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(cached.len(), 1, "one cache file, no temp file left");
        assert_eq!(Program::for_profile(&p, dir.path()).unwrap(), a);
        let q = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert_ne!(Program::for_profile(&q, dir.path()).unwrap(), a);
        // a damaged cache file is compiled again, not loaded
        std::fs::write(cached[0].path(), b"short").unwrap();
        assert_eq!(Program::for_profile(&p, dir.path()).unwrap(), a);
    }

    #[test]
    fn compiles_actions_arguments_and_architectures() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[
                  {"names":["read","write","no_such_syscall_anywhere"],"action":"SCMP_ACT_ALLOW"},
                  {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                   "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                  {"names":["clone"],"action":"SCMP_ACT_ALLOW",
                   "args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
                  {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":1}
                ]}"#,
        );
        compile(&p).unwrap();
    }

    #[test]
    fn notify_and_bad_indexes_are_refused() {
        let p = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(compile(&p)
            .unwrap_err()
            .to_string()
            .contains("not supported yet"));
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
                "args":[{"index":9,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(compile(&p)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }
}
