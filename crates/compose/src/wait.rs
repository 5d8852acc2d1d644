//! `up --wait`: every selected service's containers running, and healthy
//! where they have a healthcheck (or exited 0 when another service waits
//! for their completion), before a deadline.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use berth_engine::{Engine, Status};

use crate::error::{Error, Result};
use crate::members;
use crate::up::Step;
use crate::Project;

/// Waits for the services `wanted` of `p`.
pub fn running_or_healthy(
    engine: &Engine,
    p: &Project,
    wanted: &BTreeSet<String>,
    deadline: Instant,
    report: &mut dyn FnMut(Step),
) -> Result<()> {
    // Services others wait to complete may exit (0) and count as done.
    let completing: BTreeSet<String> = p
        .services()
        .flat_map(|(_, s)| {
            s["depends_on"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, d)| d["condition"].as_str() == Some("service_completed_successfully"))
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut delay = 5;
    let mut said: BTreeSet<String> = BTreeSet::new();
    loop {
        let ms: Vec<_> = members::list(engine, &p.name)?
            .into_iter()
            .filter(|m| !m.oneoff && wanted.contains(&m.service))
            .collect();
        let mut pending = Vec::new();
        for m in &ms {
            let r = &m.record;
            let done = match r.status {
                Status::Exited if completing.contains(&m.service) && r.exit_code == 0 => true,
                Status::Running => match r.health.as_ref().map(|h| h.status.as_str()) {
                    None | Some("healthy") => true,
                    Some("unhealthy") => {
                        return Err(Error::Dependency(format!(
                            "container {} is unhealthy",
                            r.name
                        )))
                    }
                    _ => false,
                },
                Status::Exited | Status::Created => {
                    return Err(Error::Dependency(format!(
                        "container {} exited ({})",
                        r.name, r.exit_code
                    )))
                }
                _ => false,
            };
            if done {
                if said.insert(r.name.clone()) {
                    let state = if r.health.is_some() {
                        "Healthy"
                    } else {
                        "Running"
                    };
                    report(Step {
                        kind: "Container",
                        name: r.name.clone(),
                        state: state.into(),
                    });
                }
            } else {
                pending.push(r.name.clone());
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Dependency(format!(
                "gave up waiting for {}",
                pending.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(delay));
        delay = (delay * 2).min(20);
    }
}
