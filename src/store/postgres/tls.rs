//! TLS from the hub (and `mcvpn admin`) to PostgreSQL: the libpq-style settings of a
//! store URL (`sslmode`, `sslrootcert`) and the rustls connector that both the pool's
//! synchronous clients and the change feed's LISTEN connection use.
//!
//! There is no "encrypt but trust anyone" mode: `require`, `verify-ca` and `verify-full`
//! all check the server's certificate chain and its host name, since a store reached
//! across the network holds password hashes and TOTP secrets, and an unverified server
//! could be anyone on the path.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::{StoreError, StoreResult};

/// How a store connection is protected, as the URL asks (or its host implies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSetting {
    /// Plaintext: `sslmode=disable`, or no `sslmode` and a loopback or unix-socket host.
    Disable,
    /// TLS, the server's chain and host name verified against `roots`.
    Verify { roots: Roots },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// `sslrootcert=FILE`: the CA certificates (PEM) the operator gave.
    File(PathBuf),
    /// The bundled web PKI roots (`webpki-roots`), for a server with a public certificate.
    Web,
}

/// Splits a `postgres://` URL into tokio-postgres's configuration and the TLS setting.
/// `sslmode` and `sslrootcert` are taken out of the query first: tokio-postgres knows
/// neither `verify-ca`/`verify-full` nor `sslrootcert`. Errors never repeat the URL (it
/// may hold a password).
pub fn parse_url(url: &str) -> StoreResult<(tokio_postgres::Config, TlsSetting)> {
    let refused = |why: String| StoreError::Refused(why);
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (mut mode, mut root_file) = (None::<String>, None::<PathBuf>);
    let mut rest = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        };
        match key {
            "sslmode" => mode = Some(decoded()),
            "sslrootcert" => root_file = Some(PathBuf::from(decoded())),
            _ => rest.push(pair),
        }
    }
    let stripped = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: tokio_postgres::Config = stripped.parse().map_err(|e| {
        refused(format!(
            "the store URL is not a valid PostgreSQL URL ({e}); the form is \
             postgres://USER@HOST:PORT/DB[?sslmode=verify-full&sslrootcert=CA.pem]"
        ))
    })?;
    let verify = |root_file: Option<PathBuf>| TlsSetting::Verify {
        roots: root_file.map(Roots::File).unwrap_or(Roots::Web),
    };
    let tls = match mode.as_deref() {
        Some("disable") => {
            if root_file.is_some() {
                return Err(refused(
                    "the store URL gives sslrootcert but sslmode=disable: drop one of them".into(),
                ));
            }
            TlsSetting::Disable
        }
        Some("require" | "verify-ca" | "verify-full") => verify(root_file),
        Some(other) => {
            return Err(refused(format!(
                "the store URL's sslmode={other} is not one this hub takes: sslmode=verify-full (TLS, \
                 the server's certificate verified; require and verify-ca mean the same here) or \
                 sslmode=disable (plaintext)"
            )));
        }
        None if root_file.is_some() || !all_local(&config) => verify(root_file),
        None => TlsSetting::Disable,
    };
    // tokio-postgres's own mode: never `prefer`, which would fall back to plaintext when
    // the server offers no TLS.
    config.ssl_mode(match tls {
        TlsSetting::Disable => SslMode::Disable,
        TlsSetting::Verify { .. } => SslMode::Require,
    });
    Ok((config, tls))
}

/// `HOST:PORT` of the first host, the one named in messages.
pub fn host_port(hosts: &[Host], ports: &[u16]) -> String {
    let host = match hosts.first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    format!("{host}:{}", ports.first().copied().unwrap_or(5432))
}

/// Whether every host of `config` is on this machine (loopback or a unix socket), where
/// plaintext is the default; no host at all means the local socket.
fn all_local(config: &tokio_postgres::Config) -> bool {
    let hosts_local = config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    });
    hosts_local && config.get_hostaddrs().iter().all(|a| a.is_loopback())
}

/// The connector for a TLS setting: `None` for plaintext. Reads the CA file, so an
/// unreadable or empty one is refused here, before any connection.
pub fn connector(tls: &TlsSetting) -> StoreResult<Option<MakeRustlsConnect>> {
    let TlsSetting::Verify { roots } = tls else {
        return Ok(None);
    };
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::Web => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::File(path) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                StoreError::Refused(format!(
                    "the store's sslrootcert {} cannot be read as PEM certificates: {e}",
                    path.display()
                ))
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| unreadable(&e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| unreadable(&e))?;
            let (added, _ignored) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(unreadable(&"it holds no CA certificate"));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Refused(format!("TLS for the store cannot be set up: {e}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// Words for a connection error that TLS explains: a certificate that does not verify,
/// a server without TLS where TLS was asked for, a server that wants TLS where
/// `sslmode=disable` was asked for. `None` when TLS is not the cause.
pub fn explain(e: &(dyn std::error::Error + 'static), at: &str, tls: &TlsSetting) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let rustls_error = c.downcast_ref::<rustls::Error>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(why)) = rustls_error {
            let hint = match tls {
                TlsSetting::Verify { roots: Roots::File(f) } => {
                    format!("check that {} holds the CA that signed it", f.display())
                }
                _ => "give its CA with sslrootcert=FILE".into(),
            };
            return Some(format!(
                "the certificate of PostgreSQL at {at} does not verify: {why:?}; {hint}"
            ));
        }
        cause = c.source();
    }
    // tokio-postgres says "error performing TLS handshake" and puts the why in the source.
    let text = std::iter::successors(Some(e), |c| c.source())
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    let db_message = e
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|pg| pg.as_db_error())
        .map(|db| db.message().to_string())
        .unwrap_or_default();
    if text.contains("server does not support TLS") {
        return Some(format!(
            "PostgreSQL at {at} does not offer TLS; turn it on there (ssl=on), or, on a network \
             you trust, connect in plaintext with ?sslmode=disable"
        ));
    }
    if *tls == TlsSetting::Disable && db_message.contains("no encryption") {
        return Some(format!(
            "{db_message}; PostgreSQL at {at} takes only TLS connections: drop sslmode=disable \
             (and give its CA with sslrootcert=FILE)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_of(url: &str) -> TlsSetting {
        parse_url(url).unwrap().1
    }

    #[test]
    fn loopback_and_sockets_default_to_plaintext_other_hosts_to_verified_tls() {
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgres:///db?host=/run/postgresql",
        ] {
            assert_eq!(tls_of(url), TlsSetting::Disable, "{url}");
        }
        for url in [
            "postgres://u@db.example.com/db",
            "postgres://u@10.1.2.3:5432/db",
            "postgres://u@localhost,db2/db",
        ] {
            assert_eq!(tls_of(url), TlsSetting::Verify { roots: Roots::Web }, "{url}");
        }
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_and_the_rest_is_kept() {
        let (config, tls) =
            parse_url("postgres://u:pw@db.example.com:6543/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem&connect_timeout=3")
                .unwrap();
        assert_eq!(
            tls,
            TlsSetting::Verify {
                roots: Roots::File("/etc/ca x.pem".into())
            }
        );
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert_eq!(config.get_connect_timeout(), Some(&std::time::Duration::from_secs(3)));
        assert_eq!(config.get_ports(), &[6543]);
        for mode in ["require", "verify-ca"] {
            assert_eq!(
                tls_of(&format!("postgres://u@127.0.0.1/db?sslmode={mode}")),
                TlsSetting::Verify { roots: Roots::Web }
            );
        }
        assert_eq!(
            tls_of("postgres://u@127.0.0.1/db?sslrootcert=ca.pem"),
            TlsSetting::Verify {
                roots: Roots::File("ca.pem".into())
            }
        );
        let (config, tls) = parse_url("postgres://u@db.example.com/app?sslmode=disable").unwrap();
        assert_eq!((tls, config.get_ssl_mode()), (TlsSetting::Disable, SslMode::Disable));
    }

    #[test]
    fn modes_that_could_fall_back_to_plaintext_are_refused_without_the_password() {
        for mode in ["prefer", "allow", "bogus"] {
            let e = parse_url(&format!("postgres://u:s3cret@db.example.com/app?sslmode={mode}")).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, StoreError::Refused(_)), "{e:?}");
            assert!(
                text.contains(&format!("sslmode={mode}")) && text.contains("verify-full"),
                "{text}"
            );
            assert!(!text.contains("s3cret"), "{text}");
        }
        let e = parse_url("postgres://u:s3cret@db.example.com/app?sslmode=disable&sslrootcert=ca.pem").unwrap_err();
        assert!(e.to_string().contains("drop one"), "{e}");
        let e = parse_url("postgres://u:s3cret@db.example.com/app?nosuch=1").unwrap_err();
        assert!(
            !e.to_string().contains("s3cret") && e.to_string().contains("not a valid PostgreSQL URL"),
            "{e}"
        );
    }

    #[test]
    fn a_ca_file_that_holds_no_certificate_is_refused_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [empty, dir.path().join("missing.pem")] {
            let e = connector(&TlsSetting::Verify {
                roots: Roots::File(path.clone()),
            })
            .err()
            .unwrap();
            assert!(matches!(e, StoreError::Refused(_)), "{e:?}");
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        assert!(connector(&TlsSetting::Verify { roots: Roots::Web }).unwrap().is_some());
        assert!(connector(&TlsSetting::Disable).unwrap().is_none());
    }
}
