//! The network-namespace lab of `turn_nat_hairpin.rs`: a TURN server behind a cloud's
//! stateless 1:1 NAT that does not hairpin, and one or two clients, each behind a home NAT
//! of its own.
//!
//! ```text
//!  cla 192.168.77.2 ── hnata (masquerade, drops unsolicited) 198.18.2.2 ─┐
//!  clb 192.168.78.2 ── hnatb (masquerade, drops unsolicited) 198.18.3.2 ─┤ (second home)
//!                                                                         inet (router)
//!  srv 10.99.0.2 ── cnat (stateless 1:1 NAT 198.18.0.10 <-> 10.99.0.2) ───┘
//! ```
//!
//! Every namespace is named `tp<pid><n>-<role>` and removed on drop, even when a test fails.
//! The root namespace is never connected. Needs root, `ip netns` and `nft`; without them (or
//! a tool the caller asks for) the lab panics, or with `TURNPIKE_SKIP_NETNS=1` is skipped.
#![allow(unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{TempDir, turnpike_bin};
use crate::interop::terminate;

/// The server's advertised ("public") address and the one its relay sockets bind.
pub const PUBLIC: &str = "198.18.0.10";
pub const PRIVATE: &str = "10.99.0.2";
/// The TURN REST secret of every lab server.
pub const SECRET: &str = "hairpin-secret";

/// A program a test needs besides the lab's own, checked before the lab is built.
pub struct Tool {
    /// The command line that proves it is there.
    pub probe: &'static [&'static str],
    /// Whether being found is enough (a program that prints its usage and exits non-zero).
    pub any_exit: bool,
    /// How to get it, for the failure message.
    pub install: &'static str,
}

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

/// Why the lab (with `tools`) cannot be built here, if it cannot.
fn missing_tools(tools: &[Tool]) -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    let lab = [
        Tool {
            probe: &["ip", "netns"],
            any_exit: false,
            install: "apt-get install -y iproute2",
        },
        Tool {
            probe: &["nft", "--version"],
            any_exit: false,
            install: "apt-get install -y nftables",
        },
    ];
    for tool in lab.iter().chain(tools) {
        let ok = Command::new(tool.probe[0])
            .args(&tool.probe[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success() || tool.any_exit);
        if !ok {
            return Some(format!(
                "`{}` unavailable ({}; ./test.sh installs it)",
                tool.probe.join(" "),
                tool.install
            ));
        }
    }
    None
}

/// The namespaces of one test, deleted on drop.
pub struct Lab {
    prefix: String,
    made: Vec<String>,
}

impl Lab {
    /// Builds the lab with `homes` (1 or 2) client namespaces, `cla` and `clb`, each behind
    /// its own home NAT; `None` (after saying so) only with `TURNPIKE_SKIP_NETNS=1`.
    pub fn new(homes: usize, tools: &[Tool]) -> Option<Self> {
        assert!((1..=2).contains(&homes), "{homes} homes");
        if let Some(why) = missing_tools(tools) {
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
        for (letter, n) in ['a', 'b'].into_iter().zip(0u8..).take(homes) {
            lab.build_home(letter, n);
        }
        Some(lab)
    }

    /// The full name of the namespace playing `role` (`srv`, `cla`, `clb`, ...).
    pub fn ns(&self, role: &str) -> String {
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

    fn addr(ns: &str, cidr: &str, dev: &str) {
        ip(&["-n", ns, "addr", "add", cidr, "dev", dev]);
    }

    fn route(ns: &str, to: &str, via: &str) {
        ip(&["-n", ns, "route", "add", to, "via", via]);
    }

    fn forward(ns: &str) {
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

    fn nft(ns: &str, ruleset: &str) {
        run(
            Command::new("ip").args(["netns", "exec", ns, "nft", "-f", "-"]),
            Some(ruleset),
        );
    }

    /// The internet router and the server behind its cloud NAT.
    fn build(&mut self) {
        let inet = self.add("inet");
        let cnat = self.add("cnat");
        let srv = self.add("srv");
        Self::link(&inet, "cnat", &cnat, "wan");
        Self::link(&cnat, "lan", &srv, "eth0");
        Self::addr(&inet, "198.18.1.1/24", "cnat");
        Self::route(&inet, &format!("{PUBLIC}/32"), "198.18.1.2");
        Self::addr(&cnat, "198.18.1.2/24", "wan");
        Self::addr(&cnat, "10.99.0.1/24", "lan");
        Self::route(&cnat, "default", "198.18.1.1");
        Self::addr(&srv, &format!("{PRIVATE}/24"), "eth0");
        Self::route(&srv, "default", "10.99.0.1");
        Self::forward(&inet);
        Self::forward(&cnat);
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
    }

    /// Home `letter` (the `n`th): client `cl<letter>` at 192.168.(77+n).2 behind NAT
    /// `hnat<letter>`, whose public address is 198.18.(2+n).2.
    fn build_home(&mut self, letter: char, n: u8) {
        let inet = self.ns("inet");
        let hnat = self.add(&format!("hnat{letter}"));
        let cl = self.add(&format!("cl{letter}"));
        let (lan, wan) = (77 + n, 2 + n);
        Self::link(&inet, &format!("hnat{letter}"), &hnat, "wan");
        Self::link(&hnat, "lan", &cl, "eth0");
        Self::addr(
            &inet,
            &format!("198.18.{wan}.1/24"),
            &format!("hnat{letter}"),
        );
        Self::addr(&hnat, &format!("198.18.{wan}.2/24"), "wan");
        Self::addr(&hnat, &format!("192.168.{lan}.1/24"), "lan");
        Self::route(&hnat, "default", &format!("198.18.{wan}.1"));
        Self::addr(&cl, &format!("192.168.{lan}.2/24"), "eth0");
        Self::route(&cl, "default", &format!("192.168.{lan}.1"));
        Self::forward(&hnat);
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
    pub fn hairpin_drops(&self) -> u64 {
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
    pub fn check_no_hairpin(&self) {
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
pub struct Server {
    child: Child,
    _dir: TempDir,
}

impl Server {
    /// Starts turnpike listening on UDP and TCP `PRIVATE:turn_port`, relaying on
    /// `relay_ports` ("first-last") of `PRIVATE` advertised as `PUBLIC`, with `peers` as its
    /// `[peers]` section.
    pub fn start(lab: &Lab, turn_port: u16, relay_ports: &str, peers: &str) -> Self {
        let dir = TempDir::new("hairpin");
        let config = dir.0.join("turnserver.toml");
        std::fs::write(
            &config,
            format!(
                "[listen]\nudp = [\"{PRIVATE}:{turn_port}\"]\ntcp = [\"{PRIVATE}:{turn_port}\"]\n\
                 [turn]\nrealm = \"hairpin.test\"\nsecrets = [\"{SECRET}\"]\n\
                 [relay]\nips = [\"{PRIVATE}\"]\nports = \"{relay_ports}\"\n\
                 external_ip = [\"{PUBLIC}/{PRIVATE}\"]\n\
                 [peers]\n{peers}\n\
                 [admin]\nenabled = false\n[metrics]\nenabled = false\n"
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
