//! RFC 8016 mobility: an Allocate with an empty MOBILITY-TICKET gets a ticket; a Refresh
//! carrying it from a new 5-tuple, with the same credentials, moves the allocation there
//! and gets a new ticket; the old 5-tuple and the used ticket are dead afterwards.

mod common;

use common::*;
use turnpike_proto::mobility::TICKET_LEN;
use turnpike_stun::{IntegrityKind, Method};

fn mobile() -> Sim {
    Sim::with(|c| c.turn.mobility = true)
}

/// Alice allocates with mobility from `client`: the client, its relay and its ticket.
fn mobile_alice(sim: &mut Sim, client: &str) -> (TestClient, turnpike_proto::RelayId, Vec<u8>) {
    let mut c = TestClient::alice(client);
    let resp = c.allocate(sim, &[A::Ticket(Vec::new())]).success();
    let relay = sim.host.relay_of(resp.relayed()[0]);
    let ticket = resp.ticket().expect("a MOBILITY-TICKET");
    (c, relay, ticket)
}

/// The same user on a new 5-tuple (the client after its address changed).
fn moved(c: &TestClient, client: &str) -> TestClient {
    TestClient::new(udp(client), &c.username, &c.password)
}

#[test]
fn allocate_with_an_empty_ticket_gets_one() {
    let mut sim = mobile();
    let (c, _, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    assert_eq!(ticket.len(), TICKET_LEN);
    // Without the attribute: no ticket.
    let mut d = TestClient::alice("203.0.113.10:40001");
    assert_eq!(d.allocate(&mut sim, &[]).success().ticket(), None);
    // Two allocations never share a ticket.
    let (_, _, other) = mobile_alice(&mut sim, "203.0.113.10:40002");
    assert_ne!(ticket, other);
    let _ = c;
}

#[test]
fn mobility_off_is_405_for_allocate_and_refresh() {
    let mut sim = Sim::new();
    let mut c = TestClient::alice("203.0.113.10:40000");
    let resp = c.allocate(&mut sim, &[A::Ticket(Vec::new())]);
    resp.assert_error(405);
    assert_eq!(resp.verify(&c.key()), Some(IntegrityKind::Sha1));
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.ledger.total(), 0);
    c.allocate(&mut sim, &[]).success();
    c.refresh(&mut sim, Some(600), &[A::Ticket(vec![0; TICKET_LEN])])
        .assert_error(405);
}

#[test]
fn a_non_empty_ticket_in_allocate_is_400() {
    let mut sim = mobile();
    let mut c = TestClient::alice("203.0.113.10:40000");
    c.allocate(&mut sim, &[A::Ticket(vec![1, 2, 3])])
        .assert_error(400);
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn refresh_with_the_ticket_from_a_new_5_tuple_moves_the_allocation() {
    let mut sim = mobile();
    let (mut old, relay, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    old.create_permission(&mut sim, &[peer_v4()]).success();
    old.channel_bind(&mut sim, 0x4001, peer_v4_b()).success();

    let mut new = moved(&old, "198.18.0.7:50000");
    let resp = new
        .refresh(&mut sim, Some(600), &[A::Ticket(ticket.clone())])
        .success();
    assert_eq!(resp.lifetime(), Some(600));
    assert_eq!(resp.verify(&new.key()), Some(IntegrityKind::Sha1));
    let fresh = resp.ticket().expect("a new ticket");
    assert_eq!(fresh.len(), TICKET_LEN);
    assert_ne!(fresh, ticket, "the ticket changes on every use");
    assert_eq!(sim.server.allocation_count(), 1);
    assert_eq!(sim.host.ledger.total(), 1, "same quota slot");
    assert!(sim.host.released.is_empty(), "same relay");
    assert_eq!(sim.server.stats().mobility_moves, 1);

    // Peers' data now goes to the new 5-tuple, permissions and channels kept.
    let got = sim
        .peer_send(relay, peer_v4(), b"to the new address")
        .unwrap();
    assert_eq!(got.to, new.ft);
    assert_eq!(
        got.data_indication(),
        (peer_v4(), b"to the new address".to_vec())
    );
    let got = sim.peer_send(relay, peer_v4_b(), b"channel").unwrap();
    assert_eq!(got.to, new.ft);
    assert_eq!(got.channel_data(), (0x4001, b"channel".to_vec()));
    // And the new 5-tuple sends.
    let (r, p, data, _) = new
        .send_indication(&mut sim, peer_v4(), b"out", &[])
        .datagram();
    assert_eq!((r, p, data), (relay, peer_v4(), b"out".to_vec()));
    new.create_permission(&mut sim, &[sa("9.9.9.9:1")])
        .success();

    // The old 5-tuple names nothing any more.
    old.refresh(&mut sim, Some(600), &[]).assert_error(437);
    old.create_permission(&mut sim, &[peer_v4()])
        .assert_error(437);
    assert_eq!(
        old.send_indication(&mut sim, peer_v4(), b"x", &[]),
        Outcome::None
    );
    assert_eq!(old.channel_data(&mut sim, 0x4001, b"x"), Outcome::None);
}

#[test]
fn a_used_ticket_cannot_be_replayed() {
    let mut sim = mobile();
    let (old, _, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    let mut first = moved(&old, "198.18.0.7:50000");
    let fresh = first
        .refresh(&mut sim, Some(600), &[A::Ticket(ticket.clone())])
        .success()
        .ticket()
        .unwrap();
    // An attacker (with the credentials, even) replaying the captured ticket.
    let mut replay = moved(&old, "198.18.0.8:50001");
    replay
        .refresh(&mut sim, Some(600), &[A::Ticket(ticket)])
        .assert_error(400);
    // The allocation stayed where it was.
    first.refresh(&mut sim, Some(600), &[]).success();
    // The fresh ticket works, once.
    let mut second = moved(&old, "198.18.0.9:50002");
    second
        .refresh(&mut sim, Some(600), &[A::Ticket(fresh.clone())])
        .success();
    first.refresh(&mut sim, Some(600), &[]).assert_error(437);
    moved(&old, "198.18.0.10:50003")
        .refresh(&mut sim, Some(600), &[A::Ticket(fresh)])
        .assert_error(400);
}

#[test]
fn another_users_credentials_are_441_and_move_nothing() {
    let mut sim = mobile();
    let (mut alice, relay, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    alice.create_permission(&mut sim, &[peer_v4()]).success();
    let mut bob = TestClient::bob("198.18.0.7:50000");
    let resp = bob.refresh(&mut sim, Some(600), &[A::Ticket(ticket.clone())]);
    resp.assert_error(441);
    assert_eq!(resp.ticket(), None);
    assert_eq!(sim.peer_send(relay, peer_v4(), b"x").unwrap().to, alice.ft);
    // The ticket is still good for alice.
    moved(&alice, "198.18.0.8:50000")
        .refresh(&mut sim, Some(600), &[A::Ticket(ticket)])
        .success();
}

#[test]
fn forged_truncated_and_foreign_tickets_are_400() {
    let mut sim = mobile();
    let (old, _, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    let mut c = moved(&old, "198.18.0.7:50000");
    // A bit flipped in the nonce, the encrypted slot, the MAC.
    let flip = |at: usize| {
        let mut t = ticket.clone();
        t[at] ^= 1;
        t
    };
    for bad in [
        flip(3),
        flip(11),
        flip(20),
        ticket[..TICKET_LEN - 1].to_vec(),
        vec![0; TICKET_LEN],
        Vec::new(),
    ] {
        c.refresh(&mut sim, Some(600), &[A::Ticket(bad)])
            .assert_error(400);
    }
    // A ticket minted with another server key.
    let mut other = Sim::with_setup(|c, s| {
        c.turn.mobility = true;
        s.nonce_secret = vec![0x11; 32];
    });
    let (_, _, foreign) = mobile_alice(&mut other, "203.0.113.10:40000");
    c.refresh(&mut sim, Some(600), &[A::Ticket(foreign)])
        .assert_error(400);
    assert_eq!(sim.server.stats().mobility_moves, 0);
}

#[test]
fn the_ticket_of_a_deleted_allocation_is_400() {
    let mut sim = mobile();
    let (mut old, _, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    old.refresh(&mut sim, Some(0), &[]).success();
    // Another allocation reuses the slot: the old ticket still names nothing.
    mobile_alice(&mut sim, "203.0.113.10:40001");
    moved(&old, "198.18.0.7:50000")
        .refresh(&mut sim, Some(600), &[A::Ticket(ticket)])
        .assert_error(400);
    // Expired (not yet swept) too.
    let (old, _, ticket) = mobile_alice(&mut sim, "203.0.113.10:40002");
    sim.elapsed += std::time::Duration::from_secs(601);
    moved(&old, "198.18.0.8:50000")
        .refresh(&mut sim, Some(600), &[A::Ticket(ticket)])
        .assert_error(400);
}

#[test]
fn moving_onto_a_5_tuple_that_has_an_allocation_is_437() {
    let mut sim = mobile();
    let (old, relay, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    let (mut there, _) = allocated_alice(&mut sim, "198.18.0.7:50000");
    let mut c = moved(&old, "198.18.0.7:50000");
    c.nonce = there.nonce.clone();
    c.refresh(&mut sim, Some(600), &[A::Ticket(ticket)])
        .assert_error(437);
    assert_eq!(sim.server.allocation_count(), 2);
    there.refresh(&mut sim, Some(600), &[]).success();
    let _ = relay;
}

#[test]
fn refresh_with_the_ticket_from_the_same_5_tuple_just_rotates_it() {
    let mut sim = mobile();
    let (mut c, _, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    let fresh = c
        .refresh(&mut sim, Some(900), &[A::Ticket(ticket.clone())])
        .success()
        .ticket()
        .unwrap();
    assert_ne!(fresh, ticket);
    assert_eq!(sim.server.stats().mobility_moves, 0);
    c.refresh(&mut sim, Some(600), &[A::Ticket(ticket)])
        .assert_error(400);
    // A plain refresh carries no ticket.
    assert_eq!(c.refresh(&mut sim, Some(600), &[]).success().ticket(), None);
}

#[test]
fn lifetime_zero_with_the_ticket_deletes_from_the_new_5_tuple() {
    let mut sim = mobile();
    let (old, relay, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    let mut c = moved(&old, "198.18.0.7:50000");
    let resp = c.refresh(&mut sim, Some(0), &[A::Ticket(ticket)]).success();
    assert_eq!(resp.lifetime(), Some(0));
    assert_eq!(resp.ticket(), None, "nothing left to move");
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.released, vec![relay]);
    assert_eq!(sim.host.ledger.total(), 0);
}

#[test]
fn a_moved_allocation_still_expires_and_is_swept() {
    let mut sim = mobile();
    let (old, _, ticket) = mobile_alice(&mut sim, "203.0.113.10:40000");
    let mut c = moved(&old, "198.18.0.7:50000");
    c.refresh(&mut sim, Some(600), &[A::Ticket(ticket)])
        .success();
    sim.advance_secs(601);
    assert_eq!(sim.server.allocation_count(), 0);
    assert_eq!(sim.host.ledger.total(), 0);
    c.request(&mut sim, Method::REFRESH, &[]).assert_error(437);
}

/// Two cores of one runtime (shards 0 and 1, one nonce secret): a moved client's Refresh
/// that reaches the other core is handed back to the issuer, untouched, and the issuer
/// moves the allocation (RFC 8016 with every worker serving).
#[test]
fn a_ticket_of_another_shard_is_forwarded_to_it() {
    let mut issuer = Sim::with_setup(|c, s| {
        c.turn.mobility = true;
        s.shard = 0;
    });
    let mut other = Sim::with_setup(|c, s| {
        c.turn.mobility = true;
        s.shard = 1;
    });
    let (old, _, ticket) = mobile_alice(&mut issuer, "203.0.113.10:40000");
    let mut new = moved(&old, "198.18.0.7:50000");
    let (_, forwarded) = new.send(
        &mut other,
        Method::REFRESH,
        &[A::Lifetime(600), A::Ticket(ticket.clone())],
    );
    assert_eq!(forwarded, Outcome::Forward(0));
    assert_eq!(other.server.allocation_count(), 0);
    assert_eq!(
        other.server.stats(),
        Default::default(),
        "nothing happened there"
    );
    let resp = new
        .refresh(&mut issuer, Some(600), &[A::Ticket(ticket)])
        .success();
    assert!(resp.ticket().is_some());
    assert_eq!(issuer.server.stats().mobility_moves, 1);
    // From a 5-tuple that has an allocation on this core, another core's ticket is a 437
    // (it cannot take over), not a forward.
    let (_, _, elsewhere) = mobile_alice(&mut issuer, "203.0.113.12:40000");
    let (mut busy, _, _) = mobile_alice(&mut other, "203.0.113.13:40000");
    busy.refresh(&mut other, Some(600), &[A::Ticket(elsewhere)])
        .assert_error(437);
    // A ticket of this shard that names nothing is still a 400, not a forward.
    let (_, _, mine) = mobile_alice(&mut other, "203.0.113.11:40000");
    let mut forged = mine;
    forged[20] ^= 1;
    moved(&old, "198.18.0.8:50000")
        .refresh(&mut other, Some(600), &[A::Ticket(forged)])
        .assert_error(400);
}
