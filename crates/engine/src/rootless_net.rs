//! The default network of a rootless container: a user-mode network stack,
//! pasta (Debian's `passt`), in place of the bridge, veths and nft rules an
//! ordinary user cannot make in the host's network namespace.
//!
//! pasta is started when the container's init exists, joins its network
//! namespace (through a descriptor berth opened: pasta drops its
//! capabilities before it opens paths, and the init's /proc entries are
//! not its to read), makes a tap device there with the host's addresses
//! and routes, forwards the `-p` ports from the host's sockets to the
//! container and carries the container's own connections out as the
//! user's; the gateway's address is the host's loopback, so a service of
//! the host's 127.0.0.1 is reachable there. It ends by itself with the
//! namespace. User networks (containers reaching each other by name) are
//! bridges in the user's rootless network namespace instead
//! (rootless_netns.rs).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_network::ports::Proto;
use berth_network::PortSpec;

use crate::config::ContainerConfig;
use crate::error::{Error, Result};

/// The user-mode network stack's program.
pub const PASTA: &str = "pasta";

/// The file pasta writes its pid to, in the container's directory.
const PID_FILE: &str = "pasta.pid";

/// How long pasta may take to set the namespace up and go to the
/// background.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Whether `cfg`'s networking is pasta's: a rootless berth and a container
/// on the default network alone (its own namespace, not none, host,
/// another container's, a pod's or a user network: those are bridges in
/// the rootless network namespace, see rootless_netns.rs).
pub fn applies(cfg: &ContainerConfig) -> bool {
    saferoot::idmap::in_unprivileged_user_namespace()
        && crate::networking::on_bridges(cfg)
        && is_default(&cfg.network)
        && cfg.extra_networks.is_empty()
}

fn is_default(network: &str) -> bool {
    matches!(network, "" | "bridge" | "default")
}

/// Refuses, at create, what a rootless container's networks cannot do:
/// on pasta's default network, what docker allows only on user networks;
/// on user networks, the default network beside them (it is pasta's, per
/// container, not a bridge).
pub fn validate(cfg: &ContainerConfig) -> Result<()> {
    if applies(cfg) {
        if cfg.ip.is_some() || cfg.mac_address.is_some() || !cfg.network_aliases.is_empty() {
            return Err(Error::InvalidOption(
                "user specified IP address, MAC address and network aliases are supported on \
                 user defined networks only (a rootless container on the default network has \
                 pasta's)"
                    .into(),
            ));
        }
        return Ok(());
    }
    if is_default(&cfg.network) || cfg.extra_networks.iter().any(|n| is_default(n)) {
        return Err(default_beside_user_networks());
    }
    Ok(())
}

/// The error for a rootless container on both the default network and a
/// user network.
pub fn default_beside_user_networks() -> Error {
    Error::InvalidOption(
        "a rootless container is on the default network (pasta) or on user networks, not both: \
         create it with --network NAME to join user networks"
            .into(),
    )
}

/// Starts pasta for the container whose init is `pid`, publishing `ports`;
/// its words go to pasta.log in `dir` (the container's directory), its pid
/// to pasta.pid there ([`detach`] ends it).
pub fn attach(pid: i32, ports: &[PortSpec], dir: &Path) -> Result<()> {
    let ns_path = format!("/proc/{pid}/ns/net");
    let netns: OwnedFd = std::fs::File::open(&ns_path)
        .map_err(|e| Error::Rootless(format!("open {ns_path}: {e}")))?
        .into();
    spawn(
        netns,
        &pasta_args(ports),
        &dir.join(PID_FILE),
        &dir.join("pasta.log"),
    )
}

/// Runs pasta with `args` on the network namespace `netns` (handed over as
/// descriptor 3, which the arguments name), its pid to `pid_file`, its
/// words to `log`; returns once it set the namespace up and went to the
/// background.
pub(crate) fn spawn(netns: OwnedFd, args: &[String], pid_file: &Path, log: &Path) -> Result<()> {
    let log_file = std::fs::File::create(log)
        .map_err(|e| Error::Rootless(format!("create {}: {e}", log.display())))?;
    let mut cmd = Command::new(PASTA);
    cmd.args(args)
        .arg("--pid")
        .arg(pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let raw = netns.as_raw_fd();
    // SAFETY: between fork and exec only dup2 runs, async-signal-safe; it
    // puts the namespace at descriptor 3 (without close-on-exec), which
    // the arguments name as /proc/self/fd/3.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        Error::Rootless(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{PASTA} not found: rootless networking needs it (apt-get install passt), \
                 or run with --network none or host"
            )
        } else {
            format!("run {PASTA}: {e}")
        })
    })?;
    drop(netns);
    // pasta's first process ends once the namespace is set up and its
    // own copy runs in the background.
    let deadline = Instant::now() + START_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Rootless(format!(
                    "{PASTA} did not set the network up within {}s",
                    START_DEADLINE.as_secs()
                )));
            }
            Err(e) => return Err(Error::Rootless(format!("wait for {PASTA}: {e}"))),
        }
    };
    if !status.success() {
        let words = std::fs::read_to_string(log).unwrap_or_default();
        let words: Vec<&str> = words
            .lines()
            .filter(|l| !l.contains("syslog"))
            .map(str::trim)
            .collect();
        let mut msg = format!("{PASTA} failed ({status}): {}", words.join("; "));
        if words.iter().any(|w| w.contains("tun")) {
            msg.push_str(
                " (/dev/net/tun must be open to users, mode 0666 as Debian's udev makes it)",
            );
        }
        return Err(Error::Rootless(msg));
    }
    Ok(())
}

/// Ends the container's pasta, if it runs. pasta given a namespace by
/// descriptor cannot watch for the namespace's end (it does so through the
/// path's directory), so it is told.
pub fn detach(dir: &Path) {
    stop(&dir.join(PID_FILE));
}

/// The pid of the pasta whose pid file is `pid_file`, while it runs (the
/// file outlives the process: the pid is pasta's only while its command
/// line says so, the pid file's path included).
pub(crate) fn running(pid_file: &Path) -> Option<i32> {
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)?;
    let is_pasta = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        c.split(|b| *b == 0)
            .next()
            .is_some_and(|a| a.ends_with(PASTA.as_bytes()))
            && c.windows(pid_file.as_os_str().len())
                .any(|w| w == pid_file.as_os_str().as_encoded_bytes())
    });
    is_pasta.then_some(pid)
}

/// Ends the pasta of `pid_file` if it runs, and removes the file.
pub(crate) fn stop(pid_file: &Path) {
    if let Some(pid) = running(pid_file) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_file(pid_file);
}

/// pasta's command line: the namespace at descriptor 3, addresses and
/// routes copied from the host's, the ports given and no other (pasta
/// would otherwise forward every port bound on either side).
pub(crate) fn pasta_args(ports: &[PortSpec]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--config-net",
        "--quiet",
        // Stays the user (root of the user's namespace) rather than
        // dropping to nobody, whose ids the user's namespace maps to a
        // subordinate one.
        "--runas",
        "0:0",
        "--netns",
        "/proc/self/fd/3",
        "-T",
        "none",
        "-U",
        "none",
    ]
    .map(String::from)
    .to_vec();
    for proto in [Proto::Tcp, Proto::Udp] {
        let flag = if proto == Proto::Tcp { "-t" } else { "-u" };
        let specs: Vec<&PortSpec> = ports.iter().filter(|p| p.proto == proto).collect();
        if specs.is_empty() {
            args.extend([flag.to_string(), "none".to_string()]);
        }
        for p in specs {
            args.push(flag.to_string());
            args.push(port_spec(p));
        }
    }
    args
}

/// One `-p` in pasta's form: `[ADDR/]HOST[-END]:CONTAINER[-END]`.
fn port_spec(p: &PortSpec) -> String {
    let addr = p.host_ip.map(|ip| format!("{ip}/")).unwrap_or_default();
    let span = p.host_port_end.saturating_sub(p.host_port);
    if span == 0 {
        format!("{addr}{}:{}", p.host_port, p.container_port)
    } else {
        format!(
            "{addr}{}-{}:{}-{}",
            p.host_port,
            p.host_port_end,
            p.container_port,
            p.container_port.saturating_add(span)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn spec(ip: Option<Ipv4Addr>, host: (u16, u16), cport: u16, proto: Proto) -> PortSpec {
        PortSpec {
            host_ip: ip,
            host_port: host.0,
            host_port_end: host.1,
            container_port: cport,
            proto,
        }
    }

    #[test]
    fn ports_in_pasta_words_and_no_others_forwarded() {
        let args = pasta_args(&[
            spec(Some(Ipv4Addr::LOCALHOST), (8080, 8080), 80, Proto::Tcp),
            spec(None, (9000, 9002), 7000, Proto::Tcp),
        ]);
        let line = args.join(" ");
        assert!(
            line.contains("-t 127.0.0.1/8080:80 -t 9000-9002:7000-7002"),
            "{line}"
        );
        assert!(line.contains("-u none"), "{line}");
        assert!(!line.contains("-t none"), "{line}");
        let args = pasta_args(&[spec(None, (53, 53), 53, Proto::Udp)]);
        let line = args.join(" ");
        assert!(
            line.contains("-t none") && line.contains("-u 53:53"),
            "{line}"
        );
    }
}
