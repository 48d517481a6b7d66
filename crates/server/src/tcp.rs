//! The TCP listener: accept with limits and hand each connection to a worker
//! (`stream.rs` frames it, answers it and applies the timeouts of [`TcpLimits`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::counters::AcceptCounters;

/// Limits on TCP connections (`[tcp]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpLimits {
    /// A connection with no complete frame (STUN message or ChannelData) for this long is
    /// closed: bytes of a frame that never completes do not count (slowloris). Also the
    /// write timeout: an answer the client does not take for this long ends the
    /// connection. Default 300 s.
    #[serde(rename = "idle_timeout_secs", deserialize_with = "secs")]
    pub idle_timeout: Duration,
    /// Connections open at once, all sources together. Default 10 000.
    pub max_connections: usize,
    /// Connections open at once from one IP address. Default 64.
    pub max_connections_per_ip: usize,
    /// Time allowed for the first byte and, with TLS, for the whole handshake (one deadline
    /// from the accept); and for each frame to arrive whole once its first byte came,
    /// whatever the idle timeout. Default 10 s.
    #[serde(rename = "handshake_timeout_secs", deserialize_with = "secs")]
    pub handshake_timeout: Duration,
}

/// Default TCP idle timeout: RFC 8489 §6.2.2 suggests servers keep connections open for
/// at least 10 seconds after a transaction; five minutes matches a TURN refresh cycle.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts open connections; touched once per accept and once per close, never per frame.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) limits: TcpLimits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Accepted and refused connections, for metrics.
    pub(crate) counters: AcceptCounters,
}

/// Releases a connection's slot when dropped.
pub(crate) struct Slot {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Limiter {
    pub(crate) fn new(limits: TcpLimits) -> Self {
        Self {
            limits,
            open: Mutex::new((0, HashMap::new())),
            counters: AcceptCounters::default(),
        }
    }

    /// Connections open now.
    pub(crate) fn open_now(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *open;
        let mine = per_ip.entry(ip).or_insert(0);
        let full = *total >= self.limits.max_connections;
        if full || *mine >= self.limits.max_connections_per_ip {
            if *mine == 0 {
                per_ip.remove(&ip);
            }
            let cap = if full {
                &self.counters.refused_total_cap
            } else {
                &self.counters.refused_per_ip_cap
            };
            cap.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        *total += 1;
        *mine += 1;
        Some(Slot {
            limiter: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection on its way to a worker.
pub(crate) struct Incoming {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) slot: Slot,
}

/// Durations written as whole seconds (`*_secs` keys).
fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_secs)
}

/// Accepts connections until cancelled and hands each to `deal` (which gives it to a
/// worker). The connection limits are applied here, before any byte is read.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    limiter: Arc<Limiter>,
    mut deal: impl FnMut(Incoming),
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let mut last_warned: Option<tokio::time::Instant> = None;
    let mut failures = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning, and say so
                // at most every 10 s (with how many failed since), not 20 times a second.
                failures += 1;
                let now = tokio::time::Instant::now();
                if last_warned.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                    warn!(error = %e, failures, "tcp accept failed (descriptor limit?)");
                    last_warned = Some(now);
                    failures = 0;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = limiter.acquire(peer.ip().to_canonical()) else {
            debug!(%peer, "tcp connection refused: limit reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        deal(Incoming {
            stream,
            peer,
            local,
            slot,
        });
    }
}
