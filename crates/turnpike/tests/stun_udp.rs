//! STUN over UDP against the real binary: coturn's `turnutils_stunclient`, our own client,
//! and malformed datagrams that must be dropped without harm.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{ServerProcess, binding_request, mapped_address};

const CONFIG_V4: &str = r#"
[listen]
udp = ["127.0.0.1:0"]
tcp = []
"#;

/// Runs coturn's client from a chosen local address and returns the reflexive address it
/// printed.
fn stunclient(server: SocketAddr, local_ip: &str) -> SocketAddr {
    let out = Command::new("turnutils_stunclient")
        .args(["-p", &server.port().to_string(), "-L", local_ip])
        .arg(server.ip().to_string())
        .output()
        .expect("turnutils_stunclient is installed (Debian package coturn)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split("UDP reflexive addr: ").nth(1))
        .unwrap_or_else(|| panic!("no reflexive address in output:\n{stdout}"));
    line.trim().parse().unwrap()
}

#[test]
fn coturn_stunclient_learns_its_reflexive_address() {
    let server = ServerProcess::start("stunclient", CONFIG_V4);
    let addr = server.udp[0];
    // Different source IPs prove the answer reflects the real source, not a constant.
    for local in ["127.0.0.2", "127.0.0.3"] {
        let reflexive = stunclient(addr, local);
        assert_eq!(reflexive.ip().to_string(), local);
        assert_ne!(reflexive.port(), 0);
        assert_ne!(reflexive.port(), addr.port());
    }
    assert!(server.stop().success(), "clean exit on SIGTERM");
}

fn exchange(socket: &UdpSocket, server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(packet, server).unwrap();
    let mut buf = [0u8; 2048];
    match socket.recv_from(&mut buf) {
        Ok((n, from)) => {
            assert_eq!(from, server);
            Some(buf[..n].to_vec())
        }
        Err(_) => None,
    }
}

#[test]
fn own_client_gets_its_exact_address_over_ipv4_and_ipv6() {
    let v6 = UdpSocket::bind("[::1]:0").is_ok();
    let config = if v6 {
        "[listen]\nudp = [\"127.0.0.1:0\", \"[::1]:0\"]\ntcp = []\n"
    } else {
        CONFIG_V4
    };
    let server = ServerProcess::start("udp-exact", config);
    for &addr in &server.udp {
        let socket = UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for i in 0..5u8 {
            let tid = [i; 12];
            let resp = exchange(&socket, addr, &binding_request(tid)).expect("answered");
            assert_eq!(mapped_address(&resp, tid), socket.local_addr().unwrap());
        }
    }
}

#[test]
fn malformed_datagrams_are_dropped_and_nothing_breaks() {
    let mut server = ServerProcess::start("udp-malformed", CONFIG_V4);
    let addr = server.udp[0];
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();

    let good = binding_request([7; 12]);
    let mut bad_fingerprint = good.clone();
    let last = bad_fingerprint.len() - 1;
    bad_fingerprint[last] ^= 0xFF;
    let mut bad_cookie = good.clone();
    bad_cookie[4] = 0;
    let mut bad_length = good.clone();
    bad_length[3] = 0xFC;
    let mut response_class = good.clone();
    response_class[1] = 0x01;
    response_class[0] = 0x01; // Binding success: a response is never answered.
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        good[..19].to_vec(),
        good[..good.len() - 1].to_vec(),
        bad_fingerprint,
        bad_cookie,
        bad_length,
        response_class,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4],
        vec![0xFF; 1200],
    ];
    for packet in &junk {
        assert!(
            exchange(&socket, addr, packet).is_none(),
            "answered {packet:02x?}"
        );
    }
    assert!(server.is_running());
    let resp = exchange(&socket, addr, &good).expect("still answers valid requests");
    assert_eq!(mapped_address(&resp, [7; 12]), socket.local_addr().unwrap());
}
