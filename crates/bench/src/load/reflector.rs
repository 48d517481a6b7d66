//! The plain UDP reflector a calibration run sends to instead of a TURN server: it strips
//! the ChannelData header and forwards the data to the peer socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use turnpike_stun::CHANNEL_DATA_HEADER_LEN;
use turnpike_udp::{RecvBatch, SendBuffer};

use super::flow::set_buffers;
use super::{MAX_PAYLOAD, MIN_PAYLOAD};

pub(super) struct Reflector {
    pub(super) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The largest datagram expected (set before each run): buffers are sized to it, so
    /// that a batch stays in cache.
    pub(super) slot: Arc<std::sync::atomic::AtomicUsize>,
    /// Datagrams its socket dropped for want of buffer space (the reflector was slower
    /// than the generator), as last reported by the kernel.
    pub(super) drops: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Reflector {
    pub(super) fn start(peers: Vec<SocketAddr>, cpu: Option<usize>) -> io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        set_buffers(&socket);
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let slot = Arc::new(std::sync::atomic::AtomicUsize::new(recv_slot(MIN_PAYLOAD)));
        let slot2 = Arc::clone(&slot);
        let drops = Arc::new(AtomicU64::new(0));
        let drops2 = Arc::clone(&drops);
        let rx_info = turnpike_udp::sockopt::enable_drop_count(&socket).is_ok();
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
        let handle = thread::spawn(move || {
            let _ = pinned_tx.send(cpu.map(turnpike_udp::sys::pin_current_thread));
            let mut size = 0;
            let mut batch = RecvBatch::with_capacity(1, 0, 1, 0);
            let mut out = SendBuffer::new(1, 1);
            while !stop2.load(Ordering::Relaxed) {
                let want = slot2.load(Ordering::Relaxed);
                if want != size {
                    size = want;
                    batch = RecvBatch::with_capacity(64, 0, size, 0);
                    if rx_info {
                        batch = batch.with_rx_info();
                    }
                    out = SendBuffer::new(64, size);
                    // Every datagram goes to one of a few peers: GSO sends a received
                    // batch in a few trips through the stack, so that the reflector costs
                    // less per datagram than the generator it calibrates.
                    out.set_gso(true);
                }
                let Ok(count) = batch.recv_wait(&socket) else {
                    continue;
                };
                for i in 0..count {
                    let pkt = batch.packet(i);
                    let data = &pkt[CHANNEL_DATA_HEADER_LEN.min(pkt.len())..];
                    let flow = data
                        .get(4..8)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    let peer = peers[flow as usize % peers.len()];
                    let _ = out.push(data, &[], Some(peer), None);
                }
                out.send(&socket);
                if let Some(d) = batch.drops() {
                    drops2.store(u64::from(d), Ordering::Relaxed);
                }
            }
        });
        if let Ok(Some(Err(e))) = pinned_rx.recv_timeout(Duration::from_secs(5)) {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
            return Err(e);
        }
        Ok(Self {
            addr,
            stop,
            slot,
            drops,
            handle: Some(handle),
        })
    }
}

/// A receive buffer slot for datagrams of `size` payload bytes and their framing.
pub(super) fn recv_slot(size: usize) -> usize {
    (size.min(MAX_PAYLOAD) + 64).next_multiple_of(64)
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
