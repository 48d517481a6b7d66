//! The TCP listener: accept with limits, cut each stream into frames, answer STUN.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};
use turnpike_proto::binding::{BindingService, Response};
use turnpike_stun::framing::{Frame, Framing, next_frame};

/// The largest frame a stream may carry: a STUN header plus a 65535-byte body.
const MAX_FRAME: usize = 20 + 65_535;

/// Limits on TCP connections.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// A connection with no complete frame for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once, all sources together.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_ip: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            idle_timeout: crate::DEFAULT_TCP_IDLE_TIMEOUT,
            max_connections: 10_000,
            max_connections_per_ip: 64,
        }
    }
}

/// Counts open connections; touched once per accept and once per close, never per frame.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: TcpLimits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
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
        }
    }

    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *open;
        let mine = per_ip.entry(ip).or_insert(0);
        if *total >= self.limits.max_connections || *mine >= self.limits.max_connections_per_ip {
            if *mine == 0 {
                per_ip.remove(&ip);
            }
            return None;
        }
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

/// Accepts connections until cancelled.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    binding: Arc<BindingService>,
    limiter: Arc<Limiter>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(error = %e, "tcp accept failed");
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
        let binding = Arc::clone(&binding);
        let idle = limiter.limits.idle_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(reason) = serve(stream, peer, &binding, idle).await {
                debug!(%peer, reason, "tcp connection closed");
            }
        });
    }
}

/// Serves one connection: frames in, responses out, in order.
async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    binding: &BindingService,
    idle: Duration,
) -> Result<(), &'static str> {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut start = 0;
    let mut out = vec![0u8; 2048];
    loop {
        // Answer every complete frame already buffered.
        loop {
            match next_frame(&buf[start..]) {
                Framing::Frame(Frame::Stun(n)) => {
                    let frame = &buf[start..start + n];
                    if let Response::Send(len) = binding.handle(frame, peer, &mut out) {
                        tokio::time::timeout(idle, stream.write_all(&out[..len]))
                            .await
                            .map_err(|_| "write timeout")?
                            .map_err(|_| "write error")?;
                    }
                    start += n;
                }
                // No TURN allocation can exist yet: ChannelData has nowhere to go.
                Framing::Frame(Frame::ChannelData(n)) => start += n,
                Framing::NeedMore(n) if n > MAX_FRAME => return Err("frame too large"),
                Framing::NeedMore(_) => break,
                Framing::Garbage => return Err("not STUN"),
            }
        }
        // Keep only the partial frame, at the front.
        buf.drain(..start);
        start = 0;
        let old = buf.len();
        buf.resize(old + 4096, 0);
        let read = tokio::time::timeout(idle, stream.read(&mut buf[old..])).await;
        match read {
            Err(_) => return Err("idle timeout"),
            Ok(Err(_)) => return Err("read error"),
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => buf.truncate(old + n),
        }
    }
}
