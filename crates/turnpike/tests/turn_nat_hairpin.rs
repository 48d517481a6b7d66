//! Two clients of one server relaying to each other when the server sits behind a 1:1 NAT
//! that does not hairpin (issue 14): built in network namespaces, driven by coturn's
//! `turnutils_uclient -y` (client to client: each of its two allocations sends to the other's
//! relayed address), over UDP and TCP, with channels and with Send indications, and over RFC
//! 6062 TCP relays (`-T`).
//!
//! The lab (every namespace named `tp<pid><n>-<role>`, removed on drop even when a test fails):
//!
//! ```text
//!  cla 192.168.77.2 ── hnata (masquerade, drops unsolicited) 198.18.2.2 ─┐
//!                                                                         inet (router)
//!  srv 10.99.0.2 ── cnat (stateless 1:1 NAT 198.18.0.10 <-> 10.99.0.2) ───┘
//! ```
//!
//! The server relays on 10.99.0.2 and advertises 198.18.0.10 (`external_ip`). Without the
//! runtime's mapping, allocation A sends to B's relayed address 198.18.0.10:port; the packet
//! leaves for the NAT, which drops what its private side sends to its own public address (a
//! cloud NAT without hairpin) and counts it: 0 datagrams arrive. With it, the packet goes to
//! 10.99.0.2:port and never leaves the server. Each test checks that the lab NAT really drops
//! a hairpinned packet, then that every datagram arrived and none was dropped at the NAT.
//!
//! Needs root, `ip netns`, `nft` and `turnutils_uclient` (test.sh installs nftables and
//! coturn). Without them the tests fail; `TURNPIKE_SKIP_NETNS=1` turns that into a skip.

mod common;
mod interop;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TempDir, turnpike_bin};
use interop::{Bounded, rest_credentials, run_bounded, terminate};

/// The server's advertised ("public") address and the one its relay sockets bind.
const PUBLIC: &str = "198.18.0.10";
const PRIVATE: &str = "10.99.0.2";
/// TURN port and relay range inside the server namespace (no other test uses them).
const TURN_PORT: u16 = 3597;
const RELAY_PORTS: &str = "40700-40799";
const SECRET: &str = "hairpin-secret";
/// Datagrams each of uclient's two allocations sends to the other.
const MESSAGES: u64 = 200;

/// Runs a command to completion; its failure is the test's.
fn run(cmd: &mut Command, stdin: Option<&str>) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args), None);
}

/// Why the lab cannot be built here, if it cannot.
fn missing_tools() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    for (tool, arg) in [
        ("ip", "netns"),
        ("nft", "--version"),
        ("turnutils_uclient", "-h"),
    ] {
        let ok = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            // uclient prints its usage and exits non-zero: being found is enough.
            .is_ok_and(|s| s.success() || tool == "turnutils_uclient");
        if !ok {
            return Some(format!(
                "`{tool} {arg}` unavailable (apt-get install -y iproute2 nftables coturn)"
            ));
        }
    }
    None
}

/// The namespaces of one test, deleted on drop.
struct Lab {
    prefix: String,
    made: Vec<String>,
}

impl Lab {
    /// Builds the lab; `None` (after saying so) only with `TURNPIKE_SKIP_NETNS=1`.
    fn new() -> Option<Self> {
        if let Some(why) = missing_tools() {
            if std::env::var("TURNPIKE_SKIP_NETNS").as_deref() == Ok("1") {
                eprintln!("SKIPPED (TURNPIKE_SKIP_NETNS=1): {why}");
                return None;
            }
            panic!("the NAT hairpin test cannot run: {why}; set TURNPIKE_SKIP_NETNS=1 to skip");
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut lab = Self {
            prefix: format!(
                "tp{}{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            made: Vec::new(),
        };
        lab.build();
        Some(lab)
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn add(&mut self, role: &str) -> String {
        let name = self.ns(role);
        ip(&["netns", "add", &name]);
        self.made.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair from `a`'s interface `a_if` to `b`'s `b_if`; never in the root namespace.
    fn link(a: &str, a_if: &str, b: &str, b_if: &str) {
        ip(&[
            "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        ip(&["-n", a, "link", "set", a_if, "up"]);
        ip(&["-n", b, "link", "set", b_if, "up"]);
    }

    fn nft(ns: &str, ruleset: &str) {
        run(
            Command::new("ip").args(["netns", "exec", ns, "nft", "-f", "-"]),
            Some(ruleset),
        );
    }

    fn build(&mut self) {
        let inet = self.add("inet");
        let cnat = self.add("cnat");
        let srv = self.add("srv");
        let hnat = self.add("hnata");
        let cla = self.add("cla");
        Self::link(&inet, "cnat", &cnat, "wan");
        Self::link(&cnat, "lan", &srv, "eth0");
        Self::link(&inet, "hnat", &hnat, "wan");
        Self::link(&hnat, "lan", &cla, "eth0");
        let addr =
            |ns: &str, cidr: &str, dev: &str| ip(&["-n", ns, "addr", "add", cidr, "dev", dev]);
        let route = |ns: &str, to: &str, via: &str| ip(&["-n", ns, "route", "add", to, "via", via]);
        addr(&inet, "198.18.1.1/24", "cnat");
        addr(&inet, "198.18.2.1/24", "hnat");
        route(&inet, &format!("{PUBLIC}/32"), "198.18.1.2");
        addr(&cnat, "198.18.1.2/24", "wan");
        addr(&cnat, "10.99.0.1/24", "lan");
        route(&cnat, "default", "198.18.1.1");
        addr(&srv, &format!("{PRIVATE}/24"), "eth0");
        route(&srv, "default", "10.99.0.1");
        addr(&hnat, "198.18.2.2/24", "wan");
        addr(&hnat, "192.168.77.1/24", "lan");
        route(&hnat, "default", "198.18.2.1");
        addr(&cla, "192.168.77.2/24", "eth0");
        route(&cla, "default", "192.168.77.1");
        for ns in [&inet, &cnat, &hnat] {
            run(
                Command::new("ip").args([
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ]),
                None,
            );
        }
        // The cloud's 1:1 NAT, stateless. What the server sends to its own public address is
        // dropped (and counted): this NAT does not hairpin.
        Self::nft(
            &cnat,
            &format!(
                "table ip cloudnat {{
                   counter hairpin_drops {{ }}
                   chain inbound {{ type filter hook prerouting priority raw; policy accept;
                     iifname \"lan\" ip daddr {PUBLIC} counter name \"hairpin_drops\" drop
                     iifname \"wan\" ip daddr {PUBLIC} ip daddr set {PRIVATE}
                   }}
                   chain outbound {{ type filter hook postrouting priority srcnat; policy accept;
                     oifname \"wan\" ip saddr {PRIVATE} ip saddr set {PUBLIC}
                   }}
                 }}"
            ),
        );
        // The client's home NAT: random ports, nothing unsolicited gets in.
        Self::nft(
            &hnat,
            "table ip home {
               chain inbound { type filter hook forward priority filter; policy accept;
                 iifname \"wan\" ct state established,related accept
                 iifname \"wan\" drop
               }
               chain outbound { type nat hook postrouting priority srcnat;
                 oifname \"wan\" masquerade fully-random
               }
             }",
        );
    }

    /// Packets the cloud NAT dropped because the server sent them to its own public address.
    fn hairpin_drops(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("cnat"),
                "nft",
                "list",
                "counter",
                "ip",
                "cloudnat",
                "hairpin_drops",
            ])
            .output()
            .expect("nft list counter");
        let text = String::from_utf8_lossy(&out.stdout);
        let packets = text
            .split_once("packets ")
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok());
        packets.unwrap_or_else(|| panic!("no packet count in {text:?}"))
    }

    /// Proves the lab is what it claims: a datagram from the server namespace to the public
    /// address (bash's `/dev/udp`) is dropped at the NAT, not reflected.
    fn check_no_hairpin(&self) {
        let before = self.hairpin_drops();
        run(
            Command::new("ip").args([
                "netns",
                "exec",
                &self.ns("srv"),
                "bash",
                "-c",
                &format!("echo probe > /dev/udp/{PUBLIC}/40999"),
            ]),
            None,
        );
        let after = self.hairpin_drops();
        assert_eq!(
            after,
            before + 1,
            "the lab NAT must drop a hairpinned datagram"
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// turnpike in the server namespace, stopped by its PID on drop (`ip netns exec` execs it,
/// so the child's PID is turnpike's).
struct Server {
    child: Child,
    _dir: TempDir,
}

impl Server {
    /// Starts turnpike with `peers` as its `[peers]` section.
    fn start(lab: &Lab, peers: &str) -> Self {
        let dir = TempDir::new("hairpin");
        let config = dir.0.join("turnserver.toml");
        std::fs::write(
            &config,
            format!(
                "[listen]\nudp = [\"{PRIVATE}:{TURN_PORT}\"]\ntcp = [\"{PRIVATE}:{TURN_PORT}\"]\n\
                 [turn]\nrealm = \"hairpin.test\"\nsecrets = [\"{SECRET}\"]\n\
                 [relay]\nips = [\"{PRIVATE}\"]\nports = \"{RELAY_PORTS}\"\n\
                 external_ip = [\"{PUBLIC}/{PRIVATE}\"]\n\
                 [peers]\n{peers}\n"
            ),
        )
        .expect("write config");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.ns("srv"), turnpike_bin(), "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start turnpike");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self { child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => return server,
                Ok(_) => {}
                Err(_) => {
                    let status = terminate(&mut server.child, Duration::from_secs(2));
                    panic!("turnpike did not get ready in its namespace ({status:?})");
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// What one uclient run reported.
#[derive(Debug, Default)]
struct Report {
    sent: Option<u64>,
    received: Option<u64>,
    lost: Option<u64>,
    relayed: Vec<String>,
    /// `channel bind: error 403`: the peer policy refused the peer.
    forbidden: bool,
}

impl Report {
    fn parse(run: &Bounded) -> Self {
        let mut r = Self::default();
        for raw in run.stdout.lines().chain(run.stderr.lines()) {
            let line = raw.split_once(": : ").map_or(raw, |(_, m)| m).trim();
            if let Some(rest) = line.strip_prefix("start_mclient: tot_send_msgs=") {
                // The summary line: "tot_send_msgs=S, tot_recv_msgs=R".
                let mut numbers = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty());
                r.sent = numbers.next().and_then(|s| s.parse().ok());
                r.received = numbers.next().and_then(|s| s.parse().ok());
            } else if let Some(rest) = line.strip_prefix("Total lost packets ") {
                r.lost = rest.split_whitespace().next().and_then(|s| s.parse().ok());
            } else if let Some((_, addr)) = line.split_once("Received relay addr: ") {
                r.relayed.push(addr.trim().to_owned());
            } else if line.starts_with("channel bind: error 403") {
                r.forbidden = true;
            }
        }
        r
    }
}

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
fn uclient_through_the_nat(peers: &str, flags: &[&str]) -> Option<(Report, String, bool)> {
    let lab = Lab::new()?;
    lab.check_no_hairpin();
    let server = Server::start(&lab, peers);
    let drops_before = lab.hairpin_drops();
    let (user, pass) = rest_credentials(SECRET, "hairpin", Duration::from_secs(3600));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns("cla"), "turnutils_uclient"])
        .args(flags)
        .args(["-y", "-c", "-v", "-m", "1", "-z", "5", "-l", "100"])
        .args(["-n", &MESSAGES.to_string(), "-u", &user, "-w", &pass])
        .args(["-p", &TURN_PORT.to_string(), PUBLIC]);
    let run = run_bounded(cmd, Duration::from_secs(60));
    let report = Report::parse(&run);
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
