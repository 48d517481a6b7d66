//! Slowloris over TCP: a connection that starts a STUN message and never finishes it,
//! one byte every `--slow-interval` seconds, held at most `--slow-max` seconds.
//!
//! PASS when the server closes the connection before the bound. What the verdict means
//! depends on the server's timeout for a connection that completes no message, which
//! the tool cannot see: RFC 8489 §6.2.2 only asks a server to keep a connection at least
//! 10 s after the last transaction. turnpike's `[tcp] idle_timeout_secs` is 300 s by
//! default, beyond the default bound of 60 s: "still open" is then what a correct server
//! does too, and the probe is conclusive only with `--slow-max` above the timeout (or a
//! server configured below it). The verdict line says so. What the probe always shows is
//! whether a byte now and then keeps the connection alive: a server that restarts its
//! timer on every read instead of every complete message never closes it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{Finding, Verdict};

const GROUP: &str = "slowloris";
const PROBE: &str = "incomplete STUN message over TCP";

/// The probe's timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Between two bytes.
    pub(crate) interval: Duration,
    /// The longest the connection is held.
    pub(crate) max: Duration,
}

/// The bytes dribbled: a Binding request header whose length field claims 548 bytes of
/// attributes, so no prefix of it (nor of the zero body after it) is a complete message.
fn byte(i: usize) -> u8 {
    const HEADER: [u8; 20] = [
        0x00, 0x01, 0x02, 0x24, 0x21, 0x12, 0xA4, 0x42, 0x73, 0x6C, 0x6F, 0x77, 0x6C, 0x6F, 0x72,
        0x69, 0x73, 0x21, 0x21, 0x21,
    ];
    HEADER.get(i).copied().unwrap_or(0)
}

/// Whether an I/O error means the peer closed or reset the connection.
fn closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Runs the probe against `tcp`.
pub(crate) fn run(tcp: SocketAddr, p: Params) -> Finding {
    let skip = |why: String| Finding::new(GROUP, PROBE, Verdict::Skip, why);
    let mut s = match TcpStream::connect_timeout(&tcp, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => return skip(format!("no TCP connection to {tcp}: {e}")),
    };
    let _ = s.set_nodelay(true);
    let started = Instant::now();
    // The partial header: the message type, then one byte per interval.
    let mut sent = 0usize;
    let mut answered = 0usize;
    let first = [byte(0), byte(1)];
    if let Err(e) = s.write_all(&first) {
        return skip(format!("cannot write to {tcp}: {e}"));
    }
    sent += first.len();
    let mut buf = [0u8; 512];
    let outcome = loop {
        let elapsed = started.elapsed();
        if elapsed >= p.max {
            break None;
        }
        let wait = p
            .interval
            .min(p.max - elapsed)
            .max(Duration::from_millis(1));
        if let Err(e) = s.set_read_timeout(Some(wait)) {
            return skip(format!("socket error: {e}"));
        }
        // Wait out the interval, reading: a close shows as end of stream or a reset.
        let tick = Instant::now() + wait;
        let mut gone = None;
        while Instant::now() < tick {
            let left = tick.saturating_duration_since(Instant::now());
            let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match s.read(&mut buf) {
                Ok(0) => {
                    gone = Some("closed (end of stream)");
                    break;
                }
                Ok(n) => answered += n,
                Err(e) if closed(&e) => {
                    gone = Some("reset");
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return skip(format!("socket error: {e}")),
            }
        }
        if let Some(how) = gone {
            break Some((started.elapsed(), how));
        }
        if started.elapsed() >= p.max {
            break None;
        }
        match s.write_all(&[byte(sent)]) {
            Ok(()) => sent += 1,
            Err(e) if closed(&e) => break Some((started.elapsed(), "reset on write")),
            Err(e) => return skip(format!("socket error: {e}")),
        }
    };
    let every = p.interval.as_secs();
    let answer = if answered > 0 {
        format!("; the server sent {answered} bytes")
    } else {
        String::new()
    };
    match outcome {
        Some((at, how)) => Finding::new(
            GROUP,
            PROBE,
            Verdict::Pass,
            format!(
                "{how} by the server after {:.1} s, {sent} bytes of an incomplete message sent (one every {every} s){answer}: its timeout for a connection that completes no message is at most that",
                at.as_secs_f64()
            ),
        ),
        None => Finding::new(
            GROUP,
            PROBE,
            Verdict::Fail,
            format!(
                "still open after {} s with {sent} bytes of an incomplete message (one every {every} s){answer}. Conclusive only if the server's timeout for a connection that completes no message is below {} s (turnpike: [tcp] idle_timeout_secs, 300 by default); else rerun with a larger --slow-max",
                p.max.as_secs(),
                p.max.as_secs()
            ),
        ),
    }
}
