//! The embedded resolver of a user network: DNS for its members' names,
//! aliases and ids, everything else forwarded to the host's resolvers.
//!
//! Docker answers at 127.0.0.11 inside each container, from its daemon.
//! berth has no daemon, so each user network gets one small process
//! (`berth __dns ROOT RUNROOT NETWORK_ID GATEWAY SUBNET`) while it has running members:
//! started by the first member's start (or a later one's, or `system
//! check`, if it died), ended by the last member's exit or the network's
//! removal (and by itself within a second when it finds nothing to serve,
//! its root gone, say). It listens on the
//! bridge's gateway address, port 53 (UDP and TCP), in the host's network
//! namespace: one socket per network, nothing to enter per container, and
//! the gateway is the address every member already routes to. The nft
//! table lets only the network's own subnet reach it (see nft.rs), and
//! the resolver itself answers only sources that hold a lease on its
//! network.
//!
//! Answers come from the database at each query: a container that left is
//! not answered for from the moment its lease row is gone, without a
//! cache to invalidate. Names are those of the asking container's
//! networks (as docker's: a container on two networks resolves the
//! members of both), with the peer's address on the shared network.
//!
//! Two lock files per network under RUNROOT/dns: `ID.live`, held by the
//! resolver for its whole life (a starter that can take it knows none
//! runs), and `ID.start`, held by a starter while it checks and spawns and
//! by the resolver while it decides to end. So a member that joins while
//! the resolver is deciding to end is either seen by it (it stays) or
//! finds it gone (and starts another).
//!
//! Its diagnostics (an upstream that does not answer, a database it cannot
//! read) are `tracing` events; the binary writes them to `ID.log` beside
//! the locks ([`log_path`]), since a detached resolver has no stderr.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use rusqlite::{params, Connection, OpenFlags};

use crate::dns::{self, ParseError, Query, Rcode, Record};
use crate::{Context, Error, Network, Result};

/// The hidden first argument with which the `berth` binary runs [`main`].
pub const RESOLVER_ARG: &str = "__dns";

/// Replaces the host's resolvers as the upstreams of every embedded
/// resolver a command starts: `IP[:PORT]`, comma-separated (as dockerd's
/// `--dns` does for its embedded DNS).
pub const UPSTREAM_ENV: &str = "BERTH_DNS_UPSTREAM";

/// TTL of local answers: short, since members come and go.
const TTL: u32 = 10;
/// How long one upstream gets to answer.
const UPSTREAM_DEADLINE: Duration = Duration::from_secs(2);
/// How long a TCP client may stay idle.
const TCP_IDLE: Duration = Duration::from_secs(5);
/// How often the resolver checks whether its network still has members.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Forwarded queries and TCP connections in flight at once; more are
/// dropped (the client retries), so a flood cannot exhaust threads.
const MAX_IN_FLIGHT: usize = 128;
/// How long a starter waits for the start lock, and a new resolver for
/// the port an ending one still holds.
const LOCK_DEADLINE: Duration = Duration::from_secs(5);
const BIND_DEADLINE: Duration = Duration::from_secs(3);

fn dir(runroot: &Path) -> PathBuf {
    runroot.join("dns")
}

/// Where the resolver of network `network_id` logs: RUNROOT/dns/ID.log.
pub fn log_path(runroot: &Path, network_id: &str) -> PathBuf {
    dir(runroot).join(format!("{network_id}.log"))
}

/// [`log_path`] for the resolver `berth __dns ROOT RUNROOT NETWORK_ID ...`
/// runs with these arguments (those after `__dns`); `None` when they are
/// not a resolver's.
pub fn log_path_of(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    match args {
        [_root, runroot, network_id, _gateway, _subnet]
        | [_root, runroot, network_id, _gateway, _subnet, _] => {
            Some(log_path(Path::new(runroot), &network_id.to_string_lossy()))
        }
        _ => None,
    }
}

/// Removes what the resolver of a removed network leaves: its log and its
/// two lock files. Safe once the network's row is gone: nothing starts a
/// resolver for it any more, and one still ending holds its locks by
/// descriptor, which an unlink does not take away.
pub fn forget(runroot: &Path, network_id: &str) {
    let files = [
        log_path(runroot, network_id),
        lock_path(runroot, network_id, "live"),
        lock_path(runroot, network_id, "start"),
    ];
    for f in files {
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("remove {}: {e}", f.display()),
        }
    }
}

fn lock_path(runroot: &Path, network_id: &str, kind: &str) -> PathBuf {
    dir(runroot).join(format!("{network_id}.{kind}"))
}

fn open_lock(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx(|| format!("open {}", path.display()))
}

fn try_lock(path: &Path) -> Result<Option<Flock<std::fs::File>>> {
    let f = open_lock(path)?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Error::Io {
            context: format!("lock {}", path.display()),
            source: e.into(),
        }),
    }
}

/// The lock, waited for up to [`LOCK_DEADLINE`].
fn lock_with_deadline(path: &Path) -> Result<Flock<std::fs::File>> {
    let end = Instant::now() + LOCK_DEADLINE;
    loop {
        if let Some(l) = try_lock(path)? {
            return Ok(l);
        }
        if Instant::now() > end {
            return Err(Error::Resolver(format!(
                "timed out waiting for {}",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the network's resolver runs now.
pub fn running(runroot: &Path, network_id: &str) -> bool {
    matches!(try_lock(&lock_path(runroot, network_id, "live")), Ok(None))
}

/// Makes sure the network's resolver runs: starts it (from `exe`, the
/// berth binary) unless one does. Returns once its port is bound (queries
/// sent from then on wait in the socket for it), or with why it cannot be
/// (the port taken by another program on the host, for one).
///
/// The caller binds the sockets and takes the resolver's `live` lock
/// itself, and hands the three descriptors to a detached child (a double
/// fork: nothing to reap) that executes the resolver: what a member's
/// start waits for is two binds and two forks, not the resolver's
/// execution (which was most of a first member's network attach).
pub fn ensure(exe: &Path, root: &Path, runroot: &Path, net: &Network) -> Result<()> {
    let d = dir(runroot);
    std::fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
    let _start = lock_with_deadline(&lock_path(runroot, &net.id, "start"))?;
    let live_path = lock_path(runroot, &net.id, "live");
    let live = open_lock(&live_path)?;
    // Not nix's Flock: its drop would unlock the lock the resolver inherits
    // (a lock belongs to the open file, which both descriptors share).
    // SAFETY: flock(2) on a descriptor `live` owns for the call.
    if unsafe { libc::flock(live.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            // One runs.
            return Ok(());
        }
        return Err(e).ctx(|| format!("lock {}", live_path.display()));
    }
    let failed =
        |e: String| Error::Resolver(format!("start the resolver of network {}: {e}", net.name));
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let env = std::env::var(UPSTREAM_ENV).ok();
    upstreams(&host_resolv, env.as_deref(), &[net.gateway]).map_err(failed)?;
    let addr = SocketAddrV4::new(net.gateway, 53);
    let (udp, tcp) = crate::netns::run_in(|| bind_both(addr).map_err(std::io::Error::other))
        .map_err(|e| failed(e.to_string()))?;
    let args = [
        exe.as_os_str(),
        std::ffi::OsStr::new(RESOLVER_ARG),
        root.as_os_str(),
        runroot.as_os_str(),
        std::ffi::OsStr::new(&net.id),
        std::ffi::OsStr::new(&net.gateway.to_string()),
        std::ffi::OsStr::new(&net.subnet.to_string()),
        std::ffi::OsStr::new(INHERITED_ARG),
    ]
    .iter()
    .map(|a| std::ffi::CString::new(a.as_encoded_bytes()))
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|_| failed("an argument holds a NUL byte".into()))?;
    spawn_detached(
        &args,
        [live.as_raw_fd(), udp.as_raw_fd(), tcp.as_raw_fd()],
        crate::netns::raw_fd(),
    )
    .map_err(|e| failed(e.to_string()))?;
    // Our copies close here; the lock stays, held by the resolver's copy.
    Ok(())
}

/// The last argument of a resolver started by [`ensure`]: its live lock
/// (held), UDP socket and TCP listener are descriptors 3, 4 and 5.
const INHERITED_ARG: &str = "--inherited";

/// Executes `args` in a grandchild that keeps `fds` as descriptors 3, 4
/// and 5, in its own session (and in the network namespace `netns`, when
/// given); returns once the child between has ended. The children only
/// make async-signal-safe calls: everything is prepared before the fork.
fn spawn_detached(
    args: &[std::ffi::CString],
    fds: [std::os::fd::RawFd; 3],
    netns: Option<std::os::fd::RawFd>,
) -> std::io::Result<()> {
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let null = c"/dev/null";
    // SAFETY: the child makes only async-signal-safe system calls on
    // memory prepared above (argv, the descriptors) and leaves with _exit
    // or execv: no lock of another thread's, no allocation, no destructor.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // SAFETY: as above; the first child only forks again and
            // leaves, so the grandchild is nobody's child to reap.
            unsafe {
                if libc::fork() != 0 {
                    libc::_exit(0);
                }
                libc::setsid();
                if let Some(ns) = netns {
                    if libc::setns(ns, libc::CLONE_NEWNET) != 0 {
                        libc::_exit(126);
                    }
                }
                // Above every target first, so no dup2 below overwrites a
                // source it still needs.
                let mut high = [0; 3];
                for (h, fd) in high.iter_mut().zip(fds) {
                    *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                    if *h < 0 {
                        libc::_exit(126);
                    }
                }
                for (i, h) in (3..).zip(high) {
                    // dup2 clears close-on-exec on the target.
                    if libc::dup2(h, i) < 0 {
                        libc::_exit(126);
                    }
                }
                let devnull = libc::open(null.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                if devnull >= 0 {
                    for i in 0..3 {
                        libc::dup2(devnull, i);
                    }
                }
                libc::execv(argv[0], argv.as_ptr());
                libc::_exit(127)
            }
        }
        child => {
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None)?;
            match status {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                other => Err(std::io::Error::other(format!(
                    "the detaching child ended with {other:?}"
                ))),
            }
        }
    }
}

/// Ends the network's resolver now if `idle` (asked under the start lock,
/// so no member joins meanwhile) says nothing is left for it to serve: the
/// last member's exit or the network's removal leaves no process behind
/// (it would otherwise end by itself within a second). Waits until it is
/// gone.
pub fn stop_if_idle(runroot: &Path, network_id: &str, idle: impl Fn() -> bool) -> Result<()> {
    if !running(runroot, network_id) {
        return Ok(());
    }
    let _start = lock_with_deadline(&lock_path(runroot, network_id, "start"))?;
    if !idle() {
        return Ok(());
    }
    let live = lock_path(runroot, network_id, "live");
    let end = Instant::now() + LOCK_DEADLINE;
    // A resolver ensure() just started holds the live lock before it has
    // executed and written its pid there: wait for that, while it runs.
    let pid = loop {
        let pid = std::fs::read_to_string(&live)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&p| p > 1);
        // The pid is the resolver's only while its cmdline says so (a pid
        // reused after it died is someone else's).
        let ours = pid.filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|&b| b == 0).collect();
                args.get(1) == Some(&RESOLVER_ARG.as_bytes())
                    && args.get(4) == Some(&network_id.as_bytes())
            })
        });
        match ours {
            Some(pid) => break pid,
            None if !running(runroot, network_id) => return Ok(()),
            None if Instant::now() > end => {
                return Err(Error::Resolver(format!(
                    "the resolver of network {network_id} holds its lock but never said its pid"
                )))
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    while running(runroot, network_id) {
        if Instant::now() > end {
            return Err(Error::Resolver(format!(
                "the resolver of network {network_id} (pid {pid}) did not end"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Upstream servers: `env` (from [`UPSTREAM_ENV`]) if set, else the
/// nameservers of the host's resolv.conf. The resolver runs in the host's
/// namespace, so loopback ones (systemd-resolved's 127.0.0.53) are
/// reachable and kept. `ours` (addresses of berth's own resolvers) are left
/// out: forwarding to one would loop.
pub fn upstreams(
    resolv_conf: &str,
    env: Option<&str>,
    ours: &[Ipv4Addr],
) -> std::result::Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    if let Some(list) = env.filter(|e| !e.trim().is_empty()) {
        for item in list.split(',').map(str::trim) {
            let addr = item
                .parse::<SocketAddr>()
                .or_else(|_| {
                    item.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    format!("{UPSTREAM_ENV}: {item:?} is not an address or address:port")
                })?;
            out.push(addr);
        }
        return Ok(out);
    }
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        if let Some(ip) = words
            .next()
            .and_then(|w| w.parse::<std::net::IpAddr>().ok())
        {
            if !matches!(ip, std::net::IpAddr::V4(v4) if ours.contains(&v4)) {
                out.push(SocketAddr::new(ip, 53));
            }
        }
    }
    Ok(out)
}

fn db_identity(root: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(root.join("berth.db")).ok()?;
    Some((m.dev(), m.ino()))
}

fn open_db(root: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(
        root.join("berth.db"),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(2))?;
    Ok(c)
}

/// A member as the asking container sees it.
struct Peer {
    id: String,
    ip: Ipv4Addr,
    names: Vec<String>,
    network: String,
}

/// The running resolver's state, shared by its threads.
struct Resolver {
    db: Mutex<Connection>,
    /// The database file's device and inode: a root deleted (a test's
    /// temporary store) or made anew leaves nothing to serve.
    db_file: Option<(u64, u64)>,
    root: PathBuf,
    network_id: String,
    subnet: crate::Subnet,
    upstreams: Vec<SocketAddr>,
    in_flight: AtomicUsize,
}

/// What to do with one message.
enum Outcome {
    Reply(Vec<u8>),
    Forward(Query),
    Ignore,
}

impl Resolver {
    /// The members of every user network the container at `src` (on our
    /// network) is on; empty when `src` holds no lease here.
    fn scope(&self, src: Ipv4Addr) -> Vec<Peer> {
        let Ok(db) = self.db.lock() else {
            return Vec::new();
        };
        let rows = db
            .prepare_cached(
                "SELECT l.container_id, l.ip, l.names, n.name FROM network_leases l \
                 JOIN networks n ON n.id = l.network_id \
                 WHERE n.name != ?3 AND l.network_id IN (SELECT network_id FROM network_leases \
                 WHERE container_id = (SELECT container_id FROM network_leases \
                 WHERE network_id = ?1 AND ip = ?2))",
            )
            .and_then(|mut s| {
                s.query_map(
                    params![self.network_id, src.to_string(), crate::store::DEFAULT_NAME],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| {
                // Answered as a stranger (REFUSED) this once.
                tracing::warn!("read the members for {src}: {e}");
                Vec::new()
            });
        rows.into_iter()
            .filter_map(|(id, ip, names, network)| {
                Some(Peer {
                    id,
                    ip: ip.parse().ok()?,
                    names: serde_json::from_str(&names).unwrap_or_default(),
                    network,
                })
            })
            // A lease with no names is a held start's: not answered for
            // (by name, id or address) until its program runs.
            .filter(|p| !p.names.is_empty())
            .collect()
    }

    fn members(&self) -> Option<i64> {
        let db = self.db.lock().ok()?;
        let n = db.query_row(
            "SELECT (SELECT COUNT(*) FROM networks WHERE id = ?1), \
             (SELECT COUNT(*) FROM network_leases WHERE network_id = ?1)",
            params![self.network_id],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        );
        match n {
            Ok((0, _)) => Some(0),
            Ok((_, n)) => Some(n),
            Err(e) => {
                // Asked again at the next check.
                tracing::warn!("count the network's members: {e}");
                None
            }
        }
    }

    fn handle(&self, msg: &[u8], src: Ipv4Addr) -> Outcome {
        let q = match dns::parse_query(msg) {
            Ok(q) => q,
            Err(ParseError::Malformed { id, flags, rcode }) => {
                return Outcome::Reply(dns::error_reply(id, flags, rcode))
            }
            Err(_) => return Outcome::Ignore,
        };
        // The nft rules keep other sources out; this holds without them.
        let peers = if self.subnet.contains(src) {
            self.scope(src)
        } else {
            Vec::new()
        };
        if peers.is_empty() {
            return Outcome::Reply(dns::answer(msg, &q, Rcode::Refused, &[], 0));
        }
        if q.qclass != dns::CLASS_IN {
            return Outcome::Forward(q);
        }
        if q.qtype == dns::TYPE_PTR {
            if let Some(ip) = dns::reverse_v4(&q.name) {
                if let Some(p) = peers.iter().find(|p| p.ip == ip) {
                    let name = p.names.first().map_or(p.id.as_str(), String::as_str);
                    let rec = Record::Ptr(format!("{name}.{}", p.network));
                    return Outcome::Reply(dns::answer(msg, &q, Rcode::NoError, &[rec], TTL));
                }
            }
            return Outcome::Forward(q);
        }
        let mut found: Vec<Ipv4Addr> = Vec::new();
        for p in &peers {
            // `name` and `name.network`, as docker answers.
            let name = q
                .name
                .strip_suffix(&format!(".{}", p.network.to_ascii_lowercase()))
                .unwrap_or(&q.name);
            let hit = p.id == name || p.names.iter().any(|n| n.eq_ignore_ascii_case(name));
            if hit && !found.contains(&p.ip) {
                found.push(p.ip);
            }
        }
        if found.is_empty() {
            return Outcome::Forward(q);
        }
        // A member's name asked for another type (AAAA): it exists, with
        // no such record (NODATA), so the client does not search further.
        let records: Vec<Record> = if q.qtype == dns::TYPE_A {
            found.into_iter().map(Record::A).collect()
        } else {
            Vec::new()
        };
        Outcome::Reply(dns::answer(msg, &q, Rcode::NoError, &records, TTL))
    }

    /// The upstreams' answer to `msg`, or SERVFAIL when none answers in
    /// time.
    fn forward(&self, msg: &[u8], q: &Query) -> Vec<u8> {
        let mut why = Vec::new();
        for up in &self.upstreams {
            match ask_upstream(msg, *up) {
                Ok(reply) => return reply,
                Err(e) => why.push(format!("{up}: {e}")),
            }
        }
        tracing::warn!(
            "no upstream answered for {:?} (SERVFAIL): {}",
            q.name,
            if why.is_empty() {
                "no upstream servers".to_string()
            } else {
                why.join("; ")
            }
        );
        dns::answer(msg, q, Rcode::ServFail, &[], 0)
    }

    fn enter(&self) -> bool {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One UDP exchange with an upstream, within [`UPSTREAM_DEADLINE`]; the
/// reply must come from it and carry the query's id. The error says why
/// it did not answer, for the log.
fn ask_upstream(msg: &[u8], up: SocketAddr) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if up.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(up)?;
    s.send(msg)?;
    let end = Instant::now() + UPSTREAM_DEADLINE;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = end
            .checked_duration_since(Instant::now())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        // An error (refused: nothing listens there; timed out) ends this
        // upstream's turn.
        let n = s.recv(&mut buf)?;
        let reply = &buf[..n];
        if dns::id_of(reply) == dns::id_of(msg) && n >= 12 {
            return Ok(reply.to_vec());
        }
    }
}

/// `berth __dns ROOT RUNROOT NETWORK_ID GATEWAY SUBNET`: binds the network's port,
/// detaches (the starter's wait ends: the resolver answers), then serves
/// until the network has no members. What went wrong before detaching is
/// returned; the binary prints it on stderr, for the starter.
pub fn main(args: &[std::ffi::OsString]) -> Result<()> {
    let (args, inherited) = match args {
        [rest @ .., last] if last == INHERITED_ARG => (rest, true),
        _ => (args, false),
    };
    let [root, runroot, network_id, gateway, subnet] = args else {
        return Err(Error::Usage(
            "usage: berth __dns ROOT RUNROOT NETWORK_ID GATEWAY SUBNET [--inherited]".into(),
        ));
    };
    // The network as the starter read it: the database is opened only
    // after the fork, by the process that keeps it.
    let gateway: Ipv4Addr = gateway
        .to_string_lossy()
        .parse()
        .map_err(|_| Error::Usage(format!("bad gateway {gateway:?}")))?;
    let subnet = crate::Subnet::parse(&subnet.to_string_lossy()).map_err(Error::Usage)?;
    // Only what it opens itself: a descriptor inherited from the
    // starter (a monitor's pipes, the container's report pipe) held for
    // the resolver's life would keep their readers from ever seeing EOF.
    // Started by ensure(): 3, 4 and 5 are ours (the live lock, held, and
    // the bound sockets).
    let first_foreign: u32 = if inherited { 6 } else { 3 };
    // SAFETY: close_range acts on this process's descriptors only, and no
    // Rust object owns any at or above `first_foreign` yet.
    unsafe { libc::syscall(libc::SYS_close_range, first_foreign, u32::MAX, 0u32) };
    let (root, runroot) = (Path::new(root), Path::new(runroot));
    let network_id = network_id.to_string_lossy().into_owned();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let env = std::env::var(UPSTREAM_ENV).ok();
    let ups = upstreams(&host_resolv, env.as_deref(), &[gateway]).map_err(Error::Resolver)?;
    let addr = SocketAddrV4::new(gateway, 53);
    let (live, udp, tcp) = if inherited {
        // SAFETY: ensure() put these three descriptors here for us, open;
        // nothing else in this process owns them.
        unsafe {
            use std::os::fd::FromRawFd;
            (
                std::fs::File::from_raw_fd(3),
                UdpSocket::from_raw_fd(4),
                TcpListener::from_raw_fd(5),
            )
        }
    } else {
        // By hand (`berth __dns ...` without --inherited): as ensure()
        // would, in this process.
        let Some(live) = try_lock(&lock_path(runroot, &network_id, "live"))? else {
            // Another one serves.
            return Ok(());
        };
        let (udp, tcp) = bind_both(addr)?;
        // SAFETY: single-threaded here (no thread was started yet), so the
        // child may run anything; the parent only exits.
        match unsafe { nix::unistd::fork() }
            .map_err(std::io::Error::from)
            .ctx(|| "fork".into())?
        {
            nix::unistd::ForkResult::Parent { .. } => {
                // SAFETY: _exit skips destructors: the locks and sockets
                // stay the child's.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Child => {}
        }
        let _ = nix::unistd::setsid();
        detach_stdio();
        // A second descriptor of the locked file (a lock belongs to the
        // open file, not the descriptor); the first is never closed, so
        // nothing unlocks it before the resolver ends.
        let file = live.try_clone().ctx(|| "keep the live lock".into())?;
        std::mem::forget(live);
        (file, udp, tcp)
    };
    tracing::debug!("serving network {network_id} on {addr}");
    // Who to signal when the last member leaves (stop_if_idle).
    {
        let mut f: &std::fs::File = &live;
        let _ = f.set_len(0);
        let _ = f.write_all(format!("{}\n", std::process::id()).as_bytes());
    }
    // From here on nobody reads our stderr: the binary logs what this
    // returns.
    let db = open_db(root)?;
    let resolver = Arc::new(Resolver {
        db_file: db_identity(root),
        root: root.to_path_buf(),
        db: Mutex::new(db),
        network_id: network_id.clone(),
        subnet,
        upstreams: ups,
        in_flight: AtomicUsize::new(0),
    });
    {
        let r = Arc::clone(&resolver);
        std::thread::spawn(move || serve_tcp(&r, &tcp));
    }
    serve_udp(&resolver, &udp, runroot);
    tracing::debug!("network {network_id} has no members left: ending");
    drop(live);
    Ok(())
}

/// UDP and TCP on the same address; retried for a while when the port is
/// taken, which it is while a resolver of a removed network with the same
/// gateway is ending.
fn bind_both(addr: SocketAddrV4) -> Result<(UdpSocket, TcpListener)> {
    let end = Instant::now() + BIND_DEADLINE;
    loop {
        let r = UdpSocket::bind(addr).and_then(|u| Ok((u, TcpListener::bind(addr)?)));
        match r {
            Ok(both) => return Ok(both),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).ctx(|| format!("listen on {addr}")),
        }
    }
}

fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this
            // process owns; the old ones (the starter's pipe) are closed.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn serve_udp(r: &Arc<Resolver>, udp: &UdpSocket, runroot: &Path) {
    let _ = udp.set_read_timeout(Some(IDLE_CHECK));
    let mut buf = vec![0u8; 4096];
    let mut last_check = Instant::now();
    loop {
        if last_check.elapsed() >= IDLE_CHECK {
            last_check = Instant::now();
            if should_end(r, runroot) {
                return;
            }
        }
        let (n, from) = match udp.recv_from(&mut buf) {
            Ok(x) => x,
            // The idle check's timeout.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!("receive a query: {e}");
                continue;
            }
        };
        let SocketAddr::V4(from) = from else { continue };
        let msg = &buf[..n];
        match r.handle(msg, *from.ip()) {
            Outcome::Reply(reply) => {
                if let Err(e) = udp.send_to(&reply, from) {
                    tracing::debug!("answer {from}: {e}");
                }
            }
            Outcome::Ignore => {}
            Outcome::Forward(q) => {
                if !r.enter() {
                    continue;
                }
                let (r2, msg, sock) = (Arc::clone(r), msg.to_vec(), udp.try_clone());
                std::thread::spawn(move || {
                    let reply = r2.forward(&msg, &q);
                    match sock.and_then(|s| s.send_to(&reply, from)) {
                        Ok(_) => {}
                        Err(e) => tracing::debug!("answer {from}: {e}"),
                    }
                    r2.leave();
                });
            }
        }
    }
}

/// Whether the network has no members left (or is gone): then the
/// resolver ends, deciding under the start lock (see the module's doc).
fn should_end(r: &Resolver, runroot: &Path) -> bool {
    if db_identity(&r.root) != r.db_file {
        return true;
    }
    if r.members().is_none_or(|n| n > 0) {
        return false;
    }
    // Held until the process exits, which releases it.
    match lock_with_deadline(&lock_path(runroot, &r.network_id, "start")) {
        Ok(l) => {
            if r.members() == Some(0) {
                // Ends now, with the lock (kept until the process exits,
                // which serve_udp's return leads to at once): the next
                // starter finds the port free and no live resolver.
                std::mem::forget(l);
                return true;
            }
            drop(l);
            false
        }
        Err(_) => false,
    }
}

fn serve_tcp(r: &Arc<Resolver>, tcp: &TcpListener) {
    for conn in tcp.incoming() {
        let Ok(conn) = conn else { continue };
        if !r.enter() {
            continue;
        }
        let r2 = Arc::clone(r);
        std::thread::spawn(move || {
            if let Err(e) = serve_tcp_client(&r2, conn) {
                // A client that closes or idles ends this way too.
                tracing::debug!("a TCP client: {e}");
            }
            r2.leave();
        });
    }
}

/// Length-prefixed messages (RFC 1035 4.2.2) until the client closes or
/// idles past [`TCP_IDLE`].
fn serve_tcp_client(r: &Resolver, mut conn: TcpStream) -> std::io::Result<()> {
    let SocketAddr::V4(peer) = conn.peer_addr()? else {
        return Ok(());
    };
    conn.set_read_timeout(Some(TCP_IDLE))?;
    conn.set_write_timeout(Some(TCP_IDLE))?;
    loop {
        let mut len = [0u8; 2];
        conn.read_exact(&mut len)?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        conn.read_exact(&mut msg)?;
        let reply = match r.handle(&msg, *peer.ip()) {
            Outcome::Reply(reply) => reply,
            Outcome::Forward(q) => r.forward(&msg, &q),
            Outcome::Ignore => return Ok(()),
        };
        let n = u16::try_from(reply.len()).unwrap_or(u16::MAX);
        conn.write_all(&n.to_be_bytes())?;
        conn.write_all(&reply[..usize::from(n)])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_from_the_host_or_the_environment() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver 10.199.0.1\nnameserver ::1\n";
        let ours = [Ipv4Addr::new(10, 199, 0, 1)];
        let u = upstreams(host, None, &ours).unwrap();
        assert_eq!(
            u,
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        let u = upstreams(host, Some("127.0.0.1:5353, 192.0.2.1"), &ours).unwrap();
        assert_eq!(
            u,
            vec![
                "127.0.0.1:5353".parse::<SocketAddr>().unwrap(),
                "192.0.2.1:53".parse().unwrap()
            ]
        );
        assert!(upstreams(host, Some("nonsense"), &ours).is_err());
    }
}
