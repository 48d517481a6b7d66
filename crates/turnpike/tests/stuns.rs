//! `stuns:`: a STUN Binding over TLS (RFC 8489 §6.2.3), with openssl's own TLS client on
//! the same port that also takes plain TCP. The certificate is made at test time.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ServerProcess, TempDir, binding_request, mapped_address};
use turnpike_stun::framing::{Frame, Framing, next_frame};

#[test]
fn binding_over_tls_and_plain_tcp_on_one_port() {
    let dir = TempDir::new("stuns-cert");
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success());
    let config = format!(
        "[listen]\nudp = []\ntcp = [\"127.0.0.1:0\"]\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let server = ServerProcess::start("stuns", &config);
    let addr = server.tcp[0];

    // TLS: openssl s_client sends the request and prints what comes back.
    let mut client = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-quiet", "-no_ign_eof"])
        .args(["-alpn", "stun.turn", "-connect"])
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let tid = [0x5A; 12];
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(&binding_request(tid)).unwrap();
    stdin.flush().unwrap();
    // Keep stdin open briefly so the response can come back before s_client exits.
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut stdout = client.stdout.take().unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 512];
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
            if let Framing::Frame(Frame::Stun(_)) = next_frame(&got) {
                break;
            }
        }
        let _ = client.kill();
        let _ = client.wait();
        got
    });
    let got = reader.join().unwrap();
    drop(stdin);
    let Framing::Frame(Frame::Stun(n)) = next_frame(&got) else {
        panic!("no STUN response over TLS: {got:02x?}");
    };
    let mapped = mapped_address(&got[..n], tid);
    assert_eq!(mapped.ip().to_string(), "127.0.0.1");

    // Plain TCP on the same port still answers.
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    plain.write_all(&binding_request([7; 12])).unwrap();
    let mut buf = [0u8; 256];
    let mut have = 0;
    loop {
        use std::io::Read;
        let k = plain.read(&mut buf[have..]).unwrap();
        assert!(k > 0, "closed");
        have += k;
        if let Framing::Frame(Frame::Stun(n)) = next_frame(&buf[..have]) {
            assert_eq!(
                mapped_address(&buf[..n], [7; 12]),
                plain.local_addr().unwrap()
            );
            break;
        }
    }
}
