//! A small TURN client on our codec for integration tests: the 401 dance with REST
//! credentials, signed requests, and receiving with a filter.
#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use turnpike_proto::auth::rest::mint;
use turnpike_stun::attr::{ErrorCodeAttr, Nonce, PasswordAlgorithmId, Realm, Username};
use turnpike_stun::{
    Class, IntegrityKey, LongTermKey, Message, MessageType, MessageWriter, Method, TransactionId,
};

pub struct Client {
    password: String,
    pub socket: UdpSocket,
    pub server: SocketAddr,
    username: String,
    key: Option<IntegrityKey>,
    realm: String,
    nonce: String,
    next_tid: u8,
}

impl Client {
    /// A client with a REST credential for `user` under `secret`.
    pub fn new(server: SocketAddr, secret: &str, user: &str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let expiry = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let (username, password) = mint(secret.as_bytes(), user, expiry);
        Self::with_password(server, &username, &password, socket)
    }

    /// A client with a static username and password, on `socket`.
    pub fn with_password(
        server: SocketAddr,
        username: &str,
        password: &str,
        socket: UdpSocket,
    ) -> Self {
        Self {
            password: password.to_owned(),
            socket,
            server,
            username: username.to_owned(),
            key: None,
            realm: String::new(),
            nonce: String::new(),
            next_tid: 0,
        }
    }

    pub fn tid(&mut self) -> TransactionId {
        self.next_tid = self.next_tid.wrapping_add(1);
        TransactionId([self.next_tid; 12])
    }

    /// Sends a signed request built by `body` and returns the response bytes.
    pub fn request(
        &mut self,
        method: Method,
        body: impl Fn(&mut MessageWriter<'_>) -> Result<(), turnpike_stun::EncodeError>,
    ) -> Vec<u8> {
        for _ in 0..2 {
            let tid = self.tid();
            let mut buf = [0u8; 512];
            let mut w = MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid)
                .unwrap();
            body(&mut w).unwrap();
            if let Some(key) = &self.key {
                w.put(&Username(&self.username)).unwrap();
                w.put(&Realm(&self.realm)).unwrap();
                w.put(&Nonce(&self.nonce)).unwrap();
                w.put_integrity(key).unwrap();
            }
            let n = w.finish();
            self.socket.send_to(&buf[..n], self.server).unwrap();
            let resp = self.receive(|m| m.transaction_id() == tid);
            let msg = Message::new_checked(&resp[..]).unwrap();
            let code = msg.get::<ErrorCodeAttr>().unwrap().map(|e| e.code.code());
            if code == Some(401) || code == Some(438) {
                // The 401 dance: learn REALM and NONCE, derive the long-term key.
                self.realm = msg.get::<Realm>().unwrap().unwrap().0.to_owned();
                self.nonce = msg.get::<Nonce>().unwrap().unwrap().0.to_owned();
                let key = LongTermKey::derive(
                    PasswordAlgorithmId::MD5,
                    &self.username,
                    &self.realm,
                    &self.password,
                )
                .unwrap();
                self.key = Some(key.integrity_key());
                continue;
            }
            return resp;
        }
        panic!("still challenged after authenticating");
    }

    pub fn receive(&self, want: impl Fn(&Message<&[u8]>) -> bool) -> Vec<u8> {
        self.try_receive(want, Duration::from_secs(3))
            .expect("no matching message from the server")
    }

    pub fn try_receive(
        &self,
        want: impl Fn(&Message<&[u8]>) -> bool,
        within: Duration,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            if let Ok(msg) = Message::new_checked(&buf[..n]) {
                if want(&msg) {
                    return Some(buf[..n].to_vec());
                }
            }
        }
        None
    }
}

impl Client {
    /// The same credentials on a new local socket: the client "moves" (RFC 8016).
    pub fn move_to_new_socket(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        self.socket = socket;
    }
}
