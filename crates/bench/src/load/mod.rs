//! The offered-load engine: N TURN clients send paced traffic through the relay to peer
//! sockets owned by this same process, so one-way latency is measured on one clock.
//!
//! Direction: **client → relay → peer only.** Each client allocates, binds a channel
//! (or installs a permission for Send indications) to a peer socket of the bench, and
//! sends; the peer socket receives plain UDP from the relayed address. Nothing is echoed,
//! so every figure is for one direction and one pass through the relay.
//!
//! Hot path: one pacing thread sends ([`SendPath`]): a plain `send` per datagram on each
//! client's connected socket, `sendmmsg` per client socket, or — the loopback default —
//! one shared wildcard socket whose `sendmmsg` batches carry many clients' datagrams,
//! each with its client's own source address in an `IP_PKTINFO` control message (every
//! client has its own 127.0.1.x address and all share one port, so the server sees each
//! client's exact 5-tuple). One receiving thread per peer socket uses `recvmmsg` (see
//! [`turnpike_udp::RecvBatch`]).
//!
//! Payload layout (at least [`MIN_PAYLOAD`] bytes, big endian): magic `0x5450` (2 bytes),
//! run id (2), flow id (4), sequence number (8), send time in ns since the run's shared
//! `Instant` (8), then filler (zeros). A batched datagram is stamped just before its
//! `sendmmsg` call.
//!
//! The module by job: the public settings and types are here; `session.rs` sets up the
//! clients and peer sockets and runs one load; `flow.rs` is one client's flow and its
//! sockets; `send.rs` the pacing thread; `recv.rs` the receiving threads and their
//! counts; `report.rs` the figures of a run; `reflector.rs` the loopback reflector used
//! to calibrate.

mod flow;
mod recv;
mod reflector;
mod report;
mod send;
mod session;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::client::{Credentials, Transport};

pub(crate) use flow::local_ip_towards;
pub use report::{Fairness, Latency, LoadReport, new_hist};
pub use session::Session;

/// The smallest payload: magic, run id, flow id, sequence number, send time.
pub const MIN_PAYLOAD: usize = 24;
const MAGIC: u16 = 0x5450;
/// Socket buffer size asked for on every data socket.
const SOCKET_BUFFER: usize = 4 << 20;
/// How often a long run refreshes each allocation, permission and channel.
const REFRESH_EVERY: Duration = Duration::from_secs(120);
/// The channel every client binds (channels are per allocation).
const CHANNEL: u16 = 0x4000;
/// Datagrams per `sendmmsg` call by default.
pub const DEFAULT_SEND_BATCH: usize = 32;
/// The default pacing quantum (see [`SessionConfig::tick`]).
pub const DEFAULT_TICK: Duration = Duration::from_micros(500);
/// How long the receiving threads let datagrams gather by default (at most a quarter of
/// what a socket's receive buffer holds at the run's rate, see [`Session::run`]).
pub const DEFAULT_RECV_WAIT: Duration = Duration::from_millis(1);
/// Datagrams per receive call by default.
pub const DEFAULT_RECV_BATCH: usize = 64;
/// Room for a datagram's head (framing and the payload's fixed fields) in a send batch.
const HEAD_SLOT: usize = 128;
/// The largest payload.
pub const MAX_PAYLOAD: usize = 8192;
/// The first client source address on the shared send path; client k uses this + k.
const SHARED_BASE: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
/// How many source addresses the shared path may try (the rest of 127.0.0.0/8 above
/// [`SHARED_BASE`]).
const SHARED_SPAN: u32 = 0x00FE_FEFE;

/// How the clients' datagrams reach the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SendPath {
    /// One `send` per datagram on each client's own connected socket.
    Plain,
    /// Each client's own connected socket; the datagrams due for a client in one pacing
    /// pass go out in one `sendmmsg`.
    Mmsg,
    /// Loopback IPv4 on Linux: one shared socket on the wildcard address sends for every
    /// client, many clients per `sendmmsg`; each client has its own 127.0.1.x address (all
    /// on one port), given per datagram in an `IP_PKTINFO` control message, and its own
    /// socket on that address for the TURN transactions.
    Shared,
}

impl SendPath {
    /// The default for a target at `addr`: [`SendPath::Shared`] for loopback IPv4 on
    /// Linux, else [`SendPath::Mmsg`].
    pub fn default_for(addr: SocketAddr) -> Self {
        if cfg!(target_os = "linux") && matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback()) {
            Self::Shared
        } else {
            Self::Mmsg
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Mmsg => "mmsg",
            Self::Shared => "shared",
        }
    }
}

/// Where the clients' data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum To {
    /// To peer sockets of the bench (client → relay → peer).
    #[default]
    Peers,
    /// To the partner client (2k ↔ 2k+1): client → relay → partner's relay → partner,
    /// both directions; the partner receives ChannelData (or Data indications).
    Clients,
}

/// How a session is set up (see [`Session::setup_with`]).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Number of clients (allocations, flows).
    pub clients: usize,
    /// Peer sockets, each with its own receiving thread (flow `i` goes to peer `i % peers`).
    pub peers: usize,
    /// Framing.
    pub mode: Mode,
    /// The peer sockets' IP address (default: the local address that routes to the server).
    pub peer_ip: Option<IpAddr>,
    /// The send path (default: [`SendPath::default_for`] the target).
    pub send_path: Option<SendPath>,
    /// Datagrams per `sendmmsg` call (1..=[`turnpike_udp::MAX_SEND_BATCH`]).
    pub send_batch: usize,
    /// Whether a client's datagrams due in one pacing pass go as one UDP GSO message
    /// (batched paths, datagrams up to 1452 bytes, where the kernel has GSO).
    pub gso: bool,
    /// How the peer sockets are read: zero wakes the receiving thread for every datagram
    /// that arrives while it waits; more lets datagrams gather for up to this long
    /// between reads when the last read did not fill a batch (fewer wakeups and system
    /// calls on a generator that shares one CPU). Latency is unaffected where the kernel
    /// stamps each datagram's arrival (Linux); elsewhere the wait is forced to zero.
    pub recv_wait: Duration,
    /// The pacing quantum: the sending thread makes at most one pass over the clients
    /// per tick, sending everything due by then, so that a client's datagrams due
    /// within one tick go together (one GSO message). Zero: a pass whenever the next
    /// datagram is due.
    pub tick: Duration,
    /// How the clients reach the server (TURN targets only; the reflector is UDP).
    pub transport: Transport,
    /// Where the data goes. Client to client, `peers` is the number of receiving
    /// threads (client `i` is read by thread `i % peers`).
    pub to: To,
}

impl SessionConfig {
    /// `clients` flows to `peers` peer sockets in `mode`, every other setting default.
    pub fn new(clients: usize, peers: usize, mode: Mode) -> Self {
        Self {
            clients,
            peers,
            mode,
            peer_ip: None,
            send_path: None,
            send_batch: DEFAULT_SEND_BATCH,
            gso: true,
            recv_wait: DEFAULT_RECV_WAIT,
            tick: DEFAULT_TICK,
            transport: Transport::Udp,
            to: To::Peers,
        }
    }
}

/// How data is framed to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// ChannelData (4-byte header).
    Channel,
    /// Send indications (36-byte STUN framing for IPv4 peers).
    Send,
}

/// The pacing of each flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Evenly spaced packets (audio-like).
    Steady,
    /// Video-like: a burst of packets back to back every frame interval (`--fps`).
    Bursty,
}

/// Where the clients' traffic goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A TURN server.
    Turn {
        /// Its UDP address.
        server: SocketAddr,
        /// The credentials.
        credentials: Credentials,
    },
    /// A plain UDP reflector the bench starts on loopback (no TURN): it strips the
    /// ChannelData header and forwards the data to the peer socket. Used to calibrate.
    Reflector {
        /// Pin the reflector's thread to this CPU (put it where the server would run).
        cpu: Option<usize>,
    },
}

/// One offered-load run.
#[derive(Debug, Clone, Copy)]
pub struct RunParams {
    /// Packets per second per client.
    pub rate: f64,
    /// Payload bytes per packet (at least [`MIN_PAYLOAD`]).
    pub size: usize,
    /// How long to send.
    pub duration: Duration,
    /// Pacing shape.
    pub shape: Shape,
    /// Frames per second for [`Shape::Bursty`].
    pub fps: u32,
    /// Longest wait for stragglers after the last send; the run ends as soon as
    /// everything sent has arrived.
    pub drain: Duration,
    /// Stop sending after this many packets in total.
    pub max_packets: u64,
    /// Datagrams per `recvmmsg` call on the peer sockets (1: plain `recv`).
    pub recv_batch: usize,
}
