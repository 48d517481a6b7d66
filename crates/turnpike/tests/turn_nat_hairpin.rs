//! Two clients of one server relaying to each other when the server sits behind a 1:1 NAT
//! that does not hairpin (issue 14), in network namespaces (the lab: `nat_lab/mod.rs`).
//!
//! Two kinds of cases:
//! - One home: coturn's `turnutils_uclient -y` (client to client: each of its two
//!   allocations sends to the other's relayed address) in one client namespace, over UDP and
//!   TCP, with channels and with Send indications, and over RFC 6062 TCP relays (`-T`).
//! - Two homes: two clients in two namespaces, each behind its own home NAT (192.168.77.0/24
//!   and 192.168.78.0/24, masquerade fully-random, unsolicited inbound dropped), so that
//!   they reach each other only through the relay. `tests/interop/relay_peer.py` runs in
//!   each; they swap relayed addresses through files in a temporary directory and send 100
//!   numbered datagrams each way: over channels with aioice's TURN client (aioice relays
//!   over channels only), with Send indications with `tests/interop/stdlib_turn.py` (a
//!   minimal stdlib-only client), each over UDP and over TCP to the server.
//!
//! The server relays on 10.99.0.2 and advertises 198.18.0.10 (`external_ip`: the uclient
//! cases write it as a list, `["198.18.0.10/10.99.0.2"]`, the two-homes cases as the one
//! string issue 17 quotes, `"198.18.0.10/10.99.0.2"`). Without the
//! runtime's mapping, allocation A sends to B's relayed address 198.18.0.10:port; the packet
//! leaves for the NAT, which drops what its private side sends to its own public address (a
//! cloud NAT without hairpin) and counts it: 0 datagrams arrive. With it, the packet goes to
//! 10.99.0.2:port and never leaves the server. Each test checks that the lab NAT really drops
//! a hairpinned packet, then that every datagram arrived and none was dropped at the NAT.
//!
//! What the two-homes cases prove, clause by clause of issue 17's "cloud VM":
//! - server behind a 1:1 NAT, `external_ip = "PUBLIC/PRIVATE"`: the lab (`check_no_hairpin`)
//!   and the string form in the server's configuration;
//! - clients behind their own port-randomising NATs that reach each other only through the
//!   relay: each client's server-reflexive address is its own home NAT's public address,
//!   and a datagram sent straight to the other's server-reflexive address is dropped (and
//!   counted) at the other's NAT;
//! - allocations report the public relayed address: `relayed` starts with 198.18.0.10, and
//!   every datagram came from the other's public relayed address;
//! - datagrams both ways over channels and Send indications, UDP and TCP to the server: the
//!   four cases, `DATAGRAMS` each way, all must arrive.
//!
//! Needs root, `ip netns`, `nft`, `turnutils_uclient` and Python 3 with aioice (test.sh
//! installs nftables, coturn and aioice). Without them the tests fail;
//! `TURNPIKE_SKIP_NETNS=1` turns that into a skip.

mod common;
mod interop;
mod nat_lab;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::TempDir;
use interop::{Bounded, Json, rest_credentials, run_bounded};
use nat_lab::{Lab, PRIVATE, PUBLIC, SECRET, Server, Tool, UCLIENT, UclientReport, server_config};

/// TURN port and relay range inside the server namespace of the uclient tests (no other
/// test uses them).
const TURN_PORT: u16 = 3597;
const RELAY_PORTS: &str = "40700-40799";
/// Datagrams each of uclient's two allocations sends to the other.
const MESSAGES: u64 = 200;

/// Runs uclient with `flags` in the client namespace and checks that all `2 x MESSAGES`
/// datagrams arrived, without any packet leaving for the NAT.
fn relay_between_two_clients(flags: &[&str]) {
    let Some((report, context, exit_ok)) = uclient_through_the_nat(ALLOW_PUBLIC, flags) else {
        return;
    };
    assert!(exit_ok, "{context}");
    assert_eq!(report.sent, Some(2 * MESSAGES), "{context}");
    assert_eq!(report.received, report.sent, "{context}");
    assert_eq!(report.lost, Some(0), "{context}");
    // The clients only ever saw the public address.
    assert!(
        !report.relayed.is_empty()
            && report
                .relayed
                .iter()
                .all(|a| a.starts_with(&format!("{PUBLIC}:"))),
        "{context}"
    );
}

/// The `[peers]` section that lets allocations relay to the lab's public addresses.
const ALLOW_PUBLIC: &str = "allow = [\"198.18.0.0/15\"]";

/// One uclient run with `flags` against a fresh server (`peers` as its `[peers]` section) in
/// a fresh lab; fails if any packet was dropped at the NAT as hairpinned. Returns uclient's
/// report, a description for assertions, and whether uclient exited 0 in time; `None` when
/// skipped.
fn uclient_through_the_nat(peers: &str, flags: &[&str]) -> Option<(UclientReport, String, bool)> {
    let lab = Lab::new(1, &[UCLIENT])?;
    lab.check_no_hairpin();
    let server = Server::start(&lab, TURN_PORT, RELAY_PORTS, peers);
    let drops_before = lab.hairpin_drops();
    let (user, pass) = rest_credentials(SECRET, "hairpin", Duration::from_secs(3600));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns("cla"), "turnutils_uclient"])
        .args(flags)
        .args(["-y", "-c", "-v", "-m", "1", "-z", "5", "-l", "100"])
        .args(["-n", &MESSAGES.to_string(), "-u", &user, "-w", &pass])
        .args(["-p", &TURN_PORT.to_string(), PUBLIC]);
    let run = run_bounded(cmd, Duration::from_secs(60));
    let report = UclientReport::parse(&run);
    let drops = lab.hairpin_drops() - drops_before;
    drop(server);
    let tail: Vec<&str> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .rev()
        .take(30)
        .collect();
    let context = format!(
        "uclient {flags:?}: {report:?}, exit {:?}, timed out {}, {drops} packets dropped at \
         the NAT (sent to our own public address)\n{}",
        run.code(),
        run.timed_out,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(drops, 0, "nothing may depend on a NAT hairpin: {context}");
    let exit_ok = !run.timed_out && run.code() == Some(0);
    Some((report, context, exit_ok))
}

#[test]
fn udp_clients_relay_to_each_other_over_channels() {
    relay_between_two_clients(&[]);
}

#[test]
fn udp_clients_relay_to_each_other_with_send_indications() {
    relay_between_two_clients(&["-s"]);
}

#[test]
fn tcp_clients_relay_to_each_other_over_channels() {
    relay_between_two_clients(&["-t"]);
}

#[test]
fn tcp_clients_relay_to_each_other_with_send_indications() {
    relay_between_two_clients(&["-t", "-s"]);
}

/// RFC 6062: each allocation Connects to the other's public relayed address; the relay
/// dials the local one, and the accepting relay reports the public source.
#[test]
fn rfc6062_tcp_relays_connect_to_each_other() {
    relay_between_two_clients(&["-T"]);
}

/// The mapping changes only where datagrams go, never what the core decides: without an
/// `allow` for the public range, the default peer policy refuses our own public address
/// (198.18.0.0/15 is a benchmarking range) and nothing is relayed.
#[test]
fn the_peer_policy_still_judges_the_public_address() {
    let Some((report, context, exit_ok)) = uclient_through_the_nat("deny = []", &[]) else {
        return;
    };
    assert!(
        report.forbidden,
        "ChannelBind to our public address must get 403: {context}"
    );
    assert!(!exit_ok && report.received.unwrap_or(0) == 0, "{context}");
}

/// TURN port and relay range of the two-homes tests (no other test uses them).
const HOMES_TURN_PORT: u16 = 3598;
const HOMES_RELAY_PORTS: &str = "40800-40899";
/// Numbered datagrams each client of the two-homes tests sends to the other.
const DATAGRAMS: u64 = 100;
/// How long one `relay_peer.py` may run (it gives up on its own after about 10 s).
const PEER_LIMIT: Duration = Duration::from_secs(20);

/// aioice, the TURN client of the channel cases (`pip install aioice`).
const AIOICE: Tool = Tool {
    probe: &["python3", "-c", "import aioice"],
    any_exit: false,
    install: "python3 -m pip install aioice==0.13.0",
};

/// What one `relay_peer.py` reported on its last line of output.
#[derive(Debug, Default)]
struct PeerReport {
    relayed: String,
    /// Its server-reflexive address (XOR-MAPPED-ADDRESS), as its TURN client reported it.
    mapped: String,
    peer: String,
    received: u64,
    malformed: u64,
    /// Where the datagrams it received came from, as its TURN client told it.
    sources: Vec<String>,
}

impl PeerReport {
    fn parse(run: &Bounded) -> Option<Self> {
        let json = Json::parse(run.stdout.lines().last()?).ok()?;
        let text = |key: &str| json.at(key).str().map(str::to_owned);
        let count = |key: &str| json.at(key).num().map(|n| n as u64);
        Some(Self {
            relayed: text("relayed")?,
            mapped: text("mapped")?,
            peer: text("peer")?,
            received: count("received")?,
            malformed: count("malformed")?,
            sources: json
                .at("sources")
                .arr()
                .iter()
                .filter_map(|s| s.str().map(str::to_owned))
                .collect(),
        })
    }
}

/// `relay_peer.py` as client `me` (in namespace `cl<me>`), sending to client `other`.
fn relay_peer(
    lab: &Lab,
    dir: &Path,
    me: &str,
    other: &str,
    transport: &str,
    mode: &str,
) -> Command {
    let (user, pass) = rest_credentials(SECRET, me, Duration::from_secs(3600));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/relay_peer.py");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns(&format!("cl{me}")), "python3"])
        .arg(script)
        .args(["--name", me, "--peer", other, "--dir"])
        .arg(dir)
        .args(["--server", &format!("{PUBLIC}:{HOMES_TURN_PORT}")])
        .args(["--transport", transport, "--mode", mode])
        .args([
            "--count",
            &DATAGRAMS.to_string(),
            "--user",
            &user,
            "--password",
            &pass,
        ])
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Two clients, each in its own home, relay `DATAGRAMS` to each other through the server
/// (`transport` to the server: udp or tcp; `mode`: channel or send): every datagram must
/// arrive, from the other's public relayed address, and none may be dropped at the NAT.
fn clients_in_two_homes(transport: &str, mode: &str) {
    let Some(lab) = Lab::new(2, &[AIOICE]) else {
        return;
    };
    lab.check_no_hairpin();
    // The form issue 17 writes: one string, not a list.
    let config = server_config(
        &lab.sites[0],
        HOMES_TURN_PORT,
        HOMES_RELAY_PORTS,
        Some(&format!("\"{PUBLIC}/{PRIVATE}\"")),
        &format!("[peers]\n{ALLOW_PUBLIC}\n[admin]\nenabled = false\n"),
    );
    let server = Server::start_at(&lab, &lab.sites[0], &config);
    let dir = TempDir::new("two-homes");
    let drops_before = lab.hairpin_drops();
    let runs: Vec<Bounded> = std::thread::scope(|s| {
        let started: Vec<_> = [("a", "b"), ("b", "a")]
            .into_iter()
            .map(|(me, other)| {
                let cmd = relay_peer(&lab, &dir.0, me, other, transport, mode);
                s.spawn(move || run_bounded(cmd, PEER_LIMIT))
            })
            .collect();
        started
            .into_iter()
            .map(|h| h.join().expect("relay_peer thread"))
            .collect()
    });
    let drops = lab.hairpin_drops() - drops_before;
    drop(server);
    let reports: Vec<Option<PeerReport>> = runs.iter().map(PeerReport::parse).collect();
    let context = format!(
        "{mode} over {transport}: {drops} packets dropped at the NAT (sent to our own public \
         address)\n{}",
        runs.iter()
            .zip(&reports)
            .zip(["a", "b"])
            .map(|((run, report), me)| format!(
                "client {me}: {report:?}, exit {:?}, timed out {}, {:?}\nstderr: {}",
                run.code(),
                run.timed_out,
                run.elapsed,
                run.stderr.trim()
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(drops, 0, "nothing may depend on a NAT hairpin: {context}");
    let [Some(a), Some(b)] = reports.as_slice() else {
        panic!("a client reported nothing: {context}");
    };
    for (run, me, other, home) in [(&runs[0], a, b, 'a'), (&runs[1], b, a, 'b')] {
        // Behind its own NAT: the server saw the home NAT's public address.
        assert!(
            me.mapped
                .starts_with(&format!("{}:", lab.home_public(home))),
            "client {home}'s server-reflexive address: {context}"
        );
        assert_eq!(
            me.received, DATAGRAMS,
            "every datagram must arrive: {context}"
        );
        assert_eq!(me.malformed, 0, "{context}");
        assert!(!run.timed_out && run.code() == Some(0), "{context}");
        // The clients only ever see the public address: their own, and the other's as
        // the source of everything they received.
        assert!(me.relayed.starts_with(&format!("{PUBLIC}:")), "{context}");
        assert_eq!(me.peer, other.relayed, "{context}");
        assert_eq!(
            me.sources,
            std::slice::from_ref(&other.relayed),
            "{context}"
        );
    }
    // Only through the relay: what one client sends straight to the other's
    // server-reflexive address (its NAT's mapping towards the server) is dropped there.
    for (from, to, report) in [('a', 'b', b), ('b', 'a', a)] {
        let before = lab.unsolicited_drops(to);
        lab.send_udp_from(from, &report.mapped);
        assert_eq!(
            lab.unsolicited_drops(to),
            before + 1,
            "a datagram from client {from} straight to {} must be dropped at home {to}'s \
             NAT: {context}",
            report.mapped
        );
    }
    eprintln!("{context}");
}

#[test]
fn udp_clients_in_two_homes_relay_over_channels() {
    clients_in_two_homes("udp", "channel");
}

#[test]
fn tcp_clients_in_two_homes_relay_over_channels() {
    clients_in_two_homes("tcp", "channel");
}

#[test]
fn udp_clients_in_two_homes_relay_with_send_indications() {
    clients_in_two_homes("udp", "send");
}

#[test]
fn tcp_clients_in_two_homes_relay_with_send_indications() {
    clients_in_two_homes("tcp", "send");
}
