//! TURN as a browser uses it: headless Debian Chromium, driven by playwright-core
//! (`tests/interop/browser_relay.mjs`), connects two `RTCPeerConnection`s in one page with
//! `iceTransportPolicy: "relay"` through the server, sends DataChannel messages both ways and a
//! synthetic audio+video stream, and reports `getStats()`; wrong credentials must give
//! `icecandidateerror` 401.
//!
//! Over UDP (`turn:…?transport=udp`), TCP (`turn:…?transport=tcp`) and TLS
//! (`turns:…?transport=tcp`, a certificate made at test time and accepted by Chromium through
//! `--ignore-certificate-errors-spki-list`; without that flag it must be refused), to the server
//! on 127.0.0.1 and on `[::1]`. The selected pair's `relayProtocol` must be the transport asked
//! for. Over IPv6 the relayed addresses are IPv4 all the same: WebRTC's Allocate carries no
//! REQUESTED-ADDRESS-FAMILY, and RFC 8656 §7.2 then allocates IPv4 (coturn does the same); IPv6
//! relays are covered by `turn_uclient.rs` (`turnutils_uclient -x`).
//!
//! The server under test is turnpike by default, coturn's `turnserver` with
//! `TURNPIKE_INTEROP_SERVER=coturn`. Needs `node`, Debian's `chromium` and `npm ci` in
//! `tests/interop` (run here when `node_modules` is missing).

mod common;
mod interop;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use interop::{
    Json, Setup, TestCert, Transport, TurnServer, TurnTarget, chromium_path,
    ensure_browser_prerequisites, interop_dir, run_bounded,
};

/// Chromium is heavy for a 2-core machine: one browser at a time.
static BROWSER: Mutex<()> = Mutex::new(());

/// The whole node run, browser start and close included; the script bounds itself at
/// `SCRIPT_TIMEOUT` (+8 s last resort), this is the hard kill.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(45);
const HARD_LIMIT: Duration = Duration::from_secs(70);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Relay candidates gathered and selected; data and media flow.
    Relay,
    /// Credentials refused with 401; nothing gathered.
    AuthError,
    /// `turns:` with a certificate Chromium does not trust: icecandidateerror 701, nothing
    /// gathered, never a 401 (no TURN message got through).
    CertError,
}

/// What one run of `browser_relay.mjs` reported.
#[derive(Debug)]
struct BrowserReport {
    exit_code: Option<i32>,
    timed_out: bool,
    elapsed: Duration,
    /// The script's JSON line (`Json::Null` when there was none).
    json: Json,
    /// The ICE server URL the page was given.
    turn_url: String,
    stdout: String,
    stderr: String,
}

/// `(local candidateType, remote candidateType, local relayProtocol, local protocol, local
/// address:port, remote address:port)` of a peer connection's selected pair.
type Pair = (String, String, String, String, String, String);

impl BrowserReport {
    fn pair(&self, pc: &str) -> Option<Pair> {
        let sp = self.json.at(&format!("{pc}.selectedPair"));
        if *sp == Json::Null {
            return None;
        }
        let s = |p: &str| sp.at(p).str().unwrap_or("-").to_owned();
        let addr = |side: &str| {
            format!(
                "{}:{}",
                sp.at(&format!("{side}.address")).str().unwrap_or("-"),
                sp.at(&format!("{side}.port")).num().unwrap_or(0.0)
            )
        };
        Some((
            s("local.candidateType"),
            s("remote.candidateType"),
            s("local.relayProtocol"),
            s("local.protocol"),
            addr("local"),
            addr("remote"),
        ))
    }

    fn num(&self, path: &str) -> f64 {
        self.json.at(path).num().unwrap_or(-1.0)
    }

    fn script_failures(&self) -> Vec<String> {
        self.json
            .at("failures")
            .arr()
            .iter()
            .filter_map(|f| f.str().map(str::to_owned))
            .collect()
    }

    fn common_problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if self.timed_out {
            bad.push(format!("killed after {HARD_LIMIT:?}"));
        }
        if self.json == Json::Null {
            bad.push("no JSON line from the script".to_owned());
        }
        bad.extend(self.script_failures());
        if self.json.at("pass").bool() != Some(true) {
            bad.push(format!("script verdict pass={:?}", self.json.at("pass")));
        }
        if self.exit_code != Some(0) {
            bad.push(format!("script exit code {:?}", self.exit_code));
        }
        bad
    }

    /// Our own reading of the figures, on top of the script's verdict, for a UDP run.
    fn relay_ok(&self, relay_ports: (u16, u16)) -> Result<(), String> {
        self.relay_ok_via(relay_ports, Transport::Udp)
    }

    /// As [`BrowserReport::relay_ok`] for a run over `transport`: both selected local
    /// candidates are relays gathered from the URL the page was given, whose `relayProtocol`
    /// is `transport`, on a loopback address.
    fn relay_ok_via(&self, relay_ports: (u16, u16), transport: Transport) -> Result<(), String> {
        let mut bad = self.common_problems();
        let mut pairs = Vec::new();
        for pc in ["pc1", "pc2"] {
            let Some(pair) = self.pair(pc) else {
                bad.push(format!("{pc}: no selected pair"));
                continue;
            };
            if pair.0 != "relay" || pair.1 != "relay" {
                bad.push(format!("{pc}: selected pair {} <-> {}", pair.0, pair.1));
            }
            if pair.2 != transport.name() || pair.3 != "udp" {
                bad.push(format!(
                    "{pc}: relayProtocol {}, protocol {}; want {} and udp",
                    pair.2,
                    pair.3,
                    transport.name()
                ));
            }
            let url = self.json.at(&format!("{pc}.selectedPair.local.url"));
            if url.str() != Some(self.turn_url.as_str()) {
                bad.push(format!(
                    "{pc}: local candidate from {url:?}, want {}",
                    self.turn_url
                ));
            }
            let relayed = self.json.at(&format!("{pc}.selectedPair.local.address"));
            if !relayed
                .str()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback())
            {
                bad.push(format!("{pc}: relayed address {relayed:?} is not loopback"));
            }
            let port = self.num(&format!("{pc}.selectedPair.local.port"));
            if !(f64::from(relay_ports.0)..=f64::from(relay_ports.1)).contains(&port) {
                bad.push(format!(
                    "{pc}: relayed port {port} outside {}-{}",
                    relay_ports.0, relay_ports.1
                ));
            }
            pairs.push(pair);
        }
        if let [p1, p2] = &pairs[..] {
            if p1.4 != p2.5 || p2.4 != p1.5 {
                bad.push(format!(
                    "pairs do not mirror: pc1 {}->{}, pc2 {}->{}",
                    p1.4, p1.5, p2.4, p2.5
                ));
            }
        }
        let sent = self.num("dataChannel.sentEachWay");
        for dir in ["A2B", "B2A"] {
            if self.json.at(&format!("dataChannel.intact{dir}")).bool() != Some(true)
                || self.num(&format!("dataChannel.received{dir}")) != sent
                || sent < 1.0
            {
                bad.push(format!(
                    "datachannel {dir}: {} of {sent}",
                    self.num(&format!("dataChannel.received{dir}"))
                ));
            }
        }
        if self.num("media.receiver.video.framesDecoded") < 1.0 {
            bad.push("no video frames decoded at pc2".to_owned());
        }
        if self.num("media.receiver.audio.packetsReceived") < 1.0 {
            bad.push("no audio packets received at pc2".to_owned());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    /// `turns:` was refused at the TLS handshake: a 701 for the URL, no 401, no candidate.
    fn cert_refused(&self) -> Result<(), String> {
        let mut bad = self.common_problems();
        let errors: Vec<(f64, &str)> = self
            .json
            .at("pc1.candidateErrors")
            .arr()
            .iter()
            .map(|e| {
                (
                    e.at("errorCode").num().unwrap_or(-1.0),
                    e.at("url").str().unwrap_or("-"),
                )
            })
            .collect();
        if !errors
            .iter()
            .any(|&(code, url)| code == 701.0 && url == self.turn_url)
        {
            bad.push(format!(
                "icecandidateerror {errors:?}, want 701 for {}",
                self.turn_url
            ));
        }
        if errors.iter().any(|&(code, _)| code == 401.0) {
            bad.push("a 401 came back: TURN went through the untrusted TLS".to_owned());
        }
        let gathered = self.json.at("pc1.candidates").arr().len();
        if gathered != 0 {
            bad.push(format!("{gathered} candidates gathered"));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    fn auth_refused(&self) -> Result<(), String> {
        let mut bad = self.common_problems();
        let codes: Vec<f64> = self
            .json
            .at("pc1.candidateErrors")
            .arr()
            .iter()
            .filter_map(|e| e.at("errorCode").num())
            .collect();
        if !codes.contains(&401.0) {
            bad.push(format!("icecandidateerror codes {codes:?}, want 401"));
        }
        let relays = self
            .json
            .at("pc1.candidates")
            .arr()
            .iter()
            .filter(|c| c.at("type").str() == Some("relay"))
            .count();
        if relays != 0 {
            bad.push(format!("{relays} relay candidates gathered"));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    fn summary(&self) -> String {
        format!(
            "pc1 {:?}, pc2 {:?}; dc a2b {}/{} b2a {}/{}; video framesDecoded {} packets {}; \
             audio packets {}; candidate errors {}; connected at {} ms; node run {:.1} s",
            self.pair("pc1"),
            self.pair("pc2"),
            self.num("dataChannel.receivedA2B"),
            self.num("dataChannel.sentEachWay"),
            self.num("dataChannel.receivedB2A"),
            self.num("dataChannel.sentEachWay"),
            self.num("media.receiver.video.framesDecoded"),
            self.num("media.receiver.video.packetsReceived"),
            self.num("media.receiver.audio.packetsReceived"),
            self.json.at("pc1.candidateErrors").arr().len()
                + self.json.at("pc2.candidateErrors").arr().len(),
            self.num("timings.connectedMs"),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs `browser_relay.mjs` against `target` over UDP with `(user, pass)`. Server-agnostic.
fn run_browser(target: &TurnTarget, user: &str, pass: &str, expect: Expect) -> BrowserReport {
    run_browser_via(target, Transport::Udp, None, user, pass, expect)
}

/// Runs `browser_relay.mjs` against `target` over `transport` (TCP and TLS go to the server's
/// TCP address), Chromium accepting the certificate whose SPKI hash is `spki`, if any.
fn run_browser_via(
    target: &TurnTarget,
    transport: Transport,
    spki: Option<&str>,
    user: &str,
    pass: &str,
    expect: Expect,
) -> BrowserReport {
    ensure_browser_prerequisites();
    let addr = match transport {
        Transport::Udp => target.addr,
        Transport::Tcp | Transport::Tls => target
            .tcp
            .unwrap_or_else(|| panic!("{transport:?} asked of a server without TCP")),
    };
    let turn_url = match transport {
        Transport::Udp => format!("turn:{addr}?transport=udp"),
        Transport::Tcp => format!("turn:{addr}?transport=tcp"),
        Transport::Tls => format!("turns:{addr}?transport=tcp"),
    };
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut node = Command::new("node");
    node.current_dir(interop_dir())
        .arg("browser_relay.mjs")
        .args(["--turn", &addr.to_string()])
        .args(["--transport", transport.name()])
        .args(["--user", user, "--pass", pass])
        .args([
            "--expect",
            match expect {
                Expect::Relay => "ok",
                Expect::AuthError => "auth-error",
                Expect::CertError => "cert-error",
            },
        ])
        .args([
            "--relay-ports",
            &format!("{}-{}", target.relay_ports.0, target.relay_ports.1),
        ])
        .args(["--timeout-ms", &SCRIPT_TIMEOUT.as_millis().to_string()])
        .args(["--chromium", &chromium_path()]);
    if let Some(spki) = spki {
        node.args(["--spki-list", spki]);
    }
    let run = run_bounded(node, HARD_LIMIT);
    let json = run.last_json();
    let page_url = json.at("turnUrl").str().unwrap_or_default().to_owned();
    assert!(
        page_url.is_empty() || page_url == turn_url,
        "the script built {page_url}, we expected {turn_url}"
    );
    BrowserReport {
        exit_code: run.code(),
        timed_out: run.timed_out,
        elapsed: run.elapsed,
        json,
        turn_url,
        stdout: run.stdout,
        stderr: run.stderr,
    }
}

fn fail(server: &TurnServer, r: &BrowserReport, why: &str) -> ! {
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    panic!(
        "{:?} at {}: {why}\n--- summary ---\n{}\n--- script stdout ---\n{}\n--- script stderr ---\n{}\n\
         --- server log ---\n{}",
        server.kind,
        server.target.addr,
        r.summary(),
        tail(&r.stdout),
        tail(&r.stderr),
        server.log_tail(30)
    );
}

#[test]
fn chromium_relays_datachannel_and_media_over_udp() {
    let server = TurnServer::start("browser-relay", "browser-secret", (24400, 24499));
    let target = &server.target;
    let (user, pass) =
        interop::rest_credentials(&target.secret, "chromium", Duration::from_secs(3600));
    let report = run_browser(target, &user, &pass, Expect::Relay);
    match report.relay_ok(target.relay_ports) {
        Ok(()) => eprintln!("{:?} relay: {}", server.kind, report.summary()),
        Err(why) => fail(&server, &report, &why),
    }
}

#[test]
fn chromium_with_wrong_credentials_gets_401() {
    let server = TurnServer::start("browser-401", "browser-secret", (24500, 24599));
    let target = &server.target;
    // A well-formed REST username signed with the wrong secret.
    let (user, pass) =
        interop::rest_credentials("not-the-secret", "chromium", Duration::from_secs(3600));
    let report = run_browser(target, &user, &pass, Expect::AuthError);
    match report.auth_refused() {
        Ok(()) => eprintln!(
            "{:?} wrong credentials: errors {:?} after {} ms, node run {:.1} s",
            server.kind,
            report
                .json
                .at("pc1.candidateErrors")
                .arr()
                .iter()
                .map(|e| (e.at("errorCode").num(), e.at("errorText").str()))
                .collect::<Vec<_>>(),
            report.num("timings.firstErrorMs"),
            report.elapsed.as_secs_f64()
        ),
        Err(why) => fail(&server, &report, &why),
    }
}

/// A relay run over `transport` to the server on 127.0.0.1 or `[::1]`; with TLS, a certificate
/// is made for the run and Chromium is told its SPKI hash.
fn transport_relay_test(tag: &str, relay_ports: (u16, u16), transport: Transport, ipv6: bool) {
    let cert = (transport == Transport::Tls).then(|| TestCert::generate(tag));
    let setup = Setup {
        ipv6,
        tcp: transport != Transport::Udp,
        tls: cert.as_ref().map(|c| c.files.clone()),
    };
    let server = TurnServer::start_with(tag, &format!("{tag}-secret"), relay_ports, &setup);
    let target = &server.target;
    let (user, pass) =
        interop::rest_credentials(&target.secret, "chromium", Duration::from_secs(3600));
    let spki = cert.as_ref().map(|c| c.spki_sha256.as_str());
    let report = run_browser_via(target, transport, spki, &user, &pass, Expect::Relay);
    match report.relay_ok_via(target.relay_ports, transport) {
        Ok(()) => eprintln!(
            "{:?} relay via {}: {}",
            server.kind,
            report.turn_url,
            report.summary()
        ),
        Err(why) => fail(&server, &report, &why),
    }
}

#[test]
fn chromium_relays_datachannel_and_media_over_tcp() {
    transport_relay_test("browser-tcp", (25000, 25099), Transport::Tcp, false);
}

#[test]
fn chromium_relays_datachannel_and_media_over_tls() {
    transport_relay_test("browser-tls", (25100, 25199), Transport::Tls, false);
}

#[test]
fn chromium_relays_over_udp_to_ipv6_server() {
    transport_relay_test("browser-udp6", (25200, 25299), Transport::Udp, true);
}

#[test]
fn chromium_relays_over_tcp_to_ipv6_server() {
    transport_relay_test("browser-tcp6", (25300, 25399), Transport::Tcp, true);
}

#[test]
fn chromium_relays_over_tls_to_ipv6_server() {
    transport_relay_test("browser-tls6", (25400, 25499), Transport::Tls, true);
}

#[test]
fn chromium_refuses_turns_with_an_untrusted_certificate() {
    // The same self-signed certificate as in the TLS relay test, but Chromium is not told its
    // SPKI hash: the handshake must fail, which shows the relay test really ran over TLS with
    // this certificate, and that the flag is what makes Chromium accept it.
    let cert = TestCert::generate("browser-tls-untrusted");
    let setup = Setup {
        ipv6: false,
        tcp: true,
        tls: Some(cert.files.clone()),
    };
    let server = TurnServer::start_with(
        "browser-tls-untrusted",
        "browser-secret",
        (25500, 25599),
        &setup,
    );
    let target = &server.target;
    let (user, pass) =
        interop::rest_credentials(&target.secret, "chromium", Duration::from_secs(3600));
    let report = run_browser_via(
        target,
        Transport::Tls,
        None,
        &user,
        &pass,
        Expect::CertError,
    );
    match report.cert_refused() {
        Ok(()) => eprintln!(
            "{:?} untrusted certificate (SPKI sha256 {}): errors {:?} after {} ms, node run {:.1} s",
            server.kind,
            cert.spki_sha256,
            report
                .json
                .at("pc1.candidateErrors")
                .arr()
                .iter()
                .map(|e| (e.at("errorCode").num(), e.at("errorText").str()))
                .collect::<Vec<_>>(),
            report.num("timings.firstErrorMs"),
            report.elapsed.as_secs_f64()
        ),
        Err(why) => fail(&server, &report, &why),
    }
}
