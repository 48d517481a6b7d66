//! The bench's only `unsafe`: batched receive with `recvmmsg(2)` on Linux (one syscall
//! for up to a batch of datagrams; elsewhere, or with a batch of 1, plain `recv`), and
//! pinning a thread to a CPU.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;

/// Receive buffers for up to `batch` datagrams of at most `slot` bytes.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    /// Only kept alive: every `hdr` entry points at one of these.
    #[cfg(target_os = "linux")]
    _iov: Vec<libc::iovec>,
    #[cfg(target_os = "linux")]
    hdr: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    /// Buffers for `batch` (at least 1) datagrams of up to `slot` bytes each.
    pub fn new(batch: usize, slot: usize) -> Self {
        let batch = batch.max(1);
        let mut buf = vec![0u8; batch * slot];
        #[cfg(target_os = "linux")]
        let mut iov: Vec<libc::iovec> = buf
            .chunks_exact_mut(slot)
            .map(|c| libc::iovec {
                iov_base: c.as_mut_ptr().cast(),
                iov_len: slot,
            })
            .collect();
        #[cfg(target_os = "linux")]
        let hdr = iov
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is a plain C struct of integers and pointers, for which
                // all-zero bytes are a valid value (null pointers, zero lengths).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = std::ptr::from_mut(iov);
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        #[cfg(not(target_os = "linux"))]
        let _ = &mut buf;
        Self {
            buf,
            slot,
            lens: vec![0; batch],
            #[cfg(target_os = "linux")]
            _iov: iov,
            #[cfg(target_os = "linux")]
            hdr,
        }
    }

    /// Receives at least one datagram (blocking up to the socket's read timeout) and
    /// as many more as are already queued, up to the batch size. Returns how many.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if self.lens.len() > 1 {
            use std::os::fd::AsRawFd;
            let vlen = u32::try_from(self.hdr.len()).unwrap_or(u32::MAX);
            // SAFETY: `hdr` holds `vlen` initialised mmsghdrs whose single iovec each
            // points into `buf`, a live heap allocation of `slot` bytes per entry that
            // is neither moved nor resized while `self` lives (the Vecs' heap buffers
            // stay put when `self` moves). The kernel writes at most `iov_len` bytes per
            // entry and sets `msg_len`; `&mut self` guarantees no other access meanwhile.
            // A null timeout means "wait per the socket's SO_RCVTIMEO for the first".
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.hdr.as_mut_ptr(),
                    vlen,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = usize::try_from(n).unwrap_or(0);
            for (len, h) in self.lens.iter_mut().zip(&self.hdr).take(n) {
                *len = h.msg_len as usize;
            }
            return Ok(n);
        }
        let n = socket.recv(&mut self.buf[..self.slot])?;
        self.lens[0] = n;
        Ok(1)
    }

    /// The `i`th datagram of the last [`RecvBatch::recv`].
    pub fn packet(&self, i: usize) -> &[u8] {
        let start = i * self.slot;
        &self.buf[start..start + self.lens[i].min(self.slot)]
    }
}

/// Pins the calling thread to `cpu` (Linux; elsewhere an `Unsupported` error).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if cpu >= 8 * size_of::<libc::cpu_set_t>() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "CPU number too large",
            ));
        }
        // SAFETY: cpu_set_t is a plain bitmask; all-zero bytes are the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below the set's size in bits (checked above), so CPU_SET
        // writes one bit inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: pid 0 means the calling thread; `set` is a valid cpu_set_t and the size
        // passed is its size.
        let r = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pinning needs Linux",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn receives_a_batch() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 10][..usize::from(i) + 1], rx.local_addr().unwrap())
                .unwrap();
        }
        let mut b = RecvBatch::new(8, 64);
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = b.recv(&rx).unwrap();
            for i in 0..n {
                got.push(b.packet(i).to_vec());
            }
        }
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.len(), i + 1);
            assert!(p.iter().all(|&x| usize::from(x) == i));
        }
        // Nothing queued: times out.
        assert!(b.recv(&rx).is_err());
        let mut one = RecvBatch::new(1, 64);
        tx.send_to(b"abc", rx.local_addr().unwrap()).unwrap();
        assert_eq!(one.recv(&rx).unwrap(), 1);
        assert_eq!(one.packet(0), b"abc");
    }
}
