//! Issue 18 with a real browser: headless Chromium relays a DataChannel and media over UDP
//! through turnpike with `[offload] mode = "tc"`, and the kernel carries the relayed
//! ChannelData.
//!
//! Two peer connections that both use the server would relay to the server's *own*
//! relayed address, which turnpike keeps in user space on purpose (host.rs
//! `offload_route`). So here Chromium runs on the hairpin lab's internet router (`inet`,
//! 198.18.1.1, `nat_lab`) with one page and two peer connections
//! (`tests/interop/browser_relay.mjs --topology relay-to-host`):
//!
//! - `pc1`: `iceTransportPolicy: "relay"`, `turn:198.18.0.10:PORT?transport=udp` — the
//!   server in its namespace behind the cloud's 1:1 NAT;
//! - `pc2`: no ICE server, host candidates only (the router's own addresses, which the
//!   server reaches and its peer policy allows).
//!
//! The server then relays between `pc1`'s allocation and `pc2`'s host address: a peer that
//! is not the server, so once Chromium's ChannelBind succeeds (it uses Send indications
//! until then) the datagrams of both directions go through the TC program. The test proves:
//!
//! - a DataChannel carries N messages each way intact and in order; audio and video (a
//!   canvas and WebAudio) flow both ways, and inbound-rtp packets and bytes grow on both
//!   receiving sides over a window of a few seconds (`getStats()`);
//! - `pc1`'s selected pair is its `relay` candidate (relayProtocol udp) to `pc2`'s `host`
//!   candidate, and `pc2`'s is the mirror;
//! - `turnpike_offload_relayed_packets_total` grew in both directions by most of what the
//!   server relayed (`turnpike_relayed_packets_total`, which counts both paths once the
//!   allocations ended); the figures are printed;
//! - the same with `mode = "xdp"` (the lab's veths made to behave like NIC links);
//! - the same run with `[offload] mode = "off"` works, and nothing is counted as offloaded.
//!
//! Needs root, `node`, Debian's `chromium`, `npm ci` in `tests/interop` (run when missing)
//! and a binary built with `--features ebpf` (this file is empty without it).
#![cfg(feature = "ebpf")]

mod common;
mod interop;
mod nat_lab;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use interop::{
    Bounded, Json, chromium_path, ensure_browser_prerequisites, interop_dir, rest_credentials,
    run_bounded,
};
use nat_lab::{Lab, PRIVATE, PUBLIC, SECRET, Server};

/// TURN port, relay range and metrics port inside the server namespace. No other test
/// uses them.
const TURN_PORT: u16 = 3621;
const RELAY_PORTS: (u16, u16) = (41150, 41199);
const METRICS_PORT: u16 = 9721;
/// DataChannel messages each way.
const MESSAGES: u32 = 200;
/// The window over which media must keep flowing both ways.
const MEDIA_MS: u32 = 4000;
/// The script bounds itself at `SCRIPT_TIMEOUT` (+8 s last resort); this is the hard kill.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const HARD_LIMIT: Duration = Duration::from_secs(85);
/// The least share of the relayed datagrams, each way, the kernel must have carried. Only
/// those before the ChannelBind (Send/Data indications, a few ICE checks) may miss it.
const MIN_KERNEL_SHARE: f64 = 0.8;

/// Chromium is heavy for a 2-core machine, and each run builds a lab: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn config(mode: &str) -> String {
    let (first, last) = RELAY_PORTS;
    format!(
        "[listen]\nudp = [\"{PRIVATE}:{TURN_PORT}\"]\ntcp = []\n\
         [turn]\nrealm = \"offload-browser.test\"\nsecrets = [\"{SECRET}\"]\n\
         [relay]\nips = [\"{PRIVATE}\"]\nports = \"{first}-{last}\"\n\
         external_ip = [\"{PUBLIC}/{PRIVATE}\"]\n\
         [peers]\nallow = [\"198.18.0.0/15\"]\n\
         [admin]\nenabled = false\n\
         [metrics]\nenabled = true\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n\
         [offload]\nmode = \"{mode}\"\n"
    )
}

/// The value of `series` (name and labels, exactly), if the text has it.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every sample of metric `name`, whatever its labels.
fn sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(['{', ' ']))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

/// Runs `browser_relay.mjs --topology relay-to-host` inside the lab's `inet` namespace.
fn run_browser(lab: &Lab, user: &str, pass: &str) -> (Bounded, Json) {
    ensure_browser_prerequisites();
    let mut node = Command::new("ip");
    node.args(["netns", "exec", &lab.ns("inet"), "node"])
        .current_dir(interop_dir())
        .arg("browser_relay.mjs")
        .args(["--turn", &format!("{PUBLIC}:{TURN_PORT}")])
        .args(["--transport", "udp", "--topology", "relay-to-host"])
        .args(["--user", user, "--pass", pass, "--expect", "ok"])
        .args([
            "--relay-ports",
            &format!("{}-{}", RELAY_PORTS.0, RELAY_PORTS.1),
        ])
        .args(["--messages", &MESSAGES.to_string()])
        .args(["--media-ms", &MEDIA_MS.to_string()])
        .args(["--timeout-ms", &SCRIPT_TIMEOUT.as_millis().to_string()])
        .args(["--chromium", &chromium_path()]);
    let run = run_bounded(node, HARD_LIMIT);
    let json = run.last_json();
    (run, json)
}

/// Our own reading of the page's figures, on top of the script's verdict.
fn check_browser(run: &Bounded, json: &Json) -> Vec<String> {
    let mut bad: Vec<String> = json
        .at("failures")
        .arr()
        .iter()
        .filter_map(|f| f.str().map(|s| format!("script: {s}")))
        .collect();
    if run.timed_out || run.code() != Some(0) || json.at("pass").bool() != Some(true) {
        bad.push(format!(
            "script exit {:?} (timed out: {}), pass {:?}",
            run.code(),
            run.timed_out,
            json.at("pass")
        ));
    }
    let s = |p: &str| json.at(p).str().unwrap_or("-").to_owned();
    let n = |p: &str| json.at(p).num().unwrap_or(-1.0);
    let want = [
        ("pc1.selectedPair.local.candidateType", "relay"),
        ("pc1.selectedPair.local.relayProtocol", "udp"),
        ("pc1.selectedPair.local.protocol", "udp"),
        ("pc1.selectedPair.local.address", PUBLIC),
        ("pc1.selectedPair.remote.candidateType", "host"),
        ("pc2.selectedPair.local.candidateType", "host"),
        ("pc2.selectedPair.remote.candidateType", "relay"),
        ("pc2.selectedPair.remote.address", PUBLIC),
    ];
    for (path, value) in want {
        if s(path) != value {
            bad.push(format!("{path} is {}, want {value}", s(path)));
        }
    }
    let port = n("pc1.selectedPair.local.port");
    if !(f64::from(RELAY_PORTS.0)..=f64::from(RELAY_PORTS.1)).contains(&port) {
        bad.push(format!("pc1's relayed port {port} outside {RELAY_PORTS:?}"));
    }
    // The peer the server relays to is the router itself, never one of the server's own.
    let peer = s("pc1.selectedPair.remote.address");
    if !peer.starts_with("198.18.") || peer == PUBLIC {
        bad.push(format!("pc1's remote (the relayed peer) is {peer}"));
    }
    for dir in ["A2B", "B2A"] {
        let got = n(&format!("dataChannel.received{dir}"));
        if json.at(&format!("dataChannel.intact{dir}")).bool() != Some(true)
            || got != f64::from(MESSAGES)
        {
            bad.push(format!("datachannel {dir}: {got} of {MESSAGES}"));
        }
    }
    for pc in ["pc1", "pc2"] {
        for kind in ["audio", "video"] {
            let at = |when: &str, what: &str| n(&format!("media.window.{pc}.{when}.{kind}.{what}"));
            for what in ["packetsReceived", "bytesReceived"] {
                if !(at("after", what) > at("before", what) && at("before", what) >= 0.0) {
                    bad.push(format!(
                        "{pc} {kind} {what}: {} -> {} over {MEDIA_MS} ms",
                        at("before", what),
                        at("after", what)
                    ));
                }
            }
        }
    }
    bad
}

/// What the server relayed, from `/metrics` once every allocation has ended (the kernel's
/// counts are added to `turnpike_relayed_*` when its allocation ends).
#[derive(Debug)]
struct Relayed {
    /// `turnpike_relayed_packets_total` over UDP, to the peer and to the client.
    total: [u64; 2],
    /// `turnpike_offload_relayed_packets_total`, to the peer and to the client (`None`
    /// with offload off: no series).
    kernel: Option<[u64; 2]>,
    /// `turnpike_offload_routes` (channels in the kernel), `None` with offload off.
    routes: Option<u64>,
    /// `turnpike_allocations_created_total` (Chromium allocates once per network).
    allocations: u64,
}

fn relayed_after_the_end(lab: &Lab) -> Relayed {
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = lab.metrics(METRICS_PORT);
        let created = sum(&text, "turnpike_allocations_created_total");
        let ended = sum(&text, "turnpike_allocations_ended_total");
        if created > 0 && created == ended {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "allocations still live 10 s after the browser closed ({created} created, {ended} ended)"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let total = ["to_peer", "to_client"].map(|d| {
        let series =
            format!("turnpike_relayed_packets_total{{direction=\"{d}\",transport=\"udp\"}}");
        sample(&text, &series).unwrap_or_else(|| panic!("no {series}"))
    });
    let kernel = ["to_peer", "to_client"].map(|d| {
        sample(
            &text,
            &format!("turnpike_offload_relayed_packets_total{{direction=\"{d}\"}}"),
        )
    });
    Relayed {
        total,
        kernel: kernel[0].zip(kernel[1]).map(|(p, c)| [p, c]),
        routes: sample(&text, "turnpike_offload_routes"),
        allocations: sum(&text, "turnpike_allocations_created_total"),
    }
}

/// The accounting line of `pc1`'s selected allocation counts at least what Chromium says it
/// sent and received on that pair (the server also relayed the ICE checks before it).
fn check_accounting(server: &Server, json: &Json) {
    let port = json.at("pc1.selectedPair.local.port").num().unwrap_or(-1.0);
    let needle = format!("relayed={PUBLIC}:{port}");
    let lines = server.log_lines();
    let line = lines
        .iter()
        .find(|l| l.contains("allocation ended") && l.split_whitespace().any(|w| w == needle))
        .unwrap_or_else(|| panic!("no accounting line with {needle}"));
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    let sent = json
        .at("pc1.selectedPair.packetsSent")
        .num()
        .unwrap_or(-1.0);
    let received = json.at("pc1.selectedPair.packetsReceived").num();
    let received = received.unwrap_or(-1.0);
    assert!(
        sent > 0.0 && field("to_peer_packets") >= sent,
        "pc1 sent {sent} on its pair, the server relayed: {line}"
    );
    assert!(
        received > 0.0 && field("to_client_packets") >= received,
        "pc1 received {received} on its pair, the server relayed: {line}"
    );
}

/// Runs the page against a lab server with `[offload] mode`; panics with the figures and the
/// script's output when the browser's side fails.
fn browser_through(mode: &str) -> Option<(Relayed, Json)> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new(1, &[])?;
    if mode == "xdp" {
        lab.like_nics("srv");
    }
    let server = Server::start_at(&lab, &lab.sites[0], &config(mode));
    if mode != "off" {
        server.wait_for_log("fast path attached", Duration::from_secs(5));
    }
    let (user, pass) = rest_credentials(SECRET, "chromium", Duration::from_secs(3600));
    let (run, json) = run_browser(&lab, &user, &pass);
    let bad = check_browser(&run, &json);
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    assert!(
        bad.is_empty(),
        "offload {mode}: {bad:#?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        tail(&run.stdout),
        tail(&run.stderr)
    );
    let relayed = relayed_after_the_end(&lab);
    check_accounting(&server, &json);
    eprintln!(
        "offload {mode}: {relayed:?}; pc1 pair {}:{} -> {}:{}, packets sent/received {}/{}; \
         pc2 inbound video {} / audio {} packets",
        json.at("pc1.selectedPair.local.address")
            .str()
            .unwrap_or("-"),
        json.at("pc1.selectedPair.local.port").num().unwrap_or(-1.0),
        json.at("pc1.selectedPair.remote.address")
            .str()
            .unwrap_or("-"),
        json.at("pc1.selectedPair.remote.port")
            .num()
            .unwrap_or(-1.0),
        json.at("pc1.selectedPair.packetsSent")
            .num()
            .unwrap_or(-1.0),
        json.at("pc1.selectedPair.packetsReceived")
            .num()
            .unwrap_or(-1.0),
        json.at("media.receiver.video.packetsReceived")
            .num()
            .unwrap_or(-1.0),
        json.at("media.receiver.audio.packetsReceived")
            .num()
            .unwrap_or(-1.0),
    );
    drop(server);
    Some((relayed, json))
}

#[test]
fn chromium_relays_datachannel_and_media_through_the_kernel() {
    kernel_share("tc");
}

/// The same at XDP, the lab's veths behaving like NIC links (`Lab::like_nics`: complete
/// checksums from Chromium's side).
#[test]
fn chromium_relays_datachannel_and_media_through_xdp() {
    kernel_share("xdp");
}

fn kernel_share(mode: &str) {
    let Some((relayed, _)) = browser_through(mode) else {
        return;
    };
    let kernel = relayed
        .kernel
        .expect("offload series with the fast path on");
    assert_eq!(relayed.routes, Some(0), "withdrawn at the end: {relayed:?}");
    assert!(relayed.allocations >= 1, "{relayed:?}");
    for (i, dir) in ["to_peer", "to_client"].into_iter().enumerate() {
        let (k, t) = (kernel[i], relayed.total[i]);
        // Media both ways for seconds is hundreds of datagrams each way at the very least.
        assert!(t >= 500, "{dir}: only {t} datagrams relayed: {relayed:?}");
        assert!(k <= t, "{dir}: kernel {k} > total {t}: {relayed:?}");
        #[allow(clippy::cast_precision_loss)]
        let share = k as f64 / t as f64;
        assert!(
            share >= MIN_KERNEL_SHARE,
            "{dir}: the kernel relayed {k} of {t} ({:.1} %), want >= {:.0} %: {relayed:?}",
            share * 100.0,
            MIN_KERNEL_SHARE * 100.0
        );
        eprintln!(
            "{dir}: {k} of {t} datagrams in the kernel ({:.1} %), {} in user space",
            share * 100.0,
            t - k
        );
    }
}

#[test]
fn chromium_relays_datachannel_and_media_with_offload_off() {
    let Some((relayed, _)) = browser_through("off") else {
        return;
    };
    assert_eq!(relayed.kernel, None, "no offload series when off");
    assert_eq!(relayed.routes, None, "no offload series when off");
    assert!(relayed.allocations >= 1, "{relayed:?}");
    for (i, dir) in ["to_peer", "to_client"].into_iter().enumerate() {
        let t = relayed.total[i];
        assert!(t >= 500, "{dir}: only {t} datagrams relayed: {relayed:?}");
    }
}
