//! Doctor's checks of the machine around the server: the clock, the open-files limit
//! against the relay port range, and the ports a firewall must let in.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use turnpike_server::Config;

use super::metadata::Probe;
use super::{Check, Verdict};

/// When this binary was built (unix seconds; see `build.rs`), a lower bound.
const BUILD_UNIX: &str = env!("TURNPIKE_BUILD_UNIX");

/// Clock skew against the reference up to which all is well (the HTTP date has
/// whole seconds, and REST credentials are minted with lifetimes of hours).
const SKEW_OK_SECS: i64 = 5;

/// Clock skew against the reference beyond which it FAILs: credentials minted by an
/// app server with a right clock expire early or late by this much, and one minted for
/// a short lifetime is refused at once.
const SKEW_FAIL_SECS: i64 = 60;

/// Seconds since the epoch, signed (negative before 1970).
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The clock: not before the build, and near the metadata service's `Date:`.
pub(super) fn clock(probe: &Probe) -> Check {
    let now = unix(SystemTime::now());
    let built: i64 = BUILD_UNIX.parse().unwrap_or(0);
    if now < built {
        return Check::bad(
            Verdict::Fail,
            "clock",
            format!(
                "the clock says {now} (unix), before this binary was built ({built}): TURN REST credentials (expiry in the username) are judged wrong"
            ),
            "set the clock (chrony / systemd-timesyncd)",
        );
    }
    let reference = match probe {
        Probe::Found(m) => m.date.map(|d| (m.provider, unix(d))),
        _ => None,
    };
    let Some((provider, then)) = reference else {
        return Check::ok(
            "clock",
            "after this binary's build time; skew unchecked (no reference clock: no metadata service answered)",
        );
    };
    // The Date was taken a moment ago: the local clock has moved on since.
    let skew = now - then;
    let why = format!("{skew:+} s against the {provider} metadata service's Date");
    let hint = "synchronise the clock (chrony / systemd-timesyncd): TURN REST credentials carry an expiry time";
    match skew.abs() {
        s if s <= SKEW_OK_SECS => Check::ok("clock", why),
        s if s <= SKEW_FAIL_SECS => Check::bad(Verdict::Warn, "clock", why, hint),
        _ => Check::bad(Verdict::Fail, "clock", why, hint),
    }
}

/// The hard limit on open files (`/proc/self/limits`); `None` for unlimited or unknown.
/// The server raises its soft limit to it at start.
fn nofile_hard_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files  <soft>  <hard>  files"
    line.split_whitespace().nth(4)?.parse().ok()
}

/// The open-files limit against what a full relay range needs.
///
/// Per allocation the server holds one UDP relay socket per family and, once it sends,
/// a socket connected to its main peer; it keeps a quarter of the limit for the latter,
/// so the relay sockets, the TCP connections (`[tcp] max_connections`) and the
/// listeners must fit in three quarters. FAIL when they do not (Allocates then get 508
/// or accepts fail before the range is used up), WARN when the connected sockets do not
/// fit beside them (sends take the slower unconnected path), OK otherwise.
pub(super) fn open_files(config: &Config) -> Check {
    let Some(limit) = nofile_hard_limit() else {
        return Check::ok("open files", "no limit on open files");
    };
    let ports = u64::from(config.relay.max_port - config.relay.min_port) + 1;
    let ips = if config.relay.ips.is_empty() {
        turnpike_server::relay::detect_relay_ips()
    } else {
        config.relay.ips.clone()
    };
    let families = [false, true]
        .iter()
        .filter(|&&v6| ips.iter().any(|ip: &IpAddr| ip.is_ipv6() == v6))
        .count()
        .max(1) as u64;
    let listeners = crate::host_check::listeners(config).len() as u64;
    let workers = config.runtime.worker_count() as u64;
    let base = config.tcp.max_connections as u64 + listeners * workers + 64;
    let relays = ports * families;
    let figures = format!(
        "limit {limit}; {ports} relay ports × {families} famil{} = {relays} relay sockets, \
         + {} for TCP connections, listeners and a margin",
        if families == 1 { "y" } else { "ies" },
        base
    );
    let hint = format!(
        "raise the limit (systemd: LimitNOFILE={}) or narrow [relay] ports / [tcp] max_connections",
        (base + 2 * relays).next_power_of_two()
    );
    if base + relays > limit / 4 * 3 {
        Check::bad(
            Verdict::Fail,
            "open files",
            format!("too low for the relay range: {figures} need more than three quarters of it"),
            hint,
        )
    } else if base + 2 * relays > limit {
        Check::bad(
            Verdict::Warn,
            "open files",
            format!(
                "enough for the relay sockets but not for a connected peer socket each: {figures}"
            ),
            hint,
        )
    } else {
        Check::ok("open files", figures)
    }
}

/// The inbound ports a firewall (and a cloud security group) must open, per transport.
pub(super) fn firewall(config: &Config) -> Vec<Check> {
    let listeners = crate::host_check::listeners(config);
    let range = format!("{}-{}", config.relay.min_port, config.relay.max_port);
    let ports = |want: turnpike_server::Transport| {
        let mut p: Vec<u16> = listeners
            .iter()
            .filter(|(t, _)| *t == want)
            .map(|(_, a)| a.port())
            .collect();
        p.sort_unstable();
        p.dedup();
        p.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let mut udp = ports(turnpike_server::Transport::Udp);
    let mut tcp = ports(turnpike_server::Transport::Tcp);
    udp.push(format!("{range} (relay)"));
    if config.turn.tcp_relay {
        tcp.push(format!("{range} (RFC 6062 relay)"));
    }
    let mut out = Vec::new();
    for (name, list) in [("udp", udp), ("tcp", tcp)] {
        if list.is_empty() {
            continue;
        }
        let plain: Vec<String> = list
            .iter()
            .map(|p| p.split(' ').next().unwrap_or(p).to_owned())
            .collect();
        out.push(
            Check::ok(
                format!("firewall {name}"),
                format!("open inbound {name} {}", list.join(", ")),
            )
            .with_hint(format!(
                "nft add rule inet filter input {name} dport {{ {} }} accept",
                plain.join(", ")
            )),
        );
    }
    out
}
