//! TURN and STUN over a byte stream (TCP, or TLS on top of it), inside a worker.
//!
//! One task per connection reads and frames (RFC 8656 §12.5: ChannelData padded to 4
//! bytes), feeds the worker's [`TurnServer`](turnpike_proto::TurnServer), and relays to
//! peers; a second task writes. Everything written to the client goes through one bounded
//! queue ([`StreamQueue`]) of at most [`QUEUE_DEPTH`] messages.
//!
//! # Answers are never dropped; relayed data may be
//!
//! TCP clients do not retransmit (RFC 8489 §6.2.2): an answer dropped on a stream is lost
//! for good. So the read task waits for room in the queue before it queues an answer to
//! the connection's own request, and while it waits it reads nothing more from the
//! connection: a client that pipelines faster than it reads is slowed down (backpressure),
//! never answered partially. The read task waits only on its own connection's queue, so one
//! slow client holds up no one else. Data relayed from peers, and what other paths of the
//! worker push ([`Shared::send_to_client`]), cannot wait: when the queue holds
//! [`QUEUE_DEPTH`] messages, or [`QUEUE_BYTES`] bytes (relayed datagrams can be 64 KiB
//! each), it is dropped (it came over UDP and may be lost) and counted as
//! `stream_queue_full` (`turnpike_dropped_packets_total{reason="queue_full"}`). A queue
//! therefore holds at most [`QUEUE_BYTES`] of relayed data plus [`QUEUE_DEPTH`] answers of
//! at most 2 KiB each.
//!
//! # Timeouts: a slow client cannot hold a connection
//!
//! - Before the first byte, and with TLS until the handshake is done: `[tcp]
//!   handshake_timeout_secs` in all, from the accept.
//! - The idle timeout (`[tcp] idle_timeout_secs`) counts from the last **complete frame**
//!   (a STUN message or a ChannelData message), not the last byte: a client that sends a
//!   header and then one byte now and then (slowloris) is closed when the idle time is up.
//!   Time the read task spent waiting for room in the queue is not held against the
//!   client (the clock restarts when its answer is queued).
//! - One frame must arrive whole within `handshake_timeout_secs` of its first byte,
//!   whatever the idle timeout: no connection keeps a half-received frame (up to 64 KiB of
//!   buffer) for longer.
//! - Writing: a message the client does not take within `idle_timeout_secs` ends the
//!   connection. A client that never reads therefore holds at most its queue, its read
//!   buffer and what the kernel buffers, for at most about one idle timeout after its
//!   socket filled.

use crate::counters::WorkerCounters;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::debug;
use turnpike_proto::{ClientAction, ClientTransport, FiveTuple};
use turnpike_stun::framing::{Frame, Framing, next_frame};

use crate::handoff::{ClientStream, HandedStream, ToWorker};
use crate::shared::Shared;
use crate::tcp::{Incoming, Slot, TcpLimits};
use crate::tcp_relay;

/// The largest frame a stream may carry: a STUN header plus a 65535-byte body.
const MAX_FRAME: usize = 20 + 65_535;
/// Messages waiting to be written to one client: answers wait for room (backpressure),
/// relayed data finding it full is dropped.
pub(crate) const QUEUE_DEPTH: usize = 256;
/// Bytes waiting to be written to one client above which relayed data is dropped too:
/// [`QUEUE_DEPTH`] datagrams of 2 KiB, more than media packets need.
pub(crate) const QUEUE_BYTES: usize = 512 * 1024;
/// A TLS record starts with content type 22 (handshake); STUN starts with 0b00 and
/// ChannelData with 0b01, so one byte tells them apart (RFC 7983 §7).
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(shared: Rc<Shared>, conn: Incoming) {
    let Incoming {
        stream,
        peer,
        local,
        slot,
    } = conn;
    let Ok(stream) = TcpStream::from_std(stream) else {
        return;
    };
    let limits = shared.stream_limits;
    // One deadline for the first byte and the TLS handshake together.
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
    // Plain TCP and TLS share a port: look at the first byte without consuming it.
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first)).await;
    let Ok(Ok(1)) = peeked else {
        debug!(%peer, "closed before the first byte");
        return;
    };
    if first[0] == TLS_HANDSHAKE {
        let Some(acceptor) = shared.tls.borrow().clone() else {
            WorkerCounters::bump(&shared.counters.tls_unconfigured);
            debug!(%peer, "TLS attempted but no certificate is configured");
            return;
        };
        let accepted = tokio::time::timeout_at(deadline, acceptor.accept(stream)).await;
        match accepted {
            Ok(Ok(tls)) => {
                WorkerCounters::bump(&shared.counters.tls_handshakes);
                let stream = ClientStream::Tls(Box::new(tls));
                run(
                    shared,
                    stream,
                    peer,
                    local,
                    ClientTransport::Tls,
                    slot,
                    Vec::new(),
                )
                .await;
            }
            Ok(Err(e)) => {
                WorkerCounters::bump(&shared.counters.tls_handshake_failures);
                debug!(%peer, error = %e, "TLS handshake failed");
            }
            Err(_) => {
                WorkerCounters::bump(&shared.counters.tls_handshake_failures);
                debug!(%peer, "TLS handshake timed out");
            }
        }
    } else {
        let stream = ClientStream::Tcp(stream);
        run(
            shared,
            stream,
            peer,
            local,
            ClientTransport::Tcp,
            slot,
            Vec::new(),
        )
        .await;
    }
}

/// Serves a connection another worker handed over, from the frame it could not serve.
pub(crate) async fn resume(shared: Rc<Shared>, handed: HandedStream) {
    let HandedStream {
        stream,
        five_tuple,
        slot,
        buffered,
    } = handed;
    let FiveTuple {
        client,
        server,
        transport,
    } = five_tuple;
    run(shared, stream, client, server, transport, slot, buffered).await;
}

/// Serves a connection: frames in, answers out, until it closes, becomes an RFC 6062
/// data connection, or goes to another worker. `buffered` is what was read already.
async fn run(
    shared: Rc<Shared>,
    stream: ClientStream,
    peer: SocketAddr,
    local: SocketAddr,
    transport: ClientTransport,
    slot: Slot,
    buffered: Vec<u8>,
) {
    let five_tuple = FiveTuple {
        client: peer,
        server: local,
        transport,
    };
    let (mut reader, writer) = tokio::io::split(stream);
    let (tx, rx) = StreamQueue::new();
    let limits = shared.stream_limits;
    let write_task = tokio::task::spawn_local(write_loop(writer, rx, limits.idle_timeout));
    shared.streams.borrow_mut().insert(five_tuple, tx.clone());

    let outcome = read_loop(&shared, &mut reader, five_tuple, &tx, limits, buffered).await;
    shared.streams.borrow_mut().remove(&five_tuple);
    let reason = match outcome {
        Outcome::Closed(reason) => reason,
        Outcome::Handoff { shard, buffered } => {
            // Not this worker's client: the writer has sent nothing for the frame at
            // hand; take the stream back and hand it, with what is buffered, over.
            drop(tx);
            let Ok(writer) = write_task.await else {
                return;
            };
            let Some(queue) = shared.workers.get(usize::from(shard)) else {
                return;
            };
            let _ = queue.send(ToWorker::Stream(HandedStream {
                stream: reader.unsplit(writer),
                five_tuple,
                slot,
                buffered,
            }));
            return;
        }
        Outcome::Bind { connection, early } => {
            // RFC 6062 §5.4: after the ConnectionBind success this connection carries raw
            // bytes. Let the writer flush the success response, then pipe.
            drop(tx);
            let Ok(writer) = write_task.await else {
                return;
            };
            let stream = reader.unsplit(writer);
            tcp_relay::pipe(shared, connection, five_tuple, stream, early).await;
            drop(slot);
            return;
        }
    };
    debug!(%peer, ?transport, reason, "stream closed");
    // RFC 8656 §3.1: an allocation made over a connection ends with it.
    shared.with_core(|core, host| core.handle_connection_closed(Instant::now(), five_tuple, host));
    drop(tx);
    let _ = write_task.await;
    drop(slot);
}

/// Why a read loop ended.
enum Outcome {
    /// The connection is done.
    Closed(&'static str),
    /// A ConnectionBind succeeded: pipe this connection to peer connection `connection`,
    /// starting with the bytes the client sent after the request.
    Bind {
        connection: turnpike_proto::stun::attr::ConnectionId,
        early: Vec<u8>,
    },
    /// Another worker serves this client: hand it the connection, starting with
    /// `buffered` (the frame at hand and what followed).
    Handoff { shard: u8, buffered: Vec<u8> },
}

/// Reads frames and answers them until the connection ends (see the module docs for the
/// timeouts and the backpressure). Holds no borrow of the worker's state across an await.
async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Shared,
    reader: &mut R,
    five_tuple: FiveTuple,
    tx: &StreamQueue,
    limits: TcpLimits,
    buffered: Vec<u8>,
) -> Outcome {
    let mut buf: Vec<u8> = buffered;
    buf.reserve(4096);
    let mut out = vec![0u8; 2048];
    let mut start = 0;
    // The idle clock (tokio's clock, so that tests can run it in paused time): restarts
    // on each complete frame, never on a byte.
    let mut last_frame = tokio::time::Instant::now();
    // When the first byte of the incomplete frame at hand arrived.
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        loop {
            let frame_len = match next_frame(&buf[start..]) {
                Framing::Frame(Frame::Stun(n) | Frame::ChannelData(n)) => n,
                Framing::NeedMore(n) if n > MAX_FRAME => return Outcome::Closed("frame too large"),
                Framing::NeedMore(_) => break,
                Framing::Garbage => return Outcome::Closed("not STUN"),
            };
            let frame = &buf[start..start + frame_len];
            let action = shared.with_core(|core, host| {
                core.handle_client(Instant::now(), five_tuple, frame, &mut out, host)
            });
            match action {
                ClientAction::None => {}
                ClientAction::Reply(n) | ClientAction::ReplyFrom { len: n, .. } => {
                    // An answer to this connection's own request: wait for room rather
                    // than drop it (the client does not retransmit); meanwhile nothing
                    // more is read from it.
                    if tx.push(&out[..n]).await.is_err() {
                        return Outcome::Closed("write side closed");
                    }
                }
                ClientAction::ToPeer {
                    relay,
                    peer,
                    payload,
                    dont_fragment,
                } => shared.send_to_peer(relay, peer, &frame[payload], dont_fragment),
                ClientAction::Forward { shard } => {
                    return Outcome::Handoff {
                        shard,
                        buffered: buf[start..].to_vec(),
                    };
                }
                ClientAction::BindData { reply, connection } => {
                    if tx.push(&out[..reply]).await.is_err() {
                        return Outcome::Closed("write side closed");
                    }
                    let early = buf[start + frame_len..].to_vec();
                    return Outcome::Bind { connection, early };
                }
            }
            start += frame_len;
            // After the wait for room: the client is not blamed for the server's pause.
            last_frame = tokio::time::Instant::now();
            partial_since = None;
        }
        buf.drain(..start);
        start = 0;
        // What is left is the start of a frame that came in the last read (or earlier,
        // if its clock already runs).
        if buf.is_empty() {
            partial_since = None;
        } else if partial_since.is_none() {
            partial_since = Some(tokio::time::Instant::now());
        }
        let idle_end = last_frame + limits.idle_timeout;
        let (deadline, why) = match partial_since {
            Some(t) if t + limits.handshake_timeout < idle_end => {
                (t + limits.handshake_timeout, "frame too slow")
            }
            _ => (idle_end, "idle timeout"),
        };
        let old = buf.len();
        buf.resize(old + 4096, 0);
        let read = tokio::time::timeout_at(deadline, reader.read(&mut buf[old..]));
        tokio::select! {
            read = read => match read {
                Err(_) => return Outcome::Closed(why),
                Ok(Err(_)) => return Outcome::Closed("read error"),
                Ok(Ok(0)) => return Outcome::Closed("closed by the client"),
                Ok(Ok(n)) => buf.truncate(old + n),
            },
            // The writer gave up (the client took nothing for a write timeout): end now
            // rather than at the next frame.
            () = tx.closed() => return Outcome::Closed("write side closed"),
        }
    }
}

/// Writes queued messages until the queue closes; returns the writer so a data
/// connection can take the stream over. A message (or a flush) not taken within
/// `timeout` ends it early, which closes the queue.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: QueueReader,
    timeout: Duration,
) -> W {
    loop {
        let msg = match rx.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // Nothing more queued: push out what TLS holds back (records that did not
                // fit in the socket) before waiting, or it would wait with them.
                if !matches!(
                    tokio::time::timeout(timeout, writer.flush()).await,
                    Ok(Ok(()))
                ) {
                    return writer;
                }
                match rx.recv().await {
                    Some(msg) => msg,
                    None => break,
                }
            }
        };
        match tokio::time::timeout(timeout, writer.write_all(&msg)).await {
            Ok(Ok(())) => {}
            _ => return writer,
        }
    }
    let _ = tokio::time::timeout(timeout, writer.flush()).await;
    writer
}

/// A stream client's write queue as the worker's tasks see it: at most [`QUEUE_DEPTH`]
/// messages, and relayed data only while fewer than [`QUEUE_BYTES`] bytes wait. Cheap to
/// clone; the worker is single-threaded, so the byte count is a plain `Cell`.
#[derive(Debug, Clone)]
pub(crate) struct StreamQueue {
    tx: mpsc::Sender<Bytes>,
    bytes: Rc<Cell<usize>>,
}

/// The write task's end of a [`StreamQueue`].
#[derive(Debug)]
pub(crate) struct QueueReader {
    rx: mpsc::Receiver<Bytes>,
    bytes: Rc<Cell<usize>>,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotQueued {
    /// [`QUEUE_DEPTH`] messages or [`QUEUE_BYTES`] bytes wait already.
    Full,
    /// The connection's writer is gone.
    Closed,
}

impl StreamQueue {
    /// A new, empty queue and its reading end.
    pub(crate) fn new() -> (Self, QueueReader) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let bytes = Rc::new(Cell::new(0));
        let reader = QueueReader {
            rx,
            bytes: Rc::clone(&bytes),
        };
        (Self { tx, bytes }, reader)
    }

    /// Queues relayed data (or an indication) without waiting; refused when full by
    /// count or by bytes.
    pub(crate) fn try_push(&self, message: &[u8]) -> Result<(), NotQueued> {
        if self.tx.is_closed() {
            return Err(NotQueued::Closed);
        }
        if self.bytes.get() + message.len() > QUEUE_BYTES {
            return Err(NotQueued::Full);
        }
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => NotQueued::Full,
            mpsc::error::TrySendError::Closed(()) => NotQueued::Closed,
        })?;
        self.bytes.set(self.bytes.get() + message.len());
        permit.send(Bytes::copy_from_slice(message));
        Ok(())
    }

    /// Queues an answer, waiting for room by count (an answer is never refused for the
    /// bytes relayed data holds). Cancel safe: nothing is queued if the wait is dropped.
    pub(crate) async fn push(&self, message: &[u8]) -> Result<(), NotQueued> {
        let permit = self.tx.reserve().await.map_err(|_| NotQueued::Closed)?;
        self.bytes.set(self.bytes.get() + message.len());
        permit.send(Bytes::copy_from_slice(message));
        Ok(())
    }

    /// Completes when the writer has gone (it gave up on the client).
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Free message slots now (for tests).
    #[cfg(test)]
    pub(crate) fn room(&self) -> usize {
        self.tx.capacity()
    }
}

impl QueueReader {
    fn taken(&self, msg: Bytes) -> Bytes {
        self.bytes.set(self.bytes.get().saturating_sub(msg.len()));
        msg
    }

    /// The next message if one waits.
    fn try_recv(&mut self) -> Result<Bytes, TryRecvError> {
        self.rx.try_recv().map(|m| self.taken(m))
    }

    /// The next message, waiting; `None` once every sender is gone and the queue is empty.
    async fn recv(&mut self) -> Option<Bytes> {
        let msg = self.rx.recv().await?;
        Some(self.taken(msg))
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
