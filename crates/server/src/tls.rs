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
}

/// Why TLS could not be set up.
#[derive(Debug)]
pub struct TlsError {
    /// The file involved.
    pub file: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

impl std::error::Error for TlsError {}

/// Builds the acceptor: TLS 1.2 and 1.3 (rustls offers nothing older), no client
/// certificates, ALPN `stun.turn`.
///
/// # Errors
///
/// Unreadable or invalid PEM files, or a key that does not match the certificate.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let err = |file: &Path, reason: String| TlsError {
        file: file.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| err(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(&files.cert, "no certificate in the file".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| err(&files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| err(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(&files.key, e.to_string()))?;
    config.alpn_protocols = vec![ALPN_STUN_TURN.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
