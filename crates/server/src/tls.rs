//! TLS for `turns:` and `stuns:` (RFC 8489 §6.2.3, RFC 8656 §3.1): rustls with TLS 1.2 and
//! 1.3 only, a certificate chain and key from PEM files, and ALPN `stun.turn` (RFC 7443).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocol id of STUN and TURN over TLS (RFC 7443 §4.1).
pub const ALPN_STUN_TURN: &[u8] = b"stun.turn";

/// Where the certificate chain and private key live (`[tls]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often, in seconds, the binary looks at the two files' metadata (following
    /// symlinks) and reloads them when they changed, so a renewed certificate is picked
    /// up without a SIGHUP. 0 = never. Default: [`DEFAULT_WATCH_INTERVAL_SECS`].
    #[serde(default = "default_watch_interval")]
    pub watch_interval_secs: u64,
}

/// The default of [`TlsFiles::watch_interval_secs`]: a renewal (certbot, cert-manager) is
/// in force within seconds, for one `stat` of two files per interval.
pub const DEFAULT_WATCH_INTERVAL_SECS: u64 = 10;

fn default_watch_interval() -> u64 {
    DEFAULT_WATCH_INTERVAL_SECS
}

/// Why TLS could not be set up: which file, and what was wrong with it.
#[derive(Debug)]
pub struct TlsError {
    /// The file involved.
    pub file: PathBuf,
    /// What went wrong.
    pub kind: TlsErrorKind,
}

/// What was wrong with a TLS file.
#[derive(Debug)]
pub enum TlsErrorKind {
    /// Not readable, or not PEM of the expected kind.
    Pem(rustls_pki_types::pem::Error),
    /// A PEM file without a certificate.
    NoCertificate,
    /// rustls refused the chain or the key (a key that does not match the certificate,
    /// an unsupported key type).
    Rustls(rustls::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.display();
        match &self.kind {
            TlsErrorKind::Pem(e) => write!(f, "{file}: {e}"),
            TlsErrorKind::NoCertificate => write!(f, "{file}: no certificate in the file"),
            TlsErrorKind::Rustls(e) => write!(f, "{file}: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            TlsErrorKind::Pem(e) => Some(e),
            TlsErrorKind::NoCertificate => None,
            TlsErrorKind::Rustls(e) => Some(e),
        }
    }
}

/// Builds the acceptor: TLS 1.2 and 1.3 (rustls offers nothing older), no client
/// certificates, ALPN `stun.turn`.
///
/// # Errors
///
/// Unreadable or invalid PEM files, or a key that does not match the certificate.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let err = |file: &Path, kind: TlsErrorKind| TlsError {
        file: file.to_owned(),
        kind,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| err(&files.cert, TlsErrorKind::Pem(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(&files.cert, TlsErrorKind::Pem(e)))?;
    if certs.is_empty() {
        return Err(err(&files.cert, TlsErrorKind::NoCertificate));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| err(&files.key, TlsErrorKind::Pem(e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| err(&files.cert, TlsErrorKind::Rustls(e)))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(&files.key, TlsErrorKind::Rustls(e)))?;
    config.alpn_protocols = vec![ALPN_STUN_TURN.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The expiry (unix seconds) of the first certificate in `files.cert` (the server's own),
/// for the certificate-expiry metric; `None` if it cannot be read.
pub fn not_after(files: &TlsFiles) -> Option<u64> {
    let first = CertificateDer::pem_file_iter(&files.cert)
        .ok()?
        .next()?
        .ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref()).ok()?;
    u64::try_from(cert.validity().not_after.timestamp()).ok()
}
