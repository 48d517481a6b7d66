//! Channels (RFC 8656 §11, §12): ChannelBind, ChannelData both ways (header written in
//! place, padded on streams), the rebinding rules, and the 5 minutes after expiry during
//! which a number and a peer stay reserved for each other.

mod common;

use common::*;
use turnpike_stun::Method;

#[test]
fn channel_bind_then_channel_data_both_ways_over_udp() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    let resp = c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    assert_eq!(resp.ty().method, Method::CHANNEL_BIND);

    // Client → peer: the payload is the ChannelData's data, in place.
    match c.channel_data(&mut sim, 0x4000, b"to the peer") {
        Outcome::ToPeer {
            relay: r,
            peer,
            payload,
            range,
            dont_fragment,
        } => {
            assert_eq!((r, peer), (relay, peer_v4()));
            assert_eq!(payload, b"to the peer");
            assert_eq!(range, 4..15);
            assert!(!dont_fragment);
        }
        other => panic!("{other:?}"),
    }

    // Peer → client: a 4-byte header written right in front of the payload.
    let got = sim.peer_send(relay, peer_v4(), b"odd!x").expect("bound");
    assert_eq!(got.to, c.ft);
    assert_eq!(got.range.start, got.payload.start - 4);
    assert_eq!(got.range.end, got.payload.end, "no padding over UDP");
    assert_eq!(&got.bytes[..4], &[0x40, 0x00, 0x00, 0x05]);
    assert_eq!(&got.bytes[4..], b"odd!x");
    assert_eq!(got.channel_data(), (0x4000, b"odd!x".to_vec()));

    // The binding installed the permission, so Send indications work too.
    let (_, peer, _, _) = c.send_indication(&mut sim, peer_v4(), b"x", &[]).datagram();
    assert_eq!(peer, peer_v4());
    // Another port of the same IP is allowed by the permission but has no channel:
    // it arrives as a Data indication.
    let other_port = sa("8.8.8.8:5001");
    let got = sim.peer_send(relay, other_port, b"x").expect("permitted");
    assert_eq!(got.data_indication(), (other_port, b"x".to_vec()));
}

#[test]
fn channel_data_over_streams_is_padded_to_four_bytes() {
    for ft in [tcp("203.0.113.10:40000"), tls("203.0.113.10:40001")] {
        let mut sim = Sim::new();
        let mut c = TestClient::new(ft, ALICE.0, ALICE.1);
        let (_, relay) = c.allocate_ok(&mut sim);
        c.channel_bind(&mut sim, 0x4ABC, peer_v4()).success();
        for (len, padded) in [(0usize, 4usize), (1, 8), (2, 8), (3, 8), (4, 8), (5, 12)] {
            let payload = vec![0xA5; len];
            let got = sim.peer_send(relay, peer_v4(), &payload).expect("bound");
            assert_eq!(got.bytes.len(), padded, "{len} bytes");
            assert_eq!(&got.bytes[..4], &[0x4A, 0xBC, 0, len as u8]);
            assert_eq!(&got.bytes[4..4 + len], &payload[..]);
            assert!(got.bytes[4 + len..].iter().all(|&b| b == 0), "zero padding");
            assert_eq!(got.channel_data(), (0x4ABC, payload));
        }
        // From a stream client, padded ChannelData is understood too.
        let (_, _, payload, _) = c.channel_data(&mut sim, 0x4ABC, b"abc").datagram();
        assert_eq!(payload, b"abc");
    }
}

#[test]
fn unbound_channel_data_is_dropped() {
    let mut sim = Sim::new();
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    assert_eq!(c.channel_data(&mut sim, 0x4001, b"x"), Outcome::None);
    assert_eq!(sim.server.stats().dropped_no_permission, 1);
    // Without an allocation at all.
    let other = TestClient::alice("203.0.113.10:40001");
    assert_eq!(other.channel_data(&mut sim, 0x4000, b"x"), Outcome::None);
    // Truncated ChannelData (length says more than there is).
    assert_eq!(
        c.send_raw(&mut sim, &[0x40, 0x00, 0x00, 0x09, 1, 2]),
        Outcome::None
    );
}

#[test]
fn channel_number_out_of_range_is_400() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    for n in [0x0000, 0x0001, 0x3FFF, 0x8000, 0xBFFF, 0xFFFF] {
        let resp = c.channel_bind(&mut sim, n, peer_v4());
        assert_eq!(resp.error_code(), Some(400), "channel {n:#06x}: {resp:?}");
    }
    // RFC 8656 §12 narrowed channels to 0x4000..=0x4FFF, but the codec deliberately
    // accepts RFC 5766's 0x4000..=0x7FFF (deployed clients such as coturn's
    // turnutils_uclient use it), so both ends of both ranges bind.
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    c.channel_bind(&mut sim, 0x4FFF, peer_v4_b()).success();
    c.channel_bind(&mut sim, 0x5000, sa("9.9.9.9:1")).success();
    c.channel_bind(&mut sim, 0x7FFF, sa("9.9.9.9:2")).success();
    let got = sim.peer_send(relay, sa("9.9.9.9:2"), b"hi").unwrap();
    assert_eq!(got.channel_data(), (0x7FFF, b"hi".to_vec()));
    let (_, peer, _, _) = c.channel_data(&mut sim, 0x7FFF, b"yo").datagram();
    assert_eq!(peer, sa("9.9.9.9:2"));
}

#[test]
fn missing_number_or_peer_is_400() {
    let mut sim = Sim::new();
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.request(&mut sim, Method::CHANNEL_BIND, &[A::Peer(peer_v4())])
        .assert_error(400);
    c.request(&mut sim, Method::CHANNEL_BIND, &[A::Channel(0x4000)])
        .assert_error(400);
}

#[test]
fn channel_bind_without_allocation_is_437() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    // Unsigned over UDP: silence (only a well-formed Allocate is challenged).
    let tid = c.next_tid();
    let unsigned = c.build_unsigned(
        Method::CHANNEL_BIND,
        tid,
        &[A::Channel(0x4000), A::Peer(peer_v4())],
    );
    assert_eq!(c.send_raw(&mut sim, &unsigned), Outcome::None);
    // Signed (with a nonce a challenge gave): 437.
    c.challenge(&mut sim, Method::ALLOCATE, &[UDP])
        .assert_error(401);
    c.channel_bind(&mut sim, 0x4000, peer_v4())
        .assert_error(437);
}

#[test]
fn rebinding_conflicts_are_400_and_refresh_is_fine() {
    let mut sim = Sim::new();
    let (mut c, relay) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    // Same number, another peer (even another port of the same IP). Each conflict says
    // which rule it broke: a client picking numbers at random can tell a collision.
    let number_in_use = Some("Channel number bound to another peer".to_owned());
    for other_peer in [peer_v4_b(), sa("8.8.8.8:5001")] {
        let resp = c.channel_bind(&mut sim, 0x4000, other_peer);
        resp.assert_error(400);
        assert_eq!(resp.error_reason(), number_in_use);
    }
    // Same peer, another number.
    let resp = c.channel_bind(&mut sim, 0x4001, peer_v4());
    resp.assert_error(400);
    assert_eq!(
        resp.error_reason(),
        Some("Peer bound to another channel number".to_owned())
    );
    // The same pair again refreshes.
    sim.advance_secs(500);
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    sim.advance_secs(500); // 1000 s from the first bind, 500 s from the refresh
    // The allocation needs refreshing to live that long; it was not: check the
    // refresh kept the channel until the allocation itself went at 600 s.
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.peer_send(relay, peer_v4(), b"x"), None);
}

#[test]
fn refreshed_binding_outlives_its_first_lifetime() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::Lifetime(3600)]).success();
    let relay = sim.host.relay_of(sa("192.0.2.1:49152"));
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    sim.advance_secs(500);
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    sim.advance_secs(250); // 750 s: past the first 600 s, and the permission the
    // refresh renewed (300 s) still holds
    let got = sim.peer_send(relay, peer_v4(), b"x").expect("still bound");
    assert_eq!(got.channel_data().0, 0x4000);
    let (_, peer, _, _) = c.channel_data(&mut sim, 0x4000, b"y").datagram();
    assert_eq!(peer, peer_v4());
}

#[test]
fn expired_binding_blocks_number_and_peer_for_five_more_minutes() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::Lifetime(3600)]).success();
    let relay = sim.host.relay_of(sa("192.0.2.1:49152"));
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();

    sim.advance_secs(601);
    // The binding is inactive: ChannelData is dropped, peer data is a Data indication
    // (given a permission).
    assert_eq!(c.channel_data(&mut sim, 0x4000, b"x"), Outcome::None);
    c.create_permission(&mut sim, &[peer_v4()]).success();
    let got = sim.peer_send(relay, peer_v4(), b"x").expect("permitted");
    assert_eq!(got.data_indication().0, peer_v4());

    // Different bindings of the number or of the peer stay refused.
    c.channel_bind(&mut sim, 0x4000, peer_v4_b())
        .assert_error(400);
    c.channel_bind(&mut sim, 0x4002, peer_v4())
        .assert_error(400);
    sim.advance_secs(297); // 898 s
    c.channel_bind(&mut sim, 0x4000, peer_v4_b())
        .assert_error(400);
    c.channel_bind(&mut sim, 0x4002, peer_v4())
        .assert_error(400);

    sim.advance_secs(3); // 901 s: 5 minutes after expiry
    c.channel_bind(&mut sim, 0x4000, peer_v4_b()).success();
    c.channel_bind(&mut sim, 0x4002, peer_v4()).success();
    let got = sim.peer_send(relay, peer_v4(), b"z").unwrap();
    assert_eq!(got.channel_data().0, 0x4002);
    let got = sim.peer_send(relay, peer_v4_b(), b"z").unwrap();
    assert_eq!(got.channel_data().0, 0x4000);
}

#[test]
fn the_same_pair_can_be_rebound_after_expiry() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::Lifetime(3600)]).success();
    let relay = sim.host.relay_of(sa("192.0.2.1:49152"));
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    sim.advance_secs(700);
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    let got = sim.peer_send(relay, peer_v4(), b"back").unwrap();
    assert_eq!(got.channel_data().0, 0x4000);
}

#[test]
fn channel_quota_is_508() {
    let mut sim = Sim::with(|c| c.quotas.channels_per_allocation = 2);
    let (mut c, _) = allocated_alice(&mut sim, "203.0.113.10:40000");
    c.channel_bind(&mut sim, 0x4000, peer_v4()).success();
    c.channel_bind(&mut sim, 0x4001, peer_v4_b()).success();
    c.channel_bind(&mut sim, 0x4002, sa("9.9.9.9:1"))
        .assert_error(508);
    // Refreshing an existing binding is not a new one.
    c.channel_bind(&mut sim, 0x4001, peer_v4_b()).success();
}

#[test]
fn strict_channel_numbers_refuses_the_rfc5766_range() {
    let mut sim = Sim::with(|c| c.turn.strict_channel_numbers = true);
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[]).success();
    c.channel_bind(&mut sim, 0x5000, peer_v4())
        .assert_error(400);
    c.channel_bind(&mut sim, 0x4FFF, peer_v4()).success();
}
