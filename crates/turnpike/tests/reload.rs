//! Hot reload against the real binary (SIGHUP): the secrets and the TLS certificate change
//! while a UDP client and a TLS client relay, and neither loses a datagram; new clients see
//! the new secret and the new certificate, the removed secret is refused. A file that does
//! not parse is refused with its line and the old configuration goes on; a change that needs
//! a restart is reported; SIGUSR1 and SIGUSR2 do what they are documented to do and kill
//! nothing.

mod common;
mod interop;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::ServerProcess;
use interop::TestCert;
use turnpike_bench::client::{Credentials, Transport};
use turnpike_bench::{TurnClient, tls};
use turnpike_stun::ChannelNumber;

/// Datagrams each client sends while the reload happens.
const DATAGRAMS: usize = 300;

fn config(secret: &str, cert: &TestCert, relay_ports: &str, extra: &str) -> String {
    format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\n\
         [turn]\nrealm = \"reload.test\"\nsecrets = [\"{secret}\"]\n\
         [relay]\nips = [\"127.0.0.1\"]\nports = \"{relay_ports}\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\n{extra}",
        cert.files.cert.display(),
        cert.files.key.display()
    )
}

fn rest(secret: &str) -> Credentials {
    Credentials::Rest {
        secret: secret.into(),
        user: "reload".into(),
    }
}

fn tls_to(server: SocketAddr, cert: &TestCert) -> Transport {
    Transport::Tls(tls::settings(server, None, Some(&cert.files.cert), false).unwrap())
}

/// A client with an allocation and a channel to `peer`.
fn relaying(client: &mut TurnClient, peer: SocketAddr) -> SocketAddr {
    let relayed = client.allocate(None).expect("allocate");
    client
        .channel_bind(ChannelNumber::new(0x4000).unwrap(), peer)
        .expect("channel bind");
    relayed
}

#[test]
fn sighup_changes_secret_and_certificate_without_losing_a_datagram() {
    let (c1, c2) = (
        TestCert::generate_leaf("reload-1"),
        TestCert::generate_leaf("reload-2"),
    );
    let server = ServerProcess::start_logging(
        "reload",
        &config("old-secret", &c1, "27400-27449", ""),
        "info",
    );
    let (udp, tcp) = (server.udp[0], server.tcp[0]);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let peer_addr = peer.local_addr().unwrap();

    let mut over_udp = TurnClient::connect(udp, &rest("old-secret")).unwrap();
    let mut over_tls =
        TurnClient::connect_over(tcp, &rest("old-secret"), &tls_to(tcp, &c1)).unwrap();
    let relayed = [
        relaying(&mut over_udp, peer_addr),
        relaying(&mut over_tls, peer_addr),
    ];

    // Both send DATAGRAMS datagrams, 2 ms apart; the reload comes after a third of them.
    let start = Arc::new(Barrier::new(3));
    let senders: Vec<_> = [over_udp, over_tls]
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let channel = ChannelNumber::new(0x4000).unwrap();
                for n in 0..DATAGRAMS {
                    let data = format!("{i}:{n:04}");
                    client.send_channel_data(channel, data.as_bytes()).unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
                client
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(
        &server.config_path,
        config("new-secret", &c2, "27400-27449", ""),
    )
    .unwrap();
    server.signal("HUP");
    let mut got = [0usize; 2];
    let mut buf = [0u8; 64];
    while got.iter().sum::<usize>() < 2 * DATAGRAMS {
        let Ok((n, from)) = peer.recv_from(&mut buf) else {
            break;
        };
        let side = relayed
            .iter()
            .position(|r| *r == from)
            .expect("from a relay");
        assert!(buf[..n].starts_with(format!("{side}:").as_bytes()));
        got[side] += 1;
    }
    let mut clients: Vec<TurnClient> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        got,
        [DATAGRAMS, DATAGRAMS],
        "every datagram of both sessions arrived"
    );
    let line = server.wait_for_log(&["reloaded"], Duration::from_secs(5));
    assert!(
        line.contains("\"turn\"") && line.contains("\"tls\""),
        "{line}"
    );

    // The TLS session made before the reload goes on over its old connection (relaying
    // needs no credential; its next Refresh would need the new secret).
    clients[1]
        .send_channel_data(ChannelNumber::new(0x4000).unwrap(), b"1:late")
        .unwrap();
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("the TLS session still relays");
    assert_eq!((from, &buf[..n]), (relayed[1], &b"1:late"[..]));

    // New clients: the removed secret is refused, the new one works; a TLS client that
    // trusts only the old certificate fails its handshake, one that trusts the new
    // certificate connects and allocates.
    let mut stale = TurnClient::connect(udp, &rest("old-secret")).unwrap();
    assert!(
        stale.allocate(None).is_err(),
        "the removed secret is refused"
    );
    let mut fresh = TurnClient::connect(udp, &rest("new-secret")).unwrap();
    fresh.allocate(None).expect("the new secret works");
    assert!(
        TurnClient::connect_over(tcp, &rest("new-secret"), &tls_to(tcp, &c1)).is_err(),
        "a new connection gets the new certificate"
    );
    let mut tls_fresh =
        TurnClient::connect_over(tcp, &rest("new-secret"), &tls_to(tcp, &c2)).unwrap();
    tls_fresh
        .allocate(None)
        .expect("TLS with the new certificate");
    for c in &mut clients {
        let _ = c.close();
    }
    assert!(server.stop().success());
}

#[test]
fn a_bad_file_is_refused_and_a_change_that_needs_a_restart_is_reported() {
    let cert = TestCert::generate_leaf("reload-3");
    let mut server = ServerProcess::start_logging(
        "reload-bad",
        &config("s1", &cert, "27450-27499", ""),
        "info",
    );
    let udp = server.udp[0];

    // Line 3 is broken: refused with file and line, the old configuration goes on.
    std::fs::write(
        &server.config_path,
        "[listen]\nudp = [\"127.0.0.1:0\"]\n[turn\n",
    )
    .unwrap();
    server.signal("HUP");
    let line = server.wait_for_log(
        &["reload refused", "turnserver.toml:3:"],
        Duration::from_secs(5),
    );
    assert!(line.contains("the configuration in force stays"), "{line}");
    assert!(server.is_running());
    TurnClient::connect(udp, &rest("s1"))
        .unwrap()
        .allocate(None)
        .expect("the old secret still works");

    // Another listener port needs a restart: reported, not applied; the secret is.
    let moved = config("s2", &cert, "27450-27499", "")
        .replace("udp = [\"127.0.0.1:0\"]", "udp = [\"127.0.0.1:3599\"]");
    std::fs::write(&server.config_path, moved).unwrap();
    server.signal("HUP");
    let line = server.wait_for_log(&["only after a restart"], Duration::from_secs(5));
    assert!(line.contains("listen"), "{line}");
    TurnClient::connect(udp, &rest("s2"))
        .unwrap()
        .allocate(None)
        .expect("the new secret applies on the old listener");

    // So does the log format (the subscriber is set up once).
    let json = config("s2", &cert, "27450-27499", "[log]\nformat = \"json\"\n")
        .replace("udp = [\"127.0.0.1:0\"]", "udp = [\"127.0.0.1:3599\"]");
    std::fs::write(&server.config_path, json).unwrap();
    server.signal("HUP");
    server.wait_for_log(
        &["only after a restart", "log.format"],
        Duration::from_secs(5),
    );

    // SIGUSR1 logs a status line per worker, SIGUSR2 toggles redirection; neither kills.
    server.signal("USR1");
    server.wait_for_log(&["status", "allocations"], Duration::from_secs(5));
    server.signal("USR2");
    server.wait_for_log(&["SIGUSR2", "alternates"], Duration::from_secs(5));
    server.signal("USR2");
    server.wait_for_log(&["SIGUSR2", "served here again"], Duration::from_secs(5));
    assert!(server.is_running());
    assert!(server.stop().success());
}
