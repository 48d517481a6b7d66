//! Send and Data indications (RFC 8656 §10): a Send indication is relayed only with a
//! permission; a peer's datagram becomes a Data indication written in place in front of
//! the payload, a valid STUN message with XOR-PEER-ADDRESS and DATA.

mod common;

use common::*;
use turnpike_proto::server::PEER_HEADROOM;
use turnpike_stun::{AttrType, Class, Message, MessageType, Method};

#[test]
fn send_indication_needs_a_permission() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"early", &[]),
        Outcome::None
    );
    assert_eq!(sim.server.stats().dropped_no_permission, 1);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    match c.send_indication(&mut sim, peer_v4(), b"payload bytes", &[]) {
        Outcome::ToPeer {
            relay: r,
            peer,
            payload,
            range,
            dont_fragment,
        } => {
            assert_eq!((r, peer, dont_fragment), (relay, peer_v4(), false));
            assert_eq!(payload, b"payload bytes");
            // Header 20 + XOR-PEER-ADDRESS 12 + DATA header 4.
            assert_eq!(range.start, 36);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.server.stats().to_peer, 1);
}

#[test]
fn send_indication_without_allocation_is_dropped() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"x", &[]),
        Outcome::None
    );
    // Even with an allocation on another 5-tuple that has a permission.
    let (mut other, _) = allocated_alice(&mut sim, "203.0.113.10:40001");
    other.create_permission(&mut sim, &[peer_v4()]).success();
    assert_eq!(
        c.send_indication(&mut sim, peer_v4(), b"x", &[]),
        Outcome::None
    );
}

#[test]
fn send_indication_without_data_or_peer_is_dropped() {
    let mut sim = Sim::new();
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    let tid = c.next_tid();
    let ty = MessageType::new(Method::SEND, Class::Indication);
    let mut buf = vec![0u8; 128];
    let mut w = turnpike_stun::MessageWriter::new(&mut buf, ty, tid).unwrap();
    w.put(&turnpike_stun::attr::XorPeerAddress(peer_v4()))
        .unwrap();
    let n = w.finish();
    assert_eq!(c.send_raw(&mut sim, &buf[..n]), Outcome::None, "no DATA");

    let mut w = turnpike_stun::MessageWriter::new(&mut buf, ty, tid).unwrap();
    w.put_raw(AttrType::DATA, b"x").unwrap();
    let n = w.finish();
    assert_eq!(
        c.send_raw(&mut sim, &buf[..n]),
        Outcome::None,
        "no XOR-PEER-ADDRESS"
    );
    // An empty DATA is relayed as an empty datagram.
    let (_, _, payload, _) = c.send_indication(&mut sim, peer_v4(), b"", &[]).datagram();
    assert!(payload.is_empty());
}

#[test]
fn data_indication_is_built_in_place_for_ipv4_peers() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    for len in [0usize, 1, 2, 3, 4, 5, 100, 1200] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let got = sim
            .peer_send(relay, peer_v4(), &payload)
            .expect("permitted");
        assert_eq!(got.to, c.ft);
        // Header 20 + XOR-PEER-ADDRESS (4 + 8) + DATA header 4 in front of the payload.
        assert_eq!(got.range.start, got.payload.start - 36);
        assert_eq!(got.range.end, got.payload.start + len.next_multiple_of(4));
        let msg = Message::new_checked(&got.bytes[..]).expect("valid STUN");
        assert_eq!(
            msg.message_type(),
            MessageType::new(Method::DATA, Class::Indication)
        );
        let attrs: Vec<AttrType> = msg.attributes().map(|a| a.ty).collect();
        assert_eq!(attrs, vec![AttrType::XOR_PEER_ADDRESS, AttrType::DATA]);
        assert_eq!(got.data_indication(), (peer_v4(), payload));
        assert!(
            got.bytes[36 + len..].iter().all(|&b| b == 0),
            "zero padding"
        );
    }
}

#[test]
fn data_indication_for_ipv6_peers_uses_the_whole_headroom() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("[2001:db8:1::10]:40000");
    let resp = c.allocate(&mut sim, &[A::RequestedFamily(0x02)]).success();
    let relay = sim.host.relay_of(resp.relayed()[0]);
    c.create_permission(&mut sim, &[peer_v6()]).success();
    let got = sim
        .peer_send(relay, peer_v6(), b"v6 data")
        .expect("permitted");
    assert_eq!(got.range.start, got.payload.start - PEER_HEADROOM);
    assert_eq!(got.range.start, 0);
    assert_eq!(got.data_indication(), (peer_v6(), b"v6 data".to_vec()));
    // And a Send indication to the IPv6 peer.
    let (r, peer, payload, _) = c
        .send_indication(&mut sim, peer_v6(), b"out", &[])
        .datagram();
    assert_eq!(
        (r, peer, payload.as_slice()),
        (relay, peer_v6(), &b"out"[..])
    );
}

#[test]
fn data_indications_have_fresh_transaction_ids() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let got = sim.peer_send(relay, peer_v4(), b"x").unwrap();
        let msg = Message::new_checked(&got.bytes[..]).unwrap();
        assert!(seen.insert(msg.transaction_id()));
    }
}

#[test]
fn peer_data_on_an_unknown_relay_or_without_headroom_is_dropped() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.create_permission(&mut sim, &[peer_v4()]).success();
    assert_eq!(
        sim.peer_send(turnpike_proto::RelayId(9999), peer_v4(), b"x"),
        None
    );
    let now = sim.now();
    let mut buf = vec![0u8; 100];
    // Too little headroom.
    let a = sim
        .server
        .handle_peer(now, relay, peer_v4(), &mut buf, 10..20);
    assert_eq!(a, turnpike_proto::PeerAction::None);
    // Too little tailroom.
    let a = sim
        .server
        .handle_peer(now, relay, peer_v4(), &mut buf, 48..99);
    assert_eq!(a, turnpike_proto::PeerAction::None);
    // A range past the end of the buffer, and a reversed one.
    let a = sim
        .server
        .handle_peer(now, relay, peer_v4(), &mut buf, 48..usize::MAX);
    assert_eq!(a, turnpike_proto::PeerAction::None);
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 60..50;
    let a = sim
        .server
        .handle_peer(now, relay, peer_v4(), &mut buf, reversed);
    assert_eq!(a, turnpike_proto::PeerAction::None);
    // Exactly enough is fine.
    let a = sim
        .server
        .handle_peer(now, relay, peer_v4(), &mut buf, 48..97);
    assert!(matches!(a, turnpike_proto::PeerAction::ToClient { .. }));
}
