//! The browser self-test page on the admin listener (`GET /selftest`), driven in headless
//! Debian Chromium by `tests/interop/selftest_page.mjs` as an operator would: paste the admin
//! token, gather candidates, call through the relay.
//!
//! The real binary listens on UDP, TCP and TLS (a certificate made with openssl at test time,
//! SAN IP:127.0.0.1, accepted by Chromium through `--ignore-certificate-errors-spki-list`). The
//! page mints its credential through `POST /v1/selftest/ice-servers`, so what is checked here
//! is the whole path: the page's URLs are the listeners', each transport yields a relay
//! candidate with its `relayProtocol`, and a DataChannel call through the relay moves bytes
//! with an RTT shown, over each of them. With a wrong admin token, then a wrong credential
//! typed in, the page must turn red with the 401 within a bound, not hang.
//!
//! Everything is read from the DOM the script reports; the verdicts are ours. Needs `node`,
//! Debian's `chromium` and `npm ci` in `tests/interop` (run here when `node_modules` is missing).

mod common;
mod interop;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::ServerProcess;
use interop::{
    Json, TestCert, chromium_path, ensure_browser_prerequisites, interop_dir, run_bounded,
};

/// Chromium is heavy for a 2-core machine: one browser at a time.
static BROWSER: Mutex<()> = Mutex::new(());

/// The node run's own bound (browser start and close included), and the hard kill past it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);
const HARD_LIMIT: Duration = Duration::from_secs(110);

/// How long the page may take to show a refused credential (Chromium's 401 comes within
/// ~100 ms; the page's own gathering timeout is 10 s, which a failure must not wait for).
const FAIL_BOUND_MS: f64 = 8_000.0;

const TOKEN: &str = "selftest-page-token";

/// A server with UDP, TCP and TLS listeners on 127.0.0.1, a REST secret, relay ports
/// `relay`, the admin API on a free loopback port with [`TOKEN`].
struct PageServer {
    server: ServerProcess,
    cert: TestCert,
    relay: (u16, u16),
}

impl PageServer {
    fn start(tag: &str, relay: (u16, u16)) -> Self {
        let cert = TestCert::generate(tag);
        let config = format!(
            "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\n\
             [turn]\nrealm = \"selftest.test\"\nsecrets = [\"{tag}-secret\"]\n\
             [relay]\nips = [\"127.0.0.1\"]\nports = \"{a}-{b}\"\n\
             [peers]\ndangerous_allow_loopback_peers = true\n\
             [tls]\ncert = '{cert}'\nkey = '{key}'\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n",
            a = relay.0,
            b = relay.1,
            cert = cert.files.cert.display(),
            key = cert.files.key.display(),
        );
        let server = ServerProcess::start(tag, &config);
        assert_eq!((server.udp.len(), server.tcp.len()), (1, 1));
        Self {
            server,
            cert,
            relay,
        }
    }

    fn page_url(&self) -> String {
        format!("http://{}/selftest", self.server.admin.expect("admin API"))
    }

    /// The TURN URL of `transport` the page must list.
    fn turn_url(&self, transport: &str) -> String {
        match transport {
            "udp" => format!("turn:{}?transport=udp", self.server.udp[0]),
            "tcp" => format!("turn:{}?transport=tcp", self.server.tcp[0]),
            _ => format!("turns:{}?transport=tcp", self.server.tcp[0]),
        }
    }

    /// `a` is a loopback relayed address in our relay port range.
    fn relayed(&self, a: Option<&str>) -> bool {
        a.and_then(|a| a.parse::<SocketAddr>().ok())
            .is_some_and(|a| {
                a.ip() == IpAddr::from([127, 0, 0, 1])
                    && (self.relay.0..=self.relay.1).contains(&a.port())
            })
    }
}

/// What one run of `selftest_page.mjs` reported.
struct PageReport {
    json: Json,
    text: String,
}

impl PageReport {
    fn s(&self, path: &str) -> &str {
        self.json.at(path).str().unwrap_or("")
    }

    fn n(&self, path: &str) -> f64 {
        self.json.at(path).num().unwrap_or(f64::NAN)
    }

    /// The gathering row for `transport`.
    fn row(&self, transport: &str) -> &Json {
        self.json
            .at("gather.rows")
            .arr()
            .iter()
            .find(|r| r.at("transport").str() == Some(transport))
            .unwrap_or(&Json::Null)
    }
}

/// Runs the script in `mode` against `page`, bounded; panics with its output if it did not
/// run to the end.
fn run_page(page: &PageServer, mode: &str) -> PageReport {
    ensure_browser_prerequisites();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut node = Command::new("node");
    node.current_dir(interop_dir())
        .arg("selftest_page.mjs")
        .args(["--page", &page.page_url(), "--token", TOKEN, "--mode", mode])
        .args(["--spki-list", &page.cert.spki_sha256])
        .args(["--timeout-ms", &SCRIPT_TIMEOUT.as_millis().to_string()])
        .args(["--chromium", &chromium_path()]);
    let run = run_bounded(node, HARD_LIMIT);
    let line = run.stdout.lines().rev().find(|l| l.starts_with('{'));
    let json = line.and_then(|l| Json::parse(l).ok()).unwrap_or(Json::Null);
    assert!(
        run.code() == Some(0) && json.at("ran").bool() == Some(true) && !run.timed_out,
        "selftest_page.mjs did not run through ({:?}, timed out {}):\n{}\n--- stderr ---\n{}",
        run.status,
        run.timed_out,
        run.stdout,
        run.stderr
    );
    PageReport {
        json,
        text: line.unwrap_or_default().to_owned(),
    }
}

#[test]
fn the_selftest_page_gathers_and_calls_over_udp_tcp_and_tls() {
    let page = PageServer::start("selftest-page-ok", (30200, 30249));
    let r = run_page(&page, "ok");
    let mut bad = Vec::new();

    if r.s("gather.verdict.status") != "pass" {
        bad.push(format!("gathering verdict: {}", r.s("gather.verdict.text")));
    }
    let rows = r.json.at("gather.rows").arr().len();
    if rows != 3 {
        bad.push(format!("{rows} gathering rows, want 3 (udp, tcp, tls)"));
    }
    for transport in ["udp", "tcp", "tls"] {
        let row = r.row(transport);
        let want_url = page.turn_url(transport);
        if row.at("url").str() != Some(want_url.as_str()) {
            bad.push(format!(
                "{transport}: URL {:?}, want {want_url}",
                row.at("url")
            ));
        }
        if row.at("status").str() != Some("pass")
            || row.at("relayProtocol").str() != Some(transport)
            || !page.relayed(row.at("relayAddress").str())
        {
            bad.push(format!(
                "{transport}: status {:?}, relayProtocol {:?}, relay candidate {:?}, result {:?}",
                row.at("status"),
                row.at("relayProtocol"),
                row.at("relayAddress"),
                row.at("result")
            ));
        }
    }

    let calls = r.json.at("calls").arr();
    if calls.len() != 3 {
        bad.push(format!("{} calls, want one per TURN URL", calls.len()));
    }
    for call in calls {
        let v = |k: &str| call.at(&format!("verdict.{k}")).str().unwrap_or("");
        let num = |k: &str| v(k).parse::<f64>().unwrap_or(f64::NAN);
        let url = call.at("url").str().unwrap_or("");
        let transport = v("transport");
        let ok = v("status") == "pass"
            && url == page.turn_url(transport)
            && v("localType") == "relay"
            && v("remoteType") == "relay"
            && v("relayProtocol") == transport
            && num("bytesSent") > 0.0
            && num("bytesReceived") > 0.0
            && num("rttMs") >= 0.0
            && call
                .at("details.rtt")
                .str()
                .is_some_and(|t| t.ends_with(" ms"))
            && call.at("details.messages").str() == Some("20 of 20 (1000 bytes each)");
        if !ok {
            bad.push(format!("call over {url}: {call:?}"));
        }
    }
    if r.json.at("tokenKept").bool() != Some(true) {
        bad.push("the token was not kept in sessionStorage".to_owned());
    }
    assert!(
        bad.is_empty(),
        "{}\n--- report ---\n{}",
        bad.join("\n"),
        r.text
    );
    eprintln!(
        "self-test page: gathered in {} ms; calls {:?}; node run {} ms",
        r.n("gather.ms"),
        calls
            .iter()
            .map(|c| (
                c.at("verdict.transport").str().unwrap_or("-").to_owned(),
                c.at("verdict.rttMs").str().unwrap_or("-").to_owned(),
                c.at("verdict.bytesSent").str().unwrap_or("-").to_owned(),
                c.at("ms").num().unwrap_or(-1.0),
            ))
            .collect::<Vec<_>>(),
        r.n("elapsedMs")
    );
}

#[test]
fn the_selftest_page_shows_a_wrong_credential_as_a_red_401() {
    let page = PageServer::start("selftest-page-401", (30250, 30299));
    let r = run_page(&page, "wrong-credential");
    let mut bad = Vec::new();

    // A wrong admin token: the admin API's 401, shown.
    let text = r.s("wrongToken.gather.text");
    if r.s("wrongToken.gather.status") != "fail" || !text.contains("401") {
        bad.push(format!("wrong admin token: {text:?}"));
    }

    // A wrong credential typed in: every transport red with the TURN server's 401, quickly.
    let text = r.s("gather.verdict.text");
    if r.s("gather.verdict.status") != "fail" || !text.contains("401") {
        bad.push(format!("gathering verdict: {text:?}"));
    }
    if !r
        .json
        .at("gather.ms")
        .num()
        .is_some_and(|ms| ms < FAIL_BOUND_MS)
    {
        bad.push(format!("gathering took {} ms to fail", r.n("gather.ms")));
    }
    for transport in ["udp", "tcp", "tls"] {
        let row = r.row(transport);
        if row.at("status").str() != Some("fail")
            || row.at("errorCode").str() != Some("401")
            || !row.at("result").str().is_some_and(|t| t.contains("401"))
            || row.at("relayAddress") != &Json::Null
        {
            bad.push(format!("{transport}: {row:?}"));
        }
    }
    let call = r.json.at("calls.0");
    let text = call.at("verdict.text").str().unwrap_or("");
    if call.at("verdict.status").str() != Some("fail")
        || call.at("verdict.errorCode").str() != Some("401")
        || !text.contains("401")
    {
        bad.push(format!("call verdict: {call:?}"));
    }
    if !call.at("ms").num().is_some_and(|ms| ms < FAIL_BOUND_MS) {
        bad.push(format!("the call took {:?} ms to fail", call.at("ms")));
    }
    if !r.s("servers").contains("overridden") {
        bad.push(format!(
            "the page does not say the credential is overridden: {:?}",
            r.s("servers")
        ));
    }
    assert!(
        bad.is_empty(),
        "{}\n--- report ---\n{}",
        bad.join("\n"),
        r.text
    );
    eprintln!(
        "self-test page, wrong credential: gathering red in {} ms ({}); call red in {} ms",
        r.n("gather.ms"),
        r.s("gather.verdict.text"),
        call.at("ms").num().unwrap_or(-1.0)
    );
}
