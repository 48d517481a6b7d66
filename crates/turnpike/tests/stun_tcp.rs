//! STUN over TCP against the real binary with our own client: framing, pipelining,
//! garbage, and the connection limits.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{ServerProcess, binding_request, mapped_address};
use turnpike_stun::framing::{Framing, next_frame};

fn config(extra: &str) -> String {
    format!("[listen]\nudp = []\ntcp = [\"127.0.0.1:0\"]\n{extra}")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// Reads one framed STUN message from the stream.
fn read_message(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Framing::Frame(f) = next_frame(pending) {
            return pending.drain(..f.len()).collect();
        }
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).expect("response");
        assert!(n > 0, "server closed the connection");
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// True when the server has closed the connection (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match stream.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn binding_over_tcp_pipelined_and_split() {
    let server = ServerProcess::start("tcp-binding", &config(""));
    let addr = server.tcp[0];
    let mut stream = connect(addr);
    let local = stream.local_addr().unwrap();

    // Three requests in one write.
    let mut batch = Vec::new();
    for i in 1..=3u8 {
        batch.extend(binding_request([i; 12]));
    }
    stream.write_all(&batch).unwrap();
    let mut pending = Vec::new();
    for i in 1..=3u8 {
        let resp = read_message(&mut stream, &mut pending);
        assert_eq!(mapped_address(&resp, [i; 12]), local);
    }

    // One request dribbled a byte at a time.
    for b in binding_request([9; 12]) {
        stream.write_all(&[b]).unwrap();
        stream.flush().unwrap();
    }
    let resp = read_message(&mut stream, &mut pending);
    assert_eq!(mapped_address(&resp, [9; 12]), local);

    // Padded ChannelData on a STUN-only server is skipped, and the stream stays in sync.
    let mut mixed = vec![0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0];
    mixed.extend(binding_request([10; 12]));
    stream.write_all(&mixed).unwrap();
    let resp = read_message(&mut stream, &mut pending);
    assert_eq!(mapped_address(&resp, [10; 12]), local);
}

#[test]
fn garbage_closes_only_that_connection() {
    let server = ServerProcess::start("tcp-garbage", &config(""));
    let addr = server.tcp[0];
    let mut bad = connect(addr);
    bad.write_all(b"\xff\xffnot stun at all").unwrap();
    assert!(closed_within(&mut bad, Duration::from_secs(3)));

    let mut good = connect(addr);
    good.write_all(&binding_request([1; 12])).unwrap();
    let resp = read_message(&mut good, &mut Vec::new());
    assert_eq!(mapped_address(&resp, [1; 12]), good.local_addr().unwrap());
}

#[test]
fn per_address_cap_and_idle_timeout() {
    let server = ServerProcess::start(
        "tcp-limits",
        &config("[tcp]\nidle_timeout_secs = 1\nmax_connections_per_ip = 3\n"),
    );
    let addr = server.tcp[0];
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    // Let the server account for the three before the fourth arrives.
    for s in &mut held {
        s.write_all(&binding_request([2; 12])).unwrap();
        read_message(s, &mut Vec::new());
    }
    let mut fourth = connect(addr);
    assert!(
        closed_within(&mut fourth, Duration::from_millis(500)),
        "fourth connection from one address must be refused"
    );

    // Silence for longer than the idle timeout closes the held connections...
    let start = Instant::now();
    for s in &mut held {
        assert!(
            closed_within(s, Duration::from_secs(3)),
            "idle connection closed"
        );
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    // ...which frees the slots again.
    let mut again = connect(addr);
    again.write_all(&binding_request([3; 12])).unwrap();
    let resp = read_message(&mut again, &mut Vec::new());
    assert_eq!(mapped_address(&resp, [3; 12]), again.local_addr().unwrap());
}
