//! The request side of the small HTTP servers tests write (a fake registry
//! that misbehaves, a token service, a v1 search index): one request's
//! line and headers, read as they come.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP request's head.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent (`/v2/x/manifests/1?n=2`).
    pub path: String,
    /// Header names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
}

/// Reads one request's head from `conn`, waiting at most 10 s for it.
pub fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    read_request_from(BufReader::new(conn))
}

/// Reads one request's head from `r` (a TLS stream's reader, say).
pub fn read_request_from(mut r: impl BufRead) -> std::io::Result<Request> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Request {
        method,
        path,
        headers,
    })
}
