//! The rest of the mapping ([`super::map`] holds the frame and `[listen]`): `[turn]`,
//! `[relay]`, `[peers]`, `[quotas]`, `[tls]`, `[alternates]`, `[log]`, `[admin]` and
//! `[metrics]`.

use std::net::{IpAddr, SocketAddr};

use turnpike_proto::Md5Key;

use super::emit::{Value, string};
use super::map::{Migration, deny_list, ranges};
use super::parse::Entry;

/// Options these functions carry over (or explain themselves).
pub(crate) const HANDLED: &[&str] = &[
    "listening-ip",
    "listening-port",
    "tls-listening-port",
    "alt-listening-port",
    "alt-tls-listening-port",
    "no-udp",
    "no-tcp",
    "no-tls",
    "realm",
    "static-auth-secret",
    "use-auth-secret",
    "user",
    "lt-cred-mech",
    "stale-nonce",
    "max-allocate-lifetime",
    "mobility",
    "no-tcp-relay",
    "relay-ip",
    "external-ip",
    "min-port",
    "max-port",
    "allowed-peer-ip",
    "denied-peer-ip",
    "allow-loopback-peers",
    "user-quota",
    "total-quota",
    "max-bps",
    "cert",
    "pkey",
    "alternate-server",
    "tls-alternate-server",
    "udp-alternate-server",
    "tcp-alternate-server",
    "verbose",
    "Verbose",
    "no-cli",
    "prometheus",
    "prometheus-port",
];

fn scalar(v: impl Into<toml::Value>) -> Value {
    Value::Scalar(v.into())
}

/// `[turn]`: realm, secrets, users, nonce and allocation lifetimes, mobility, TCP relays.
pub(crate) fn turn(m: &mut Migration<'_>) {
    let realm = m.last("realm");
    if let Some(e) = realm {
        match &e.value {
            Some(r) => {
                let c = m.from(&[e]);
                m.doc.set("turn", "realm", scalar(r.as_str()), c);
            }
            None => m.note(e, "not carried: empty realm"),
        }
    }
    let secrets = m.all("static-auth-secret");
    let use_secret = m.last("use-auth-secret");
    if use_secret.is_some() {
        let mut list: Vec<(String, usize)> = Vec::new();
        for e in &secrets {
            match &e.value {
                Some(s) if !list.iter().any(|(t, _)| *t == string(s)) => {
                    list.push((string(s), e.line));
                }
                Some(_) => m.note(e, "the same secret again: listed once"),
                None => m.note(e, "not carried: empty secret"),
            }
        }
        if list.is_empty() {
            if let Some(e) = use_secret {
                m.note(
                    e,
                    "no static-auth-secret: coturn reads the secret from its database \
                     (turn_secret); put it in [turn] secrets",
                );
            }
        } else {
            let mut from = secrets.clone();
            from.extend(use_secret);
            let mut c = m.from(&from);
            c.push("several secrets are all accepted (rotation)".to_owned());
            m.doc.set("turn", "secrets", Value::List(list), c);
        }
    } else {
        for e in &secrets {
            m.note(e, "not carried: coturn ignores it without use-auth-secret");
        }
    }
    users(m, realm);
    if let Some(e) = m.last("stale-nonce") {
        // A bare `stale-nonce` means coturn's default, 600 s.
        let secs = match e.value {
            Some(_) => m.number::<u64>(e),
            None => Some(600),
        };
        if let Some(secs) = secs {
            let clamped = secs.clamp(30, 86_400);
            if clamped != secs {
                m.note(
                    e,
                    format!("{secs} s is outside turnpike's 30..=86400: {clamped} used"),
                );
            }
            let c = m.from(&[e]);
            m.doc
                .set("turn", "nonce_lifetime_secs", scalar(clamped as i64), c);
        }
    }
    if let Some(e) = m.last("max-allocate-lifetime") {
        if let Some(secs) = m.number::<u64>(e) {
            let clamped = secs.clamp(600, 86_400);
            if clamped != secs {
                m.note(
                    e,
                    format!("{secs} s is outside turnpike's 600..=86400: {clamped} used"),
                );
            }
            let c = m.from(&[e]);
            m.doc
                .set("turn", "max_lifetime_secs", scalar(clamped as i64), c);
        }
    }
    if let Some(e) = m.last("mobility") {
        let c = m.from(&[e]);
        m.doc.set("turn", "mobility", scalar(true), c);
    }
    if let Some(e) = m.last("no-tcp-relay") {
        let c = m.from(&[e]);
        m.doc.set("turn", "tcp_relay", scalar(false), c);
    }
    if !m.has("static-auth-secret") && !m.has("user") {
        m.general(
            "auth",
            "no static-auth-secret and no user lines: turnpike generates a random secret at \
             each start (printed on stdout) until [turn] secrets or users are set",
        );
    }
}

/// `user=name:password` and `user=name:0xKEY` lines.
fn users(m: &mut Migration<'_>, realm: Option<&Entry>) {
    let mut list: Vec<(String, usize)> = Vec::new();
    let mut from = Vec::new();
    for e in m.all("user") {
        let Some((name, secret)) = e.value.as_deref().and_then(|v| v.split_once(':')) else {
            m.note(
                e,
                "not carried: expected user=NAME:PASSWORD or user=NAME:0xKEY",
            );
            continue;
        };
        let name_t = string(name);
        let is_key = secret.starts_with("0x") || secret.starts_with("0X");
        let entry = if is_key {
            match secret.parse::<Md5Key>() {
                Ok(key) => {
                    let realm_name = realm.and_then(|r| r.value.as_deref());
                    let why = match realm_name {
                        Some(r) => format!(
                            "an MD5 key works only for the realm it was made with \
                             (turnadmin -k -r REALM); it is kept for realm {r:?}: a key made \
                             for another realm never verifies"
                        ),
                        None => "the coturn file sets no realm: the key was made for \
                                 coturn's realm, but turnpike's is \"turnpike\" ([turn] realm): \
                                 set [turn] realm to the realm the key was made with, or the \
                                 user cannot authenticate"
                            .to_owned(),
                    };
                    m.note(
                        e,
                        format!(
                            "carried as key = \"0x…\" (MD5 only: a client that picks SHA-256 \
                             gets 401); {why}"
                        ),
                    );
                    format!("{{ name = {name_t}, key = {} }}", string(&key.to_string()))
                }
                Err(err) => {
                    m.note(e, format!("not carried: {err}"));
                    continue;
                }
            }
        } else {
            if turnpike_stun::opaque_string(secret).is_err() {
                m.note(
                    e,
                    "not carried: the password is not a valid OpaqueString (RFC 8265)",
                );
                continue;
            }
            format!("{{ name = {name_t}, password = {} }}", string(secret))
        };
        // The last line of a name wins, as in the server.
        list.retain(|(t, _)| !t.starts_with(&format!("{{ name = {name_t},")));
        list.push((entry, e.line));
        from.push(e);
    }
    if !list.is_empty() {
        from.extend(m.last("lt-cred-mech"));
        let c = m.from(&from);
        m.doc.set("turn", "users", Value::List(list), c);
    }
}

/// `[relay]` and `[peers]`.
pub(crate) fn relay_and_peers(m: &mut Migration<'_>) {
    let mut ips: Vec<(String, usize)> = Vec::new();
    let mut families = [false, false];
    let relay_e = m.all("relay-ip");
    for e in &relay_e {
        match e.value.as_deref().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) if !families[usize::from(ip.is_ipv6())] => {
                families[usize::from(ip.is_ipv6())] = true;
                ips.push((string(&ip.to_string()), e.line));
            }
            Some(Ok(_)) => m.note(
                e,
                "not carried: turnpike relays from one IPv4 and one IPv6 address; the first \
                 of this family is kept",
            ),
            _ => m.note(e, "not carried: not an IP address"),
        }
    }
    if !ips.is_empty() {
        let c = m.from(&relay_e);
        m.doc.set("relay", "ips", Value::List(ips), c);
    }
    let ext_e = m.all("external-ip");
    let mut ext = Vec::new();
    for e in &ext_e {
        let v: String = e
            .value
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ok = match v.split_once('/') {
            Some((a, b)) => a.parse::<IpAddr>().is_ok() && b.parse::<IpAddr>().is_ok(),
            None => v.parse::<IpAddr>().is_ok(),
        };
        if ok {
            ext.push((string(&v), e.line));
        } else {
            m.note(
                e,
                "not carried: expected PUBLIC or PUBLIC/PRIVATE addresses",
            );
        }
    }
    if !ext.is_empty() {
        let c = m.from(&ext_e);
        m.doc.set("relay", "external_ip", Value::List(ext), c);
    }
    let min = m.last("min-port");
    let max = m.last("max-port");
    if min.is_some() || max.is_some() {
        let lo = min.and_then(|e| m.number::<u16>(e)).unwrap_or(49152);
        let hi = max.and_then(|e| m.number::<u16>(e)).unwrap_or(65535);
        let from: Vec<&Entry> = min.into_iter().chain(max).collect();
        if lo >= 1024 && lo < hi {
            let c = m.from(&from);
            m.doc.set("relay", "ports", scalar(format!("{lo}-{hi}")), c);
        } else {
            for e in from {
                m.note(
                    e,
                    format!("not carried: turnpike needs 1024 <= min < max, not {lo}-{hi}"),
                );
            }
        }
    }
    let allow = ranges(m, "allowed-peer-ip");
    let deny = ranges(m, "denied-peer-ip");
    let cidrs = |list: &[(super::cidr::Range, usize)]| -> Vec<(String, usize)> {
        list.iter()
            .flat_map(|(r, line)| r.cidrs().into_iter().map(move |c| (string(&c), *line)))
            .collect()
    };
    m.doc.note(
        "peers",
        "turnpike refuses private, loopback, link-local and other special ranges by default \
         (coturn allows all but loopback and multicast): open the ones your peers are in \
         with allow",
    );
    if !allow.is_empty() {
        let c = m.from(&m.all("allowed-peer-ip"));
        m.doc.set("peers", "allow", Value::List(cidrs(&allow)), c);
    }
    if !deny.is_empty() {
        let mut c = m.from(&m.all("denied-peer-ip"));
        c.push(
            "A-B ranges split into CIDR blocks; allowed addresses cut out (in coturn \
                allowed-peer-ip wins over denied-peer-ip, in turnpike deny wins)"
                .to_owned(),
        );
        m.doc
            .set("peers", "deny", Value::List(deny_list(&deny, &allow)), c);
    }
    if let Some(e) = m.last("allow-loopback-peers") {
        let c = m.from(&[e]);
        m.doc
            .set("peers", "dangerous_allow_loopback_peers", scalar(true), c);
    }
}

/// `[quotas]`, `[tls]` and `[alternates]`.
pub(crate) fn quotas_tls_alternates(m: &mut Migration<'_>) {
    for (key, toml_key) in [
        ("user-quota", "allocations_per_user"),
        ("total-quota", "allocations_total"),
    ] {
        if let Some(e) = m.last(key) {
            if let Some(n) = m.number::<u32>(e) {
                let c = m.from(&[e]);
                m.doc.set("quotas", toml_key, scalar(i64::from(n)), c);
            }
        }
    }
    if let Some(e) = m.last("max-bps") {
        if let Some(n) = m.number::<u32>(e) {
            let mut c = m.from(&[e]);
            c.push(
                "coturn caps each direction at max-bps; turnpike caps both directions \
                    together: twice the value"
                    .to_owned(),
            );
            m.doc.set(
                "quotas",
                "bandwidth_bytes_per_sec",
                scalar(i64::from(n) * 2),
                c,
            );
        }
    }
    let cert = m.last("cert");
    let pkey = m.last("pkey");
    match (cert, pkey) {
        (Some(c), Some(k)) if !m.has("no-tls") => {
            if let (Some(cv), Some(kv)) = (&c.value, &k.value) {
                let comment = m.from(&[c, k]);
                let (cp, kp) = (m.path(cv), m.path(kv));
                m.doc.set("tls", "cert", scalar(cp), comment.clone());
                m.doc.set("tls", "key", scalar(kp), comment);
            } else {
                m.note(c, "not carried: cert and pkey need file names");
            }
        }
        (Some(c), Some(k)) => {
            m.note(c, "not carried: no-tls is set");
            m.note(k, "not carried: no-tls is set");
        }
        (Some(e), None) | (None, Some(e)) => {
            m.note(e, "not carried: TLS needs both cert and pkey");
        }
        (None, None) => {}
    }
    // alternate-server serves UDP and TCP clients; the others one transport each.
    for (key, lists, default_port) in [
        ("alternate-server", &["udp", "tcp"][..], 3478),
        ("udp-alternate-server", &["udp"][..], 3478),
        ("tcp-alternate-server", &["tcp"][..], 3478),
        ("tls-alternate-server", &["tls"][..], 5349),
    ] {
        for e in m.all(key) {
            let Some(addr) = e.value.as_deref().and_then(|v| alternate(v, default_port)) else {
                m.note(e, "not carried: expected IP[:PORT] or [IPv6]:PORT");
                continue;
            };
            for list in lists {
                add_alternate(m, list, addr, e);
            }
        }
    }
}

fn add_alternate(m: &mut Migration<'_>, list: &str, addr: SocketAddr, e: &Entry) {
    let key: &'static str = match list {
        "udp" => "udp",
        "tcp" => "tcp",
        _ => "tls",
    };
    let mut items = m.alternates.remove(key).unwrap_or_default();
    let text = string(&addr.to_string());
    if !items.iter().any(|(t, _)| *t == text) {
        items.push((text, e.line));
    }
    m.doc.set(
        "alternates",
        key,
        Value::List(items.clone()),
        vec![format!("from {} (300 Try Alternate, RFC 8489 §10)", m.file)],
    );
    m.alternates.insert(key, items);
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address.
fn alternate(text: &str, default_port: u16) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

/// `[log]`, `[admin]` and `[metrics]`.
pub(crate) fn operations(m: &mut Migration<'_>) {
    let level = if let Some(e) = m.last("Verbose") {
        Some(("trace", e))
    } else {
        m.last("verbose").map(|e| ("debug", e))
    };
    if let Some((level, e)) = level {
        let c = m.from(&[e]);
        m.doc.set("log", "level", scalar(level), c);
    }
    if let Some(e) = m.last("no-cli") {
        let mut c = m.from(&[e]);
        c.push("turnpike's admin API (HTTP, bearer token) stands in for the CLI".to_owned());
        m.doc.set("admin", "enabled", scalar(false), c);
    }
    let prom = m.last("prometheus");
    let port_e = m.last("prometheus-port");
    let port = port_e.and_then(|e| m.number::<u16>(e)).unwrap_or(9641);
    match prom {
        Some(e) => {
            let from: Vec<&Entry> = std::iter::once(e).chain(port_e).collect();
            let mut c = m.from(&from);
            c.push(
                "coturn listens on every address; turnpike keeps metrics on loopback: \
                 change listen to expose them"
                    .to_owned(),
            );
            m.doc.set("metrics", "enabled", scalar(true), c);
            let listen = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
            m.doc.set("metrics", "listen", scalar(listen), Vec::new());
        }
        None => {
            if let Some(e) = port_e {
                m.note(e, "not carried: no prometheus line, so no metrics");
            }
            m.doc.set(
                "metrics",
                "enabled",
                scalar(false),
                vec!["coturn serves no metrics without a prometheus line".to_owned()],
            );
        }
    }
}
