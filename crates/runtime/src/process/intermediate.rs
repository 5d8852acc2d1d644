//! The intermediate process: the one that enters or creates namespaces, so
//! the runtime itself never changes namespace, and forks the process that
//! will be pid 1 of a new pid namespace.

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Uid};
use oci_spec::runtime::LinuxNamespaceType;

use crate::channel::{Channel, Message};
use crate::error::{Context, Error, Result};
use crate::namespaces::{join_all, Join, CLONE_NEWTIME};
use crate::process::exit_child;
use crate::syscall;

/// What the intermediate does before forking.
#[derive(Debug)]
pub struct Plan<'a> {
    pub joins: &'a [Join],
    pub new: CloneFlags,
    pub new_user: bool,
    /// Time namespace offsets (`linux.timeOffsets`), "clock secs nanos".
    pub time_offsets: Vec<String>,
}

/// Runs in the forked intermediate; never returns. `child` runs in the
/// forked grandchild and must not return either.
pub fn run(plan: &Plan<'_>, ch: &Channel, child: impl FnOnce() -> Error) -> ! {
    match enter(plan, ch) {
        Ok(()) => {}
        Err(e) => {
            let _ = ch.send(&Message::Failed(e.to_string()));
            exit_child(1);
        }
    }
    // SAFETY: the process is single-threaded (a fresh fork of a
    // single-threaded runtime), so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let e = child();
            let _ = ch.send(&Message::Failed(e.to_string()));
            exit_child(1);
        }
        Ok(ForkResult::Parent { child }) => {
            let code = if ch.send(&Message::Pid(child.as_raw())).is_ok() {
                0
            } else {
                1
            };
            exit_child(code);
        }
        Err(e) => {
            let _ = ch.send(&Message::Failed(format!("fork container process: {e}")));
            exit_child(1);
        }
    }
}

fn enter(plan: &Plan<'_>, ch: &Channel) -> Result<()> {
    syscall::set_parent_death_signal(libc::SIGKILL)?;
    syscall::set_non_dumpable()?;
    let (user_joins, other_joins): (Vec<&Join>, Vec<&Join>) = plan
        .joins
        .iter()
        .partition(|j| j.typ == LinuxNamespaceType::User);
    for j in &user_joins {
        nix::sched::setns(&j.fd, CloneFlags::CLONE_NEWUSER).ctx(|| "join user namespace".into())?;
    }
    if plan.new_user {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "create user namespace".into())?;
        ch.send(&Message::UserNsReady)?;
        ch.expect(&Message::MappingsWritten, "runtime")?;
    }
    if plan.new_user || !user_joins.is_empty() {
        // Become root of the user namespace, with its full capabilities.
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .ctx(|| "setgid 0 in the user namespace (is gid 0 mapped?)".into())?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .ctx(|| "setuid 0 in the user namespace (is uid 0 mapped?)".into())?;
    }
    for j in other_joins {
        join_all(std::slice::from_ref(j))?;
    }
    if !plan.new.is_empty() {
        nix::sched::unshare(plan.new).ctx(|| format!("create namespaces {:?}", plan.new))?;
    }
    if plan.new.contains(CLONE_NEWTIME) && !plan.time_offsets.is_empty() {
        std::fs::write("/proc/self/timens_offsets", plan.time_offsets.join("\n"))
            .ctx(|| "write time namespace offsets".into())?;
    }
    Ok(())
}
