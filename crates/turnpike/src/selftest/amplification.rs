//! Amplification over UDP: what a spoofer gets back for what it sends, without
//! credentials (RFC 8656 §17, RFC 8489 §16.1.1: a reflector must not answer a small
//! request with a large response).
//!
//! Every method in every class, bare and well-formed, with and without FINGERPRINT, with
//! an unknown comprehension-required attribute and with integrity that proves nothing;
//! ChannelData without a channel; garbage of several lengths; a length field beyond the
//! datagram. Each probe goes out once from its own socket (so a late answer cannot be
//! counted for another probe), and everything that comes back within [`WAIT`] is counted.
//!
//! Bounds, on the UDP payload: 2× for every answer, 3× for the 401 to a well-formed
//! Allocate (REALM and NONCE have to go somewhere). Reported as INFO, with no bound: a
//! Binding success to an IPv6 source (XOR-MAPPED-ADDRESS alone is 24 bytes, 2.2× a bare
//! request) and a Binding success carrying RFC 5780's OTHER-ADDRESS, which is how a
//! server tells clients it can discover NAT behaviour (RFC 5780 §4.2).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use turnpike_stun::attr::{ChangeRequest, ErrorCodeAttr, Realm, XorPeerAddress};
use turnpike_stun::{AttrType, Class, Message, MessageType, MessageWriter, Method, TransactionId};

use super::{Finding, Report, Verdict};

/// How long each probe waits for answers.
const WAIT: Duration = Duration::from_millis(300);
/// Probes in flight at once (each on its own socket and thread).
const BATCH: usize = 16;
/// The reachability check: Binding requests sent before giving up.
const REACH_TRIES: u32 = 3;

const GROUP: &str = "amplification";

/// How a probe's answer is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// 2×.
    Plain,
    /// 3×: the 401 challenge to a well-formed Allocate.
    Challenge,
    /// A Binding request: its success may be INFO (IPv6, RFC 5780), else 2×.
    Binding,
}

/// One probe: its name, its bytes, its bound.
struct Probe {
    name: String,
    bytes: Vec<u8>,
    bound: Bound,
}

/// What came back for a probe.
#[derive(Debug, Default)]
struct Answer {
    bytes: usize,
    datagrams: usize,
    /// The first datagram, to say what it was.
    first: Option<Vec<u8>>,
}

fn message(
    ty: MessageType,
    fingerprint: bool,
    body: impl Fn(&mut MessageWriter<'_>) -> Result<(), turnpike_stun::EncodeError>,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 512];
    let tid = TransactionId(rand::random());
    let mut w = MessageWriter::new(&mut buf, ty, tid).ok()?;
    body(&mut w).ok()?;
    if fingerprint {
        w.put_fingerprint().ok()?;
    }
    let n = w.finish();
    buf.truncate(n);
    Some(buf)
}

/// The probes, for a server at `server` (its own address is the peer named in the
/// well-formed requests, so nothing else is ever named).
fn probes(server: SocketAddr) -> Vec<Probe> {
    let mut all = Vec::new();
    let mut add = |name: String, bytes: Option<Vec<u8>>, bound: Bound| {
        if let Some(bytes) = bytes {
            all.push(Probe { name, bytes, bound });
        }
    };
    let methods = [
        ("Binding", Method::BINDING),
        ("Allocate", Method::ALLOCATE),
        ("Refresh", Method::REFRESH),
        ("Send", Method::SEND),
        ("Data", Method::DATA),
        ("CreatePermission", Method::CREATE_PERMISSION),
        ("ChannelBind", Method::CHANNEL_BIND),
        ("Connect", Method::CONNECT),
        ("ConnectionBind", Method::CONNECTION_BIND),
        ("ConnectionAttempt", Method::CONNECTION_ATTEMPT),
        (
            "method 0xFFF",
            Method::new(0xFFF).unwrap_or(Method::BINDING),
        ),
    ];
    for (name, method) in methods {
        let binding = |class| {
            if method == Method::BINDING && class == Class::Request {
                Bound::Binding
            } else {
                Bound::Plain
            }
        };
        for class in [
            Class::Request,
            Class::Indication,
            Class::Success,
            Class::Error,
        ] {
            for fp in [false, true] {
                let ty = MessageType::new(method, class);
                let label = format!("{name} {class:?} bare{}", if fp { " +FP" } else { "" });
                add(label, message(ty, fp, |_| Ok(())), binding(class));
            }
        }
        // Well formed: the attributes the method needs.
        for fp in [false, true] {
            let ty = MessageType::new(method, Class::Request);
            let body = |w: &mut MessageWriter<'_>| match method {
                Method::ALLOCATE => w.put_raw(AttrType::REQUESTED_TRANSPORT, &[17, 0, 0, 0]),
                Method::REFRESH => w.put_raw(AttrType::LIFETIME, &600u32.to_be_bytes()),
                Method::CREATE_PERMISSION | Method::CONNECT => w.put(&XorPeerAddress(server)),
                Method::CHANNEL_BIND => {
                    w.put_raw(AttrType::CHANNEL_NUMBER, &[0x40, 0, 0, 0])?;
                    w.put(&XorPeerAddress(server))
                }
                Method::CONNECTION_BIND => w.put_raw(AttrType::CONNECTION_ID, &[0, 0, 0, 1]),
                _ => Ok(()),
            };
            let bound = match method {
                Method::ALLOCATE => Bound::Challenge,
                Method::BINDING => Bound::Binding,
                _ => Bound::Plain,
            };
            let label = format!("{name} Request well-formed{}", if fp { " +FP" } else { "" });
            add(label, message(ty, fp, body), bound);
        }
        let ty = MessageType::new(method, Class::Request);
        add(
            format!("{name} Request +unknown attr 0x7FFF"),
            message(ty, false, |w| w.put_raw(AttrType(0x7FFF), &[1, 2, 3, 4])),
            Bound::Plain,
        );
        add(
            format!("{name} Request forged integrity"),
            message(ty, false, |w| {
                w.put_raw(AttrType::USERNAME, b"1999999999:eve")?;
                w.put_raw(AttrType::REALM, b"turnpike")?;
                w.put_raw(AttrType::NONCE, b"obMatJos2AAAAforgedforgedfor")?;
                w.put_raw(AttrType::MESSAGE_INTEGRITY, &[0; 20])
            }),
            Bound::Plain,
        );
    }
    add(
        "Binding Request CHANGE-REQUEST ip+port".into(),
        message(MessageType::BINDING_REQUEST, false, |w| {
            w.put(&ChangeRequest {
                change_ip: true,
                change_port: true,
            })
        }),
        Bound::Binding,
    );
    let mut channel_data = vec![0x40, 0x00, 0x00, 0x10];
    channel_data.extend_from_slice(&[0u8; 16]);
    add(
        "ChannelData 0x4000, no channel".into(),
        Some(channel_data),
        Bound::Plain,
    );
    for len in [1usize, 4, 19, 20, 21, 100, 548] {
        add(
            format!("garbage {len} bytes"),
            Some((0..len).map(|i| (i * 37 + 11) as u8).collect()),
            Bound::Plain,
        );
    }
    if let Some(mut truncated) = message(MessageType::BINDING_REQUEST, false, |w| {
        w.put_raw(AttrType::SOFTWARE, b"0123456789abcdef")
    }) {
        truncated[3] = 0xF0; // the length field claims more than the datagram holds
        add(
            "Binding Request, length beyond the datagram".into(),
            Some(truncated),
            Bound::Plain,
        );
    }
    all
}

/// A UDP socket of the server's family, connected to it (on loopback, bound to the
/// server's loopback address).
fn socket(server: SocketAddr) -> io::Result<UdpSocket> {
    let ip = match server {
        SocketAddr::V4(a) if a.ip().is_loopback() => server.ip(),
        SocketAddr::V6(a) if a.ip().is_loopback() => server.ip(),
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let s = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    s.connect(server)?;
    Ok(s)
}

/// Sends `bytes` once and counts what comes back within `wait`.
fn exchange(server: SocketAddr, bytes: &[u8], wait: Duration) -> io::Result<Answer> {
    let s = socket(server)?;
    s.send(bytes)?;
    let deadline = Instant::now() + wait;
    let mut answer = Answer::default();
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(answer);
        }
        s.set_read_timeout(Some(left))?;
        match s.recv(&mut buf) {
            Ok(n) => {
                answer.bytes += n;
                answer.datagrams += 1;
                if answer.first.is_none() {
                    answer.first = buf.get(..n).map(<[u8]>::to_vec);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(answer);
            }
            Err(e) => return Err(e),
        }
    }
}

/// What a datagram was: "Binding Success", "Allocate Error 401", "not STUN".
fn describe(datagram: &[u8]) -> String {
    match Message::new_checked(datagram) {
        Ok(m) => {
            let ty = m.message_type();
            let code = m
                .get::<ErrorCodeAttr>()
                .ok()
                .flatten()
                .map(|e| format!(" {}", e.code.code()))
                .unwrap_or_default();
            format!("{:?} {:?}{code}", ty.method, ty.class)
        }
        Err(_) => "not STUN".into(),
    }
}

/// Whether `datagram` is a Binding success of a server doing RFC 5780: OTHER-ADDRESS is
/// what tells a client the server can discover NAT behaviour (RFC 5780 §4.2).
/// RESPONSE-ORIGIN alone (coturn sends it with one address) does not.
fn is_rfc5780_success(datagram: &[u8]) -> bool {
    Message::new_checked(datagram).is_ok_and(|m| {
        m.message_type() == MessageType::new(Method::BINDING, Class::Success)
            && m.raw(AttrType::OTHER_ADDRESS).is_some()
    })
}

fn judge(server: SocketAddr, p: &Probe, a: &Answer) -> Finding {
    let sent = p.bytes.len();
    let ratio = a.bytes as f64 / sent.max(1) as f64;
    let what = a.first.as_deref().map(describe).unwrap_or_default();
    let (verdict, detail) = if a.bytes == 0 {
        (Verdict::Pass, format!("{sent} -> 0 bytes (no answer)"))
    } else {
        let figure = format!(
            "{sent} -> {} bytes in {} datagram(s), {ratio:.2}x ({what})",
            a.bytes, a.datagrams
        );
        let first = a.first.as_deref().unwrap_or_default();
        let binding_success = p.bound == Bound::Binding
            && Message::new_checked(first).is_ok_and(|m| m.message_type().class == Class::Success);
        if binding_success && is_rfc5780_success(first) {
            (
                Verdict::Info,
                format!("{figure}: an RFC 5780 answer, larger by design"),
            )
        } else if binding_success && server.is_ipv6() {
            (
                Verdict::Info,
                format!("{figure}: a Binding success over IPv6 (XOR-MAPPED-ADDRESS is 24 bytes)"),
            )
        } else {
            let bound = if p.bound == Bound::Challenge {
                3.0
            } else {
                2.0
            };
            let v = if ratio <= bound {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            (v, format!("{figure}, bound {bound}x"))
        }
    };
    Finding {
        bytes: Some((sent, a.bytes)),
        ..Finding::new(GROUP, p.name.clone(), verdict, detail)
    }
}

/// Whether the server answers a Binding request over UDP at all (a probe that gets no
/// answer from a server that is not there proves nothing).
fn reachable(server: SocketAddr) -> io::Result<Option<Vec<u8>>> {
    for _ in 0..REACH_TRIES {
        let Some(req) = message(MessageType::BINDING_REQUEST, false, |_| Ok(())) else {
            return Ok(None);
        };
        let a = exchange(server, &req, Duration::from_millis(500))?;
        if let Some(first) = a.first {
            return Ok(Some(first));
        }
    }
    Ok(None)
}

/// Runs every probe against `server` and adds the verdicts to `report`; `realm` is the
/// realm the operator expects in the 401.
pub(crate) fn run(server: SocketAddr, realm: Option<&str>, report: &mut Report) {
    match reachable(server) {
        Ok(Some(_)) => {}
        Ok(None) => {
            report.add(Finding::new(
                GROUP,
                "every probe",
                Verdict::Skip,
                format!("no answer to a Binding request over UDP from {server}"),
            ));
            return;
        }
        Err(e) => {
            report.add(Finding::new(
                GROUP,
                "every probe",
                Verdict::Skip,
                format!("socket error: {e}"),
            ));
            return;
        }
    }
    let probes = probes(server);
    for batch in probes.chunks(BATCH) {
        let answers: Vec<io::Result<Answer>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|p| s.spawn(|| exchange(server, &p.bytes, WAIT)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("probe thread panicked")))
                })
                .collect()
        });
        for (p, a) in batch.iter().zip(answers) {
            match a {
                Ok(a) => {
                    if p.bound == Bound::Challenge {
                        check_realm(p, &a, realm, report);
                    }
                    report.add(judge(server, p, &a));
                }
                Err(e) => report.add(Finding::new(
                    GROUP,
                    p.name.clone(),
                    Verdict::Skip,
                    format!("socket error: {e}"),
                )),
            }
        }
    }
}

/// With `--realm`, says whether the 401 to a well-formed Allocate names it.
fn check_realm(p: &Probe, a: &Answer, want: Option<&str>, report: &mut Report) {
    let (Some(want), Some(first)) = (want, a.first.as_deref()) else {
        return;
    };
    if p.name.ends_with("+FP") {
        return;
    }
    let got = Message::new_checked(first)
        .ok()
        .and_then(|m| m.get::<Realm>().ok().flatten().map(|r| r.0.to_owned()));
    let (verdict, detail) = match got {
        Some(r) if r == want => (Verdict::Info, format!("the 401 names realm {r:?}")),
        Some(r) => (
            Verdict::Info,
            format!("the 401 names realm {r:?}, not {want:?}"),
        ),
        None => (Verdict::Info, "the answer names no realm".to_owned()),
    };
    report.add(Finding::new(GROUP, "realm", verdict, detail));
}
