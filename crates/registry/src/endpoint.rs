//! Where a registry is and how to reach it.
//!
//! Docker Hub's conventions: references without a registry name
//! `docker.io`, whose API lives at `registry-1.docker.io`. TLS always,
//! verified against the system's roots plus the CA files of the
//! registry's certs.d directory (`--cert-dir`, else
//! `/etc/containers/certs.d/<host:port>/` then `/etc/docker/certs.d/…`);
//! a `client.cert`/`client.key` pair there is presented too. Plain HTTP
//! (and unverified TLS) only for a registry the user marked insecure,
//! loopback included: no address is trusted by default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::{RegistryError, Result};

/// Docker Hub's API host.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// How berth talks to one registry.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The registry as references name it: `docker.io`, `localhost:5000`.
    pub name: String,
    /// Where its API is: `registry-1.docker.io`, `localhost:5000`.
    pub host: String,
    /// Plain HTTP, or TLS without verification, are allowed.
    pub insecure: bool,
    /// A directory of CA files (`*.crt`) and a client pair
    /// (`*.cert` + `*.key`) replacing the certs.d lookup.
    pub cert_dir: Option<PathBuf>,
}

impl Endpoint {
    pub fn new(registry: &str, insecure: bool, cert_dir: Option<PathBuf>) -> Endpoint {
        let host = match registry {
            "docker.io" | "index.docker.io" => DOCKER_HUB_HOST.to_string(),
            other => other.to_string(),
        };
        Endpoint {
            name: registry.to_string(),
            host,
            insecure,
            cert_dir,
        }
    }

    /// The certs.d directories that apply, first found wins per file kind.
    fn cert_dirs(&self) -> Vec<PathBuf> {
        match &self.cert_dir {
            Some(d) => vec![d.clone()],
            None => host_cert_dirs(&self.host),
        }
    }

    /// The TLS configuration for this registry.
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let dirs = self.cert_dirs();
        tls_config(&self.host, self.insecure, &dirs, &dirs)
    }

    /// The TLS configuration for this registry's token service at
    /// `authority` (another origin), which gets the credentials: always
    /// verified, whatever `insecure` says of the registry, against the
    /// system's roots, the CAs of the token service's host (certs.d) and
    /// this registry's CAs (a private CA trusted for the registry vouches
    /// for its token service too). No client certificate of the registry's
    /// is shown to another host.
    pub fn realm_tls_config(&self, authority: &str) -> Result<Arc<rustls::ClientConfig>> {
        let own = host_cert_dirs(authority);
        let mut cas = own.clone();
        cas.extend(self.cert_dirs());
        tls_config(authority, false, &cas, &own)
    }
}

/// `/etc/containers/certs.d/<host>` and `/etc/docker/certs.d/<host>`, those
/// that exist.
fn host_cert_dirs(host: &str) -> Vec<PathBuf> {
    ["/etc/containers/certs.d", "/etc/docker/certs.d"]
        .iter()
        .map(|base| Path::new(base).join(host))
        .filter(|d| d.is_dir())
        .collect()
}

/// A TLS configuration for `host`: without verification when `insecure`,
/// else the system's roots and the `*.crt` files of `ca_dirs`; the client
/// pair (`*.cert` + `*.key`) of `client_dirs` if there is one.
fn tls_config(
    host: &str,
    insecure: bool,
    ca_dirs: &[PathBuf],
    client_dirs: &[PathBuf],
) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_setup(host, e))?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable entries of the system store are skipped, as every
        // TLS client does; an empty store fails every handshake, which
        // then names the cause.
        for c in rustls_native_certs::load_native_certs().certs {
            if let Err(e) = roots.add(c) {
                tracing::debug!("system trust store: an entry skipped: {e}");
            }
        }
        for dir in ca_dirs {
            for f in files_with(dir, ".crt")? {
                let certs = CertificateDer::pem_file_iter(&f)
                    .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| {
                        RegistryError::InvalidOption(format!("CA file {}: {e}", f.display()))
                    })?;
                for c in certs {
                    roots.add(c).map_err(|e| {
                        RegistryError::InvalidOption(format!("CA file {}: {e}", f.display()))
                    })?;
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut client_pair = None;
    for dir in client_dirs {
        for cert in files_with(dir, ".cert")? {
            let key = cert.with_extension("key");
            if key.is_file() {
                client_pair = Some((cert, key));
            }
        }
    }
    let config = match client_pair {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let bad = |f: &Path, e: &dyn std::fmt::Display| {
                RegistryError::InvalidOption(format!("client certificate {}: {e}", f.display()))
            };
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| bad(&cert, &e))?;
            let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|e| bad(&key, &e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| bad(&cert, &e))?
        }
    };
    Ok(Arc::new(config))
}

fn tls_setup(host: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Tls {
        host: host.to_string(),
        detail: e.to_string(),
        hint: String::new(),
    }
}

/// The files of `dir` whose names end with `suffix`, sorted.
fn files_with(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RegistryError::InvalidOption(format!(
                "certificate directory {} does not exist",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(RegistryError::Io {
                context: format!("read {}", dir.display()),
                source: e,
            })
        }
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// TLS that checks signatures but not who signed the certificate: only
/// for registries the user marked insecure (`--tls-verify=false`).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The registries configuration files, in the order they apply:
/// `$CONTAINERS_REGISTRIES_CONF` (else `/etc/containers/registries.conf`),
/// then `/etc/containers/registries.conf.d/*.conf`.
pub fn registries_conf_files() -> Vec<PathBuf> {
    let mut v = vec![std::env::var_os("CONTAINERS_REGISTRIES_CONF")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || PathBuf::from("/etc/containers/registries.conf"),
            PathBuf::from,
        )];
    if let Ok(mut more) = files_with(Path::new("/etc/containers/registries.conf.d"), ".conf") {
        v.append(&mut more);
    }
    v
}

/// Whether `name` (a registry, `host[:port]`, or a repository's full name
/// under it) is on this host's loopback: `localhost`, 127.0.0.0/8 or ::1.
/// Docker's daemon treats 127.0.0.0/8 as an insecure registry range by
/// default (plain HTTP allowed), and scripts that run a local registry
/// count on it; nobody off the host can see or answer loopback traffic.
pub fn loopback(name: &str) -> bool {
    let registry = name.split('/').next().unwrap_or(name);
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the registries configuration marks `name` (a repository's
/// full name, `r.example:5000/team/app`) insecure: a `[[registry]]` whose
/// `location` (or `prefix`) is its registry or a namespace of it, with
/// `insecure = true`, or the v1 form `[registries.insecure] registries`.
/// Missing files are fine; a malformed one is an error that names it.
pub fn marked_insecure(name: &str, files: &[PathBuf]) -> Result<bool> {
    let matches = |loc: &str| {
        let loc = loc.trim_end_matches('/');
        !loc.is_empty() && (name == loc || name.starts_with(&format!("{loc}/")))
    };
    let mut insecure = false;
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(RegistryError::Io {
                    context: format!("read {}", f.display()),
                    source: e,
                })
            }
        };
        let v: toml::Table = text
            .parse()
            .map_err(|e| RegistryError::InvalidOption(format!("{}: {e}", f.display())))?;
        let entries = v.get("registry").and_then(|r| r.as_array());
        for e in entries.into_iter().flatten() {
            let loc = e.get("prefix").or_else(|| e.get("location"));
            if loc.and_then(|l| l.as_str()).is_some_and(matches) {
                // Later files override earlier ones for the same entry.
                insecure = e.get("insecure").and_then(|i| i.as_bool()) == Some(true);
            }
        }
        let v1 = v
            .get("registries")
            .and_then(|r| r.get("insecure"))
            .and_then(|i| i.get("registries"))
            .and_then(|r| r.as_array());
        if v1
            .into_iter()
            .flatten()
            .any(|r| r.as_str().is_some_and(matches))
        {
            insecure = true;
        }
    }
    Ok(insecure)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_registries_are_docker_s_default_insecure_range() {
        for yes in [
            "127.0.0.1:5000",
            "127.0.0.1:5000/team/app",
            "127.9.8.7",
            "localhost:5000/app",
            "LOCALHOST",
            "[::1]:5000/app",
        ] {
            assert!(super::loopback(yes), "{yes}");
        }
        for no in [
            "docker.io/library/busybox",
            "10.0.0.1:5000/app",
            "localhost.example.com:5000/app",
            "128.0.0.1:5000",
            "[::2]:5000",
            "r.example/127.0.0.1",
        ] {
            assert!(!super::loopback(no), "{no}");
        }
    }

    use super::*;

    #[test]
    fn docker_hub_is_reached_at_its_api_host() {
        assert_eq!(
            Endpoint::new("docker.io", false, None).host,
            DOCKER_HUB_HOST
        );
        assert_eq!(
            Endpoint::new("localhost:5000", true, None).host,
            "localhost:5000"
        );
    }

    #[test]
    fn registries_conf_marks_registries_insecure() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("registries.conf");
        std::fs::write(
            &f,
            "[[registry]]\nlocation = \"127.0.0.1:5000\"\ninsecure = true\n\n[[registry]]\nlocation = \"r.example/team\"\ninsecure = true\n\n[registries.insecure]\nregistries = ['old.example']\n",
        )
        .unwrap();
        let files = [f.clone(), dir.path().join("absent.conf")];
        assert!(marked_insecure("127.0.0.1:5000/a/b", &files).unwrap());
        assert!(marked_insecure("r.example/team/app", &files).unwrap());
        assert!(!marked_insecure("r.example/other/app", &files).unwrap());
        assert!(marked_insecure("old.example/x", &files).unwrap());
        assert!(!marked_insecure("127.0.0.1:5001/a", &files).unwrap());
        std::fs::write(&f, "[[registry]\n").unwrap();
        let e = marked_insecure("x/y", &files).unwrap_err();
        assert!(e.to_string().contains("registries.conf"), "{e}");
    }

    #[test]
    fn a_missing_cert_dir_is_named() {
        let e = Endpoint::new("r.example:5000", false, Some("/nonexistent/certs".into()))
            .tls_config()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/certs"), "{e}");
    }
}
