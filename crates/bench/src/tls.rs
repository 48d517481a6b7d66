//! TLS client settings for `turns:` load: the roots from a PEM file (no system or webpki
//! roots are bundled: the bench runs offline), or no verification at all for
//! self-signed test servers. ALPN offers `stun.turn` (RFC 7443).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::client::TlsSettings;

/// The ALPN protocol of TURN over TLS (RFC 7443).
pub const ALPN_STUN_TURN: &[u8] = b"stun.turn";

/// Why the TLS settings could not be made.
#[derive(Debug)]
pub enum TlsError {
    /// The CA file could not be read or parsed.
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Neither `--ca` nor `--insecure`: there is nothing to verify the server against.
    NoRoots,
    /// The server name is not a DNS name or IP address.
    BadName(String),
    /// rustls refused the configuration.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ca { path, reason } => write!(f, "CA file {}: {reason}", path.display()),
            Self::NoRoots => write!(
                f,
                "TLS needs --ca FILE (PEM roots) or --insecure (no certificate check)"
            ),
            Self::BadName(n) => write!(f, "not a DNS name or IP address: {n}"),
            Self::Rustls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// TLS settings for a server at `server`: verified against the PEM roots in `ca` for
/// `name` (default: the server's IP address), or not verified at all with `insecure`.
pub fn settings(
    server: SocketAddr,
    name: Option<&str>,
    ca: Option<&Path>,
    insecure: bool,
) -> Result<TlsSettings, TlsError> {
    let name = match name {
        Some(n) => ServerName::try_from(n.to_owned()).map_err(|_| TlsError::BadName(n.into()))?,
        None => ServerName::IpAddress(server.ip().into()),
    };
    Ok(TlsSettings {
        config: client_config(ca, insecure)?,
        name,
    })
}

/// A rustls client configuration (ring, TLS 1.2 and 1.3, ALPN `stun.turn`).
pub fn client_config(ca: Option<&Path>, insecure: bool) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let path = ca.ok_or(TlsError::NoRoots)?;
        let ca_err = |reason: String| TlsError::Ca {
            path: path.to_owned(),
            reason,
        };
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no certificate in the file".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![ALPN_STUN_TURN.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any server certificate (`--insecure`); handshake signatures are still checked,
/// so the connection is encrypted as a real one would be, only not authenticated.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_roots_or_insecure() {
        assert!(matches!(client_config(None, false), Err(TlsError::NoRoots)));
        let c = client_config(None, true).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"stun.turn".to_vec()]);
        let bad = Path::new("/nonexistent/ca.pem");
        assert!(matches!(
            client_config(Some(bad), false),
            Err(TlsError::Ca { .. })
        ));
        let s = settings("127.0.0.1:5349".parse().unwrap(), None, None, true).unwrap();
        assert!(matches!(s.name, ServerName::IpAddress(_)));
        assert!(
            settings(
                "127.0.0.1:5349".parse().unwrap(),
                Some("bad name!"),
                None,
                true
            )
            .is_err()
        );
    }
}
