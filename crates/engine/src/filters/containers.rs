//! `ps --filter`: which containers a listing keeps, as Docker 20.10's
//! daemon decides (`daemon/list.go`): the filters are checked and resolved
//! once (`ContainerFilter::new`), then each container is matched in the
//! listing's order (newest first), which `before` and `since` rely on.

use std::collections::BTreeSet;

use super::{FilterError, Filters};
use crate::db::{Record, Status};
use crate::Engine;

/// The keys `ps` knows.
const ACCEPTED: &[&str] = &[
    "ancestor",
    "before",
    "exited",
    "expose",
    "health",
    "id",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
    "isolation",
    "is-task",
];

/// The states Docker's `status` filter takes.
const STATES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

const HEALTH: &[&str] = &["starting", "healthy", "unhealthy", "none"];

/// `ps`'s filters, checked and resolved.
#[derive(Debug)]
pub struct ContainerFilter {
    filters: Filters,
    /// Any `status` filter lists stopped containers too, as `-a` does.
    pub implies_all: bool,
    exited: Vec<i32>,
    names: Vec<Option<regex::Regex>>,
    /// `is-task=true`: only swarm tasks, which berth never runs.
    tasks_only: Option<bool>,
    before: Option<String>,
    since: Option<String>,
    publish: BTreeSet<(u16, String)>,
    expose: BTreeSet<(u16, String)>,
    /// Image ids `ancestor` names (None: no ancestor filter).
    ancestors: Option<BTreeSet<String>>,
}

/// Which containers a listing keeps, and when it stops.
enum Verdict {
    Keep,
    Skip,
    Stop,
}

impl ContainerFilter {
    /// Checks `filters` as the daemon does (unknown keys, then values) and
    /// resolves what they name (containers for `before`/`since`, images
    /// for `ancestor`).
    pub fn new(engine: &Engine, filters: Filters) -> crate::Result<ContainerFilter> {
        filters.validate(ACCEPTED)?;
        let mut exited = Vec::new();
        for v in filters.get("exited") {
            exited.push(go_atoi(v).ok_or_else(|| {
                FilterError::Value(format!(
                    "strconv.Atoi: parsing \"{v}\": {}",
                    if v.trim_start_matches(['+', '-'])
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                        && !v.trim_start_matches(['+', '-']).is_empty()
                    {
                        "value out of range"
                    } else {
                        "invalid syntax"
                    }
                ))
            })?);
        }
        if let Some(bad) = filters
            .get("status")
            .iter()
            .find(|s| !STATES.contains(&s.as_str()))
        {
            return Err(FilterError::BadValue {
                key: "status".into(),
                value: bad.clone(),
            }
            .into());
        }
        let tasks_only = if filters.contains("is-task") {
            let v = filters.get("is-task");
            if v.iter().any(|x| x == "true") {
                Some(true)
            } else if v.iter().any(|x| x == "false") {
                Some(false)
            } else {
                // Go prints the list of values: `is-task=[abc]`.
                return Err(FilterError::BadValue {
                    key: "is-task".into(),
                    value: format!("[{}]", v.join(" ")),
                }
                .into());
            }
        } else {
            None
        };
        if let Some(bad) = filters
            .get("health")
            .iter()
            .find(|h| !HEALTH.contains(&h.as_str()))
        {
            return Err(
                FilterError::Value(format!("Unrecognised filter value for health: {bad}")).into(),
            );
        }
        let lookup = |key: &str| -> crate::Result<Option<String>> {
            match filters.get(key).last() {
                None => Ok(None),
                Some(v) => match engine.db.find(v) {
                    Ok(r) => Ok(Some(r.id)),
                    Err(crate::Error::NoSuchContainer(_)) => {
                        Err(FilterError::Value(format!("no such container {v}")).into())
                    }
                    Err(e) => Err(e),
                },
            }
        };
        let before = lookup("before")?;
        let since = lookup("since")?;
        let mut publish = BTreeSet::new();
        for v in filters.get("publish") {
            ports("publish", v, &mut publish)?;
        }
        let mut expose = BTreeSet::new();
        for v in filters.get("expose") {
            ports("expose", v, &mut expose)?;
        }
        let ancestors = filters
            .contains("ancestor")
            .then(|| {
                let named: BTreeSet<String> = filters
                    .get("ancestor")
                    .iter()
                    .filter_map(|a| engine.images.resolve(a).ok())
                    .map(|img| img.id.to_string())
                    .collect();
                with_descendants(engine, named)
            })
            .transpose()?;
        // Go's regexp and Rust's regex are both RE2's language; a pattern
        // that does not compile matches nothing, as in Docker.
        let names = filters
            .get("name")
            .iter()
            .map(|n| regex::Regex::new(n).ok())
            .collect();
        Ok(ContainerFilter {
            implies_all: filters.contains("status"),
            filters,
            exited,
            names,
            tasks_only,
            before,
            since,
            publish,
            expose,
            ancestors,
        })
    }

    /// Keeps from `list` (newest first) what the filters and `all` let
    /// through, at most `limit` of them (`ps -n`: stopped ones count).
    pub fn apply(
        &mut self,
        engine: &Engine,
        list: Vec<Record>,
        all: bool,
        limit: Option<usize>,
    ) -> Vec<Record> {
        let all = all || self.implies_all || limit.is_some();
        let mut out = Vec::new();
        for r in list {
            if limit.is_some_and(|n| out.len() >= n) {
                break;
            }
            match self.verdict(engine, &r, all) {
                Verdict::Keep => out.push(r),
                Verdict::Skip => {}
                Verdict::Stop => break,
            }
        }
        out
    }

    fn verdict(&mut self, engine: &Engine, r: &Record, all: bool) -> Verdict {
        if let Some(b) = &self.before {
            if *b == r.id {
                self.before = None;
            }
            return Verdict::Skip;
        }
        if self.since.as_deref() == Some(r.id.as_str()) {
            return Verdict::Stop;
        }
        if self.keeps(engine, r, all) {
            Verdict::Keep
        } else {
            Verdict::Skip
        }
    }

    /// Whether the container passes every filter but `before`/`since`.
    pub fn keeps(&self, engine: &Engine, r: &Record, all: bool) -> bool {
        let f = &self.filters;
        let running = matches!(
            r.status,
            Status::Running | Status::Paused | Status::Restarting
        );
        if !running && !all {
            return false;
        }
        if !self.names.is_empty()
            && !self
                .names
                .iter()
                .flatten()
                .any(|re| re.is_match(&r.name) || re.is_match(&format!("/{}", r.name)))
            && !f.get("name").contains(&r.name)
        {
            return false;
        }
        if f.contains("id") && !f.get("id").iter().any(|p| r.id.starts_with(p.as_str())) {
            return false;
        }
        if !f.match_kv_list("label", &r.config.labels) {
            return false;
        }
        // `isolation` is accepted and, on Linux, matches every container
        // (Docker's daemon ignores it there).
        // Docker's `exited`: stopped after having run, with one of the codes.
        let exited = self.exited.is_empty()
            || (r.status == Status::Exited
                && !r.started_at.is_empty()
                && self.exited.contains(&r.exit_code));
        if !exited {
            return false;
        }
        if f.contains("status") && !f.get("status").iter().any(|s| s == r.status.as_str()) {
            return false;
        }
        if f.contains("health") {
            let h = r.health.as_ref().map_or("none", |h| h.status.as_str());
            if !f.get("health").iter().any(|x| x == h) {
                return false;
            }
        }
        if f.contains("volume")
            && !f.get("volume").iter().any(|v| {
                r.config
                    .mounts
                    .iter()
                    .any(|m| m.destination == *v || (m.kind != "tmpfs" && m.source == *v))
            })
        {
            return false;
        }
        if let Some(ids) = &self.ancestors {
            if !ids.contains(&r.image_id) {
                return false;
            }
        }
        if f.contains("network") && !self.on_network(engine, r) {
            return false;
        }
        if (!self.publish.is_empty() || !self.expose.is_empty()) && !self.has_port(engine, r) {
            return false;
        }
        self.tasks_only != Some(true)
    }

    /// On the network by name (a stopped container keeps its networks'
    /// names), or by id prefix (only while it has an endpoint there: a
    /// container never started has no network id in Docker either).
    fn on_network(&self, engine: &Engine, r: &Record) -> bool {
        let cfg = &r.config;
        let mut names: Vec<&str> = Vec::new();
        if !cfg.network.starts_with("container:") {
            names.push(match cfg.network.as_str() {
                "" | "default" => berth_network::store::DEFAULT_NAME,
                n => n,
            });
        }
        names.extend(cfg.extra_networks.iter().map(String::as_str));
        let wants = self.filters.get("network");
        if wants.iter().any(|w| names.contains(&w.as_str())) {
            return true;
        }
        let (endpoints, _) = engine.network_state(&r.id);
        endpoints
            .iter()
            .any(|e| wants.iter().any(|w| e.network_id.starts_with(w.as_str())))
    }

    /// Docker matches the ports `ps` lists, which a running container has:
    /// `publish` the host's side, `expose` the container's.
    fn has_port(&self, engine: &Engine, r: &Record) -> bool {
        if !matches!(r.status, Status::Running | Status::Paused) {
            return false;
        }
        let (_, mapped) = engine.network_state(&r.id);
        let mapped_hit = mapped.iter().any(|m| {
            let proto = m.proto.as_str().to_string();
            self.publish.contains(&(m.host_port, proto.clone()))
                || self.expose.contains(&(m.container_port, proto))
        });
        mapped_hit
            || r.config.exposed_ports.iter().any(|e| {
                let (n, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
                n.parse()
                    .is_ok_and(|n: u16| self.expose.contains(&(n, proto.to_string())))
            })
    }
}

/// Go's `strconv.Atoi`.
fn go_atoi(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().and_then(|n| i32::try_from(n).ok())
}

/// A `publish`/`expose` value (`80`, `80/udp`, `8000-8080/tcp`) added to
/// `set`, refused in the daemon's words.
fn ports(key: &str, value: &str, set: &mut BTreeSet<(u16, String)>) -> Result<(), FilterError> {
    if value.contains(':') {
        return Err(FilterError::Value(format!(
            "filter for '{key}' should not contain ':': {value}"
        )));
    }
    let fail = |why: String| {
        FilterError::Value(format!("error while looking up for {key} {value}: {why}"))
    };
    let parts: Vec<&str> = value.split('/').collect();
    let (proto, range) = match parts.as_slice() {
        [p] | [p, ""] => ("tcp", *p),
        [p, proto, ..] => (*proto, *p),
        [] => ("tcp", ""),
    };
    if range.is_empty() {
        return Err(fail("Empty string specified for ports.".into()));
    }
    let port = |s: &str| -> Result<u16, FilterError> {
        s.parse::<u16>().map_err(|_| {
            let why = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            fail(format!("strconv.ParseUint: parsing \"{s}\": {why}"))
        })
    };
    let (start, end) = match range.split_once('-') {
        None => {
            let p = port(range)?;
            (p, p)
        }
        Some((a, b)) => {
            let b = b.split('-').next().unwrap_or(b);
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(fail(format!(
                    "Invalid range specified for the Port: {range}"
                )));
            }
            (a, b)
        }
    };
    for p in start..=end {
        set.insert((p, proto.to_string()));
    }
    Ok(())
}

/// `ancestor`'s image ids with every image made from one of them, as
/// docker walks its parent links (`commit` records the parent): a
/// container of a committed image has the original as an ancestor.
fn with_descendants(engine: &Engine, named: BTreeSet<String>) -> crate::Result<BTreeSet<String>> {
    if named.is_empty() {
        return Ok(named);
    }
    let mut parent_of = std::collections::HashMap::new();
    for img in engine.images.list()? {
        let (_, config) = engine.images.manifest_and_config(&img)?;
        if let Some(p) = config["parent"].as_str().filter(|p| !p.is_empty()) {
            parent_of.insert(img.id.to_string(), p.to_string());
        }
    }
    let mut out = named.clone();
    for id in parent_of.keys() {
        // A chain is as long as the commits on commits; a loop (a
        // damaged store) ends at the number of images.
        let mut at = id.as_str();
        for _ in 0..=parent_of.len() {
            let Some(p) = parent_of.get(at) else { break };
            if named.contains(p) {
                out.insert(id.clone());
                break;
            }
            at = p;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_values_parse_as_dockers_daemon_reads_them() {
        let mut s = BTreeSet::new();
        ports("publish", "80", &mut s).unwrap();
        ports("publish", "53/udp", &mut s).unwrap();
        ports("publish", "8000-8002/tcp", &mut s).unwrap();
        let want: BTreeSet<(u16, String)> = [
            (80, "tcp"),
            (53, "udp"),
            (8000, "tcp"),
            (8001, "tcp"),
            (8002, "tcp"),
        ]
        .iter()
        .map(|(p, t)| (*p, (*t).to_string()))
        .collect();
        assert_eq!(s, want);
        let err = |v: &str| {
            ports("expose", v, &mut BTreeSet::new())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("bad"),
            "error while looking up for expose bad: strconv.ParseUint: parsing \"bad\": invalid syntax"
        );
        assert_eq!(
            err("70000"),
            "error while looking up for expose 70000: strconv.ParseUint: parsing \"70000\": value out of range"
        );
        assert_eq!(
            err("80-70"),
            "error while looking up for expose 80-70: Invalid range specified for the Port: 80-70"
        );
        assert_eq!(
            err("1:2"),
            "filter for 'expose' should not contain ':': 1:2"
        );
        assert_eq!(
            err(""),
            "error while looking up for expose : Empty string specified for ports."
        );
    }

    #[test]
    fn exit_codes_parse_as_go_atoi() {
        assert_eq!(go_atoi("3"), Some(3));
        assert_eq!(go_atoi("+3"), Some(3));
        assert_eq!(go_atoi("-1"), Some(-1));
        assert_eq!(go_atoi("abc"), None);
        assert_eq!(go_atoi(""), None);
    }
}
