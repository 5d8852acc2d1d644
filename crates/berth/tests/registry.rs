//! pull, push, login and logout through the real binary, against Debian's
//! `docker-registry` started by each test on 127.0.0.1 (plain HTTP; TLS
//! with a test CA and htpasswd; bearer tokens from a token service written
//! here), against podman and skopeo, and against a hostile registry
//! written here (corrupt, truncated, wrong digest header, 500 mid-way).

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_testkit::http::{read_request, read_request_from, Request};
use berth_testkit::registry::{free_port, tool, Registry};
use berth_testkit::{busybox_rootfs, expect_code, output_via_files, stderr, stdout};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// A store of its own, and an auth file and HOME of its own (so neither
/// the host's nor another test's credentials are read).
struct Berth {
    store: berth_testkit::store::Store,
    home: PathBuf,
}

impl std::ops::Deref for Berth {
    type Target = berth_testkit::store::Store;
    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

impl Berth {
    fn new() -> Berth {
        let run = tempfile::tempdir_in("/run").unwrap();
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_path_buf();
        let store = berth_testkit::store::Store::empty(BIN)
            .flag("--runroot")
            .flag(run.path())
            .env("HOME", &h)
            .env("REGISTRY_AUTH_FILE", h.join("auth.json"))
            .env("CONTAINERS_REGISTRIES_CONF", h.join("registries.conf"))
            .env_remove("DOCKER_CONFIG")
            .env_remove("XDG_RUNTIME_DIR")
            .keep(run)
            .keep(home);
        Berth { store, home: h }
    }

    fn auth_file(&self) -> PathBuf {
        self.home.join("auth.json")
    }

    /// Runs with `input` on stdin.
    fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Imports the busybox rootfs as `name`, with `extra` as one more file.
    fn import_busybox(&self, name: &str, extra: &str) -> String {
        let work = tempfile::tempdir().unwrap();
        let rootfs = work.path().join("rootfs");
        let st = Command::new("cp")
            .arg("-a")
            .arg(busybox_rootfs())
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::write(rootfs.join("etc/extra"), extra).unwrap();
        let tar = work.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        self.ok(&[
            "import",
            "-c",
            "CMD [\"/bin/cat\", \"/etc/extra\"]",
            tar.to_str().unwrap(),
            name,
        ])
        .trim()
        .to_string()
    }

    /// The store holds no image and nothing a failed command left.
    fn assert_empty_store(&self) {
        assert_eq!(self.ok(&["images", "-q"]).trim(), "", "no image");
        let root = self.root.path();
        for d in ["blobs/sha256", "blobs/.tmp", "layers", "tmp"] {
            let left: Vec<_> = std::fs::read_dir(root.join(d))
                .map(|r| r.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "{d} has {left:?}");
        }
        let check = self.ok(&["system", "check"]);
        assert!(
            check.lines().all(|l| l.ends_with(": 0")),
            "check found leftovers: {check}"
        );
    }
}

/// The config digest (image id) of a local image.
fn image_id(b: &Berth, name: &str) -> String {
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", name])).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

/// The digest `push` printed (`TAG: digest: sha256:… size: N`).
fn pushed_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split(" digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in {out}"))
        .to_string()
}

/// The digest `pull` printed (`Digest: sha256:…`).
fn pulled_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in {out}"))
        .trim()
        .to_string()
}

/// Push an imported image over plain HTTP, pull it into an empty store,
/// run it; the digests are the pushed ones. Again: the registry has every
/// blob; another repository mounts them; chunked uploads work.
#[test]
fn plain_http_push_pull_run() {
    let reg = Registry::start("", "");
    let a = Berth::new();
    let name = format!("{}/test/bb:1", reg.addr());
    let id = a.import_busybox(&name, "plain-http\n");

    // Verified TLS when asked for, loopback included: the hint names the
    // way out.
    let o = a.run(&["push", "--tls-verify=true", &name]);
    expect_code(&o, 1, "push over TLS to a plain HTTP registry");
    let err = stderr(&o);
    assert!(
        err.contains("TLS failure") && err.contains("--tls-verify=false"),
        "{err}"
    );
    assert_eq!(berth_testkit::error_lines(&err), 1, "{err}");

    let out = a.ok(&["push", "--tls-verify=false", &name]);
    assert!(out.contains(": Pushed"), "{out}");
    let digest = pushed_digest(&out);
    // Without the flag: loopback is Docker's default insecure range (a
    // registry elsewhere marked in registries.conf: endpoint's unit tests).
    let again = a.ok(&["push", &name]);
    assert!(again.contains("Layer already exists"), "{again}");
    assert_eq!(pushed_digest(&again), digest);

    let b = Berth::new();
    let out = b.ok(&["pull", "--tls-verify=false", &name]);
    assert_eq!(pulled_digest(&out), digest, "manifest digest round-trips");
    assert_eq!(image_id(&b, &name), id, "config digest round-trips");
    assert_eq!(b.ok(&["run", "--rm", &name]).trim(), "plain-http");
    let by_digest = format!("{}/test/bb@{digest}", reg.addr());
    let out = b.ok(&["pull", "--tls-verify=false", "-q", &by_digest]);
    assert_eq!(out.trim(), format!("{by_digest}"));
    let out = b.ok(&["pull", "--tls-verify=false", &name]);
    assert!(out.contains("Image is up to date"), "{out}");

    // Another repository of the same registry: blobs are mounted.
    let other = format!("{}/other/bb:2", reg.addr());
    a.ok(&["tag", &name, &other]);
    let out = a.ok(&["push", "--tls-verify=false", &other]);
    assert!(out.contains("Mounted from test/bb"), "{out}");

    // Chunked uploads of a new image.
    let chunked = format!("{}/test/chunked:1", reg.addr());
    a.import_busybox(&chunked, "chunked\n");
    let out = a.ok(&[
        "push",
        "--tls-verify=false",
        "--chunk-size",
        "300k",
        &chunked,
    ]);
    let c = Berth::new();
    c.ok(&[
        "pull",
        "--tls-verify=false",
        "--max-concurrent-downloads",
        "1",
        &chunked,
    ]);
    assert_eq!(
        pulled_digest(&c.ok(&["pull", "--tls-verify=false", &chunked])),
        pushed_digest(&out)
    );
    assert_eq!(c.ok(&["run", "--rm", &chunked]).trim(), "chunked");

    // run of an image the store lacks pulls it first (docker's --pull
    // missing), its progress on stderr and the container's output alone
    // on stdout; --pull=never refuses
    let e = Berth::new();
    let o = e.run(&["run", "--rm", "--pull=never", &chunked]);
    expect_code(&o, 125, "run --pull=never of a missing image");
    assert!(
        stderr(&o).contains("Unable to find image"),
        "{}",
        stderr(&o)
    );
    let o = e.run(&["run", "--rm", "--tls-verify=false", &chunked]);
    expect_code(&o, 0, "run pulling a missing image");
    assert_eq!(stdout(&o).trim(), "chunked");
    assert!(stderr(&o).contains("Unable to find image") && stderr(&o).contains("Digest: sha256:"));
    let o = e.run(&["create", "--pull=always", "--tls-verify=false", &chunked]);
    expect_code(&o, 0, "create --pull=always");
    assert!(stderr(&o).contains("Image is up to date"), "{}", stderr(&o));

    // Gzipped on the way: another manifest (gzip layers), same image.
    let gz = format!("{}/test/gz:1", reg.addr());
    a.ok(&["tag", &name, &gz]);
    let out = a.ok(&[
        "push",
        "--tls-verify=false",
        "--compression-format",
        "gzip",
        &gz,
    ]);
    let gz_digest = pushed_digest(&out);
    assert_ne!(gz_digest, digest, "the manifest names gzip layers");
    let d = Berth::new();
    assert_eq!(
        pulled_digest(&d.ok(&["pull", "--tls-verify=false", &gz])),
        gz_digest
    );
    assert_eq!(image_id(&d, &gz), id, "same config");
    assert_eq!(d.ok(&["run", "--rm", &gz]).trim(), "plain-http");
    // The gzip blob was kept: pushed again, the same digests.
    let again = d.ok(&["push", "--tls-verify=false", &gz]);
    assert!(again.contains("Layer already exists"), "{again}");
    assert_eq!(pushed_digest(&again), gz_digest);
    let o = a.run(&["push", "--compression-format", "zstd", &gz]);
    expect_code(&o, 125, "an unsupported compression");

    // Errors are one line and name the cause.
    let o = c.run(&[
        "pull",
        "--tls-verify=false",
        &format!("{}/test/bb:nosuch", reg.addr()),
    ]);
    expect_code(&o, 1, "pull of a missing tag");
    assert!(stderr(&o).contains("manifest unknown"), "{}", stderr(&o));
    assert_eq!(berth_testkit::error_lines(&stderr(&o)), 1, "{}", stderr(&o));
    let nowhere = format!("127.0.0.1:{}", free_port());
    let o = c.run(&["pull", "--tls-verify=false", &format!("{nowhere}/x:1")]);
    expect_code(&o, 1, "pull from nowhere");
    // Docker's words, the plain HTTP attempt's (the last one made).
    let want =
        format!("Get \"http://{nowhere}/v2/\": dial tcp {nowhere}: connect: connection refused");
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    let o = c.run(&["pull", "--max-concurrent-downloads", "0", &name]);
    expect_code(&o, 125, "bad flag value");
    let o = c.run(&["push", "--tls-verify=false", "nosuch:1"]);
    expect_code(&o, 1, "push of a missing image");
    // docker's daemon's words (the compat corpus compares them).
    assert!(
        stderr(&o).contains("An image does not exist locally with the tag: nosuch"),
        "{}",
        stderr(&o)
    );
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let o = output_via_files(Command::new(tool("openssl")).current_dir(dir).args(args));
    expect_code(&o, 0, &format!("openssl {}", args.join(" ")));
}

/// A test CA and a server certificate for 127.0.0.1 signed by it.
fn test_ca(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
}

/// TLS with a test CA and htpasswd basic auth: the CA comes from
/// --cert-dir; push needs a login; login stores the credentials (0600);
/// push, pull into an empty store, run; logout forgets them.
#[test]
fn tls_and_basic_auth() {
    let certs = tempfile::tempdir().unwrap();
    test_ca(certs.path());
    let o = output_via_files(
        Command::new(tool("htpasswd"))
            .args(["-Bbc"])
            .arg(certs.path().join("htpasswd"))
            .args(["alice", "s3cret"]),
    );
    expect_code(&o, 0, "htpasswd");
    let reg = Registry::start(
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            certs.path().join("server.crt").display(),
            certs.path().join("server.key").display()
        ),
        &format!(
            "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            certs.path().join("htpasswd").display()
        ),
    );
    let cert_dir = tempfile::tempdir().unwrap();
    std::fs::copy(certs.path().join("ca.crt"), cert_dir.path().join("ca.crt")).unwrap();
    let cert_dir = cert_dir.path().to_str().unwrap();

    let a = Berth::new();
    let name = format!("{}/team/app:1", reg.addr());
    let id = a.import_busybox(&name, "over-tls\n");
    // The CA is unknown without --cert-dir (verification asked for: on
    // loopback, Docker's insecure range, it is otherwise skipped).
    let o = a.run(&["push", "--tls-verify=true", &name]);
    expect_code(&o, 1, "push to an unknown CA");
    assert!(
        stderr(&o).contains("TLS failure") && stderr(&o).contains("--cert-dir"),
        "{}",
        stderr(&o)
    );
    // Known CA, no login.
    let o = a.run(&["push", "--cert-dir", cert_dir, &name]);
    expect_code(&o, 1, "push without login");
    assert!(
        stderr(&o).contains("unauthorized") && stderr(&o).contains("berth login"),
        "{}",
        stderr(&o)
    );
    // A wrong password is refused and nothing is stored.
    let o = a.with_stdin(
        &[
            "login",
            "--cert-dir",
            cert_dir,
            "-u",
            "alice",
            "--password-stdin",
            &reg.addr(),
        ],
        "wrong\n",
    );
    expect_code(&o, 1, "login with a wrong password");
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    assert!(!a.auth_file().exists());

    let o = a.with_stdin(
        &[
            "login",
            "--cert-dir",
            cert_dir,
            "-u",
            "alice",
            "--password-stdin",
            &reg.addr(),
        ],
        "s3cret\n",
    );
    expect_code(&o, 0, "login");
    assert!(stdout(&o).contains("Login Succeeded"), "{}", stdout(&o));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(a.auth_file()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let saved: Value = serde_json::from_slice(&std::fs::read(a.auth_file()).unwrap()).unwrap();
    assert!(saved["auths"][reg.addr()]["auth"].is_string(), "{saved}");

    let digest = pushed_digest(&a.ok(&["push", "--cert-dir", cert_dir, &name]));

    // Another store with the same auth file (Docker's config.json this
    // time, which berth reads too).
    let b = Berth::new();
    std::fs::create_dir_all(b.home.join(".docker")).unwrap();
    std::fs::copy(a.auth_file(), b.home.join(".docker/config.json")).unwrap();
    let out = b.ok(&["pull", "--cert-dir", cert_dir, &name]);
    assert_eq!(pulled_digest(&out), digest);
    assert_eq!(image_id(&b, &name), id);
    assert_eq!(b.ok(&["run", "--rm", &name]).trim(), "over-tls");

    let out = a.ok(&["logout", &reg.addr()]);
    assert!(out.contains("Removed login credentials"), "{out}");
    let o = a.run(&["logout", &reg.addr()]);
    expect_code(&o, 1, "logout twice");
    assert!(stderr(&o).contains("not logged in"), "{}", stderr(&o));
    let o = a.run(&["pull", "--cert-dir", cert_dir, &name]);
    expect_code(&o, 1, "pull after logout");
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
}

fn b64url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A JWT the registry's token auth accepts: RS256, the signing
/// certificate in `x5c` (the registry trusts it as its root bundle).
fn signed_token(dir: &Path, repos: &[&str]) -> String {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth token signer",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
        ],
    );
    let pem = std::fs::read_to_string(dir.join("token.crt")).unwrap();
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [der_b64]});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<Value> = repos
        .iter()
        .map(|r| json!({"type": "repository", "name": r, "actions": ["pull", "push"]}))
        .collect();
    let claims = json!({"iss": "berth-test-issuer", "sub": "alice", "aud": "berth-test-registry",
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "berth-test", "access": access});
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    std::fs::write(dir.join("input"), &signing_input).unwrap();
    openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "token.key",
            "-out",
            "sig",
            "input",
        ],
    );
    let sig = std::fs::read(dir.join("sig")).unwrap();
    format!("{signing_input}.{}", b64url(&sig))
}

/// alice's credentials as a Basic `Authorization` value.
fn alice_basic() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    )
}

/// A server config for the test CA's certificate of 127.0.0.1 (`test_ca`).
fn tls_server_config(dir: &Path) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// What a token service saw: the `Authorization` value of each request
/// (empty when there was none).
type Seen = Arc<Mutex<Vec<String>>>;

/// Answers a token request: `token` for alice's credentials (and the
/// test's service), 401 otherwise; records what it got.
fn answer_token(req: &Request, token: &str, seen: &Seen, out: &mut impl Write) {
    let auth = req
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map_or_else(String::new, |(_, v)| v.clone());
    seen.lock().unwrap().push(auth.clone());
    if auth == alice_basic() && req.path.contains("service=berth-test-registry") {
        let body = json!({"token": token, "expires_in": 3600}).to_string();
        let _ = write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    } else {
        let _ = write!(
            out,
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let _ = out.flush();
}

/// A token service over HTTPS (`tls`) or plain HTTP, on a port of its own.
fn token_server(tls: Option<Arc<rustls::ServerConfig>>, token: String) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            match &tls {
                None => {
                    let Ok(req) = read_request(&conn) else {
                        continue;
                    };
                    answer_token(&req, &token, &record, &mut &conn);
                }
                Some(cfg) => {
                    let Ok(server) = rustls::ServerConnection::new(cfg.clone()) else {
                        continue;
                    };
                    let mut tls = rustls::StreamOwned::new(server, conn);
                    // A client that refused the certificate ends here.
                    let Ok(req) = read_request_from(BufReader::new(&mut tls)) else {
                        continue;
                    };
                    answer_token(&req, &token, &record, &mut tls);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            }
        }
    });
    (port, seen)
}

/// A registry written here that only challenges: 401 with a bearer
/// challenge naming `realm` (`{self}` is its own `http://127.0.0.1:port`),
/// 404 to a request that brings a token. It serves tokens itself at
/// /token, recording what it got there.
fn challenging_registry(realm: &str) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let realm = realm.replace("{self}", &format!("http://127.0.0.1:{port}"));
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(req) = read_request(&conn) else {
                continue;
            };
            let mut out = &conn;
            if req.path.starts_with("/token") {
                answer_token(&req, "t0ken", &record, &mut out);
            } else if req
                .headers
                .iter()
                .any(|(k, v)| k == "authorization" && v.starts_with("Bearer "))
            {
                let _ = write!(
                    out,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            } else {
                let _ = write!(
                    out,
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"berth-test-registry\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        }
    });
    (port, seen)
}

/// Credentials go to a token service (a realm the registry names) only
/// when it is the registry's own origin or HTTPS with a verified
/// certificate (issue 13, item 8c): a hostile or sloppy registry that names
/// a plain-HTTP realm on another port, or an HTTPS one whose certificate
/// does not verify (the registry itself being --tls-verify=false), never
/// gets them there; without credentials such realms are still asked.
#[test]
fn credentials_go_only_to_the_registry_origin_or_verified_https() {
    let certs = tempfile::tempdir().unwrap();
    test_ca(certs.path());
    let cert_dir = tempfile::tempdir().unwrap();
    std::fs::copy(certs.path().join("ca.crt"), cert_dir.path().join("ca.crt")).unwrap();
    let cert_dir = cert_dir.path().to_str().unwrap().to_string();
    let b = Berth::new();
    let pull = |reg: u16, extra: &[&str]| {
        let image = format!("127.0.0.1:{reg}/team/app:1");
        let mut args = vec!["pull", "--tls-verify=false"];
        args.extend_from_slice(extra);
        args.push(&image);
        b.run(&args)
    };
    let creds = ["--creds", "alice:s3cret"];

    // Plain HTTP on another port of the same host.
    let (plain, plain_seen) = token_server(None, "t0ken".into());
    let (reg, _) = challenging_registry(&format!("http://127.0.0.1:{plain}/token"));
    let o = pull(reg, &creds);
    expect_code(&o, 1, "pull through a plain-HTTP realm elsewhere");
    assert!(
        stderr(&o).contains("refusing to send it the credentials")
            && berth_testkit::error_lines(&stderr(&o)) == 1,
        "{}",
        stderr(&o)
    );
    assert!(
        plain_seen.lock().unwrap().is_empty(),
        "{:?}",
        plain_seen.lock().unwrap()
    );
    // Anonymous: the realm is asked, with nothing to leak (and this shows
    // the service would have recorded the credentials).
    expect_code(&pull(reg, &[]), 1, "anonymous pull");
    assert_eq!(*plain_seen.lock().unwrap(), vec![String::new()]);

    // HTTPS elsewhere whose certificate does not verify (no CA given):
    // --tls-verify=false is the registry's, never the token service's.
    let (https, https_seen) = token_server(Some(tls_server_config(certs.path())), "t0ken".into());
    let (reg, _) = challenging_registry(&format!("https://127.0.0.1:{https}/token"));
    let o = pull(reg, &creds);
    expect_code(&o, 1, "pull through an unverified HTTPS realm");
    assert!(
        stderr(&o).contains(&format!("TLS failure talking to 127.0.0.1:{https}")),
        "{}",
        stderr(&o)
    );
    assert!(
        https_seen.lock().unwrap().is_empty(),
        "{:?}",
        https_seen.lock().unwrap()
    );
    // The same service with its CA given: it gets them (Docker Hub's case,
    // auth.docker.io for registry-1.docker.io).
    let o = pull(reg, &["--creds", "alice:s3cret", "--cert-dir", &cert_dir]);
    expect_code(
        &o,
        1,
        "pull through a verified HTTPS realm (the registry has no image)",
    );
    assert_eq!(
        *https_seen.lock().unwrap(),
        vec![alice_basic()],
        "{}",
        stderr(&o)
    );

    // The registry's own origin, plain HTTP as the registry is.
    let (reg, own_seen) = challenging_registry("{self}/token");
    let o = pull(reg, &creds);
    expect_code(
        &o,
        1,
        "pull through the registry's own realm (it has no image)",
    );
    assert_eq!(
        *own_seen.lock().unwrap(),
        vec![alice_basic()],
        "{}",
        stderr(&o)
    );
}

/// Bearer tokens: the registry sends berth to a token service written for
/// the test (HTTPS with the test CA, given with --cert-dir: a token service
/// on another origin than the registry gets credentials only over verified
/// HTTPS); with a login, push, pull into an empty store and run.
#[test]
fn bearer_token_auth() {
    let dir = tempfile::tempdir().unwrap();
    let token = signed_token(dir.path(), &["tok/app"]);
    let certs = tempfile::tempdir().unwrap();
    test_ca(certs.path());
    let cert_dir = tempfile::tempdir().unwrap();
    std::fs::copy(certs.path().join("ca.crt"), cert_dir.path().join("ca.crt")).unwrap();
    let cert_dir = cert_dir.path().to_str().unwrap().to_string();
    let (token_port, requests) = token_server(Some(tls_server_config(certs.path())), token);
    let requests = || requests.lock().unwrap().len();
    let reg = Registry::start(
        "",
        &format!(
            "auth:\n  token:\n    realm: https://127.0.0.1:{token_port}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
            dir.path().join("token.crt").display()
        ),
    );
    let a = Berth::new();
    let name = format!("{}/tok/app:1", reg.addr());
    let id = a.import_busybox(&name, "bearer\n");
    let o = a.run(&["push", "--tls-verify=false", "--cert-dir", &cert_dir, &name]);
    expect_code(&o, 1, "push without credentials");
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));

    let o = a.with_stdin(
        &[
            "login",
            "--tls-verify=false",
            "--cert-dir",
            &cert_dir,
            "-u",
            "alice",
            "--password-stdin",
            &reg.addr(),
        ],
        "s3cret\n",
    );
    expect_code(&o, 0, "login through the token service");
    let before = requests();
    let digest =
        pushed_digest(&a.ok(&["push", "--tls-verify=false", "--cert-dir", &cert_dir, &name]));
    assert!(requests() > before, "a token was asked for");

    let b = Berth::new();
    let o = b.run(&["pull", "--tls-verify=false", "--cert-dir", &cert_dir, &name]);
    expect_code(&o, 1, "pull without credentials");
    assert!(stderr(&o).contains("berth login"), "{}", stderr(&o));
    let out = b.ok(&[
        "pull",
        "--tls-verify=false",
        "--cert-dir",
        &cert_dir,
        "--creds",
        "alice:s3cret",
        &name,
    ]);
    assert_eq!(pulled_digest(&out), digest);
    assert_eq!(image_id(&b, &name), id);
    assert_eq!(b.ok(&["run", "--rm", &name]).trim(), "bearer");
}

fn podman_env(dir: &Path, script: &str) -> Output {
    let tests = berth_testkit::snippet::tests_dir();
    output_via_files(
        Command::new("timeout")
            .args(["-k", "10", "300", "bash", "-c"])
            .arg(format!(
                "source {}/podman-env.sh {} >/dev/null || exit 99; {script}",
                tests.display(),
                dir.display()
            )),
    )
}

/// podman pushes (gzip layers) → berth pulls and runs, and pushes it back
/// with the same digests; berth pushes → podman pulls and runs; skopeo
/// copies berth's image between repositories and berth pulls the copy.
#[test]
fn interchange_with_podman_and_skopeo() {
    let reg = Registry::start("", "");
    let work = tempfile::tempdir().unwrap();
    let env = work.path().join("podman");
    let from_podman = format!("{}/podman/bb:1", reg.addr());
    let o = podman_env(
        &env,
        &format!(
            "podman_import_busybox pbb && podman push --quiet --tls-verify=false localhost/pbb:latest docker://{from_podman}; \
             rc=$?; podman_env_cleanup >/dev/null 2>&1; exit $rc"
        ),
    );
    expect_code(&o, 0, "podman push");
    let b = Berth::new();
    let digest = pulled_digest(&b.ok(&["pull", "--tls-verify=false", &from_podman]));
    assert_eq!(
        b.ok(&["run", "--rm", &from_podman, "echo", "from-podman"])
            .trim(),
        "from-podman"
    );
    // The gzip blobs were kept as they came: pushed back, same digest.
    let back = format!("{}/podman/back:1", reg.addr());
    b.ok(&["tag", &from_podman, &back]);
    assert_eq!(
        pushed_digest(&b.ok(&["push", "--tls-verify=false", &back])),
        digest
    );

    let from_berth = format!("{}/berth/bb:1", reg.addr());
    let id = b.import_busybox(&from_berth, "from-berth\n");
    b.ok(&["push", "--tls-verify=false", &from_berth]);
    let o = podman_env(
        &env,
        &format!(
            "podman pull --quiet --tls-verify=false {from_berth} && podman run --rm --network none {from_berth}; \
             rc=$?; podman_env_cleanup >/dev/null 2>&1; exit $rc"
        ),
    );
    expect_code(&o, 0, "podman pull and run");
    let out = stdout(&o);
    assert!(out.contains(&id[7..]), "podman has berth's image id: {out}");
    assert!(out.contains("from-berth"), "{out}");

    let copied = format!("{}/skopeo/bb:1", reg.addr());
    let o = output_via_files(Command::new(tool("skopeo")).args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{from_berth}"),
        &format!("docker://{copied}"),
    ]));
    expect_code(&o, 0, "skopeo copy");
    let c = Berth::new();
    c.ok(&["pull", "--tls-verify=false", &copied]);
    assert_eq!(c.ok(&["run", "--rm", &copied]).trim(), "from-berth");
}

/// How the fake registry misbehaves with the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// One byte of the layer flipped.
    Corrupt,
    /// The layer's connection closes half way, every time.
    Truncated,
    /// The manifest's Docker-Content-Digest names another manifest.
    WrongDigestHeader,
    /// Half the layer, then the connection drops; the retries get 500.
    Error500MidTransfer,
    /// Half the layer, then the connection drops; a Range retry works.
    DropThenResume,
    /// Not hostile: the tag names an index of two platforms.
    Index,
    /// Basic auth required; the layer is redirected to a storage server
    /// on another port, which must never see the credentials.
    RedirectToStorage,
}

fn digest_of(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A storage server answering every GET with `data`; counts the requests
/// that carried an Authorization header.
fn storage_server(data: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let with_auth = Arc::new(AtomicUsize::new(0));
    let seen = with_auth.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(req) = read_request(&conn) else {
                continue;
            };
            if req.headers.iter().any(|(k, _)| k == "authorization") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            let mut conn = conn;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len()
            );
            let _ = conn.write_all(&data);
        }
    });
    (port, with_auth)
}

/// An image of one gzip layer (incompressible data, so the stream is
/// long) served by a registry written here, misbehaving as told.
fn hostile_registry(mode: Hostile) -> (u16, String) {
    hostile_registry_with(mode).0
}

fn hostile_registry_with(mode: Hostile) -> ((u16, String), Arc<AtomicUsize>) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut data = vec![0u8; 512 * 1024];
    let mut x: u32 = 0x1234_5678;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x.to_le_bytes()[0];
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, "data", &data[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/data"]},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&tar)]}}))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(&layer), "size": layer.len()}]}))
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let layer_digest = digest_of(&layer);
    let config_digest = digest_of(&config);
    let (storage_port, storage_auth) = storage_server(layer.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(req) = read_request(&conn) else {
                continue;
            };
            let mut conn = conn;
            if mode == Hostile::RedirectToStorage {
                let authed = req.headers.iter().any(|(k, v)| {
                    use base64::Engine as _;
                    k == "authorization"
                        && v == &format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode("bob:pw")
                        )
                });
                if !authed {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"fake\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    continue;
                }
                if req.path.ends_with(&layer_digest) {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{storage_port}/bucket/layer?sig=x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    continue;
                }
            }
            let send = |conn: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                    body.len()
                );
                let _ = conn.write_all(body);
            };
            let range_start = req
                .headers
                .iter()
                .find(|(k, _)| k == "range")
                .and_then(|(_, v)| v.strip_prefix("bytes="))
                .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok());
            if req.path == "/v2/" {
                send(&mut conn, "200 OK", "", b"{}");
            } else if mode == Hostile::Index && req.path.ends_with("/manifests/1") {
                let entry = |arch: &str| {
                    json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": digest_of(&manifest), "size": manifest.len(),
                        "platform": {"os": "linux", "architecture": arch}})
                };
                let index = serde_json::to_vec(&json!({"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [entry("amd64"), entry("arm64")]}))
                .unwrap();
                let headers = format!(
                    "Content-Type: application/vnd.oci.image.index.v1+json\r\nDocker-Content-Digest: {}\r\n",
                    digest_of(&index)
                );
                send(&mut conn, "200 OK", &headers, &index);
            } else if req.path.contains("/manifests/") {
                let d = if mode == Hostile::WrongDigestHeader {
                    digest_of(b"another manifest")
                } else {
                    digest_of(&manifest)
                };
                let headers = format!(
                    "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {d}\r\n"
                );
                let body = if req.method == "HEAD" {
                    &[][..]
                } else {
                    &manifest[..]
                };
                send(&mut conn, "200 OK", &headers, body);
            } else if req.path.ends_with(&config_digest) {
                send(&mut conn, "200 OK", "", &config);
            } else if req.path.ends_with(&layer_digest) {
                let half = layer.len() / 2;
                match (mode, range_start) {
                    (Hostile::Corrupt, _) => {
                        let mut bad = layer.clone();
                        bad[half] ^= 0x55;
                        send(&mut conn, "200 OK", "", &bad);
                    }
                    // Every fresh download drops half way; retries with a
                    // range get the rest, or a 500.
                    (Hostile::Truncated, _)
                    | (Hostile::Error500MidTransfer | Hostile::DropThenResume, None) => {
                        // Promise all of it, send half, hang up.
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            layer.len()
                        );
                        let _ = conn.write_all(&layer[..half]);
                    }
                    (Hostile::Error500MidTransfer, Some(_)) => {
                        send(&mut conn, "500 Internal Server Error", "", b"{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"storage backend failed\"}]}");
                    }
                    (_, Some(start)) if start < layer.len() => {
                        let headers = format!(
                            "Content-Range: bytes {start}-{}/{}\r\n",
                            layer.len() - 1,
                            layer.len()
                        );
                        send(&mut conn, "206 Partial Content", &headers, &layer[start..]);
                    }
                    _ => send(&mut conn, "200 OK", "", &layer),
                }
            } else {
                send(
                    &mut conn,
                    "404 Not Found",
                    "",
                    b"{\"errors\":[{\"code\":\"NOT_FOUND\"}]}",
                );
            }
        }
    });
    (
        (port, format!("127.0.0.1:{port}/hostile/img:1")),
        storage_auth,
    )
}

/// A corrupted blob, a truncated stream, a wrong digest header, a 500
/// mid-transfer: the pull fails with one line naming the cause and the
/// store is as it was. A dropped connection is resumed with Range.
#[test]
fn a_hostile_registry_leaves_the_store_unchanged() {
    for (mode, expect) in [
        (Hostile::Corrupt, "digest mismatch"),
        (Hostile::Truncated, "gave up after"),
        (Hostile::WrongDigestHeader, "Docker-Content-Digest"),
        (Hostile::Error500MidTransfer, "HTTP 500"),
    ] {
        let (_, name) = hostile_registry(mode);
        let b = Berth::new();
        let o = b.run(&["pull", "--tls-verify=false", &name]);
        expect_code(&o, 1, &format!("{mode:?}"));
        let err = stderr(&o);
        assert!(err.contains(expect), "{mode:?}: {err}");
        assert_eq!(berth_testkit::error_lines(&err), 1, "{mode:?}: {err}");
        b.assert_empty_store();
    }
    let (_, name) = hostile_registry(Hostile::DropThenResume);
    let b = Berth::new();
    b.ok(&["pull", "--tls-verify=false", &name]);
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
    let check = b.ok(&["system", "check"]);
    assert!(check.lines().all(|l| l.ends_with(": 0")), "{check}");

    // Credentials go to the registry, never to where it redirects.
    let ((_, name), storage_auth) = hostile_registry_with(Hostile::RedirectToStorage);
    let c = Berth::new();
    let o = c.run(&["pull", "--tls-verify=false", &name]);
    expect_code(&o, 1, "pull without credentials");
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    c.ok(&["pull", "--tls-verify=false", "--creds", "bob:pw", &name]);
    assert_eq!(c.ok(&["images", "-q"]).lines().count(), 1);
    assert_eq!(
        storage_auth.load(Ordering::SeqCst),
        0,
        "the storage server saw credentials"
    );
}

/// A pull killed (SIGKILL) at any point leaves no partial image: the store
/// has the whole image or none, `system check` removes what the kill left,
/// and the next pull completes.
#[test]
fn a_killed_pull_leaves_no_partial_image() {
    // Each first download of the layer drops half way and is resumed after
    // a pause: kills land before, during and after the layer.
    let (_, name) = hostile_registry(Hostile::DropThenResume);
    for delay_ms in [0u64, 20, 80, 200, 350, 600] {
        let b = Berth::new();
        let mut child = b
            .cmd()
            .args(["pull", "-q", "--tls-verify=false", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let images = b.ok(&["images", "-q"]);
        assert!(images.lines().count() <= 1, "{images}");
        // What the kill left is temp files and unnamed layers at most:
        // nothing corrupt, nothing missing (check fails on missing).
        let check = b.ok(&["system", "check"]);
        assert!(
            check.contains("corrupt blobs removed: 0")
                && check.contains("corrupt layers removed: 0"),
            "after a kill at {delay_ms} ms: {check}"
        );
        b.ok(&["pull", "-q", "--tls-verify=false", &name]);
        assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
        let check = b.ok(&["system", "check"]);
        assert!(check.lines().all(|l| l.ends_with(": 0")), "{check}");
    }
}

/// A tag naming an index: the host's platform (or --platform's) is
/// picked; a platform the index lacks is an error listing what it has.
#[test]
fn an_index_is_resolved_by_platform() {
    let (_, name) = hostile_registry(Hostile::Index);
    let b = Berth::new();
    let o = b.run(&[
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/s390x",
        &name,
    ]);
    expect_code(&o, 1, "pull of a platform the index lacks");
    assert!(
        stderr(&o).contains("no image for platform linux/s390x (it has linux/amd64, linux/arm64)"),
        "{}",
        stderr(&o)
    );
    b.assert_empty_store();
    b.ok(&[
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/arm64",
        &name,
    ]);
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
    let o = b.run(&["pull", "--platform", "linux", &name]);
    expect_code(&o, 125, "a malformed platform");
}
