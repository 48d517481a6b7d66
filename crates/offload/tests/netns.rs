//! The fast path relays ChannelData between network namespaces of our own, byte for
//! byte, with correct checksums whether the senders' veths offload them or not, in
//! IPv4, IPv6 and across families (an IPv4 client with an IPv6 relayed address and
//! the other way round, RFC 6156), and leaves to user space everything it must not
//! relay.
//!
//! Topology: `cli` (eth0) ── (c0) `srv` (p0) ── (eth0) `peer`, addresses from
//! 198.18.0.0/15 and 2001:db8::/32 inside these namespaces only. The program runs at
//! TC ingress (or XDP) of c0 and p0 in `srv`; no process relays there, so whatever
//! arrives at the client or the peer was relayed by the program. Needs root and
//! feature `ebpf`.
//!
//! At XDP the senders' checksum offload stays off: a veth hands XDP the partial sum of
//! a `CHECKSUM_PARTIAL` skb, which only a TC program can tell (frames from a NIC carry
//! complete sums). The receiving veths have GRO on, without which native XDP redirect
//! into a veth drops the frame.

#![cfg(all(target_os = "linux", feature = "ebpf"))]

use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd as _;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use turnpike_offload::abi::ROUTE_VETH;
use turnpike_offload::egress::{egress, ethernet_hop, use_neighbour};
use turnpike_offload::{
    AllocCounters, FwdKey, Hook, Neigh, NeighKey, Offload, ProgramStats, RevKey, Route, XdpAttach,
};

const CLIENT_PORT: u16 = 41_001;
const SERVER_PORT: u16 = 34_780;
const RELAY_PORT: u16 = 49_710;
const PEER_PORT: u16 = 42_002;
const CHANNEL: u16 = 0x4001;
/// Added to the four ports above by the cross-family sides (v4 client with v6 peer,
/// v6 client with v4 peer), whose keys would otherwise be the same-family ones'.
const V4_TO_V6_PORTS: u16 = 100;
const V6_TO_V4_PORTS: u16 = 200;
/// IPv4 and IPv6 header sizes, and the veths' MTU.
const V4_HEADER: usize = 20;
const V6_HEADER: usize = 40;
const MTU: usize = 1500;
const WAIT: Duration = Duration::from_millis(1500);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three namespaces and two veth pairs, deleted on drop (even when a check fails).
struct Lab {
    cli: String,
    srv: String,
    peer: String,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let lab = Self {
            cli: format!("tpo-cli-{tag}-{pid}"),
            srv: format!("tpo-srv-{tag}-{pid}"),
            peer: format!("tpo-peer-{tag}-{pid}"),
        };
        for ns in [&lab.cli, &lab.srv, &lab.peer] {
            run(&["ip", "netns", "add", ns]);
        }
        run(&[
            "ip", "-n", &lab.cli, "link", "add", "eth0", "type", "veth", "peer", "name", "c0",
            "netns", &lab.srv,
        ]);
        run(&[
            "ip", "-n", &lab.peer, "link", "add", "eth0", "type", "veth", "peer", "name", "p0",
            "netns", &lab.srv,
        ]);
        let addrs = [
            (&lab.cli, "eth0", "198.18.1.2/24", "2001:db8:1::2/64"),
            (&lab.srv, "c0", "198.18.1.1/24", "2001:db8:1::1/64"),
            (&lab.srv, "p0", "198.18.2.1/24", "2001:db8:2::1/64"),
            (&lab.peer, "eth0", "198.18.2.2/24", "2001:db8:2::2/64"),
        ];
        for (ns, dev, v4, v6) in addrs {
            run(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
            run(&["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // Forwarding stays off in srv, as on any TURN server: the program relays
        // everything itself.
        // Senders use TTL / hop limit 17 and set DF (Linux's UDP default); the relay
        // must send with 64, DF set towards the peer (the FWD routes' flag) and clear
        // towards the client (the REV routes'). The receivers drop anything else.
        for ns in [&lab.cli, &lab.peer] {
            for key in [
                "net.ipv4.ip_default_ttl=17",
                "net.ipv6.conf.all.hop_limit=17",
                "net.ipv6.conf.eth0.hop_limit=17",
            ] {
                run(&["ip", "netns", "exec", ns, "sysctl", "-qw", key]);
            }
        }
        let rules = [
            (&lab.peer, PEER_PORT, "ip frag-off & 0x4000 == 0"),
            (&lab.cli, CLIENT_PORT, "ip frag-off & 0x4000 != 0"),
        ];
        for (ns, port, wrong_df) in rules {
            let ports = format!(
                "{{ {port}, {}, {} }}",
                port + V4_TO_V6_PORTS,
                port + V6_TO_V4_PORTS
            );
            let script = format!(
                "add table inet tpo; \
                 add chain inet tpo input {{ type filter hook input priority 0; }}; \
                 add rule inet tpo input udp dport {ports} ip ttl != 64 drop; \
                 add rule inet tpo input udp dport {ports} ip6 hoplimit != 64 drop; \
                 add rule inet tpo input udp dport {ports} {wrong_df} drop"
            );
            run(&["ip", "netns", "exec", ns, "nft", &script]);
        }
        // The srv side computes any checksum still partial when it sends, so the
        // receivers get CHECKSUM_NONE skbs and verify every relayed checksum.
        for dev in ["c0", "p0"] {
            run(&[
                "ip", "netns", "exec", &lab.srv, "ethtool", "-K", dev, "tx", "off",
            ]);
        }
        lab
    }

    /// GRO on the client's and the peer's veths, so native XDP can redirect into their
    /// peers (c0, p0).
    fn receivers_gro(&self) {
        for ns in [&self.cli, &self.peer] {
            run(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "gro", "on",
            ]);
        }
    }

    /// Checksum offload on the senders' veths (cli and peer).
    fn sender_offload(&self, on: bool) {
        let state = if on { "on" } else { "off" };
        for ns in [&self.cli, &self.peer] {
            run(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", state,
            ]);
        }
    }

    /// UDP and UDP6 InCsumErrors of `ns`.
    fn csum_errors(ns: &str) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "cat",
                "/proc/net/snmp",
                "/proc/net/snmp6",
            ])
            .output()
            .expect("reading snmp");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut total = 0;
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            if pair[0].starts_with("Udp: ") && pair[1].starts_with("Udp: ") {
                let names = pair[0].split_whitespace();
                let values = pair[1].split_whitespace();
                for (n, v) in names.zip(values) {
                    if n == "InCsumErrors" {
                        total += v.parse::<u64>().expect("counter");
                    }
                }
            }
        }
        for line in &lines {
            let mut it = line.split_whitespace();
            if it.next() == Some("Udp6InCsumErrors") {
                total += it
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .expect("counter");
            }
        }
        total
    }

    fn all_csum_errors(&self) -> u64 {
        [&self.cli, &self.srv, &self.peer]
            .iter()
            .map(|ns| Self::csum_errors(ns))
            .sum()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.cli, &self.srv, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` with this thread in namespace `ns`, and moves back even if `f` panics.
fn in_ns<T>(ns: &str, f: impl FnOnce() -> T) -> T {
    struct Back(File);
    impl Drop for Back {
        fn drop(&mut self) {
            move_into_link_name_space(self.0.as_fd(), Some(LinkNameSpaceType::Network))
                .expect("back to the test's namespace");
        }
    }
    let back = Back(File::open("/proc/thread-self/ns/net").expect("own namespace"));
    let target = File::open(format!("/run/netns/{ns}")).expect("namespace file");
    move_into_link_name_space(target.as_fd(), Some(LinkNameSpaceType::Network)).expect("setns");
    let out = f();
    drop(back);
    out
}

fn bind(ns: &str, addr: SocketAddr) -> UdpSocket {
    let s = in_ns(ns, || UdpSocket::bind(addr)).expect("bind");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 2048];
    match s.recv_from(&mut buf) {
        Ok((n, from)) => {
            buf.truncate(n);
            Some((buf, from))
        }
        Err(_) => None,
    }
}

/// Nothing more arrives on `s` within a short while.
fn quiet(s: &UdpSocket) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let got = recv(s);
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    got.is_none()
}

/// `SO_NO_CHECK`: send IPv4 UDP without a checksum (0), as RFC 768 allows (no safe
/// wrapper offers this option).
#[allow(unsafe_code)]
fn set_no_checksum(s: &UdpSocket, on: bool) {
    use std::os::fd::AsRawFd as _;
    let value = libc::c_int::from(on);
    // SAFETY: `s` owns a live socket for the call; `value` is a c_int alive across it
    // and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            std::ptr::from_ref(&value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_NO_CHECK: {}", std::io::Error::last_os_error());
}

fn channel_data(channel: u16, data: &[u8]) -> Vec<u8> {
    let mut m = channel.to_be_bytes().to_vec();
    m.extend_from_slice(&u16::try_from(data.len()).expect("short").to_be_bytes());
    m.extend_from_slice(data);
    m
}

/// Bytes that differ per size and position, so a moved or dropped byte shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// One family's addresses and sockets.
struct Side {
    client: SocketAddr,
    server: SocketAddr,
    relay: SocketAddr,
    peer: SocketAddr,
    cli: UdpSocket,
    srv_server: UdpSocket,
    srv_relay: UdpSocket,
    peer_sock: UdpSocket,
    /// Largest application payload the peer gets in one datagram (40 or 20 bytes of
    /// IP header, 8 of UDP within the 1500 MTU).
    to_peer_max: usize,
    /// Largest the client gets (and sends) in one ChannelData datagram.
    to_client_max: usize,
    /// Largest application payload both ways.
    max: usize,
    alloc: u32,
}

impl Side {
    /// A client in `client_v6`'s family (its server address in the same) whose relayed
    /// address and peer are in `peer_v6`'s, on the ports plus `ports`.
    fn new(lab: &Lab, client_v6: bool, peer_v6: bool, ports: u16, alloc: u32) -> Self {
        let ip = |v6: bool, v4: &str, v6a: &str| -> IpAddr {
            if v6 {
                v6a.parse().expect("ip")
            } else {
                v4.parse().expect("ip")
            }
        };
        let client = SocketAddr::new(
            ip(client_v6, "198.18.1.2", "2001:db8:1::2"),
            CLIENT_PORT + ports,
        );
        let server = SocketAddr::new(
            ip(client_v6, "198.18.1.1", "2001:db8:1::1"),
            SERVER_PORT + ports,
        );
        let relay = SocketAddr::new(
            ip(peer_v6, "198.18.2.1", "2001:db8:2::1"),
            RELAY_PORT + ports,
        );
        let peer = SocketAddr::new(
            ip(peer_v6, "198.18.2.2", "2001:db8:2::2"),
            PEER_PORT + ports,
        );
        Self::with(lab, &lab.peer, [client, server, relay, peer], alloc)
    }

    /// Sockets for `client`, `server`, `relay` and `peer` (in that order; the peer's in
    /// namespace `peer_ns`), and the largest payloads their families allow.
    fn with(lab: &Lab, peer_ns: &str, addrs: [SocketAddr; 4], alloc: u32) -> Self {
        let [client, server, relay, peer] = addrs;
        let header = |a: SocketAddr| if a.is_ipv6() { V6_HEADER } else { V4_HEADER };
        let to_peer_max = MTU - header(peer) - 8;
        let to_client_max = MTU - header(client) - 8 - 4;
        Self {
            cli: bind(&lab.cli, client),
            srv_server: bind(&lab.srv, server),
            srv_relay: bind(&lab.srv, relay),
            peer_sock: bind(peer_ns, peer),
            client,
            server,
            relay,
            peer,
            to_peer_max,
            to_client_max,
            max: to_peer_max.min(to_client_max),
            alloc,
        }
    }

    fn install(&self, off: &mut Offload, srv: &str, channel: u16, deadline: Instant) {
        self.install_with(off, srv, channel, deadline, |_| {});
    }

    /// As `install`, with `edit` applied to both routes.
    fn install_with(
        &self,
        off: &mut Offload,
        srv: &str,
        channel: u16,
        deadline: Instant,
        edit: impl Fn(&mut Route),
    ) {
        let ns = off.clock().ns(deadline);
        // The routes out, as the server's namespace sees them (as turnpike asks them).
        let (to_peer, to_client) = in_ns(srv, || {
            (
                egress(self.relay.ip(), self.peer.ip()).expect("a route to the peer"),
                egress(self.server.ip(), self.client.ip()).expect("a route to the client"),
            )
        });
        let mut fwd = Route::new(self.relay, self.peer, 0, true, ns, self.alloc, to_peer);
        let mut rev = Route::new(
            self.server,
            self.client,
            channel,
            false,
            ns,
            self.alloc,
            to_client,
        );
        edit(&mut fwd);
        edit(&mut rev);
        off.insert_forward(&FwdKey::new(self.client, self.server, channel), &fwd)
            .expect("FWD");
        off.insert_reverse(&RevKey::new(self.peer, self.relay), &rev)
            .expect("REV");
    }

    /// Client → peer over the channel: the peer gets exactly `data` from the relay.
    fn to_peer(&self, data: &[u8]) {
        self.cli
            .send_to(&channel_data(CHANNEL, data), self.server)
            .expect("send");
        let (got, from) = recv(&self.peer_sock)
            .unwrap_or_else(|| panic!("{} bytes to the peer were not relayed", data.len()));
        assert_eq!(from, self.relay, "source of the relayed datagram");
        assert!(
            got == data,
            "{} bytes to the peer arrived changed",
            data.len()
        );
    }

    /// Peer → client: the client gets ChannelData on the channel from the server.
    fn to_client(&self, data: &[u8]) {
        self.peer_sock.send_to(data, self.relay).expect("send");
        let (got, from) = recv(&self.cli)
            .unwrap_or_else(|| panic!("{} bytes to the client were not relayed", data.len()));
        assert_eq!(from, self.server, "source of the relayed datagram");
        assert!(
            got == channel_data(CHANNEL, data),
            "{} bytes to the client arrived changed",
            data.len()
        );
    }
}

/// Sends and checks all sizes both ways; returns the bytes each way.
///
/// Into IPv6 it also sends a datagram whose UDP checksum comes out 0 there, which
/// must leave as 0xFFFF (RFC 8200 §8.1: the receiver drops a 0).
fn sweep(side: &Side) -> AllocCounters {
    let sizes = [1, 3, 120, 1200, side.max];
    let mut c = AllocCounters::default();
    for (i, &n) in sizes.iter().enumerate() {
        side.to_peer(&pattern(n, i as u8));
        side.to_client(&pattern(n, 100 + i as u8));
        c.to_peer_packets += 1;
        c.to_peer_bytes += n as u64;
        c.to_client_packets += 1;
        c.to_client_bytes += n as u64;
    }
    const ZERO_SUM_LEN: usize = 200;
    if side.peer.is_ipv6() {
        side.to_peer(&zero_sum(side.relay, side.peer, &[], ZERO_SUM_LEN));
        c.to_peer_packets += 1;
        c.to_peer_bytes += ZERO_SUM_LEN as u64;
    }
    if side.client.is_ipv6() {
        let head = channel_data(CHANNEL, &[0; ZERO_SUM_LEN]);
        side.to_client(&zero_sum(
            side.server,
            side.client,
            &head[..4],
            ZERO_SUM_LEN,
        ));
        c.to_client_packets += 1;
        c.to_client_bytes += ZERO_SUM_LEN as u64;
    }
    c
}

/// `len` (even) bytes of data such that the IPv6 UDP datagram from `src` to `dst`
/// carrying `head` then the data sums to 0xFFFF without its checksum field, so its
/// computed checksum is 0 (RFC 768's one's complement sum, RFC 8200 §8.1's
/// pseudo-header).
fn zero_sum(src: SocketAddr, dst: SocketAddr, head: &[u8], len: usize) -> Vec<u8> {
    assert!(len >= 2 && len.is_multiple_of(2) && head.len().is_multiple_of(2));
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv6 only");
    };
    let mut data = pattern(len, 42);
    data[len - 2..].fill(0);
    let udp_len = u16::try_from(8 + head.len() + len).expect("short");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&s.octets());
    bytes.extend_from_slice(&d.octets());
    bytes.extend_from_slice(&u32::from(udp_len).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 17]);
    bytes.extend_from_slice(&src.port().to_be_bytes());
    bytes.extend_from_slice(&dst.port().to_be_bytes());
    bytes.extend_from_slice(&udp_len.to_be_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(&data);
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Adding 0xFFFF - sum brings the folded sum to 0xFFFF, the checksum to 0.
    let fill = u16::try_from(0xffff - sum).expect("folded");
    data[len - 2..].copy_from_slice(&fill.to_be_bytes());
    data
}

#[test]
fn relays_both_ways_with_and_without_checksum_offload() {
    relays_both_ways(Hook::Tc, "relay");
}

#[test]
fn relays_both_ways_at_native_xdp() {
    relays_both_ways(Hook::Xdp(XdpAttach::Native), "xdp");
}

#[test]
fn relays_both_ways_at_generic_xdp() {
    relays_both_ways(Hook::Xdp(XdpAttach::Generic), "xdpg");
}

/// Puts the Ethernet addresses of the server's neighbours (the client and the peer, in
/// both families) in `NEIGH`, once the kernel has them confirmed: nothing has been sent
/// to them from `srv` yet (their own solicitations left at most STALE entries), so it
/// is asked to (`use_neighbour`).
fn resolve_neighbours(off: &mut Offload, lab: &Lab, sides: &[&Side]) {
    for side in sides {
        for (src, dst) in [(side.server, side.client), (side.relay, side.peer)] {
            let hop = in_ns(&lab.srv, || {
                let e = egress(src.ip(), dst.ip()).expect("route");
                use_neighbour(e.ifindex, e.next_hop).expect("use");
                // IPv6 takes a second or two here: the veths' link-local addresses
                // are still tentative.
                let deadline = Instant::now() + 4 * WAIT;
                loop {
                    let hop = ethernet_hop(e.ifindex, e.next_hop).expect("netlink");
                    match hop {
                        Some(hop) if hop.fresh => {
                            break (NeighKey::new(e.ifindex, e.next_hop), hop);
                        }
                        _ if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        _ => panic!("{} not resolved", e.next_hop),
                    }
                }
            });
            off.insert_neigh(
                &hop.0,
                &Neigh {
                    dst: hop.1.dst,
                    src: hop.1.src,
                },
            )
            .expect("NEIGH");
        }
    }
}

fn relays_both_ways(hook: Hook, tag: &str) {
    if !is_root() {
        eprintln!("skipped: the namespace test needs root (ip netns, BPF)");
        return;
    }
    let xdp = matches!(hook, Hook::Xdp(_));
    let lab = Lab::new(tag);
    if xdp {
        lab.receivers_gro();
    }
    // At XDP the senders' checksums must be complete (see the module's doc).
    let sender_offload: &[bool] = if xdp { &[false] } else { &[true, false] };
    let v4 = Side::new(&lab, false, false, 0, 1);
    let v6 = Side::new(&lab, true, true, 0, 2);
    let v4_v6 = Side::new(&lab, false, true, V4_TO_V6_PORTS, 3);
    let v6_v4 = Side::new(&lab, true, false, V6_TO_V4_PORTS, 4);
    let sides = [&v4, &v6, &v4_v6, &v6_v4];
    let ifaces = ["c0".to_owned(), "p0".to_owned()];

    // Load, drop (detaches), load again: the second load must work, and in between
    // nothing relays (the datagram reaches the server's own socket).
    let first = in_ns(&lab.srv, || Offload::load(&ifaces, hook)).expect("first load");
    drop(first);
    v4.cli
        .send_to(&channel_data(CHANNEL, b"after drop"), v4.server)
        .expect("send");
    let (got, _) = recv(&v4.srv_server).expect("user space gets it after the drop");
    assert_eq!(got, channel_data(CHANNEL, b"after drop"));
    let mut off = in_ns(&lab.srv, || Offload::load(&ifaces, hook)).expect("second load");
    assert_eq!(off.hook(), hook);

    let now = Instant::now();
    for side in sides {
        assert!(off.insert_alloc(side.alloc, 0, now).expect("alloc"));
        assert!(!off.insert_alloc(side.alloc, 0, now).expect("alloc again"));
        side.install(&mut off, &lab.srv, CHANNEL, now + Duration::from_secs(120));
    }
    if xdp {
        // Without the next hop's Ethernet addresses the datagram goes to user space.
        let msg = channel_data(CHANNEL, b"no neighbour");
        v4.cli.send_to(&msg, v4.server).expect("send");
        assert_eq!(
            recv(&v4.srv_server).expect("no neighbour: user space").0,
            msg
        );
        assert_eq!(off.stats().expect("stats").pass_neigh, 1);
        resolve_neighbours(&mut off, &lab, &sides);
    }

    let errors_before = lab.all_csum_errors();
    let mut expect = [AllocCounters::default(); 4];
    for &offload in sender_offload {
        lab.sender_offload(offload);
        eprintln!("sender tx checksum offload {offload}");
        for (side, e) in sides.into_iter().zip(expect.iter_mut()) {
            let c = sweep(side);
            e.to_peer_packets += c.to_peer_packets;
            e.to_peer_bytes += c.to_peer_bytes;
            e.to_client_packets += c.to_client_packets;
            e.to_client_bytes += c.to_client_bytes;
            assert_eq!(
                off.alloc_counters(side.alloc).expect("counters"),
                Some(*e),
                "counters after the sweep with offload {offload}"
            );
        }
        for side in sides {
            assert!(
                quiet(&side.srv_server) && quiet(&side.srv_relay),
                "relayed datagrams must not also reach the server's sockets"
            );
        }
        assert_eq!(
            lab.all_csum_errors(),
            errors_before,
            "UDP checksum errors with sender offload {offload}"
        );
    }

    // What must reach user space untouched, in both families and across them.
    let stats_before = off.stats().expect("stats");
    for side in sides {
        // Padded ChannelData (length 3 in an 8-byte payload).
        let padded = [0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0];
        side.cli.send_to(&padded, side.server).expect("send");
        assert_eq!(
            recv(&side.srv_server).expect("padded to user space").0,
            padded
        );
        // An unknown channel.
        let unknown = channel_data(0x4002, b"nobody");
        side.cli.send_to(&unknown, side.server).expect("send");
        assert_eq!(recv(&side.srv_server).expect("unknown channel").0, unknown);
        // STUN (first byte 0x00).
        let stun = [
            0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        side.cli.send_to(&stun, side.server).expect("send");
        assert_eq!(recv(&side.srv_server).expect("STUN").0, stun);
        // One byte too big for the way out in the family it leaves in: p0 → c0
        // once the header is added (or the IPv6 header replaces the IPv4 one), or
        // c0 → p0 into IPv6 from an IPv4 client, whose own datagram still fits.
        if side.to_peer_max < side.to_client_max {
            let big = channel_data(CHANNEL, &pattern(side.to_peer_max + 1, 7));
            side.cli.send_to(&big, side.server).expect("send");
            assert_eq!(
                recv(&side.srv_server).expect("too big to user space").0,
                big
            );
        } else {
            let big = pattern(side.to_client_max + 1, 7);
            side.peer_sock.send_to(&big, side.relay).expect("send");
            assert_eq!(recv(&side.srv_relay).expect("too big to user space").0, big);
        }
        assert!(
            quiet(&side.cli) && quiet(&side.peer_sock),
            "nothing relayed"
        );
    }
    // An expired route (deadline now, already past when the datagram arrives).
    let expired = Instant::now();
    v4.install(&mut off, &lab.srv, 0x4003, expired);
    let msg = channel_data(0x4003, b"late");
    v4.cli.send_to(&msg, v4.server).expect("send");
    assert_eq!(recv(&v4.srv_server).expect("expired to user space").0, msg);
    // Restore the live REV route (install overwrote it with the expired one).
    v4.install(&mut off, &lab.srv, CHANNEL, now + Duration::from_secs(120));
    let after = off.stats().expect("stats");
    assert_eq!(
        after.pass_unfit - stats_before.pass_unfit,
        4,
        "padded, once per side"
    );
    assert_eq!(after.pass_too_big - stats_before.pass_too_big, 4);
    assert_eq!(after.pass_expired - stats_before.pass_expired, 1);

    // UDP without a checksum (0, IPv4 only): relayed within IPv4 as it is, but
    // towards IPv6, where 0 is not allowed (RFC 8200 §8.1), left to user space.
    for &offload in sender_offload {
        lab.sender_offload(offload);
        let before = off.stats().expect("stats");
        let data = pattern(300, 9);
        let msg = channel_data(CHANNEL, &data);
        for s in [&v4.cli, &v4_v6.cli, &v6_v4.peer_sock] {
            set_no_checksum(s, true);
        }
        v4.cli.send_to(&msg, v4.server).expect("send");
        assert_eq!(recv(&v4.peer_sock).expect("v4 → v4 unsummed").0, data);
        expect[0].to_peer_packets += 1;
        expect[0].to_peer_bytes += data.len() as u64;
        v4_v6.cli.send_to(&msg, v4_v6.server).expect("send");
        assert_eq!(recv(&v4_v6.srv_server).expect("v4 → v6 unsummed").0, msg);
        v6_v4.peer_sock.send_to(&data, v6_v4.relay).expect("send");
        assert_eq!(recv(&v6_v4.srv_relay).expect("v4 → v6 unsummed").0, data);
        for s in [&v4.cli, &v4_v6.cli, &v6_v4.peer_sock] {
            set_no_checksum(s, false);
        }
        assert!(
            quiet(&v4_v6.peer_sock) && quiet(&v6_v4.cli),
            "nothing relayed"
        );
        let after = off.stats().expect("stats");
        assert_eq!(after.pass_unfit - before.pass_unfit, 2, "offload {offload}");
    }
    let after = off.stats().expect("stats");
    for (side, e) in sides.into_iter().zip(expect.iter()) {
        assert_eq!(off.alloc_counters(side.alloc).expect("counters"), Some(*e));
    }
    let sum = |f: fn(&AllocCounters) -> u64| expect.iter().map(f).sum::<u64>();
    let total = ProgramStats {
        to_peer_packets: sum(|e| e.to_peer_packets),
        to_peer_bytes: sum(|e| e.to_peer_bytes),
        to_client_packets: sum(|e| e.to_client_packets),
        to_client_bytes: sum(|e| e.to_client_bytes),
        ..after
    };
    assert_eq!(after, total, "program totals equal the bytes sent");
    assert_eq!(after.drop_error, 0);
    assert_eq!(after.pass_fib, 0);

    // A route whose allocation is missing passes; removing the allocation returns
    // its final counters.
    let gone = off.remove_alloc(v4.alloc).expect("remove");
    assert_eq!(gone, Some(expect[0]));
    assert_eq!(off.remove_alloc(v4.alloc).expect("remove again"), None);
    let msg = channel_data(CHANNEL, b"no alloc");
    v4.cli.send_to(&msg, v4.server).expect("send");
    assert_eq!(recv(&v4.srv_server).expect("no alloc to user space").0, msg);
    assert!(
        off.remove_forward(&FwdKey::new(v4.client, v4.server, CHANNEL))
            .expect("rm")
    );
    assert!(
        !off.remove_forward(&FwdKey::new(v4.client, v4.server, CHANNEL))
            .expect("rm")
    );

    // A rate-limited allocation: 1000 bytes/s, a full bucket of 1000 at the start.
    // Five 400-byte datagrams sent at once: two fit, three are dropped in the kernel.
    assert!(off.insert_alloc(9, 1000, Instant::now()).expect("alloc"));
    let limited = Side {
        alloc: 9,
        ..Side::new_reusing(&v6)
    };
    let until = Instant::now() + Duration::from_secs(120);
    limited.install_with(&mut off, &lab.srv, CHANNEL, until, |r| r.rate = 1000);
    let before = off.stats().expect("stats");
    for i in 0..5u8 {
        limited
            .cli
            .send_to(&channel_data(CHANNEL, &pattern(400, i)), limited.server)
            .expect("send");
    }
    let mut received = 0;
    while let Some((got, _)) = recv_short(&limited.peer_sock) {
        assert_eq!(got.len(), 400);
        received += 1;
        assert!(received <= 5);
    }
    let after = off.stats().expect("stats");
    assert_eq!(
        received, 2,
        "the bucket lets two 400-byte datagrams through"
    );
    assert_eq!(after.drop_bucket - before.drop_bucket, 3);
    assert!(
        quiet(&limited.srv_server),
        "dropped, not passed to user space"
    );
    let c = off.alloc_counters(9).expect("counters").expect("exists");
    assert_eq!((c.to_peer_packets, c.to_peer_bytes), (2, 800));
    // A new cap comes with the routes: uncapped, the rest goes through, and the
    // allocation's counters are untouched by the change.
    limited.install_with(&mut off, &lab.srv, CHANNEL, until, |r| r.rate = 0);
    limited.to_peer(&pattern(1000, 3));
    let c = off.alloc_counters(9).expect("counters").expect("exists");
    assert_eq!((c.to_peer_packets, c.to_peer_bytes), (3, 1800));
    assert_eq!(lab.all_csum_errors(), errors_before);
}

fn recv_short(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let got = recv(s);
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    got
}

impl Side {
    /// The same addresses and sockets (cloned handles) under another allocation.
    fn new_reusing(other: &Self) -> Self {
        Self {
            client: other.client,
            server: other.server,
            relay: other.relay,
            peer: other.peer,
            cli: other.cli.try_clone().expect("clone"),
            srv_server: other.srv_server.try_clone().expect("clone"),
            srv_relay: other.srv_relay.try_clone().expect("clone"),
            peer_sock: other.peer_sock.try_clone().expect("clone"),
            to_peer_max: other.to_peer_max,
            to_client_max: other.to_client_max,
            max: other.max,
            alloc: other.alloc,
        }
    }
}

#[test]
fn load_errors_are_typed() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let err = Offload::load(&["tpo-no-such-if".to_owned()], Hook::Tc).expect_err("no interface");
    assert!(
        matches!(err, turnpike_offload::OffloadError::InterfaceMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tpo-no-such-if"));
}

/// At XDP, a peer reached by the interface the client's datagram came in by, both ways,
/// as on a cloud VM with one NIC: on a veth by `bpf_redirect` to itself (its route
/// flagged `ROUTE_VETH`); then by `XDP_TX`, as on a NIC, once the veth's peer has an XDP
/// program of its own (a second, empty fast path), without which a veth does not deliver
/// `XDP_TX` frames until something else wakes its peer.
#[test]
fn relays_back_out_of_the_same_interface_at_xdp() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let lab = Lab::new("xtx");
    lab.receivers_gro();
    lab.sender_offload(false);
    run(&[
        "ip",
        "-n",
        &lab.cli,
        "addr",
        "add",
        "198.18.1.3/24",
        "dev",
        "eth0",
    ]);
    let ports = 300;
    let at = |ip: &str, port: u16| SocketAddr::new(ip.parse().expect("ip"), port + ports);
    let (client, server) = (at("198.18.1.2", CLIENT_PORT), at("198.18.1.1", SERVER_PORT));
    let (relay, peer) = (at("198.18.1.1", RELAY_PORT), at("198.18.1.3", PEER_PORT));
    let side = Side::with(&lab, &lab.cli, [client, server, relay, peer], 1);
    let hook = Hook::Xdp(XdpAttach::Native);
    let mut off = in_ns(&lab.srv, || Offload::load(&["c0".to_owned()], hook)).expect("load");
    let now = Instant::now();
    assert!(off.insert_alloc(side.alloc, 0, now).expect("alloc"));
    side.install(&mut off, &lab.srv, CHANNEL, now + Duration::from_secs(120));
    resolve_neighbours(&mut off, &lab, &[&side]);
    let c = sweep(&side);
    assert_eq!(off.alloc_counters(side.alloc).expect("counters"), Some(c));
    assert!(quiet(&side.srv_server) && quiet(&side.srv_relay));

    let _peer_program = in_ns(&lab.cli, || Offload::load(&["eth0".to_owned()], hook))
        .expect("an empty fast path on the client's veth");
    side.install_with(
        &mut off,
        &lab.srv,
        CHANNEL,
        now + Duration::from_secs(120),
        |r| r.flags &= !ROUTE_VETH,
    );
    let again = sweep(&side);
    let total = AllocCounters {
        to_peer_packets: c.to_peer_packets + again.to_peer_packets,
        to_peer_bytes: c.to_peer_bytes + again.to_peer_bytes,
        to_client_packets: c.to_client_packets + again.to_client_packets,
        to_client_bytes: c.to_client_bytes + again.to_client_bytes,
    };
    assert_eq!(
        off.alloc_counters(side.alloc).expect("counters"),
        Some(total)
    );
    assert!(quiet(&side.srv_server) && quiet(&side.srv_relay));
    assert_eq!(lab.all_csum_errors(), 0);
}

/// A user's traffic budget in `USERS` is charged by the program with the same steps as
/// user space (`crates/proto/src/budget.rs`), on the same counters: what user space
/// already counted in the window or period counts against the kernel's datagrams, and
/// what is over is dropped and counted as dropped for the user.
#[test]
fn the_program_charges_the_users_budget_user_space_shares() {
    use std::sync::atomic::Ordering::Relaxed;
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let lab = Lab::new("user");
    let side = Side::new(&lab, false, false, 400, 1);
    let ifaces = ["c0".to_owned(), "p0".to_owned()];
    let mut off = in_ns(&lab.srv, || Offload::load(&ifaces, Hook::Tc)).expect("load");
    let now = Instant::now();
    assert!(off.insert_alloc(side.alloc, 0, now).expect("alloc"));
    side.install_with(
        &mut off,
        &lab.srv,
        CHANNEL,
        now + Duration::from_secs(120),
        |r| r.user = 8,
    );
    let users = off.users();
    let slot = users.get(7).expect("slot 7");
    assert!(users.get(users.len()).is_none());
    // Words: window, window packets, window bytes, period, period bytes, dropped, then
    // packets/s, bytes/s, bytes per period, period ns.
    let start = off.clock().ns(Instant::now());
    slot[0].store(start, Relaxed);
    slot[3].store(start, Relaxed);
    slot[6].store(4, Relaxed);
    // User space relayed one datagram of the user's in this second already.
    slot[1].store(1, Relaxed);
    for i in 0..5u8 {
        side.cli
            .send_to(&channel_data(CHANNEL, &pattern(100, i)), side.server)
            .expect("send");
    }
    let mut received = 0;
    while recv_short(&side.peer_sock).is_some() {
        received += 1;
    }
    assert_eq!(received, 3, "4 a second, one taken by user space");
    assert_eq!(off.stats().expect("stats").drop_user, 2);
    assert_eq!(slot[5].load(Relaxed), 2, "dropped, for the user");
    assert_eq!(
        slot[1].load(Relaxed),
        6,
        "every datagram counted in the window"
    );
    assert!(quiet(&side.srv_server), "dropped, not passed to user space");

    // The period's bytes: 1000, of which user space used 500.
    slot[6].store(0, Relaxed);
    slot[8].store(1000, Relaxed);
    slot[9].store(60_000_000_000, Relaxed);
    slot[4].store(500, Relaxed);
    side.to_peer(&pattern(400, 1));
    side.cli
        .send_to(&channel_data(CHANNEL, &pattern(200, 2)), side.server)
        .expect("send");
    assert!(recv_short(&side.peer_sock).is_none(), "900 + 200 > 1000");
    assert_eq!(
        slot[4].load(Relaxed),
        900,
        "the refused datagram is not counted"
    );
    assert_eq!(slot[5].load(Relaxed), 3);
    assert_eq!(off.stats().expect("stats").drop_user, 3);
    // The allocation's own counters hold only what was relayed.
    let c = off
        .alloc_counters(side.alloc)
        .expect("counters")
        .expect("exists");
    assert_eq!((c.to_peer_packets, c.to_peer_bytes), (4, 700));
}
