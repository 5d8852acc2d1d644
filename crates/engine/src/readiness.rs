//! Readiness: whether a pod may be sent traffic, and the names that lead
//! to it only while it may (kube play's Services).
//!
//! Kubernetes takes a pod that is not ready out of its Services'
//! endpoints, so the Service's name stops leading there. berth gives a
//! Service's names to the played pods' members as [`ServiceHost`]s: lines
//! of their /etc/hosts written only while the selected pod is ready, and
//! rewritten whenever a member of that pod may have changed readiness
//! (it started, it ended, one of its checks changed status; see
//! [`Engine::refresh_service_hosts`], called by the monitor).
//!
//! A member is ready when it runs and every check that does not act on
//! it passes: a readiness check (`ContainerConfig::readiness`), and a
//! healthcheck with no `--health-on-failure` action (what kube play makes
//! of a lone readinessProbe). A healthcheck that restarts or kills the
//! container is a liveness probe: as in Kubernetes, it does not decide
//! readiness. A pod is ready when every member but its init containers
//! is.

use serde::{Deserialize, Serialize};

use crate::db::{Record, Status};
use crate::Engine;

/// Names that lead to a ready pod among those a Service selects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceHost {
    /// The Service's name and its cluster DNS name.
    pub names: Vec<String>,
    /// The selected pods' ids, in the file's order: the names lead to the
    /// first that is ready (a cluster's endpoints are the ready ones;
    /// berth has no ClusterIP to balance them), to none while none is.
    pub pods: Vec<String>,
}

/// Whether the container, as its row says now, is ready.
pub fn member_ready(r: &Record) -> bool {
    if r.status != Status::Running {
        return false;
    }
    let passing = |s: Option<&str>| s == Some("healthy");
    let health = r.health.as_ref();
    if r.config.health.as_ref().is_some_and(|h| h.args().is_some())
        && r.config.health_on_failure.is_none()
        && !passing(health.map(|h| h.status.as_str()))
    {
        return false;
    }
    if r.config
        .readiness
        .as_ref()
        .is_some_and(|h| h.args().is_some())
        && !passing(
            health
                .and_then(|h| h.readiness.as_deref())
                .map(|h| h.status.as_str()),
        )
    {
        return false;
    }
    true
}

impl Engine {
    /// Whether the pod's members (its init containers aside) are all
    /// ready; `gone`, a member that is ending, counts as not ready
    /// whatever its row still says. A pod without members is not.
    pub fn pod_ready(&self, pod_id: &str, gone: Option<&str>) -> bool {
        let Ok(members) = self.pod_members(pod_id) else {
            return false;
        };
        let mut serving = members
            .iter()
            .filter(|m| !m.config.labels.contains_key(crate::pods::INIT_LABEL))
            .peekable();
        serving.peek().is_some() && serving.all(|m| Some(m.id.as_str()) != gone && member_ready(m))
    }

    /// The container's [`ServiceHost`]s that have a ready pod, as hosts
    /// file lines (its address), a name each (as `--add-host`s are
    /// written).
    pub(crate) fn service_host_entries(
        &self,
        r: &Record,
        gone: Option<&str>,
    ) -> Vec<berth_network::files::HostEntry> {
        let mut lines = Vec::new();
        for s in &r.config.service_hosts {
            let ready = s
                .pods
                .iter()
                .filter(|p| self.pod_ready(p, gone))
                .find_map(|p| self.pod_ip(p));
            if let Some(ip) = ready {
                lines.extend(s.names.iter().map(|n| berth_network::files::HostEntry {
                    ip: ip.to_string(),
                    names: vec![n.clone()],
                }));
            }
        }
        lines
    }

    /// Member `r` of a pod started, ended (`running` false: counted as not
    /// ready) or had a check change status: the hosts files of the
    /// running containers with a [`ServiceHost`] of its pod are written
    /// again. Nothing to do (no query) for a container in no pod.
    pub fn refresh_service_hosts(&self, r: &Record, running: bool) {
        if r.config.pod.is_empty() {
            return;
        }
        let gone = (!running).then_some(r.id.as_str());
        // Under the hosts lock: two members changing at once each write
        // what the rows said after the other's write.
        let _lock = self.hosts_lock_for(true);
        // The rows as they are: reconciling others is not a monitor's job.
        let Ok(all) = self.db.list() else {
            return;
        };
        // Those starting too (their own write is under the same lock), and
        // those between two lives.
        for c in all.iter().filter(|c| {
            c.status.is_active()
                && c.config
                    .service_hosts
                    .iter()
                    .any(|s| s.pods.contains(&r.config.pod))
        }) {
            if let Some(pod) = crate::pods::pod_of_mode(&c.config.network) {
                if let Err(e) = self.write_pod_member_hosts(c, pod, gone) {
                    tracing::warn!("rewrite the hosts file of {}: {e}", c.id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Health, HealthConfig, OnFailure};
    use crate::ContainerConfig;

    fn check(test: &str) -> Option<HealthConfig> {
        Some(HealthConfig {
            test: vec!["CMD".into(), test.into()],
            ..HealthConfig::default()
        })
    }

    fn state(status: &str) -> Health {
        Health {
            status: status.into(),
            ..Health::default()
        }
    }

    fn running(config: ContainerConfig, health: Option<Health>) -> Record {
        let mut r = Record::new("c".into(), "c".into(), String::new(), config, String::new());
        r.status = Status::Running;
        r.health = health;
        r
    }

    #[test]
    fn a_liveness_probe_never_decides_readiness_and_a_readiness_check_does() {
        // No check: ready while it runs, and only then.
        let plain = running(ContainerConfig::default(), None);
        assert!(member_ready(&plain));
        let mut exited = plain.clone();
        exited.status = Status::Exited;
        assert!(!member_ready(&exited));
        // A lone readinessProbe is the healthcheck with no action.
        let lone = ContainerConfig {
            health: check("ready"),
            ..ContainerConfig::default()
        };
        assert!(!member_ready(&running(
            lone.clone(),
            Some(state("starting"))
        )));
        assert!(!member_ready(&running(
            lone.clone(),
            Some(state("unhealthy"))
        )));
        assert!(member_ready(&running(lone, Some(state("healthy")))));
        // A livenessProbe (it restarts) failing: still ready.
        let live = ContainerConfig {
            health: check("alive"),
            health_on_failure: OnFailure::Restart,
            ..ContainerConfig::default()
        };
        assert!(member_ready(&running(
            live.clone(),
            Some(state("unhealthy"))
        )));
        // Beside it, the readiness check's own state decides.
        let both = ContainerConfig {
            readiness: check("ready"),
            ..live
        };
        let with = |ready: &str| Health {
            readiness: Some(Box::new(state(ready))),
            ..state("healthy")
        };
        assert!(!member_ready(&running(
            both.clone(),
            Some(with("starting"))
        )));
        assert!(!member_ready(&running(
            both.clone(),
            Some(state("healthy"))
        )));
        assert!(member_ready(&running(both, Some(with("healthy")))));
    }
}
