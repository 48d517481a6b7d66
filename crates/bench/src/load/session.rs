//! A session: its clients' allocations, channels or permissions and its peer sockets,
//! set up once and reused across runs; one run spawns the sending and receiving threads
//! and collects what they counted.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;
use turnpike_udp::sockopt::enable_rx_info;

use super::flow::{
    Flow, bind_reuse, chan, close_all, local_ip_towards, set_buffers, shared_ip, shared_socket,
};
use super::recv::{ClientRx, RecvCommon, RecvStats, receive, receive_clients};
use super::reflector::{Reflector, recv_slot};
use super::send::{Out, send_loop};
use super::{
    LoadReport, MIN_PAYLOAD, Mode, REFRESH_EVERY, RunParams, SendPath, SessionConfig, Target, To,
};
use crate::client::{ClientError, Inbox, Reader, Transport, TurnClient};

/// Allocated clients and their peer sockets, reusable across runs.
pub struct Session {
    pub(super) flows: Vec<Flow>,
    peers: Vec<UdpSocket>,
    pub(super) target_name: String,
    pub(super) mode: Mode,
    pub(super) path: SendPath,
    /// The shared path's sending socket.
    shared: Option<UdpSocket>,
    /// Where the shared socket sends (the server or the reflector).
    dest: SocketAddr,
    send_batch: usize,
    pub(super) gso: bool,
    pub(super) tick: Duration,
    pub(super) transport: Transport,
    /// Whether the peer sockets report kernel receive times and drops.
    rx_info: bool,
    recv_wait: Duration,
    /// Each peer socket's drop counter as last seen.
    peer_drops: Vec<u32>,
    pub(super) to: To,
    /// Client to client: the clients' connections, one group per receiving thread.
    client_rx: Vec<Vec<ClientRx>>,
    /// Client to client: where each client's transactions find their responses during a
    /// run (the receiving threads read the connections).
    inboxes: Vec<Arc<Inbox>>,
    run_id: u16,
    last_refresh: Instant,
    refresh_every: Duration,
    reflector: Option<Reflector>,
    epoch: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target_name)
            .field("flows", &self.flows.len())
            .field("peers", &self.peers.len())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Sets up `clients` flows against `target`: allocations, channels or permissions,
    /// and `peers` peer sockets (flow `i` goes to peer `i % peers`), with the default
    /// send path ([`SendPath::default_for`] the target).
    ///
    /// `progress` is called after each client is ready.
    pub fn setup(
        target: &Target,
        clients: usize,
        peers: usize,
        mode: Mode,
        peer_ip: Option<IpAddr>,
        progress: &dyn Fn(usize),
    ) -> Result<Self, ClientError> {
        let cfg = SessionConfig {
            peer_ip,
            ..SessionConfig::new(clients, peers, mode)
        };
        Self::setup_with(target, &cfg, progress)
    }

    /// Sets up a session as `cfg` says; `progress` is called after each client is ready.
    pub fn setup_with(
        target: &Target,
        cfg: &SessionConfig,
        progress: &dyn Fn(usize),
    ) -> Result<Self, ClientError> {
        let clients = cfg.clients;
        let peers = cfg.peers.clamp(1, clients.max(1));
        let mode = match target {
            Target::Turn { .. } => cfg.mode,
            Target::Reflector { .. } => Mode::Channel,
        };
        let invalid = |what: &str| {
            ClientError::Io(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()))
        };
        let to = cfg.to;
        if to == To::Clients {
            if matches!(target, Target::Reflector { .. }) {
                return Err(invalid("the reflector has no client-to-client mode"));
            }
            if !clients.is_multiple_of(2) {
                return Err(invalid("client-to-client needs an even number of clients"));
            }
            if matches!(cfg.transport, Transport::Tls(_)) {
                return Err(invalid("client-to-client runs over UDP or TCP, not TLS"));
            }
        }
        let peer_ip = match (cfg.peer_ip, target) {
            (Some(ip), _) => ip,
            (None, Target::Turn { server, .. }) => local_ip_towards(*server)?,
            (None, Target::Reflector { .. }) => IpAddr::from([127, 0, 0, 1]),
        };
        let mut peer_sockets = Vec::with_capacity(peers);
        let mut rx_info = true;
        // Client to client, the clients' own sockets receive: no peer sockets.
        for _ in 0..if to == To::Peers { peers } else { 0 } {
            let s = UdpSocket::bind(SocketAddr::new(peer_ip, 0))?;
            set_buffers(&s);
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            rx_info &= enable_rx_info(&s).is_ok();
            peer_sockets.push(s);
        }
        let peer_addrs: Vec<SocketAddr> = peer_sockets
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<Result<_, _>>()?;
        let peer_addrs = if peer_addrs.is_empty() {
            vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))]
        } else {
            peer_addrs
        };
        let (reflector, target_name, dest) = match target {
            Target::Turn { server, .. } => (None, server.to_string(), *server),
            Target::Reflector { cpu } => {
                let r = Reflector::start(peer_addrs.clone(), *cpu)?;
                let addr = r.addr;
                (Some(r), "reflector".to_owned(), addr)
            }
        };
        let transport = match target {
            Target::Turn { .. } => cfg.transport.clone(),
            Target::Reflector { .. } => Transport::Udp,
        };
        // Over a stream each client writes its frames itself: no send path applies.
        let path = if transport.is_stream() {
            SendPath::Plain
        } else {
            cfg.send_path.unwrap_or_else(|| SendPath::default_for(dest))
        };
        if path == SendPath::Shared
            && !(cfg!(target_os = "linux")
                && matches!(dest.ip(), IpAddr::V4(ip) if ip.is_loopback()))
        {
            return Err(invalid(
                "the shared send path needs a server on loopback IPv4 (Linux)",
            ));
        }
        let shared = if path == SendPath::Shared {
            Some(shared_socket()?)
        } else {
            None
        };
        let shared_port = match &shared {
            Some(s) => s.local_addr()?.port(),
            None => 0,
        };
        let mut next_ip = 0u32;
        let mut flows: Vec<Flow> = Vec::with_capacity(clients);
        for i in 0..clients {
            let peer = peer_addrs[i % peer_addrs.len()];
            let made = (|| -> Result<Flow, ClientError> {
                let mut flow = Flow {
                    socket: None,
                    src: None,
                    client: None,
                    peer,
                    mode,
                    frame: Vec::new(),
                    payload_at: 0,
                };
                match target {
                    Target::Turn {
                        server,
                        credentials,
                    } => {
                        let c = if path == SendPath::Shared {
                            // The client's own address on the shared port; skip addresses
                            // something else holds (or whose 5-tuple the server still has).
                            let mut tries = 0;
                            loop {
                                let ip = shared_ip(next_ip);
                                next_ip += 1;
                                tries += 1;
                                let made = bind_reuse(SocketAddr::from((ip, shared_port)))
                                    .map_err(ClientError::Io)
                                    .and_then(|s| TurnClient::from_socket(s, *server, credentials))
                                    .and_then(|mut c| c.allocate(None).map(|_| c));
                                match made {
                                    Ok(c) => {
                                        flow.src = Some(ip);
                                        break c;
                                    }
                                    Err(
                                        ClientError::Io(_)
                                        | ClientError::Rejected { code: 437, .. },
                                    ) if tries < 8 => {}
                                    Err(e) => return Err(e),
                                }
                            }
                        } else {
                            let mut c = TurnClient::connect_over(*server, credentials, &transport)?;
                            c.allocate(None)?;
                            c
                        };
                        if let (SendPath::Plain | SendPath::Mmsg, Some(s)) = (path, c.socket()) {
                            flow.socket = Some(s.try_clone()?);
                        }
                        flow.client = Some(c);
                    }
                    Target::Reflector { .. } => {
                        if path == SendPath::Shared {
                            flow.src = Some(shared_ip(next_ip));
                            next_ip += 1;
                        } else {
                            let socket = UdpSocket::bind("127.0.0.1:0")?;
                            socket.connect(dest)?;
                            flow.socket = Some(socket);
                        }
                    }
                }
                if let Some(s) = &flow.socket {
                    set_buffers(s);
                }
                Ok(flow)
            })();
            let flow = match made {
                Ok(flow) => flow,
                Err(e) => {
                    close_all(&mut flows);
                    return Err(e);
                }
            };
            flows.push(flow);
            progress(i + 1);
        }
        // Then each client's channel or permission: to its peer socket, or to its
        // partner's relayed address (clients 2k and 2k+1 are partners).
        for i in 0..flows.len() {
            if to == To::Clients {
                match flows[i ^ 1].client.as_ref().and_then(TurnClient::relayed) {
                    Some(partner) => flows[i].peer = partner,
                    None => continue,
                }
            }
            let f = &mut flows[i];
            let peer = f.peer;
            let bound = match (&mut f.client, mode) {
                (None, _) => Ok(()),
                (Some(c), Mode::Channel) => c.channel_bind(chan(), peer),
                (Some(c), Mode::Send) => c.create_permission(peer),
            };
            if let Err(e) = bound {
                close_all(&mut flows);
                return Err(e);
            }
        }
        // Client to client, receiving threads read the clients' own connections.
        let mut client_rx: Vec<Vec<ClientRx>> = Vec::new();
        if to == To::Clients {
            client_rx.resize_with(peers, Vec::new);
            for (i, f) in flows.iter().enumerate() {
                let reader = match f.client.as_ref().map(TurnClient::reader) {
                    Some(Ok(Some(r))) => r,
                    Some(Err(e)) => {
                        close_all(&mut flows);
                        return Err(e.into());
                    }
                    _ => continue,
                };
                if let Reader::Udp(s) = &reader {
                    rx_info &= enable_rx_info(s).is_ok();
                    set_buffers(s);
                }
                client_rx[i % peers].push(ClientRx {
                    flow: i,
                    reader,
                    buf: Vec::new(),
                    drops: 0,
                });
            }
        }
        let inboxes = (0..if to == To::Clients { flows.len() } else { 0 })
            .map(|_| Arc::new(Inbox::default()))
            .collect();
        Ok(Self {
            flows,
            peers: peer_sockets,
            target_name,
            mode,
            path,
            shared,
            dest,
            send_batch: cfg.send_batch.clamp(1, turnpike_udp::MAX_SEND_BATCH),
            gso: cfg.gso && path != SendPath::Plain && turnpike_udp::gso_available(),
            tick: cfg.tick.min(Duration::from_millis(20)),
            transport,
            rx_info,
            recv_wait: if rx_info {
                cfg.recv_wait.min(Duration::from_millis(50))
            } else {
                Duration::ZERO
            },
            peer_drops: vec![0; peers],
            run_id: 0,
            last_refresh: Instant::now(),
            refresh_every: REFRESH_EVERY,
            reflector,
            epoch: Instant::now(),
            to,
            client_rx,
            inboxes,
        })
    }

    /// How long a receiving thread lets datagrams gather in this run: the configured
    /// wait, but at most the time a quarter of a socket's receive buffer takes to fill
    /// at the run's rate (a datagram of `size` bytes takes about `size` + 768 bytes of
    /// buffer).
    fn recv_wait_for(&self, p: &RunParams, size: usize) -> Duration {
        let sockets = self.peers.len() + self.client_rx.iter().map(Vec::len).sum::<usize>();
        let buffer = self
            .peers
            .first()
            .map(|s| SockRef::from(s).recv_buffer_size().unwrap_or(0))
            .or_else(|| {
                self.client_rx
                    .iter()
                    .flatten()
                    .next()
                    .map(|rx| match &rx.reader {
                        Reader::Udp(s) => SockRef::from(s).recv_buffer_size().unwrap_or(0),
                        Reader::Tcp(_) => 0,
                    })
            })
            .unwrap_or(0);
        let per_socket = p.rate * self.flows.len() as f64 / sockets.max(1) as f64;
        let fill = buffer as f64 / ((size + 768) as f64 * per_socket.max(1.0));
        let wait = self.recv_wait.min(Duration::from_secs_f64(fill / 4.0));
        // Shorter than a sleep's overshoot: block for each datagram instead.
        if wait < Duration::from_micros(50) {
            Duration::ZERO
        } else {
            wait
        }
    }

    /// The send path in use.
    pub fn send_path(&self) -> SendPath {
        self.path
    }

    /// How often allocations, permissions and channels are refreshed, during a run and
    /// by [`Session::maintain`] (default two minutes; lifetimes are 300 s and more).
    pub fn set_refresh_every(&mut self, every: Duration) {
        self.refresh_every = every.max(Duration::from_millis(10));
    }

    /// Number of flows.
    pub fn clients(&self) -> usize {
        self.flows.len()
    }

    /// Refreshes every allocation and its channel or permission if the last refresh is
    /// older than two minutes (call between runs).
    pub fn maintain(&mut self) -> Result<(), ClientError> {
        if self.last_refresh.elapsed() >= self.refresh_every {
            for f in &mut self.flows {
                f.refresh()?;
            }
            self.last_refresh = Instant::now();
        }
        Ok(())
    }

    /// Runs one offered load. `tick` is called about every 100 ms with the fraction of
    /// the sending time done and the packets delivered so far.
    pub fn run(&mut self, p: &RunParams, tick: &dyn Fn(f64, u64)) -> LoadReport {
        self.run_id = self.run_id.wrapping_add(1);
        let run_id = self.run_id;
        let size = p.size.max(MIN_PAYLOAD);
        let stream = self.transport.is_stream();
        for f in &mut self.flows {
            f.build_frame(size, stream);
        }
        let n = self.flows.len();
        let epoch = self.epoch;
        let reflector_drops = self.reflector.as_ref().map(|r| {
            r.slot.store(recv_slot(size), Ordering::Relaxed);
            r.drops.load(Ordering::Relaxed)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let delivered_live = Arc::new(AtomicU64::new(0));

        let (stats, send) = thread::scope(|scope| {
            let mut receivers = Vec::new();
            // The run's epoch on the kernel's receive-time clock (CLOCK_REALTIME).
            let epoch_rt = self.rx_info.then(|| {
                let rt = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                rt.saturating_sub(epoch.elapsed())
            });
            let common = RecvCommon {
                batch: p.recv_batch,
                slot: recv_slot(size),
                wait: self.recv_wait_for(p, size),
                flows: n,
                run_id,
                epoch,
                epoch_rt,
                stop: Arc::clone(&stop),
                live: Arc::clone(&delivered_live),
            };
            for (peer, drops) in self.peers.iter().zip(&mut self.peer_drops) {
                let c = common.clone();
                receivers.push(scope.spawn(move || receive(peer, drops, &c)));
            }
            // Client to client: the transactions of a refresh during the run find their
            // responses in the inboxes the receiving threads fill.
            for (f, inbox) in self.flows.iter_mut().zip(&self.inboxes) {
                if let Some(c) = &mut f.client {
                    c.set_inbox(Some(Arc::clone(inbox)));
                }
            }
            let inboxes = &self.inboxes;
            for group in &mut self.client_rx {
                let c = common.clone();
                receivers.push(scope.spawn(move || receive_clients(group, inboxes, &c)));
            }
            let flows = &mut self.flows;
            let out = Out {
                path: self.path,
                shared: self.shared.as_ref(),
                dest: self.dest,
                batch: self.send_batch,
                gso: self.gso,
                tick: self.tick,
                stream: self.transport.is_stream(),
            };
            let every = self.refresh_every;
            let sender = scope.spawn(move || send_loop(flows, &out, p, run_id, epoch, every));
            let start = Instant::now();
            while !sender.is_finished() {
                thread::sleep(Duration::from_millis(100));
                let frac = start.elapsed().as_secs_f64() / p.duration.as_secs_f64().max(1e-9);
                tick(frac.min(1.0), delivered_live.load(Ordering::Relaxed));
            }
            let send = sender.join().unwrap_or_default();
            // Stragglers get up to the drain time; a run whose every datagram has
            // arrived ends at once (duplicates count, so a duplicate can end it one
            // datagram early).
            let sent: u64 = send.sent.iter().sum();
            let drain_end = Instant::now() + p.drain;
            while delivered_live.load(Ordering::Relaxed) < sent {
                let left = drain_end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                thread::sleep(left.min(Duration::from_millis(2)));
            }
            stop.store(true, Ordering::Relaxed);
            let mut total = RecvStats::new(n);
            for r in receivers {
                if let Ok(s) = r.join() {
                    total.merge(s);
                }
            }
            (total, send)
        });
        for f in &mut self.flows {
            if let Some(c) = &mut f.client {
                c.set_inbox(None);
            }
        }
        let mut stats = stats;
        if let (Some(r), Some(before)) = (&self.reflector, reflector_drops) {
            stats.reflector_drops = Some(r.drops.load(Ordering::Relaxed).saturating_sub(before));
        }
        self.report(p, size, &stats, &send)
    }

    /// Deletes every allocation (Refresh lifetime 0). Stops at the first timeout: the
    /// server is gone and the rest would only wait too.
    pub fn close(&mut self) {
        for f in &mut self.flows {
            if let Some(c) = &mut f.client {
                if let Err(ClientError::Timeout(_)) = c.close() {
                    break;
                }
            }
        }
        for f in &mut self.flows {
            f.client = None;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Shape;

    fn params(rate: f64, secs: f64) -> RunParams {
        RunParams {
            rate,
            size: 100,
            duration: Duration::from_secs_f64(secs),
            shape: Shape::Steady,
            fps: 30,
            drain: Duration::from_millis(100),
            max_packets: 1_000_000,
            recv_batch: 16,
        }
    }

    #[test]
    fn reflector_run_has_no_loss() {
        let mut s = Session::setup(
            &Target::Reflector { cpu: Some(0) },
            3,
            2,
            Mode::Channel,
            None,
            &|_| {},
        )
        .unwrap();
        let r = s.run(&params(100.0, 0.5), &|_, _| {});
        assert!(r.sent >= 140 && r.sent <= 160, "{r:?}");
        assert_eq!(r.lost, 0, "{r:?}");
        assert_eq!(r.duplicates, 0);
        assert!(r.latency.p50_us > 0.0);
        assert!((r.fairness.jain_index - 1.0).abs() < 1e-9);
        // A second run on the same session ignores nothing and loses nothing.
        let r2 = s.run(
            &RunParams {
                shape: Shape::Bursty,
                ..params(300.0, 0.3)
            },
            &|_, _| {},
        );
        assert_eq!(r2.lost, 0, "{r2:?}");
    }
}
