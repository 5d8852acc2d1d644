//! The project's containers, found by their `com.docker.compose.project`
//! label (so orphans are found too), with the service and replica number
//! their labels carry.

use berth_engine::{Engine, Record};

use crate::error::{Error, Result};
use crate::service::labels;

/// One container of the project.
#[derive(Debug, Clone)]
pub struct Member {
    pub service: String,
    /// `com.docker.compose.container-number` (0 when missing).
    pub number: u32,
    /// Made by `run` (`com.docker.compose.oneoff=True`).
    pub oneoff: bool,
    pub record: Record,
}

/// The containers of project `name`, by service then number.
pub fn list(engine: &Engine, name: &str) -> Result<Vec<Member>> {
    let mut out: Vec<Member> = engine
        .list()
        .map_err(Error::engine("list containers"))?
        .into_iter()
        .filter(|r| r.config.labels.get(labels::PROJECT).map(String::as_str) == Some(name))
        .map(|r| Member {
            service: r
                .config
                .labels
                .get(labels::SERVICE)
                .cloned()
                .unwrap_or_default(),
            number: r
                .config
                .labels
                .get(labels::NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            oneoff: r
                .config
                .labels
                .get(labels::ONEOFF)
                .is_some_and(|v| v == "True"),
            record: r,
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.service, a.oneoff, a.number, &a.record.name).cmp(&(
            &b.service,
            b.oneoff,
            b.number,
            &b.record.name,
        ))
    });
    Ok(out)
}
