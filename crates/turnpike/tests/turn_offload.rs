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

/// The echo peer on the lab's internet router, for at most a minute.
fn echo_peer(lab: &Lab) -> Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.ns("inet"), "python3"])
        .arg(interop("udp_echo.py"))
        .args([&ECHO_PORT.to_string(), "60", STRANGER_IP])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the echo peer");
    let mut line = String::new();
    let stdout = child.stdout.as_mut().expect("piped");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// One sample of the server's `/metrics`, fetched inside its namespace.
fn metrics(lab: &Lab) -> String {
    let script = format!(
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/metrics', timeout=5).read().decode())"
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns("srv"), "python3", "-c", &script]);
    let run = run_bounded(cmd, Duration::from_secs(10));
    assert_eq!(run.status.and_then(|s| s.code()), Some(0), "{}", run.stderr);
    run.stdout
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

/// Runs the client against a server with `[offload] mode`; returns the totals and the
/// metrics text.
fn relay_through(mode: &str) -> Option<(Totals, String)> {
    let lab = Lab::new(1, &[])?;
    let server = Server::start_at(&lab, &lab.sites[0], &config(mode));
    if mode == "tc" {
        server.wait_for_log("fast path attached", Duration::from_secs(5));
    }
    let mut peer = echo_peer(&lab);
    let (user, pass) = rest_credentials(SECRET, "offload", Duration::from_secs(3600));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns("cla"), "python3"])
        .arg(interop("offload_relay.py"))
        .args([PUBLIC, &TURN_PORT.to_string(), &user, &pass, PEER_IP])
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
    let sent = COUNT * SIZES.len() as u64;
    let bytes = COUNT * SIZES.iter().sum::<u64>();
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
    let text = metrics(&lab);
    let relayed = [
        r#"turnpike_relayed_packets_total{direction="to_peer",transport="udp"}"#,
        r#"turnpike_relayed_bytes_total{direction="to_peer",transport="udp"}"#,
        r#"turnpike_relayed_packets_total{direction="to_client",transport="udp"}"#,
        r#"turnpike_relayed_bytes_total{direction="to_client",transport="udp"}"#,
    ]
    .map(|s| sample(&text, s));
    let (to_peer, to_peer_bytes) = (sent + COMMANDS.0, bytes + COMMANDS.1);
    assert_eq!(
        relayed,
        [to_peer, to_peer_bytes, sent, bytes],
        "every datagram once"
    );
    let totals = Totals {
        relayed,
        accounting: accounting.join(" "),
    };
    drop(server);
    Some((totals, text))
}

#[test]
fn channel_data_is_relayed_in_the_kernel_with_the_same_totals_as_in_user_space() {
    let Some((kernel, text)) = relay_through("tc") else {
        return;
    };
    let sent = COUNT * SIZES.len() as u64;
    let bytes = COUNT * SIZES.iter().sum::<u64>();
    assert_eq!(sample(&text, "turnpike_offload_active"), 1);
    let offloaded = [
        r#"turnpike_offload_relayed_packets_total{direction="to_peer"}"#,
        r#"turnpike_offload_relayed_bytes_total{direction="to_peer"}"#,
        r#"turnpike_offload_relayed_packets_total{direction="to_client"}"#,
        r#"turnpike_offload_relayed_bytes_total{direction="to_client"}"#,
    ]
    .map(|s| sample(&text, s));
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("turnpike_offload"))
        .collect();
    let (to_peer, to_peer_bytes) = (sent + COMMANDS.0, bytes + COMMANDS.1);
    assert_eq!(
        offloaded,
        [to_peer, to_peer_bytes, sent, bytes],
        "all in the kernel: {series:#?}"
    );
    assert_eq!(
        sample(&text, "turnpike_offload_routes"),
        0,
        "withdrawn at the end"
    );
    let Some((user, _)) = relay_through("off") else {
        return;
    };
    assert_eq!(
        kernel, user,
        "the same totals and accounting line either way"
    );
}

/// uclient's echo peer port on the lab's internet router.
const UCLIENT_PEER_PORT: u16 = 3612;
/// Datagrams uclient sends (and expects back).
const UCLIENT_MESSAGES: u64 = 200;

#[test]
fn coturn_uclient_relays_over_kernel_channels_with_zero_loss() {
    let Some(lab) = Lab::new(1, &[UCLIENT]) else {
        return;
    };
    let server = Server::start_at(&lab, &lab.sites[0], &config("tc"));
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
    let text = metrics(&lab);
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
