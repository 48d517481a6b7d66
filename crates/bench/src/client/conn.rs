//! The client's connection to the server: sending, transactions (retransmitted over UDP,
//! one long wait over a stream), cutting frames from a stream, and the [`Inbox`] and
//! [`Reader`] that let another thread read the connection.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use turnpike_stun::framing::{Frame, Framing, next_frame};
use turnpike_stun::{CHANNEL_DATA_HEADER_LEN, Class, Message, Method, TransactionId};

use super::error::tls_error;
use super::{ClientError, MAX_FRAME, RETRIES, RETRY_TIMEOUT, TurnClient};

/// Responses to a client's requests, handed over by another thread that reads the
/// client's connection (see [`TurnClient::set_inbox`]).
#[derive(Debug, Default)]
pub struct Inbox {
    frames: Mutex<Vec<Vec<u8>>>,
    arrived: Condvar,
}

impl Inbox {
    /// Most frames kept: a transaction waits for one at a time.
    const MAX: usize = 16;

    /// Hands over a STUN response (or anything else the reader could not place).
    pub fn put(&self, frame: Vec<u8>) {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if frames.len() >= Self::MAX {
            frames.remove(0);
        }
        frames.push(frame);
        self.arrived.notify_all();
    }

    /// Waits until `deadline` for the response to `tid`.
    fn wait_for(&self, tid: TransactionId, deadline: Instant) -> Option<Vec<u8>> {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = frames.iter().position(|f| TurnClient::is_response(f, tid)) {
                return Some(frames.remove(i));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            frames = self
                .arrived
                .wait_timeout(frames, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The client's connection to the server.
pub(super) enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Udp(s) => s.local_addr(),
            Self::Tcp(s) => s.local_addr(),
            Self::Tls(s) => s.sock.local_addr(),
        }
    }

    pub(super) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Udp(_) => None,
            Self::Tcp(s) => Some(s),
            Self::Tls(s) => Some(&s.sock),
        }
    }
}

/// A second handle on a client's connection, for a thread that reads it.
#[derive(Debug)]
pub enum Reader {
    /// The client's UDP socket.
    Udp(UdpSocket),
    /// The client's TCP connection.
    Tcp(TcpStream),
}

impl TurnClient {
    /// Whether `frame` is the response to `tid`.
    fn is_response(frame: &[u8], tid: TransactionId) -> bool {
        Message::new_checked(frame).is_ok_and(|msg| {
            msg.transaction_id() == tid
                && matches!(msg.message_type().class, Class::Success | Class::Error)
        })
    }

    /// Sends `packet` and waits for the response with `tid` (over UDP retransmitting).
    pub(super) fn transact(
        &mut self,
        method: Method,
        packet: &[u8],
        tid: TransactionId,
    ) -> Result<Vec<u8>, ClientError> {
        if let Some(inbox) = self.inbox.clone() {
            let tries = if self.is_stream() { 1 } else { RETRIES };
            let wait = RETRY_TIMEOUT * (RETRIES / tries);
            for _ in 0..tries {
                self.send_raw(packet)?;
                if let Some(r) = inbox.wait_for(tid, Instant::now() + wait) {
                    return Ok(r);
                }
            }
            return Err(ClientError::Timeout(method));
        }
        let socket = match &self.conn {
            Conn::Udp(s) => s,
            Conn::Tcp(_) | Conn::Tls(_) => return self.transact_stream(method, packet, tid),
        };
        let mut buf = [0u8; 2048];
        for _ in 0..RETRIES {
            socket.send(packet)?;
            let deadline = Instant::now() + RETRY_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                socket.set_read_timeout(Some(left))?;
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    // ICMP port unreachable from an earlier send: the server is not there yet.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Err(e) => return Err(e.into()),
                };
                if Self::is_response(&buf[..n], tid) {
                    return Ok(buf[..n].to_vec());
                }
                if self.keep_stray {
                    self.stray.push(buf[..n].to_vec());
                }
            }
        }
        Err(ClientError::Timeout(method))
    }

    /// [`TurnClient::transact`] over a stream: one transmission, one long wait.
    fn transact_stream(
        &mut self,
        method: Method,
        packet: &[u8],
        tid: TransactionId,
    ) -> Result<Vec<u8>, ClientError> {
        self.send_raw(packet)?;
        let deadline = Instant::now() + RETRY_TIMEOUT * RETRIES;
        loop {
            while let Some(frame) = self.next_stream_frame()? {
                if Self::is_response(&frame, tid) {
                    return Ok(frame);
                }
                if self.keep_stray {
                    self.stray.push(frame);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(method));
            }
            match self.fill(left) {
                Ok(()) => {}
                Err(ClientError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what the stream has (waiting up to `wait`) into the frame buffer.
    fn fill(&mut self, wait: Duration) -> Result<(), ClientError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = match &mut self.conn {
            Conn::Udp(_) => return Ok(()),
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
                s.read(&mut chunk)
            }
            Conn::Tls(s) => {
                s.sock
                    .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
                s.read(&mut chunk)
            }
        }
        .map_err(tls_error)?;
        if n == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        self.rbuf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Cuts the next complete frame off the stream buffer, if there is one.
    fn next_stream_frame(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        match next_frame(&self.rbuf) {
            Framing::Frame(f) => {
                let n = f.len().min(self.rbuf.len());
                let mut frame: Vec<u8> = self.rbuf.drain(..n).collect();
                if let Frame::ChannelData(_) = f {
                    // Drop the padding: the header's length says where the data ends.
                    let len = frame
                        .get(2..4)
                        .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
                    frame.truncate(CHANNEL_DATA_HEADER_LEN + len);
                }
                Ok(Some(frame))
            }
            Framing::NeedMore(n) if n <= MAX_FRAME => Ok(None),
            Framing::NeedMore(_) | Framing::Garbage => Err(ClientError::Protocol(
                "the stream does not carry STUN or ChannelData".into(),
            )),
        }
    }

    /// Waits up to `wait` for the next frame from the server: a datagram over UDP, a
    /// frame cut from the stream over TCP and TLS (ChannelData without its padding).
    /// `Ok(None)` when nothing came in time.
    pub fn recv_frame(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, ClientError> {
        if let Conn::Udp(s) = &self.conn {
            s.set_read_timeout(Some(wait.max(Duration::from_micros(1))))?;
            let mut buf = [0u8; 65_536];
            return match s.recv(&mut buf) {
                Ok(n) => Ok(Some(buf[..n].to_vec())),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            };
        }
        if let Some(f) = self.next_stream_frame()? {
            return Ok(Some(f));
        }
        match self.fill(wait) {
            Ok(()) => self.next_stream_frame(),
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `bytes` as they are: one datagram over UDP; over a stream written whole (a
    /// caller may pass several frames at once, each padded to 4 bytes).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        match &mut self.conn {
            Conn::Udp(s) => {
                s.send(bytes)?;
            }
            Conn::Tcp(s) => s.write_all(bytes)?,
            Conn::Tls(s) => {
                s.write_all(bytes).map_err(tls_error)?;
                s.flush().map_err(tls_error)?;
            }
        }
        Ok(())
    }
}
