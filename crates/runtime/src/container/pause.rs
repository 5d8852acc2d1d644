//! `pause` and `resume`: freeze and thaw every process of the container
//! through its freezer cgroup.

use super::Container;
use crate::error::{Error, Result};
use crate::state::Status;

impl Container {
    pub fn pause(&self) -> Result<()> {
        match self.status() {
            Status::Running | Status::Created => {}
            _ => return Err(self.bad_status("pause", "running")),
        }
        self.cgroups()?.freeze(true)
    }

    pub fn resume(&self) -> Result<()> {
        if self.status() != Status::Paused {
            return Err(Error::WrongState("container not paused"));
        }
        self.cgroups()?.freeze(false)
    }

    pub(crate) fn cgroups(&self) -> Result<&crate::cgroups::Manager> {
        self.state
            .cgroups
            .as_ref()
            .ok_or_else(|| Error::Cgroup(format!("container {} has no cgroups", self.id())))
    }

    /// Host pids of the container's processes: from its cgroup, or (no
    /// cgroup) its pid namespace.
    pub fn pids(&self) -> Result<Vec<i32>> {
        if self.status() == Status::Stopped {
            return Ok(Vec::new());
        }
        match &self.state.cgroups {
            Some(c) => c.pids(),
            None => Ok(crate::signal::pids_in_pid_namespace_of(self.state.pid)),
        }
    }

    /// `ps` on the host (`args`, default `-ef`) cut down to the header and
    /// the container's processes (runc's `ps` table, docker's `top`).
    pub fn ps_table(&self, args: &[String]) -> Result<Vec<String>> {
        let pids = self.pids()?;
        let args: Vec<String> = if args.is_empty() {
            vec!["-ef".into()]
        } else {
            args.to_vec()
        };
        // As Docker's daemon asks: only the container's pids (`-q`), so
        // that options which select nothing themselves (`-o pid,comm`)
        // still list them; a ps without -q is asked again without it.
        let listed: Vec<String> = pids.iter().map(i32::to_string).collect();
        let run = |quick: bool| {
            let mut cmd = std::process::Command::new("ps");
            cmd.args(&args);
            if quick && !listed.is_empty() {
                cmd.args(["-q", &listed.join(",")]);
            }
            cmd.output()
                .map_err(|e| Error::Ps(format!("run ps (procps): {e}")))
        };
        let mut out = run(true)?;
        if !out.status.success() {
            out = run(false)?;
        }
        if !out.status.success() {
            // The first line of ps's complaint says why (Docker's daemon
            // words it so); the rest is its usage.
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(Error::Ps(format!(
                "ps: {}",
                err.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("failed")
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
            return Err(Error::Ps(format!("ps output has no PID column: {header}")));
        };
        let mut table = vec![header.to_string()];
        table.extend(
            lines
                .filter(|l| {
                    l.split_whitespace()
                        .nth(col)
                        .and_then(|p| p.parse::<i32>().ok())
                        .is_some_and(|p| pids.contains(&p))
                })
                .map(str::to_string),
        );
        Ok(table)
    }
}
