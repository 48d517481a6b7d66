//! RFC 8656 §11.5: an ICMP error caused by a relayed datagram reaches the client as a Data
//! indication carrying XOR-PEER-ADDRESS and ICMP. Driven against the real binary with a
//! small TURN client written on our codec: Allocate (with the 401 round trip),
//! CreatePermission, then a Send indication to a closed port on loopback, whose
//! "port unreachable" must come back.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::ServerProcess;
use turnpike_proto::auth::rest::mint;
use turnpike_stun::attr::{
    Data, ErrorCodeAttr, Icmp, Nonce, Realm, RequestedTransport, TransportProtocol, Username,
    XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::{
    Class, IntegrityKey, LongTermKey, Message, MessageType, MessageWriter, Method, TransactionId,
};

const SECRET: &str = "icmp-secret";

fn config(relay_ports: (u16, u16)) -> String {
    format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"icmp.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"{}-{}\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n",
        relay_ports.0, relay_ports.1
    )
}

struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    key: Option<IntegrityKey>,
    realm: String,
    nonce: String,
    next_tid: u8,
}

impl Client {
    fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let expiry = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let (username, _) = mint(SECRET.as_bytes(), "icmp", expiry);
        Self {
            socket,
            server,
            username,
            key: None,
            realm: String::new(),
            nonce: String::new(),
            next_tid: 0,
        }
    }

    fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        TransactionId([self.next_tid; 12])
    }

    /// Sends a signed request built by `body` and returns the response bytes.
    fn request(
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
                let password =
                    turnpike_proto::auth::rest::rest_password(SECRET.as_bytes(), &self.username);
                let key = LongTermKey::derive(
                    turnpike_stun::attr::PasswordAlgorithmId::MD5,
                    &self.username,
                    &self.realm,
                    &password,
                )
                .unwrap();
                self.key = Some(key.integrity_key());
                continue;
            }
            return resp;
        }
        panic!("still challenged after authenticating");
    }

    fn receive(&self, want: impl Fn(&Message<&[u8]>) -> bool) -> Vec<u8> {
        self.try_receive(want, Duration::from_secs(3))
            .expect("no matching message from the server")
    }

    fn try_receive(
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

#[test]
fn port_unreachable_from_a_peer_reaches_the_client_as_an_icmp_data_indication() {
    let server = ServerProcess::start("icmp", &config((25900, 25949)));
    let mut client = Client::new(server.udp[0]);

    let resp = client.request(Method::ALLOCATE, |w| {
        w.put(&RequestedTransport(TransportProtocol::UDP))
    });
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(msg.message_type().class, Class::Success, "Allocate");
    let relayed = msg.get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert!((25900..=25949).contains(&relayed.port()));

    // A loopback port nobody listens on.
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let resp = client.request(Method::CREATE_PERMISSION, |w| {
        w.put(&XorPeerAddress(closed))
    });
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(msg.message_type().class, Class::Success, "CreatePermission");

    // Send a datagram there: the kernel answers the relay with ICMP port unreachable.
    // The kernel rate-limits ICMP host-wide, and other tests on this machine produce it
    // too, so one datagram may go unanswered: try a few times.
    let data_ind = MessageType::new(Method::DATA, Class::Indication);
    let mut ind = None;
    for _ in 0..5 {
        let tid = client.tid();
        let mut buf = [0u8; 256];
        let ty = MessageType::new(Method::SEND, Class::Indication);
        let mut w = MessageWriter::new(&mut buf, ty, tid).unwrap();
        w.put(&XorPeerAddress(closed)).unwrap();
        w.put(&Data(b"hello, is anyone there?")).unwrap();
        let n = w.finish();
        client.socket.send_to(&buf[..n], client.server).unwrap();
        if let Some(m) =
            client.try_receive(|m| m.message_type() == data_ind, Duration::from_secs(1))
        {
            ind = Some(m);
            break;
        }
    }
    let ind = ind.expect("a Data indication with ICMP within 5 tries");
    let msg = Message::new_checked(&ind[..]).unwrap();
    let icmp = msg.get::<Icmp>().unwrap().expect("ICMP attribute");
    assert_eq!(
        (icmp.icmp_type, icmp.code),
        (3, 3),
        "ICMPv4 port unreachable"
    );
    assert_eq!(msg.get::<XorPeerAddress>().unwrap().unwrap().0, closed);
    assert!(msg.get::<Data>().unwrap().is_none(), "no DATA with ICMP");
    assert!(server.stop().success());
}
