//! Batched UDP receive: one `recvmmsg` call takes up to [`BATCH`] datagrams off a socket.
//!
//! Used on the client-facing listener sockets, where many clients' datagrams queue up on
//! one socket: one syscall and one readiness round trip per batch instead of per datagram
//! (performance.md §2, "recvmmsg batching"). Every slot is as large as the largest UDP
//! payload, so nothing is ever truncated; the slots are allocated zeroed (lazily mapped
//! pages), so only the bytes the kernel writes are ever backed by memory.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per `recvmmsg` call.
pub(crate) const BATCH: usize = 32;

/// Receive buffers, addresses and headers for one `recvmmsg` batch.
pub(crate) struct RecvBatch {
    slot: usize,
    bufs: Vec<u8>,
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    lens: [usize; BATCH],
}

impl RecvBatch {
    /// A batch whose slots each hold `slot` bytes.
    pub(crate) fn new(slot: usize) -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let addrs = Box::new(unsafe {
            MaybeUninit::<[libc::sockaddr_storage; BATCH]>::zeroed().assume_init()
        });
        Self {
            slot,
            bufs: vec![0; slot * BATCH],
            addrs,
            lens: [0; BATCH],
        }
    }

    /// Receives up to [`BATCH`] datagrams from `fd` without blocking; answers how many.
    /// `WouldBlock` when none is queued.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain old data; all-zero is a valid value (null
        // pointers, zero lengths), and every field the kernel reads is set below.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let base = self.bufs.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: `i * slot` is within `bufs`, which holds `slot * BATCH` bytes.
            iovs[i].iov_base = unsafe { base.add(i * self.slot) }.cast();
            iovs[i].iov_len = self.slot;
            let hdr = &mut msgs[i].msg_hdr;
            hdr.msg_name = (&raw mut self.addrs[i]).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &raw mut iovs[i];
            hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds BATCH headers, each pointing at one live iovec (into
        // `bufs`, `slot` bytes each, disjoint) and one live sockaddr_storage with its size
        // as msg_namelen; all outlive the call, which writes only within those bounds.
        // MSG_DONTWAIT: never block the worker; a null timeout is allowed.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (len, msg) in self.lens.iter_mut().zip(&msgs[..n]) {
            *len = (msg.msg_len as usize).min(self.slot);
        }
        // A name the kernel did not fill (length 0) would decode as family 0: mark it.
        for (addr, msg) in self.addrs.iter_mut().zip(&msgs[..n]) {
            if msg.msg_hdr.msg_namelen == 0 {
                addr.ss_family = 0;
            }
        }
        Ok(n)
    }

    /// Datagram `i` of the last [`recv`](Self::recv) and its source; `None` for a source
    /// that is not IPv4 or IPv6.
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let start = i * self.slot;
        let data = &self.bufs[start..start + self.lens[i]];
        let from = to_socket_addr(&self.addrs[i])?;
        Some((data, from))
    }
}

fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; sockaddr_storage is
            // large and aligned enough for it.
            let sin = unsafe { &*(std::ptr::from_ref(ss).cast::<libc::sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6; sockaddr_storage is
            // large and aligned enough for it.
            let sin6 = unsafe { &*(std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn receives_a_batch_with_sources() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
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
        let Ok(rx) = std::net::UdpSocket::bind("[::1]:0") else {
            return;
        };
        let a = std::net::UdpSocket::bind("[::1]:0").unwrap();
        a.send_to(b"six", rx.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(64);
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 1);
        assert_eq!(
            batch.get(0).unwrap(),
            (&b"six"[..], a.local_addr().unwrap())
        );
    }
}
