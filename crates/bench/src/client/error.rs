//! What can go wrong with a TURN transaction, as a typed error that keeps its source.

use std::fmt;
use std::io;

use turnpike_stun::{EncodeError, Method};

/// What went wrong with a TURN transaction.
#[derive(Debug)]
pub enum ClientError {
    /// A socket error.
    Io(io::Error),
    /// No response after all retransmissions.
    Timeout(Method),
    /// The server answered with an error code.
    Rejected {
        /// The request's method.
        method: Method,
        /// The error code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The response was not what TURN promises (missing attribute, bad integrity).
    Protocol(String),
    /// TLS could not be set up.
    Tls(rustls::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "socket error: {e}"),
            Self::Timeout(m) => write!(f, "{m:?}: no response from the server"),
            Self::Rejected {
                method,
                code,
                reason,
            } => write!(f, "{method:?} rejected: {code} {reason}"),
            Self::Protocol(s) => write!(f, "protocol error: {s}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<EncodeError> for ClientError {
    fn from(e: EncodeError) -> Self {
        Self::Protocol(format!("encode: {e:?}"))
    }
}

/// An I/O error from a TLS stream as a [`ClientError`]: rustls' own errors (a refused
/// certificate, say) come out as [`ClientError::Tls`].
pub(super) fn tls_error(e: io::Error) -> ClientError {
    if !e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return ClientError::Io(e);
    }
    match e
        .into_inner()
        .map(|inner| inner.downcast::<rustls::Error>())
    {
        Some(Ok(inner)) => ClientError::Tls(*inner),
        _ => ClientError::Protocol("TLS error".into()),
    }
}
