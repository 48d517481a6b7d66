//! TURN and STUN over a byte stream (TCP, or TLS on top of it), inside a worker.
//!
//! One task per connection reads and frames (RFC 8656 §12.5: ChannelData padded to 4
//! bytes), feeds the worker's [`TurnServer`](turnpike_proto::TurnServer), and relays to
//! peers; a second task writes. Everything written to the client — responses and data
//! relayed from peers — goes through one bounded queue: when a client does not read, the
//! queue fills and further relayed datagrams are dropped (they came over UDP and may be
//! lost), memory stays bounded, and the idle timeout ends the connection.

use crate::counters::WorkerCounters;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::debug;
use turnpike_proto::{ClientAction, ClientTransport, FiveTuple};
use turnpike_stun::framing::{Frame, Framing, next_frame};

use crate::handoff::{ClientStream, HandedStream, ToWorker};
use crate::shared::Shared;
use crate::tcp::{Incoming, Slot};
use crate::tcp_relay;

/// The largest frame a stream may carry: a STUN header plus a 65535-byte body.
const MAX_FRAME: usize = 20 + 65_535;
/// Messages waiting to be written to one client.
const QUEUE_DEPTH: usize = 256;
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
    // Plain TCP and TLS share a port: look at the first byte without consuming it.
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(limits.handshake_timeout, stream.peek(&mut first)).await;
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
        let accepted =
            tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await;
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
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE_DEPTH);
    let idle = shared.stream_limits.idle_timeout;
    let write_task = tokio::task::spawn_local(write_loop(writer, rx, idle));
    shared.streams.borrow_mut().insert(five_tuple, tx.clone());

    let outcome = read_loop(&shared, &mut reader, five_tuple, &tx, idle, buffered).await;
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

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Shared,
    reader: &mut R,
    five_tuple: FiveTuple,
    tx: &mpsc::Sender<Bytes>,
    idle: Duration,
    buffered: Vec<u8>,
) -> Outcome {
    let mut buf: Vec<u8> = buffered;
    buf.reserve(4096);
    let mut out = vec![0u8; 2048];
    let mut start = 0;
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
                    // A full queue means the client is not reading: drop, it retransmits.
                    let _ = tx.try_send(Bytes::copy_from_slice(&out[..n]));
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
                    let _ = tx.try_send(Bytes::copy_from_slice(&out[..reply]));
                    let early = buf[start + frame_len..].to_vec();
                    return Outcome::Bind { connection, early };
                }
            }
            start += frame_len;
        }
        buf.drain(..start);
        start = 0;
        let old = buf.len();
        buf.resize(old + 4096, 0);
        match tokio::time::timeout(idle, reader.read(&mut buf[old..])).await {
            Err(_) => return Outcome::Closed("idle timeout"),
            Ok(Err(_)) => return Outcome::Closed("read error"),
            Ok(Ok(0)) => return Outcome::Closed("closed by the client"),
            Ok(Ok(n)) => buf.truncate(old + n),
        }
    }
}

/// Writes queued messages until the queue closes; returns the writer so a data
/// connection can take the stream over.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Bytes>,
    idle: Duration,
) -> W {
    while let Some(msg) = rx.recv().await {
        match tokio::time::timeout(idle, writer.write_all(&msg)).await {
            Ok(Ok(())) => {}
            _ => return writer,
        }
    }
    let _ = writer.flush().await;
    writer
}
