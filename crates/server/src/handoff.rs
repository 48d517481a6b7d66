//! What workers hand each other: accepted connections, and the few packets whose state
//! another worker holds.
//!
//! Workers share nothing on the packet path, but a client decides which socket it uses
//! and the kernel decides which worker reads it: a moved client (RFC 8016) or an RFC 6062
//! data connection may reach another worker than the one whose core holds the
//! allocation or connection its request names. That core's
//! [`ClientAction::Forward`](turnpike_proto::ClientAction::Forward) names the worker
//! (worker index = core shard); the packet, or the whole stream from that frame on, goes
//! there through its [`ToWorker`] queue. A UDP 5-tuple handed over once is remembered
//! ([`Moved`]) so its later datagrams follow without asking the core again. Reserved
//! relay ports (RFC 8656 §7.2) need no handoff: they are parked where every worker can
//! claim them (`relay::ParkedRelays`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use turnpike_proto::{FiveTuple, HashMap};

use crate::tcp::{Incoming, Slot};

/// A message to a worker.
pub(crate) enum ToWorker {
    /// A connection just accepted.
    Accepted(Incoming),
    /// A client connection another worker was serving, from the frame on that it could
    /// not serve (`buffered` holds that frame and what followed it).
    Stream(HandedStream),
    /// A new configuration for the core ([`crate::ServerControl::reload`]).
    Reconfigure(std::sync::Arc<turnpike_proto::TurnConfig>),
    /// The TLS acceptor for connections from now on (`None`: plain TCP only).
    Tls(Option<tokio_rustls::TlsAcceptor>),
    /// Start or stop redirecting new Allocates.
    Redirect(bool),
    /// Report this worker's status.
    Status(tokio::sync::oneshot::Sender<crate::control::WorkerStatus>),
    /// An operator's job ([`crate::ServerControl`]): run it between packets.
    Run(crate::control::Job),
    /// A datagram another worker received from a client whose state is here.
    Datagram {
        /// The client's 5-tuple.
        from: FiveTuple,
        /// The datagram.
        datagram: Bytes,
    },
}

/// A client connection on its way to another worker.
pub(crate) struct HandedStream {
    /// The connection, registered with the runtime that accepted it.
    pub(crate) stream: ClientStream,
    /// The client, the server address it connected to, and TCP or TLS.
    pub(crate) five_tuple: FiveTuple,
    /// Its place under the connection limits, released when it closes.
    pub(crate) slot: Slot,
    /// What was read but not served: the frame at hand and what followed it.
    pub(crate) buffered: Vec<u8>,
}

/// The queues to every worker, by index (a worker's index is its core's shard).
pub(crate) type Workers = Vec<mpsc::UnboundedSender<ToWorker>>;

/// A client connection, plain or TLS. Both are `Send`: a worker may hand one to
/// another; the socket stays registered with the runtime that accepted it, which
/// keeps delivering its readiness (every worker's runtime lives as long as the server).
pub(crate) enum ClientStream {
    /// TCP.
    Tcp(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How long a handed-over UDP 5-tuple is remembered after its last datagram: as long as
/// the longest allocation lifetime one Refresh can grant by default.
const MOVED_IDLE: Duration = Duration::from_secs(3600);

/// UDP 5-tuples this worker receives but another worker serves (a moved client whose
/// allocation lives there), with the worker and when one last came. Empty unless
/// mobility is used, and then checked with one branch per datagram.
#[derive(Default)]
pub(crate) struct Moved {
    tuples: HashMap<FiveTuple, (usize, Instant)>,
}

impl Moved {
    /// The worker that serves `from`, if it was handed over.
    pub(crate) fn worker_for(&mut self, from: &FiveTuple, now: Instant) -> Option<usize> {
        if self.tuples.is_empty() {
            return None;
        }
        let (worker, seen) = self.tuples.get_mut(from)?;
        *seen = now;
        Some(*worker)
    }

    /// Whether no 5-tuple is handed over.
    pub(crate) fn is_empty(&self) -> bool {
        self.tuples.is_empty()
    }

    /// Remembers that `worker` serves `from`.
    pub(crate) fn insert(&mut self, from: FiveTuple, worker: usize, now: Instant) {
        self.tuples.insert(from, (worker, now));
    }

    /// Forgets 5-tuples idle for [`MOVED_IDLE`].
    pub(crate) fn expire(&mut self, now: Instant) {
        self.tuples
            .retain(|_, (_, seen)| now.saturating_duration_since(*seen) < MOVED_IDLE);
    }
}
