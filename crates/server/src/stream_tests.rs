//! A connection's read and write loops over an in-memory pipe, on a real worker core, in
//! tokio's paused time: the idle timer counts complete frames (slowloris), one frame has
//! its own bound, and answers wait for room in the queue instead of being dropped,
//! however slowly the client reads (the queue is seen full on the way).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;
use turnpike_proto::{ClientTransport, FiveTuple};
use turnpike_stun::framing::{Framing, next_frame};
use turnpike_stun::{Message, MessageType, MessageWriter, TransactionId};

use super::{Outcome, QUEUE_DEPTH, StreamQueue, read_loop, write_loop};
use crate::tcp::TcpLimits;
use crate::worker::tests::worker;

/// `[tcp]` with an idle timeout and a frame bound, in seconds.
fn limits(idle: u64, frame: u64) -> TcpLimits {
    TcpLimits {
        idle_timeout: Duration::from_secs(idle),
        handshake_timeout: Duration::from_secs(frame),
        ..TcpLimits::default()
    }
}

fn five_tuple() -> FiveTuple {
    FiveTuple {
        client: "127.0.0.1:40000".parse().unwrap(),
        server: "127.0.0.1:3478".parse().unwrap(),
        transport: ClientTransport::Tcp,
    }
}

fn tid(n: u32) -> TransactionId {
    let mut t = [0x7A; 12];
    t[..4].copy_from_slice(&n.to_be_bytes());
    TransactionId(t)
}

/// A Binding request with FINGERPRINT (28 bytes).
fn binding(n: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let mut w = MessageWriter::new(&mut buf, MessageType::BINDING_REQUEST, tid(n)).unwrap();
    w.put_fingerprint().unwrap();
    let len = w.finish();
    buf.truncate(len);
    buf
}

/// Why a read loop ended, for a connection that was closed.
fn closed(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Closed(reason) => reason,
        Outcome::Bind { .. } => panic!("became a data connection"),
        Outcome::Handoff { shard, .. } => panic!("handed to worker {shard}"),
    }
}

/// Runs the read and write loops of a connection whose client end is returned, with a
/// pipe of `pipe` bytes each way; the handle yields why the read loop ended and when.
fn serve(
    limits: TcpLimits,
    pipe: usize,
) -> (
    DuplexStream,
    StreamQueue,
    tokio::task::JoinHandle<(&'static str, Instant)>,
) {
    let (client, server) = tokio::io::duplex(pipe);
    let (tx, rx) = StreamQueue::new();
    let probe = tx.clone();
    let task = tokio::task::spawn_local(async move {
        let (shared, _, _) = worker();
        let (mut reader, writer) = tokio::io::split(server);
        let writing = tokio::task::spawn_local(write_loop(writer, rx, limits.idle_timeout));
        let outcome = read_loop(&shared, &mut reader, five_tuple(), &tx, limits, Vec::new()).await;
        let ended = Instant::now();
        drop(tx);
        let _ = writing.await;
        (closed(outcome), ended)
    });
    (client, probe, task)
}

/// Sends a frame that never completes, a byte per `every`, until the server closes; when
/// that was (from the first byte) and why.
async fn dribble(limits: TcpLimits, every: Duration) -> (Duration, &'static str) {
    let (mut client, probe, task) = serve(limits, 4096);
    drop(probe);
    let start = Instant::now();
    // A STUN header announcing 80 bytes, then one byte at a time.
    client
        .write_all(&[0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xA4, 0x42])
        .await
        .unwrap();
    for _ in 0..100 {
        tokio::time::sleep(every).await;
        if task.is_finished() || client.write_all(&[0x55]).await.is_err() {
            break;
        }
    }
    let (why, ended) = task.await.unwrap();
    (ended - start, why)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_byte_a_second_does_not_restart_the_idle_timer() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (after, why) = dribble(limits(2, 10), Duration::from_secs(1)).await;
            assert_eq!(why, "idle timeout");
            assert!(
                (Duration::from_secs(2)..Duration::from_millis(2100)).contains(&after),
                "closed after {after:?}"
            );
        })
        .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_frame_has_its_own_bound_under_a_long_idle_timeout() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (after, why) = dribble(limits(300, 3), Duration::from_millis(500)).await;
            assert_eq!(why, "frame too slow");
            assert!(
                (Duration::from_secs(3)..Duration::from_millis(3100)).contains(&after),
                "closed after {after:?}"
            );
        })
        .await;
}

/// Reads one frame from the client end (bounded by the test's paused clock).
async fn read_frame(client: &mut DuplexStream, pending: &mut Vec<u8>, chunk: usize) -> Vec<u8> {
    loop {
        if let Framing::Frame(f) = next_frame(pending) {
            return pending.drain(..f.len()).collect();
        }
        let mut buf = vec![0u8; chunk];
        let n = tokio::time::timeout(Duration::from_secs(60), client.read(&mut buf))
            .await
            .expect("an answer within 60 s")
            .unwrap();
        assert!(n > 0, "closed by the server");
        pending.extend_from_slice(&buf[..n]);
    }
}

fn check_answer(answer: &[u8], n: u32) {
    let msg = Message::new_checked(answer).expect("a STUN message");
    assert_eq!(msg.message_type(), MessageType::BINDING_SUCCESS);
    assert_eq!(msg.transaction_id(), tid(n), "answer {n} out of order");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_binding_a_second_keeps_the_connection_and_silence_ends_it() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (mut client, probe, task) = serve(limits(2, 10), 4096);
            drop(probe);
            let mut pending = Vec::new();
            // Ten seconds, five idle timeouts, of one Binding a second.
            for n in 0..10 {
                client.write_all(&binding(n)).await.unwrap();
                check_answer(&read_frame(&mut client, &mut pending, 512).await, n);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            assert!(
                !task.is_finished(),
                "closed while sending a Binding a second"
            );
            let quiet = Instant::now();
            let (why, ended) = task.await.unwrap();
            assert_eq!(why, "idle timeout");
            // The last frame came a second before the silence started.
            assert!(ended - quiet <= Duration::from_millis(1100));
        })
        .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn two_thousand_pipelined_answers_wait_for_a_slow_reader() {
    const COUNT: u32 = 2_000;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            // A 64-byte pipe: the writer blocks after one answer or two, the queue fills.
            let (client, probe, task) = serve(limits(30, 10), 64);
            let (mut from_server, mut to_server) = tokio::io::split(client);
            let requests: Vec<u8> = (0..COUNT).flat_map(binding).collect();
            let writing = tokio::task::spawn_local(async move {
                to_server.write_all(&requests).await.unwrap();
                to_server
            });
            let mut pending = Vec::new();
            let mut min_room = QUEUE_DEPTH;
            for n in 0..COUNT {
                loop {
                    if let Framing::Frame(f) = next_frame(&pending) {
                        check_answer(&pending.drain(..f.len()).collect::<Vec<u8>>(), n);
                        break;
                    }
                    min_room = min_room.min(probe.room());
                    // Slowly: 32 bytes a millisecond.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let mut buf = [0u8; 32];
                    // A lost answer shows as a wait that never ends: bound it.
                    let k =
                        tokio::time::timeout(Duration::from_secs(60), from_server.read(&mut buf))
                            .await
                            .unwrap_or_else(|_| panic!("no answer {n} within 60 s"))
                            .unwrap();
                    assert!(k > 0, "closed by the server after {n} answers");
                    pending.extend_from_slice(&buf[..k]);
                }
            }
            assert_eq!(min_room, 0, "the queue never filled: backpressure untested");
            let to_server = writing.await.unwrap();
            drop(probe);
            drop(to_server);
            drop(from_server);
            let (why, _) = task.await.unwrap();
            assert_eq!(why, "closed by the client");
        })
        .await;
}

#[tokio::test(flavor = "current_thread")]
async fn relayed_data_is_bounded_by_bytes_answers_only_by_count() {
    use super::{NotQueued, QUEUE_BYTES};
    let (queue, mut reader) = StreamQueue::new();
    // 64 KiB datagrams: QUEUE_BYTES of them fit, the next is refused although the queue
    // has message slots left.
    let big = vec![0u8; 64 * 1024];
    let fit = QUEUE_BYTES / big.len();
    for i in 0..fit {
        assert_eq!(queue.try_push(&big), Ok(()), "datagram {i}");
    }
    assert_eq!(queue.try_push(&big), Err(NotQueued::Full));
    assert!(queue.room() > 0);
    // The writer takes one datagram: room for one more.
    assert_eq!(reader.try_recv().unwrap().len(), big.len());
    assert_eq!(queue.try_push(&big), Ok(()));
    assert_eq!(queue.try_push(&big), Err(NotQueued::Full));
    // An answer still goes in: it waits only for a message slot.
    queue.push(&binding(1)).await.unwrap();
    assert_eq!(queue.try_push(&[0u8; 100]), Err(NotQueued::Full));
    // Small messages fill it by count.
    let (queue, _reader) = StreamQueue::new();
    for _ in 0..QUEUE_DEPTH {
        queue.try_push(&[0u8; 100]).unwrap();
    }
    assert_eq!(queue.try_push(&[0u8; 100]), Err(NotQueued::Full));
    // A queue whose writer is gone refuses as closed, not full.
    let (queue, reader) = StreamQueue::new();
    drop(reader);
    assert_eq!(queue.try_push(&[0u8; 100]), Err(NotQueued::Closed));
    assert_eq!(queue.push(&[0u8; 100]).await, Err(NotQueued::Closed));
}
