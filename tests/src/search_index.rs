//! A registry index that answers the v1 search API (`/v1/_ping`,
//! `/v1/search?q=TERM&n=LIMIT`) over plain HTTP on 127.0.0.1, from a fixed
//! catalogue: what Docker Hub's index does, without the internet. docker's
//! daemon and berth are both pointed at it (`search 127.0.0.1:PORT/TERM`),
//! so what they print can be compared; Debian's docker-registry has no
//! search.
//!
//! The catalogue is written in an order that is not the star order, with
//! two entries of equal stars, a description longer than docker's column
//! and one with a line break, so that sorting, truncation and filters show.

use std::io::Write;
use std::net::{TcpListener, TcpStream};

/// (name, description, stars, official, automated)
pub const CATALOGUE: &[(&str, &str, u64, bool, bool)] = &[
    ("other/tiny", "", 0, false, false),
    (
        "someone/busybox-extra",
        "A busybox with more tools in it, and a description longer than the column docker gives it",
        12,
        false,
        true,
    ),
    ("library/busybox", "Busybox base image.", 3000, true, false),
    (
        "team/busybox-two-lines",
        "First line\nsecond line",
        12,
        false,
        false,
    ),
    (
        "team/alpine-like",
        "Small, with é and ü in its words",
        40,
        false,
        true,
    ),
];

/// A running index; it lives as long as the test process (its thread
/// only accepts and answers).
#[derive(Debug)]
pub struct SearchIndex {
    port: u16,
}

impl SearchIndex {
    pub fn start() -> SearchIndex {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the search index");
        let port = listener.local_addr().expect("its address").port();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                answer(conn);
            }
        });
        SearchIndex { port }
    }

    /// `127.0.0.1:PORT`, as a search term's index.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Answers one request; anything that is not a GET (a TLS hello: clients
/// try HTTPS first) is dropped, which the client sees as a failed
/// handshake.
fn answer(conn: TcpStream) {
    let Ok(req) = crate::http::read_request(&conn) else {
        return;
    };
    if req.method != "GET" {
        return;
    }
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let (status, body) = match path {
        "/v1/_ping" => ("200 OK", "true".to_string()),
        "/v1/search" => ("200 OK", results(query)),
        _ => ("404 Not Found", "{}".to_string()),
    };
    let _ = write!(
        &conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The search's answer: the catalogue's entries whose name holds `q`, at
/// most `n` of them, in the catalogue's order.
fn results(query: &str) -> String {
    let mut q = String::new();
    let mut n = 25usize;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "q" => q = unescape(v),
            "n" => n = v.parse().unwrap_or(25),
            _ => {}
        }
    }
    let found: Vec<serde_json::Value> = CATALOGUE
        .iter()
        .filter(|(name, ..)| name.contains(q.as_str()))
        .take(n)
        .map(|(name, description, stars, official, automated)| {
            serde_json::json!({
                "name": name,
                "description": description,
                "star_count": stars,
                "is_official": official,
                "is_automated": automated,
            })
        })
        .collect();
    serde_json::json!({"num_results": found.len(), "query": q, "results": found}).to_string()
}

/// A query value's percent escapes and `+` decoded.
fn unescape(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
