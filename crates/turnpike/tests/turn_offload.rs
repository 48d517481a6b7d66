//! Issue 18 end to end: turnpike with `[offload] mode = "tc"` in the hairpin lab's server
//! namespace (a cloud VM behind a stateless 1:1 NAT, `nat_lab`), a client behind a home
//! NAT (`tests/interop/offload_relay.py`) and an echoing peer on the lab's internet router
//! (`tests/interop/udp_echo.py`).
//!
//! - ChannelData of 1, 3, 120 and 1200 bytes goes to the peer and comes back byte for
//!   byte as ChannelData on the same channel, through the NATs, with the senders' veths
//!   at their default checksum offload.
//! - The kernel relayed them: `turnpike_offload_relayed_packets_total` counts every
//!   datagram both ways (none went to user space after the ChannelBind).
//! - The same in a dual-stack lab: IPv6, and IPv4 ↔ IPv6 (RFC 6156), all in the kernel.
//! - A peer without a permission (another IP) reaches no client, and after the
//!   allocation is deleted (Refresh 0) nothing the bound peer sends arrives: the kernel's
//!   routes went with it at once.
//! - The totals are those of user space: `turnpike_relayed_packets_total` and
//!   `_bytes_total`, and the allocation's accounting line, count every datagram once —
//!   the same figures as the same run with offload off, made in the same test.
//! - coturn's `turnutils_uclient` relays over channels to coturn's `turnutils_peer` with
//!   0 loss, and the kernel relayed its datagrams.
//!
//! Needs root and a binary built with `--features ebpf` (this file is empty without it).
#![cfg(feature = "ebpf")]

mod common;
mod interop;
mod nat_lab;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use interop::{Json, rest_credentials, run_bounded, terminate};
use nat_lab::{Lab, PRIVATE, PUBLIC, SECRET, Server, UCLIENT, UclientReport};

/// TURN port, relay range and metrics port inside the server namespace; the echo port on
/// the internet router. No other test uses them.
const TURN_PORT: u16 = 3611;
const RELAY_PORTS: &str = "41100-41149";
const METRICS_PORT: u16 = 9711;
const ECHO_PORT: u16 = 5611;
/// Datagrams of each size.
const COUNT: u64 = 50;
/// The client's two commands to the peer after the echoes ("stranger", "later"), which the
/// relay carries to the peer like any datagram: packets and bytes.
const COMMANDS: (u64, u64) = (2, 13);
const SIZES: [u64; 4] = [1, 3, 120, 1200];
/// The lab router's address on the server side: the peer.
const PEER_IP: &str = "198.18.1.1";
/// Another address of the router (its side towards the home): a peer without permission.
const STRANGER_IP: &str = "198.18.2.1";

fn interop(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(file)
}

fn config(mode: &str) -> String {
    format!(
        "[listen]\nudp = [\"{PRIVATE}:{TURN_PORT}\"]\ntcp = []\n\
         [turn]\nrealm = \"offload.test\"\nsecrets = [\"{SECRET}\"]\n\
         [relay]\nips = [\"{PRIVATE}\"]\nports = \"{RELAY_PORTS}\"\n\
         external_ip = [\"{PUBLIC}/{PRIVATE}\"]\n\
         [peers]\nallow = [\"198.18.0.0/15\"]\n\
         [admin]\nenabled = false\n\
         [metrics]\nenabled = true\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n\
         [offload]\nmode = \"{mode}\"\n"
    )
}

/// Where one run happens: the namespaces of the client, the echo peer and the server,
/// the address the client sends to, and the peer's addresses.
struct Where<'a> {
    lab: &'a Lab,
    client_ns: &'a str,
    peer_ns: &'a str,
    server: String,
    peer_ip: &'a str,
    stranger_ip: &'a str,
}

/// The echo peer, for at most a minute.
fn echo_peer(at: &Where<'_>) -> Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &at.lab.ns(at.peer_ns), "python3"])
        .arg(interop("udp_echo.py"))
        .args([at.peer_ip, &ECHO_PORT.to_string(), "60", at.stranger_ip])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the echo peer");
    let mut line = String::new();
    let stdout = child.stdout.as_mut().expect("piped");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// What one run showed.
#[derive(Debug, PartialEq, Eq)]
struct Totals {
    /// `turnpike_relayed_{packets,bytes}_total` to the peer and to the client (UDP).
    relayed: [u64; 4],
    /// The accounting line's `to_peer_packets=… to_peer_bytes=… to_client_packets=…
    /// to_client_bytes=…`.
    accounting: String,
}

/// The figures every run must show: to the peer (packets, bytes; with the two
/// commands), to the client (packets, bytes).
fn expected() -> [u64; 4] {
    let sent = COUNT * SIZES.len() as u64;
    let bytes = COUNT * SIZES.iter().sum::<u64>();
    [sent + COMMANDS.0, bytes + COMMANDS.1, sent, bytes]
}

/// The offload series of a metrics text, for messages.
fn offload_series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("turnpike_offload"))
        .collect()
}

/// What the kernel relayed: to the peer (packets, bytes), to the client (packets, bytes).
fn offloaded(text: &str) -> [u64; 4] {
    [
        r#"turnpike_offload_relayed_packets_total{direction="to_peer"}"#,
        r#"turnpike_offload_relayed_bytes_total{direction="to_peer"}"#,
        r#"turnpike_offload_relayed_packets_total{direction="to_client"}"#,
        r#"turnpike_offload_relayed_bytes_total{direction="to_client"}"#,
    ]
    .map(|s| sample(text, s))
}

/// Runs the client against `server`; returns the totals and the metrics text.
fn relay(at: &Where<'_>, server: Server) -> (Totals, String) {
    let mut peer = echo_peer(at);
    let (user, pass) = rest_credentials(SECRET, "offload", Duration::from_secs(3600));
    let (host, port) = at.server.rsplit_once(':').expect("host:port");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &at.lab.ns(at.client_ns), "python3"])
        .arg(interop("offload_relay.py"))
        .args([host, port, &user, &pass, at.peer_ip])
        .args([&ECHO_PORT.to_string(), &COUNT.to_string()])
        .args(SIZES.map(|s| s.to_string()))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let run = run_bounded(cmd, Duration::from_secs(60));
    terminate(&mut peer, Duration::from_secs(2));
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(0),
        "client: {}\n{}",
        run.stdout,
        run.stderr
    );
    let report = Json::parse(run.stdout.lines().last().unwrap_or_default()).expect("JSON");
    let [_, _, sent, bytes] = expected();
    assert_eq!(report.at("sent").num().map(|n| n as u64), Some(sent));
    assert_eq!(report.at("sent_bytes").num().map(|n| n as u64), Some(bytes));
    assert_eq!(report.at("mismatched").num().map(|n| n as u64), Some(0));
    assert_eq!(
        report.at("strangers").num(),
        Some(0.0),
        "a peer without a permission reaches no client: {}",
        run.stdout
    );
    assert_eq!(
        report.at("after_end").num(),
        Some(0.0),
        "nothing after the allocation was deleted: {}",
        run.stdout
    );
    assert_eq!(
        report.at("echoed").num().map(|n| n as u64),
        Some(sent),
        "every datagram comes back: {}",
        run.stdout
    );
    server.wait_for_log("allocation ended", Duration::from_secs(5));
    let line = server
        .log_lines()
        .into_iter()
        .find(|l| l.contains("allocation ended"))
        .expect("an accounting line");
    assert_eq!(server.count_logs("allocation ended"), 1);
    let accounting: Vec<&str> = line
        .split_whitespace()
        .filter(|w| w.starts_with("to_peer_") || w.starts_with("to_client_"))
        .collect();
    let text = at.lab.metrics(METRICS_PORT);
    let relayed = [
        r#"turnpike_relayed_packets_total{direction="to_peer",transport="udp"}"#,
        r#"turnpike_relayed_bytes_total{direction="to_peer",transport="udp"}"#,
        r#"turnpike_relayed_packets_total{direction="to_client",transport="udp"}"#,
        r#"turnpike_relayed_bytes_total{direction="to_client",transport="udp"}"#,
    ]
    .map(|s| sample(&text, s));
    assert_eq!(relayed, expected(), "every datagram once");
    let totals = Totals {
        relayed,
        accounting: accounting.join(" "),
    };
    drop(server);
    (totals, text)
}

/// Runs the client through the hairpin lab's server with `[offload] mode`.
fn relay_through(mode: &str) -> Option<(Totals, String)> {
    relay_with(mode, "")
}

/// As [`relay_through`], with `extra` appended to the configuration.
fn relay_with(mode: &str, extra: &str) -> Option<(Totals, String)> {
    let lab = Lab::new(1, &[])?;
    if mode == "xdp" {
        lab.like_nics("srv");
    }
    let server = Server::start_at(&lab, &lab.sites[0], &format!("{}{extra}", config(mode)));
    if mode != "off" {
        server.wait_for_log("fast path attached", Duration::from_secs(5));
    }
    let at = Where {
        lab: &lab,
        client_ns: "cla",
        peer_ns: "inet",
        server: format!("{PUBLIC}:{TURN_PORT}"),
        peer_ip: PEER_IP,
        stranger_ip: STRANGER_IP,
    };
    Some(relay(&at, server))
}

/// Runs the hairpin lab with `mode`, then with `off`: every datagram in the kernel, and
/// the same totals and accounting line either way. The kernel run's metrics.
fn all_in_the_kernel_as_in_user_space(mode: &str) -> Option<String> {
    let (kernel, text) = relay_through(mode)?;
    assert_eq!(sample(&text, "turnpike_offload_active"), 1);
    assert_eq!(
        offloaded(&text),
        expected(),
        "all in the kernel ({mode}): {:#?}",
        offload_series(&text)
    );
    let (user, _) = relay_through("off")?;
    assert_eq!(
        kernel, user,
        "the same totals and accounting line either way"
    );
    Some(text)
}

#[test]
fn channel_data_is_relayed_in_the_kernel_with_the_same_totals_as_in_user_space() {
    let Some(text) = all_in_the_kernel_as_in_user_space("tc") else {
        return;
    };
    assert_eq!(
        sample(&text, "turnpike_offload_routes"),
        0,
        "withdrawn at the end"
    );
}

/// A user with a traffic budget (`[quotas] user_*`) is relayed in the kernel too: the
/// budget's counters live where the program charges them, so both paths count against
/// the one budget (the drops over it: `crates/offload/tests/netns.rs`). Generous limits
/// here: every datagram goes through, in the kernel, with the same totals.
#[test]
fn a_user_with_a_traffic_budget_is_relayed_in_the_kernel() {
    let quotas = "[quotas]\nuser_packets_per_sec = 100000\nuser_bytes_per_period = 1000000000\n";
    let Some((kernel, text)) = relay_with("tc", quotas) else {
        return;
    };
    assert_eq!(
        offloaded(&text),
        expected(),
        "all in the kernel: {:#?}",
        offload_series(&text)
    );
    assert_eq!(
        sample(
            &text,
            r#"turnpike_offload_dropped_total{reason="user_budget"}"#
        ),
        0
    );
    assert_eq!(kernel.relayed, expected());
}

/// uclient's echo peer port on the lab's internet router.
const UCLIENT_PEER_PORT: u16 = 3612;
/// Datagrams uclient sends (and expects back).
const UCLIENT_MESSAGES: u64 = 200;

#[test]
fn coturn_uclient_relays_over_kernel_channels_with_zero_loss() {
    uclient_through("tc");
}

/// The same at XDP, the lab's veths behaving like NIC links ([`Lab::like_nics`]).
#[test]
fn coturn_uclient_relays_over_xdp_channels_with_zero_loss() {
    uclient_through("xdp");
}

fn uclient_through(mode: &str) {
    let Some(lab) = Lab::new(1, &[UCLIENT]) else {
        return;
    };
    if mode == "xdp" {
        lab.like_nics("srv");
    }
    let server = Server::start_at(&lab, &lab.sites[0], &config(mode));
    server.wait_for_log("fast path attached", Duration::from_secs(5));
    let mut peer = Command::new("ip")
        .args(["netns", "exec", &lab.ns("inet"), "turnutils_peer"])
        .args(["-L", PEER_IP, "-p", &UCLIENT_PEER_PORT.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start turnutils_peer");
    std::thread::sleep(Duration::from_millis(300));
    let (user, pass) = rest_credentials(SECRET, "uclient", Duration::from_secs(3600));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns("cla"), "turnutils_uclient"])
        .args(["-e", PEER_IP, "-r", &UCLIENT_PEER_PORT.to_string()])
        .args(["-c", "-v", "-m", "1", "-z", "5", "-l", "120"])
        .args([
            "-n",
            &UCLIENT_MESSAGES.to_string(),
            "-u",
            &user,
            "-w",
            &pass,
        ])
        .args(["-p", &TURN_PORT.to_string(), PUBLIC]);
    let run = run_bounded(cmd, Duration::from_secs(60));
    terminate(&mut peer, Duration::from_secs(2));
    let report = UclientReport::parse(&run);
    let context = format!("{report:?}\n{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.code(), Some(0), "{context}");
    assert_eq!(report.sent, Some(UCLIENT_MESSAGES), "{context}");
    assert_eq!(report.received, report.sent, "{context}");
    assert_eq!(report.lost, Some(0), "{context}");
    let text = lab.metrics(METRICS_PORT);
    let to_peer = r#"turnpike_offload_relayed_packets_total{direction="to_peer"}"#;
    let to_client = r#"turnpike_offload_relayed_packets_total{direction="to_client"}"#;
    let offloaded = [to_peer, to_client].map(|s| sample(&text, s));
    assert_eq!(
        offloaded,
        [UCLIENT_MESSAGES; 2],
        "every datagram in the kernel: {:#?}",
        text.lines()
            .filter(|l| l.starts_with("turnpike_offload"))
            .collect::<Vec<_>>()
    );
    drop(server);
}

/// TURN port, relay range and metrics port of the dual-stack lab's server.
const DUAL_PORT: u16 = 3613;
const DUAL_RELAY_PORTS: &str = "41200-41249";

fn dual_config(mode: &str) -> String {
    format!(
        "[listen]\nudp = [\"198.18.21.1:{DUAL_PORT}\", \"[2001:db8:21::1]:{DUAL_PORT}\"]\n\
         tcp = []\n\
         [turn]\nrealm = \"offload.test\"\nsecrets = [\"{SECRET}\"]\n\
         [relay]\nips = [\"198.18.22.1\", \"2001:db8:22::1\"]\nports = \"{DUAL_RELAY_PORTS}\"\n\
         [peers]\nallow = [\"198.18.0.0/15\", \"2001:db8::/32\"]\n\
         [admin]\nenabled = false\n\
         [metrics]\nenabled = true\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n\
         [offload]\nmode = \"{mode}\"\n"
    )
}

/// A client of `client_family` relays to a peer of `peer_family` through the dual-stack
/// lab's server (offload on): byte for byte both ways, strangers and the end as in the
/// IPv4 test, the totals exact. Returns the metrics text.
fn dual_stack(client_family: u8, peer_family: u8, mode: &str) -> Option<String> {
    let lab = Lab::dual_stack(&[])?;
    if mode == "xdp" {
        lab.like_nics("srv");
    }
    let server = Server::start_in(&lab.ns("srv"), "srv", &dual_config(mode));
    server.wait_for_log("fast path attached", Duration::from_secs(5));
    let server_addr = match client_family {
        4 => format!("198.18.21.1:{DUAL_PORT}"),
        _ => format!("[2001:db8:21::1]:{DUAL_PORT}"),
    };
    let (peer_ip, stranger_ip) = match peer_family {
        4 => ("198.18.22.2", "198.18.22.3"),
        _ => ("2001:db8:22::2", "2001:db8:22::3"),
    };
    let at = Where {
        lab: &lab,
        client_ns: "cli",
        peer_ns: "peer",
        server: server_addr,
        peer_ip,
        stranger_ip,
    };
    let (_, text) = relay(&at, server);
    Some(text)
}

#[test]
fn ipv6_channel_data_is_relayed_in_the_kernel() {
    let Some(text) = dual_stack(6, 6, "tc") else {
        return;
    };
    assert_eq!(
        offloaded(&text),
        expected(),
        "all in the kernel: {:#?}",
        offload_series(&text)
    );
}

#[test]
fn ipv4_in_the_same_lab_is_relayed_in_the_kernel_too() {
    let Some(text) = dual_stack(4, 4, "tc") else {
        return;
    };
    assert_eq!(offloaded(&text), expected(), "{:#?}", offload_series(&text));
}

/// RFC 6156: an IPv4 client with an IPv6 relayed address, and the reverse: the program
/// changes the IP header's family, and every datagram goes through the kernel.
#[test]
fn relaying_across_families_happens_in_the_kernel() {
    for (client, peer) in [(4, 6), (6, 4)] {
        let Some(text) = dual_stack(client, peer, "tc") else {
            return;
        };
        assert_eq!(
            offloaded(&text),
            expected(),
            "IPv{client} client, IPv{peer} peer: {:#?}",
            offload_series(&text)
        );
    }
}

/// `[offload] mode = "xdp"` in the hairpin lab, whose veths behave like NIC links
/// ([`Lab::like_nics`]): every datagram goes through the XDP program (back out of the
/// interface it came in by, towards the cloud NAT: on a veth by `bpf_redirect` to
/// itself, where a NIC would use `XDP_TX`), with the same totals and
/// accounting as user space. The next hop (the NAT's inside address) is resolved by the
/// time of the ChannelBind: the server answered the client through it.
#[test]
fn xdp_relays_channel_data_in_the_kernel_with_the_same_totals() {
    let Some(text) = all_in_the_kernel_as_in_user_space("xdp") else {
        return;
    };
    assert_eq!(sample(&text, r#"turnpike_offload_mode{mode="xdp"}"#), 1);
}

/// At XDP in the dual-stack lab, IPv6 and across families (the program redirects from
/// one interface to the other): the peers are on a link of their own, which the server
/// has not sent to before the ChannelBind, so a route's first datagrams to the peer may
/// go through user space (`passed{reason="no_neighbour"}`) while the kernel resolves it
/// (asked at once, read back every 20 ms until it is); every datagram is counted once
/// either way, and everything towards the client is relayed at XDP.
#[test]
fn xdp_relays_ipv6_and_across_families() {
    for (client, peer) in [(6, 6), (4, 6), (6, 4)] {
        let Some(text) = dual_stack(client, peer, "xdp") else {
            return;
        };
        let [to_peer, to_peer_bytes, to_client, to_client_bytes] = offloaded(&text);
        let want = expected();
        let context = format!("IPv{client} → IPv{peer}: {:#?}", offload_series(&text));
        assert_eq!(
            [to_client, to_client_bytes],
            [want[2], want[3]],
            "{context}"
        );
        let no_neighbour = sample(
            &text,
            r#"turnpike_offload_passed_total{reason="no_neighbour"}"#,
        );
        assert_eq!(to_peer + no_neighbour, want[0], "{context}");
        assert!(to_peer_bytes <= want[1], "{context}");
        // Resolution takes milliseconds for IPv4 and up to about a second for IPv6
        // here (fresh veths); the last size's datagrams come later than that.
        let last = COUNT * SIZES[SIZES.len() - 1];
        assert!(
            to_peer_bytes >= last,
            "the last size in the kernel: {context}"
        );
    }
}
