//! The container's init: pid 1 of the container. It finishes the isolation
//! from inside (rootfs, pivot_root, hostname, sysctls, terminal, user), then
//! waits on the exec fifo until `start`, and execs the program.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::bundle::Bundle;
use crate::channel::{Channel, Message};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::process::{console, prepare_exec, reset_signals, Finish};
use crate::rootfs::{self, RootfsPlan};
use crate::syscall::{self, fd_path};

/// What the init is handed by the runtime (through fork, not the channel).
#[derive(Debug)]
pub struct InitArgs<'a> {
    pub bundle: &'a Bundle,
    pub channel: &'a Channel,
    /// Read end of the exec fifo (non-blocking).
    pub fifo: &'a OwnedFd,
    pub console: Option<UnixStream>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    /// See [`RootfsPlan::own_mount_ns`].
    pub own_mount_ns: bool,
    /// See [`crate::CreateOptions::rootfs_mount`].
    pub rootfs_mount: Option<std::os::fd::RawFd>,
    /// See [`crate::CreateOptions::loopback_up`] (only with a network
    /// namespace of the container's own).
    pub loopback_up: bool,
    /// See [`RootfsPlan::idmapped`].
    pub idmapped: &'a [Option<std::os::fd::RawFd>],
    pub new_cgroupns: bool,
    /// See [`RootfsPlan::hierarchies`]; None when the init's mount
    /// namespace is not a copy of the runtime's (a joined one): read there.
    pub hierarchies: Option<&'a [crate::cgroups::v1::Hierarchy]>,
    pub userns: bool,
    /// The container's seccomp filter, compiled before the fork.
    pub seccomp: Option<&'a crate::seccomp::Program>,
}

/// Runs the init; returns only the error that stopped it.
pub fn run(args: InitArgs<'_>) -> Error {
    match setup(args) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn setup(mut a: InitArgs<'_>) -> Result<std::convert::Infallible> {
    reset_signals();
    console::new_session()?;
    if waits_for_runtime_hooks(&a.bundle.spec) {
        a.channel.expect(&Message::Continue, "runtime")?;
    }
    let state = if needs_state(&a.bundle.spec) {
        match a.channel.recv()? {
            Some(Message::State(s)) => s.into_bytes(),
            other => {
                return Err(Error::Protocol(format!(
                    "expected the container state, got {other:?}"
                )))
            }
        }
    } else {
        Vec::new()
    };
    let hooks = a.bundle.spec.hooks().as_ref();
    if a.loopback_up {
        syscall::loopback_up()?;
    }
    if a.new_cgroupns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .ctx(|| "create cgroup namespace".into())?;
    }
    // Modes of created nodes come from the spec, not from our umask.
    nix::sys::stat::umask(Mode::empty());
    let spec: &Spec = &a.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::SpecInvalid("process is missing".into()))?;
    let has = |t: LinuxNamespaceType| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|v| v.iter().any(|n| n.typ() == t))
    };
    let read;
    let hierarchies = match a.hierarchies {
        Some(h) => h,
        None => {
            read = crate::cgroups::v1::host_hierarchies();
            &read
        }
    };
    let plan = RootfsPlan {
        spec,
        rootfs: &a.bundle.rootfs,
        bundle: &a.bundle.path,
        // Rootless, the whole runtime runs in a user namespace: devices,
        // sysfs and mqueue are what they are in a container's own.
        userns: a.userns || saferoot::idmap::in_unprivileged_user_namespace(),
        cgroupns: has(LinuxNamespaceType::Cgroup),
        no_pivot: a.no_pivot,
        own_mount_ns: a.own_mount_ns,
        rootfs_mount: a.rootfs_mount,
        idmapped: a.idmapped,
        hierarchies,
    };
    let prepared = rootfs::prepare(&plan)?;
    // In the container's namespaces, before pivot_root: the hook's path
    // still resolves on the host.
    let point = hooks::Point::CreateContainer;
    hooks::run_all(&hooks::of(hooks, point), point, &state)?;
    create_cwd(&a.bundle.rootfs, process.cwd())?;
    if has(LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname() {
            nix::unistd::sethostname(h).ctx(|| format!("set hostname {h:?}"))?;
        }
        if let Some(d) = spec.domainname() {
            // SAFETY: setdomainname reads `len` bytes from a valid buffer.
            let rc = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
            nix::errno::Errno::result(rc).ctx(|| format!("set domainname {d:?}"))?;
        }
    }
    rootfs::enter(&plan)?;
    if process.terminal().unwrap_or(false) {
        let socket = a
            .console
            .take()
            .ok_or_else(|| Error::SpecInvalid("process.terminal needs a console socket".into()))?;
        let pty = console::create_and_send(&socket, process.console_size().as_ref())?;
        drop(socket);
        bind_console(&pty.slave, &prepared)?;
        console::make_controlling(pty.slave.as_raw_fd())?;
    }
    drop(a.console.take());
    {
        let root = open_root()?;
        crate::sysctl::apply(spec, &prepared, &root)?;
    }
    rootfs::finalize(spec, &prepared)?;
    let exec = prepare_exec(process)?;
    let seccomp = Finish {
        process,
        preserve_fds: a.preserve_fds,
        keep: vec![a.channel.raw_fd(), a.fifo.as_raw_fd()],
        seccomp: a.seccomp,
    }
    .run()?;
    a.channel.send(&Message::Ready)?;
    wait_for_start(a.fifo)?;
    let point = hooks::Point::StartContainer;
    hooks::run_all(&hooks::of(hooks, point), point, &state)?;
    seccomp.load()?;
    if spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(crate::EXEC_SIGNALS_BLOCKED))
        .is_some_and(|v| v == "true")
    {
        // The program unblocks them once it handles them (berth-init):
        // meanwhile they wait instead of being dropped.
        let _ = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_BLOCK,
            Some(&nix::sys::signal::SigSet::all()),
            None,
        );
    }
    let e = crate::process::execve(&exec);
    // After start nobody reads the channel (the caller waits for the
    // process): the failure goes to the container's stderr, in runc's words
    // ("exec /bad: exec format error"), and the init ends with 1, as
    // Docker's containers do.
    if let Error::Execve { program, source } = &e {
        let errno = nix::errno::Errno::from_raw(source.raw_os_error().unwrap_or(0));
        let line = format!("exec {program}: {}\n", crate::error::go_errno(errno));
        let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
    }
    Err(e)
}

/// Whether the init waits for the runtime's `Continue` before it sets up
/// the rootfs: only while the runtime runs the prestart and createRuntime
/// hooks, which must see the namespaces before anything is mounted in
/// them. Without such hooks the init goes on at once, while the runtime
/// reaps the intermediate (about 0.1 ms of a start that nothing waited on).
pub fn waits_for_runtime_hooks(spec: &Spec) -> bool {
    let h = spec.hooks().as_ref();
    !hooks::of(h, hooks::Point::Prestart).is_empty()
        || !hooks::of(h, hooks::Point::CreateRuntime).is_empty()
}

/// Whether the init runs hooks and so needs the container's state.
pub fn needs_state(spec: &Spec) -> bool {
    let h = spec.hooks().as_ref();
    !hooks::of(h, hooks::Point::CreateContainer).is_empty()
        || !hooks::of(h, hooks::Point::StartContainer).is_empty()
}

/// Blocks until `start` writes its byte into the exec fifo.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(fifo),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).ctx(|| "wait on exec fifo".into()),
        }
        let mut byte = [0u8; 1];
        match nix::unistd::read(fifo.as_raw_fd(), &mut byte) {
            Ok(1) => return Ok(()),
            // A writer that closed without writing: keep waiting, without
            // spinning on the hang-up poll now reports.
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).ctx(|| "read exec fifo".into()),
        }
    }
}

/// runc creates a missing working directory; so do we, inside the root.
fn create_cwd(rootfs: &Path, cwd: &Path) -> Result<()> {
    let fd = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", rootfs.display()))?;
    // SAFETY: fresh descriptor from open.
    let root = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    let r = syscall::mkdir_all_in_root(&root, cwd)
        .map(drop)
        .map_err(|e| Error::Cwd {
            path: cwd.to_path_buf(),
            source: Box::new(e),
        });
    nix::sys::stat::umask(old);
    r
}

/// Makes /dev/console the pty slave, as a container with a terminal expects.
/// The bind lands on a regular file in the container's /dev (a symlink
/// there is replaced, and /dev itself must not resolve into /proc or /sys):
/// otherwise an image could point it at a procfs file (CVE-2025-52565).
fn bind_console(slave: &OwnedFd, prepared: &rootfs::Prepared) -> Result<()> {
    let root = open_root()?;
    // The bind goes through /proc/self/fd: /proc must be the runtime's.
    rootfs::guard::ProcFs::open(&root, prepared.proc_mount_id).map_err(|e| Error::ProcFs {
        what: "a terminal needs the container's procfs".into(),
        reason: e.to_string(),
    })?;
    let dev = syscall::mkdir_all_in_root(&root, Path::new("/dev"))?;
    rootfs::guard::check_outside_kernel_trees(&root, &dev, "/dev/console")?;
    let target = rootfs::guard::file_target(&dev, "console", "/dev/console")?;
    mount(
        Some(fd_path(slave).as_str()),
        fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| "bind pty on /dev/console".into())
}

/// The current root (the container's, after pivot_root) as a descriptor.
fn open_root() -> Result<OwnedFd> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /".into())?;
    // SAFETY: fresh descriptor from open.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(root) })
}
