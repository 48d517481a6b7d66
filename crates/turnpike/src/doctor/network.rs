//! Doctor's address checks: listeners, relay IPs, the metadata service's verdict,
//! `external_ip`, and the advertised relay addresses against the peer policy.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use turnpike_server::{Config, Transport, busy};
use turnpike_stun::{Message, MessageType, MessageWriter, TransactionId};

use super::metadata::Probe;
use super::{Check, Verdict};
use crate::host_check;

/// How long a listener has to answer a Binding.
const BINDING_WAIT: Duration = Duration::from_millis(500);

/// One check per listener: free, or held by a server that answers a Binding.
pub(super) fn listeners(config: &Config) -> Vec<Check> {
    host_check::listeners(config)
        .into_iter()
        .map(|(transport, addr)| listener(config, transport, addr))
        .collect()
}

fn listener(config: &Config, transport: Transport, addr: SocketAddr) -> Check {
    let name = format!("listener {transport} {addr}");
    let key = host_check::listener_key(config, transport, addr);
    match busy::in_use(transport, addr) {
        Ok(false) if addr.port() == 0 => Check::ok(name, "port 0: any free port is taken at start"),
        Ok(false) => Check::ok(name, "free: turnpike can bind it"),
        Ok(true) => {
            let holder = crate::sockets::holder(transport, addr);
            let held_by = holder
                .as_ref()
                .map_or_else(String::new, |h| format!(" ({h})"));
            let answers = answers_binding(transport, addr);
            let by_turnpike = holder
                .as_ref()
                .and_then(|h| h.process.as_ref())
                .is_none_or(|(_, comm)| comm.starts_with("turnpike"));
            match answers {
                Ok(()) if by_turnpike => Check::ok(
                    name,
                    format!("bound by turnpike{held_by} (answers Binding)"),
                ),
                Ok(()) => Check::bad(
                    Verdict::Warn,
                    name,
                    format!("bound by another STUN server{held_by}: turnpike cannot start on it"),
                    format!("stop that server or move {key} to a free port"),
                ),
                Err(why) => Check::bad(
                    Verdict::Fail,
                    name,
                    format!(
                        "in use by another process{held_by} that does not answer a STUN Binding ({why})"
                    ),
                    format!("stop that process or move {key} to a free port"),
                ),
            }
        }
        Err(e) => Check::bad(
            Verdict::Fail,
            name,
            format!("cannot be bound: {e}"),
            format!("set {key} to an address of this machine (or 0.0.0.0 / [::])"),
        ),
    }
}

/// Where to reach a listener from this machine: its own address, or loopback for a
/// wildcard one.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// A Binding request with FINGERPRINT.
fn binding_request(tid: [u8; 12]) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let n = MessageWriter::new(&mut buf, MessageType::BINDING_REQUEST, TransactionId(tid))
        .and_then(|mut w| {
            w.put_fingerprint()?;
            Ok(w.finish())
        })
        .unwrap_or(0);
    buf.truncate(n);
    buf
}

/// Whether `bytes` is the Binding success response to `tid`.
fn is_binding_success(bytes: &[u8], tid: [u8; 12]) -> bool {
    Message::new_checked(bytes).is_ok_and(|m| {
        m.message_type() == MessageType::BINDING_SUCCESS && m.transaction_id() == TransactionId(tid)
    })
}

/// Sends a Binding to the listener and waits [`BINDING_WAIT`] for the success answer.
fn answers_binding(transport: Transport, addr: SocketAddr) -> Result<(), String> {
    let to = reachable(addr);
    let tid: [u8; 12] = rand::random();
    let request = binding_request(tid);
    let deadline = Instant::now() + BINDING_WAIT;
    match transport {
        Transport::Udp => {
            let local: SocketAddr = if to.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local).map_err(|e| e.to_string())?;
            socket.send_to(&request, to).map_err(|e| e.to_string())?;
            let mut buf = [0u8; 1500];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err("no answer".to_owned());
                }
                socket
                    .set_read_timeout(Some(left))
                    .map_err(|e| e.to_string())?;
                match socket.recv_from(&mut buf) {
                    Ok((n, from))
                        if from == to && is_binding_success(buf.get(..n).unwrap_or(&[]), tid) =>
                    {
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(_) => return Err("no answer".to_owned()),
                }
            }
        }
        Transport::Tcp => {
            let mut stream =
                TcpStream::connect_timeout(&to, BINDING_WAIT).map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(BINDING_WAIT))
                .map_err(|e| e.to_string())?;
            stream.write_all(&request).map_err(|e| e.to_string())?;
            let mut header = [0u8; 20];
            stream
                .read_exact(&mut header)
                .map_err(|_| "no answer".to_owned())?;
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let mut message = header.to_vec();
            message.resize(20 + len, 0);
            stream
                .read_exact(message.get_mut(20..).unwrap_or(&mut []))
                .map_err(|_| "a truncated answer".to_owned())?;
            if is_binding_success(&message, tid) {
                Ok(())
            } else {
                Err("an answer that is not a Binding success".to_owned())
            }
        }
    }
}

/// The relay IPs: each one on the machine, or the ones detected when none are set.
pub(super) fn relay_ips(config: &Config, machine: &[IpAddr]) -> Vec<Check> {
    if config.relay.ips.is_empty() {
        let detected = turnpike_server::relay::detect_relay_ips();
        return vec![if detected.is_empty() {
            Check::bad(
                Verdict::Fail,
                "relay ips",
                "none configured and none detected: every Allocate gets 440",
                "set [relay] ips to this machine's address(es)",
            )
        } else {
            Check::ok(
                "relay ips",
                format!("none configured; detected {}", list(&detected)),
            )
        }];
    }
    config
        .relay
        .ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let name = format!("relay ip {ip}");
            let listed = machine.contains(ip) || ip.is_loopback();
            if listed {
                Check::ok(name, "an address of this machine")
            } else if host_check::nonlocal_bind(ip.is_ipv6()) {
                Check::bad(
                    Verdict::Warn,
                    name,
                    "not on this machine now (ip_nonlocal_bind is on: a floating address?); Allocates get 508 until it is",
                    "make sure the address moves to this machine before clients come",
                )
            } else if host_check::is_local(*ip) {
                Check::ok(name, "an address of this machine (routed locally)")
            } else {
                Check::bad(
                    Verdict::Fail,
                    name,
                    "not an address of this machine: every Allocate would get 508",
                    format!(
                        "set relay.ips.{i} to one of this machine's addresses: {}",
                        list(&global(machine))
                    ),
                )
            }
        })
        .collect()
}

/// The metadata probe's line.
pub(super) fn metadata(probe: &Probe) -> Check {
    match probe {
        Probe::Skipped => Check::ok("metadata", "not asked (--no-metadata)"),
        Probe::Absent(why) => Check::ok("metadata", why.clone()),
        Probe::Found(m) => Check::ok(
            "metadata",
            match m.public_ipv4 {
                Some(ip) => format!("{} metadata service: public IPv4 {ip}", m.provider),
                None => format!("{} metadata service: no public IPv4", m.provider),
            },
        ),
    }
}

/// Each `external_ip` against the machine and the metadata service; without one, a
/// private relay IP on an instance that has a public IPv4.
pub(super) fn external_ips(config: &Config, machine: &[IpAddr], probe: &Probe) -> Vec<Check> {
    let public = match probe {
        Probe::Found(m) => m.public_ipv4.map(|ip| (m.provider, ip)),
        _ => None,
    };
    if config.relay.external.is_empty() {
        let private_relay = config.relay.ips.iter().find(|ip| match ip {
            IpAddr::V4(v4) => v4.is_private(),
            IpAddr::V6(_) => false,
        });
        return match (public, private_relay) {
            (Some((provider, ip)), Some(relay)) if !machine.contains(&IpAddr::V4(ip)) => {
                vec![Check::bad(
                    Verdict::Warn,
                    "external_ip",
                    format!(
                        "none set, the relay IP {relay} is private and the {provider} metadata service says the public IPv4 is {ip}: clients outside get an unreachable relayed address"
                    ),
                    format!("set [relay] external_ip = [\"{ip}/{relay}\"]"),
                )]
            }
            _ => vec![Check::ok(
                "external_ip",
                "none set: relayed addresses are the relay IPs",
            )],
        };
    }
    config
        .relay
        .external
        .iter()
        .enumerate()
        .map(|(i, map)| {
            let name = format!("external_ip {}", map.public);
            let key = format!("relay.external_ip.{i}");
            if let Some(private) = map.private {
                if !config.relay.ips.is_empty() && !config.relay.ips.contains(&private) {
                    return Check::bad(
                        Verdict::Fail,
                        name,
                        format!("maps {private}, which is not a relay IP: the mapping never applies"),
                        format!("make the part after '/' in {key} one of [relay] ips"),
                    );
                }
                if !host_check::is_local(private) {
                    return Check::bad(
                        Verdict::Fail,
                        name,
                        format!("maps {private}, which is not an address of this machine"),
                        format!("fix {key}: PUBLIC/PRIVATE with PRIVATE on this machine"),
                    );
                }
            }
            match (public, map.public) {
                (Some((provider, ip)), IpAddr::V4(mine)) if ip != mine => Check::bad(
                    Verdict::Fail,
                    name,
                    format!("the {provider} metadata service says this instance's public IPv4 is {ip}, not {mine}"),
                    format!("set {key} to \"{ip}{}\"", map.private.map_or_else(String::new, |p| format!("/{p}"))),
                ),
                (Some((provider, _)), IpAddr::V4(_)) => {
                    Check::ok(name, format!("matches the {provider} metadata service"))
                }
                _ if machine.contains(&map.public) || map.public.is_loopback() => Check::ok(
                    name,
                    "an address of this machine (no NAT in front; the mapping changes nothing)",
                ),
                _ => Check::ok(
                    name,
                    "not on this machine (1:1 NAT as configured); no metadata service to compare with",
                ),
            }
        })
        .collect()
}

/// Every advertised relay address (each `external_ip`, or the relay IP itself) against
/// the peer policy: one it denies makes a client unable to relay to another client's
/// relayed address on this same server (CreatePermission gets 403), the usual call
/// between two clients behind NATs.
pub(super) fn advertised_vs_policy(config: &Config) -> Vec<Check> {
    let mut advertised: Vec<IpAddr> = config.relay.external.iter().map(|e| e.public).collect();
    let relay_ips = if config.relay.ips.is_empty() {
        turnpike_server::relay::detect_relay_ips()
    } else {
        config.relay.ips.clone()
    };
    for ip in &relay_ips {
        let mapped = config.relay.external.iter().any(|e| {
            e.private
                .map_or_else(|| e.public.is_ipv4() == ip.is_ipv4(), |p| p == *ip)
        });
        if !mapped {
            advertised.push(*ip);
        }
    }
    advertised.dedup();
    let policy = &config.peers;
    advertised
        .into_iter()
        .map(|ip| {
            let name = format!("peer policy for {ip}");
            match policy.verdict(ip) {
                Ok(()) => Check::ok(name, "an advertised relay address the peer policy allows"),
                Err(rule) => Check::bad(
                    Verdict::Fail,
                    name,
                    format!(
                        "advertised relay address in a range the peer policy denies ({}): clients of this server cannot relay to each other (403)",
                        rule.as_str()
                    ),
                    "advertise the public address (external_ip), or add it to [peers] allow",
                ),
            }
        })
        .collect()
}

/// The global-looking addresses among `ips` (what an operator means by "this machine's").
fn global(ips: &[IpAddr]) -> Vec<IpAddr> {
    ips.iter()
        .copied()
        .filter(|ip| {
            !ip.is_loopback() && !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
        })
        .collect()
}

/// `a, b, c`.
fn list(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        return "(none)".to_owned();
    }
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
