//! The sending thread: paces every flow, stamps each datagram's payload and sends it on
//! the session's send path (plain, `sendmmsg`, the shared socket, or a stream).

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use turnpike_udp::SendBuffer;

use super::flow::Flow;
use super::{HEAD_SLOT, MAGIC, MAX_PAYLOAD, MIN_PAYLOAD, RunParams, SendPath, Shape};

#[derive(Default)]
pub(super) struct SendStats {
    pub(super) sent: Vec<u64>,
    pub(super) refreshes: u64,
    pub(super) errors: u64,
    /// Send system calls.
    pub(super) calls: u64,
    /// Time spent in stream writes.
    pub(super) write_wait: Duration,
    pub(super) elapsed: Duration,
    /// The sending thread's CPU time.
    pub(super) cpu: Duration,
}

/// Where and how the sending thread sends.
pub(super) struct Out<'s> {
    pub(super) path: SendPath,
    pub(super) shared: Option<&'s UdpSocket>,
    pub(super) dest: SocketAddr,
    pub(super) batch: usize,
    pub(super) gso: bool,
    pub(super) tick: Duration,
    /// TCP or TLS: frames are written through each flow's client.
    pub(super) stream: bool,
}

/// Stamps every queued datagram with the current time (the last 8 bytes of each head)
/// and sends the batch on `socket`.
fn flush(
    batch: &mut SendBuffer<'_>,
    socket: Option<&UdpSocket>,
    epoch: Instant,
    stats: &mut SendStats,
) {
    if batch.is_empty() {
        return;
    }
    let Some(socket) = socket else {
        stats.errors += batch.len() as u64;
        batch.clear();
        return;
    };
    let stamp = (epoch.elapsed().as_nanos() as u64).to_be_bytes();
    for h in batch.heads_mut() {
        let n = h.len();
        h[n - 8..].copy_from_slice(&stamp);
    }
    let o = batch.send(socket);
    stats.errors += o.errors as u64;
    stats.calls += o.calls as u64;
}

pub(super) fn send_loop(
    flows: &mut [Flow],
    out: &Out<'_>,
    p: &RunParams,
    run_id: u16,
    epoch: Instant,
    every: Duration,
) -> SendStats {
    let cpu0 = turnpike_udp::sys::cpu_time(true);
    let n = flows.len();
    let rate = p.rate.max(1e-3);
    let (burst, interval_ns) = match p.shape {
        Shape::Steady => (1u64, 1e9 / rate),
        Shape::Bursty => {
            let burst = (rate / f64::from(p.fps.max(1))).round().max(1.0);
            (burst as u64, 1e9 * burst / rate)
        }
    };
    let interval_ns = interval_ns.max(1.0) as u64;
    let tick_ns = out.tick.as_nanos() as u64;
    // Frames one flow may send in one pass: a few, or what a tick holds (up to a GSO
    // message's worth).
    let max_frames = (tick_ns / interval_ns + 1).clamp(8, 64);
    let start = epoch.elapsed().as_nanos() as u64;
    let end = start + p.duration.as_nanos() as u64;
    // Spread the flows' first sends over one interval.
    let mut next: Vec<u64> = (0..n as u64)
        .map(|i| start + interval_ns * i / n.max(1) as u64)
        .collect();
    let mut refresh_at: Vec<Instant> = (0..n)
        .map(|i| Instant::now() + every + every / 10 * (i % 10) as u32 / 10)
        .collect();
    let mut stats = SendStats {
        sent: vec![0; n],
        ..SendStats::default()
    };
    // Every datagram's tail: the payload's filler and any padding, all zeros.
    let zeros = vec![0u8; MAX_PAYLOAD + 64];
    let mut batch = SendBuffer::new(out.batch, HEAD_SLOT);
    batch.set_gso(out.gso);
    let shared = out.path == SendPath::Shared;
    let dest = shared.then_some(out.dest);
    // A stream flow's frames due in one pass, written at once, and where their send
    // times go.
    let mut sbuf: Vec<u8> = Vec::new();
    let mut stamp_at: Vec<usize> = Vec::new();
    let mut total = 0u64;
    let mut done = false;
    let begin = Instant::now();
    while !done {
        let now = epoch.elapsed().as_nanos() as u64;
        if now >= end {
            break;
        }
        let mut earliest = u64::MAX;
        let wall = Instant::now();
        for (i, f) in flows.iter_mut().enumerate() {
            // Catch up at most a few frames per pass (a tick's worth) so one late flow
            // cannot starve the others or the end-of-run check; a generator that falls
            // behind shows it as offered < target.
            let mut frames = 0;
            let head_len = f.payload_at + MIN_PAYLOAD;
            while next[i] <= now && frames < max_frames && !done {
                frames += 1;
                for _ in 0..burst {
                    if total >= p.max_packets {
                        done = true;
                        break;
                    }
                    let seq = stats.sent[i];
                    if out.stream {
                        let at = sbuf.len();
                        sbuf.extend_from_slice(&f.frame);
                        if let Some(pl) = sbuf.get_mut(at + f.payload_at..) {
                            write_fields(pl, run_id, i, seq);
                        }
                        stamp_at.push(at + f.payload_at + 16);
                    } else if out.path == SendPath::Plain {
                        let pl = &mut f.frame[f.payload_at..];
                        write_fields(pl, run_id, i, seq);
                        let stamp = epoch.elapsed().as_nanos() as u64;
                        pl[16..24].copy_from_slice(&stamp.to_be_bytes());
                        stats.calls += 1;
                        match &f.socket {
                            Some(s) if s.send(&f.frame).is_ok() => {}
                            _ => stats.errors += 1,
                        }
                    } else {
                        let (head, rest) = f.frame.split_at(head_len.min(f.frame.len()));
                        let tail = &zeros[..rest.len().min(zeros.len())];
                        if let Some(h) = batch.push(head, tail, dest, f.src) {
                            if let Some(pl) = h.get_mut(f.payload_at..) {
                                write_fields(pl, run_id, i, seq);
                            }
                        }
                        if batch.is_full() {
                            let socket = if shared {
                                out.shared
                            } else {
                                f.socket.as_ref()
                            };
                            flush(&mut batch, socket, epoch, &mut stats);
                        }
                    }
                    stats.sent[i] += 1;
                    total += 1;
                }
                next[i] += interval_ns;
            }
            if out.stream {
                if let (false, Some(c)) = (sbuf.is_empty(), f.client.as_mut()) {
                    let stamp = (epoch.elapsed().as_nanos() as u64).to_be_bytes();
                    for &at in &stamp_at {
                        if let Some(b) = sbuf.get_mut(at..at + 8) {
                            b.copy_from_slice(&stamp);
                        }
                    }
                    let t0 = Instant::now();
                    stats.calls += 1;
                    if c.send_raw(&sbuf).is_err() {
                        stats.errors += stamp_at.len() as u64;
                    }
                    stats.write_wait += t0.elapsed();
                }
                sbuf.clear();
                stamp_at.clear();
            } else if !shared {
                flush(&mut batch, f.socket.as_ref(), epoch, &mut stats);
            }
            earliest = earliest.min(next[i]);
            if done {
                break;
            }
            if f.client.is_some() && wall >= refresh_at[i] {
                refresh_at[i] += every;
                stats.refreshes += 1;
                if f.refresh().is_err() {
                    stats.errors += 1;
                }
            }
        }
        if shared {
            flush(&mut batch, out.shared, epoch, &mut stats);
        }
        // The next pass: when the next datagram is due, but not before a tick after
        // this pass began (what is due by then goes out together).
        let pass_end = epoch.elapsed().as_nanos() as u64;
        let wait = earliest
            .max(now + tick_ns)
            .min(end)
            .saturating_sub(pass_end);
        if wait > 60_000 {
            // Sleeps overshoot by the timer slack (50 µs by default).
            thread::sleep(Duration::from_nanos(wait - 50_000));
        } else if wait > 0 {
            thread::yield_now();
        }
    }
    stats.elapsed = begin.elapsed();
    stats.cpu = turnpike_udp::sys::cpu_time(true).saturating_sub(cpu0);
    stats
}

/// Writes the payload's magic, run id, flow id and sequence number (`pl` is at least
/// [`MIN_PAYLOAD`] bytes: every frame is built so).
fn write_fields(pl: &mut [u8], run_id: u16, flow: usize, seq: u64) {
    if pl.len() < MIN_PAYLOAD {
        return;
    }
    pl[0..2].copy_from_slice(&MAGIC.to_be_bytes());
    pl[2..4].copy_from_slice(&run_id.to_be_bytes());
    pl[4..8].copy_from_slice(&(flow as u32).to_be_bytes());
    pl[8..16].copy_from_slice(&seq.to_be_bytes());
}
