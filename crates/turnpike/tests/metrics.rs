//! `GET /metrics` on the real binary after real traffic: the text passes `promtool check
//! metrics`, and the figures moved (an allocation with a channel and data, a bad
//! password, a denied peer, a quota refusal).

mod common;
#[path = "support/http.rs"]
mod http;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ServerProcess;
use turnpike_bench::TurnClient;
use turnpike_bench::client::{ClientError, Credentials};
use turnpike_stun::ChannelNumber;

const SECRET: &str = "metrics-secret";

/// The value of the sample `series` (name and labels exactly as written).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

/// Pipes `text` to `promtool check metrics`; `false` (after saying so loudly) when
/// promtool is not installed. Panics on any complaint.
fn promtool_check(text: &str) -> bool {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "\n\n!!!!! SKIPPED: promtool is not installed (apt-get install prometheus); \
                 the /metrics text was NOT checked by promtool !!!!!\n\n"
            );
            return false;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- the text ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    true
}

fn scrape(addr: SocketAddr) -> String {
    let resp = http::request(addr, "GET", "/metrics", &[], None);
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    resp.body
}

#[test]
fn metrics_pass_promtool_and_count_real_traffic() {
    let config = format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"metrics.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"27900-27949\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n[quotas]\nallocations_per_user = 1\n"
    );
    let server = ServerProcess::start("metrics", &config);
    let addr = server.metrics.expect("metrics are on by default");

    // Before any traffic: valid, and zero.
    let before = scrape(addr);
    promtool_check(&before);
    assert_eq!(
        sample(
            &before,
            r#"turnpike_allocations{transport="udp",family="ipv4"}"#
        ),
        0.0
    );

    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let alice = Credentials::Rest {
        secret: SECRET.into(),
        user: "alice".into(),
    };
    let mut client = TurnClient::connect(server.udp[0], &alice).unwrap();
    client.allocate(None).unwrap();
    let channel = ChannelNumber::new(0x4001).unwrap();
    client
        .channel_bind(channel, peer.local_addr().unwrap())
        .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        client.send_channel_data(channel, b"0123456789").unwrap();
        peer.recv_from(&mut buf).expect("relayed to the peer");
    }
    // A private peer: 403 by the default policy (rule "private").
    let denied = client.create_permission("10.0.0.1:9".parse().unwrap());
    assert!(
        matches!(denied, Err(ClientError::Rejected { code: 403, .. })),
        "{denied:?}"
    );
    // A bad password: a REST credential signed with another secret.
    let mallory = Credentials::Rest {
        secret: "not-the-secret".into(),
        user: "mallory".into(),
    };
    let mut bad = TurnClient::connect(server.udp[0], &mallory).unwrap();
    assert!(bad.allocate(None).is_err(), "a wrong password allocated");
    // A second allocation for alice: 486 (allocations_per_user = 1).
    let mut second = TurnClient::connect(server.udp[0], &alice).unwrap();
    let quota = second.allocate(None);
    assert!(
        matches!(quota, Err(ClientError::Rejected { code: 486, .. })),
        "{quota:?}"
    );

    let text = scrape(addr);
    promtool_check(&text);
    let figures = [
        (
            r#"turnpike_allocations{transport="udp",family="ipv4"}"#,
            1.0,
        ),
        (
            r#"turnpike_allocations_created_total{transport="udp",family="ipv4"}"#,
            1.0,
        ),
        ("turnpike_channels", 1.0),
        ("turnpike_permissions", 1.0),
        (
            r#"turnpike_relayed_packets_total{direction="to_peer",transport="udp"}"#,
            5.0,
        ),
        (
            r#"turnpike_relayed_bytes_total{direction="to_peer",transport="udp"}"#,
            50.0,
        ),
        (r#"turnpike_relay_ports_in_use{relay_ip="127.0.0.1"}"#, 1.0),
        (
            r#"turnpike_relay_ports_capacity{relay_ip="127.0.0.1"}"#,
            50.0,
        ),
        ("turnpike_draining", 0.0),
    ];
    for (series, want) in figures {
        assert_eq!(sample(&text, series), want, "{series}");
    }
    let at_least = [
        (
            r#"turnpike_auth_failures_total{reason="bad_integrity"}"#,
            1.0,
        ),
        (r#"turnpike_peer_denied_total{rule="private"}"#, 1.0),
        (
            r#"turnpike_refused_requests_total{code="403",reason="forbidden"}"#,
            1.0,
        ),
        (
            r#"turnpike_refused_requests_total{code="486",reason="allocation_quota_reached"}"#,
            1.0,
        ),
        ("turnpike_workers", 1.0),
    ];
    for (series, min) in at_least {
        let got = sample(&text, series);
        assert!(got >= min, "{series} = {got}, want >= {min}");
    }
    assert!(text.contains(&format!(
        "turnpike_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));

    // The allocation's end moves it into the histograms and the end reasons.
    client.close().unwrap();
    let after = scrape(addr);
    promtool_check(&after);
    assert_eq!(
        sample(
            &after,
            r#"turnpike_allocations{transport="udp",family="ipv4"}"#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &after,
            r#"turnpike_allocation_end_reasons_total{reason="deleted"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&after, "turnpike_allocation_lifetime_seconds_count"),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"turnpike_allocation_volume_bytes_bucket{le="1000.0"}"#
        ),
        1.0
    );
    assert_eq!(sample(&after, "turnpike_allocation_volume_bytes_sum"), 50.0);
    // Bytes relayed do not go down when the allocation ends.
    assert_eq!(
        sample(
            &after,
            r#"turnpike_relayed_bytes_total{direction="to_peer",transport="udp"}"#
        ),
        50.0
    );
    server.stop();
}

#[test]
fn metrics_can_be_turned_off() {
    let config = "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"metrics.test\"\n\
                  secrets = [\"x\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"27950-27959\"\n\
                  [metrics]\nenabled = false\n";
    let server = ServerProcess::start("metrics-off", config);
    assert_eq!(server.metrics, None);
    server.stop();
}
