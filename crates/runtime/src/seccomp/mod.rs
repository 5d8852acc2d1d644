//! seccomp: the spec's `linux.seccomp` compiled with libseccomp (the library
//! runc, crun and youki use, which knows every architecture's syscall
//! numbers) and loaded as late as possible before execve.
//!
//! runc's semantics: a rule whose action equals the default is skipped;
//! syscall names unknown to an architecture are skipped for it; several
//! conditions on the same argument become separate rules (libseccomp ANDs
//! conditions and cannot AND two on one argument; OCI means OR there).

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

/// Loads a compiled filter into the calling thread (and, through execve,
/// the container's program).
pub fn load(ctx: &ScmpFilterContext) -> Result<()> {
    ctx.load()
        .map_err(|e| Error::Init(format!("load seccomp filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
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
