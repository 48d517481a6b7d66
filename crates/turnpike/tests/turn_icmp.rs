//! RFC 8656 §11.5: an ICMP error caused by a relayed datagram reaches the client as a Data
//! indication carrying XOR-PEER-ADDRESS and ICMP. Driven against the real binary with a
//! small TURN client written on our codec: Allocate (with the 401 round trip),
//! CreatePermission, then a Send indication to a closed port on loopback, whose
//! "port unreachable" must come back.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::ServerProcess;
use common::turn_client::Client;
use turnpike_stun::attr::{
    Data, Icmp, RequestedTransport, TransportProtocol, XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::{Class, Message, MessageType, MessageWriter, Method};

const SECRET: &str = "icmp-secret";

fn config(relay_ports: (u16, u16)) -> String {
    format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"icmp.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"{}-{}\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n",
        relay_ports.0, relay_ports.1
    )
}

#[test]
fn port_unreachable_from_a_peer_reaches_the_client_as_an_icmp_data_indication() {
    let server = ServerProcess::start("icmp", &config((25900, 25949)));
    let mut client = Client::new(server.udp[0], SECRET, "icmp");

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
