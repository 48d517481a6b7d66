//! A renewed TLS certificate is picked up without a signal (`[tls] watch_interval_secs`):
//! the files are changed in place, then swapped by symlink as Kubernetes does; no SIGHUP
//! is sent. A pair caught half-written (new certificate, old key) is reported and the
//! certificate in force stays; once the pair is whole, new TLS clients see the new
//! certificate within seconds, and a TLS session made before keeps relaying.

mod common;
mod interop;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{ServerProcess, TempDir};
use interop::TestCert;
use turnpike_bench::client::{Credentials, Transport};
use turnpike_bench::{TurnClient, tls};
use turnpike_stun::ChannelNumber;

fn creds() -> Credentials {
    Credentials::Rest {
        secret: "watch-secret".into(),
        user: "watch".into(),
    }
}

/// A TLS client that trusts only `cert`, with an allocation.
fn tls_client(server: SocketAddr, cert: &TestCert) -> Result<TurnClient, String> {
    let trust = Transport::Tls(tls::settings(server, None, Some(&cert.files.cert), false).unwrap());
    let mut client =
        TurnClient::connect_over(server, &creds(), &trust).map_err(|e| e.to_string())?;
    client.allocate(None).map_err(|e| e.to_string())?;
    Ok(client)
}

/// Writes `cert`'s certificate or key (`which`: "cert" or "key") over `path` in place.
fn write_over(path: &Path, cert: &TestCert, which: &str) {
    let from = if which == "cert" {
        &cert.files.cert
    } else {
        &cert.files.key
    };
    std::fs::write(path, std::fs::read(from).unwrap()).unwrap();
}

/// Waits until `needle` has been logged `count` times.
fn wait_for_count(server: &ServerProcess, needle: &str, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while server.count_logs(needle) < count {
        assert!(
            Instant::now() < deadline,
            "{needle:?} logged {} times, not {count}, within {within:?}",
            server.count_logs(needle)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const RELOADED: &str = "TLS certificate files changed: reloaded";

#[test]
fn a_certificate_changed_on_disk_is_reloaded_without_a_signal() {
    let [c1, c2, c3] = ["watch-1", "watch-2", "watch-3"].map(TestCert::generate_leaf);
    // live/cert.pem -> data/cert.pem, live/data -> v1 (a Kubernetes secret mount).
    let live = TempDir::new("watch-live");
    for (version, cert) in [("v1", &c1), ("v2", &c3)] {
        let dir = live.0.join(version);
        std::fs::create_dir_all(&dir).unwrap();
        write_over(&dir.join("cert.pem"), cert, "cert");
        write_over(&dir.join("key.pem"), cert, "key");
    }
    symlink("v1", live.0.join("data")).unwrap();
    for f in ["cert.pem", "key.pem"] {
        symlink(format!("data/{f}"), live.0.join(f)).unwrap();
    }
    let (cert, key) = (live.0.join("cert.pem"), live.0.join("key.pem"));
    let server = ServerProcess::start_logging(
        "watch",
        &format!(
            "[listen]\nudp = []\ntcp = [\"127.0.0.1:0\"]\n\
             [turn]\nrealm = \"watch.test\"\nsecrets = [\"watch-secret\"]\n\
             [relay]\nips = [\"127.0.0.1\"]\nports = \"27760-27779\"\n\
             [peers]\ndangerous_allow_loopback_peers = true\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\nwatch_interval_secs = 1\n",
            cert.display(),
            key.display()
        ),
        "info",
    );
    let tcp = server.tcp[0];
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let channel = ChannelNumber::new(0x4000).unwrap();
    let mut before = tls_client(tcp, &c1).expect("TLS with the first certificate");
    let relayed = before.relayed().expect("allocated");
    before
        .channel_bind(channel, peer.local_addr().unwrap())
        .unwrap();
    let mut buf = [0u8; 64];
    let mut relays = |client: &mut TurnClient, data: &[u8]| {
        client.send_channel_data(channel, data).unwrap();
        let (n, from) = peer.recv_from(&mut buf).expect("relayed to the peer");
        assert_eq!((from, &buf[..n]), (relayed, data));
    };
    relays(&mut before, b"before");

    // Half-written: the new certificate beside the old key does not load; reported, and
    // the certificate in force stays.
    write_over(&cert, &c2, "cert");
    server.wait_for_log(&["do not load"], Duration::from_secs(5));
    // Looked at twice more: the same files are not reported again, nor applied.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.count_logs("do not load"), 1, "reported once");
    assert_eq!(server.count_logs(RELOADED), 0);
    tls_client(tcp, &c1).expect("the first certificate is still served");

    // The key follows: within a few seconds new clients get the new certificate.
    let written = Instant::now();
    write_over(&key, &c2, "key");
    wait_for_count(&server, RELOADED, 1, Duration::from_secs(5));
    eprintln!("reloaded {:?} after the key was written", written.elapsed());
    tls_client(tcp, &c2).expect("TLS with the renewed certificate");
    assert!(
        tls_client(tcp, &c1).is_err(),
        "a client trusting only the old certificate is refused now"
    );
    relays(&mut before, b"after the change in place");

    // Kubernetes renews by pointing the directory symlink at a new directory.
    symlink("v2", live.0.join("data.new")).unwrap();
    std::fs::rename(live.0.join("data.new"), live.0.join("data")).unwrap();
    wait_for_count(&server, RELOADED, 2, Duration::from_secs(5));
    tls_client(tcp, &c3).expect("TLS with the certificate behind the new symlink");
    relays(&mut before, b"after the symlink swap");

    assert_eq!(server.count_logs("reload refused"), 0);
    let _ = before.close();
    assert!(server.stop().success());
}
