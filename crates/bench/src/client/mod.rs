//! A small blocking TURN client over UDP, TCP or TLS: the 401 round trip with REST or
//! static credentials, Allocate, CreatePermission, ChannelBind, Refresh, and the two ways
//! of sending data (ChannelData and Send indications).
//!
//! Every wait is bounded: over UDP a request is retransmitted [`RETRIES`] times with a
//! [`RETRY_TIMEOUT`] each, then fails with [`ClientError::Timeout`]; over a stream it is
//! sent once and waited for as long. On streams (RFC 8656 §12.5) messages and ChannelData
//! frames (padded to 4 bytes) are cut with `turnpike_stun::framing`.
//!
//! The module by job: the client, its transports and how it connects are here;
//! `requests.rs` holds the TURN requests (with the 401/438 round trip) and the data sends;
//! `conn.rs` the connection: transactions, stream framing, the [`Inbox`] and [`Reader`]
//! for a reading thread; `credentials.rs` REST and long-term credentials; `error.rs`
//! [`ClientError`]; `wire.rs` transaction IDs and the message helpers the engine shares.

mod conn;
pub(crate) mod credentials;
mod error;
mod requests;
mod wire;

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use turnpike_stun::IntegrityKey;

use conn::Conn;
pub use conn::{Inbox, Reader};
pub use credentials::{Credentials, mint_rest};
pub(crate) use credentials::{long_term_key, sign};
pub use error::ClientError;
use error::tls_error;
pub(crate) use wire::{Tids, error_code};
pub use wire::{encode_send_indication, send_indication_len};

/// How long one transmission of a request waits for its response.
pub const RETRY_TIMEOUT: Duration = Duration::from_millis(500);
/// How many times a request is sent before giving up.
pub const RETRIES: u32 = 3;
/// How many times Allocate moves to a new local port after a 437.
pub const MISMATCH_RETRIES: u32 = 8;
/// How long a TCP connection (and a TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The most a stream may buffer toward one frame (a STUN message or ChannelData is at
/// most 64 KiB plus its header).
const MAX_FRAME: usize = 65_536 + 8;

/// How a client reaches the server.
#[derive(Debug, Clone, Default)]
pub enum Transport {
    /// UDP (a socket connected to the server).
    #[default]
    Udp,
    /// TCP (RFC 8656 §3.1), one connection per client.
    Tcp,
    /// TLS over TCP (`turns:`), one connection per client.
    Tls(TlsSettings),
}

impl Transport {
    /// `udp`, `tcp` or `tls`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls(_) => "tls",
        }
    }

    /// Whether this is a stream transport (TCP or TLS).
    pub fn is_stream(&self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// What a TLS client needs: its configuration and the name the server's certificate must
/// carry.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls configuration (roots or no verification, ALPN).
    pub config: Arc<rustls::ClientConfig>,
    /// The server name to verify and to send as SNI (an IP address sends no SNI).
    pub name: ServerName<'static>,
}

/// A TURN client on one UDP socket, TCP connection or TLS connection to the server.
pub struct TurnClient {
    conn: Conn,
    /// Bytes read from a stream and not yet cut into frames.
    rbuf: Vec<u8>,
    server: SocketAddr,
    username: String,
    password: String,
    key: Option<IntegrityKey>,
    realm: String,
    nonce: String,
    tids: Tids,
    relayed: Option<SocketAddr>,
    mapped: Option<SocketAddr>,
    /// How many 401/438 challenges this client answered.
    pub challenges: u32,
    /// How many 437 answers to Allocate made the client move to a new local port.
    pub mismatches: u32,
    /// Whether a 437 may move the client to a new local port (not when the caller chose
    /// the local address, see [`TurnClient::from_socket`], nor on streams).
    may_rebind: bool,
    /// Frames received while waiting for a response that were not it (ChannelData from
    /// a peer, indications, late responses), kept for [`TurnClient::take_stray`].
    stray: Vec<Vec<u8>>,
    /// Whether stray frames are kept (else dropped).
    keep_stray: bool,
    /// Where responses come from while another thread reads the connection.
    inbox: Option<Arc<Inbox>>,
}

impl fmt::Debug for TurnClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnClient")
            .field("local", &self.conn.local_addr().ok())
            .field("server", &self.server)
            .field("relayed", &self.relayed)
            .finish_non_exhaustive()
    }
}

impl TurnClient {
    /// Binds a socket on the unspecified address of the server's family (port 0) and
    /// connects it to `server`.
    pub fn connect(server: SocketAddr, credentials: &Credentials) -> Result<Self, ClientError> {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().unwrap_or_else(|_| unreachable!())
        } else {
            "[::]:0".parse().unwrap_or_else(|_| unreachable!())
        };
        let bind = if server.ip().is_loopback() {
            SocketAddr::new(server.ip(), 0)
        } else {
            bind
        };
        let socket = UdpSocket::bind(bind)?;
        socket.connect(server)?;
        Self::with_conn(Conn::Udp(socket), server, credentials)
    }

    /// Connects to `server` over `transport` (UDP as [`TurnClient::connect`]; TCP and TLS
    /// with a new connection, TLS handshake included).
    pub fn connect_over(
        server: SocketAddr,
        credentials: &Credentials,
        transport: &Transport,
    ) -> Result<Self, ClientError> {
        let tcp = || -> Result<TcpStream, ClientError> {
            let tcp = TcpStream::connect_timeout(&server, CONNECT_TIMEOUT)?;
            tcp.set_nodelay(true)?;
            tcp.set_read_timeout(Some(CONNECT_TIMEOUT))?;
            tcp.set_write_timeout(Some(CONNECT_TIMEOUT))?;
            Ok(tcp)
        };
        let conn = match transport {
            Transport::Udp => return Self::connect(server, credentials),
            Transport::Tcp => Conn::Tcp(tcp()?),
            Transport::Tls(t) => {
                let conn = ClientConnection::new(Arc::clone(&t.config), t.name.clone())
                    .map_err(ClientError::Tls)?;
                let mut tls = StreamOwned::new(conn, tcp()?);
                while tls.conn.is_handshaking() {
                    tls.conn.complete_io(&mut tls.sock).map_err(tls_error)?;
                }
                Conn::Tls(Box::new(tls))
            }
        };
        let mut c = Self::with_conn(conn, server, credentials)?;
        c.may_rebind = false;
        Ok(c)
    }

    /// A client on `socket`, a UDP socket the caller bound (its local address is kept:
    /// a 437 on Allocate is returned, not answered by moving to a new port); it is
    /// connected to `server` here.
    pub fn from_socket(
        socket: UdpSocket,
        server: SocketAddr,
        credentials: &Credentials,
    ) -> Result<Self, ClientError> {
        socket.connect(server)?;
        let mut c = Self::with_conn(Conn::Udp(socket), server, credentials)?;
        c.may_rebind = false;
        Ok(c)
    }

    fn with_conn(
        conn: Conn,
        server: SocketAddr,
        credentials: &Credentials,
    ) -> Result<Self, ClientError> {
        let (username, password) = credentials.username_password();
        let local = conn.local_addr()?;
        Ok(Self {
            conn,
            rbuf: Vec::new(),
            server,
            username,
            password,
            key: None,
            realm: String::new(),
            nonce: String::new(),
            tids: Tids::new(u32::from(local.port()) << 16),
            relayed: None,
            mapped: None,
            challenges: 0,
            mismatches: 0,
            may_rebind: true,
            stray: Vec::new(),
            keep_stray: false,
            inbox: None,
        })
    }

    /// A new local socket (new port) for the same server and credentials.
    fn rebind(&mut self) -> Result<(), ClientError> {
        let local = self.conn.local_addr()?;
        let socket = UdpSocket::bind(SocketAddr::new(local.ip(), 0))?;
        socket.connect(self.server)?;
        self.conn = Conn::Udp(socket);
        Ok(())
    }

    /// The client's UDP socket (connected to the server); `None` over TCP and TLS.
    pub fn socket(&self) -> Option<&UdpSocket> {
        match &self.conn {
            Conn::Udp(s) => Some(s),
            _ => None,
        }
    }

    /// The client's TCP connection (under TLS, the connection TLS runs on); `None` over
    /// UDP.
    pub fn tcp(&self) -> Option<&TcpStream> {
        self.conn.tcp()
    }

    /// Whether the client talks over a stream (TCP or TLS).
    pub fn is_stream(&self) -> bool {
        !matches!(self.conn, Conn::Udp(_))
    }

    /// The client's local address.
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.conn.local_addr()?)
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The relayed address once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// The reflexive address the server reported in the Allocate response.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.mapped
    }

    /// Keeps the frames that arrive while a transaction waits for its response and are
    /// not it (ChannelData, Data indications), for [`TurnClient::take_stray`]; off by
    /// default (they are dropped).
    pub fn keep_stray(&mut self, keep: bool) {
        self.keep_stray = keep;
        if !keep {
            self.stray.clear();
        }
    }

    /// While `inbox` is set, transactions send as usual but do not read the connection:
    /// they wait for their response in the inbox, where a thread that reads the
    /// connection (for data, say) puts every STUN response it sees.
    pub fn set_inbox(&mut self, inbox: Option<Arc<Inbox>>) {
        self.inbox = inbox;
    }

    /// A second handle on the connection for a reading thread: the UDP socket or the
    /// TCP connection (`None` under TLS, whose state cannot be shared).
    pub fn reader(&self) -> io::Result<Option<Reader>> {
        Ok(match &self.conn {
            Conn::Udp(s) => Some(Reader::Udp(s.try_clone()?)),
            Conn::Tcp(s) => Some(Reader::Tcp(s.try_clone()?)),
            Conn::Tls(_) => None,
        })
    }

    /// The frames kept since the last call (see [`TurnClient::keep_stray`]).
    pub fn take_stray(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.stray)
    }
}
