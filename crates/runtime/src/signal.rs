//! Signals: parsing names the way runc accepts them, sending them to a
//! container, and telling whether a container is frozen.

use std::str::FromStr;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

/// Parses `9`, `KILL`, `SIGKILL` or `sigkill` into a signal number.
/// Real-time signals are accepted as numbers and as `RTMIN+n`/`RTMAX-n`.
pub fn parse_signal(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(Error::UnknownSignal(s.to_string()));
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    // RTMIN+n and RTMAX-n ("+3" and "-3" parse as signed offsets).
    for (prefix, base) in [("RTMIN", libc::SIGRTMIN()), ("RTMAX", libc::SIGRTMAX())] {
        let Some(off) = name.strip_prefix(prefix) else {
            continue;
        };
        let n = if off.is_empty() {
            0
        } else {
            off.parse::<i32>()
                .map_err(|_| Error::UnknownSignal(s.into()))?
        };
        let sig = base + n;
        if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) {
            return Ok(sig);
        }
    }
    Signal::from_str(&format!("SIG{name}"))
        .map(|sig| sig as i32)
        .map_err(|_| Error::UnknownSignal(s.to_string()))
}

/// Sends `sig` to `pid`; a raw number so real-time signals work too.
pub fn send(pid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    let rc = unsafe { libc::kill(pid, sig) };
    nix::errno::Errno::result(rc).map(drop)
}

/// The host pids of every process in the same pid namespace as `pid`
/// (`pid` included): how `kill --all` reaches a container's processes.
pub fn pids_in_pid_namespace_of(pid: i32) -> Vec<i32> {
    let Ok(target) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) else {
        return Vec::new();
    };
    let own = std::fs::read_link("/proc/self/ns/pid").ok();
    if own.as_ref() == Some(&target) {
        // Sharing the caller's pid namespace: only the init is known.
        return vec![pid];
    }
    let mut pids = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&target)
            {
                pids.push(p);
            }
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("999").is_err());
    }
}
