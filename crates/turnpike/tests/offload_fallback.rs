//! `[offload] mode = "tc"` where the fast path cannot come up (here: an interface that does
//! not exist; in a build without the `ebpf` feature: no program at all): the server says
//! why once, relays in user space as if offload were off, and `/metrics` shows the fast
//! path inactive with one load failure. Issue 18: "when it cannot load … the server says
//! why once and runs in user space".

mod common;
#[path = "support/http.rs"]
mod http;

use std::net::UdpSocket;
use std::time::Duration;

use common::ServerProcess;
use turnpike_bench::TurnClient;
use turnpike_bench::client::Credentials;
use turnpike_stun::ChannelNumber;

const SECRET: &str = "offload-fallback-secret";

fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_fast_path_that_cannot_load_leaves_the_relay_in_user_space() {
    let config = format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[turn]\nrealm = \"fallback.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"30500-30549\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n\
         [offload]\nmode = \"tc\"\ninterfaces = [\"tpnosuch0\"]\n"
    );
    let server = ServerProcess::start("offload-fallback", &config);
    let line = server.wait_for_log(
        &["offload: not loaded, relaying in user space"],
        Duration::from_secs(5),
    );
    let reason = if cfg!(feature = "ebpf") {
        "no interface named"
    } else {
        "built without the ebpf feature"
    };
    assert!(line.contains(reason), "{line}");

    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let credentials = Credentials::Rest {
        secret: SECRET.into(),
        user: "alice".into(),
    };
    let mut client = TurnClient::connect(server.udp[0], &credentials).unwrap();
    let relayed = client.allocate(None).unwrap();
    let channel = ChannelNumber::new(0x4001).unwrap();
    client
        .channel_bind(channel, peer.local_addr().unwrap())
        .unwrap();
    let mut buf = [0u8; 64];
    for i in 0..5u8 {
        client.send_channel_data(channel, &[i; 10]).unwrap();
        let (n, from) = peer.recv_from(&mut buf).expect("relayed to the peer");
        assert_eq!((&buf[..n], from), (&[i; 10][..], relayed));
    }

    let text = http::request(
        server.metrics.expect("metrics"),
        "GET",
        "/metrics",
        &[],
        None,
    )
    .body;
    assert_eq!(sample(&text, "turnpike_offload_active"), Some(0), "{text}");
    assert_eq!(
        sample(&text, "turnpike_offload_load_failures_total"),
        Some(1)
    );
    assert_eq!(
        sample(
            &text,
            r#"turnpike_relayed_packets_total{direction="to_peer",transport="udp"}"#
        ),
        Some(5)
    );
    assert_eq!(
        server.count_logs("offload: not loaded"),
        1,
        "said once, not per allocation"
    );
}
