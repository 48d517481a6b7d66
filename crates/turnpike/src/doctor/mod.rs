//! `turnpike doctor`: checks a deployment from inside the machine it runs on and prints
//! one verdict per check: OK, WARN or FAIL, one line why, and a hint when there is
//! something to do.
//!
//! The checks, in order:
//!
//! - each listener: free to bind, or bound by a server that answers a STUN Binding on it
//!   (doctor may run beside the running server) — else FAIL ([`network`]);
//! - the relay IPs are the machine's ([`network`]);
//! - the cloud metadata service, if one answers within about a second ([`metadata`]);
//! - each `external_ip` against the machine's addresses and the metadata service's
//!   public IPv4, and every advertised relay address against the peer policy: one it
//!   denies makes two clients of this server unable to relay to each other ([`network`]);
//! - the `[tls]` certificate: chain order, expiry (WARN under 14 days, FAIL expired) and
//!   name against `[listen] public_name` ([`cert`]);
//! - the clock: not before this binary's build time, and against the metadata service's
//!   `Date:` when it answered (TURN REST credentials carry an expiry time) ([`system`]);
//! - the open-files limit against the relay port range ([`system`]);
//! - the ports a firewall must let in, per transport ([`system`]);
//! - `[offload]`: off, or whether the kernel takes the fast path's program on the
//!   interfaces it would use, loaded and verified but not attached ([`offload`]).
//!
//! Exit status: 0 when no check FAILs, 1 when one does; 2 (from the caller) when the
//! configuration cannot be read. Doctor sends only to this machine's own listeners and
//! to the metadata base URL (`TURNPIKE_METADATA_URL`, default `http://169.254.169.254`).

mod cert;
mod metadata;
mod network;
mod offload;
mod system;

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use turnpike_server::Config;

/// `turnpike doctor` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// Do not ask a cloud metadata service (on premises, or where asking is not wanted).
    #[arg(long)]
    no_metadata: bool,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verdict {
    /// Fine.
    Ok,
    /// Works, but something should be looked at.
    Warn,
    /// Will not work as configured.
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so `{:<4}` lines the verdicts up.
        f.pad(match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        })
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    /// What was checked (`listener udp 0.0.0.0:3478`, `relay ip 10.0.0.5`).
    pub(crate) name: String,
    /// The verdict.
    pub(crate) verdict: Verdict,
    /// One line why.
    pub(crate) why: String,
    /// What to do, if anything.
    pub(crate) hint: Option<String>,
}

impl Check {
    /// An OK check.
    pub(crate) fn ok(name: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Ok,
            why: why.into(),
            hint: None,
        }
    }

    /// A WARN or FAIL check with its hint.
    pub(crate) fn bad(
        verdict: Verdict,
        name: impl Into<String>,
        why: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            verdict,
            why: why.into(),
            hint: Some(hint.into()),
        }
    }

    /// Adds a hint.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The environment variable naming the metadata service's base URL (tests point it at
/// a fake one on loopback, or at a closed port for "absent").
pub(crate) const METADATA_URL_ENV: &str = "TURNPIKE_METADATA_URL";

/// The time the metadata probe may take in all.
const METADATA_BUDGET: Duration = Duration::from_secs(1);

/// Runs every check on `config`, prints them, and answers the exit status.
pub(crate) fn run(args: &DoctorArgs, config: &Config) -> ExitCode {
    let checks = checks(args, config);
    let mut stdout = std::io::stdout().lock();
    print(&mut stdout, &checks);
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Every check, in the order printed.
fn checks(args: &DoctorArgs, config: &Config) -> Vec<Check> {
    let machine = crate::host_check::machine_addresses().unwrap_or_default();
    let mut out = Vec::new();
    out.extend(network::listeners(config));
    out.extend(network::relay_ips(config, &machine));
    let probe = if args.no_metadata {
        metadata::Probe::Skipped
    } else {
        let base = std::env::var(METADATA_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| metadata::DEFAULT_URL.to_owned());
        metadata::probe(&base, METADATA_BUDGET)
    };
    out.push(network::metadata(&probe));
    out.extend(network::external_ips(config, &machine, &probe));
    out.extend(network::advertised_vs_policy(config));
    out.extend(cert::checks(config));
    out.push(system::clock(&probe));
    out.push(system::open_files(config));
    out.extend(system::firewall(config));
    out.push(offload::check(config));
    out
}

/// Writes the checks, one line each (and a hint line), then a summary.
fn print(out: &mut impl std::io::Write, checks: &[Check]) {
    for c in checks {
        let _ = writeln!(out, "{:<4} {}: {}", c.verdict, c.name, c.why);
        if let Some(hint) = &c.hint {
            let _ = writeln!(out, "     hint: {hint}");
        }
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        out,
        "doctor: {} OK, {} WARN, {} FAIL",
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail)
    );
}
