//! A small blocking TURN client over UDP, TCP or TLS: the 401 round trip with REST or
//! static credentials, Allocate, CreatePermission, ChannelBind, Refresh, and the two ways
//! of sending data (ChannelData and Send indications).
//!
//! Every wait is bounded: over UDP a request is retransmitted [`RETRIES`] times with a
//! [`RETRY_TIMEOUT`] each, then fails with [`ClientError::Timeout`]; over a stream it is
//! sent once and waited for as long. On streams (RFC 8656 §12.5) messages and ChannelData
//! frames (padded to 4 bytes) are cut with `turnpike_stun::framing`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use sha1::Sha1;
use turnpike_stun::attr::{
    Data, ErrorCodeAttr, Lifetime, Nonce, PasswordAlgorithmId, Realm, RequestedTransport,
    TransportProtocol, Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::framing::{Frame, Framing, next_frame};
use turnpike_stun::{
    CHANNEL_DATA_HEADER_LEN, ChannelNumber, Class, EncodeError, IntegrityKey, LongTermKey, Message,
    MessageType, MessageWriter, Method, TransactionId, write_channel_data_header,
};

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

/// How the client proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// TURN REST credentials minted from a shared secret (`<expiry>:<user>`,
    /// base64(HMAC-SHA1(secret, username))), as coturn's `static-auth-secret` and
    /// turnpike's `secrets` accept.
    Rest {
        /// The shared secret.
        secret: String,
        /// The user part of the username.
        user: String,
    },
    /// A fixed username and password (long-term credentials).
    Static {
        /// The username.
        user: String,
        /// The password.
        password: String,
    },
}

impl Credentials {
    /// The username and password to use now (REST credentials expire in one hour).
    pub fn username_password(&self) -> (String, String) {
        match self {
            Self::Rest { secret, user } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                mint_rest(secret.as_bytes(), user, now + 3600)
            }
            Self::Static { user, password } => (user.clone(), password.clone()),
        }
    }
}

/// Mints a REST credential `(username, password)` valid until `expiry` (unix seconds):
/// username `<expiry>:<user>`, password base64(HMAC-SHA1(secret, username)).
pub fn mint_rest(secret: &[u8], user: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{user}");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(username.as_bytes());
    let password = STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

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

/// Responses to a client's requests, handed over by another thread that reads the
/// client's connection (see [`TurnClient::set_inbox`]).
#[derive(Debug, Default)]
pub struct Inbox {
    frames: Mutex<Vec<Vec<u8>>>,
    arrived: Condvar,
}

impl Inbox {
    /// Most frames kept: a transaction waits for one at a time.
    const MAX: usize = 16;

    /// Hands over a STUN response (or anything else the reader could not place).
    pub fn put(&self, frame: Vec<u8>) {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if frames.len() >= Self::MAX {
            frames.remove(0);
        }
        frames.push(frame);
        self.arrived.notify_all();
    }

    /// Waits until `deadline` for the response to `tid`.
    fn wait_for(&self, tid: TransactionId, deadline: Instant) -> Option<Vec<u8>> {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = frames.iter().position(|f| TurnClient::is_response(f, tid)) {
                return Some(frames.remove(i));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            frames = self
                .arrived
                .wait_timeout(frames, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The client's connection to the server.
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Udp(s) => s.local_addr(),
            Self::Tcp(s) => s.local_addr(),
            Self::Tls(s) => s.sock.local_addr(),
        }
    }

    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Udp(_) => None,
            Self::Tcp(s) => Some(s),
            Self::Tls(s) => Some(&s.sock),
        }
    }
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

    /// Sends a request built by `body` (signed once the realm and nonce are known) and
    /// returns the success response's bytes. Answers 401 and 438 once each.
    fn request(
        &mut self,
        method: Method,
        body: &dyn Fn(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Result<Vec<u8>, ClientError> {
        let mut challenged = 0;
        loop {
            let tid = self.tids.next_id();
            let mut buf = [0u8; 1024];
            let mut w =
                MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid)?;
            body(&mut w)?;
            if let Some(key) = &self.key {
                sign(&mut w, &self.username, &self.realm, &self.nonce, key)?;
            }
            w.put_fingerprint()?;
            let n = w.finish();
            let resp = self.transact(method, &buf[..n], tid)?;
            let msg = Message::new_checked(&resp[..])
                .map_err(|e| ClientError::Protocol(format!("bad response: {e:?}")))?;
            let class = msg.message_type().class;
            if class == Class::Success {
                if let Some(key) = &self.key {
                    if msg.verify_integrity(key).is_err() {
                        return Err(ClientError::Protocol(
                            "response MESSAGE-INTEGRITY does not verify".into(),
                        ));
                    }
                }
                return Ok(resp);
            }
            let (code, reason) = error_code(&msg);
            let reason = reason.to_owned();
            if (code == 401 || code == 438) && challenged < 2 {
                challenged += 1;
                self.challenges += 1;
                let realm = msg.get::<Realm>().ok().flatten().map(|r| r.0.to_owned());
                let nonce = msg.get::<Nonce>().ok().flatten().map(|n| n.0.to_owned());
                if let Some(nonce) = nonce {
                    self.nonce = nonce;
                }
                if let Some(realm) = realm {
                    if realm != self.realm || self.key.is_none() {
                        self.realm = realm;
                        self.key =
                            Some(long_term_key(&self.username, &self.realm, &self.password)?);
                    } else if code == 401 {
                        // Signed with the right key and still refused: wrong credentials.
                        return Err(ClientError::Rejected {
                            method,
                            code,
                            reason,
                        });
                    }
                }
                if self.key.is_some() && !self.nonce.is_empty() {
                    continue;
                }
            }
            return Err(ClientError::Rejected {
                method,
                code,
                reason,
            });
        }
    }

    /// Whether `frame` is the response to `tid`.
    fn is_response(frame: &[u8], tid: TransactionId) -> bool {
        Message::new_checked(frame).is_ok_and(|msg| {
            msg.transaction_id() == tid
                && matches!(msg.message_type().class, Class::Success | Class::Error)
        })
    }

    /// Sends `packet` and waits for the response with `tid` (over UDP retransmitting).
    fn transact(
        &mut self,
        method: Method,
        packet: &[u8],
        tid: TransactionId,
    ) -> Result<Vec<u8>, ClientError> {
        if let Some(inbox) = self.inbox.clone() {
            let tries = if self.is_stream() { 1 } else { RETRIES };
            let wait = RETRY_TIMEOUT * (RETRIES / tries);
            for _ in 0..tries {
                self.send_raw(packet)?;
                if let Some(r) = inbox.wait_for(tid, Instant::now() + wait) {
                    return Ok(r);
                }
            }
            return Err(ClientError::Timeout(method));
        }
        let socket = match &self.conn {
            Conn::Udp(s) => s,
            Conn::Tcp(_) | Conn::Tls(_) => return self.transact_stream(method, packet, tid),
        };
        let mut buf = [0u8; 2048];
        for _ in 0..RETRIES {
            socket.send(packet)?;
            let deadline = Instant::now() + RETRY_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                socket.set_read_timeout(Some(left))?;
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    // ICMP port unreachable from an earlier send: the server is not there yet.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Err(e) => return Err(e.into()),
                };
                if Self::is_response(&buf[..n], tid) {
                    return Ok(buf[..n].to_vec());
                }
                if self.keep_stray {
                    self.stray.push(buf[..n].to_vec());
                }
            }
        }
        Err(ClientError::Timeout(method))
    }

    /// [`TurnClient::transact`] over a stream: one transmission, one long wait.
    fn transact_stream(
        &mut self,
        method: Method,
        packet: &[u8],
        tid: TransactionId,
    ) -> Result<Vec<u8>, ClientError> {
        self.send_raw(packet)?;
        let deadline = Instant::now() + RETRY_TIMEOUT * RETRIES;
        loop {
            while let Some(frame) = self.next_stream_frame()? {
                if Self::is_response(&frame, tid) {
                    return Ok(frame);
                }
                if self.keep_stray {
                    self.stray.push(frame);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(method));
            }
            match self.fill(left) {
                Ok(()) => {}
                Err(ClientError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what the stream has (waiting up to `wait`) into the frame buffer.
    fn fill(&mut self, wait: Duration) -> Result<(), ClientError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = match &mut self.conn {
            Conn::Udp(_) => return Ok(()),
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
                s.read(&mut chunk)
            }
            Conn::Tls(s) => {
                s.sock
                    .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
                s.read(&mut chunk)
            }
        }
        .map_err(tls_error)?;
        if n == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        self.rbuf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Cuts the next complete frame off the stream buffer, if there is one.
    fn next_stream_frame(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        match next_frame(&self.rbuf) {
            Framing::Frame(f) => {
                let n = f.len().min(self.rbuf.len());
                let mut frame: Vec<u8> = self.rbuf.drain(..n).collect();
                if let Frame::ChannelData(_) = f {
                    // Drop the padding: the header's length says where the data ends.
                    let len = frame
                        .get(2..4)
                        .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
                    frame.truncate(CHANNEL_DATA_HEADER_LEN + len);
                }
                Ok(Some(frame))
            }
            Framing::NeedMore(n) if n <= MAX_FRAME => Ok(None),
            Framing::NeedMore(_) | Framing::Garbage => Err(ClientError::Protocol(
                "the stream does not carry STUN or ChannelData".into(),
            )),
        }
    }

    /// Waits up to `wait` for the next frame from the server: a datagram over UDP, a
    /// frame cut from the stream over TCP and TLS (ChannelData without its padding).
    /// `Ok(None)` when nothing came in time.
    pub fn recv_frame(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, ClientError> {
        if let Conn::Udp(s) = &self.conn {
            s.set_read_timeout(Some(wait.max(Duration::from_micros(1))))?;
            let mut buf = [0u8; 65_536];
            return match s.recv(&mut buf) {
                Ok(n) => Ok(Some(buf[..n].to_vec())),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            };
        }
        if let Some(f) = self.next_stream_frame()? {
            return Ok(Some(f));
        }
        match self.fill(wait) {
            Ok(()) => self.next_stream_frame(),
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `bytes` as they are: one datagram over UDP; over a stream written whole (a
    /// caller may pass several frames at once, each padded to 4 bytes).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        match &mut self.conn {
            Conn::Udp(s) => {
                s.send(bytes)?;
            }
            Conn::Tcp(s) => s.write_all(bytes)?,
            Conn::Tls(s) => {
                s.write_all(bytes).map_err(tls_error)?;
                s.flush().map_err(tls_error)?;
            }
        }
        Ok(())
    }

    /// Allocates a UDP relay with `lifetime` seconds (None: the server's default) and
    /// returns the relayed address.
    ///
    /// A 437 (Allocation Mismatch) means the server still holds an allocation for this
    /// 5-tuple, typically one just deleted on a local port the kernel handed out again
    /// (coturn keeps deleted allocations for a moment): the client then moves to a new
    /// local port and tries again, up to [`MISMATCH_RETRIES`] times.
    pub fn allocate(&mut self, lifetime: Option<u32>) -> Result<SocketAddr, ClientError> {
        let mut attempt = 0;
        let resp = loop {
            let result = self.request(Method::ALLOCATE, &|w| {
                w.put(&RequestedTransport(TransportProtocol::UDP))?;
                if let Some(l) = lifetime {
                    w.put(&Lifetime(l))?;
                }
                Ok(())
            });
            match result {
                Err(ClientError::Rejected { code: 437, .. })
                    if attempt < MISMATCH_RETRIES && self.may_rebind =>
                {
                    attempt += 1;
                    self.mismatches += 1;
                    self.rebind()?;
                }
                other => break other?,
            }
        };
        let msg =
            Message::new_checked(&resp[..]).map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        let relayed = msg
            .get::<XorRelayedAddress>()
            .ok()
            .flatten()
            .ok_or_else(|| ClientError::Protocol("no XOR-RELAYED-ADDRESS".into()))?
            .0;
        self.mapped = msg.get::<XorMappedAddress>().ok().flatten().map(|a| a.0);
        self.relayed = Some(relayed);
        Ok(relayed)
    }

    /// Refreshes the allocation; `0` deletes it. Returns the granted lifetime.
    pub fn refresh(&mut self, lifetime: u32) -> Result<u32, ClientError> {
        let resp = self.request(Method::REFRESH, &|w| w.put(&Lifetime(lifetime)))?;
        let msg =
            Message::new_checked(&resp[..]).map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        if lifetime == 0 {
            self.relayed = None;
        }
        Ok(msg
            .get::<Lifetime>()
            .ok()
            .flatten()
            .map_or(lifetime, |l| l.0))
    }

    /// Installs a permission for `peer`'s IP address.
    pub fn create_permission(&mut self, peer: SocketAddr) -> Result<(), ClientError> {
        self.request(Method::CREATE_PERMISSION, &|w| w.put(&XorPeerAddress(peer)))?;
        Ok(())
    }

    /// Binds `channel` to `peer` (this also installs a permission).
    pub fn channel_bind(
        &mut self,
        channel: ChannelNumber,
        peer: SocketAddr,
    ) -> Result<(), ClientError> {
        self.request(Method::CHANNEL_BIND, &|w| {
            w.put(&channel)?;
            w.put(&XorPeerAddress(peer))
        })?;
        Ok(())
    }

    /// Sends `data` to `peer` in a Send indication.
    pub fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) -> Result<(), ClientError> {
        let tid = self.tids.next_id();
        let mut buf = vec![0u8; data.len() + 64];
        let n = encode_send_indication(&mut buf, tid, peer, data)?;
        self.send_raw(&buf[..n])
    }

    /// Sends `data` on `channel` as ChannelData (padded to 4 bytes over a stream).
    pub fn send_channel_data(
        &mut self,
        channel: ChannelNumber,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let len = CHANNEL_DATA_HEADER_LEN + data.len();
        let padded = if self.is_stream() {
            len.next_multiple_of(4)
        } else {
            len
        };
        let mut buf = vec![0u8; padded];
        write_channel_data_header(&mut buf, channel, data.len())?;
        buf[CHANNEL_DATA_HEADER_LEN..len].copy_from_slice(data);
        self.send_raw(&buf)
    }

    /// Deletes the allocation (Refresh with lifetime 0), once: a failed attempt is not
    /// repeated by a later call.
    pub fn close(&mut self) -> Result<(), ClientError> {
        if self.relayed.take().is_some() {
            self.refresh(0)?;
        }
        Ok(())
    }
}

/// A second handle on a client's connection, for a thread that reads it.
#[derive(Debug)]
pub enum Reader {
    /// The client's UDP socket.
    Udp(UdpSocket),
    /// The client's TCP connection.
    Tcp(TcpStream),
}

/// An I/O error from a TLS stream as a [`ClientError`]: rustls' own errors (a refused
/// certificate, say) come out as [`ClientError::Tls`].
fn tls_error(e: io::Error) -> ClientError {
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

/// Transaction IDs: a counter, then a salt (the clock's nanoseconds mixed with a value of
/// the caller's) that tells clients started at the same time apart.
#[derive(Debug)]
pub(crate) struct Tids {
    counter: u64,
    salt: u32,
}

impl Tids {
    pub(crate) fn new(mix: u32) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            counter: 0,
            salt: nanos ^ mix,
        }
    }

    pub(crate) fn next_id(&mut self) -> TransactionId {
        self.counter += 1;
        let mut t = [0u8; 12];
        t[..8].copy_from_slice(&self.counter.to_be_bytes());
        t[8..].copy_from_slice(&self.salt.to_be_bytes());
        TransactionId(t)
    }
}

/// The long-term key (MD5) of `username`, `realm` and `password`, ready for
/// MESSAGE-INTEGRITY.
pub(crate) fn long_term_key(
    username: &str,
    realm: &str,
    password: &str,
) -> Result<IntegrityKey, ClientError> {
    LongTermKey::derive(PasswordAlgorithmId::MD5, username, realm, password)
        .map(|k| k.integrity_key())
        .map_err(|e| ClientError::Protocol(format!("key: {e:?}")))
}

/// Signs a request: USERNAME, REALM, NONCE and MESSAGE-INTEGRITY with `key`.
pub(crate) fn sign(
    w: &mut MessageWriter<'_>,
    username: &str,
    realm: &str,
    nonce: &str,
    key: &IntegrityKey,
) -> Result<(), EncodeError> {
    w.put(&Username(username))?;
    w.put(&Realm(realm))?;
    w.put(&Nonce(nonce))?;
    w.put_integrity(key)
}

/// An error response's code and reason phrase (0 and a note when it has no ERROR-CODE).
pub(crate) fn error_code<T: AsRef<[u8]>>(msg: &Message<T>) -> (u16, &str) {
    match msg.get::<ErrorCodeAttr>() {
        Ok(Some(e)) => (e.code.code(), e.reason),
        _ => (0, "error response without ERROR-CODE"),
    }
}

/// Encodes a Send indication carrying `data` to `peer` into `buf`; returns its length.
pub fn encode_send_indication(
    buf: &mut [u8],
    tid: TransactionId,
    peer: SocketAddr,
    data: &[u8],
) -> Result<usize, EncodeError> {
    let mut w = MessageWriter::new(buf, MessageType::new(Method::SEND, Class::Indication), tid)?;
    w.put(&XorPeerAddress(peer))?;
    w.put(&Data(data))?;
    Ok(w.finish())
}

/// The length of a Send indication for `data_len` bytes of data to an IPv4 (`v6` false)
/// or IPv6 peer: header, XOR-PEER-ADDRESS, DATA (padded).
pub fn send_indication_len(data_len: usize, v6: bool) -> usize {
    20 + 4 + if v6 { 20 } else { 8 } + 4 + data_len.next_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_password_matches_openssl() {
        // printf %s "1379330808:28224511" | openssl dgst -binary -sha1 -hmac secret | base64
        let (u, p) = mint_rest(b"secret", "28224511", 1_379_330_808);
        assert_eq!(u, "1379330808:28224511");
        assert_eq!(p, "Qqq+TxHQcUbGrWixaXf4bkkEZW0=");
    }

    #[test]
    fn send_indication_length() {
        let mut buf = [0u8; 256];
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for len in [0, 1, 3, 4, 100, 101] {
            let n = encode_send_indication(&mut buf, TransactionId([1; 12]), peer, &vec![7; len])
                .unwrap();
            assert_eq!(n, send_indication_len(len, false));
        }
    }
}
