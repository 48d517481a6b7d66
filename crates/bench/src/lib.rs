//! turnpike-bench: a TURN client library and a load generator for TURN servers.
//!
//! - [`client`]: a blocking TURN-over-UDP client (401 round trip with REST or static
//!   credentials, Allocate, CreatePermission, ChannelBind, Refresh, ChannelData and Send
//!   indications).
//! - [`load`]: paced offered load through the relay to peer sockets owned by the bench,
//!   with exact one-way latency, loss, reordering, RFC 3550 jitter and fairness.
//! - [`search`]: RFC 2544-style search for the highest loss-free rate, and an SVG plot.
//! - [`storm`]: authenticated allocation storm.
//! - [`output`]: human tables and CSV.

pub mod client;
pub mod load;
pub mod mmsg;
pub mod output;
pub mod search;
pub mod storm;

pub use client::{ClientError, Credentials, TurnClient};
pub use load::{LoadReport, Mode, RunParams, Session, Shape, Target};
