//! `turnpike selftest --attack HOST:PORT`: probes a running TURN deployment (ours or
//! another) from the outside, as a stranger and as a client holding a valid credential,
//! and prints one verdict per probe.
//!
//! Three groups of probes, each bounded in packets and time:
//!
//! - [`amplification`]: everything a spoofer can send over UDP without credentials; bytes
//!   out per byte in against RFC 8656 §17's concern (at most 2×, 3× for the 401 to a
//!   well-formed Allocate).
//! - [`peers`]: with a real allocation, CreatePermission, ChannelBind and (RFC 6062)
//!   Connect to loopback, private, metadata, link-local, multicast and every IPv6 encoding
//!   of them, and to the server's own address: refused (403) or not.
//! - [`slowloris`]: a TCP connection that never completes a message: does the server
//!   close it before `--slow-max`?
//!
//! The tool sends only to HOST:PORT (UDP) and HOST:`--tcp-port` (TCP), from its own
//! address. Exit status: 0 when no probe FAILs, 1 when one does, 2 for a bad command
//! line, an address that does not resolve, or a run in which no probe passed either
//! (nothing answered). FAIL-soft (a refusal for another reason than the peer policy, so
//! the policy was not exercised) and SKIP do not fail the run.
//!
//! The peer and amplification probes run while the slowloris probe waits in its own
//! thread, so a run with the defaults takes about `--slow-max` (60 s), under 2 minutes.

mod amplification;
mod peers;
mod slowloris;

use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;
use turnpike_bench::Credentials;

/// `turnpike selftest` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct SelftestArgs {
    /// The deployment to probe: its UDP STUN/TURN address (a name resolves once; only its
    /// first address is probed).
    #[arg(long, value_name = "HOST:PORT")]
    attack: String,
    /// A TURN REST shared secret: credentials `<expiry>:selftest` are minted from it.
    #[arg(long, value_name = "S", conflicts_with_all = ["username", "password"])]
    secret: Option<String>,
    /// A long-term username (with --password).
    #[arg(long, value_name = "U", requires = "password")]
    username: Option<String>,
    /// The password of --username.
    #[arg(long, value_name = "P", requires = "username")]
    password: Option<String>,
    /// The realm the server should announce; a different one is reported (INFO).
    #[arg(long, value_name = "R")]
    realm: Option<String>,
    /// The TCP port for TURN over TCP (Connect, slowloris). Default: the port of --attack.
    #[arg(long, value_name = "N")]
    tcp_port: Option<u16>,
    /// Slowloris: seconds between the bytes of the never-completed message.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    slow_interval: u64,
    /// Slowloris: the longest the probe holds its connection, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    slow_max: u64,
    /// Print one JSON document at the end instead of a line per probe.
    #[arg(long)]
    json: bool,
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The server behaved as a hardened deployment must.
    Pass,
    /// The server did what an attacker wants (amplified, relayed inward, held on).
    Fail,
    /// Refused, but not by the peer policy (another family, another error, no answer):
    /// the policy for this address was not exercised.
    FailSoft,
    /// Not run (no credentials, no TCP listener, out of time).
    Skip,
    /// A figure to know, with no bound to hold it to.
    Info,
}

impl Verdict {
    /// The word printed for it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::FailSoft => "FAIL-soft",
            Self::Skip => "SKIP",
            Self::Info => "INFO",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One probe's verdict.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    /// `amplification`, `peers` or `slowloris`.
    pub(crate) group: &'static str,
    /// What was sent.
    pub(crate) probe: String,
    /// The verdict.
    pub(crate) verdict: Verdict,
    /// Why, with the figures.
    pub(crate) detail: String,
    /// Bytes sent and bytes received, for the amplification probes.
    pub(crate) bytes: Option<(usize, usize)>,
}

impl Finding {
    /// A finding without byte counts.
    pub(crate) fn new(
        group: &'static str,
        probe: impl Into<String>,
        verdict: Verdict,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            group,
            probe: probe.into(),
            verdict,
            detail: detail.into(),
            bytes: None,
        }
    }
}

/// Collects the findings; in text mode prints each as it comes.
#[derive(Debug)]
pub(crate) struct Report {
    json: bool,
    findings: Vec<Finding>,
}

impl Report {
    fn new(json: bool) -> Self {
        Self {
            json,
            findings: Vec::new(),
        }
    }

    /// Records (and in text mode prints) a finding.
    pub(crate) fn add(&mut self, f: Finding) {
        if !self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<9} {:<13} {}: {}",
                f.verdict.label(),
                f.group,
                f.probe,
                f.detail
            );
            let _ = out.flush();
        }
        self.findings.push(f);
    }

    fn count(&self, v: Verdict) -> usize {
        self.findings.iter().filter(|f| f.verdict == v).count()
    }

    fn finish(&self, target: SocketAddr, tcp: SocketAddr, took: Duration) -> ExitCode {
        let counts = [
            Verdict::Pass,
            Verdict::Fail,
            Verdict::FailSoft,
            Verdict::Skip,
            Verdict::Info,
        ]
        .map(|v| (v, self.count(v)));
        if self.json {
            let findings: Vec<_> = self
                .findings
                .iter()
                .map(|f| {
                    let mut o = json!({
                        "group": f.group,
                        "probe": f.probe,
                        "verdict": f.verdict.label(),
                        "detail": f.detail,
                    });
                    if let Some((sent, got)) = f.bytes {
                        o["bytes_in"] = json!(sent);
                        o["bytes_out"] = json!(got);
                    }
                    o
                })
                .collect();
            let summary: serde_json::Map<_, _> = counts
                .iter()
                .map(|(v, n)| (v.label().to_owned(), json!(n)))
                .collect();
            let doc = json!({
                "target": target.to_string(),
                "tcp": tcp.to_string(),
                "seconds": took.as_secs_f64(),
                "summary": summary,
                "findings": findings,
            });
            println!("{doc}");
        } else {
            let parts: Vec<String> = counts.iter().map(|(v, n)| format!("{n} {v}")).collect();
            println!(
                "selftest {target} (tcp {tcp}): {} in {:.1} s",
                parts.join(", "),
                took.as_secs_f64()
            );
        }
        if self.count(Verdict::Fail) > 0 {
            ExitCode::FAILURE
        } else if self.count(Verdict::Pass) == 0 {
            // Nothing was tested (no server there, say): not a clean bill of health.
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Runs `turnpike selftest`.
pub(crate) fn run(args: &SelftestArgs) -> ExitCode {
    let target = match args.attack.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            eprintln!("turnpike selftest: {} resolves to no address", args.attack);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("turnpike selftest: {}: {e}", args.attack);
            return ExitCode::from(2);
        }
    };
    let tcp = SocketAddr::new(target.ip(), args.tcp_port.unwrap_or_else(|| target.port()));
    let credentials = match (&args.secret, &args.username, &args.password) {
        (Some(secret), _, _) => Some(Credentials::Rest {
            secret: secret.clone(),
            user: "selftest".into(),
        }),
        (None, Some(user), Some(password)) => Some(Credentials::Static {
            user: user.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    let started = Instant::now();
    let mut report = Report::new(args.json);
    let slow = slowloris::Params {
        interval: Duration::from_secs(args.slow_interval),
        max: Duration::from_secs(args.slow_max),
    };
    if !args.json {
        println!(
            "selftest {target} (tcp {tcp}): amplification, peer policy; slowloris runs alongside for up to {} s",
            args.slow_max
        );
    }
    let findings = std::thread::scope(|s| {
        let slowloris = s.spawn(|| slowloris::run(tcp, slow));
        amplification::run(target, args.realm.as_deref(), &mut report);
        match &credentials {
            Some(c) => peers::run(target, tcp, c, &mut report),
            None => report.add(Finding::new(
                "peers",
                "peer policy",
                Verdict::Skip,
                "no credentials (--secret, or --username and --password): no allocation to probe with",
            )),
        }
        slowloris.join()
    });
    match findings {
        Ok(f) => report.add(f),
        Err(_) => report.add(Finding::new(
            "slowloris",
            "incomplete message over TCP",
            Verdict::Skip,
            "the probe's thread panicked",
        )),
    }
    report.finish(target, tcp, started.elapsed())
}
