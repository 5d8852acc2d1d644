//! Docker's `--filter key=value` lists: parsed once into [`Filters`], then
//! matched by one matcher per kind of object (containers for `ps`, and
//! `volume ls`, and the prune verbs in `crate::prune`). The semantics are Docker 20.10's
//! daemon's (`api/types/filters`): values of one key are alternatives,
//! different keys must all hold, except `label`, where every value must
//! hold, and `label!`, which excludes only what matches all of its values.

mod containers;
mod gotime;
mod volumes;

use std::collections::BTreeMap;

pub use containers::ContainerFilter;
pub use gotime::{local_offset, timestamp};
pub use volumes::select_volumes;

/// Why a filter was refused, in Docker's words (scripts match on them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A `--filter` argument without `=`: the client refuses it.
    #[error("bad format of filter (expected name=value)")]
    BadFormat(String),
    /// A key the command does not know.
    #[error("Invalid filter '{0}'")]
    UnknownKey(String),
    /// A known key with a value it cannot take (`status=bad`).
    #[error("Invalid filter '{key}={value}'")]
    BadValue { key: String, value: String },
    /// `until` given twice.
    #[error("more than one until filter specified")]
    TwoUntils,
    /// A time or duration that does not parse (Go's own words).
    #[error("{0}")]
    Time(String),
    /// Any other value the daemon refuses, with its whole message.
    #[error("{0}")]
    Value(String),
}

/// Parsed `--filter` arguments: each key with its values in the order
/// given (a value given twice counts once, as in Docker's sets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    fields: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// Parses `key=value` arguments; `label!=k` has the key `label!`.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Filters, FilterError> {
        let mut f = Filters::default();
        for a in args {
            let a = a.as_ref();
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| FilterError::BadFormat(a.to_string()))?;
            f.add(k.trim().to_lowercase(), v.trim().to_string());
        }
        Ok(f)
    }

    /// Adds one value (as the CLI adds `dangling=true` to `image prune`).
    pub fn add(&mut self, key: String, value: String) {
        let values = self.fields.entry(key).or_default();
        if !values.contains(&value) {
            values.push(value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The values of `key` (none: empty).
    pub fn get(&self, key: &str) -> &[String] {
        self.fields.get(key).map_or(&[], Vec::as_slice)
    }

    /// Every `(key, value)`, keys in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))
    }

    /// Refuses keys not in `accepted`, as the daemon does before anything else.
    pub fn validate(&self, accepted: &[&str]) -> Result<(), FilterError> {
        match self.fields.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(FilterError::UnknownKey(k.clone())),
            None => Ok(()),
        }
    }

    /// Docker's `MatchKVList`: every value of `key` (`k` or `k=v`) holds
    /// in `labels`; true when the key is not given.
    pub fn match_kv_list(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        let values = self.get(key);
        values.is_empty()
            || (!labels.is_empty()
                && values.iter().all(|want| match want.split_once('=') {
                    Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                    None => labels.contains_key(want.as_str()),
                }))
    }

    /// The prune verbs' label rule: every `label` holds, and not every
    /// `label!` does (so `label!=a` with `label!=b` spares only what has
    /// both, as Docker's daemon does).
    pub fn match_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_kv_list("label", labels)
            && !(self.contains("label!") && self.match_kv_list("label!", labels))
    }

    /// The `until` filter of the prune verbs: the time (nanoseconds since
    /// the epoch) after which objects are kept; None without one.
    pub fn until(&self, now_nanos: i128) -> Result<Option<i128>, FilterError> {
        match self.get("until") {
            [] => Ok(None),
            [one] => timestamp(one, now_nanos, local_offset()).map(Some),
            _ => Err(FilterError::TwoUntils),
        }
    }
}

/// An RFC 3339 time (as the store records them) in nanoseconds since the
/// epoch; None when it does not parse.
pub fn rfc3339_nanos(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

/// Now, in nanoseconds since the epoch.
pub fn now_nanos() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn parse_splits_at_the_first_equals_and_keeps_label_bang() {
        let f = Filters::parse(&["label=a=1", "label!=b", "until=1h", "label=a=1"]).unwrap();
        assert_eq!(f.get("label"), ["a=1"]);
        assert_eq!(f.get("label!"), ["b"]);
        assert_eq!(f.get("until"), ["1h"]);
        assert_eq!(
            Filters::parse(&["foo"]),
            Err(FilterError::BadFormat("foo".into()))
        );
        assert_eq!(
            FilterError::BadFormat("foo".into()).to_string(),
            "bad format of filter (expected name=value)"
        );
    }

    #[test]
    fn unknown_keys_are_refused_in_dockers_words() {
        let f = Filters::parse(&["label=a", "dangling=true"]).unwrap();
        let e = f.validate(&["label", "label!", "until"]).unwrap_err();
        assert_eq!(e.to_string(), "Invalid filter 'dangling'");
        assert!(f.validate(&["label", "dangling"]).is_ok());
    }

    #[test]
    fn labels_are_anded_and_label_bang_spares_only_what_has_them_all() {
        let both = labels(&[("a", "1"), ("b", "2")]);
        let only_a = labels(&[("a", "1")]);
        let none = labels(&[]);
        let f = Filters::parse(&["label=a", "label=b=2"]).unwrap();
        assert!(f.match_labels(&both));
        assert!(!f.match_labels(&only_a));
        assert!(!f.match_labels(&none));
        let f = Filters::parse(&["label=a=2"]).unwrap();
        assert!(!f.match_labels(&both));
        let f = Filters::parse(&["label!=a", "label!=b"]).unwrap();
        assert!(!f.match_labels(&both));
        assert!(f.match_labels(&only_a));
        assert!(f.match_labels(&none));
        let f = Filters::parse(&["label!=a=2"]).unwrap();
        assert!(f.match_labels(&both));
        assert!(Filters::default().match_labels(&none));
    }

    #[test]
    fn until_takes_one_value() {
        let now = 1_700_000_000 * 1_000_000_000_i128;
        let f = Filters::parse(&["until=1h"]).unwrap();
        assert_eq!(f.until(now), Ok(Some(now - 3600 * 1_000_000_000)));
        let f = Filters::parse(&["until=1h", "until=2h"]).unwrap();
        assert_eq!(f.until(now), Err(FilterError::TwoUntils));
        assert_eq!(Filters::default().until(now), Ok(None));
    }
}
