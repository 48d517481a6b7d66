//! What a configuration needs from the machine it runs on, checked before anything is
//! bound: every address it names is one of the machine's, the TLS certificate and key
//! load and match, and no other process holds a listener's port. A file can be valid and
//! still fail all three on the wrong host, so these are not part of
//! [`turnpike_server::Config::validate`]; `check-config` runs them all, `run` runs the
//! address check before binding and gets the other two from
//! [`turnpike_server::Server::bind`] (which loads the TLS files once and probes each
//! port just before binding it, see [`turnpike_server::busy`]). `doctor` reuses the
//! pieces.
//!
//! Each problem names the key at fault, so the binary can point at its line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use turnpike_server::tls::{self, TlsError};
use turnpike_server::{Config, StartError, Transport, busy};

use crate::config::ConfigError;

/// One thing the machine does not give the configuration: the key at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The dotted key (`relay.ips.0`, `listen.udp.1`, `tls.key`).
    pub(crate) key: String,
    /// What is wrong.
    pub(crate) reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// The machine's own IP addresses (every interface, loopback included).
///
/// # Errors
///
/// The interfaces cannot be listed.
pub(crate) fn machine_addresses() -> std::io::Result<Vec<IpAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .collect())
}

/// Whether the kernel lets sockets bind addresses the machine does not have
/// (`net.ipv4.ip_nonlocal_bind` / `net.ipv6.ip_nonlocal_bind`): an operator with a
/// floating address (keepalived, a VIP that moves on failover) sets it on purpose.
pub(crate) fn nonlocal_bind(v6: bool) -> bool {
    let family = if v6 { "ipv6" } else { "ipv4" };
    std::fs::read_to_string(format!("/proc/sys/net/{family}/ip_nonlocal_bind"))
        .is_ok_and(|v| v.trim() == "1")
}

/// Whether `ip` is an address of this machine as the kernel sees it: a UDP socket can be
/// bound to it (any port), rather than `EADDRNOTAVAIL`. That covers what listing the
/// interfaces misses: all of 127.0.0.0/8, AnyIP routes, and `ip_nonlocal_bind` (then
/// every address binds, as the server's sockets would). Other errors (a link-local IPv6
/// address without its scope, say) cannot tell, and count as local.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    match std::net::UdpSocket::bind(SocketAddr::new(ip, 0)) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::AddrNotAvailable,
    }
}

/// Every configured address with its key: `[relay] ips`, the listeners and RFC 5780's
/// addresses (unspecified ones included; callers skip them).
pub(crate) fn configured_addresses(config: &Config) -> Vec<(String, IpAddr)> {
    let mut out: Vec<(String, IpAddr)> = Vec::new();
    for (i, ip) in config.relay.ips.iter().enumerate() {
        out.push((format!("relay.ips.{i}"), *ip));
    }
    for (name, list) in [("udp", &config.listen.udp), ("tcp", &config.listen.tcp)] {
        for (i, addr) in list.iter().enumerate() {
            out.push((format!("listen.{name}.{i}"), addr.ip()));
        }
    }
    if let Some(set) = &config.rfc5780 {
        for addr in set.listen_addresses() {
            if !out.iter().any(|(_, ip)| *ip == addr.ip()) {
                out.push(("rfc5780.ips".to_owned(), addr.ip()));
            }
        }
    }
    out
}

/// The configured addresses that are not the machine's ([`is_local`]): a relay IP that is
/// not here makes every Allocate fail (508), a listener one cannot be bound. `0.0.0.0`
/// and `::` are fine.
pub(crate) fn absent_addresses(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (key, ip) in configured_addresses(config) {
        if ip.is_unspecified() || is_local(ip) {
            continue;
        }
        if problems.iter().any(|p: &Problem| p.key == key) {
            continue;
        }
        let consequence = if key.starts_with("relay.") {
            "; every Allocate would fail with 508"
        } else {
            ""
        };
        problems.push(Problem {
            reason: format!(
                "{ip} is not an address of this machine (not on any interface{consequence})"
            ),
            key,
        });
    }
    problems
}

/// The `[tls]` files do not load or the key does not match the certificate (the
/// server's own loader, [`tls::acceptor`], decides).
pub(crate) fn tls_problem(config: &Config) -> Option<Problem> {
    let files = config.tls.as_ref()?;
    tls::acceptor(files).err().map(|e| tls_error(config, &e))
}

/// A TLS error as a [`Problem`] at `tls.cert` or `tls.key`, whichever file it is about.
pub(crate) fn tls_error(config: &Config, e: &TlsError) -> Problem {
    let key = match &config.tls {
        Some(files) if files.key == e.file && files.cert != e.file => "tls.key",
        _ => "tls.cert",
    };
    Problem {
        key: key.to_owned(),
        reason: format!("cannot be used for TLS: {e}"),
    }
}

/// The key of a listener (`listen.udp.1`), or `rfc5780.ips` for one of RFC 5780's.
pub(crate) fn listener_key(config: &Config, transport: Transport, address: SocketAddr) -> String {
    let (name, list) = match transport {
        Transport::Udp => ("udp", &config.listen.udp),
        Transport::Tcp => ("tcp", &config.listen.tcp),
    };
    match list.iter().position(|a| *a == address) {
        Some(i) => format!("listen.{name}.{i}"),
        None => "rfc5780.ips".to_owned(),
    }
}

/// Every listener with its transport (RFC 5780's UDP addresses among them).
pub(crate) fn listeners(config: &Config) -> Vec<(Transport, SocketAddr)> {
    let mut out: Vec<(Transport, SocketAddr)> = Vec::new();
    out.extend(config.listen.udp.iter().map(|a| (Transport::Udp, *a)));
    if let Some(set) = &config.rfc5780 {
        for addr in set.listen_addresses() {
            if !out.contains(&(Transport::Udp, addr)) {
                out.push((Transport::Udp, addr));
            }
        }
    }
    out.extend(config.listen.tcp.iter().map(|a| (Transport::Tcp, *a)));
    out
}

/// Why a listener is busy, with its holder when `/proc` shows it.
pub(crate) fn busy_reason(transport: Transport, address: SocketAddr) -> String {
    let holder = match crate::sockets::holder(transport, address) {
        Some(h) => format!(" ({h})"),
        None => String::new(),
    };
    format!(
        "{transport} {address} is already in use by another process{holder}; \
         a second server on the same port would take part of its clients"
    )
}

/// The listeners another process holds now. One held by a running turnpike is not a
/// problem for `check-config`: checking a file before a reload (SIGHUP keeps the
/// listeners) is the usual workflow; it is only said, on stderr. `run` still refuses it
/// (see [`start_problem`]).
pub(crate) fn busy_listeners(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (t, a) in listeners(config) {
        if !busy::in_use(t, a).unwrap_or(false) {
            continue;
        }
        let holder = crate::sockets::holder(t, a);
        if let Some((pid, name)) = holder.as_ref().and_then(|h| h.process.as_ref())
            && name == "turnpike"
            && *pid != std::process::id()
        {
            eprintln!(
                "turnpike: note: {t} {a} is held by a running turnpike (pid {pid}): fine for \
                 a reload of it, refused for a second server"
            );
            continue;
        }
        problems.push(Problem {
            key: listener_key(config, t, a),
            reason: busy_reason(t, a),
        });
    }
    problems
}

/// Everything `check-config` checks beyond the file: absent addresses, the TLS files,
/// busy listeners.
pub(crate) fn check_all(config: &Config) -> Vec<Problem> {
    let mut problems = absent_addresses(config);
    problems.extend(tls_problem(config));
    problems.extend(busy_listeners(config));
    problems
}

/// A start error that is the configuration's fault on this machine (busy listener,
/// unusable TLS files) as a [`Problem`]; `None` for the others.
pub(crate) fn start_problem(config: &Config, e: &StartError) -> Option<Problem> {
    match e {
        StartError::Busy { address, transport } => Some(Problem {
            key: listener_key(config, *transport, *address),
            reason: busy_reason(*transport, *address),
        }),
        StartError::Tls(e) => Some(tls_error(config, e)),
        _ => None,
    }
}

/// A problem as a configuration error at its key's line in `text` (the file's text,
/// when it can be read again), named `file`: printed `file:line:col: key: reason`.
pub(crate) fn located(file: &str, text: Option<&str>, problem: &Problem) -> ConfigError {
    ConfigError {
        file: file.to_owned(),
        problems: vec![crate::config::Problem {
            position: text.and_then(|t| crate::config::position_of(t, &problem.key)),
            reason: problem.to_string(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absent_specific_addresses_are_problems() {
        let mut config = Config::default();
        // 127.0.0.2: loopback is all of 127.0.0.0/8, though only 127.0.0.1 is listed.
        config.relay.ips = vec![
            "127.0.0.2".parse().unwrap(),
            "203.0.113.77".parse().unwrap(),
        ];
        config.listen.udp = vec!["0.0.0.0:3478".parse().unwrap()];
        config.listen.tcp = vec!["203.0.113.77:3478".parse().unwrap()];
        let problems = absent_addresses(&config);
        if nonlocal_bind(false) {
            assert!(problems.is_empty());
            return;
        }
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["relay.ips.1", "listen.tcp.0"]);
        assert!(problems[0].reason.contains("508"), "{}", problems[0]);
    }

    #[test]
    fn listener_keys_follow_the_lists() {
        let mut config = Config::default();
        config.listen.udp = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let addr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(listener_key(&config, Transport::Udp, addr), "listen.udp.1");
    }
}
