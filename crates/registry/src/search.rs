//! `search`: the registry index's v1 search API (`GET /v1/search`), which
//! Docker Hub's index (`index.docker.io`) and private indexes serve; the
//! distribution (v2) API has no search.
//!
//! Docker's daemon does it this way: the term's first component names the
//! index when it looks like a host (a `.` or a `:` in it, or `localhost`),
//! else the term is searched on Docker Hub's index; the index is pinged
//! (`/v1/_ping`, [`Client::for_index`]) over HTTPS, and over plain HTTP too
//! when it is insecure; then `GET /v1/search?q=TERM&n=LIMIT` with
//! `X-Docker-Token: true`.

use std::io::Read;

use serde::Deserialize;

use crate::client::{query_escape, Body, Client};
use crate::endpoint::Endpoint;
use crate::error::{RegistryError, Result};

/// Docker Hub's index, where a term without an index host is searched.
pub const DOCKER_HUB_INDEX: &str = "index.docker.io";

/// A search answer is small; one that is not is refused.
const MAX_ANSWER: u64 = 16 << 20;

/// One repository the index found, as the v1 API names its fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// A search term split as docker's daemon splits it: the index (its
/// registry name: `docker.io` or `host:port`) and the term sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub index: String,
    pub query: String,
}

impl Term {
    pub fn parse(term: &str) -> Term {
        match term.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                Term {
                    index: first.to_string(),
                    query: rest.to_string(),
                }
            }
            _ => Term {
                index: "docker.io".to_string(),
                // Docker Hub keeps official images under `library/`, but
                // its index knows them by their short name.
                query: term.strip_prefix("library/").unwrap_or(term).to_string(),
            },
        }
    }

    /// Whether this is Docker Hub's index.
    pub fn is_docker_hub(&self) -> bool {
        self.index == "docker.io"
    }

    /// The endpoint of the index: Docker Hub's index host, or the named
    /// one.
    pub fn endpoint(&self, insecure: bool, cert_dir: Option<std::path::PathBuf>) -> Endpoint {
        let mut e = Endpoint::new(&self.index, insecure, cert_dir);
        if self.is_docker_hub() {
            e.host = DOCKER_HUB_INDEX.to_string();
        }
        e
    }
}

/// Searches `term` (as [`Term::parse`] split it) on its index, asking for
/// at most `limit` results (docker's range: 1 to 100, checked after the
/// index is found, as docker's daemon does). The results come in the
/// index's order.
pub fn search(client: &Client, term: &Term, limit: i64) -> Result<Vec<SearchResult>> {
    client.reach()?;
    if !(1..=100).contains(&limit) {
        return Err(RegistryError::InvalidOption(format!(
            "Limit {limit} is outside the range of [1, 100]"
        )));
    }
    let path = format!("/v1/search?q={}&n={limit}", query_escape(&term.query));
    let resp = client.send(
        "GET",
        &path,
        &[("X-Docker-Token", "true".to_string())],
        Body::Empty,
    )?;
    if resp.status() != 200 {
        return Err(RegistryError::Protocol(format!(
            "Unexpected status code {}",
            resp.status()
        )));
    }
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_ANSWER + 1)
        .read_to_end(&mut body)
        .map_err(|e| RegistryError::Protocol(format!("the search's answer: {e}")))?;
    if body.len() as u64 > MAX_ANSWER {
        return Err(RegistryError::Protocol(
            "the search's answer is larger than 16 MiB".into(),
        ));
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|e| RegistryError::Protocol(format!("the search's answer: {e}")))?;
    Ok(answer.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_index_as_docker_splits_them() {
        let t = |s: &str| {
            let t = Term::parse(s);
            (t.index, t.query)
        };
        assert_eq!(t("busybox"), ("docker.io".into(), "busybox".into()));
        assert_eq!(t("library/busybox"), ("docker.io".into(), "busybox".into()));
        assert_eq!(t("team/app"), ("docker.io".into(), "team/app".into()));
        assert_eq!(
            t("127.0.0.1:5000/team/app"),
            ("127.0.0.1:5000".into(), "team/app".into())
        );
        assert_eq!(t("localhost/x"), ("localhost".into(), "x".into()));
        assert_eq!(
            t("r.example/library/x"),
            ("r.example".into(), "library/x".into())
        );
        assert_eq!(t("r.example/"), ("r.example".into(), "".into()));
        assert_eq!(
            Term::parse("busybox").endpoint(false, None).host,
            DOCKER_HUB_INDEX
        );
    }
}
