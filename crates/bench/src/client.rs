//! A small blocking TURN client over UDP: the 401 round trip with REST or static
//! credentials, Allocate, CreatePermission, ChannelBind, Refresh, and the two ways of
//! sending data (ChannelData and Send indications).
//!
//! Every wait is bounded: a request is retransmitted [`RETRIES`] times with a
//! [`RETRY_TIMEOUT`] each, then fails with [`ClientError::Timeout`].

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use turnpike_stun::attr::{
    Data, ErrorCodeAttr, Lifetime, Nonce, PasswordAlgorithmId, Realm, RequestedTransport,
    TransportProtocol, Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
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

/// A TURN client on one UDP socket, connected to the server.
pub struct TurnClient {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    password: String,
    key: Option<IntegrityKey>,
    realm: String,
    nonce: String,
    tid_counter: u64,
    tid_salt: u32,
    relayed: Option<SocketAddr>,
    mapped: Option<SocketAddr>,
    /// How many 401/438 challenges this client answered.
    pub challenges: u32,
    /// How many 437 answers to Allocate made the client move to a new local port.
    pub mismatches: u32,
}

impl fmt::Debug for TurnClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnClient")
            .field("local", &self.socket.local_addr().ok())
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
        let (username, password) = credentials.username_password();
        let local = socket.local_addr()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Ok(Self {
            socket,
            server,
            username,
            password,
            key: None,
            realm: String::new(),
            nonce: String::new(),
            tid_counter: 0,
            tid_salt: nanos ^ u32::from(local.port()) << 16,
            relayed: None,
            mapped: None,
            challenges: 0,
            mismatches: 0,
        })
    }

    /// A new local socket (new port) for the same server and credentials.
    fn rebind(&mut self) -> Result<(), ClientError> {
        let local = self.socket.local_addr()?;
        let socket = UdpSocket::bind(SocketAddr::new(local.ip(), 0))?;
        socket.connect(self.server)?;
        self.socket = socket;
        Ok(())
    }

    /// The client's socket (connected to the server).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
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

    fn next_tid(&mut self) -> TransactionId {
        self.tid_counter += 1;
        let mut t = [0u8; 12];
        t[..8].copy_from_slice(&self.tid_counter.to_be_bytes());
        t[8..].copy_from_slice(&self.tid_salt.to_be_bytes());
        TransactionId(t)
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
            let tid = self.next_tid();
            let mut buf = [0u8; 1024];
            let mut w =
                MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid)?;
            body(&mut w)?;
            if let Some(key) = &self.key {
                w.put(&Username(&self.username))?;
                w.put(&Realm(&self.realm))?;
                w.put(&Nonce(&self.nonce))?;
                w.put_integrity(key)?;
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
            let (code, reason) = match msg.get::<ErrorCodeAttr>() {
                Ok(Some(e)) => (e.code.code(), e.reason.to_owned()),
                _ => (0, "error response without ERROR-CODE".to_owned()),
            };
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
                        let key = LongTermKey::derive(
                            PasswordAlgorithmId::MD5,
                            &self.username,
                            &self.realm,
                            &self.password,
                        )
                        .map_err(|e| ClientError::Protocol(format!("key: {e:?}")))?;
                        self.key = Some(key.integrity_key());
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

    /// Sends `packet` and waits for the response with `tid`, retransmitting.
    fn transact(
        &self,
        method: Method,
        packet: &[u8],
        tid: TransactionId,
    ) -> Result<Vec<u8>, ClientError> {
        let mut buf = [0u8; 2048];
        for _ in 0..RETRIES {
            self.socket.send(packet)?;
            let deadline = Instant::now() + RETRY_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.socket.set_read_timeout(Some(left))?;
                let n = match self.socket.recv(&mut buf) {
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
                if let Ok(msg) = Message::new_checked(&buf[..n]) {
                    if msg.transaction_id() == tid
                        && matches!(msg.message_type().class, Class::Success | Class::Error)
                    {
                        return Ok(buf[..n].to_vec());
                    }
                }
            }
        }
        Err(ClientError::Timeout(method))
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
                Err(ClientError::Rejected { code: 437, .. }) if attempt < MISMATCH_RETRIES => {
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
        let tid = self.next_tid();
        let mut buf = vec![0u8; data.len() + 64];
        let n = encode_send_indication(&mut buf, tid, peer, data)?;
        self.socket.send(&buf[..n])?;
        Ok(())
    }

    /// Sends `data` on `channel` as ChannelData.
    pub fn send_channel_data(
        &self,
        channel: ChannelNumber,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let mut buf = vec![0u8; data.len() + CHANNEL_DATA_HEADER_LEN];
        write_channel_data_header(&mut buf, channel, data.len())?;
        buf[CHANNEL_DATA_HEADER_LEN..].copy_from_slice(data);
        self.socket.send(&buf)?;
        Ok(())
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
