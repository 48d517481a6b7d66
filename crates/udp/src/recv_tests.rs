//! Tests of [`super::RecvBatch`].

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

#[test]
fn receives_a_batch_with_sources() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = rx.local_addr().unwrap();
    a.send_to(b"one", to).unwrap();
    b.send_to(&[7u8; 1500], to).unwrap();
    a.send_to(b"", to).unwrap();
    let mut batch = RecvBatch::new(2048);
    let n = batch.recv(rx.as_raw_fd()).unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        batch.get(0).unwrap(),
        (&b"one"[..], a.local_addr().unwrap())
    );
    assert_eq!(
        batch.get(1).unwrap(),
        (&[7u8; 1500][..], b.local_addr().unwrap())
    );
    assert_eq!(batch.get(2).unwrap(), (&b""[..], a.local_addr().unwrap()));
    let err = batch.recv(rx.as_raw_fd()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn ipv6_sources() {
    let Ok(rx) = UdpSocket::bind("[::1]:0") else {
        return;
    };
    let a = UdpSocket::bind("[::1]:0").unwrap();
    a.send_to(b"six", rx.local_addr().unwrap()).unwrap();
    let mut batch = RecvBatch::new(64);
    assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 1);
    assert_eq!(
        batch.get(0).unwrap(),
        (&b"six"[..], a.local_addr().unwrap())
    );
}

/// The headers are set up once and kept: a batch that was moved, and that receives
/// into the same slots again (from an IPv6 source after IPv4 ones, whose addresses
/// are shorter), reports each call's datagrams and sources, not the last call's.
#[test]
fn reused_and_moved_batch_reports_each_calls_datagrams() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = rx.local_addr().unwrap();
    let batch = RecvBatch::with_room(4, 256, 4);
    let mut moved = vec![batch];
    let mut batch = moved.pop().unwrap();
    for round in 0..3u8 {
        a.send_to(&[round; 10], to).unwrap();
        a.send_to(&[round; 200], to).unwrap();
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 2);
        assert_eq!(
            batch.get(0).unwrap(),
            (&[round; 10][..], a.local_addr().unwrap())
        );
        assert_eq!(
            batch.get(1).unwrap(),
            (&[round; 200][..], a.local_addr().unwrap())
        );
        // Later slots of the same batch, as the relay poller fills them.
        a.send_to(b"after", to).unwrap();
        assert_eq!(batch.recv_at(rx.as_raw_fd(), 2).unwrap(), 1);
        assert_eq!(
            batch.get(2).unwrap(),
            (&b"after"[..], a.local_addr().unwrap())
        );
        assert_eq!(batch.get(0).unwrap().0, &[round; 10][..]);
    }
    let Ok(rx6) = UdpSocket::bind("[::]:0") else {
        return;
    };
    let port = rx6.local_addr().unwrap().port();
    a.send_to(b"four", ("127.0.0.1", port)).unwrap();
    let b = UdpSocket::bind("[::1]:0").unwrap();
    b.send_to(b"six", ("::1", port)).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = batch.recv(rx6.as_raw_fd()).unwrap();
        for i in 0..n {
            let (data, from) = batch.get(i).unwrap();
            got.push((data.to_vec(), from));
        }
    }
    got.sort();
    assert_eq!(got[0].0, b"four");
    assert_eq!(got[0].1.port(), a.local_addr().unwrap().port());
    assert_eq!(got[1], (b"six".to_vec(), b.local_addr().unwrap()));
}

#[test]
fn receives_a_waiting_batch() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..5u8 {
        tx.send_to(&[i; 10][..usize::from(i) + 1], rx.local_addr().unwrap())
            .unwrap();
    }
    let mut b = RecvBatch::with_capacity(8, 0, 64, 0);
    let mut got = Vec::new();
    while got.len() < 5 {
        let n = b.recv_wait(&rx).unwrap();
        for i in 0..n {
            assert_eq!(b.source(i), Some(tx.local_addr().unwrap()));
            got.push(b.packet(i).to_vec());
        }
    }
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.len(), i + 1);
        assert!(p.iter().all(|&x| usize::from(x) == i));
    }
    // Nothing queued: times out, or answers 0 without waiting.
    assert!(b.recv_wait(&rx).is_err());
    assert_eq!(b.recv_now(&rx).unwrap(), 0);
    let mut one = RecvBatch::with_capacity(1, 0, 64, 0);
    tx.send_to(b"abc", rx.local_addr().unwrap()).unwrap();
    assert_eq!(one.recv_wait(&rx).unwrap(), 1);
    assert_eq!(one.packet(0), b"abc");
}

/// With rx info, each datagram carries the kernel's receive time; without the socket
/// option, none.
#[test]
fn receive_times() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut b = RecvBatch::with_capacity(4, 0, 64, 0).with_rx_info();
    tx.send_to(b"plain", rx.local_addr().unwrap()).unwrap();
    assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 1);
    assert_eq!((b.packet(0), b.stamp(0)), (&b"plain"[..], None));
    crate::sockopt::enable_rx_info(&rx).unwrap();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    tx.send_to(b"a", rx.local_addr().unwrap()).unwrap();
    tx.send_to(b"b", rx.local_addr().unwrap()).unwrap();
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 2);
    for i in 0..2 {
        let t = b.stamp(i).expect("a receive time");
        assert!(t >= before - Duration::from_millis(10) && t <= after + Duration::from_millis(10));
    }
    assert_eq!(b.drops(), None, "nothing dropped");
}
