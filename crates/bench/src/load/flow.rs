//! One client's flow (its socket or source address, its TURN client, its prebuilt
//! frame) and the socket helpers of a session's set-up.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use turnpike_stun::{CHANNEL_DATA_HEADER_LEN, ChannelNumber, TransactionId};

use super::{CHANNEL, Mode, SHARED_BASE, SHARED_SPAN, SOCKET_BUFFER};
use crate::client::{ClientError, TurnClient, encode_send_indication};

pub(super) struct Flow {
    /// The flow's own socket, connected to the server or reflector (none on the shared
    /// path to the reflector).
    pub(super) socket: Option<UdpSocket>,
    /// The flow's source address on the shared path.
    pub(super) src: Option<Ipv4Addr>,
    pub(super) client: Option<TurnClient>,
    pub(super) peer: SocketAddr,
    pub(super) mode: Mode,
    /// A prebuilt frame; the payload sits at `payload_at..`.
    pub(super) frame: Vec<u8>,
    pub(super) payload_at: usize,
}

impl Flow {
    /// Builds the flow's frame for `size` payload bytes (ChannelData padded to 4 bytes on
    /// a stream, RFC 8656 §12.5).
    pub(super) fn build_frame(&mut self, size: usize, stream: bool) {
        match self.mode {
            Mode::Channel => {
                let len = CHANNEL_DATA_HEADER_LEN + size;
                self.frame = vec![0u8; if stream { len.next_multiple_of(4) } else { len }];
                let len = u16::try_from(size).unwrap_or(u16::MAX);
                self.frame[0..2].copy_from_slice(&CHANNEL.to_be_bytes());
                self.frame[2..4].copy_from_slice(&len.to_be_bytes());
                self.payload_at = CHANNEL_DATA_HEADER_LEN;
            }
            Mode::Send => {
                let mut buf = vec![0u8; size + 64];
                let payload = vec![0u8; size];
                let n =
                    encode_send_indication(&mut buf, TransactionId([0; 12]), self.peer, &payload)
                        .unwrap_or(0);
                buf.truncate(n);
                // DATA is the last attribute: its value ends at the padded end.
                self.payload_at = n - size.next_multiple_of(4);
                self.frame = buf;
            }
        }
    }

    pub(super) fn refresh(&mut self) -> Result<(), ClientError> {
        if let Some(c) = &mut self.client {
            c.refresh(600)?;
            match self.mode {
                Mode::Channel => c.channel_bind(chan(), self.peer)?,
                Mode::Send => c.create_permission(self.peer)?,
            }
        }
        Ok(())
    }
}

pub(super) fn chan() -> ChannelNumber {
    ChannelNumber::new(CHANNEL).unwrap_or(ChannelNumber::MIN)
}

pub(super) fn set_buffers(socket: &UdpSocket) {
    let s = SockRef::from(socket);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
}

/// A UDP socket bound to `addr` with `SO_REUSEADDR` (the shared path's sockets).
pub(super) fn bind_reuse(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// The shared path's sending socket: the wildcard address, a free port, `SO_REUSEADDR`.
pub(super) fn shared_socket() -> io::Result<UdpSocket> {
    let s = bind_reuse(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    set_buffers(&s);
    // It sends only; whatever reaches it (nothing should) is not read.
    let _ = SockRef::from(&s).set_recv_buffer_size(4096);
    Ok(s)
}

/// The `k`th source address of the shared path.
pub(super) fn shared_ip(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(SHARED_BASE) + k % SHARED_SPAN)
}

/// Deletes every allocation made so far (on a failed setup) instead of leaving them to
/// expire; stops at the first timeout (the server is gone).
pub(super) fn close_all(flows: &mut [Flow]) {
    for f in flows {
        if let Some(c) = &mut f.client {
            if let Err(ClientError::Timeout(_)) = c.close() {
                break;
            }
        }
    }
}

/// The local address that routes to `to` (no packet is sent).
pub(crate) fn local_ip_towards(to: SocketAddr) -> io::Result<IpAddr> {
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = UdpSocket::bind(bind)?;
    s.connect(to)?;
    Ok(s.local_addr()?.ip())
}
