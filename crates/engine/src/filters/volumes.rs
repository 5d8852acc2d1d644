//! `volume ls --filter`, as Docker 20.10's daemon reads it: `name` a
//! regular expression (any of them), `driver` exact, `label` all of them,
//! `dangling` true/1 or false/0.

use super::{FilterError, Filters};
use crate::volumes::Volume;
use crate::Engine;

const ACCEPTED: &[&str] = &["dangling", "name", "driver", "label"];

/// The volumes of `list` the filters keep, in its order.
pub fn select_volumes(
    engine: &Engine,
    filters: &Filters,
    list: Vec<Volume>,
) -> crate::Result<Vec<Volume>> {
    filters.validate(ACCEPTED)?;
    let dangling = if filters.contains("dangling") {
        let v = filters.get("dangling");
        if v.iter().any(|x| x == "true" || x == "1") {
            Some(true)
        } else if v.iter().any(|x| x == "false" || x == "0") {
            Some(false)
        } else {
            return Err(FilterError::BadValue {
                key: "dangling".into(),
                value: format!("[{}]", v.join(" ")),
            }
            .into());
        }
    } else {
        None
    };
    // A pattern that does not compile matches nothing, as in Docker.
    let names: Vec<regex::Regex> = filters
        .get("name")
        .iter()
        .filter_map(|n| regex::Regex::new(n).ok())
        .collect();
    let mut out = Vec::new();
    for v in list {
        if filters.contains("name")
            && !names.iter().any(|re| re.is_match(&v.name))
            && !filters.get("name").contains(&v.name)
        {
            continue;
        }
        if filters.contains("driver") && !filters.get("driver").contains(&v.driver) {
            continue;
        }
        if !filters.match_kv_list("label", &v.labels) {
            continue;
        }
        if let Some(want) = dangling {
            if engine.volume_users(&v.name)?.is_empty() != want {
                continue;
            }
        }
        out.push(v);
    }
    Ok(out)
}
