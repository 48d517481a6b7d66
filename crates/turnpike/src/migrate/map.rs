//! The mapping: coturn options → `turnserver.toml` keys, and for each option turnpike has
//! no equivalent for, why it is not carried. docs/MIGRATING.md is the same table in
//! prose.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::cidr::{self, Range};
use super::emit::{Document, Value, string};
use super::parse::Entry;

/// Something of the coturn file that was not carried over (or carried with a caveat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// The line, when one is at fault.
    pub(crate) line: Option<usize>,
    /// The coturn option.
    pub(crate) key: String,
    /// Why.
    pub(crate) reason: String,
}

/// Options whose meaning is already turnpike's behaviour: nothing to write.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "fingerprint",
        "turnpike answers with FINGERPRINT whenever the request has one",
    ),
    (
        "lt-cred-mech",
        "long-term credentials are the only mechanism turnpike has",
    ),
    (
        "use-auth-secret",
        "REST secrets are used whenever [turn] secrets holds one",
    ),
    ("no-dtls", "turnpike has no DTLS listener"),
    (
        "no-multicast-peers",
        "multicast peers are refused by default ([peers])",
    ),
    (
        "no-loopback-peers",
        "loopback peers are refused by default ([peers])",
    ),
    (
        "no-software-attribute",
        "no SOFTWARE attribute is sent by default ([stun] software)",
    ),
    ("stateless-nonce", "turnpike's nonces are always stateless"),
    ("no-tlsv1", "turnpike speaks TLS 1.2 and 1.3 only"),
    ("no-tlsv1_1", "turnpike speaks TLS 1.2 and 1.3 only"),
];

/// Why an option is not carried over.
fn not_carried(key: &str) -> Option<&'static str> {
    Some(match key {
        "userdb" | "psql-userdb" | "mysql-userdb" | "mongo-userdb" | "redis-userdb" => {
            "turnpike has no user database: list users in [turn] users (turnadmin -l prints \
             them with their keys) or use REST secrets"
        }
        "redis-statsdb" => "turnpike publishes statistics as Prometheus metrics, not to Redis",
        "secret-key-file" => "turnpike has no database whose keys it encrypts",
        "no-auth" => "turnpike always requires long-term credentials for TURN",
        "oauth" | "server-name" => "turnpike does not implement third-party (oAuth) authorization",
        "rest-api-separator" => {
            "turnpike's REST usernames are separated by ':' (either order); only ':' is carried"
        }
        "bps-capacity" => {
            "turnpike has no server-wide bandwidth cap; see [quotas] for per-allocation and per-user limits"
        }
        "channel-lifetime" | "permission-lifetime" => {
            "turnpike keeps the RFC 8656 lifetimes (600 s channels, 300 s permissions)"
        }
        "no-udp-relay" => "turnpike always offers UDP relays",
        "dtls" => "turnpike has no DTLS listener",
        "cli-ip" | "cli-port" | "cli-password" | "cli-max-output-sessions" | "cli" => {
            "turnpike has an HTTP admin API with a bearer token instead of the telnet CLI \
             ([admin], `turnpike ctl`)"
        }
        "web-admin" | "web-admin-ip" | "web-admin-port" | "web-admin-listen-on-workers" => {
            "turnpike has no web admin; use the HTTP admin API ([admin], `turnpike ctl`)"
        }
        "prometheus-username-labels" => "turnpike keeps metric labels bounded: no per-user label",
        "log-file" => {
            "turnpike logs to stderr (under systemd: the journal); redirect it to a file if needed"
        }
        "syslog" | "syslog-facility" => {
            "turnpike logs to stderr; under systemd the journal forwards it to syslog"
        }
        "simple-log"
        | "new-log-timestamp"
        | "new-log-timestamp-format"
        | "no-stdout-log"
        | "log-binding"
        | "log-min-level" => "turnpike's logging is set by [log] level and format only",
        "pidfile" | "proc-user" | "proc-group" => {
            "turnpike does not daemonize: the service manager (systemd User=, PIDFile) does this"
        }
        "pkey-pwd" => "turnpike reads unencrypted PEM keys only",
        "cipher-list" | "ec-curve-name" | "dh-file" | "CA-file" | "no-tlsv1_2" | "tlsv1"
        | "tlsv1_1" => "turnpike uses rustls' safe defaults (TLS 1.2 and 1.3), not configurable",
        "secure-stun" => "turnpike answers Binding requests without authentication",
        "no-stun" | "stun-only" => "turnpike always serves both STUN and TURN",
        "listening-device" | "relay-device" => {
            "turnpike binds to addresses, not devices: use listening-ip / relay-ip"
        }
        "aux-server" | "udp-self-balance" => "turnpike has no auxiliary servers",
        "relay-threads" | "cpus" => {
            "turnpike runs one worker per core by default ([runtime] workers)"
        }
        "max-allocate-timeout"
        | "allocation-default-address-family"
        | "keep-address-family"
        | "check-origin-consistency"
        | "include-reason-string"
        | "respond-http-unsupported"
        | "ne"
        | "sock-buf-size"
        | "udp-recvmmsg"
        | "udp-recvmmsg-log"
        | "udp-gso"
        | "drain-min-allocations"
        | "acme-redirect"
        | "multiplex-peer"
        | "multiplex-peer-port"
        | "multiplex-peer-max-peers"
        | "raw-public-keys"
        | "tcp-proxy-port"
        | "server-relay"
        | "unauthorized-ratelimit"
        | "unauthorized-ratelimit-rps"
        | "stateless-nonce-secret" => "turnpike has no equivalent setting",
        _ => return None,
    })
}

/// The coturn file, read.
pub(crate) struct Migration<'a> {
    pub(crate) file: &'a str,
    dir: &'a Path,
    by_key: BTreeMap<&'a str, Vec<&'a Entry>>,
    /// What was not carried, in line order when done.
    pub(crate) notes: Vec<Note>,
    /// The TOML being written.
    pub(crate) doc: Document,
    /// `[alternates]` lists gathered so far.
    pub(crate) alternates: BTreeMap<&'static str, Vec<(String, usize)>>,
}

impl<'a> Migration<'a> {
    /// Starts a migration of `entries` read from `file` (relative paths in it are
    /// relative to `dir`, as coturn takes them).
    pub(crate) fn new(file: &'a str, dir: &'a Path, entries: &'a [Entry]) -> Self {
        let mut by_key: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in entries {
            by_key.entry(e.key.as_str()).or_default().push(e);
        }
        Self {
            file,
            dir,
            by_key,
            notes: Vec::new(),
            doc: Document::default(),
            alternates: BTreeMap::new(),
        }
    }

    pub(crate) fn all(&self, key: &str) -> Vec<&'a Entry> {
        self.by_key.get(key).cloned().unwrap_or_default()
    }

    /// The last occurrence of a single-valued option (coturn keeps the last); earlier
    /// ones are noted.
    pub(crate) fn last(&mut self, key: &str) -> Option<&'a Entry> {
        let all = self.all(key);
        let (last, earlier) = all.split_last()?;
        for e in earlier {
            self.note(
                e,
                format!("overridden by line {} (the last one counts)", last.line),
            );
        }
        Some(*last)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    pub(crate) fn note(&mut self, e: &Entry, reason: impl Into<String>) {
        self.notes.push(Note {
            line: Some(e.line),
            key: e.key.clone(),
            reason: reason.into(),
        });
    }

    pub(crate) fn from(&self, entries: &[&Entry]) -> Vec<String> {
        if entries.is_empty() {
            return vec!["coturn's default: every address, port 3478".to_owned()];
        }
        let mut sorted = entries.to_vec();
        sorted.sort_by_key(|e| e.line);
        let lines: Vec<String> = sorted.iter().map(|e| e.line.to_string()).collect();
        let mut keys: Vec<&str> = Vec::new();
        for e in &sorted {
            if !keys.contains(&e.key.as_str()) {
                keys.push(&e.key);
            }
        }
        vec![format!(
            "from {}:{} ({})",
            self.file,
            lines.join(","),
            keys.join(", ")
        )]
    }

    /// A number option's value, or a note.
    pub(crate) fn number<T: std::str::FromStr>(&mut self, e: &Entry) -> Option<T> {
        let parsed = e.value.as_deref().and_then(|v| v.parse().ok());
        if parsed.is_none() {
            self.note(e, format!("{:?} is not a valid number here", e.value));
        }
        parsed
    }

    /// Runs every part of the mapping.
    pub(crate) fn run(mut self) -> Self {
        self.doc.header(format!(
            "turnpike configuration migrated from coturn's {} by `turnpike migrate-coturn`.",
            self.file
        ));
        self.doc.header(
            "Each key names the coturn line(s) it comes from; keys not written keep turnpike's \
             documented default (`turnpike default-config`).",
        );
        self.listen();
        super::map_more::turn(&mut self);
        super::map_more::relay_and_peers(&mut self);
        super::map_more::quotas_tls_alternates(&mut self);
        super::map_more::operations(&mut self);
        self.leftovers();
        self.notes.sort_by_key(|n| n.line.unwrap_or(0));
        self
    }

    /// `[listen]` from listening-ip, the ports and the no-udp / no-tcp / no-tls flags.
    fn listen(&mut self) {
        let ips_e = self.all("listening-ip");
        let mut ips: Vec<(IpAddr, usize)> = Vec::new();
        for e in &ips_e {
            match e.value.as_deref().map(str::parse::<IpAddr>) {
                Some(Ok(ip)) => ips.push((ip, e.line)),
                None => ips.push((IpAddr::from([0, 0, 0, 0]), e.line)),
                Some(Err(_)) => self.note(e, "not an IP address"),
            }
        }
        if ips.is_empty() {
            // coturn listens on every address when none is given.
            ips = vec![
                (IpAddr::from([0, 0, 0, 0]), 0),
                (IpAddr::from([0u16; 8]), 0),
            ];
        }
        let port = |m: &mut Self, key: &str, default: u16| {
            m.last(key)
                .and_then(|e| m.number::<u16>(e).map(|p| (p, Some(e))))
                .unwrap_or((default, None))
        };
        let (udp_port, port_e) = port(self, "listening-port", 3478);
        let (tls_port, tls_e) = port(self, "tls-listening-port", 5349);
        let (alt_port, alt_e) = port(self, "alt-listening-port", 0);
        let (alt_tls_port, alt_tls_e) = port(self, "alt-tls-listening-port", 0);
        let no_udp = self.last("no-udp").is_some();
        let no_tcp = self.last("no-tcp").is_some();
        let tls = self.tls_enabled();
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let push = |list: &mut Vec<(String, usize)>, ip: IpAddr, port: u16, line: usize| {
            let text = string(&SocketAddr::new(ip, port).to_string());
            if !list.iter().any(|(t, _)| *t == text) {
                list.push((text, line));
            }
        };
        for &(ip, line) in &ips {
            for (p, on) in [(udp_port, true), (alt_port, alt_port != 0)] {
                if on && !no_udp {
                    push(&mut udp, ip, p, line);
                }
                if on && !no_tcp {
                    push(&mut tcp, ip, p, line);
                }
            }
            if tls {
                for (p, on) in [(tls_port, true), (alt_tls_port, alt_tls_port != 0)] {
                    if on {
                        push(&mut tcp, ip, p, line);
                    }
                }
            }
        }
        let mut from: Vec<&Entry> = ips_e.clone();
        from.extend([port_e, tls_e, alt_e, alt_tls_e].into_iter().flatten());
        let mut comment = self.from(&from);
        if alt_port != 0 || alt_tls_port != 0 {
            comment.push(
                "coturn's alternative ports are plain listeners here; RFC 5780 NAT discovery \
                 needs [rfc5780] (not set)"
                    .to_owned(),
            );
        }
        self.doc
            .set("listen", "udp", Value::List(udp), comment.clone());
        if tls {
            comment.push(
                "TCP listeners take plain TCP and TLS on the same port (told apart by the \
                 first byte)"
                    .to_owned(),
            );
        }
        self.doc.set("listen", "tcp", Value::List(tcp), comment);
        if no_tcp && tls {
            if let Some(e) = self.last("no-tcp") {
                self.note(
                    e,
                    "the TLS ports also accept plain TCP in turnpike (told apart by the first \
                     byte): TCP cannot be refused there",
                );
            }
        }
        if !tls {
            if let Some(e) = tls_e {
                self.note(
                    e,
                    "no TLS listener: TLS needs cert and pkey (and no no-tls)",
                );
            }
        }
    }

    /// Whether coturn would serve TLS: cert and pkey given, no `no-tls`.
    pub(crate) fn tls_enabled(&self) -> bool {
        self.has("cert") && self.has("pkey") && !self.has("no-tls")
    }

    /// A path as coturn reads it: relative ones from the configuration's directory.
    pub(crate) fn path(&self, value: &str) -> String {
        let p = Path::new(value);
        if p.is_absolute() {
            value.to_owned()
        } else {
            self.dir.join(p).display().to_string()
        }
    }

    /// Options that no part handled: a default, a known reason, or unknown.
    fn leftovers(&mut self) {
        let handled = super::map_more::HANDLED;
        let all: Vec<&Entry> = self.by_key.values().flatten().copied().collect();
        for e in all {
            let key = e.key.as_str();
            if handled.contains(&key)
                || (key == "rest-api-separator" && e.value.as_deref() == Some(":"))
            {
                continue;
            }
            if let Some((_, why)) = DEFAULTS.iter().find(|(k, _)| *k == key) {
                if !why.is_empty() {
                    self.doc
                        .header(format!("{}:{} {key}: {why}.", self.file, e.line));
                }
                continue;
            }
            let reason = not_carried(key).unwrap_or("not an option this migrator knows");
            self.note(e, format!("not carried: {reason}"));
        }
    }

    /// Adds a note with no line.
    pub(crate) fn general(&mut self, key: &str, reason: impl Into<String>) {
        self.notes.push(Note {
            line: None,
            key: key.to_owned(),
            reason: reason.into(),
        });
    }
}

/// Peer ranges of the given option, as ranges with their lines.
pub(crate) fn ranges(m: &mut Migration<'_>, key: &str) -> Vec<(Range, usize)> {
    let mut out = Vec::new();
    for e in m.all(key) {
        match e.value.as_deref().map(Range::parse) {
            Some(Ok(r)) => out.push((r, e.line)),
            Some(Err(err)) => m.note(e, format!("not carried: {err}")),
            None => m.note(e, "not carried: no address given"),
        }
    }
    out
}

/// Denied ranges less the allowed ones (coturn lets allowed win; turnpike's deny wins).
pub(crate) fn deny_list(deny: &[(Range, usize)], allow: &[(Range, usize)]) -> Vec<(String, usize)> {
    let holes: Vec<Range> = allow.iter().map(|(r, _)| *r).collect();
    deny.iter()
        .flat_map(|(r, line)| {
            cidr::subtract(&[*r], &holes)
                .into_iter()
                .flat_map(Range::cidrs)
                .map(move |c| (string(&c), *line))
        })
        .collect()
}
