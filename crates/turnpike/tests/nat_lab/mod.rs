//! The network-namespace labs of `turn_nat_hairpin.rs` and `turn_fleet.rs`: TURN servers,
//! each behind a cloud's stateless 1:1 NAT that does not hairpin, and one or two clients,
//! each behind a home NAT of its own.
//!
//! ```text
//!  cla 192.168.77.2 ── hnata (masquerade, drops unsolicited) 198.18.2.2 ─┐
//!  clb 192.168.78.2 ── hnatb (masquerade, drops unsolicited) 198.18.3.2 ─┤ (second home)
//!                                                                         inet (router)
//!  srv 10.99.0.2 ── cnat (stateless 1:1 NAT 198.18.0.10 <-> 10.99.0.2) ───┘
//! ```
//!
//! That is the hairpin lab ([`Lab::new`]). The fleet lab ([`Lab::fleet`]) has the same
//! shape on other addresses (so that nothing can be confused with the hairpin lab's, even
//! in a log): three servers `srva`, `srvb`, `srvc` at 10.98.{0,1,2}.2 behind `cnata`,
//! `cnatb`, `cnatc`, public 198.19.0.{10,20,30}; homes at 192.168.{87,88}.2 behind NATs
//! whose public addresses are 198.19.{10,11}.2.
//!
//! Every namespace is named `tp<pid><n>-<role>` and removed on drop, even when a test fails.
//! The root namespace is never connected. Needs root, `ip netns` and `nft`; without them (or
//! a tool the caller asks for) the lab panics, or with `TURNPIKE_SKIP_NETNS=1` is skipped.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::common::{TempDir, turnpike_bin};
use crate::interop::terminate;

/// The hairpin lab server's advertised ("public") address and the one its relay sockets
/// bind.
pub const PUBLIC: &str = "198.18.0.10";
pub const PRIVATE: &str = "10.99.0.2";
/// The TURN REST secret of every lab server.
pub const SECRET: &str = "hairpin-secret";

/// One server host: namespace `srv<name>` behind its cloud NAT `cnat<name>`.
#[derive(Debug, Clone)]
pub struct Site {
    /// Suffix of the roles: "" for the hairpin lab's one server, "a", "b", "c" in a fleet.
    pub name: &'static str,
    /// The address clients reach it at, mapped 1:1 by the cloud NAT.
    pub public: String,
    /// The server's own address behind the NAT.
    pub private: String,
    /// The /24 between the internet router (`.1`) and the NAT's WAN side (`.2`).
    wan_net: String,
    /// The /24 between the NAT's LAN side (`.1`) and the server (`.2`).
    lan_net: String,
}

impl Site {
    /// The hairpin lab's server.
    fn hairpin() -> Self {
        Self {
            name: "",
            public: PUBLIC.into(),
            private: PRIVATE.into(),
            wan_net: "198.18.1".into(),
            lan_net: "10.99.0".into(),
        }
    }

    /// The `n`th server of the fleet lab.
    fn fleet(name: &'static str, n: u8) -> Self {
        Self {
            name,
            public: format!("198.19.0.{}", 10 * (n + 1)),
            private: format!("10.98.{n}.2"),
            wan_net: format!("198.19.{}", n + 1),
            lan_net: format!("10.98.{n}"),
        }
    }
}

/// One home: client `cl<letter>` on `<lan_net>.2` behind NAT `hnat<letter>`, whose public
/// address is `<wan_net>.2`.
#[derive(Debug, Clone)]
struct Home {
    letter: char,
    lan_net: String,
    wan_net: String,
}

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
    /// The server hosts, in the order built.
    pub sites: Vec<Site>,
    homes: Vec<Home>,
}

impl Lab {
    /// Builds the hairpin lab with `homes` (1 or 2) client namespaces, `cla` and `clb`,
    /// each behind its own home NAT; `None` (after saying so) only with
    /// `TURNPIKE_SKIP_NETNS=1`.
    pub fn new(homes: usize, tools: &[Tool]) -> Option<Self> {
        assert!((1..=2).contains(&homes), "{homes} homes");
        let homes = ['a', 'b']
            .into_iter()
            .zip(0u8..)
            .take(homes)
            .map(|(letter, n)| Home {
                letter,
                lan_net: format!("192.168.{}", 77 + n),
                wan_net: format!("198.18.{}", 2 + n),
            })
            .collect();
        Self::build_all(vec![Site::hairpin()], homes, tools)
    }

    /// Builds the fleet lab: three servers `srva`, `srvb`, `srvc` (see the module doc) and
    /// two homes `cla`, `clb`.
    pub fn fleet(tools: &[Tool]) -> Option<Self> {
        let sites = ["a", "b", "c"]
            .into_iter()
            .zip(0u8..)
            .map(|(name, n)| Site::fleet(name, n))
            .collect();
        let homes = ['a', 'b']
            .into_iter()
            .zip(0u8..)
            .map(|(letter, n)| Home {
                letter,
                lan_net: format!("192.168.{}", 87 + n),
                wan_net: format!("198.19.{}", 10 + n),
            })
            .collect();
        Self::build_all(sites, homes, tools)
    }

    /// The dual-stack lab of the offload tests: client `cli` and peer `peer`, each on a
    /// link of its own to server `srv` (no NAT, no router, forwarding off in `srv`), with
    /// IPv4 and IPv6; the peer has a second address of each family (a stranger):
    ///
    /// ```text
    ///  cli eth0 198.18.21.2, 2001:db8:21::2 ── c0 198.18.21.1, 2001:db8:21::1  srv
    ///  srv p0 198.18.22.1, 2001:db8:22::1 ── eth0 198.18.22.2 (.3), 2001:db8:22::2 (::3) peer
    /// ```
    pub fn dual_stack(tools: &[Tool]) -> Option<Self> {
        let mut lab = Self::empty(tools)?;
        let (cli, srv, peer) = (lab.add("cli"), lab.add("srv"), lab.add("peer"));
        // No duplicate address detection (link-local addresses included), so IPv6
        // neighbours resolve at once, as on hosts whose links came up long ago.
        for ns in [&cli, &srv, &peer] {
            Self::sysctl(
                ns,
                &[
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                ],
            );
        }
        Self::link(&cli, "eth0", &srv, "c0");
        Self::link(&srv, "p0", &peer, "eth0");
        let addresses = [
            (&cli, "eth0", "198.18.21.2/24", "2001:db8:21::2/64"),
            (&srv, "c0", "198.18.21.1/24", "2001:db8:21::1/64"),
            (&srv, "p0", "198.18.22.1/24", "2001:db8:22::1/64"),
            (&peer, "eth0", "198.18.22.2/24", "2001:db8:22::2/64"),
            (&peer, "eth0", "198.18.22.3/24", "2001:db8:22::3/64"),
        ];
        for (ns, dev, v4, v6) in addresses {
            Self::addr(ns, v4, dev);
            ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
        }
        Some(lab)
    }

    /// A lab with no namespaces yet; `None` (after saying so) when it cannot be built and
    /// `TURNPIKE_SKIP_NETNS=1`.
    fn empty(tools: &[Tool]) -> Option<Self> {
        if let Some(why) = missing_tools(tools) {
            if std::env::var("TURNPIKE_SKIP_NETNS").as_deref() == Ok("1") {
                eprintln!("SKIPPED (TURNPIKE_SKIP_NETNS=1): {why}");
                return None;
            }
            panic!(
                "the network namespace test cannot run: {why}; set TURNPIKE_SKIP_NETNS=1 to skip"
            );
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Some(Self {
            prefix: format!(
                "tp{}{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            made: Vec::new(),
            sites: Vec::new(),
            homes: Vec::new(),
        })
    }

    fn build_all(sites: Vec<Site>, homes: Vec<Home>, tools: &[Tool]) -> Option<Self> {
        let mut lab = Self::empty(tools)?;
        lab.sites = sites;
        lab.homes = homes;
        lab.add("inet");
        Self::forward(&lab.ns("inet"));
        for site in lab.sites.clone() {
            lab.build_site(&site);
        }
        for home in lab.homes.clone() {
            lab.build_home(&home);
        }
        Some(lab)
    }

    /// The text of `GET /metrics` from the server namespace's `127.0.0.1:port` (fetched
    /// inside that namespace: the root namespace is never connected).
    pub fn metrics(&self, port: u16) -> String {
        let script = format!(
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).read().decode())"
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns("srv"), "python3", "-c", &script]);
        let run = crate::interop::run_bounded(cmd, Duration::from_secs(10));
        assert_eq!(run.code(), Some(0), "metrics: {}", run.stderr);
        run.stdout
    }

    /// The site named `name` ("" in the hairpin lab, "a", "b", "c" in the fleet).
    pub fn site(&self, name: &str) -> &Site {
        self.sites
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no site {name:?} in this lab"))
    }

    /// The public address of home `letter`'s NAT.
    pub fn home_public(&self, letter: char) -> String {
        let home = self.homes.iter().find(|h| h.letter == letter);
        format!("{}.2", home.expect("a home of this lab").wan_net)
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

    /// Makes every veth outside server namespace `server` behave like a link from a NIC
    /// for an XDP program in it: tx checksum offload off (frames leave with complete UDP
    /// checksums, as on a wire: a veth would hand XDP a partial sum) and GRO on (native
    /// XDP redirect into a veth drops the frame unless its peer has GRO or XDP).
    pub fn like_nics(&self, server: &str) {
        let server = self.ns(server);
        for ns in self.made.iter().filter(|ns| **ns != server) {
            let out = Command::new("ip")
                .args(["-n", ns, "-o", "link", "show", "type", "veth"])
                .output()
                .expect("ip link");
            let list = String::from_utf8_lossy(&out.stdout);
            for dev in list.lines().filter_map(|l| l.split(": ").nth(1)) {
                let dev = dev.split('@').next().unwrap_or(dev);
                run(
                    Command::new("ip").args([
                        "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "gro", "on",
                    ]),
                    None,
                );
            }
        }
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
        Self::sysctl(ns, &["net.ipv4.ip_forward=1"]);
    }

    /// Sets `keys` (`name=value`) in namespace `ns`.
    fn sysctl(ns: &str, keys: &[&str]) {
        run(
            Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw"])
                .args(keys),
            None,
        );
    }

    fn nft(ns: &str, ruleset: &str) {
        run(
            Command::new("ip").args(["netns", "exec", ns, "nft", "-f", "-"]),
            Some(ruleset),
        );
    }

    /// Server host `site` behind its cloud NAT, linked to the internet router.
    fn build_site(&mut self, site: &Site) {
        let inet = self.ns("inet");
        let cnat = self.add(&format!("cnat{}", site.name));
        let srv = self.add(&format!("srv{}", site.name));
        let (public, private) = (&site.public, &site.private);
        let (wan, lan) = (&site.wan_net, &site.lan_net);
        let inet_if = format!("cnat{}", site.name);
        Self::link(&inet, &inet_if, &cnat, "wan");
        Self::link(&cnat, "lan", &srv, "eth0");
        Self::addr(&inet, &format!("{wan}.1/24"), &inet_if);
        Self::route(&inet, &format!("{public}/32"), &format!("{wan}.2"));
        Self::addr(&cnat, &format!("{wan}.2/24"), "wan");
        Self::addr(&cnat, &format!("{lan}.1/24"), "lan");
        Self::route(&cnat, "default", &format!("{wan}.1"));
        Self::addr(&srv, &format!("{private}/24"), "eth0");
        Self::route(&srv, "default", &format!("{lan}.1"));
        Self::forward(&cnat);
        // The cloud's 1:1 NAT, stateless. What the server sends to its own public address is
        // dropped (and counted): this NAT does not hairpin.
        Self::nft(
            &cnat,
            &format!(
                "table ip cloudnat {{
                   counter hairpin_drops {{ }}
                   chain inbound {{ type filter hook prerouting priority raw; policy accept;
                     iifname \"lan\" ip daddr {public} counter name \"hairpin_drops\" drop
                     iifname \"wan\" ip daddr {public} ip daddr set {private}
                   }}
                   chain outbound {{ type filter hook postrouting priority srcnat; policy accept;
                     oifname \"wan\" ip saddr {private} ip saddr set {public}
                   }}
                 }}"
            ),
        );
    }

    /// Home `home`: its client behind its NAT, linked to the internet router.
    fn build_home(&mut self, home: &Home) {
        let inet = self.ns("inet");
        let letter = home.letter;
        let hnat = self.add(&format!("hnat{letter}"));
        let cl = self.add(&format!("cl{letter}"));
        let (lan, wan) = (&home.lan_net, &home.wan_net);
        Self::link(&inet, &format!("hnat{letter}"), &hnat, "wan");
        Self::link(&hnat, "lan", &cl, "eth0");
        Self::addr(&inet, &format!("{wan}.1/24"), &format!("hnat{letter}"));
        Self::addr(&hnat, &format!("{wan}.2/24"), "wan");
        Self::addr(&hnat, &format!("{lan}.1/24"), "lan");
        Self::route(&hnat, "default", &format!("{wan}.1"));
        Self::addr(&cl, &format!("{lan}.2/24"), "eth0");
        Self::route(&cl, "default", &format!("{lan}.1"));
        Self::forward(&hnat);
        // The client's home NAT: random ports, nothing unsolicited gets in. A datagram to
        // the NAT's public address that belongs to no flow its client started is not
        // forwarded but delivered to the NAT itself: it is dropped there, and counted.
        Self::nft(
            &hnat,
            "table ip home {
               counter unsolicited { }
               chain inbound { type filter hook forward priority filter; policy accept;
                 iifname \"wan\" ct state established,related accept
                 iifname \"wan\" counter name \"unsolicited\" drop
               }
               chain local { type filter hook input priority filter; policy accept;
                 iifname \"wan\" ct state established,related accept
                 iifname \"wan\" counter name \"unsolicited\" drop
               }
               chain outbound { type nat hook postrouting priority srcnat;
                 oifname \"wan\" masquerade fully-random
               }
             }",
        );
    }

    /// The packet count of nft counter `name` of table `table` in namespace `role`.
    fn counter(&self, role: &str, table: &str, name: &str) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(role), "nft", "list", "counter"])
            .args(["ip", table, name])
            .output()
            .expect("nft list counter");
        let text = String::from_utf8_lossy(&out.stdout);
        let packets = text
            .split_once("packets ")
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok());
        packets.unwrap_or_else(|| panic!("no packet count in {text:?}"))
    }

    /// Packets the (first) cloud NAT dropped because the server sent them to its own public
    /// address.
    pub fn hairpin_drops(&self) -> u64 {
        self.hairpin_drops_at(&self.sites[0])
    }

    /// [`Self::hairpin_drops`] of `site`'s NAT.
    pub fn hairpin_drops_at(&self, site: &Site) -> u64 {
        self.counter(&format!("cnat{}", site.name), "cloudnat", "hairpin_drops")
    }

    /// Unsolicited packets home `letter`'s NAT dropped.
    pub fn unsolicited_drops(&self, letter: char) -> u64 {
        self.counter(&format!("hnat{letter}"), "home", "unsolicited")
    }

    /// Sends one UDP datagram from client `from`'s namespace to `to` ("ip:port"), as bash's
    /// `/dev/udp` does (a fresh socket, so a fresh NAT mapping).
    pub fn send_udp_from(&self, from: char, to: &str) {
        let (ip, port) = to.rsplit_once(':').expect("ip:port");
        run(
            Command::new("ip").args([
                "netns",
                "exec",
                &self.ns(&format!("cl{from}")),
                "bash",
                "-c",
                &format!("echo direct > /dev/udp/{ip}/{port}"),
            ]),
            None,
        );
    }

    /// Proves the lab is what it claims: a datagram from each server namespace to its own
    /// public address (bash's `/dev/udp`) is dropped at its NAT, not reflected.
    pub fn check_no_hairpin(&self) {
        for site in &self.sites {
            let before = self.hairpin_drops_at(site);
            run(
                Command::new("ip").args([
                    "netns",
                    "exec",
                    &self.ns(&format!("srv{}", site.name)),
                    "bash",
                    "-c",
                    &format!("echo probe > /dev/udp/{}/40999", site.public),
                ]),
                None,
            );
            let after = self.hairpin_drops_at(site);
            assert_eq!(
                after,
                before + 1,
                "the lab NAT of srv{} must drop a hairpinned datagram",
                site.name
            );
        }
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

/// turnpike in a server namespace, stopped by its PID on drop (`ip netns exec` execs it,
/// so the child's PID is turnpike's).
pub struct Server {
    child: Child,
    /// Its configuration file (for `turnpike -c FILE ctl ...` in its namespace).
    pub config: std::path::PathBuf,
    /// Its log lines (stderr), also echoed to the test's stderr.
    logs: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

/// The configuration of a lab server at `site`: UDP and TCP listeners on
/// `PRIVATE:turn_port`, relaying on `relay_ports` ("first-last") of `PRIVATE` advertised as
/// `PUBLIC` by `external_ip` (written as `external_ip`, e.g. `"\"P/Q\""` or
/// `"[\"P/Q\"]"`, or `None` for the list form), then `rest` (other sections).
pub fn server_config(
    site: &Site,
    turn_port: u16,
    relay_ports: &str,
    external_ip: Option<&str>,
    rest: &str,
) -> String {
    let (public, private) = (&site.public, &site.private);
    let external = external_ip.map_or_else(|| format!("[\"{public}/{private}\"]"), str::to_owned);
    format!(
        "[listen]\nudp = [\"{private}:{turn_port}\"]\ntcp = [\"{private}:{turn_port}\"]\n\
         [turn]\nrealm = \"hairpin.test\"\nsecrets = [\"{SECRET}\"]\n\
         [relay]\nips = [\"{private}\"]\nports = \"{relay_ports}\"\nexternal_ip = {external}\n\
         [metrics]\nenabled = false\n{rest}\n"
    )
}

impl Server {
    /// Starts turnpike in the hairpin lab's server namespace with [`server_config`] (the
    /// list form of `external_ip`), `peers` as its `[peers]` section and no admin API.
    pub fn start(lab: &Lab, turn_port: u16, relay_ports: &str, peers: &str) -> Self {
        let site = &lab.sites[0];
        let rest = format!("[peers]\n{peers}\n[admin]\nenabled = false\n");
        Self::start_at(
            lab,
            site,
            &server_config(site, turn_port, relay_ports, None, &rest),
        )
    }

    /// Starts turnpike on `config` in `site`'s server namespace and waits until it is
    /// ready.
    pub fn start_at(lab: &Lab, site: &Site, config: &str) -> Self {
        let ns = lab.ns(&format!("srv{}", site.name));
        Self::start_in(&ns, &format!("srv{}", site.name), config)
    }

    /// Starts turnpike on `config` in namespace `ns` (log lines tagged `tag`) and waits
    /// until it is ready.
    pub fn start_in(ns: &str, tag: &str, config: &str) -> Self {
        let dir = TempDir::new(&format!("lab-{tag}"));
        let path = dir.0.join("turnserver.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args([turnpike_bin(), "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start turnpike");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (sink, tag) = (Arc::clone(&logs), tag.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            config: path,
            logs,
            _dir: dir,
        };
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

    /// The process id (turnpike's: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a log line contains `needle`; panics after `within`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.count_logs(needle) > 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {needle:?} within {within:?}");
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many log lines contain `needle`.
    pub fn count_logs(&self, needle: &str) -> usize {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits up to `within` for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// coturn's client, which prints its usage and exits non-zero when asked for help.
pub const UCLIENT: Tool = Tool {
    probe: &["turnutils_uclient", "-h"],
    any_exit: true,
    install: "apt-get install -y coturn",
};

/// What one uclient run reported.
#[derive(Debug, Default)]
pub struct UclientReport {
    pub sent: Option<u64>,
    pub received: Option<u64>,
    pub lost: Option<u64>,
    pub relayed: Vec<String>,
    /// `channel bind: error 403`: the peer policy refused the peer.
    pub forbidden: bool,
}

impl UclientReport {
    pub fn parse(run: &crate::interop::Bounded) -> Self {
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
