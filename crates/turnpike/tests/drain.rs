//! Draining the real binary (`[drain] on_sigterm`): SIGTERM turns new Allocates away with
//! 300 and the sibling's address (508 without one), an existing flow keeps relaying and
//! refreshing, and the process exits by itself when the last allocation ends, or at the
//! deadline with allocations left.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::ServerProcess;
use common::turn_client::Client;
use turnpike_bench::TurnClient;
use turnpike_bench::client::Credentials;
use turnpike_stun::attr::{AlternateServer, ErrorCodeAttr, RequestedTransport, TransportProtocol};
use turnpike_stun::{ChannelNumber, Message, Method};

const SECRET: &str = "drain-secret";

fn config(relay_ports: &str, extra: &str) -> String {
    format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"drain.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"{relay_ports}\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n{extra}"
    )
}

/// A new Allocate's error code and ALTERNATE-SERVER.
fn allocate_refused(server: SocketAddr, user: &str) -> (Option<u16>, Option<SocketAddr>) {
    let mut c = Client::new(server, SECRET, user);
    let resp = c.request(Method::ALLOCATE, |w| {
        w.put(&RequestedTransport(TransportProtocol::UDP))
    });
    let msg = Message::new_checked(&resp[..]).unwrap();
    let code = msg.get::<ErrorCodeAttr>().unwrap().map(|e| e.code.code());
    let alternate = msg.get::<AlternateServer>().unwrap().map(|a| a.0);
    (code, alternate)
}

/// Sends `n` ChannelData datagrams each way; how many arrived each way.
fn relay_both_ways(
    client: &mut TurnClient,
    channel: ChannelNumber,
    peer: &UdpSocket,
    relayed: SocketAddr,
    n: usize,
) -> (usize, usize) {
    let mut buf = [0u8; 256];
    let mut to_peer = 0;
    for _ in 0..n {
        client
            .send_channel_data(channel, b"drain-test-data")
            .unwrap();
        if peer.recv_from(&mut buf).is_ok() {
            to_peer += 1;
        }
    }
    let mut to_client = 0;
    for _ in 0..n {
        peer.send_to(b"back", relayed).unwrap();
        if let Ok(Some(_)) = client.recv_frame(Duration::from_secs(1)) {
            to_client += 1;
        }
    }
    (to_peer, to_client)
}

#[test]
fn sigterm_drains_redirects_keeps_flows_and_exits_when_the_last_ends() {
    let sibling: SocketAddr = "127.0.0.1:3999".parse().unwrap();
    let extra = format!(
        "[alternates]\nudp = [\"{sibling}\"]\n[drain]\non_sigterm = true\ndeadline_secs = 60\n"
    );
    let mut server = ServerProcess::start_logging("drain", &config("27600-27649", &extra), "info");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let credentials = Credentials::Rest {
        secret: SECRET.into(),
        user: "alice".into(),
    };
    let mut client = TurnClient::connect(server.udp[0], &credentials).unwrap();
    let relayed = client.allocate(None).unwrap();
    let channel = ChannelNumber::new(0x4000).unwrap();
    client
        .channel_bind(channel, peer.local_addr().unwrap())
        .unwrap();
    assert_eq!(
        relay_both_ways(&mut client, channel, &peer, relayed, 20),
        (20, 20)
    );

    server.signal("TERM");
    server.wait_for_log(&["SIGTERM: draining"], Duration::from_secs(5));
    server.wait_for_log(
        &["draining: new allocations go to a sibling"],
        Duration::from_secs(5),
    );
    // New clients are sent to the sibling, signed 300 with its address.
    assert_eq!(
        allocate_refused(server.udp[0], "bob"),
        (Some(300), Some(sibling))
    );
    // The existing flow goes on: data both ways, refreshes, a new channel.
    assert_eq!(
        relay_both_ways(&mut client, channel, &peer, relayed, 50),
        (50, 50)
    );
    assert_eq!(client.refresh(600).unwrap(), 600);
    assert!(server.is_running(), "one allocation left: still serving");
    // The last allocation ends: the process stops by itself, cleanly.
    client.close().unwrap();
    let started = Instant::now();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits once drained");
    assert!(status.success(), "clean exit: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.count_logs("drained: the last allocation ended"), 1);
    assert_eq!(
        server.count_logs("reason=\"deleted\""),
        1,
        "accounting line"
    );
}

#[test]
fn without_a_sibling_new_allocations_get_508_and_the_deadline_ends_the_drain() {
    let extra = "[drain]\non_sigterm = true\ndeadline_secs = 3\n";
    let mut server =
        ServerProcess::start_logging("drain-deadline", &config("27650-27699", extra), "info");
    let credentials = Credentials::Rest {
        secret: SECRET.into(),
        user: "carol".into(),
    };
    let mut client = TurnClient::connect(server.udp[0], &credentials).unwrap();
    client.allocate(None).unwrap();
    let started = Instant::now();
    server.signal("TERM");
    server.wait_for_log(&["SIGTERM: draining"], Duration::from_secs(5));
    // The workers apply the drain between their packets, just after the controller logs it.
    server.wait_for_log(
        &["draining: new allocations go to a sibling"],
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(allocate_refused(server.udp[0], "dave"), (Some(508), None));
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits at the deadline");
    assert!(status.success(), "clean exit: {status:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(7),
        "stopped at the deadline, after {took:?}"
    );
    assert_eq!(
        server.count_logs("drain deadline reached: stopping with allocations left"),
        1
    );
}

/// Without `on_sigterm`, SIGTERM stops at once (the classic behaviour), allocations or not.
#[test]
fn sigterm_stops_at_once_by_default() {
    let mut server = ServerProcess::start("drain-off", &config("27600-27649", ""));
    let credentials = Credentials::Rest {
        secret: SECRET.into(),
        user: "erin".into(),
    };
    let mut client = TurnClient::connect(server.udp[0], &credentials).unwrap();
    client.allocate(None).unwrap();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("stops at once");
    assert!(status.success());
}
