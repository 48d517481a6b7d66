//! A worker's receive batch, driven by hand: datagrams queued on a listener socket before
//! the worker reads are handled as one `recvmmsg` batch, deterministically.

use std::net::UdpSocket as StdUdpSocket;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use turnpike_proto::auth::rest::{mint, rest_password};
use turnpike_proto::{CoreSetup, TimeBase, TurnConfig};
use turnpike_stun::attr::{
    ErrorCodeAttr, Lifetime, Nonce, PasswordAlgorithmId, Realm, RequestedTransport,
    TransportProtocol, Username, XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::{
    ChannelNumber, Class, IntegrityKey, LongTermKey, Message, MessageType, MessageWriter, Method,
    TransactionId, write_channel_data_header,
};

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use turnpike_proto::TurnServer;
use turnpike_proto::quota::QuotaLedger;

use super::udp::ClientBatch;
use super::{Shared, WorkerSetup, start};
use crate::relay::{ParkedRelays, PeerSocketBudget, PortsInUse, RelayConfig};
use crate::tcp::TcpLimits;

const SECRET: &[u8] = b"batch-secret";

/// A worker with one listener on 127.0.0.1, relays on 127.0.0.1 and no connected peer
/// sockets (every send names its peer on the relay socket itself).
pub(crate) fn worker() -> (Rc<Shared>, SocketAddr, RawFd) {
    let time_base = TimeBase {
        instant: Instant::now(),
        unix_secs: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    };
    let mut config = TurnConfig::default();
    config.turn.realm = "batch".into();
    config.turn.secrets = vec![String::from_utf8(SECRET.to_vec()).unwrap()];
    config.peers.dangerous_allow_loopback = true;
    let listener = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let local = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    let (to_self, incoming) = mpsc::unbounded_channel();
    let setup = WorkerSetup {
        index: 0,
        core: TurnServer::new(Arc::new(config), CoreSetup::new([7u8; 32], time_base)).unwrap(),
        listeners: vec![listener],
        relay: Arc::new(RelayConfig {
            ips: vec!["127.0.0.1".parse().unwrap()],
            min_port: 41000,
            max_port: 41999,
            external: Vec::new(),
        }),
        ledger: Arc::new(Mutex::new(QuotaLedger::default())),
        ports: Arc::new(PortsInUse::default()),
        peer_sockets: Arc::new(PeerSocketBudget::new(0)),
        parked: Arc::new(ParkedRelays::default()),
        incoming,
        workers: vec![to_self],
        tls: None,
        stream_limits: TcpLimits::default(),
        kernel: None,
    };
    let (shared, _, _, _) = start(setup).unwrap();
    (shared, local, fd)
}

/// A TURN client on a plain socket that signs with a REST credential.
struct Client {
    socket: StdUdpSocket,
    username: String,
    key: Option<(IntegrityKey, String, String)>,
    next: u8,
}

impl Client {
    fn new() -> Self {
        let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let (username, _) = mint(SECRET, "batch", expiry);
        Self {
            socket,
            username,
            key: None,
            next: 0,
        }
    }

    /// Writes a request (signed once the client knows realm and nonce).
    fn request(
        &mut self,
        method: Method,
        body: impl Fn(&mut MessageWriter<'_>) -> Result<(), turnpike_stun::EncodeError>,
    ) -> Vec<u8> {
        self.next += 1;
        let mut buf = [0u8; 512];
        let ty = MessageType::new(method, Class::Request);
        let mut w = MessageWriter::new(&mut buf, ty, TransactionId([self.next; 12])).unwrap();
        body(&mut w).unwrap();
        if let Some((key, realm, nonce)) = &self.key {
            w.put(&Username(&self.username)).unwrap();
            w.put(&Realm(realm)).unwrap();
            w.put(&Nonce(nonce)).unwrap();
            w.put_integrity(key).unwrap();
        }
        let n = w.finish();
        buf[..n].to_vec()
    }

    fn send(&self, datagram: &[u8], to: SocketAddr) {
        self.socket.send_to(datagram, to).unwrap();
    }

    /// The next STUN message the client receives.
    fn answer(&self) -> Vec<u8> {
        let mut buf = [0u8; 1500];
        let (n, _) = self.socket.recv_from(&mut buf).expect("an answer");
        buf[..n].to_vec()
    }

    /// Learns realm and nonce from a 401.
    fn learn(&mut self, challenge: &[u8]) {
        let msg = Message::new_checked(challenge).unwrap();
        let code = msg.get::<ErrorCodeAttr>().unwrap().unwrap().code.code();
        assert_eq!(code, 401);
        let realm = msg.get::<Realm>().unwrap().unwrap().0.to_owned();
        let nonce = msg.get::<Nonce>().unwrap().unwrap().0.to_owned();
        let password = rest_password(SECRET, &self.username);
        let key = LongTermKey::derive(PasswordAlgorithmId::MD5, &self.username, &realm, &password)
            .unwrap();
        self.key = Some((key.integrity_key(), realm, nonce));
    }
}

fn allocate(w: &mut MessageWriter<'_>) -> Result<(), turnpike_stun::EncodeError> {
    w.put(&RequestedTransport(TransportProtocol::UDP))
}

fn relayed(answer: &[u8]) -> SocketAddr {
    let msg = Message::new_checked(answer).unwrap();
    assert_eq!(msg.message_type().class, Class::Success, "{msg:?}");
    msg.get::<XorRelayedAddress>().unwrap().unwrap().0
}

/// Reads what is queued on the listener as one batch and handles it; returns its size.
fn pump(shared: &Shared, batch: &mut ClientBatch, local: SocketAddr, fd: RawFd) -> usize {
    let n = batch.rx.recv(fd).unwrap();
    batch.handle(shared, local, fd, n);
    n
}

/// ChannelData, then a Refresh with lifetime 0, then a new Allocate, all in one receive
/// batch: the ChannelData's payload, queued before the Refresh closed its relay socket,
/// must not leave from the relay socket the Allocate made (which the kernel gives the
/// closed socket's descriptor number) — that would send it from another allocation's
/// relayed address, past that allocation's permissions.
#[tokio::test(flavor = "current_thread")]
async fn a_released_relay_socket_outlives_the_batch_that_released_it() {
    let (shared, local, fd) = worker();
    let mut batch = ClientBatch::new();
    let mut client = Client::new();
    let peer = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let peer_addr = peer.local_addr().unwrap();

    let m = client.request(Method::ALLOCATE, allocate);
    client.send(&m, local);
    pump(&shared, &mut batch, local, fd);
    client.learn(&client.answer());
    let m = client.request(Method::ALLOCATE, allocate);
    client.send(&m, local);
    pump(&shared, &mut batch, local, fd);
    let first = relayed(&client.answer());

    let channel = ChannelNumber::new(0x4000).unwrap();
    let bind = client.request(Method::CHANNEL_BIND, |w| {
        w.put(&channel)?;
        w.put(&XorPeerAddress(peer_addr))
    });
    client.send(&bind, local);
    pump(&shared, &mut batch, local, fd);
    let msg = client.answer();
    assert_eq!(
        Message::new_checked(&msg[..]).unwrap().message_type().class,
        Class::Success
    );

    // One batch: data for the peer, delete the allocation, make a new one.
    let mut data = [0u8; 4 + 8];
    write_channel_data_header(&mut data, channel, 8).unwrap();
    data[4..].copy_from_slice(b"payload!");
    client.send(&data, local);
    let m = client.request(Method::REFRESH, |w| w.put(&Lifetime(0)));
    client.send(&m, local);
    let m = client.request(Method::ALLOCATE, allocate);
    client.send(&m, local);
    assert_eq!(
        pump(&shared, &mut batch, local, fd),
        3,
        "one batch of three"
    );
    let refresh = client.answer();
    assert_eq!(
        Message::new_checked(&refresh[..])
            .unwrap()
            .message_type()
            .class,
        Class::Success
    );
    let second = relayed(&client.answer());
    assert_ne!(first, second);

    let mut buf = [0u8; 64];
    let mut seen = 0;
    while let Ok((n, from)) = peer.recv_from(&mut buf) {
        assert_eq!(&buf[..n], b"payload!");
        assert_ne!(
            from, second,
            "the payload left from the new allocation's relayed address"
        );
        assert_eq!(from, first);
        seen += 1;
    }
    assert_eq!(seen, 1, "the payload went out once, from its own relay");
}
