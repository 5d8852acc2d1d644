//! The intermediate process: the one that enters or creates namespaces, so
//! the runtime itself never changes namespace, and forks the process that
//! will be pid 1 of a new pid namespace.

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Uid};
use oci_spec::runtime::LinuxNamespaceType;

use crate::channel::{Channel, Message};
use crate::error::{ChildFailure, Context, Error, Result};
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
    /// The container's cgroups, which the intermediate joins so that the
    /// process it forks is born in them (no migration, see
    /// `cgroups::v1::Manager::join_self`).
    pub cgroups: Option<&'a crate::cgroups::Manager>,
    /// The runtime is still making the cgroups: wait for `CgroupsReady`.
    pub cgroups_pending: bool,
    /// The intermediate was forked into the cgroup2 directory already
    /// (see [`born_in_cgroup2`]).
    pub born_in_cgroup2: bool,
    /// The runtime makes the cgroups while the intermediate makes its
    /// namespaces, and hands it their `tasks` files, opened as the host's
    /// root, with `MappingsWritten`: see [`joins_through_files`].
    pub cgroups_by_files: bool,
}

/// Whether the intermediate of a create joins its v1 cgroups through
/// files the runtime opened: with a new user namespace, whose maps the
/// runtime writes anyway. The intermediate then creates the user
/// namespace and the others at once, on one core, while the runtime makes
/// the cgroups on the other (on a hybrid host the cgroup2 directory it is
/// forked into is made first), instead of waiting for them to join as the
/// host's root first. What the container runs is still born in every
/// cgroup: the init is forked after the join. (The kernel's own
/// bookkeeping of the new namespaces is then charged to the runtime's
/// memory cgroup rather than the container's.)
pub fn joins_through_files(new_user: bool, cgroups: Option<&crate::cgroups::Manager>) -> bool {
    new_user && matches!(cgroups, Some(crate::cgroups::Manager::V1(_)))
}

/// Whether the runtime should fork the intermediate into the cgroup2
/// directory itself: with a user namespace, the intermediate's own
/// CLONE_INTO_CGROUP would be checked as the namespace's root (refused),
/// and its write to cgroup.procs is a migration, which waits for an RCU
/// grace period under cgroup_threadgroup_rwsem (about 14 ms here, most of
/// a start). Forked there by the host's root, the intermediate and the
/// init it forks are born in it.
pub fn born_in_cgroup2(userns: bool, cgroups: Option<&crate::cgroups::Manager>) -> bool {
    userns && cgroups.is_some_and(|c| c.clone_into_dir().is_some())
}

/// Whether the runtime can clone the init straight into its new user and
/// pid namespaces, with no intermediate process (the init makes the other
/// new namespaces itself, [`enter_direct`]): nothing to join (a namespace
/// to join comes before a new user namespace, from outside it) and no time
/// namespace (its offsets are written before any process is in it). A new
/// pid namespace's first process is its pid 1 either way. What the
/// intermediate did is then split: the runtime writes the maps and makes
/// the cgroups while the init waits, and the init joins the cgroups itself
/// ([`enter_direct`]). One fork (a copy of the runtime's address space),
/// one exit and one round trip fewer per create.
pub fn direct(plan: &crate::namespaces::NamespacePlan) -> bool {
    plan.joins.is_empty() && !plan.new.contains(CLONE_NEWTIME)
}

/// The intermediate's part of a direct create, run by the init the runtime
/// cloned into its user and pid namespaces: makes its other new namespaces
/// (`rest`; the new user namespace gives it every capability there, maps or
/// not), waits for the runtime's word (`MappingsWritten` with a new user
/// namespace, `CgroupsReady` without), joins the v1 cgroups through the
/// `tasks` files that come with it (opened by the runtime as the host's
/// root), and becomes root of its user namespace. No parent-death signal:
/// the init outlives a runtime that created it (`berth-runtime create`
/// ends at once); a runtime that dies before its word ends the channel,
/// and with it the init.
pub fn enter_direct(ch: &Channel, new_user: bool, rest: CloneFlags) -> Result<()> {
    syscall::set_non_dumpable()?;
    if !rest.is_empty() {
        nix::sched::unshare(rest).ctx(|| format!("create namespaces {rest:?}"))?;
    }
    let files = ch.expect_with_fds(&direct_word(new_user), "runtime")?;
    crate::cgroups::Manager::join_self_through(files)?;
    if new_user {
        become_root()?;
    }
    Ok(())
}

/// The word a direct init waits for and the runtime sends it, with the
/// cgroups' `tasks` files: its maps written (with a new user namespace),
/// else its cgroups made.
pub fn direct_word(new_user: bool) -> Message {
    match new_user {
        true => Message::MappingsWritten,
        false => Message::CgroupsReady,
    }
}

/// Becomes root of the user namespace it is in, with its full capabilities.
fn become_root() -> Result<()> {
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .ctx(|| "setgid 0 in the user namespace (is gid 0 mapped?)".into())?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .ctx(|| "setuid 0 in the user namespace (is uid 0 mapped?)".into())
}

/// Runs in the forked intermediate; never returns. `child` runs in the
/// forked grandchild and must not return either.
pub fn run(plan: &Plan<'_>, ch: &Channel, child: impl FnOnce() -> Error) -> ! {
    let cgroup2 = match enter(plan, ch) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = ch.send(&Message::Failed(ChildFailure::of(&e)));
            exit_child(1);
        }
    };
    // The process is single-threaded (a fresh fork of a single-threaded
    // runtime), as fork_into requires.
    match crate::process::fork::fork_into(cgroup2.as_ref()) {
        Ok(ForkResult::Child) => {
            let e = child();
            let _ = ch.send(&Message::Failed(ChildFailure::of(&e)));
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
            let failure = ChildFailure {
                kind: e.kind(),
                message: format!("fork container process: {e}"),
            };
            let _ = ch.send(&Message::Failed(failure));
            exit_child(1);
        }
    }
}

/// Joins the cgroups (returning the cgroup2 directory the child is to be
/// born in), then the namespaces.
fn enter(plan: &Plan<'_>, ch: &Channel) -> Result<Option<std::os::fd::OwnedFd>> {
    syscall::set_parent_death_signal(libc::SIGKILL)?;
    syscall::set_non_dumpable()?;
    let (user_joins, other_joins): (Vec<&Join>, Vec<&Join>) = plan
        .joins
        .iter()
        .partition(|j| j.typ == LinuxNamespaceType::User);
    let userns = plan.new_user || !user_joins.is_empty();
    // Host cgroup files need host root and host paths: with a user
    // namespace, or before exec's setns into the mount namespace, join
    // first; otherwise after the namespaces, while the runtime made the
    // cgroups on the other core.
    let join_late = !userns
        && plan.cgroups_pending
        && other_joins
            .iter()
            .all(|j| j.typ != LinuxNamespaceType::Mount);
    let mut cgroup2 = None;
    if !join_late && !plan.cgroups_by_files {
        cgroup2 = join_cgroups(plan, ch, userns)?;
    }
    for j in &user_joins {
        nix::sched::setns(&j.fd, CloneFlags::CLONE_NEWUSER).ctx(|| "join user namespace".into())?;
    }
    // With the cgroups still in the making (joins_through_files), the
    // other namespaces are made now too: the new user namespace gives
    // every capability in it, maps or not. Not with namespaces to join,
    // whose order after setuid stays as it was.
    let mut unshared = false;
    if plan.new_user {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "create user namespace".into())?;
        ch.send(&Message::UserNsReady)?;
        if plan.cgroups_by_files && other_joins.is_empty() && !plan.new.is_empty() {
            nix::sched::unshare(plan.new).ctx(|| format!("create namespaces {:?}", plan.new))?;
            unshared = true;
        }
        if plan.cgroups_by_files {
            let files = ch.expect_with_fds(&Message::MappingsWritten, "runtime")?;
            crate::cgroups::Manager::join_self_through(files)?;
        } else {
            ch.expect(&Message::MappingsWritten, "runtime")?;
        }
    }
    if plan.new_user || !user_joins.is_empty() {
        become_root()?;
    }
    for j in other_joins {
        join_all(std::slice::from_ref(j))?;
    }
    if !plan.new.is_empty() && !unshared {
        nix::sched::unshare(plan.new).ctx(|| format!("create namespaces {:?}", plan.new))?;
    }
    if plan.new.contains(CLONE_NEWTIME) && !plan.time_offsets.is_empty() {
        std::fs::write("/proc/self/timens_offsets", plan.time_offsets.join("\n"))
            .ctx(|| "write time namespace offsets".into())?;
    }
    if join_late {
        cgroup2 = join_cgroups(plan, ch, false)?;
    }
    Ok(cgroup2)
}

fn join_cgroups(
    plan: &Plan<'_>,
    ch: &Channel,
    userns: bool,
) -> Result<Option<std::os::fd::OwnedFd>> {
    let Some(cg) = plan.cgroups else {
        return Ok(None);
    };
    if plan.cgroups_pending {
        ch.expect(&Message::CgroupsReady, "runtime")?;
    }
    cg.join_self()?;
    let Some(dir) = cg.clone_into_dir() else {
        return Ok(None);
    };
    if plan.born_in_cgroup2 {
        return Ok(None);
    }
    if userns {
        // CLONE_INTO_CGROUP checks permissions as the user namespace's
        // root; join now, as host root, the slow way.
        crate::cgroups::write(dir, "cgroup.procs", "0")?;
        return Ok(None);
    }
    crate::process::fork::open_cgroup(dir).map(Some)
}
