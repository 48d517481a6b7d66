//! RFC 8016 mobility against the real binary: a client asks for a MOBILITY-TICKET on
//! Allocate, "moves" to a new local address, and a Refresh carrying the ticket from there
//! takes the allocation along; data then reaches the client at its new address, and the
//! old ticket cannot be used again.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::ServerProcess;
use common::turn_client::Client;
use turnpike_stun::attr::{
    ChannelNumber, ErrorCodeAttr, Lifetime, MobilityTicket, RequestedTransport, TransportProtocol,
    XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::{ChannelData, Class, Message, Method};

const SECRET: &str = "mobility-secret";

fn success(resp: &[u8], what: &str) -> Vec<u8> {
    let msg = Message::new_checked(resp).unwrap();
    let code = msg.get::<ErrorCodeAttr>().unwrap().map(|e| e.code.code());
    assert_eq!(
        msg.message_type().class,
        Class::Success,
        "{what}: error {code:?}"
    );
    resp.to_vec()
}

#[test]
fn refresh_with_the_ticket_moves_the_allocation_to_the_new_address() {
    // Four workers: the kernel hashes each new client address to any of them, so the
    // moves below reach a worker other than the allocation's (and are handed to it).
    let config = format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"mobility.test\"\n\
         secrets = [\"{SECRET}\"]\nmobility = true\n[relay]\nips = [\"127.0.0.1\"]\n\
         ports = \"26900-26949\"\n[peers]\ndangerous_allow_loopback_peers = true\n\
         [runtime]\nworkers = 4\n"
    );
    let server = ServerProcess::start("mobility", &config);
    let mut client = Client::new(server.udp[0], SECRET, "roamer");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let peer_addr = peer.local_addr().unwrap();

    let resp = success(
        &client.request(Method::ALLOCATE, |w| {
            w.put(&RequestedTransport(TransportProtocol::UDP))?;
            w.put(&MobilityTicket(&[]))
        }),
        "Allocate",
    );
    let msg = Message::new_checked(&resp[..]).unwrap();
    let relayed = msg.get::<XorRelayedAddress>().unwrap().unwrap().0;
    let ticket = msg
        .get::<MobilityTicket>()
        .unwrap()
        .expect("a MOBILITY-TICKET in the Allocate success")
        .0
        .to_vec();
    assert!(!ticket.is_empty());
    let channel = ChannelNumber::new(0x4001).unwrap();
    success(
        &client.request(Method::CHANNEL_BIND, |w| {
            w.put(&channel)?;
            w.put(&XorPeerAddress(peer_addr))
        }),
        "ChannelBind",
    );

    // Move, eight times: same credentials, new local address; the Refresh carries the
    // ticket. With four workers the new addresses land on other workers than the
    // allocation's (the chance that all eight hash to its worker is 4^-8).
    let mut ticket = ticket;
    let mut old_socket = client.socket.try_clone().unwrap();
    let mut first_ticket = None;
    for round in 0..8 {
        old_socket = client.socket.try_clone().unwrap();
        client.move_to_new_socket();
        let resp = success(
            &client.request(Method::REFRESH, |w| {
                w.put(&Lifetime(600))?;
                w.put(&MobilityTicket(&ticket))
            }),
            "Refresh with the ticket from the new address",
        );
        let msg = Message::new_checked(&resp[..]).unwrap();
        let new_ticket = msg
            .get::<MobilityTicket>()
            .unwrap()
            .expect("a fresh ticket")
            .0
            .to_vec();
        assert_ne!(new_ticket, ticket, "tickets are single-use");
        first_ticket.get_or_insert_with(|| ticket.clone());
        ticket = new_ticket;

        // The peer's data now reaches the client at its new address, on the same channel.
        peer.send_to(format!("after move {round}").as_bytes(), relayed)
            .unwrap();
        let mut buf = [0u8; 256];
        let (n, _) = client
            .socket
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("move {round}: no data at the new address: {e}"));
        let frame = ChannelData::new_checked(&buf[..n]).unwrap();
        assert_eq!(frame.channel(), channel);
        assert_eq!(frame.data(), format!("after move {round}").as_bytes());
        // And the client's data reaches the peer from the new address.
        let mut data = [0u8; 4 + 8];
        turnpike_stun::write_channel_data_header(&mut data, channel, 8).unwrap();
        data[4..].copy_from_slice(format!("from {round:>3}").as_bytes());
        client.socket.send_to(&data, server.udp[0]).unwrap();
        let (n, from) = peer
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("move {round}: no data from the new address: {e}"));
        assert_eq!(from, relayed);
        assert_eq!(&buf[..n], format!("from {round:>3}").as_bytes());
    }
    let ticket = first_ticket.unwrap();
    let mut buf = [0u8; 256];

    // The old address has lost the allocation, and the old ticket is spent.
    old_socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        old_socket.recv_from(&mut buf).is_err(),
        "nothing for the old address"
    );
    client.move_to_new_socket();
    let resp = client.request(Method::REFRESH, |w| {
        w.put(&Lifetime(600))?;
        w.put(&MobilityTicket(&ticket))
    });
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(
        msg.message_type().class,
        Class::Error,
        "a replayed ticket is refused"
    );
}
