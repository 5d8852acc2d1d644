//! `create`: from a bundle to an init process waiting on the exec fifo.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use super::Container;
use crate::bundle::Bundle;
use crate::channel::{self, Channel, Message};
use crate::error::{ChildFailure, Context, Error, Result};
use crate::namespaces::NamespacePlan;
use crate::process::stdio::Stdio;
use crate::process::{console, init, intermediate};
use crate::state::{self, ContainerState, StateDir};
use crate::syscall;

/// How a container is created (runc's `create` flags, and what an
/// in-process caller hands over directly).
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub id: String,
    /// The bundle directory: the rootfs and `config.json` are found from
    /// it unless `spec` is given.
    pub bundle: PathBuf,
    /// The spec itself, in memory: `config.json` is then not read (an
    /// in-process caller that built the spec need not have it parsed back;
    /// it may still write the file for people and for `berth-runtime`).
    pub spec: Option<Spec>,
    /// The init's stdin, stdout and stderr; without, it inherits the
    /// caller's (runc's behaviour, which the CLI keeps).
    pub stdio: Option<Stdio>,
    /// Runtime root holding one state directory per container.
    pub root: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// A detached mount (fsmount's or open_tree's descriptor) that the init
    /// attaches at the spec's root path inside the container's own mount
    /// namespace: the rootfs then lives and dies with that namespace and
    /// the host never has it mounted. The library's callers only (the
    /// engine passes its overlay this way); the CLI never sets it.
    pub rootfs_mount: Option<std::os::fd::RawFd>,
    /// The init brings up `lo` in the network namespace the container
    /// makes (`--network none`: loopback only, up, as Docker's), before
    /// it reports ready: the caller need not enter the namespace for it.
    /// Ignored without a new network namespace.
    pub loopback_up: bool,
}

impl Container {
    /// Creates a container: namespaces, rootfs and process set up, the
    /// program not started. On failure nothing is left behind: no state
    /// directory, no process, no mount (mounts live and die with the init's
    /// mount namespace).
    ///
    /// The caller must be single-threaded: it forks.
    pub fn create(mut opts: CreateOptions) -> Result<Container> {
        state::validate_id(&opts.id)?;
        let bundle = match opts.spec.take() {
            Some(spec) => Bundle::from_spec(Bundle::absolute(&opts.bundle)?, spec)?,
            None => Bundle::load(&opts.bundle)?,
        };
        // CVE-2019-5736: from a protected binary, unless the container's
        // own user namespace leaves the binary out of its reach.
        if !crate::exe::exempt_for_spec(&bundle.spec) {
            crate::exe::require_protected()?;
        }
        let stdio = opts.stdio.take();
        if let (Some(s), Some(p)) = (&stdio, bundle.spec.process()) {
            s.give_to(bundle.spec.linux().as_ref(), p.user())?;
        }
        let opts = &opts;
        let linux = linux_of(&bundle.spec);
        refuse_unsupported(&bundle.spec)?;
        // Read once: for the cgroups, and for the init's /sys/fs/cgroup (its
        // mount namespace is a copy of ours).
        let hierarchies = crate::cgroups::v1::host_hierarchies();
        let cgroups =
            crate::cgroups::Manager::for_container_in(&bundle.spec, &opts.id, &hierarchies)?;
        let cgroups = crate::cgroups::unless_rootless_unlimited(cgroups, &bundle.spec);
        let plan = NamespacePlan::from_spec(&linux)?;
        let process = bundle.spec.process().clone().unwrap_or_default();
        let console = match (process.terminal().unwrap_or(false), &opts.console_socket) {
            (true, Some(path)) => Some(console::connect(path)?),
            (true, None) => {
                return Err(Error::SpecInvalid(
                    "cannot allocate tty if runc will detach without setting console socket".into(),
                ))
            }
            (false, Some(_)) => {
                return Err(Error::SpecInvalid(
                    "cannot use console socket if runc will not detach or allocate tty".into(),
                ))
            }
            (false, None) => None,
        };
        let dir = StateDir::create(&opts.root, &opts.id)?;
        // Without a mount namespace the init mounts in the host's: what was
        // at the rootfs before tells delete (or a failed create) which mount
        // is the container's.
        let host_mounts_below = if plan.has(LinuxNamespaceType::Mount) {
            None
        } else {
            Some(crate::rootfs::mount_id_at(&bundle.rootfs)?)
        };
        let mut creation = Creation {
            dir: &dir,
            init: None,
            cgroups: None,
            rootfs: &bundle.rootfs,
            host_mounts_below,
            ready_early: false,
        };
        let result = creation.run(
            opts,
            &bundle,
            &plan,
            console,
            stdio,
            (cgroups, &hierarchies),
        );
        match result {
            Ok(state) => Ok(Container {
                root: opts.root.clone(),
                dir,
                state,
            }),
            Err(e) => {
                creation.cleanup();
                Err(e)
            }
        }
    }
}

/// A creation in progress; `cleanup` undoes it.
struct Creation<'a> {
    dir: &'a StateDir,
    init: Option<Pid>,
    /// Set once the cgroups exist.
    cgroups: Option<crate::cgroups::Manager>,
    rootfs: &'a Path,
    /// See [`ContainerState::host_mounts_below`].
    host_mounts_below: Option<u64>,
    /// The init reported ready before the intermediate reported its pid:
    /// without hooks to wait for, nothing orders the two (the init goes on
    /// at once, and the intermediate may be scheduled after it).
    ready_early: bool,
}

impl Creation<'_> {
    fn cleanup(&mut self) {
        if let Some(pid) = self.init.take() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(c) = self.cgroups.take() {
            let _ = c.remove();
        }
        if let Some(below) = self.host_mounts_below {
            let _ = crate::rootfs::detach_host_mounts(self.rootfs, below);
        }
        let _ = self.dir.remove();
    }

    fn run(
        &mut self,
        opts: &CreateOptions,
        bundle: &Bundle,
        plan: &NamespacePlan,
        console: Option<std::os::unix::net::UnixStream>,
        stdio: Option<Stdio>,
        (cgroups, hierarchies): (
            Option<crate::cgroups::Manager>,
            &[crate::cgroups::v1::Hierarchy],
        ),
    ) -> Result<ContainerState> {
        let mut st = ContainerState {
            id: opts.id.clone(),
            pid: 0,
            pid_start_time: 0,
            creator_pid: i32::try_from(std::process::id()).unwrap_or(0),
            bundle: bundle.path.clone(),
            rootfs: bundle.rootfs.clone(),
            created: state::now_rfc3339(),
            owner: String::new(),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
            creating: true,
            config: bundle.spec.clone(),
            // Recorded before they are made: a delete after a create killed
            // at any point removes them (and what runs in them) from here.
            cgroups: cgroups.clone(),
            host_mounts_below: self.host_mounts_below,
        };
        // Saved once, here: what is learnt later (the init's pid) is
        // recorded apart, see StateDir::record_init.
        self.dir.save(&st)?;
        let fifo_path = self.dir.fifo();
        nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
            .ctx(|| "create exec fifo".into())?;
        // The read end, opened here and inherited by the init: it waits on
        // it for `start`'s byte. (Reopening the fifo from inside would need
        // /proc/self/fd, which a non-dumpable process that switched user
        // cannot traverse.)
        let fifo = nix::fcntl::open(
            &fifo_path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open exec fifo".into())?;
        // SAFETY: fresh descriptor from open.
        let fifo = unsafe { OwnedFd::from_raw_fd(fifo) };
        let (parent_ch, child_ch) = channel::pair()?;
        syscall::set_child_subreaper()?;
        let linux = linux_of(&bundle.spec);
        let time_offsets = time_offsets(&linux);
        let userns = plan.has_user();
        // Without an intermediate (see intermediate::direct), the init is
        // cloned into its namespaces and the cgroup2 one, and joins the v1
        // cgroups through files while the runtime makes them.
        let direct = intermediate::direct(plan);
        // With a user namespace the cgroups are made first and the
        // intermediate forked into the cgroup2 one (see born_in_cgroup2).
        let early = direct || intermediate::born_in_cgroup2(userns, cgroups.as_ref());
        let by_files = match direct {
            true => matches!(cgroups, Some(crate::cgroups::Manager::V1(_))),
            false => intermediate::joins_through_files(plan.new_user, cgroups.as_ref()),
        };
        let mut born_in = None;
        if let Some(cgroups) = cgroups.as_ref().filter(|_| early) {
            self.cgroups = Some(cgroups.clone());
            // Joining through files, only the cgroup2 directory is needed
            // before the fork; the rest is made while the intermediate
            // makes its namespaces.
            match by_files {
                true => cgroups.make_birthplace()?,
                false => cgroups.prepare(linux.resources().as_ref())?,
            }
            born_in = cgroups
                .clone_into_dir()
                .map(crate::process::fork::open_cgroup)
                .transpose()?;
        }
        let iplan = intermediate::Plan {
            joins: &plan.joins,
            new: plan.new,
            new_user: plan.new_user,
            time_offsets,
            cgroups: cgroups.as_ref(),
            cgroups_pending: !early && !by_files,
            born_in_cgroup2: born_in.is_some(),
            cgroups_by_files: by_files,
        };
        // Idmapped binds: cloned now, idmapped once the user namespace has
        // its maps (a joined one has them already), attached by the init.
        let idmapped = crate::rootfs::idmapped::IdmappedBinds::clone_sources(
            &bundle.spec,
            &bundle.path,
            userns,
        )?;
        if let Some(j) = plan
            .joins
            .iter()
            .find(|j| j.typ == LinuxNamespaceType::User)
        {
            idmapped.apply(std::os::fd::AsFd::as_fd(&j.fd))?;
        }
        let idmapped_fds = idmapped.raw();
        let seccomp = linux
            .seccomp()
            .as_ref()
            .map(|s| {
                crate::seccomp::Program::for_profile(s, &opts.root.join(crate::seccomp::CACHE_DIR))
            })
            .transpose()?;
        // A direct init is cloned into its user and pid namespaces (a pid
        // namespace's first process can only be made so) and unshares the
        // others itself, on its core, while the runtime makes the cgroups
        // on the other (the network namespace alone is a quarter of a
        // millisecond of kernel work).
        use nix::sched::CloneFlags;
        let (namespaces, unshared_by_init) = match direct {
            false => (CloneFlags::empty(), CloneFlags::empty()),
            true => {
                let user = match plan.new_user {
                    true => CloneFlags::CLONE_NEWUSER,
                    false => CloneFlags::empty(),
                };
                let pid = plan.new & CloneFlags::CLONE_NEWPID;
                (user | pid, plan.new - pid)
            }
        };
        // The runtime is single-threaded here (documented on
        // `Container::create`), so the child may run arbitrary code.
        let child = match crate::process::fork::clone_into(born_in.as_ref(), namespaces)? {
            ForkResult::Child => {
                drop(parent_ch);
                // The intermediate takes them on, and the init inherits.
                if let Some(Err(e)) = stdio.as_ref().map(Stdio::install) {
                    let _ = child_ch.send(&Message::Failed(ChildFailure::of(&e)));
                    crate::process::exit_child(1);
                }
                let entered = match direct {
                    true => intermediate::enter_direct(&child_ch, plan.new_user, unshared_by_init),
                    false => Ok(()),
                };
                if let Err(e) = entered {
                    let _ = child_ch.send(&Message::Failed(ChildFailure::of(&e)));
                    crate::process::exit_child(1);
                }
                let init = || {
                    init::run(init::InitArgs {
                        bundle,
                        channel: &child_ch,
                        fifo: &fifo,
                        console,
                        preserve_fds: opts.preserve_fds,
                        no_pivot: opts.no_pivot,
                        own_mount_ns: plan.has(LinuxNamespaceType::Mount),
                        rootfs_mount: opts.rootfs_mount,
                        loopback_up: opts.loopback_up
                            && plan.new.contains(nix::sched::CloneFlags::CLONE_NEWNET),
                        idmapped: &idmapped_fds,
                        new_cgroupns: plan.new_cgroup,
                        // A joined mount namespace has mounts of its own.
                        hierarchies: (!plan
                            .joins
                            .iter()
                            .any(|j| j.typ == LinuxNamespaceType::Mount))
                        .then_some(hierarchies),
                        userns,
                        seccomp: seccomp.as_ref(),
                    })
                };
                if direct {
                    let e = init();
                    let _ = child_ch.send(&Message::Failed(ChildFailure::of(&e)));
                    crate::process::exit_child(1);
                }
                intermediate::run(&iplan, &child_ch, init);
            }
            ForkResult::Parent { child } => child,
        };
        drop(child_ch);
        drop(console);
        drop(fifo);
        // The caller's copies of the pipes are its own; ours would keep
        // the container's output from ever reaching end of file.
        drop(stdio);
        // Otherwise the cgroups are made while the intermediate creates
        // namespaces.
        let mut join_files = Vec::new();
        if let Some(cgroups) = cgroups.as_ref().filter(|_| !early || by_files) {
            self.cgroups = Some(cgroups.clone());
            let made = cgroups.prepare(linux.resources().as_ref()).and_then(|()| {
                if by_files {
                    join_files = cgroups.open_join_files()?;
                }
                Ok(())
            });
            if let Err(e) = made {
                // The intermediate (or the direct init) waits for
                // CgroupsReady (or its maps): it must not be left waiting
                // (nor we for it).
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(e);
            }
            if !by_files {
                parent_ch.send(&Message::CgroupsReady)?;
            }
        }
        let init_pid = match direct {
            true => {
                self.start_direct_init(
                    &parent_ch,
                    child,
                    plan.new_user,
                    &linux,
                    &idmapped,
                    join_files,
                )?;
                child
            }
            false => {
                let middle = child;
                let init_pid =
                    self.talk_to_intermediate(&parent_ch, middle, &linux, &idmapped, join_files);
                // The init holds its own copies now (or failed).
                drop(idmapped);
                let status = waitpid(middle, None);
                let init_pid = init_pid?;
                match status {
                    Ok(WaitStatus::Exited(_, 0)) => {}
                    other => {
                        return Err(Error::Protocol(format!(
                            "intermediate process ended badly: {other:?}"
                        )))
                    }
                }
                init_pid
            }
        };
        st.pid = init_pid.as_raw();
        st.pid_start_time = state::proc_stat(st.pid).map(|s| s.start_time).unwrap_or(0);
        let hooks = bundle.spec.hooks().as_ref();
        let gated = init::waits_for_runtime_hooks(&bundle.spec);
        // The state (the whole spec in it) is serialized only for hooks.
        let state_json = if gated || init::needs_state(&bundle.spec) {
            serde_json::to_vec(&st.report(crate::state::Status::Creating)).map_err(|source| {
                Error::Encode {
                    what: "container state",
                    source,
                }
            })?
        } else {
            Vec::new()
        };
        if gated {
            for point in [
                crate::hooks::Point::Prestart,
                crate::hooks::Point::CreateRuntime,
            ] {
                crate::hooks::run_all(&crate::hooks::of(hooks, point), point, &state_json)?;
            }
            parent_ch.send(&Message::Continue)?;
        }
        if init::needs_state(&bundle.spec) {
            parent_ch.send(&Message::State(
                String::from_utf8_lossy(&state_json).into_owned(),
            ))?;
        }
        if !self.ready_early {
            parent_ch.expect(&Message::Ready, "container init")?;
        }
        st.creating = false;
        self.dir.record_init(st.pid, st.pid_start_time)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, st.pid)?;
        }
        Ok(st)
    }

    /// The runtime's part of a direct create (see intermediate::direct),
    /// once the cgroups are made: the maps of the init's new user
    /// namespace and the idmapped binds seen through it, then the word the
    /// init waits for, with the cgroups' `tasks` files to join.
    fn start_direct_init(
        &mut self,
        ch: &Channel,
        init: Pid,
        new_user: bool,
        linux: &oci_spec::runtime::Linux,
        idmapped: &crate::rootfs::idmapped::IdmappedBinds,
        join_files: Vec<std::fs::File>,
    ) -> Result<()> {
        // Killed by `cleanup` if anything below fails.
        self.init = Some(init);
        if new_user {
            map_user_namespace(init, linux, idmapped)?;
        }
        send_with_files(ch, &intermediate::direct_word(new_user), &join_files)
    }

    fn talk_to_intermediate(
        &mut self,
        ch: &Channel,
        middle: Pid,
        linux: &oci_spec::runtime::Linux,
        idmapped: &crate::rootfs::idmapped::IdmappedBinds,
        join_files: Vec<std::fs::File>,
    ) -> Result<Pid> {
        let mut join_files = Some(join_files);
        loop {
            match ch.recv()? {
                Some(Message::UserNsReady) => {
                    map_user_namespace(middle, linux, idmapped)?;
                    // With the cgroups' tasks files when the intermediate
                    // joins through them (empty otherwise).
                    let files = join_files.take().unwrap_or_default();
                    send_with_files(ch, &Message::MappingsWritten, &files)?;
                }
                Some(Message::Pid(p)) => {
                    let pid = Pid::from_raw(p);
                    self.init = Some(pid);
                    return Ok(pid);
                }
                Some(Message::Ready) if !self.ready_early => self.ready_early = true,
                Some(Message::Failed(e)) => return Err(Error::Child(e)),
                Some(other) => {
                    return Err(Error::Protocol(format!("unexpected message {other:?}")))
                }
                None => {
                    return Err(Error::Protocol(
                        "intermediate process exited during setup".into(),
                    ))
                }
            }
        }
    }
}

/// Spec features that are not implemented yet are refused, never ignored.
fn refuse_unsupported(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let no = |what: &str| Err(Error::SpecInvalid(format!("{what} is not supported yet")));
    crate::process::lsm::check(spec)?;
    if let Some(l) = spec.linux() {
        if l.intel_rdt().is_some() {
            return no("linux.intelRdt");
        }
        if l.personality().is_some() {
            return no("linux.personality");
        }
    }
    Ok(())
}

/// The spec's `linux` section, or the default one where it has none;
/// borrowed: a copy holds the seccomp rules' few hundred names, and was made
/// twice per create only to be read.
fn linux_of(spec: &oci_spec::runtime::Spec) -> std::borrow::Cow<'_, oci_spec::runtime::Linux> {
    match spec.linux() {
        Some(l) => std::borrow::Cow::Borrowed(l),
        None => std::borrow::Cow::Owned(oci_spec::runtime::Linux::default()),
    }
}

fn time_offsets(linux: &oci_spec::runtime::Linux) -> Vec<String> {
    let mut out = Vec::new();
    for (clock, off) in linux.time_offsets().clone().unwrap_or_default() {
        out.push(format!(
            "{clock} {} {}",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    out
}

/// Writes the maps of `pid`'s new user namespace, then idmaps the binds
/// through it.
fn map_user_namespace(
    pid: Pid,
    linux: &oci_spec::runtime::Linux,
    idmapped: &crate::rootfs::idmapped::IdmappedBinds,
) -> Result<()> {
    write_id_map(pid, "uid_map", linux.uid_mappings().as_deref())?;
    write_id_map(pid, "gid_map", linux.gid_mappings().as_deref())?;
    if !idmapped.is_empty() {
        let path = format!("/proc/{}/ns/user", pid.as_raw());
        let ns = std::fs::File::open(&path).ctx(|| format!("open {path}"))?;
        idmapped.apply(std::os::fd::AsFd::as_fd(&ns))?;
    }
    Ok(())
}

/// Sends `word` with `files` (the cgroups' tasks files to join).
fn send_with_files(ch: &Channel, word: &Message, files: &[std::fs::File]) -> Result<()> {
    let fds: Vec<std::os::fd::RawFd> = files.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    ch.send_with_fds(word, &fds)
}

/// Writes one map file in a single write, as the kernel requires.
fn write_id_map(pid: Pid, file: &str, maps: Option<&[LinuxIdMapping]>) -> Result<()> {
    let maps = maps.unwrap_or_default();
    if maps.is_empty() {
        return Ok(());
    }
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = format!("/proc/{}/{file}", pid.as_raw());
    std::fs::write(&path, text).ctx(|| format!("write {path}"))
}

/// Writes the pid file atomically (clients poll for it).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("write pid file {}", path.display()))
}
