//! One registry's HTTP conversation.
//!
//! Auth follows the registry's challenges: anonymous first; a 401 with
//! `WWW-Authenticate: Basic` is answered with the stored credentials; one
//! with `Bearer realm,service,scope` sends them (if any) to the token
//! endpoint for a token covering every scope this client needs, then the
//! request is retried. Redirects are followed by hand so that the
//! `Authorization` header only ever goes to the registry's own host (blob
//! downloads are often redirected to a storage service). Blob downloads
//! resume with `Range` after a dropped connection or a 5xx.
//!
//! Credentials go to a token service (the challenge's realm, which the
//! registry names) only when it is the registry's own origin (scheme, host
//! and port), or HTTPS with a certificate verified against the system's
//! roots, the registry's CAs (`--cert-dir` or its certs.d) and the realm
//! host's certs.d, even when the registry itself is insecure. Docker Hub's realm (https://auth.docker.io)
//! is another host and gets them; a registry that names a plain-HTTP realm
//! elsewhere (another host, or another port of its own host) gets a refusal
//! instead: it would hand the password to whoever runs or watches that
//! service. Without credentials any realm is asked (nothing to leak).

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::auth::{Challenge, Credentials};
use crate::endpoint::Endpoint;
use crate::error::{RegistryError, Result};
use crate::progress::Progress;

/// A request body's reader that keeps its own failure, so that a failed
/// local read is told apart from a failed connection (ureq reports both
/// as transport errors).
struct WatchedRead<'a, 'b> {
    inner: Box<dyn Read + 'b>,
    failed: &'a RefCell<Option<io::Error>>,
}

impl Read for WatchedRead<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let told = io::Error::new(e.kind(), e.to_string());
            *self.failed.borrow_mut() = Some(e);
            told
        })
    }
}

/// How many times a dropped blob download is resumed.
const RESUME_ATTEMPTS: u32 = 4;

/// A request body.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream of a known length: sent once, so the request must not need
    /// a second try for auth (the caller authenticates with an earlier
    /// request of the same scope). The text names what is read (`local
    /// layer sha256:…`), for the error when reading it fails.
    Stream(Box<dyn Read + 'a>, u64, String),
}

impl Body<'_> {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(..))
    }
}

#[derive(Debug, Default)]
struct AuthState {
    /// The `Authorization` value for the registry's host, once known.
    header: Option<String>,
}

/// A registry client for one set of repositories and actions (the token
/// scopes: `repository:team/app:pull,push`).
pub struct Client {
    pub endpoint: Endpoint,
    creds: Option<Credentials>,
    scopes: Vec<String>,
    agent: ureq::Agent,
    /// `https://host` or, for an insecure registry that does not speak
    /// TLS, `http://host`; found by the first request.
    base: OnceLock<String>,
    /// What that first request asks for: `/v2/` of a registry, `/v1/_ping`
    /// of a v1 index (search).
    probe: &'static str,
    auth: Mutex<AuthState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// `scheme://authority` of a URL, lowercased.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{}://{}", scheme, authority).to_ascii_lowercase()
}

/// `Location` resolved against the URL it came from.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{}{}", origin(base), location)
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{location}")
    }
}

/// Percent-encodes a query value.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The v1 index's probe, docker's search's ping.
const INDEX_PROBE: &str = "/v1/_ping";

impl Client {
    pub fn new(
        endpoint: Endpoint,
        creds: Option<Credentials>,
        scopes: Vec<String>,
    ) -> Result<Client> {
        Client::with_probe(endpoint, creds, scopes, "/v2/")
    }

    /// A client of a v1 index (`search`): found by its `/v1/_ping`, as
    /// docker's daemon finds it.
    pub fn for_index(endpoint: Endpoint, creds: Option<Credentials>) -> Result<Client> {
        Client::with_probe(endpoint, creds, Vec::new(), INDEX_PROBE)
    }

    fn with_probe(
        endpoint: Endpoint,
        creds: Option<Credentials>,
        scopes: Vec<String>,
        probe: &'static str,
    ) -> Result<Client> {
        let agent = ureq::AgentBuilder::new()
            .tls_config(endpoint.tls_config()?)
            .redirects(0)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            endpoint,
            creds,
            scopes,
            agent,
            base: OnceLock::new(),
            probe,
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// The scope of a repository and its actions.
    pub fn scope(repository: &str, actions: &str) -> String {
        format!("repository:{repository}:{actions}")
    }

    fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// The registry's base URL: `https://`, or for an insecure registry
    /// whose port does not answer TLS, `http://`. The probe (`GET /v2/`,
    /// or a v1 index's `/v1/_ping`) also learns the auth challenge.
    fn base(&self) -> Result<&str> {
        if let Some(b) = self.base.get() {
            return Ok(b);
        }
        let https = format!("https://{}", self.host());
        let probe = self.agent.get(&format!("{https}{}", self.probe)).call();
        let chosen = match probe {
            Ok(_) | Err(ureq::Error::Status(..)) => https,
            Err(ureq::Error::Transport(t)) if self.endpoint.insecure => {
                let http = format!("http://{}", self.host());
                match self.agent.get(&format!("{http}{}", self.probe)).call() {
                    Ok(_) | Err(ureq::Error::Status(..)) => http,
                    Err(ureq::Error::Transport(t2)) => return Err(self.both_failed(&t, &t2)),
                }
            }
            Err(ureq::Error::Transport(t)) => return Err(self.transport_error(&t, None)),
        };
        Ok(self.base.get_or_init(|| chosen))
    }

    /// Finds the base URL now (the probe), for a caller whose next check
    /// comes after it, as docker's search checks its limit.
    pub(crate) fn reach(&self) -> Result<()> {
        self.base().map(|_| ())
    }

    /// Neither HTTPS nor plain HTTP reached the registry: the plain
    /// attempt's error, or for a v1 index that refused both, docker's
    /// search's sentence naming both.
    fn both_failed(&self, https: &ureq::Transport, http: &ureq::Transport) -> RegistryError {
        let second = self.transport_error(http, Some(https));
        if self.probe == INDEX_PROBE && second.is_connection_refused() {
            let first = self.transport_error(https, None);
            if first.is_connection_refused() {
                return RegistryError::IndexUnreachable {
                    host: self.host().to_string(),
                    https: first.to_string(),
                    http: second.to_string(),
                };
            }
        }
        second
    }

    /// A transport error as the user should read it: unreachable, or TLS
    /// with what to do about it.
    fn transport_error(
        &self,
        t: &ureq::Transport,
        https_attempt: Option<&ureq::Transport>,
    ) -> RegistryError {
        let mut chain = t.to_string();
        let mut source = std::error::Error::source(t);
        let mut tls = None;
        while let Some(s) = source {
            tls = tls.or_else(|| rustls_error(s));
            let text = s.to_string();
            if !chain.contains(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            source = s.source();
        }
        let _ = https_attempt;
        let mut cause = std::error::Error::source(t);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    if let Some(url) = t.url() {
                        return RegistryError::ConnectionRefused {
                            url: url.to_string(),
                            host: self.host().to_string(),
                        };
                    }
                }
            }
            cause = c.source();
        }
        if let Some(tls) = tls {
            // What came back was not TLS at all (an HTTP answer read as a
            // TLS record): the registry speaks plain HTTP.
            let plain_http = matches!(
                tls,
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }
            );
            let hint = if plain_http {
                "; the registry may speak plain HTTP: if you trust it, use --tls-verify=false"
                    .to_string()
            } else {
                format!(
                    "; if it uses a private CA, give it with --cert-dir or put it in /etc/containers/certs.d/{}/ca.crt",
                    self.host()
                )
            };
            return RegistryError::Tls {
                host: self.host().to_string(),
                detail: chain,
                hint,
            };
        }
        RegistryError::Unreachable {
            host: self.host().to_string(),
            detail: chain,
        }
    }

    /// `path` (`/v2/…`) on the registry, or an absolute URL as given.
    pub(crate) fn url(&self, path_or_url: &str) -> Result<String> {
        if path_or_url.contains("://") {
            Ok(path_or_url.to_string())
        } else if path_or_url.starts_with('/') {
            Ok(format!("{}{path_or_url}", self.base()?))
        } else {
            Ok(format!("{}/{path_or_url}", self.base()?))
        }
    }

    /// Sends a request; returns the response whatever its status (after
    /// auth and redirects), or a transport error.
    pub(crate) fn send(
        &self,
        method: &str,
        path_or_url: &str,
        headers: &[(&str, String)],
        mut body: Body<'_>,
    ) -> Result<ureq::Response> {
        let mut url = self.url(path_or_url)?;
        let registry_origin = origin(self.base()?);
        let mut method = method.to_string();
        let mut authed_retry = false;
        let local_failure = RefCell::new(None);
        let mut stream_what = String::new();
        for _ in 0..10 {
            let mut req = self.agent.request(&method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let same_host = origin(&url) == registry_origin;
            if same_host {
                if let Some(h) = &self.auth.lock().unwrap_or_else(|e| e.into_inner()).header {
                    req = req.set("Authorization", h);
                }
            }
            let replayable = body.replayable();
            let result = match std::mem::replace(&mut body, Body::Empty) {
                Body::Empty => {
                    if method == "PUT" || method == "POST" || method == "PATCH" {
                        req.set("Content-Length", "0").send_bytes(&[])
                    } else {
                        req.call()
                    }
                }
                Body::Bytes(b) => {
                    body = Body::Bytes(b);
                    req.send_bytes(b)
                }
                Body::Stream(r, len, what) => {
                    let watched = WatchedRead {
                        inner: r,
                        failed: &local_failure,
                    };
                    stream_what = what;
                    req.set("Content-Length", &len.to_string()).send(watched)
                }
            };
            let resp = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                // ureq reports a failed read of the body as a transport
                // error: it is ours, not the network's.
                Err(ureq::Error::Transport(_)) if local_failure.borrow().is_some() => {
                    let source = local_failure
                        .borrow_mut()
                        .take()
                        .unwrap_or_else(|| io::Error::other("read failed"));
                    return Err(RegistryError::LocalRead {
                        what: stream_what,
                        source,
                    });
                }
                Err(ureq::Error::Transport(t)) => return Err(self.transport_error(&t, None)),
            };
            match resp.status() {
                401 if same_host && !authed_retry && replayable => {
                    let challenge = resp.header("www-authenticate").and_then(Challenge::parse);
                    // Drain the small error body so the connection is reused
                    // (a failure only costs the reuse).
                    let _ = io::copy(&mut resp.into_reader().take(1 << 16), &mut io::sink());
                    self.answer(challenge)?;
                    authed_retry = true;
                    continue;
                }
                301 | 302 | 303 | 307 | 308 => {
                    let Some(location) = resp.header("location") else {
                        return Ok(resp);
                    };
                    let next = resolve(&url, location);
                    if resp.status() == 303 || (resp.status() <= 302 && method != "HEAD") {
                        method = "GET".into();
                        body = Body::Empty;
                    } else if !replayable {
                        return Err(RegistryError::Protocol(format!(
                            "{} redirected an upload to {next}: not supported",
                            self.host()
                        )));
                    }
                    url = next;
                    continue;
                }
                _ => return Ok(resp),
            }
        }
        Err(RegistryError::Protocol(format!(
            "{}: too many redirects for {path_or_url}",
            self.host()
        )))
    }

    /// Checks that the registry accepts this client's credentials (what
    /// `login` does before it stores them): `GET /v2/` through the
    /// registry's challenge.
    pub fn check_login(&self) -> Result<()> {
        let resp = self.send("GET", "/v2/", &[], Body::Empty)?;
        match resp.status() {
            200 => Ok(()),
            _ => Err(self.status_error(resp, "the login")),
        }
    }

    /// Answers a 401's challenge: basic credentials or a bearer token.
    fn answer(&self, challenge: Option<Challenge>) -> Result<()> {
        let header = match challenge {
            Some(Challenge::Basic) => match &self.creds {
                Some(c) => c.basic(),
                None => return Err(self.unauthorized("the registry")),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => format!("Bearer {}", self.token(&realm, service.as_deref(), scope)?),
            None => return Err(self.unauthorized("the registry")),
        };
        self.auth.lock().unwrap_or_else(|e| e.into_inner()).header = Some(header);
        Ok(())
    }

    pub(crate) fn unauthorized(&self, what: &str) -> RegistryError {
        let hint = match &self.creds {
            None => format!("; log in with `berth login {}`", self.endpoint.name),
            Some(_) => format!(
                "; check the credentials (`berth login {}`)",
                self.endpoint.name
            ),
        };
        RegistryError::Unauthorized {
            registry: self.endpoint.name.clone(),
            what: what.to_string(),
            hint,
        }
    }

    /// A bearer token for every scope this client needs (and the one the
    /// challenge asked for).
    fn token(&self, realm: &str, service: Option<&str>, scope: Option<String>) -> Result<String> {
        let (agent, creds) = self.token_agent(realm)?;
        let mut scopes = self.scopes.clone();
        if let Some(s) = scope {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            url.push_str(&format!("{sep}service={}", query_escape(s)));
            sep = '&';
        }
        for s in &scopes {
            url.push_str(&format!("{sep}scope={}", query_escape(s)));
            sep = '&';
        }
        let mut req = agent.get(&url);
        if let Some(c) = creds {
            req = req.set("Authorization", &c.basic());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401 | 403, _)) => {
                return Err(self.unauthorized("a token (the token service refused the credentials)"))
            }
            Err(ureq::Error::Status(code, _)) => {
                return Err(RegistryError::Http {
                    host: origin(realm),
                    status: code,
                    what: "a token request".into(),
                    detail: String::new(),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                let realm_host = origin(realm)
                    .split_once("://")
                    .map_or_else(String::new, |(_, a)| a.to_string());
                return Err(match self.transport_error(&t, None) {
                    // The token service's certificate, not the registry's.
                    RegistryError::Tls { detail, .. } if realm_host != self.host() => {
                        RegistryError::Tls {
                            hint: format!(
                                "; the token service's certificate must verify before it gets credentials: give its CA with --cert-dir or in /etc/containers/certs.d/{realm_host}/ca.crt"
                            ),
                            host: realm_host,
                            detail,
                        }
                    }
                    e => e,
                });
            }
        };
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(crate::error::io_err("read the token response"))?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Protocol(format!("the token service at {realm} sent no JSON: {e}"))
        })?;
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(String::from)
            .ok_or_else(|| {
                RegistryError::Protocol(format!("the token service at {realm} sent no token"))
            })
    }

    /// How a token is asked of `realm`, and with which credentials (see the
    /// module's notes): the registry's own origin is trusted as the
    /// registry is; another origin gets them only over HTTPS, through an
    /// agent that verifies its certificate whatever `--tls-verify` said
    /// of the registry.
    fn token_agent(&self, realm: &str) -> Result<(ureq::Agent, Option<&Credentials>)> {
        let Some(creds) = &self.creds else {
            return Ok((self.agent.clone(), None));
        };
        let realm_origin = origin(realm);
        let registry_origin = origin(self.base()?);
        if realm_origin == registry_origin {
            return Ok((self.agent.clone(), Some(creds)));
        }
        match realm_origin.strip_prefix("https://") {
            Some(authority) if !authority.is_empty() => {
                let agent = ureq::AgentBuilder::new()
                    .tls_config(self.endpoint.realm_tls_config(authority)?)
                    .redirects(0)
                    .timeout_connect(Duration::from_secs(30))
                    .timeout_read(Duration::from_secs(120))
                    .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
                    .build();
                Ok((agent, Some(creds)))
            }
            _ => Err(RegistryError::Refused(format!(
                "{} names the token service {realm}, plain HTTP on another origin than the registry ({registry_origin}); refusing to send it the credentials",
                self.endpoint.name
            ))),
        }
    }

    /// The error for a response that was not what we wanted, named from
    /// the distribution error body when there is one.
    pub(crate) fn status_error(&self, resp: ureq::Response, what: &str) -> RegistryError {
        let status = resp.status();
        let mut body = Vec::new();
        // The status is the error; the body only adds to its words.
        let _ = resp.into_reader().take(1 << 16).read_to_end(&mut body);
        let errors: Vec<(String, String)> = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["errors"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["code"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let code = errors.first().map(|(c, _)| c.as_str()).unwrap_or("");
        match (status, code) {
            (401, _) | (_, "UNAUTHORIZED") => self.unauthorized(what),
            (403, _) | (_, "DENIED") => RegistryError::Denied {
                registry: self.endpoint.name.clone(),
                what: what.to_string(),
            },
            _ => {
                let detail = match errors.first() {
                    Some((c, m)) => format!(": {c}: {m}"),
                    None => String::new(),
                };
                RegistryError::Http {
                    host: self.host().to_string(),
                    status,
                    what: what.to_string(),
                    detail,
                }
            }
        }
    }

    /// A blob as a stream that resumes after a dropped connection.
    pub(crate) fn blob_stream<'a>(
        &'a self,
        repository: &str,
        digest: &str,
        size: u64,
        progress: &'a dyn Progress,
    ) -> Result<BlobStream<'a>> {
        let mut s = BlobStream {
            client: self,
            path: format!("/v2/{repository}/blobs/{digest}"),
            digest: digest.to_string(),
            size,
            offset: 0,
            inner: None,
            attempts: 0,
            why: String::new(),
            progress,
        };
        s.inner = Some(s.open()?);
        Ok(s)
    }
}

/// A blob download. A connection that drops (an error or an early end)
/// or a 5xx is retried from where it stopped with `Range` (or, from a
/// server that ignores ranges, from the start with what was read
/// skipped), a few times with a pause; then the read fails with why.
pub(crate) struct BlobStream<'a> {
    client: &'a Client,
    path: String,
    digest: String,
    size: u64,
    offset: u64,
    inner: Option<Box<dyn Read + Send + Sync>>,
    attempts: u32,
    /// Why the last connection ended early (for the final error).
    why: String,
    progress: &'a dyn Progress,
}

impl BlobStream<'_> {
    fn what(&self) -> String {
        format!("blob {}", self.digest)
    }

    /// GETs the blob from `offset`.
    fn open(&self) -> Result<Box<dyn Read + Send + Sync>> {
        let mut headers = Vec::new();
        if self.offset > 0 {
            headers.push(("Range", format!("bytes={}-", self.offset)));
        }
        let resp = self.client.send("GET", &self.path, &headers, Body::Empty)?;
        match resp.status() {
            200 => {
                let mut r = resp.into_reader();
                if self.offset > 0 {
                    // The server ignored the range: skip what we have.
                    let skipped = io::copy(&mut (&mut r).take(self.offset), &mut io::sink())
                        .map_err(crate::error::io_err(self.what()))?;
                    if skipped != self.offset {
                        return Err(RegistryError::Protocol(format!(
                            "{}: the retry ended after {skipped} bytes",
                            self.what()
                        )));
                    }
                }
                Ok(r)
            }
            206 => {
                let start = resp
                    .header("content-range")
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(self.offset) {
                    return Err(RegistryError::Protocol(format!(
                        "{}: asked to resume at byte {}, the registry sent another range",
                        self.what(),
                        self.offset
                    )));
                }
                Ok(resp.into_reader())
            }
            404 => Err(RegistryError::Http {
                host: self.client.host().to_string(),
                status: 404,
                what: self.what(),
                detail: ": BLOB_UNKNOWN: the registry does not have it".into(),
            }),
            _ => Err(self.client.status_error(resp, &self.what())),
        }
    }

    fn retryable(e: &RegistryError) -> bool {
        match e {
            RegistryError::Unreachable { .. }
            | RegistryError::Refused { .. }
            | RegistryError::Io { .. } => true,
            RegistryError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

impl Read for BlobStream<'_> {
    /// Fills `buf` (up to 1 MiB) before returning: ureq hands the body
    /// over in pieces of its 8 KiB buffer, and what reads this stream
    /// (decompressor, unpack, file writes) works per call, so whole
    /// buffers mean ~30 times fewer writes.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(1 << 20);
        let mut filled = 0;
        while filled < want {
            match self.read_some(&mut buf[filled..want]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                // What was read is handed over; the error comes again
                // on the next call (the stream has given up).
                Err(_) if filled > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

impl BlobStream<'_> {
    /// One read from the connection, resuming it when it dropped.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = self.inner.as_mut() {
                match r.read(buf) {
                    Ok(0) if self.offset >= self.size => return Ok(0),
                    Ok(0) => {
                        self.why = format!(
                            "the connection ended at byte {} of {}",
                            self.offset, self.size
                        )
                    }
                    Ok(n) => {
                        self.offset += n as u64;
                        self.progress
                            .advance(crate::progress::short(&self.digest), n as u64);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.why = format!(
                            "the connection failed at byte {} of {}: {e}",
                            self.offset, self.size
                        )
                    }
                }
                self.inner = None;
            }
            if self.attempts >= RESUME_ATTEMPTS {
                return Err(io::Error::other(format!(
                    "{}: {}; gave up after {} retries",
                    self.what(),
                    self.why,
                    self.attempts
                )));
            }
            self.attempts += 1;
            std::thread::sleep(Duration::from_millis(250 * u64::from(self.attempts)));
            match self.open() {
                Ok(r) => self.inner = Some(r),
                Err(e) if Self::retryable(&e) => {
                    if let Some(cut) = self.why.find("; last retry: ") {
                        self.why.truncate(cut);
                    }
                    self.why = format!("{}; last retry: {e}", self.why);
                }
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "{}: {}; retry: {e}",
                        self.what(),
                        self.why
                    )))
                }
            }
        }
    }
}

/// The TLS failure `e` is or wraps: rustls's error reaches us inside an
/// `io::Error`, whose `source()` skips the error it wraps, so its inner
/// error is looked at too.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    e.downcast_ref::<rustls::Error>().or_else(|| {
        e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_and_origins_compare() {
        assert_eq!(
            resolve("https://r.example/v2/a/blobs/x", "/other?y=1"),
            "https://r.example/other?y=1"
        );
        assert_eq!(
            resolve("https://r.example/v2/a", "https://s3.example/b"),
            "https://s3.example/b"
        );
        assert_eq!(
            origin("HTTPS://R.example:5000/v2/"),
            "https://r.example:5000"
        );
        assert_ne!(
            origin("https://r.example:5000/v2/"),
            origin("https://r.example:5001/v2/")
        );
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
