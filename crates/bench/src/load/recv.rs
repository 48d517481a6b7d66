//! The receiving threads: read the peer sockets (or, client to client, the clients' own
//! connections), match each payload to its run and flow, and count deliveries,
//! duplicates, reordering, RFC 3550 jitter and one-way latency.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use turnpike_stun::CHANNEL_DATA_HEADER_LEN;
use turnpike_stun::framing::{Framing, next_frame};
use turnpike_udp::RecvBatch;

use super::{MAGIC, MIN_PAYLOAD, new_hist};
use crate::client::{Inbox, Reader};

/// One client's connection as a client-to-client receiving thread reads it.
pub(super) struct ClientRx {
    /// The flow (client) it belongs to.
    pub(super) flow: usize,
    pub(super) reader: Reader,
    /// Bytes read from a TCP connection not yet cut into frames.
    pub(super) buf: Vec<u8>,
    /// The UDP socket's drop counter as last seen.
    pub(super) drops: u32,
}

#[derive(Clone, Default)]
pub(super) struct FlowRecv {
    pub(super) received: u64,
    pub(super) duplicates: u64,
    pub(super) reordered: u64,
    max_seq: Option<u64>,
    seen: Vec<u64>,
    pub(super) jitter_ns: f64,
    last_transit: Option<i64>,
}

pub(super) struct RecvStats {
    pub(super) flows: Vec<FlowRecv>,
    pub(super) hist: Histogram<u64>,
    /// The receiving threads' CPU time.
    pub(super) cpu: Duration,
    /// Datagrams the bench's receiving sockets dropped during the run.
    pub(super) drops: u64,
    /// Datagrams the reflector's socket dropped during the run.
    pub(super) reflector_drops: Option<u64>,
    /// Receive system calls.
    pub(super) calls: u64,
}

impl RecvStats {
    pub(super) fn new(n: usize) -> Self {
        Self {
            flows: vec![FlowRecv::default(); n],
            hist: new_hist(),
            cpu: Duration::ZERO,
            drops: 0,
            reflector_drops: None,
            calls: 0,
        }
    }

    pub(super) fn merge(&mut self, other: Self) {
        for (a, b) in self.flows.iter_mut().zip(other.flows) {
            if b.received > 0 || b.duplicates > 0 {
                *a = b;
            }
        }
        let _ = self.hist.add(&other.hist);
        self.cpu += other.cpu;
        self.calls += other.calls;
        self.drops += other.drops;
    }

    fn record(&mut self, flow: usize, seq: u64, sent_ns: u64, now_ns: u64) {
        let Some(f) = self.flows.get_mut(flow) else {
            return;
        };
        let word = (seq / 64) as usize;
        if word >= f.seen.len() {
            if word > 1 << 24 {
                return; // more than a billion packets in one flow: not ours
            }
            f.seen.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if f.seen[word] & bit != 0 {
            f.duplicates += 1;
            return;
        }
        f.seen[word] |= bit;
        f.received += 1;
        match f.max_seq {
            Some(m) if seq < m => f.reordered += 1,
            _ => f.max_seq = Some(seq),
        }
        // RFC 3550 §6.4.1: J += (|D| - J) / 16, D = difference of transit times.
        let transit = now_ns as i64 - sent_ns as i64;
        if let Some(last) = f.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            f.jitter_ns += (d - f.jitter_ns) / 16.0;
        }
        f.last_transit = Some(transit);
        self.hist
            .saturating_record(now_ns.saturating_sub(sent_ns).max(1));
    }
}

/// What every receiving thread of a run needs.
#[derive(Clone)]
pub(super) struct RecvCommon {
    pub(super) batch: usize,
    /// Bytes per datagram buffer.
    pub(super) slot: usize,
    /// How long to let datagrams gather after a read that did not fill the batch (zero:
    /// block until the next datagram).
    pub(super) wait: Duration,
    pub(super) flows: usize,
    pub(super) run_id: u16,
    pub(super) epoch: Instant,
    /// The epoch in kernel receive time, when the sockets report receive times.
    pub(super) epoch_rt: Option<Duration>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) live: Arc<AtomicU64>,
}

impl RecvCommon {
    /// Records the datagrams of the last receive into `batch` (payloads from `at` on
    /// into each datagram; see [`RecvCommon::record`]).
    fn record_batch(&self, batch: &RecvBatch, count: usize, stats: &mut RecvStats) -> u64 {
        // Without kernel receive times, one receive time for the whole batch: the batch
        // is taken in one syscall, so the error is the time the kernel spent copying the
        // earlier datagrams out.
        let now = self.epoch.elapsed().as_nanos() as u64;
        let mut n = 0;
        for i in 0..count {
            let at = match (batch.stamp(i), self.epoch_rt) {
                (Some(t), Some(e)) => t.saturating_sub(e).as_nanos() as u64,
                _ => now,
            };
            n += u64::from(self.record(batch.packet(i), at, stats));
        }
        n
    }

    /// Records one payload received at `at` (ns since the epoch) if it is this run's.
    fn record(&self, b: &[u8], at: u64, stats: &mut RecvStats) -> bool {
        if b.len() < MIN_PAYLOAD {
            return false;
        }
        let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        let be64 = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(x)
        };
        if be16(0) != MAGIC || be16(2) != self.run_id {
            return false;
        }
        let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        stats.record(flow, be64(8), be64(16), at);
        true
    }

    /// Adds what a receiving thread counted since its last call to the run's live total
    /// (once per receive call: an atomic add beside a system call).
    fn publish(&self, pending: &mut u64) {
        if *pending > 0 {
            self.live.fetch_add(*pending, Ordering::Relaxed);
            *pending = 0;
        }
    }
}

/// A peer socket's receiving thread; `drops` is the socket's drop counter as last seen,
/// updated.
pub(super) fn receive(socket: &UdpSocket, drops: &mut u32, c: &RecvCommon) -> RecvStats {
    let cpu0 = turnpike_udp::sys::cpu_time(true);
    let mut stats = RecvStats::new(c.flows);
    let mut batch = RecvBatch::with_capacity(c.batch, 0, c.slot, 0);
    if c.epoch_rt.is_some() {
        batch = batch.with_rx_info();
    }
    let mut pending = 0u64;
    while !c.stop.load(Ordering::Relaxed) {
        stats.calls += 1;
        let got = if c.wait.is_zero() {
            batch.recv_wait(socket)
        } else {
            batch.recv_now(socket)
        };
        let Ok(count) = got else {
            continue;
        };
        pending += c.record_batch(&batch, count, &mut stats);
        c.publish(&mut pending);
        if !c.wait.is_zero() && count < c.batch {
            thread::sleep(c.wait);
        }
    }
    c.publish(&mut pending);
    if let Some(d) = batch.drops() {
        stats.drops += u64::from(d.saturating_sub(*drops));
        *drops = (*drops).max(d);
    }
    stats.cpu = turnpike_udp::sys::cpu_time(true).saturating_sub(cpu0);
    stats
}

/// The payload of a frame a client received from the server: ChannelData's data, a Data
/// indication's DATA; `None` for anything else.
fn client_payload(frame: &[u8]) -> Option<&[u8]> {
    match frame.first()? {
        0x40..=0x7F => {
            let len = usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?]));
            frame.get(CHANNEL_DATA_HEADER_LEN..CHANNEL_DATA_HEADER_LEN + len)
        }
        0x00..=0x3F => {
            let msg = turnpike_stun::Message::new_checked(frame).ok()?;
            let t = msg.message_type();
            if t.method != turnpike_stun::Method::DATA
                || t.class != turnpike_stun::Class::Indication
            {
                return None;
            }
            let data = msg.get::<turnpike_stun::attr::Data>().ok()??.0;
            // DATA borrows from the message, not from `frame`'s lifetime: find its bytes
            // in `frame`.
            let start = (data.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
            frame.get(start..start + data.len())
        }
        _ => None,
    }
}

/// Whether a frame is a STUN response (for a transaction's inbox).
fn is_stun_response(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| *b < 0x40)
        && turnpike_stun::Message::new_checked(frame).is_ok_and(|m| {
            matches!(
                m.message_type().class,
                turnpike_stun::Class::Success | turnpike_stun::Class::Error
            )
        })
}

/// A client-to-client receiving thread: reads its group of clients' connections
/// (ChannelData or Data indications from the partner; responses go to the client's
/// inbox).
pub(super) fn receive_clients(
    group: &mut [ClientRx],
    inboxes: &[Arc<Inbox>],
    c: &RecvCommon,
) -> RecvStats {
    use std::io::Read;
    let cpu0 = turnpike_udp::sys::cpu_time(true);
    let mut stats = RecvStats::new(c.flows);
    let mut batch = RecvBatch::with_capacity(c.batch, 0, c.slot.max(2048), 0);
    if c.epoch_rt.is_some() {
        batch = batch.with_rx_info();
    }
    let Ok(mut poll) = turnpike_udp::Poller::with_capacity(group.len().max(1)) else {
        return stats;
    };
    for (k, rx) in group.iter().enumerate() {
        let added = match &rx.reader {
            Reader::Udp(s) => poll.add(s, k as u64),
            Reader::Tcp(s) => poll.add(s, k as u64),
        };
        if added.is_err() {
            return stats;
        }
    }
    // Only UDP gets kernel receive times: a stream's reads wait for nothing.
    let streams = group.iter().any(|rx| matches!(rx.reader, Reader::Tcp(_)));
    let wait = if streams { Duration::ZERO } else { c.wait };
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pending = 0u64;
    let mut ready: Vec<u64> = Vec::new();
    while !c.stop.load(Ordering::Relaxed) {
        let timeout = if wait.is_zero() {
            Duration::from_millis(20)
        } else {
            Duration::ZERO
        };
        ready.clear();
        match poll.wait(Some(timeout)) {
            Ok(_) => ready.extend(poll.tokens()),
            Err(_) => break,
        }
        for &k in &ready {
            let Some(rx) = group.get_mut(k as usize) else {
                continue;
            };
            let inbox = inboxes.get(rx.flow);
            match &rx.reader {
                Reader::Udp(s) => loop {
                    stats.calls += 1;
                    let count = batch.recv_now(s).unwrap_or(0);
                    let now = c.epoch.elapsed().as_nanos() as u64;
                    for i in 0..count {
                        let frame = batch.packet(i);
                        if let Some(pl) = client_payload(frame) {
                            let at = match (batch.stamp(i), c.epoch_rt) {
                                (Some(t), Some(e)) => t.saturating_sub(e).as_nanos() as u64,
                                _ => now,
                            };
                            pending += u64::from(c.record(pl, at, &mut stats));
                        } else if let (true, Some(inbox)) = (is_stun_response(frame), inbox) {
                            inbox.put(frame.to_vec());
                        }
                    }
                    if let Some(d) = batch.drops() {
                        stats.drops += u64::from(d.saturating_sub(rx.drops));
                        rx.drops = rx.drops.max(d);
                    }
                    if count < c.batch {
                        break;
                    }
                },
                Reader::Tcp(s) => {
                    stats.calls += 1;
                    // Readable: one read does not block.
                    let mut s = s;
                    match s.read(&mut chunk) {
                        Ok(n) if n > 0 => rx.buf.extend_from_slice(&chunk[..n]),
                        _ => continue,
                    }
                    let now = c.epoch.elapsed().as_nanos() as u64;
                    let mut used = 0;
                    while let Framing::Frame(f) = next_frame(&rx.buf[used..]) {
                        let frame = &rx.buf[used..used + f.len()];
                        used += f.len();
                        if let Some(pl) = client_payload(frame) {
                            pending += u64::from(c.record(pl, now, &mut stats));
                        } else if let (true, Some(inbox)) = (is_stun_response(frame), inbox) {
                            inbox.put(frame.to_vec());
                        }
                    }
                    rx.buf.drain(..used);
                    if matches!(next_frame(&rx.buf), Framing::Garbage) {
                        // Not STUN or ChannelData: the stream is lost.
                        rx.buf.clear();
                    }
                }
            }
        }
        c.publish(&mut pending);
        if !wait.is_zero() {
            thread::sleep(wait);
        }
    }
    c.publish(&mut pending);
    stats.cpu = turnpike_udp::sys::cpu_time(true).saturating_sub(cpu0);
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_duplicates_and_reordering() {
        let mut s = RecvStats::new(1);
        for (seq, t) in [(0, 10), (2, 30), (1, 20), (2, 30)] {
            s.record(0, seq, t, t + 5);
        }
        let f = &s.flows[0];
        assert_eq!((f.received, f.duplicates, f.reordered), (3, 1, 1));
    }
}
