//! The engine against a scripted TURN server on loopback: 401, 438, 437 and a dropped
//! request.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use turnpike_stun::attr::{
    ErrorCodeAttr, Lifetime, Nonce, PasswordAlgorithmId, Realm, Username, XorRelayedAddress,
};
use turnpike_stun::{Class, ErrorCode, LongTermKey, Message, MessageType, MessageWriter, Method};

use super::{Engine, EngineConfig, Poller, Program};
use crate::client::Credentials;

/// A scripted TURN server: 401 first, one 438, drops the first signed Allocate
/// after the 438 (the client must retransmit), 437 for an Allocate on a 5-tuple that
/// already allocated once (as coturn does right after a delete), success otherwise.
fn fake_server(socket: UdpSocket, requests: usize) {
    let key = |user: &str| {
        LongTermKey::derive(PasswordAlgorithmId::MD5, user, "r", "p")
            .unwrap()
            .integrity_key()
    };
    let mut allocated: HashMap<SocketAddr, u32> = HashMap::new();
    let mut stale_sent = false;
    let mut dropped = false;
    let mut buf = [0u8; 1500];
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..requests {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            return;
        };
        let msg = Message::new_checked(&buf[..n]).unwrap();
        let method = msg.message_type().method;
        let tid = msg.transaction_id();
        let mut out = [0u8; 512];
        let error = |out: &mut [u8], code: u16, nonce: &str| {
            let ty = MessageType::new(method, Class::Error);
            let mut w = MessageWriter::new(out, ty, tid).unwrap();
            w.put(&ErrorCodeAttr::new(ErrorCode::new(code).unwrap()))
                .unwrap();
            w.put(&Realm("r")).unwrap();
            w.put(&Nonce(nonce)).unwrap();
            w.finish()
        };
        let len = if !msg.has_integrity() {
            error(&mut out, 401, if stale_sent { "n2" } else { "n1" })
        } else if !stale_sent {
            stale_sent = true;
            error(&mut out, 438, "n2")
        } else if method == Method::ALLOCATE && !dropped {
            dropped = true;
            continue;
        } else if method == Method::ALLOCATE && allocated.get(&from) == Some(&1) {
            allocated.insert(from, 2);
            error(&mut out, 437, "n2")
        } else {
            assert_eq!(msg.get::<Nonce>().unwrap().unwrap().0, "n2");
            let user = msg.get::<Username>().unwrap().unwrap().0;
            let k = key(user);
            msg.verify_integrity(&k).unwrap();
            let ty = MessageType::new(method, Class::Success);
            let mut w = MessageWriter::new(&mut out, ty, tid).unwrap();
            if method == Method::ALLOCATE {
                allocated.insert(from, 1);
                w.put(&XorRelayedAddress("127.0.0.1:50000".parse().unwrap()))
                    .unwrap();
                w.put(&Lifetime(600)).unwrap();
            }
            w.put_integrity(&k).unwrap();
            w.finish()
        };
        socket.send_to(&out[..len], from).unwrap();
    }
}

#[test]
fn answers_401_438_437_and_retransmits() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    // Cycle 1: Allocate (401), signed (438), signed again (dropped, then answered),
    // Refresh 0. Cycle 2 on the same socket: Allocate (401), signed (437), fresh
    // socket: Allocate (401), signed, Refresh 0.
    let fake = std::thread::spawn(move || fake_server(server, 10));
    let cfg = EngineConfig {
        server: addr,
        credentials: Credentials::Static {
            user: "u".into(),
            password: "p".into(),
        },
        concurrency: 1,
        poller: Poller::Epoll,
        rto: Duration::from_millis(50),
        transmissions: 3,
        peer: None,
        lifetime: None,
        local_ip: None,
    };
    let mut e = Engine::new(cfg, 1, 0).unwrap();
    let mut done = Vec::new();
    for _ in 0..2 {
        e.start(0, Program::Cycle);
        let deadline = Instant::now() + Duration::from_secs(5);
        while e.busy() > 0 && Instant::now() < deadline {
            e.poll_once(Duration::from_millis(20), &mut done).unwrap();
        }
    }
    fake.join().unwrap();
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|f| f.ok), "{done:?} {:?}", e.stats());
    let s = e.stats();
    assert_eq!((s.allocated, s.deleted), (2, 2), "{s:?}");
    assert_eq!(s.challenges, 3, "{s:?}");
    assert_eq!(s.stale_nonces, 1, "{s:?}");
    assert_eq!(s.retransmissions, 1, "{s:?}");
    assert_eq!(s.mismatch_retries, 1, "{s:?}");
    assert_eq!(s.sockets_opened, 2, "{s:?}");
    assert_eq!(s.requests_sent, 10, "{s:?}");
    // The 437 on a reused socket taught the engine to let sockets rest.
    assert_eq!(s.socket_cooldown_ms, 2000, "{s:?}");
    assert_eq!(e.latency().len(), 2);
}
