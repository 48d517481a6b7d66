//! turnpike-bench: a TURN client library and a load generator for TURN servers.
//!
//! - [`client`]: a blocking TURN client over UDP, TCP or TLS (401 round trip with REST or
//!   static credentials, Allocate, CreatePermission, ChannelBind, Refresh, ChannelData and
//!   Send indications).
//! - [`load`]: paced offered load through the relay to peer sockets owned by the bench
//!   (or client to client), with exact one-way latency, loss, reordering, RFC 3550 jitter
//!   and fairness; batched sends (`sendmmsg`, UDP GSO, one shared socket for many
//!   loopback clients).
//! - [`tls`]: rustls client settings for `turns:`.
//! - [`search`]: RFC 2544-style search for the highest loss-free rate, and an SVG plot.
//! - [`storm`]: authenticated allocation storm.
//! - [`hold`]: create many allocations (permission and channel each), hold them, delete them.
//! - [`flood`]: unauthenticated Binding/Allocate requests from many spoofed loopback sources.
//! - [`engine`]: the event-driven many-allocations-per-thread client under `storm` and `hold`.
//! - [`output`]: human tables and CSV.
//!
//! The socket layer under all of these (`recvmmsg`/`sendmmsg` batches with kernel receive
//! times, `IP_PKTINFO` and UDP GSO; epoll, poll, rlimits, signals, CPU time and pinning) is
//! `turnpike-udp`, shared with the server.

pub mod client;
pub mod engine;
pub mod flood;
pub mod hold;
pub mod load;
pub mod output;
pub mod search;
pub mod storm;
pub mod tls;

pub use client::{ClientError, Credentials, TurnClient};
pub use load::{LoadReport, Mode, RunParams, Session, Shape, Target};
