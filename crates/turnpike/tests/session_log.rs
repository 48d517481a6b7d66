//! One accounting line per allocation at its end, from the real binary: user, client,
//! relayed address, duration, datagrams and bytes each way, and why it ended.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::ServerProcess;
use turnpike_bench::TurnClient;
use turnpike_bench::client::Credentials;
use turnpike_stun::ChannelNumber;

#[test]
fn a_deleted_allocation_logs_its_accounting_line() {
    let config = "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"log.test\"\n\
                  secrets = [\"log-secret\"]\n[relay]\nips = [\"127.0.0.1\"]\n\
                  ports = \"27500-27549\"\n[peers]\ndangerous_allow_loopback_peers = true\n";
    let server = ServerProcess::start_logging("session-log", config, "info");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let credentials = Credentials::Rest {
        secret: "log-secret".into(),
        user: "alice".into(),
    };
    let mut client = TurnClient::connect(server.udp[0], &credentials).unwrap();
    let relayed = client.allocate(None).unwrap();
    let channel = ChannelNumber::new(0x4000).unwrap();
    client
        .channel_bind(channel, peer.local_addr().unwrap())
        .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        client.send_channel_data(channel, b"0123456789").unwrap();
        peer.recv_from(&mut buf).expect("relayed to the peer");
    }
    client.close().unwrap();
    let line = server.wait_for_log(&["allocation ended"], Duration::from_secs(5));
    for field in [
        ":alice".to_owned(),
        format!("relayed={relayed}"),
        format!("client={}", client.local_addr().unwrap()),
        "to_peer_packets=3".to_owned(),
        "to_peer_bytes=30".to_owned(),
        "to_client_packets=0".to_owned(),
        "reason=\"deleted\"".to_owned(),
    ] {
        assert!(line.contains(&field), "{field} in {line}");
    }
    assert_eq!(server.count_logs("allocation ended"), 1);
}

/// `[log] format = "json"`: one JSON object per line, the accounting fields included.
#[test]
fn json_logs_carry_the_accounting_fields() {
    let config = "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"log.test\"\n\
                  secrets = [\"log-secret\"]\n[relay]\nips = [\"127.0.0.1\"]\n\
                  ports = \"27550-27599\"\n[log]\nformat = \"json\"\n";
    let server = ServerProcess::start_logging("session-json", config, "info");
    let credentials = Credentials::Rest {
        secret: "log-secret".into(),
        user: "bob".into(),
    };
    let mut client = TurnClient::connect(server.udp[0], &credentials).unwrap();
    let relayed = client.allocate(None).unwrap();
    client.close().unwrap();
    let line = server.wait_for_log(&["allocation ended"], Duration::from_secs(5));
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["target"], "turnpike::session");
    let fields = &v["fields"];
    assert_eq!(fields["message"], "allocation ended");
    assert_eq!(fields["relayed"], relayed.to_string());
    assert_eq!(fields["reason"], "deleted");
    assert_eq!(fields["to_peer_packets"], 0);
    assert!(fields["user"].as_str().unwrap().ends_with(":bob"));
}

/// Refused credentials and denied peers are logged with their reason, at most 10 lines a
/// second per kind and worker, the held-back count said in the next line: a flood of bad
/// passwords cannot fill the disk.
#[test]
fn refusals_are_logged_with_their_reason_within_a_budget() {
    let config = "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"log.test\"\n\
                  secrets = [\"log-secret\"]\n[relay]\nips = [\"127.0.0.1\"]\n\
                  ports = \"27500-27549\"\n[runtime]\nworkers = 1\n";
    let server = ServerProcess::start_logging("refusal-log", config, "warn");
    // 60 Allocates under a secret the server does not hold: 401 each, bad integrity.
    let wrong = Credentials::Rest {
        secret: "not-the-secret".into(),
        user: "mallory".into(),
    };
    for _ in 0..60 {
        let mut client = TurnClient::connect(server.udp[0], &wrong).unwrap();
        assert!(client.allocate(None).is_err());
    }
    let line = server.wait_for_log(&["authentication failed"], Duration::from_secs(5));
    for field in ["reason=\"bad_integrity\"", ":mallory", "client=127.0.0.1:"] {
        assert!(line.contains(field), "{field} in {line}");
    }
    let written = server.count_logs("authentication failed");
    assert!(
        (10..=30).contains(&written),
        "60 failures within a few seconds: {written} lines (10 a second at most)"
    );
    // A peer in the private ranges: 403, logged with the rule.
    let good = Credentials::Rest {
        secret: "log-secret".into(),
        user: "alice".into(),
    };
    let mut client = TurnClient::connect(server.udp[0], &good).unwrap();
    client.allocate(None).unwrap();
    assert!(
        client
            .create_permission("10.1.2.3:9".parse().unwrap())
            .is_err()
    );
    let line = server.wait_for_log(&["peer denied"], Duration::from_secs(5));
    for field in ["peer=10.1.2.3:9", "rule=\"private\""] {
        assert!(line.contains(field), "{field} in {line}");
    }
}
