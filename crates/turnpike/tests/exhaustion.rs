//! Exhaustion against the real binary (issue 16): a full relay port range, the
//! descriptor limit, and a client over its bandwidth cap.
//!
//! - Every port of a 10-port relay range taken: the next Allocate gets 508 (RFC 8656
//!   §7.2, "Insufficient Capacity"), and the range recovers as soon as an allocation ends.
//! - The process at its descriptor limit (`prlimit --pid` lowers RLIMIT_NOFILE of the
//!   running server): a new allocation gets 508, a new TCP connection is not served (the
//!   accept fails and is retried), and the live allocation keeps relaying; once
//!   allocations end, the waiting TCP connection is served and allocating works again.
//! - `[quotas] bandwidth_bytes_per_sec`: a client sending five times its cap is policed
//!   to the cap (a token bucket with one second of burst), and a client under the cap on
//!   the same server loses nothing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ServerProcess, binding_request, mapped_address};
use turnpike_bench::TurnClient;
use turnpike_bench::client::{ClientError, Credentials};
use turnpike_stun::ChannelNumber;

const SECRET: &str = "exhaustion-secret";

fn config(ports: &str, tcp: bool, extra: &str) -> String {
    let tcp = if tcp { "\"127.0.0.1:0\"" } else { "" };
    format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = [{tcp}]\n[turn]\nrealm = \"exhaustion.test\"\n\
         secrets = [\"{SECRET}\"]\n[relay]\nips = [\"127.0.0.1\"]\nports = \"{ports}\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n[runtime]\nworkers = 1\n{extra}"
    )
}

fn credentials(user: &str) -> Credentials {
    Credentials::Rest {
        secret: SECRET.into(),
        user: user.into(),
    }
}

fn allocate(server: &ServerProcess, user: &str) -> Result<TurnClient, ClientError> {
    let mut c = TurnClient::connect(server.udp[0], &credentials(user))?;
    c.allocate(None)?;
    Ok(c)
}

fn code(r: &Result<TurnClient, ClientError>) -> Option<u16> {
    match r {
        Err(ClientError::Rejected { code, .. }) => Some(*code),
        _ => None,
    }
}

#[test]
fn a_full_relay_port_range_answers_508_and_recovers_when_allocations_end() {
    let server = ServerProcess::start("exhaustion-ports", &config("29520-29529", false, ""));
    let mut held: Vec<TurnClient> = (0..10)
        .map(|i| allocate(&server, &format!("u{i}")).expect("a free port of the range"))
        .collect();
    let mut ports: Vec<u16> = held.iter().map(|c| c.relayed().unwrap().port()).collect();
    ports.sort_unstable();
    assert_eq!(
        ports,
        (29520..=29529).collect::<Vec<_>>(),
        "every port once"
    );
    // Full: 508, and again (nothing half-made is left behind by a refusal).
    for _ in 0..3 {
        let r = allocate(&server, "late");
        assert_eq!(code(&r), Some(508), "{:?}", r.err());
    }
    // One allocation ends: its port is free at once.
    let mut gone = held.swap_remove(3);
    let freed = gone.relayed().unwrap().port();
    gone.close().unwrap();
    let again = allocate(&server, "next").expect("the freed port");
    assert_eq!(again.relayed().unwrap().port(), freed);
    assert_eq!(code(&allocate(&server, "late")), Some(508));
    // All of them end: the whole range again.
    held.push(again);
    for mut c in held {
        c.close().unwrap();
    }
    let all: Vec<TurnClient> = (0..10)
        .map(|i| allocate(&server, &format!("v{i}")).expect("the range is free again"))
        .collect();
    assert_eq!(all.len(), 10);
    server.stop();
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Lowers the soft RLIMIT_NOFILE of the running process `pid` (the hard limit stays:
/// raising it again would need CAP_SYS_RESOURCE).
fn set_nofile(pid: u32, limit: usize) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit --pid {pid} --nofile={limit}");
}

/// Sends `n` ChannelData from `client` and counts what `peer` receives within 2 s.
fn relayed(client: &mut TurnClient, channel: ChannelNumber, peer: &UdpSocket, n: usize) -> usize {
    for i in 0..n {
        client
            .send_channel_data(channel, format!("packet {i}").as_bytes())
            .unwrap();
    }
    let mut got = 0;
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(2);
    while got < n && Instant::now() < deadline {
        if peer.recv_from(&mut buf).is_ok() {
            got += 1;
        }
    }
    got
}

/// A Binding request over a new TCP connection; its mapped address if answered within
/// `wait`.
fn tcp_binding(stream: &mut TcpStream, wait: Duration) -> Option<SocketAddr> {
    let tid = [7u8; 12];
    stream.write_all(&binding_request(tid)).ok()?;
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut head = [0u8; 20];
    stream.read_exact(&mut head).ok()?;
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut msg = head.to_vec();
    msg.resize(20 + len, 0);
    stream.read_exact(&mut msg[20..]).ok()?;
    Some(mapped_address(&msg, tid))
}

#[test]
fn at_the_descriptor_limit_new_work_is_refused_and_live_allocations_relay() {
    let server = ServerProcess::start("exhaustion-fds", &config("29530-29599", true, ""));
    let pid = server.pid();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let channel = ChannelNumber::new(0x4000).unwrap();
    let mut live = allocate(&server, "live").unwrap();
    live.channel_bind(channel, peer.local_addr().unwrap())
        .unwrap();
    assert_eq!(relayed(&mut live, channel, &peer, 20), 20);

    // A few descriptors to spare, then none: allocations until the first refusal.
    let open = open_descriptors(pid);
    set_nofile(pid, open + 4);
    let mut extra = Vec::new();
    let refused = loop {
        match allocate(&server, "extra") {
            Ok(c) => extra.push(c),
            Err(e) => break e,
        }
        // Four spare descriptor numbers (a few more if the table had holes).
        assert!(
            extra.len() <= 8,
            "allocations kept succeeding past the limit"
        );
    };
    eprintln!(
        "{open} descriptors open, soft limit {}: {} more allocations, then {refused:?}",
        open + 4,
        extra.len()
    );
    assert!(
        matches!(refused, ClientError::Rejected { code: 508, .. }),
        "out of descriptors: {refused:?}"
    );
    // New TCP work is not served: the kernel completes the handshake, the server cannot
    // accept it.
    let mut waiting = TcpStream::connect(server.tcp[0]).unwrap();
    assert_eq!(
        tcp_binding(&mut waiting, Duration::from_secs(1)),
        None,
        "served a TCP connection without a descriptor?"
    );
    // The live allocation relays as before and can be refreshed.
    assert_eq!(
        relayed(&mut live, channel, &peer, 50),
        50,
        "live flow lost data"
    );
    live.refresh(600).expect("a live allocation refreshes");
    // Allocations end: their descriptors come back, the waiting connection is accepted
    // and served, and allocating works again.
    for mut c in extra {
        c.close().unwrap();
    }
    // The accept is retried every 50 ms: the waiting connection is served now (its first
    // Binding's answer; the second one sent here has the same transaction ID).
    let mapped = tcp_binding(&mut waiting, Duration::from_secs(3));
    assert_eq!(
        mapped,
        Some(waiting.local_addr().unwrap()),
        "the waiting TCP connection"
    );
    let mut fresh = TcpStream::connect(server.tcp[0]).unwrap();
    let mapped = tcp_binding(&mut fresh, Duration::from_secs(3));
    assert_eq!(
        mapped,
        Some(fresh.local_addr().unwrap()),
        "TCP served again"
    );
    drop((waiting, fresh));
    std::thread::sleep(Duration::from_millis(200));
    let mut again = allocate(&server, "again").expect("allocating works again");
    again.close().unwrap();
    assert_eq!(relayed(&mut live, channel, &peer, 20), 20);
    server.stop();
}

/// Sends `rate` packets/s of `size` bytes on `client`'s channel for `secs`, from its own
/// thread; the peer's count of bytes received is in `received`.
fn flow(
    mut client: TurnClient,
    channel: ChannelNumber,
    size: usize,
    rate: u32,
    secs: u32,
) -> std::thread::JoinHandle<(u64, TurnClient)> {
    std::thread::spawn(move || {
        let payload = vec![0x5a; size];
        let start = Instant::now();
        let total = u64::from(rate * secs);
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            client.send_channel_data(channel, &payload).unwrap();
        }
        (total * size as u64, client)
    })
}

fn counting_peer() -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let (bytes, packets) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (b, p) = (Arc::clone(&bytes), Arc::clone(&packets));
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                b.fetch_add(n as u64, Ordering::Relaxed);
                p.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (addr, bytes, packets)
}

#[test]
fn a_client_over_its_bandwidth_cap_is_policed_without_touching_another_flow() {
    const CAP: u64 = 20_000;
    const SECS: u32 = 3;
    let extra = format!("[quotas]\nbandwidth_bytes_per_sec = {CAP}\n");
    let server = ServerProcess::start("exhaustion-bw", &config("29600-29609", false, &extra));
    let channel = ChannelNumber::new(0x4000).unwrap();
    let (heavy_peer, heavy_bytes, _) = counting_peer();
    let (light_peer, light_bytes, light_packets) = counting_peer();
    let mut heavy = allocate(&server, "heavy").unwrap();
    heavy.channel_bind(channel, heavy_peer).unwrap();
    let mut light = allocate(&server, "light").unwrap();
    light.channel_bind(channel, light_peer).unwrap();

    // Heavy: 1000 B x 100/s = 100 kB/s, five times the cap. Light: 100 B x 50/s = 5 kB/s.
    let h = flow(heavy, channel, 1000, 100, SECS);
    let l = flow(light, channel, 100, 50, SECS);
    let (heavy_sent, _heavy) = h.join().unwrap();
    let (light_sent, _light) = l.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let heavy_got = heavy_bytes.load(Ordering::Relaxed);
    let light_got = light_bytes.load(Ordering::Relaxed);
    eprintln!(
        "heavy sent {heavy_sent} B, delivered {heavy_got} B; light sent {light_sent} B \
         ({} packets delivered), delivered {light_got} B; cap {CAP} B/s over {SECS} s",
        light_packets.load(Ordering::Relaxed)
    );
    // The bucket starts full (one second) and refills at the cap: at most CAP x (SECS + 1)
    // (plus one packet of rounding), and not starved either.
    let most = CAP * (u64::from(SECS) + 1) + 1000;
    let least = CAP * u64::from(SECS) * 8 / 10;
    assert!(heavy_got <= most, "{heavy_got} B > {most} B: not policed");
    assert!(
        heavy_got >= least,
        "{heavy_got} B < {least} B: policed below its cap"
    );
    assert_eq!(light_got, light_sent, "the light flow lost data");
    server.stop();
}
