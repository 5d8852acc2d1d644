//! `berth search`: docker's `search`, against the v1 search API of the
//! index the term names (Docker Hub's by default), filtered and printed as
//! docker 20.10 does.

use anyhow::Result;
use berth_engine::filters::{FilterError, Filters};
use berth_registry::search::{SearchResult, Term};
use berth_template::Value;

use crate::errors::FromDaemon;
use crate::format;
use crate::transfer::RegistryArgs;

/// `berth search`
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Filter output based on conditions provided (stars=N, is-official=BOOL, is-automated=BOOL)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Max number of search results
    #[arg(long, default_value_t = 25, allow_negative_numbers = true)]
    pub limit: i64,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// What to search for: TERM, or INDEX/TERM for another index than Docker Hub's
    #[arg(value_name = "TERM")]
    pub term: String,
}

/// What the filters ask for, checked as docker's daemon checks them,
/// before the index is asked.
#[derive(Debug, Default)]
struct Wanted {
    stars: Option<u64>,
    official: Option<bool>,
    automated: Option<bool>,
}

impl Wanted {
    fn parse(f: &Filters) -> Result<Wanted, FilterError> {
        f.validate(&["is-automated", "is-official", "stars"])?;
        let mut stars: Option<i64> = None;
        for s in f.get("stars") {
            let n: i64 = s.parse().map_err(|_| FilterError::BadValue {
                key: "stars".into(),
                value: s.clone(),
            })?;
            // Several values: the highest counts.
            stars = Some(stars.map_or(n, |m| m.max(n)));
        }
        // Docker's GetBoolOrDefault: one value, `true` or `false`; its
        // error lists the values as Go prints a slice.
        let boolean = |key: &str| -> Result<Option<bool>, FilterError> {
            match f.get(key) {
                [] => Ok(None),
                [v] if v == "true" => Ok(Some(true)),
                [v] if v == "false" => Ok(Some(false)),
                values => Err(FilterError::BadValue {
                    key: key.into(),
                    value: format!("[{}]", values.join(" ")),
                }),
            }
        };
        Ok(Wanted {
            stars: stars.map(|n| u64::try_from(n).unwrap_or(0)),
            official: boolean("is-official")?,
            automated: boolean("is-automated")?,
        })
    }

    fn admits(&self, r: &SearchResult) -> bool {
        self.stars.is_none_or(|n| r.star_count >= n)
            && self.official.is_none_or(|o| r.is_official == o)
            && self.automated.is_none_or(|a| r.is_automated == a)
    }
}

pub fn search(a: &SearchArgs) -> Result<i32> {
    let filters = crate::prune::parse_filters("search", "-f, --filter", &a.filter)?;
    let wanted = Wanted::parse(&filters).map_err(|e| FromDaemon::wrap(e.into(), false))?;
    let fmt = format::ListFormat::new(
        a.format.as_deref(),
        r"table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}",
    )?;
    let term = Term::parse(&a.term);
    let client = a
        .registry
        .index_client(&term)
        .map_err(|e| FromDaemon::wrap(e, false))?;
    let mut results = berth_registry::search::search(&client, &term, a.limit)
        .map_err(|e| FromDaemon::wrap(e.into(), false))?;
    results.retain(|r| wanted.admits(r));
    // Docker's client lists the most starred first (a stable sort: equal
    // counts keep the index's order).
    results.sort_by_key(|r| std::cmp::Reverse(r.star_count));
    let header = format::header(&[
        ("Name", "NAME"),
        ("Description", "DESCRIPTION"),
        ("StarCount", "STARS"),
        ("IsOfficial", "OFFICIAL"),
        ("IsAutomated", "AUTOMATED"),
    ]);
    let rows = results.iter().map(|r| row(r, !a.no_trunc));
    fmt.write(&header, rows, &mut std::io::stdout().lock())?;
    Ok(0)
}

/// Docker's `*formatter.searchContext`: every field a string; the two
/// booleans `[OK]` or nothing in a template, `true` or `false` in its
/// JSON.
fn row(r: &SearchResult, trunc: bool) -> Value {
    let description = r.description.replace(['\n', '\r'], " ");
    let description = if trunc {
        format::ellipsis(&description, 45)
    } else {
        description
    };
    let shown = |b: bool| Value::from(if b { "[OK]" } else { "" });
    let json = |b: bool| Value::from(if b { "true" } else { "false" });
    format::context_with_json(
        "*registry.searchContext",
        vec![
            ("Description", Value::from(description)),
            ("IsAutomated", shown(r.is_automated)),
            ("IsOfficial", shown(r.is_official)),
            ("Name", Value::from(r.name.as_str())),
            ("StarCount", Value::from(r.star_count.to_string())),
        ],
        vec![
            ("IsAutomated", json(r.is_automated)),
            ("IsOfficial", json(r.is_official)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(args: &[&str]) -> Result<Wanted, FilterError> {
        Wanted::parse(&Filters::parse(args).unwrap())
    }

    #[test]
    fn filters_are_checked_in_docker_s_words() {
        assert_eq!(
            wanted(&["foo=bar"]).unwrap_err().to_string(),
            "Invalid filter 'foo'"
        );
        assert_eq!(
            wanted(&["stars=x"]).unwrap_err().to_string(),
            "Invalid filter 'stars=x'"
        );
        assert_eq!(
            wanted(&["is-official=maybe"]).unwrap_err().to_string(),
            "Invalid filter 'is-official=[maybe]'"
        );
        assert_eq!(
            wanted(&["is-official=false", "is-official=true"])
                .unwrap_err()
                .to_string(),
            "Invalid filter 'is-official=[false true]'"
        );
        let w = wanted(&["stars=3", "stars=10", "is-automated=true"]).unwrap();
        assert_eq!(
            (w.stars, w.automated, w.official),
            (Some(10), Some(true), None)
        );
        assert_eq!(wanted(&["stars=-1"]).unwrap().stars, Some(0));
    }

    #[test]
    fn results_are_admitted_by_every_filter() {
        let r = SearchResult {
            name: "a".into(),
            description: String::new(),
            star_count: 12,
            is_official: false,
            is_automated: true,
        };
        assert!(wanted(&["stars=12"]).unwrap().admits(&r));
        assert!(!wanted(&["stars=13"]).unwrap().admits(&r));
        assert!(!wanted(&["is-official=true"]).unwrap().admits(&r));
        assert!(wanted(&["is-automated=true", "is-official=false"])
            .unwrap()
            .admits(&r));
    }
}
