//! A fleet of three turnpike servers, each a cloud VM in a network namespace of its own
//! behind its own 1:1 NAT (issue 17; the lab: `nat_lab/mod.rs`, [`Lab::fleet`]), sharing
//! one TURN REST secret, each with `[alternates]` naming the other two by public address.
//!
//! Why behind NATs rather than on the "internet" bridge: that is how cloud VMs are reached
//! (a private address, the public one mapped in front), so the alternates an operator
//! writes are public addresses the servers cannot see on their own interfaces, and relaying
//! between two servers of the fleet crosses two 1:1 NATs and the internet router.
//!
//! One test, in steps (a fleet costs ten namespaces and three servers; building it once
//! keeps the test near a minute):
//! - (a) one credential, minted once with `turnpike credentials`, allocates on each of the
//!   three from a client namespace (`stdlib_turn.py`), and each reports its own public
//!   relayed address;
//! - (b) a call: two clients in two homes (aioice, channels) relay numbered datagrams to
//!   each other through server A, every 10 ms, until the test ends the call. Mid-call the
//!   operator drains A as documented, `turnpike ctl drain` inside A's namespace (the admin
//!   API on A's loopback). Every datagram of the call must arrive, hundreds of them after
//!   the drain;
//! - (c) while the call goes on: a new Allocate to A is answered 300 with an
//!   ALTERNATE-SERVER that is B's or C's public address, and clients that follow it
//!   allocate there and relay: two `stdlib_turn.py` clients (`relay_peer.py
//!   --follow-alternate`, Send indications) in the two homes relay 100 datagrams each way;
//! - at last the call ends, the last allocation on A with it, and A exits by itself.
//!
//! The real client that follows 300 is headless Chromium; with it the redirect fails today
//! (the ignored test below says why), so the follower here is our `stdlib_turn.py`.
//!
//! Needs root, `ip netns`, `nft`, Python 3 with aioice (and for the ignored test node with
//! playwright-core and Debian's chromium); test.sh installs them. Without them the tests
//! fail; `TURNPIKE_SKIP_NETNS=1` turns that into a skip.

mod common;
mod interop;
mod nat_lab;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TempDir, turnpike_bin};
use interop::{Bounded, Json, run_bounded};
use nat_lab::{Lab, SECRET, Server, Site, Tool, server_config};

/// TURN port of every fleet server (in its own namespace; no other test uses it).
const TURN_PORT: u16 = 3600;
/// Relay ranges of servers a, b and c (distinct, to tell them apart in a log).
const RELAY_PORTS: [&str; 3] = ["40900-40929", "40930-40959", "40960-40989"];
/// The admin token of every fleet server; their admin APIs listen on their own loopback.
const ADMIN_TOKEN: &str = "fleet-admin-token";
/// The call's pace: one datagram each way every 10 ms.
const CALL_PACE: &str = "0.01";
/// How long the call may last at most (the test ends it much sooner).
const CALL_LIMIT: Duration = Duration::from_secs(120);
/// Datagrams each redirected client sends to the other.
const FOLLOWER_DATAGRAMS: u64 = 100;

const AIOICE: Tool = Tool {
    probe: &["python3", "-c", "import aioice"],
    any_exit: false,
    install: "python3 -m pip install aioice==0.13.0",
};

const NODE: Tool = Tool {
    probe: &["node", "--version"],
    any_exit: false,
    install: "apt-get install -y nodejs, then npm ci in tests/interop",
};

const CHROMIUM: Tool = Tool {
    probe: &["/usr/bin/chromium", "--version"],
    any_exit: false,
    install: "apt-get install -y chromium",
};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Runs `npm ci` in `tests/interop` if playwright-core is missing (as turn_browser.rs does;
/// it drives Debian's Chromium and downloads no browser).
fn ensure_playwright() {
    let dir = interop_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    let run = run_bounded(npm, Duration::from_secs(300));
    assert!(
        run.code() == Some(0),
        "npm ci in {}: {}{}",
        dir.display(),
        run.stdout,
        run.stderr
    );
}

/// Writes a file when dropped: ends the call even when a step of the test fails.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, b"");
    }
}

/// The configuration of server `site`: the shared secret, peers at the fleet's public
/// addresses allowed (servers relay to each other's relayed addresses), the two others as
/// alternates, the admin API on its loopback.
fn fleet_config(lab: &Lab, site: &Site, relay_ports: &str) -> String {
    let siblings: Vec<String> = lab
        .sites
        .iter()
        .filter(|s| s.name != site.name)
        .map(|s| format!("\"{}:{TURN_PORT}\"", s.public))
        .collect();
    let siblings = siblings.join(", ");
    let rest = format!(
        "[peers]\nallow = [\"198.19.0.0/24\"]\n\
         [alternates]\nudp = [{siblings}]\ntcp = [{siblings}]\n\
         [admin]\nenabled = true\nlisten = \"127.0.0.1:5766\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [drain]\ndeadline_secs = 300\n"
    );
    server_config(site, TURN_PORT, relay_ports, None, &rest)
}

/// Mints one REST credential with `turnpike credentials` (the fleet's shared secret).
fn mint_credential() -> (String, String) {
    let out = Command::new(turnpike_bin())
        .args(["credentials", "--secret", SECRET, "--user", "fleet-call"])
        .args(["--ttl", "1h", "--host", "198.19.0.10"])
        .output()
        .expect("run turnpike credentials");
    assert!(out.status.success(), "turnpike credentials: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name:?} in {text}"))
    };
    (field("username:"), field("password:"))
}

/// One Allocate with `stdlib_turn.py` from client `home` to `server`; the relayed address.
fn allocate_once(lab: &Lab, home: char, server: &str, cred: &(String, String)) -> String {
    let script = "import sys; sys.path.insert(0, sys.argv[1]); import stdlib_turn\n\
                  h, p = sys.argv[2].rsplit(':', 1)\n\
                  c = stdlib_turn.Client((h, int(p)), 'udp', sys.argv[3], sys.argv[4])\n\
                  r = c.allocate()\n\
                  c.close()\n\
                  print(f'{r[0]}:{r[1]}')";
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &lab.ns(&format!("cl{home}")),
        "python3",
        "-c",
    ])
    .arg(script)
    .arg(interop_dir())
    .args([server, &cred.0, &cred.1])
    .env("PYTHONDONTWRITEBYTECODE", "1");
    let run = run_bounded(cmd, Duration::from_secs(20));
    assert!(
        run.code() == Some(0),
        "Allocate at {server}: {}{}",
        run.stdout,
        run.stderr
    );
    run.stdout.trim().to_owned()
}

/// `relay_peer.py` as client `me` in home `home`, relaying to client `other`.
fn relay_peer(
    lab: &Lab,
    home: char,
    (me, other): (&str, &str),
    dir: &Path,
    server: &str,
    cred: &(String, String),
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns(&format!("cl{home}")), "python3"])
        .arg(interop_dir().join("relay_peer.py"))
        .args(["--name", me, "--peer", other, "--dir"])
        .arg(dir)
        .args(["--server", server, "--transport", "udp"])
        .args(["--user", &cred.0, "--password", &cred.1])
        .args(extra)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// The JSON of a script's last line of output.
fn last_json(run: &Bounded) -> Json {
    let line = run.stdout.lines().last().unwrap_or_default();
    Json::parse(line).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): exit {:?}, timed out {}\nstdout: {}\nstderr: {}",
            run.code(),
            run.timed_out,
            run.stdout,
            run.stderr
        )
    })
}

fn text(json: &Json, path: &str) -> String {
    json.at(path).str().unwrap_or_default().to_owned()
}

fn count(json: &Json, path: &str) -> u64 {
    json.at(path).num().map_or(0, |n| n as u64)
}

/// Waits until every path exists; panics after `within`.
fn wait_for_files(paths: &[PathBuf], within: Duration) {
    let deadline = Instant::now() + within;
    while !paths.iter().all(|p| p.exists()) {
        assert!(Instant::now() < deadline, "none of {paths:?} in {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two clients that follow A's 300 to a sibling and relay to each other there; checks
/// their reports.
fn followers_relay_on_siblings(lab: &Lab, a: &str, siblings: &[String], cred: &(String, String)) {
    let dir = TempDir::new("fleet-followers");
    let n = FOLLOWER_DATAGRAMS.to_string();
    let extra = ["--mode", "send", "--follow-alternate", "--count", &n];
    let runs: Vec<Bounded> = std::thread::scope(|s| {
        let started: Vec<_> = [('a', ("f", "g")), ('b', ("g", "f"))]
            .into_iter()
            .map(|(home, names)| {
                let cmd = relay_peer(lab, home, names, &dir.0, a, cred, &extra);
                s.spawn(move || run_bounded(cmd, Duration::from_secs(30)))
            })
            .collect();
        started
            .into_iter()
            .map(|h| h.join().expect("follower thread"))
            .collect()
    });
    let reports: Vec<Json> = runs.iter().map(last_json).collect();
    let context = format!(
        "followers: {:?}\nstderr: {}\n{}",
        reports,
        runs[0].stderr.trim(),
        runs[1].stderr.trim()
    );
    for (run, me, other) in [
        (&runs[0], &reports[0], &reports[1]),
        (&runs[1], &reports[1], &reports[0]),
    ] {
        assert_eq!(text(me, "redirected_from"), a, "sent away by A: {context}");
        let server = text(me, "server");
        assert!(siblings.contains(&server), "to a sibling: {context}");
        // Allocated there: the relayed address is that sibling's public address.
        let ip = server
            .rsplit_once(':')
            .map(|(ip, _)| ip)
            .unwrap_or_default();
        assert!(
            text(me, "relayed").starts_with(&format!("{ip}:")),
            "{context}"
        );
        assert_eq!(count(me, "received"), FOLLOWER_DATAGRAMS, "{context}");
        assert_eq!(count(me, "malformed"), 0, "{context}");
        assert_eq!(text(me, "peer"), text(other, "relayed"), "{context}");
        assert!(run.code() == Some(0) && !run.timed_out, "{context}");
    }
    eprintln!("{context}");
}

/// Headless Chromium in home a, given only A's URL: it must follow the 300 and relay on
/// the siblings. Returns the two selected local relay candidates.
fn chromium_follows_to_siblings(lab: &Lab, a: &str, cred: &(String, String)) -> Vec<String> {
    let mut node = Command::new("ip");
    node.args(["netns", "exec", &lab.ns("cla"), "node", "browser_relay.mjs"])
        .current_dir(interop_dir())
        .args(["--turn", a, "--user", &cred.0, "--pass", &cred.1])
        .args(["--expect", "ok", "--transport", "udp", "--messages", "50"])
        .args(["--timeout-ms", "60000"]);
    let run = run_bounded(node, Duration::from_secs(80));
    let report = last_json(&run);
    let context = format!(
        "chromium: {}\nexit {:?}, timed out {}\nstderr tail: {}",
        run.stdout.trim(),
        run.code(),
        run.timed_out,
        run.stderr
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(report.at("pass").bool(), Some(true), "{context}");
    let relays: Vec<String> = ["pc1", "pc2"]
        .iter()
        .map(|pc| text(&report, &format!("{pc}.selectedPair.local.address")))
        .collect();
    eprintln!("chromium relayed on {relays:?}: {context}");
    relays
}

/// The three servers of a fleet lab, started.
fn start_fleet(lab: &Lab) -> Vec<Server> {
    lab.check_no_hairpin();
    lab.sites
        .iter()
        .zip(RELAY_PORTS)
        .map(|(site, ports)| Server::start_at(lab, site, &fleet_config(lab, site, ports)))
        .collect()
}

/// Chromium, a real client that follows 300 Try Alternate, given only a redirecting A's
/// URL, relays on the siblings. Its redirected Allocate carries A's REALM and NONCE, and
/// Chromium's Allocate takes a 438 there as a failure (only 401 without credentials yet
/// and 300 are retried): this passes because the servers of a fleet key their nonces with
/// their shared REST secret and bind them to the client's IP, not its port (a
/// port-randomising home NAT gives the flow to the sibling another port). Before that the
/// sibling answered 438 and Chromium gathered no relay candidate.
#[test]
fn chromium_follows_a_redirecting_server_to_a_sibling() {
    let Some(lab) = Lab::fleet(&[NODE, CHROMIUM]) else {
        return;
    };
    ensure_playwright();
    let servers = start_fleet(&lab);
    // Redirect by hand (SIGUSR2): A keeps running without allocations.
    let kill = Command::new("kill")
        .args(["-USR2", &servers[0].pid().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    servers[0].wait_for_log("SIGUSR2: new Allocates go to", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    let a = format!("{}:{TURN_PORT}", lab.sites[0].public);
    let relays = chromium_follows_to_siblings(&lab, &a, &mint_credential());
    let sibling_ips: Vec<&str> = lab.sites[1..].iter().map(|s| s.public.as_str()).collect();
    assert!(
        relays.iter().all(|r| sibling_ips.contains(&r.as_str())),
        "Chromium's relay candidates {relays:?} must be on {sibling_ips:?}"
    );
}

#[test]
fn a_fleet_shares_credentials_and_a_drained_server_hands_new_clients_to_siblings() {
    let Some(lab) = Lab::fleet(&[AIOICE]) else {
        return;
    };
    let mut servers = start_fleet(&lab);
    let public: Vec<String> = lab
        .sites
        .iter()
        .map(|s| format!("{}:{TURN_PORT}", s.public))
        .collect();
    let (a, siblings) = (&public[0], &public[1..]);

    // (a) One credential, minted once, on each of the three.
    let cred = mint_credential();
    for (site, server) in lab.sites.iter().zip(&public) {
        let relayed = allocate_once(&lab, 'a', server, &cred);
        assert!(
            relayed.starts_with(&format!("{}:", site.public)),
            "{server} relayed on {relayed}"
        );
    }

    // (b) A call through A.
    let dir = TempDir::new("fleet-call");
    let (stop, mark) = (dir.0.join("stop"), dir.0.join("drained"));
    let call_flags = [
        "--mode",
        "channel",
        "--pace",
        CALL_PACE,
        "--max-seconds",
        "100",
        "--until",
        stop.to_str().expect("UTF-8 path"),
        "--mark",
        mark.to_str().expect("UTF-8 path"),
    ];
    let call = std::thread::scope(|s| {
        let end_call = StopOnDrop(stop.clone());
        let call: Vec<_> = [('a', ("x", "y")), ('b', ("y", "x"))]
            .into_iter()
            .map(|(home, names)| {
                let cmd = relay_peer(&lab, home, names, &dir.0, a, &cred, &call_flags);
                s.spawn(move || run_bounded(cmd, CALL_LIMIT))
            })
            .collect();
        // The call is up once both have published their relayed addresses; let it run.
        wait_for_files(
            &[dir.0.join("x.addr"), dir.0.join("y.addr")],
            Duration::from_secs(20),
        );
        std::thread::sleep(Duration::from_secs(2));

        // The operator drains A: `turnpike ctl drain`, inside A's namespace.
        let mut ctl = Command::new("ip");
        ctl.args(["netns", "exec", &lab.ns("srva"), turnpike_bin(), "-c"])
            .arg(&servers[0].config)
            .args(["ctl", "drain"]);
        let drained = run_bounded(ctl, Duration::from_secs(20));
        assert_eq!(drained.code(), Some(0), "ctl drain: {drained:?}");
        servers[0].wait_for_log(
            "draining: new allocations go to a sibling",
            Duration::from_secs(5),
        );
        // The workers take the drain between packets, just after the controller logs it.
        std::thread::sleep(Duration::from_millis(200));
        std::fs::write(&mark, b"").expect("write the mark");

        // (c) New clients are sent to B or C, follow, and relay there.
        followers_relay_on_siblings(&lab, a, siblings, &cred);
        // Let the call go on a few seconds after the drain, then end it.
        std::thread::sleep(Duration::from_secs(4));
        drop(end_call);
        call.into_iter()
            .map(|h| h.join().expect("call thread"))
            .collect::<Vec<Bounded>>()
    });

    // The call through A: nothing lost, before or after the drain.
    let reports: Vec<Json> = call.iter().map(last_json).collect();
    let context = format!(
        "call: {reports:?}\nstderr: {}\n{}",
        call[0].stderr.trim(),
        call[1].stderr.trim()
    );
    let a_ip = &lab.sites[0].public;
    for (run, me, other) in [
        (&call[0], &reports[0], &reports[1]),
        (&call[1], &reports[1], &reports[0]),
    ] {
        assert!(
            text(me, "relayed").starts_with(&format!("{a_ip}:")),
            "{context}"
        );
        assert_eq!(text(me, "peer"), text(other, "relayed"), "{context}");
        let sent = count(other, "sent");
        // At 10 ms a datagram, more than 3 s of call (about 7 s here).
        assert!(sent > 300, "a call of several seconds: {context}");
        assert_eq!(count(me, "received"), sent, "0 loss: {context}");
        assert!(
            count(me, "received_after_mark") > 200,
            "seconds of the call after the drain: {context}"
        );
        assert_eq!(count(me, "malformed"), 0, "{context}");
        assert!(run.code() == Some(0) && !run.timed_out, "{context}");
    }
    eprintln!("{context}");

    // The call was A's last allocation: A stops by itself.
    let status = servers[0]
        .wait_exit(Duration::from_secs(15))
        .expect("A exits once drained");
    assert!(status.success(), "A's exit: {status:?}");
    assert_eq!(
        servers[0].count_logs("drained: the last allocation ended"),
        1
    );
    for (site, hairpin) in lab.sites.iter().map(|s| (s, lab.hairpin_drops_at(s))) {
        // Exactly the one probe of check_no_hairpin: nothing relied on a NAT hairpin.
        assert_eq!(hairpin, 1, "hairpin drops at cnat{}", site.name);
    }
}
