//! The HTTPS port's TLS: TLS 1.3 only, on rustls with the ring provider, with the
//! operator's certificate or one made on first start and kept beside the hub key.
//!
//! Nothing rests on this certificate: the Noise IK handshake inside the WebSocket pins
//! the hub's key from the server URL, so a node accepts any certificate and a
//! TLS-inspecting proxy that replaces it changes nothing. The certificate is there so
//! that the connection is ordinary HTTPS to every middlebox on the way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use chrono::Datelike;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The operator's certificate chain and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Where the hub keeps the certificate it made itself: `<hub key>.tls-cert.pem` and
    /// `<hub key>.tls-key.pem`, in the hub's state directory.
    pub fn beside(hub_key: &Path) -> TlsFiles {
        let with = |suffix: &str| {
            let mut name = OsString::from(hub_key.as_os_str());
            name.push(suffix);
            PathBuf::from(name)
        };
        TlsFiles {
            cert: with(".tls-cert.pem"),
            key: with(".tls-key.pem"),
        }
    }
}

/// The TLS server configuration: the operator's files when given, else the hub's own
/// certificate for `subject` (the host users reach the hub at), made on first start.
pub fn server_config(operator: Option<&TlsFiles>, hub_key: &Path, subject: &str) -> Result<Arc<ServerConfig>> {
    let (certs, key) = match operator {
        Some(files) => load(files).with_context(|| {
            format!(
                "cannot use the TLS certificate {} with key {}",
                files.cert.display(),
                files.key.display()
            )
        })?,
        None => own(&TlsFiles::beside(hub_key), subject)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 with the ring provider")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate does not match its key")?;
    // What a browser is answered with: HTTP/1.1, the only protocol served (the WebSocket
    // upgrade is an HTTP/1.1 request).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load(files: &TlsFiles) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{}: no CERTIFICATE in the file", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| anyhow!("{}: {e}", files.key.display()))?;
    Ok((certs, key))
}

/// The hub's own certificate: loaded when both files are there, else made and written
/// (the key first, each atomically and 0600, so a crash leaves no half pair in use).
fn own(files: &TlsFiles, subject: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    if files.cert.exists() && files.key.exists() {
        return load(files).with_context(|| {
            format!(
                "cannot read the hub's TLS certificate {} (delete it and {} to make new ones)",
                files.cert.display(),
                files.key.display()
            )
        });
    }
    let (cert_pem, key_pem) = generate(subject)?;
    crate::util::write_atomic(&files.key, key_pem.as_bytes(), 0o600)?;
    crate::util::write_atomic(&files.cert, cert_pem.as_bytes(), 0o600)?;
    tracing::info!(cert = %files.cert.display(), %subject, "made the HTTPS port's TLS certificate");
    load(files)
}

/// A self-signed certificate for `subject` (a host name or an IP address), valid from
/// yesterday for ten years: the shape of an ordinary server certificate, not rcgen's
/// default 1975–4096.
pub fn generate(subject: &str) -> Result<(String, String)> {
    let mut params = rcgen::CertificateParams::new(vec![subject.to_string()])
        .map_err(|e| anyhow!("cannot make a TLS certificate for {subject:?}: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject.to_string());
    let today = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(today);
    params.not_after = ymd(today.with_day(1).unwrap_or(today) + chrono::Months::new(120));
    let key = rcgen::KeyPair::generate().map_err(|e| anyhow!("cannot make a TLS key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| anyhow!("cannot sign the TLS certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn own_certificate_is_made_once_0600_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("hub.key");
        let files = TlsFiles::beside(&key);
        assert_eq!(files.cert, dir.path().join("hub.key.tls-cert.pem"));
        server_config(None, &key, "vpn.example.com").unwrap();
        for f in [&files.cert, &files.key] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        let first = std::fs::read(&files.cert).unwrap();
        server_config(None, &key, "another.example.com").unwrap();
        assert_eq!(std::fs::read(&files.cert).unwrap(), first, "kept across restarts");
        // The operator's files work the same way, and a wrong path says which.
        server_config(Some(&files), Path::new("/nonexistent"), "x").unwrap();
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: files.key.clone(),
        };
        let e = format!("{:#}", server_config(Some(&missing), &key, "x").unwrap_err());
        assert!(e.contains("nope.pem"), "{e}");
    }

    #[test]
    fn ip_subjects_get_an_ip_certificate() {
        let (cert, _) = generate("192.0.2.7").unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        // The IP address SAN holds the four bytes of the address.
        assert!(der.windows(4).any(|w| w == [192, 0, 2, 7]));
    }
}
