//! An authenticated-request flood from 5-tuples without an allocation (valid credentials,
//! a genuine nonce per port, a Refresh answered 437) cannot grow the answers kept for
//! retransmissions past `MAX_STRANGER_ANSWERS`; they are dropped 40 s later; and an
//! unauthenticated flood keeps nothing at all.

mod common;

use std::net::SocketAddr;

use common::*;
use turnpike_proto::auth::nonce::NonceKey;
use turnpike_proto::table::MAX_STRANGER_ANSWERS;
use turnpike_stun::Method;
use turnpike_stun::nonce_cookie::SecurityFeatures;

#[test]
fn kept_answers_for_strangers_are_bounded() {
    let mut sim = Sim::new();
    // Static users exist in the test configuration: both features are advertised.
    // The configuration has a REST secret: nonces are keyed by it (a fleet's key).
    let key = NonceKey::new(
        &turnpike_proto::auth::nonce::fleet_nonce_secret(SECRET),
        SecurityFeatures::PASSWORD_ALGORITHMS.union(SecurityFeatures::USERNAME_ANONYMITY),
    );
    let n = MAX_STRANGER_ANSWERS + 4_000;
    for i in 0..n {
        let host = i >> 12;
        let client = SocketAddr::from((
            [198, 18, (host >> 8) as u8, host as u8],
            10_000 + (i & 0xFFF) as u16,
        ));
        let mut c = TestClient::new(udp(&client.to_string()), ALICE.0, ALICE.1);
        c.realm = Some(REALM.into());
        c.nonce = Some(key.issue(client, sim.unix_now(), 600));
        c.signed_once(&mut sim, Method::REFRESH, &[A::Lifetime(600)])
            .assert_error(437);
    }
    let kept = sim.server.gauges(sim.now()).stranger_answers;
    assert_eq!(kept, MAX_STRANGER_ANSWERS as u64, "{n} strangers, bounded");
    sim.advance_secs(41);
    assert_eq!(sim.server.gauges(sim.now()).stranger_answers, 0);
    assert_eq!(sim.server.allocation_count(), 0);
}
