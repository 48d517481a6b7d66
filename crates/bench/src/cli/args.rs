//! The arguments several subcommands share: the server and credentials, the workload,
//! the client transport, the send and receive settings, the output format and the
//! generator ceiling.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use turnpike_bench::client::Transport;
use turnpike_bench::load::{
    DEFAULT_RECV_BATCH, DEFAULT_RECV_WAIT, DEFAULT_SEND_BATCH, DEFAULT_TICK, MIN_PAYLOAD, Mode,
    RunParams, SendPath, Shape, Target, To,
};
use turnpike_bench::{Credentials, tls};

#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    /// The TURN server's address (UDP; its TCP or TLS listener with --transport tcp|tls).
    #[arg(long)]
    pub(crate) server: SocketAddr,
    /// REST shared secret (coturn `static-auth-secret`, turnpike `secrets`).
    #[arg(long, conflicts_with_all = ["password"], required_unless_present = "password")]
    secret: Option<String>,
    /// User name: the user part of the REST username with --secret, or the username.
    #[arg(long, default_value = "bench")]
    user: String,
    /// Static password (long-term credentials) for --user.
    #[arg(long)]
    password: Option<String>,
}

impl ServerArgs {
    pub(crate) fn target(&self) -> Target {
        Target::Turn {
            server: self.server,
            credentials: self.credentials(),
        }
    }

    pub(crate) fn credentials(&self) -> Credentials {
        match (&self.secret, &self.password) {
            (Some(secret), _) => Credentials::Rest {
                secret: secret.clone(),
                user: self.user.clone(),
            },
            (None, password) => Credentials::Static {
                user: self.user.clone(),
                password: password.clone().unwrap_or_default(),
            },
        }
    }
}

#[derive(Args, Debug, Clone)]
pub(crate) struct WorkloadArgs {
    /// Number of clients (one allocation and one flow each).
    #[arg(long, default_value_t = 10)]
    pub(crate) clients: usize,
    /// Packets per second per client.
    #[arg(long, default_value_t = 50.0)]
    pub(crate) rate: f64,
    /// Payload bytes per packet (at least 24).
    #[arg(long, default_value_t = 120)]
    pub(crate) size: usize,
    /// Framing to the server.
    #[arg(long, value_enum, default_value_t = Mode::Channel)]
    pub(crate) mode: Mode,
    /// Pacing: steady, or bursty (a frame of rate/fps packets every 1/fps s).
    #[arg(long, value_enum, default_value_t = Shape::Steady)]
    pub(crate) shape: Shape,
    /// Frames per second for --shape bursty.
    #[arg(long, default_value_t = 30)]
    pub(crate) fps: u32,
    /// Where the data goes: peers (client → relay → the bench's peer sockets) or clients
    /// (client 2k ↔ client 2k+1 through both relays, both directions; needs an even
    /// --clients, UDP or TCP).
    #[arg(long, value_enum, default_value_t = To::Peers)]
    pub(crate) to: To,
    /// Peer sockets (each with its own receiving thread); flow i goes to peer i % peers.
    /// With --to clients: receiving threads (client i is read by thread i % peers).
    #[arg(long, default_value_t = 1)]
    pub(crate) peers: usize,
    /// The peer sockets' IP address (default: the local address that routes to the server).
    #[arg(long)]
    pub(crate) peer_ip: Option<IpAddr>,
    /// Longest wait in milliseconds for stragglers after the last send (a run ends as
    /// soon as everything sent has arrived).
    #[arg(long, default_value_t = 500)]
    pub(crate) drain_ms: u64,
    /// Stop a run after this many packets in total.
    #[arg(long, default_value_t = 100_000_000)]
    pub(crate) max_packets: u64,
    /// Datagrams per recvmmsg call on each peer socket (1 = plain recv).
    #[arg(long, default_value_t = DEFAULT_RECV_BATCH)]
    pub(crate) recv_batch: usize,
    #[command(flatten)]
    pub(crate) send: IoArgs,
    #[command(flatten)]
    pub(crate) transport: TransportArgs,
}

/// The clients' transport to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum TransportKind {
    /// UDP.
    #[default]
    Udp,
    /// TCP (RFC 8656 §3.1), one connection per client.
    Tcp,
    /// TLS over TCP (turns:), one connection per client.
    Tls,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct TransportArgs {
    /// Client transport to the server (data still leaves the relay as UDP to the bench's
    /// peer sockets). --server is then the server's TCP (or TLS) address.
    #[arg(long, value_enum, default_value_t = TransportKind::Udp)]
    transport: TransportKind,
    /// With --transport tls: PEM file of the roots to verify the server against (no
    /// system roots are used).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// With --transport tls: do not verify the server's certificate (self-signed test
    /// servers).
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// With --transport tls: the name the certificate must carry, sent as SNI (default:
    /// the server's IP address).
    #[arg(long)]
    tls_name: Option<String>,
}

impl TransportArgs {
    /// `udp`, `tcp` or `tls`.
    pub(crate) fn name(&self) -> String {
        format!("{:?}", self.transport).to_lowercase()
    }
}

impl TransportArgs {
    pub(crate) fn build(&self, target: &Target) -> Result<Transport, String> {
        Ok(match (self.transport, target) {
            (TransportKind::Udp, _) | (_, Target::Reflector { .. }) => Transport::Udp,
            (TransportKind::Tcp, _) => Transport::Tcp,
            (TransportKind::Tls, Target::Turn { server, .. }) => Transport::Tls(
                tls::settings(
                    *server,
                    self.tls_name.as_deref(),
                    self.ca.as_deref(),
                    self.insecure,
                )
                .map_err(|e| e.to_string())?,
            ),
        })
    }
}

#[derive(Args, Debug, Clone, Copy)]
pub(crate) struct IoArgs {
    /// How datagrams are sent: plain (one send per datagram on each client's socket),
    /// mmsg (sendmmsg per client socket), shared (one socket sends for all clients with
    /// sendmmsg, each client's own 127.0.1.x source via IP_PKTINFO; loopback IPv4 only).
    /// Default: shared for a server on loopback IPv4, else mmsg.
    #[arg(long, value_enum)]
    pub(crate) send_path: Option<SendPath>,
    /// Datagrams per sendmmsg call (1..=512).
    #[arg(long, default_value_t = DEFAULT_SEND_BATCH)]
    pub(crate) send_batch: usize,
    /// Do not send a client's datagrams due in one pacing pass as one UDP GSO message
    /// (mmsg and shared paths; the server still receives them one by one).
    #[arg(long)]
    pub(crate) no_gso: bool,
    /// Microseconds the receiving threads let datagrams gather after a read that did not
    /// fill a batch (0: wake for every datagram). Latency comes from the kernel's receive
    /// time stamps either way.
    #[arg(long, default_value_t = DEFAULT_RECV_WAIT.as_micros() as u64)]
    pub(crate) recv_wait_us: u64,
    /// Pacing quantum in µs: at most one sending pass over the clients per tick; a
    /// client's datagrams due within a tick go out together (one GSO message). 0: a pass
    /// whenever a datagram is due.
    #[arg(long, default_value_t = DEFAULT_TICK.as_micros() as u64)]
    pub(crate) tick_us: u64,
}

impl WorkloadArgs {
    pub(crate) fn params(&self, secs: f64) -> RunParams {
        RunParams {
            rate: self.rate,
            size: self.size,
            duration: Duration::from_secs_f64(secs),
            shape: self.shape,
            fps: self.fps,
            drain: Duration::from_millis(self.drain_ms.min(10_000)),
            max_packets: self.max_packets,
            recv_batch: self.recv_batch.clamp(1, 1024),
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if !(1..=20_000).contains(&self.clients) {
            return Err("--clients must be 1..=20000".into());
        }
        if !(MIN_PAYLOAD..=8192).contains(&self.size) {
            return Err(format!("--size must be {MIN_PAYLOAD}..=8192"));
        }
        if !(self.rate > 0.0 && self.rate <= 10_000_000.0) {
            return Err("--rate must be > 0 and ≤ 10 000 000".into());
        }
        if !(1..=64).contains(&self.peers) {
            return Err("--peers must be 1..=64".into());
        }
        if !(1..=512).contains(&self.send.send_batch) {
            return Err("--send-batch must be 1..=512".into());
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub(crate) struct OutputArgs {
    /// Print JSON instead of the table.
    #[arg(long, conflicts_with = "csv")]
    pub(crate) json: bool,
    /// Print CSV (header and rows) instead of the table.
    #[arg(long)]
    pub(crate) csv: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Args, Debug)]
pub(crate) struct CeilingArgs {
    /// The generator's calibrated ceiling (delivered pkt/s from `calibrate`).
    #[arg(long)]
    pub(crate) ceiling: Option<f64>,
    /// Calibrate first (a 2 s flood of the loopback reflector with the same clients and size).
    #[arg(long, conflicts_with = "ceiling")]
    pub(crate) calibrate: bool,
    /// With --calibrate: pin the reflector thread to this CPU (where the server runs).
    #[arg(long, requires = "calibrate")]
    pub(crate) reflector_cpu: Option<usize>,
}
