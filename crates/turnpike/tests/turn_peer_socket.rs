//! The relay's connected peer socket (a second socket on the relayed address, connected
//! to the peer the allocation sends to) must not change what the relay does: every
//! permitted peer address, other ports of the same IP included (RFC 8656 §9), still
//! reaches the client and is reached from the relayed address, before and after the
//! connected socket moves to another peer; and nobody else can bind the relayed port.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::ServerProcess;
use common::turn_client::Client;
use turnpike_stun::attr::{
    Data, RequestedTransport, TransportProtocol, XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::{Class, Message, MessageType, MessageWriter, Method};

const SECRET: &str = "peer-socket-secret";

fn config() -> String {
    format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"peer.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"26100-26149\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n"
    )
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// A Send indication of `data` to `to`.
fn send(client: &mut Client, to: SocketAddr, data: &[u8]) {
    let tid = client.tid();
    let mut buf = [0u8; 256];
    let ty = MessageType::new(Method::SEND, Class::Indication);
    let mut w = MessageWriter::new(&mut buf, ty, tid).unwrap();
    w.put(&XorPeerAddress(to)).unwrap();
    w.put(&Data(data)).unwrap();
    let n = w.finish();
    client.socket.send_to(&buf[..n], client.server).unwrap();
}

/// Asserts that `peer` receives `data` from the relayed address.
fn arrives_at(peer: &UdpSocket, relayed: SocketAddr, data: &[u8]) {
    let mut buf = [0u8; 256];
    let (n, from) = peer.recv_from(&mut buf).expect("datagram at the peer");
    assert_eq!((&buf[..n], from), (data, relayed));
}

/// Asserts that a datagram `data` from `peer` reaches the client as a Data indication
/// naming `peer`.
fn reaches_client(client: &Client, peer: &UdpSocket, relayed: SocketAddr, data: &[u8]) {
    peer.send_to(data, relayed).unwrap();
    let from = peer.local_addr().unwrap();
    let ind = client.receive(|m| {
        m.message_type() == MessageType::new(Method::DATA, Class::Indication)
            && m.get::<Data>().ok().flatten().map(|d| d.0) == Some(data)
    });
    let msg = Message::new_checked(&ind[..]).unwrap();
    assert_eq!(msg.get::<XorPeerAddress>().unwrap().unwrap().0, from);
}

/// CreatePermission for `peer`'s IP, which must succeed.
fn permit(client: &mut Client, peer: SocketAddr) {
    let resp = client.request(Method::CREATE_PERMISSION, |w| w.put(&XorPeerAddress(peer)));
    let class = Message::new_checked(&resp[..])
        .unwrap()
        .message_type()
        .class;
    assert_eq!(class, Class::Success, "CreatePermission for {peer}");
}

#[test]
fn every_peer_port_is_relayed_both_ways_while_the_connected_socket_moves() {
    let server = ServerProcess::start("peer-socket", &config());
    let mut client = Client::new(server.udp[0], SECRET, "peer");
    let resp = client.request(Method::ALLOCATE, |w| {
        w.put(&RequestedTransport(TransportProtocol::UDP))
    });
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(msg.message_type().class, Class::Success, "Allocate");
    let relayed = msg.get::<XorRelayedAddress>().unwrap().unwrap().0;

    // Two peers on one IP: one permission covers both ports.
    let (a, b) = (peer(), peer());
    permit(&mut client, a.local_addr().unwrap());

    // The first datagram to a peer makes the connected socket (to `a`).
    send(&mut client, a.local_addr().unwrap(), b"to a");
    arrives_at(&a, relayed, b"to a");
    reaches_client(&client, &a, relayed, b"from a");
    // `b` (same IP, another port) goes through the unconnected relay socket.
    send(&mut client, b.local_addr().unwrap(), b"to b");
    arrives_at(&b, relayed, b"to b");
    reaches_client(&client, &b, relayed, b"from b");

    // Nobody can bind the relayed port beside us.
    assert!(UdpSocket::bind(relayed).is_err());
    let intruder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    intruder.set_reuse_port(true).unwrap();
    assert!(intruder.bind(&relayed.into()).is_err());

    // Enough datagrams in a row to `b` move the connected socket to `b`.
    for i in 0..300u32 {
        send(&mut client, b.local_addr().unwrap(), &i.to_be_bytes());
        arrives_at(&b, relayed, &i.to_be_bytes());
    }
    reaches_client(&client, &b, relayed, b"from b again");
    reaches_client(&client, &a, relayed, b"from a again");
    send(&mut client, a.local_addr().unwrap(), b"to a again");
    arrives_at(&a, relayed, b"to a again");
    send(&mut client, b.local_addr().unwrap(), b"to b again");
    arrives_at(&b, relayed, b"to b again");

    // A third peer on another loopback IP, after a permission for it.
    let c = UdpSocket::bind("127.0.0.2:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    permit(&mut client, c.local_addr().unwrap());
    send(&mut client, c.local_addr().unwrap(), b"to c");
    arrives_at(&c, relayed, b"to c");
    reaches_client(&client, &c, relayed, b"from c");
    assert!(server.stop().success());
}
