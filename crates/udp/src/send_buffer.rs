//! The bench's batched send: datagrams copied in (a head, followed by a borrowed tail such as
//! zero filler), each with an optional destination and IPv4 source, sent with as few
//! `sendmmsg(2)` calls as the kernel allows.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use crate::gso;
use crate::mmsg::{self, Mmsg};

/// Most datagrams in one batch of the bench's load engine (`--send-batch`).
pub const MAX_SEND_BATCH: usize = 512;
/// Most datagrams one [`SendBuffer`] holds: the kernel's `UIO_MAXIOV`, the most messages one
/// `sendmmsg` call takes and the most iovecs per message (a GSO message takes two per
/// datagram, and holds at most 64 datagrams).
pub const SENDMMSG_MAX: usize = 1024;

/// Datagrams queued for one `sendmmsg(2)` call.
///
/// Each datagram is a head copied into the buffer (up to the slot size given to
/// [`SendBuffer::new`]) followed by a borrowed tail, with an optional destination (for
/// unconnected sockets) and an optional IPv4 source address, sent as an `IP_PKTINFO`
/// control message (`ipi_spec_dst`): one socket bound to the wildcard address can then send
/// as many loopback addresses.
///
/// With UDP GSO on ([`SendBuffer::set_gso`]), consecutive datagrams of one size to the same
/// destination from the same source go as one message with a `UDP_SEGMENT` control message.
pub struct SendBuffer<'a> {
    slot: usize,
    heads: Vec<u8>,
    head_lens: Vec<usize>,
    tails: Vec<&'a [u8]>,
    /// Datagrams queued.
    len: usize,
    /// Messages: consecutive datagrams sent as one (GSO) or alone.
    msgs: Vec<Msg>,
    gso: bool,
    mmsg: Mmsg,
}

/// One message of a [`SendBuffer`]: `count` datagrams from `first` on.
#[derive(Debug, Clone, Copy)]
struct Msg {
    first: usize,
    count: usize,
    /// Each datagram's length (all equal).
    size: usize,
    dest: Option<SocketAddr>,
    src: Option<Ipv4Addr>,
}

/// What one [`SendBuffer::send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams that failed (a refused message loses its datagrams).
    pub errors: usize,
    /// System calls made.
    pub calls: usize,
}

impl<'a> SendBuffer<'a> {
    /// Room for `batch` (1..=[`SENDMMSG_MAX`]) datagrams with heads of up to `slot` bytes;
    /// GSO off.
    pub fn new(batch: usize, slot: usize) -> Self {
        let batch = batch.clamp(1, SENDMMSG_MAX);
        Self {
            slot,
            heads: vec![0; batch * slot],
            head_lens: vec![0; batch],
            tails: vec![&[]; batch],
            len: 0,
            msgs: Vec::with_capacity(batch),
            gso: false,
            mmsg: Mmsg::new(batch, 2 * batch),
        }
    }

    /// Turns UDP GSO on or off (on only where [`gso::gso_available`]).
    pub fn set_gso(&mut self, on: bool) {
        self.gso = on && gso::gso_available();
    }

    /// Turns GSO on without asking whether the kernel has it (for the probe itself).
    pub(crate) fn force_gso(&mut self) {
        self.gso = true;
    }

    /// Whether GSO is on.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// How many messages the queued datagrams make (fewer than datagrams with GSO).
    pub fn messages(&self) -> usize {
        self.msgs.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the buffer is full (send it before pushing more).
    pub fn is_full(&self) -> bool {
        self.len == self.head_lens.len()
    }

    /// Queues a datagram `head ++ tail` (the head is copied, cut to the slot size) to
    /// `dest` (None: the connected peer) from `src` (None: the socket's own address).
    /// Returns the copied head, to fill in; `None` when the buffer is full.
    pub fn push(
        &mut self,
        head: &[u8],
        tail: &'a [u8],
        dest: Option<SocketAddr>,
        src: Option<Ipv4Addr>,
    ) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        let i = self.len;
        let n = head.len().min(self.slot);
        let size = n + tail.len();
        let joins = self.gso
            && self.msgs.last().is_some_and(|m| {
                m.size == size
                    && m.dest == dest
                    && m.src == src
                    && gso::may_join(m.size, m.count, m.count * m.size, size)
            });
        match self.msgs.last_mut() {
            Some(m) if joins => m.count += 1,
            _ => self.msgs.push(Msg {
                first: i,
                count: 1,
                size,
                dest,
                src,
            }),
        }
        let at = i * self.slot;
        self.heads[at..at + n].copy_from_slice(&head[..n]);
        self.head_lens[i] = n;
        self.tails[i] = tail;
        self.len += 1;
        Some(&mut self.heads[at..at + n])
    }

    /// The queued heads, in order, to update just before sending (send timestamps).
    pub fn heads_mut(&mut self) -> impl Iterator<Item = &mut [u8]> {
        self.heads
            .chunks_exact_mut(self.slot)
            .zip(&self.head_lens)
            .take(self.len)
            .map(|(c, &n)| &mut c[..n])
    }

    /// Drops every queued datagram.
    pub fn clear(&mut self) {
        self.len = 0;
        self.msgs.clear();
        self.mmsg.clear();
    }

    /// Sends every queued datagram on `socket` (as few `sendmmsg` calls as the kernel
    /// allows; a message the kernel refuses is counted and skipped) and empties the buffer.
    /// A refused GSO message turns GSO off for this buffer.
    pub fn send(&mut self, socket: &impl AsRawFd) -> SendOutcome {
        self.send_msgs(socket, false).0
    }

    /// For a non-blocking `socket`: sends the queued datagrams in order until the kernel
    /// refuses one (a full socket buffer, or an error) and empties the buffer; returns how
    /// many were sent. The error comes back only when nothing was sent and the socket's
    /// buffer was not simply full (then `Ok(0)`).
    pub fn send_until_blocked(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        match self.send_msgs(socket, true) {
            (out, Some(e)) if out.sent == 0 && e.kind() != io::ErrorKind::WouldBlock => Err(e),
            (out, _) => Ok(out.sent),
        }
    }

    /// [`SendBuffer::send`], or with `stop` [`SendBuffer::send_until_blocked`]: then the
    /// first refusal ends the call, and is returned.
    fn send_msgs(&mut self, socket: &impl AsRawFd, stop: bool) -> (SendOutcome, Option<io::Error>) {
        let mut out = SendOutcome::default();
        let mut refused = None;
        if self.len == 0 {
            return (out, refused);
        }
        self.fill();
        let mut at = 0;
        while at < self.msgs.len() {
            out.calls += 1;
            // SAFETY: the iovecs point into `heads` (owned, not touched until `clear`) and
            // `tails` (borrowed for 'a, which outlives `self`), both alive and unchanged
            // while `&mut self` is held here.
            match unsafe { self.mmsg.send(socket.as_raw_fd(), at, 0) } {
                Ok(r) => {
                    out.sent += self.msgs[at..at + r].iter().map(|m| m.count).sum::<usize>();
                    at += r;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let m = self.msgs[at];
                    if m.count > 1 && gso::refused(&e) {
                        self.gso = false;
                    }
                    if stop {
                        refused = Some(e);
                        break;
                    }
                    out.errors += m.count;
                    at += 1;
                }
            }
        }
        self.clear();
        (out, refused)
    }

    /// Lays the queued messages out for the kernel.
    fn fill(&mut self) {
        self.mmsg.clear();
        for m in &self.msgs {
            for i in m.first..m.first + m.count {
                let at = i * self.slot;
                self.mmsg.push_iov(&self.heads[at..at + self.head_lens[i]]);
                self.mmsg.push_iov(self.tails[i]);
            }
            let segment = (m.count > 1).then(|| u16::try_from(m.size).unwrap_or(u16::MAX));
            self.mmsg.end_message(mmsg::name(m.dest), m.src, segment);
        }
    }
}

#[cfg(test)]
#[path = "send_buffer_tests.rs"]
mod tests;
