//! Tests of [`super::SendBuffer`].

use std::net::UdpSocket;
use std::time::Duration;

use super::*;
use crate::RecvBatch;

fn recv_all(rx: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    (0..n)
        .map(|_| {
            let (len, from) = rx.recv_from(&mut buf).unwrap();
            (buf[..len].to_vec(), from)
        })
        .collect()
}

#[test]
fn sends_a_batch_with_and_without_gso() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let tail = [9u8; 100];
    for gso in [false, true] {
        let mut b = SendBuffer::new(8, 16);
        b.set_gso(gso);
        for i in 0..5u8 {
            let h = b.push(&[i; 4], &tail, None, None).unwrap();
            h[1] = 0xAA;
        }
        // A different size starts a new GSO message.
        b.push(&[7; 4], &tail[..10], None, None).unwrap();
        assert_eq!(b.len(), 6);
        assert_eq!(b.messages(), if b.gso() { 2 } else { 6 });
        for h in b.heads_mut() {
            h[2] = 0xBB;
        }
        let o = b.send(&tx);
        assert_eq!((o.sent, o.errors), (6, 0), "gso {gso}");
        assert!(b.is_empty());
        let got = recv_all(&rx, 6);
        for (i, (d, _)) in got.iter().enumerate() {
            let i = u8::try_from(i).unwrap();
            let head = if i < 5 {
                [i, 0xAA, 0xBB, i]
            } else {
                [7, 7, 0xBB, 7]
            };
            assert_eq!(d.len(), if i < 5 { 104 } else { 14 });
            assert_eq!(&d[..4], &head);
            assert!(d[4..].iter().all(|&x| x == 9));
        }
    }
    // A full batch refuses more.
    let mut b = SendBuffer::new(1, 16);
    assert!(b.push(b"x", &[], None, None).is_some());
    assert!(b.is_full() && b.push(b"y", &[], None, None).is_none());
}

#[test]
fn sends_from_chosen_loopback_addresses() {
    use socket2::{Domain, Protocol, Socket, Type};
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SocketAddr::from(([0, 0, 0, 0], 0)).into()).unwrap();
    let shared: UdpSocket = s.into();
    let port = shared.local_addr().unwrap().port();
    let to = Some(rx.local_addr().unwrap());
    let mut b = SendBuffer::new(8, 16);
    b.set_gso(true);
    let srcs = [
        Ipv4Addr::new(127, 0, 1, 1),
        Ipv4Addr::new(127, 0, 1, 1),
        Ipv4Addr::new(127, 0, 1, 2),
        Ipv4Addr::new(127, 0, 2, 9),
    ];
    for (i, src) in srcs.iter().enumerate() {
        b.push(&[u8::try_from(i).unwrap(); 8], &[], to, Some(*src))
            .unwrap();
    }
    assert_eq!(b.send(&shared).sent, 4);
    let got = recv_all(&rx, 4);
    for (i, (d, from)) in got.iter().enumerate() {
        assert_eq!(d[0], u8::try_from(i).unwrap());
        assert_eq!(*from, SocketAddr::from((srcs[i], port)));
    }

    // The same on a non-blocking socket, and the answers to those sources: they reach
    // the wildcard socket, each with the address it was sent to.
    crate::sockopt::enable_pktinfo(&shared).unwrap();
    shared.set_nonblocking(true).unwrap();
    for (i, src) in srcs.iter().enumerate().skip(1) {
        b.push(&[u8::try_from(i).unwrap() + 10], &[], to, Some(*src))
            .unwrap();
    }
    assert_eq!(b.send_until_blocked(&shared).unwrap(), 3);
    assert!(b.is_empty());
    for (d, from) in recv_all(&rx, 3) {
        rx.send_to(&d, from).unwrap();
    }
    let mut r = RecvBatch::with_capacity(8, 0, 64, 0).with_destinations();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while got.len() < 3 && std::time::Instant::now() < deadline {
        let n = r.recv_now(&shared).unwrap();
        for i in 0..n {
            got.push((r.packet(i).to_vec(), r.destination(i)));
        }
    }
    got.sort();
    let want: Vec<_> = (1..4)
        .map(|i| (vec![u8::try_from(i).unwrap() + 10], Some(srcs[i])))
        .collect();
    assert_eq!(got, want);
}
