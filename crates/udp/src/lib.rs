//! # turnpike-udp
//!
//! turnpike's socket layer, shared by the server (`turnpike-server`) and the load generator
//! (`turnpike-bench`), in the spirit of `quinn-udp`: batched UDP receive and send on Linux,
//! and the handful of system calls around them.
//!
//! - [`RecvBatch`]: one `recvmmsg(2)` for up to a batch of datagrams, with their sources and,
//!   when asked, the kernel's receive time, the socket's drop count and the address each
//!   datagram was sent to (`IP_PKTINFO`). Slots can keep room before and after the payload
//!   so that headers are written in place.
//! - [`SendBatch`]: datagrams that borrow the bytes of a [`RecvBatch`] (or of one flat
//!   buffer, [`Slots`]), to many sockets and destinations, sent with one `sendmmsg(2)` per
//!   run of the same socket and UDP GSO for bursts to one destination (the server's path).
//! - [`SendBuffer`]: datagrams copied in (a head, plus a borrowed tail), optionally from a
//!   chosen IPv4 source (`IP_PKTINFO`), with GSO and blocking or non-blocking sends (the
//!   bench's path).
//! - [`icmp`]: the ICMP errors the kernel queues for a socket with `IP_RECVERR` (RFC 8656 §11).
//! - [`sockopt`]: socket options neither `std` nor `socket2` offers, and `sockaddr`
//!   conversion.
//! - [`Poller`]: a level-triggered epoll set whose events carry a `u64` token (with the
//!   `tokio` feature, registrable as one tokio `AsyncFd`).
//! - [`sys`]: the open-files limit, CPU time, CPU pinning, a SIGINT/SIGTERM flag and
//!   `poll(2)` readiness.
//!
//! ## Unsafe code
//!
//! Every `unsafe` block of the workspace (apart from test allocators) is in this crate, and
//! each one carries a `// SAFETY:` argument (`clippy::undocumented_unsafe_blocks` is denied).
//! Where a well-kept crate does a part at the same cost, it is used instead: epoll, `poll`,
//! rlimits, CPU clocks, CPU affinity and the socket options it has go through `rustix`'s
//! safe wrappers. What is left is what no such crate offers: `recvmmsg` with per-datagram
//! control messages and sources into caller-laid-out slots, `sendmmsg` to many destinations
//! with `UDP_SEGMENT` and `IP_PKTINFO`, the `MSG_ERRQUEUE` reader, a few integer socket
//! options, and `sigaction` (docs/ARCHITECTURE.md, "unsafe", has the measurements).
//!
//! ## Platform
//!
//! Linux only (the server's data path and the bench's batches are Linux system calls).

#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_os = "linux"))]
compile_error!("turnpike-udp supports Linux only");

mod addr;
mod cmsg;
mod gso;
pub mod icmp;
mod mmsg;
mod poller;
mod recv;
mod send;
mod send_buffer;
pub mod sockopt;
pub mod sys;

pub use addr::RawAddr;
pub use gso::gso_available;
pub use mmsg::send_one;
pub use poller::{MAX_EVENTS, Poller, Ready};
pub use recv::{BATCH, RecvBatch};
pub use send::{Destination, Outgoing, SendBatch, Slots};
pub use send_buffer::{MAX_SEND_BATCH, SENDMMSG_MAX, SendBuffer, SendOutcome};
