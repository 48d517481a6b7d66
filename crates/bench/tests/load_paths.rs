//! End-to-end tests of the load engine's send paths (plain, sendmmsg, one shared socket
//! with `IP_PKTINFO` sources, UDP GSO), its TCP and TLS transports and client-to-client
//! mode, against the real turnpike server on loopback.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ServerProcess, bench, bench_fails, credentials, serial, test_dir};
use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};
use turnpike_bench::TurnClient;
use turnpike_bench::load::{Mode, RunParams, Session, SessionConfig, Shape, Target, To};
use turnpike_stun::{ChannelNumber, write_channel_data_header};
use turnpike_udp::SendBuffer;

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// A `load` run's JSON report.
fn load(args: &[&str]) -> Value {
    let mut all = vec!["load", "--secret", "S", "--json", "--quiet"];
    all.extend_from_slice(args);
    let out = bench(&all, Duration::from_secs(30));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A short `load` run against `server`: `clients` clients, 200 packets/s for half a
/// second, and `extra`.
fn short_load(server: &str, clients: &str, extra: &[&str]) -> Value {
    let args = [
        "--server",
        server,
        "--clients",
        clients,
        "--rate",
        "200",
        "--duration",
        "0.5",
        // Ends at once when everything has arrived; the rest is room for a stalled
        // CI machine.
        "--drain-ms",
        "3000",
    ];
    load(&[&args[..], extra].concat())
}

/// Asserts a report delivered everything it sent (at least `min_sent`).
fn no_loss(v: &Value, min_sent: f64) {
    assert!(num(v, "sent") >= min_sent, "{v}");
    assert_eq!(num(v, "lost"), 0.0, "{v}");
    assert_eq!(num(v, "delivered"), num(v, "sent"), "{v}");
    assert_eq!(num(v, "send_errors"), 0.0, "{v}");
    let p50 = v["latency"]["p50_us"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 < 50_000.0, "{v}");
}

fn bind_reuse(addr: SocketAddr) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.into()
}

fn channel_data(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 4 + payload.len()];
    write_channel_data_header(&mut frame, ChannelNumber::MIN, payload.len()).unwrap();
    frame[4..].copy_from_slice(payload);
    frame
}

/// The shared send path's premise: a datagram sent on a wildcard socket with the
/// client's own address as its `IP_PKTINFO` source reaches the server on the client's
/// 5-tuple (relayed), while the same datagram from any other source is dropped (no
/// allocation).
#[test]
fn pktinfo_source_is_the_clients_five_tuple() {
    let _serial = serial();
    let server = ServerProcess::start("pktinfo", "41400-41449");
    let credentials = credentials("pktinfo");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let shared = bind_reuse(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let port = shared.local_addr().unwrap().port();
    let me = Ipv4Addr::new(127, 0, 1, 200);
    let control = bind_reuse(SocketAddr::from((me, port)));
    let mut c = TurnClient::from_socket(control, server.udp, &credentials).unwrap();
    let relayed = c.allocate(None).unwrap();
    assert_eq!(c.mapped(), Some(SocketAddr::from((me, port))));
    c.channel_bind(ChannelNumber::MIN, peer.local_addr().unwrap())
        .unwrap();

    let send = |src: Option<Ipv4Addr>, payload: &[u8]| {
        let frame = channel_data(payload);
        let mut b = SendBuffer::new(4, 64);
        b.push(&frame, &[], Some(server.udp), src).unwrap();
        assert_eq!(b.send(&shared).sent, 1);
    };
    let mut buf = [0u8; 64];
    send(Some(me), b"mine");
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("relayed from the client's address");
    assert_eq!((&buf[..n], from), (&b"mine"[..], relayed));

    // Another loopback source, and the socket's own (127.0.0.1): no allocation there.
    send(Some(Ipv4Addr::new(127, 0, 1, 201)), b"other");
    send(None, b"none");
    assert!(
        peer.recv_from(&mut buf).is_err(),
        "relayed: {:?}",
        &buf[..4]
    );
    // The server is still there: the client's own source is relayed again.
    send(Some(me), b"again");
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"again");
    c.close().unwrap();
}

#[test]
fn every_send_path_delivers_everything() {
    let _serial = serial();
    let server = ServerProcess::start("paths", "41450-41499");
    let addr = server.udp.to_string();
    for path in ["plain", "mmsg", "shared"] {
        let v = short_load(&addr, "3", &["--send-path", path]);
        no_loss(&v, 280.0);
        assert_eq!(v["send_path"], path);
        assert_eq!(v["transport"], "udp");
        assert_eq!(num(&v, "receiver_drops"), 0.0);
    }
    // Loopback IPv4: shared by default. Video-like bursts of 20: each client's burst goes
    // as one GSO message, many clients per sendmmsg.
    let v = load(&[
        "--server",
        &addr,
        "--clients",
        "4",
        "--rate",
        "400",
        "--shape",
        "bursty",
        "--fps",
        "20",
        "--duration",
        "0.5",
        "--mode",
        "send",
    ]);
    no_loss(&v, 700.0);
    assert_eq!(v["send_path"], "shared");
    assert_eq!(v["mode"], "send");
    assert!(num(&v, "send_batch_mean") > 1.0, "{v}");
}

/// Makes a CA and a server certificate for 127.0.0.1 and turn.test signed by it, with
/// openssl; returns (ca, cert, key).
fn make_certs(dir: &Path) -> (String, String, String) {
    let run = |args: &str| {
        let ok = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl {args}");
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run(&format!(
        "req -x509 {ec} -days 1 -subj /CN=bench-ca -keyout ca.key -out ca.pem"
    ));
    run(&format!(
        "req {ec} -subj /CN=127.0.0.1 -keyout key.pem -out leaf.csr"
    ));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:turn.test\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
         -extfile ext.cnf -out cert.pem",
    );
    let p = |f: &str| dir.join(f).display().to_string();
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

#[test]
fn tcp_and_tls_transports() {
    let _serial = serial();
    let dir = test_dir("tls-certs");
    let (ca, cert, key) = make_certs(&dir);
    let listen = format!(
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\n[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n"
    );
    let server = ServerProcess::start_with("streams", "41500-41549", &listen);
    let tcp = server.tcp.expect("a TCP listener").to_string();
    let with = |extra: &[&str]| short_load(&tcp, "3", extra);

    let v = with(&["--transport", "tcp"]);
    no_loss(&v, 280.0);
    assert_eq!(
        (&v["transport"], &v["send_path"]),
        (&"tcp".into(), &"stream".into())
    );
    // Bursts: several frames per write, ChannelData padded to 4 bytes (121-byte payloads).
    let v = with(&[
        "--transport",
        "tcp",
        "--size",
        "121",
        "--shape",
        "bursty",
        "--fps",
        "10",
    ]);
    no_loss(&v, 280.0);
    let v = with(&["--transport", "tls", "--ca", &ca]);
    no_loss(&v, 280.0);
    assert_eq!(v["transport"], "tls");
    let v = with(&[
        "--transport",
        "tls",
        "--ca",
        &ca,
        "--tls-name",
        "turn.test",
        "--mode",
        "send",
        "--size",
        "121",
    ]);
    no_loss(&v, 280.0);
    let v = with(&["--transport", "tls", "--insecure"]);
    no_loss(&v, 280.0);

    // A name the certificate does not carry is refused.
    let out = bench_fails(&[
        "load",
        "--secret",
        "S",
        "--quiet",
        "--transport",
        "tls",
        "--ca",
        &ca,
        "--tls-name",
        "other.test",
        "--server",
        &tcp,
        "--duration",
        "0.2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not valid for name"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_to_client_both_directions() {
    let _serial = serial();
    let listen = "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\n";
    let server = ServerProcess::start_with("c2c", "41550-41599", listen);
    let udp = server.udp.to_string();
    let tcp = server.tcp.expect("a TCP listener").to_string();
    for (addr, extra) in [
        (&udp, &[][..]),
        (&udp, &["--send-path", "mmsg", "--mode", "send"]),
        (&udp, &["--send-path", "plain", "--peers", "2"]),
        (&tcp, &["--transport", "tcp"]),
        (&tcp, &["--transport", "tcp", "--mode", "send"]),
    ] {
        let v = short_load(addr, "4", &[&["--to", "clients"][..], extra].concat());
        no_loss(&v, 380.0);
        assert_eq!(v["to"], "clients", "{extra:?}");
        // Every client sent and every client's partner received: both directions.
        // The flows' first sends are staggered over one interval, so when the run
        // ends some have sent one datagram fewer than others (399 = 100 + 100 + 100
        // + 99); a dead direction would leave a flow near 0.
        let fair_share = (num(&v, "sent") / 4.0).floor();
        let min_delivered = num(&v["fairness"], "min_delivered");
        assert!(min_delivered >= fair_share - 1.0, "{extra:?}: {v}");
    }

    // Refreshes during a run go through the receiving threads (they read the clients'
    // sockets): every one succeeds and no data is lost.
    let target = Target::Turn {
        server: server.udp,
        credentials: credentials("c2c"),
    };
    let cfg = SessionConfig {
        to: To::Clients,
        ..SessionConfig::new(2, 1, Mode::Channel)
    };
    let mut session = Session::setup_with(&target, &cfg, &|_| {}).unwrap();
    session.set_refresh_every(Duration::from_millis(150));
    let r = session.run(
        &RunParams {
            rate: 200.0,
            size: 100,
            duration: Duration::from_millis(700),
            shape: Shape::Steady,
            fps: 30,
            drain: Duration::from_secs(2),
            max_packets: 10_000,
            recv_batch: 8,
        },
        &|_, _| {},
    );
    assert!(r.refreshes >= 4, "{r:?}");
    assert_eq!((r.lost, r.send_errors), (0, 0), "{r:?}");
    session.close();

    // An odd number of clients has no partner for the last one.
    let odd = SessionConfig {
        to: To::Clients,
        ..SessionConfig::new(3, 1, Mode::Channel)
    };
    assert!(Session::setup_with(&target, &odd, &|_| {}).is_err());
}
