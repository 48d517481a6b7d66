//! The server's batched send: datagrams that borrow their bytes from a [`RecvBatch`] slot
//! (or from one flat buffer of answers), queued while a batch is processed and sent with one
//! `sendmmsg` per run of the same socket, with UDP GSO for consecutive datagrams to one
//! destination (a video frame relayed as a burst of full-size packets is the common case).

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;

use crate::addr::RawAddr;
use crate::gso;
use crate::mmsg::{Mmsg, send_one};
use crate::recv::{BATCH, RecvBatch};

/// Where the bytes of queued datagrams live: the slots of a [`RecvBatch`], or one flat
/// buffer (slot 0) for answers written one after the other.
pub trait Slots {
    /// Bytes `range` of slot `i`.
    fn bytes(&self, i: usize, range: &Range<usize>) -> &[u8];
}

impl Slots for RecvBatch {
    #[inline]
    fn bytes(&self, i: usize, range: &Range<usize>) -> &[u8] {
        self.slot_bytes(i, range)
    }
}

impl Slots for Vec<u8> {
    #[inline]
    fn bytes(&self, _: usize, range: &Range<usize>) -> &[u8] {
        &self[range.clone()]
    }
}

/// One datagram waiting in a [`SendBatch`]: bytes `range` of a [`Slots`] slot, to go from
/// socket `fd` to `to`.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The sending socket.
    pub fd: RawFd,
    /// The destination.
    pub to: Destination,
    /// The slot that holds the bytes.
    pub slot: usize,
    /// Where the bytes are in the slot.
    pub range: Range<usize>,
    /// The caller's note (the server's relay, for a datagram to a peer).
    pub tag: u32,
}

/// Where a datagram goes (a plain `SocketAddr`: the kernel's form is built only for a send
/// that names it, never for the connected sends to peers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    /// The receiver.
    pub addr: SocketAddr,
    /// Whether the sending socket is connected to `addr`: the send then names no
    /// destination, so the kernel uses the socket's cached route.
    pub connected: bool,
}

impl Destination {
    /// A destination named in every send.
    #[inline]
    pub fn to(addr: SocketAddr) -> Self {
        Self {
            addr,
            connected: false,
        }
    }

    /// The destination to name in the send: none on a connected socket.
    #[inline]
    pub fn name(&self) -> Option<RawAddr> {
        (!self.connected).then(|| RawAddr::from(self.addr))
    }
}

/// Datagrams to send, collected while a [`RecvBatch`] is processed and sent with one
/// `sendmmsg` per run of the same socket by [`flush`](Self::flush).
pub struct SendBatch {
    queue: Vec<Outgoing>,
    mmsg: Mmsg,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            queue: Vec::with_capacity(BATCH),
            mmsg: Mmsg::new(BATCH, BATCH),
        }
    }

    /// Whether nothing is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues a datagram; its bytes must stay in the [`Slots`] until the flush.
    #[inline]
    pub fn push(&mut self, fd: RawFd, to: Destination, slot: usize, range: Range<usize>, tag: u32) {
        self.queue.push(Outgoing {
            fd,
            to,
            slot,
            range,
            tag,
        });
    }

    /// Sends everything queued, one `sendmmsg` per run of the same socket, and empties the
    /// queue. A full socket buffer drops the rest of that run (as a full link would); a
    /// datagram that fails for another reason (a pending ICMP error, say) is handed to
    /// `failed`, and the run goes on after it.
    pub fn flush(&mut self, rx: &impl Slots, mut failed: impl FnMut(&Outgoing, &[u8])) {
        let mut at = 0;
        while at < self.queue.len() {
            let fd = self.queue[at].fd;
            let end = self.queue[at..]
                .iter()
                .position(|o| o.fd != fd)
                .map_or(self.queue.len(), |k| at + k);
            let mut next = at;
            while next < end {
                let sent = if end - next == 1 {
                    // One datagram: plain sendto costs less than sendmmsg's header
                    // copying (the common case for data to peers: one relay socket each).
                    let o = &self.queue[next];
                    send_one(o.fd, rx.bytes(o.slot, &o.range), o.to.name().as_ref()).map(|_| 1)
                } else {
                    send_run(&mut self.mmsg, rx, &self.queue[next..end])
                };
                match sent {
                    // 0: GSO was just turned off; send the same datagrams again.
                    Ok(sent) => next += sent,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        let o = &self.queue[next];
                        failed(o, rx.bytes(o.slot, &o.range));
                        next += 1;
                    }
                }
            }
            at = end;
        }
        self.queue.clear();
    }
}

/// One `sendmmsg` of `run` (all from the same socket, at most [`BATCH`] are taken): answers
/// how many datagrams the kernel took.
///
/// UDP GSO: consecutive datagrams to the same destination, all of the first one's size but
/// the last (which may be shorter), go as one message whose iovecs the kernel cuts into
/// datagrams of that size.
fn send_run(mmsg: &mut Mmsg, rx: &impl Slots, run: &[Outgoing]) -> io::Result<usize> {
    let count = run.len().min(BATCH);
    let gso = gso::enabled();
    mmsg.clear();
    // Datagrams in each message.
    let mut sizes = [0usize; BATCH];
    let mut k = 0;
    while k < count {
        let first = &run[k];
        let seg = first.range.len();
        let mut end = k + 1;
        let mut total = seg;
        if gso {
            while end < count
                && run[end].to == first.to
                && gso::may_join(seg, end - k, total, run[end].range.len())
            {
                total += run[end].range.len();
                end += 1;
                // Only the last segment may be shorter.
                if run[end - 1].range.len() < seg {
                    break;
                }
            }
        }
        for o in &run[k..end] {
            mmsg.push_iov(rx.bytes(o.slot, &o.range));
        }
        let segment = (end - k > 1).then_some(seg as u16);
        sizes[mmsg.len()] = end - k;
        mmsg.end_message(first.to.name(), None, segment);
        k = end;
    }
    // SAFETY: every iovec pushed above points into `rx`, borrowed for this whole function.
    // MSG_DONTWAIT: never block the worker.
    match unsafe { mmsg.send(run[0].fd, 0, libc::MSG_DONTWAIT) } {
        Ok(n) => Ok(sizes[..n].iter().sum()),
        // A kernel or device without UDP GSO: stop asking; the caller retries the
        // datagrams, this time one message each.
        Err(e) if gso && sizes[0] > 1 && gso::refused(&e) => {
            gso::disable();
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    /// Fills slot `i` of a fresh batch with `data` by receiving it.
    fn loaded(datagrams: &[Vec<u8>]) -> RecvBatch {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for d in datagrams {
            tx.send_to(d, rx.local_addr().unwrap()).unwrap();
        }
        let mut batch = RecvBatch::with_room(4, 2048, 4);
        let mut got = 0;
        while got < datagrams.len() {
            got += batch.recv_at(rx.as_raw_fd(), got).unwrap();
        }
        batch
    }

    fn recv_all(socket: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        (0..n)
            .map(|_| {
                let mut buf = [0u8; 4096];
                let len = socket.recv(&mut buf).unwrap();
                buf[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn send_batch_keeps_datagram_boundaries_across_gso_runs() {
        // A burst of equal datagrams with a shorter last one (one GSO message), then
        // datagrams to another destination and of other sizes.
        let mut data: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1200]).collect();
        data.push(vec![9; 300]);
        data.push(vec![10; 1200]);
        data.push(vec![11; 100]);
        data.push(vec![12; 100]);
        let batch = loaded(&data);
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let out = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sends = SendBatch::new();
        for (i, d) in data.iter().enumerate() {
            let to = if i == 7 {
                b.local_addr()
            } else {
                a.local_addr()
            }
            .unwrap();
            sends.push(out.as_raw_fd(), Destination::to(to), i, 4..4 + d.len(), 0);
        }
        let mut failures = 0;
        sends.flush(&batch, |_, _| failures += 1);
        assert_eq!(failures, 0);
        // The kernel took the GSO messages (Linux ≥ 4.18 on loopback).
        assert!(gso::enabled(), "UDP GSO was refused");
        let mut expected_a = data.clone();
        let expected_b = vec![expected_a.remove(7)];
        assert_eq!(recv_all(&a, expected_a.len()), expected_a);
        assert_eq!(recv_all(&b, 1), expected_b);
        // Nothing more: no datagram was merged or duplicated.
        a.set_nonblocking(true).unwrap();
        assert!(a.recv(&mut [0u8; 16]).is_err());
    }

    /// Sends on a connected socket name no destination; a failed datagram goes to
    /// `failed` and the run goes on after it.
    #[test]
    fn connected_sends_and_failures() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let out = UdpSocket::bind("127.0.0.1:0").unwrap();
        out.connect(peer.local_addr().unwrap()).unwrap();
        let to = Destination {
            addr: peer.local_addr().unwrap(),
            connected: true,
        };
        assert!(to.name().is_none() && Destination::to(to.addr).name().is_some());
        let flat: Vec<u8> = b"onetwo".to_vec();
        let mut sends = SendBatch::new();
        sends.push(out.as_raw_fd(), to, 0, 0..3, 1);
        sends.push(out.as_raw_fd(), to, 0, 3..6, 2);
        // A descriptor that is not open fails alone.
        sends.push(-1, to, 0, 0..3, 3);
        let mut failed = Vec::new();
        sends.flush(&flat, |o, bytes| failed.push((o.tag, bytes.to_vec())));
        assert!(sends.is_empty());
        assert_eq!(failed, vec![(3, b"one".to_vec())]);
        assert_eq!(recv_all(&peer, 2), vec![b"one".to_vec(), b"two".to_vec()]);
    }
}
