//! Published ports of a rootless container on a user network: a small
//! forwarder process per container (`berth __rootless-ports`), which
//! listens on the host's sockets and, for each connection, dials the
//! container's address inside the rootless network namespace
//! (rootless_netns.rs) and copies both ways.
//!
//! Why not nft DNAT behind the uplink's pasta, as root's ports are on the
//! host: pasta's forwards are fixed when it starts (Debian 12's has no way
//! to add one later), and the uplink is shared by every container of the
//! user, so a new `-p` would mean restarting it and cutting every
//! container's connections. A second pasta per container on the same
//! namespace forwards only loopback clients (it splices them), having no
//! configured interface for the others. A forwarder of our own binds what
//! `-p` asks on the host, any address, and lives exactly as long as its
//! container (podman's rootlessport does the same for its rootless
//! bridges). What it costs: the container sees the connections come from
//! its network's gateway, not the client (as with Docker's userland
//! proxy). UDP is forwarded per client: each client address gets a socket
//! of its own in the namespace, connected to the container, whose replies
//! go back to that client, until it is idle for [`UDP_IDLE`].
//!
//! The forwarder binds every port before it goes to the background, so a
//! port in use fails the container's start with Docker's words.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_network::{PortMapping, Proto};

use crate::error::{Error, Result};

/// berth re-executed as a container's forwarder.
pub const FORWARD_ARG: &str = "__rootless-ports";

/// The forwarder's pid and log, in the container's directory.
const PID_FILE: &str = "ports.pid";
const LOG_FILE: &str = "ports.log";

/// How long the forwarder may take to bind its ports and go to the
/// background, and a connection to the container to be accepted.
const START_DEADLINE: Duration = Duration::from_secs(10);
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How long a UDP client's flow lives without a datagram either way (as
/// conntrack's default for UDP streams is minutes, unreplied ones 30 s).
const UDP_IDLE: Duration = Duration::from_secs(60);
/// Clients with a UDP flow at once per port; datagrams of more are dropped
/// (so a flood of source addresses cannot exhaust threads and sockets).
const UDP_MAX_FLOWS: usize = 256;

/// One forward on the command line: `PROTO:HOSTIP:HOSTPORT:CTRIP:CTRPORT`.
fn spec_arg(m: &PortMapping) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        m.proto.as_str(),
        m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        m.host_port,
        m.container_ip,
        m.container_port
    )
}

fn parse_spec(s: &str) -> Option<(Proto, SocketAddrV4, SocketAddrV4)> {
    let f: Vec<&str> = s.split(':').collect();
    let [proto, hip, hport, cip, cport] = f.as_slice() else {
        return None;
    };
    Some((
        Proto::parse(proto)?,
        SocketAddrV4::new(hip.parse().ok()?, hport.parse().ok()?),
        SocketAddrV4::new(cip.parse().ok()?, cport.parse().ok()?),
    ))
}

/// Starts the forwarder of the container whose directory is `dir` (from
/// `exe`, the berth binary), for `ports` into the namespace at `netns`.
/// Called in the host's network namespace: the forwarder's sockets are
/// bound where it starts.
pub fn start(exe: &Path, netns: &Path, dir: &Path, ports: &[PortMapping]) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let log = dir.join(LOG_FILE);
    let log_file = File::create(&log)
        .map_err(|e| Error::Rootless(format!("create {}: {e}", log.display())))?;
    let mut child = Command::new(exe)
        .arg(FORWARD_ARG)
        .arg(netns)
        .arg(dir)
        .args(ports.iter().map(spec_arg))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| Error::Rootless(format!("run {}: {e}", exe.display())))?;
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Rootless(format!(
                    "the port forwarder did not start within {}s",
                    START_DEADLINE.as_secs()
                )));
            }
            Err(e) => return Err(Error::Rootless(format!("wait for the port forwarder: {e}"))),
        }
    }
    // The first process has ended; the one in the background let go of the
    // pipe before that process answered, so this read ends.
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut said);
    }
    let said = said.trim();
    if let Some(pid) = said.strip_prefix("ok ") {
        let pid_file = dir.join(PID_FILE);
        return std::fs::write(&pid_file, pid)
            .map_err(|e| Error::Rootless(format!("write {}: {e}", pid_file.display())));
    }
    if let Some(addr) = said.strip_prefix("in-use ") {
        return Err(berth_network::Error::PortInUse(addr.to_string()).into());
    }
    Err(Error::Rootless(format!(
        "the port forwarder failed: {}",
        said.strip_prefix("error ").unwrap_or(said)
    )))
}

/// Ends the container's forwarder, if it runs.
pub fn stop(dir: &Path) {
    let pid_file = dir.join(PID_FILE);
    let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    // The pid is the forwarder's only while its command line says so
    // (the file outlives the process).
    let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        args.get(1) == Some(&FORWARD_ARG.as_bytes())
            && args.get(3) == Some(&dir.as_os_str().as_encoded_bytes())
    });
    if ours {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_file(pid_file);
}

/// berth re-executed as a forwarder: `Some(exit code)` when `args` ask for
/// it (`__rootless-ports NETNS DIR SPEC...`). Answers its starter on
/// stdout, one line: `ok PID` once every port is bound and the process
/// that serves them runs, `in-use ADDR` or `error WHY` otherwise.
pub fn serve_if_asked(args: &[std::ffi::OsString]) -> Option<u8> {
    if args.get(1).is_none_or(|a| a != FORWARD_ARG) {
        return None;
    }
    let mut out = std::io::stdout();
    Some(match forwarder_main(&args[2..], &mut out) {
        Ok(()) => 0,
        Err(words) => {
            let _ = writeln!(out, "{words}");
            1
        }
    })
}

fn forwarder_main(
    args: &[std::ffi::OsString],
    out: &mut std::io::Stdout,
) -> std::result::Result<(), String> {
    let [netns, _dir, specs @ ..] = args else {
        return Err("error usage: NETNS DIR HOSTIP:HOSTPORT:CTRIP:CTRPORT...".into());
    };
    let ns =
        File::open(netns).map_err(|e| format!("error open {}: {e}", netns.to_string_lossy()))?;
    let mut forwards = Vec::new();
    for s in specs {
        let s = s.to_string_lossy();
        let (proto, host, ctr) =
            parse_spec(&s).ok_or_else(|| format!("error bad forward {s:?}"))?;
        let bound = match proto {
            Proto::Tcp => TcpListener::bind(host).map(Listener::Tcp),
            Proto::Udp => UdpSocket::bind(host).map(Listener::Udp),
        };
        let l = bound.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                format!("in-use {host}")
            } else {
                format!("error bind {host}/{}: {e}", proto.as_str())
            }
        })?;
        forwards.push((l, SocketAddr::V4(ctr)));
    }
    // SAFETY: the process has one thread (nothing was spawned yet); the
    // child goes on with plain Rust, as a process of its own.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("error fork: {e}"))? {
        nix::unistd::ForkResult::Parent { child } => {
            writeln!(out, "ok {child}").map_err(|e| format!("error answer: {e}"))?;
            Ok(())
        }
        nix::unistd::ForkResult::Child => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..2 {
                    // SAFETY: dup2 onto stdin and stdout, which this process
                    // no longer uses (stdout was the pipe to the starter,
                    // who waits for its end).
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            serve(&ns, forwards);
            // SAFETY: _exit ends the forked process without running the
            // parent's atexit handlers a second time.
            unsafe { libc::_exit(0) }
        }
    }
}

/// A forwarded port's host socket.
enum Listener {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Serves every port, one thread each, for as long as the process lives
/// (it ends with SIGTERM from [`stop`]).
fn serve(ns: &File, forwards: Vec<(Listener, SocketAddr)>) {
    std::thread::scope(|s| {
        for (listener, ctr) in forwards {
            s.spawn(move || match listener {
                Listener::Tcp(l) => serve_tcp(ns, &l, ctr),
                Listener::Udp(u) => serve_udp(ns, u, ctr),
            });
        }
    });
}

fn serve_tcp(ns: &File, listener: &TcpListener, ctr: SocketAddr) {
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let Ok(ns) = ns.try_clone() else { continue };
        std::thread::spawn(move || {
            if let Err(e) = relay(&ns, client, ctr) {
                tracing::warn!("forward to {ctr}: {e}");
            }
        });
    }
}

/// UDP: each client's datagrams through a socket of its own in the
/// namespace, connected to the container; a thread per flow carries the
/// replies back until the flow is idle.
fn serve_udp(ns: &File, host: UdpSocket, ctr: SocketAddr) {
    let host = Arc::new(host);
    let flows: Arc<Mutex<HashMap<SocketAddr, UdpSocket>>> = Arc::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, client)) = host.recv_from(&mut buf) else {
            continue;
        };
        let known = flows
            .lock()
            .ok()
            .and_then(|f| f.get(&client).and_then(|u| u.try_clone().ok()));
        let upstream = match known {
            Some(u) => u,
            None => {
                if flows.lock().map_or(true, |f| f.len() >= UDP_MAX_FLOWS) {
                    continue;
                }
                let Ok(u) = udp_in_namespace(ns, ctr) else {
                    continue;
                };
                let (Ok(back), Ok(mine)) = (u.try_clone(), u.try_clone()) else {
                    continue;
                };
                if let Ok(mut f) = flows.lock() {
                    f.insert(client, mine);
                }
                let (host, flows) = (Arc::clone(&host), Arc::clone(&flows));
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65_536];
                    let _ = back.set_read_timeout(Some(UDP_IDLE));
                    while let Ok(n) = back.recv(&mut buf) {
                        let _ = host.send_to(&buf[..n], client);
                    }
                    if let Ok(mut f) = flows.lock() {
                        f.remove(&client);
                    }
                });
                u
            }
        };
        let _ = upstream.send(&buf[..n]);
    }
}

/// A UDP socket of the namespace (made by a thread that entered it)
/// connected to `ctr`.
fn udp_in_namespace(ns: &File, ctr: SocketAddr) -> std::io::Result<UdpSocket> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
            let u = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            u.connect(ctr)?;
            Ok(u)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("netns thread panicked")))
    })
}

/// One connection: this thread enters the namespace (a socket belongs to
/// the namespace of the thread that made it), dials the container and
/// copies both ways, each direction's end passed on as a half close.
fn relay(ns: &File, client: TcpStream, ctr: SocketAddr) -> std::io::Result<()> {
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    let upstream = TcpStream::connect_timeout(&ctr, CONNECT_DEADLINE)?;
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let (mut c_read, mut u_write) = (client.try_clone()?, upstream.try_clone()?);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut u_write);
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let _ = std::io::copy(&mut u_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = back.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_round_trip_on_the_command_line() {
        let m = PortMapping {
            host_ip: None,
            host_port: 8080,
            container_ip: Ipv4Addr::new(10, 199, 0, 2),
            container_port: 80,
            proto: berth_network::Proto::Tcp,
        };
        let arg = spec_arg(&m);
        assert_eq!(arg, "tcp:0.0.0.0:8080:10.199.0.2:80");
        assert_eq!(
            parse_spec(&arg),
            Some((
                berth_network::Proto::Tcp,
                "0.0.0.0:8080".parse().unwrap(),
                "10.199.0.2:80".parse().unwrap()
            ))
        );
        let udp = PortMapping {
            proto: berth_network::Proto::Udp,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            ..m
        };
        assert_eq!(
            parse_spec(&spec_arg(&udp)).map(|s| s.0),
            Some(berth_network::Proto::Udp)
        );
        assert_eq!(parse_spec("tcp:1.2.3.4:80"), None);
        assert_eq!(parse_spec("sctp:0.0.0.0:1:10.0.0.2:1"), None);
    }
}
