//! `turnpike doctor`: a configuration that trips each check gets that check's FAIL line
//! and exit 1; a healthy one gets OK everywhere and exit 0, beside its running server too.
//! The metadata service is a fake on loopback (`TURNPIKE_METADATA_URL`), or a closed
//! loopback port for "absent": doctor never asks 169.254.169.254 here. Ports 30310-30399.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{ServerProcess, TempDir, turnpike_bin};

/// A loopback port nothing listens on: "no metadata service".
const CLOSED_METADATA: &str = "http://127.0.0.1:30399";

/// Runs `turnpike --config <config> doctor` (through `sh` when `shell_prefix` is given,
/// e.g. to lower the open-files limit), bounded to 20 s; exit code and stdout.
fn doctor(config: &Path, metadata: &str, shell_prefix: Option<&str>) -> (Option<i32>, String) {
    let mut command = match shell_prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{prefix} && exec \"$0\" --config \"$1\" doctor",));
            c.arg(turnpike_bin()).arg(config);
            c
        }
        None => {
            let mut c = Command::new(turnpike_bin());
            c.arg("--config").arg(config).arg("doctor");
            c
        }
    };
    let mut child = command
        .env("TURNPIKE_METADATA_URL", metadata)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let code = common::wait_bounded(&mut child, Duration::from_secs(20));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    eprintln!("{out}");
    (code, out)
}

/// The line of check `name` (`FAIL relay ip 203.0.113.77: ...`).
fn line<'a>(out: &'a str, verdict: &str, name: &str) -> &'a str {
    let start = format!("{verdict:<4} {name}:");
    out.lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no {start:?} line in:\n{out}"))
}

/// A self-signed certificate for 127.0.0.1, valid 60 days: (cert, key).
fn good_cert(dir: &Path) -> (String, String) {
    common::openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "60",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "good.key",
            "-out",
            "good.pem",
        ],
    );
    paths(dir, "good.pem", "good.key")
}

/// A certificate for `wrong.example` that expired in February 2020: (cert, key).
fn expired_cert(dir: &Path) -> (String, String) {
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\nnew_certs_dir = .\n\
         default_md = sha256\npolicy = p\ncopy_extensions = copy\nunique_subject = no\n\
         [p]\ncommonName = supplied\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    common::openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=wrong.example",
            "-addext",
            "subjectAltName=DNS:wrong.example",
            "-keyout",
            "old.key",
            "-out",
            "old.csr",
        ],
    );
    common::openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            "old.key",
            "-in",
            "old.csr",
            "-out",
            "old.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
            "-notext",
        ],
    );
    paths(dir, "old.pem", "old.key")
}

fn paths(dir: &Path, cert: &str, key: &str) -> (String, String) {
    (
        dir.join(cert).display().to_string(),
        dir.join(key).display().to_string(),
    )
}

/// A configuration that works on this machine: loopback listeners on `port`, relay on
/// 127.0.0.1 (loopback peers allowed, as one-host tests need), a small relay range and
/// connection cap, the certificate `tls`.
fn healthy(port: u16, tls: &(String, String)) -> String {
    format!(
        "[listen]\nudp = [\"127.0.0.1:{port}\"]\ntcp = [\"127.0.0.1:{port}\"]\n\
         public_name = \"127.0.0.1\"\n\
         [relay]\nips = [\"127.0.0.1\"]\nports = \"40000-40099\"\n\
         [peers]\ndangerous_allow_loopback_peers = true\n\
         [tcp]\nmax_connections = 100\n\
         [turn]\nsecrets = [\"doctor-test-secret\"]\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        tls.0, tls.1
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_healthy_configuration_is_all_ok() {
    let dir = TempDir::new("doctor-healthy");
    let tls = good_cert(&dir.0);
    let path = write(&dir.0, "ok.toml", &healthy(30310, &tls));
    let started = Instant::now();
    let (code, out) = doctor(&path, CLOSED_METADATA, None);
    assert_eq!(code, Some(0), "{out}");
    for l in out
        .lines()
        .filter(|l| !l.starts_with("     hint:") && !l.starts_with("doctor:"))
    {
        assert!(l.starts_with("OK "), "not OK: {l}");
    }
    assert!(line(&out, "OK", "listener udp 127.0.0.1:30310").contains("free"));
    line(&out, "OK", "relay ip 127.0.0.1");
    assert!(line(&out, "OK", "metadata").contains("no metadata service"));
    assert!(line(&out, "OK", "certificate name").contains("names 127.0.0.1"));
    assert!(line(&out, "OK", "clock").contains("unchecked"));
    line(&out, "OK", "open files");
    assert!(line(&out, "OK", "firewall udp").contains("30310, 40000-40099 (relay)"));
    assert!(line(&out, "OK", "offload").contains("off"));
    assert!(out.contains("0 WARN, 0 FAIL"), "{out}");
    // An absent metadata service costs next to nothing (bounded to ~1 s anyway).
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn doctor_beside_its_running_server() {
    let dir = TempDir::new("doctor-beside");
    let tls = good_cert(&dir.0);
    let server = ServerProcess::start("doctor-beside", &healthy(30311, &tls));
    let (code, out) = doctor(&server.config_path, CLOSED_METADATA, None);
    assert_eq!(code, Some(0), "{out}");
    for transport in ["udp", "tcp"] {
        let l = line(&out, "OK", &format!("listener {transport} 127.0.0.1:30311"));
        assert!(
            l.contains("bound by turnpike") && l.contains("answers Binding"),
            "{l}"
        );
        assert!(l.contains(&format!("pid {}", server.pid())), "{l}");
    }
    drop(server);
}

#[test]
fn a_relay_ip_that_is_not_the_machines_fails() {
    let dir = TempDir::new("doctor-relay-ip");
    let tls = good_cert(&dir.0);
    let text = healthy(30312, &tls).replace(
        "ips = [\"127.0.0.1\"]",
        "ips = [\"127.0.0.1\", \"203.0.113.77\"]",
    );
    let path = write(&dir.0, "c.toml", &text);
    let (code, out) = doctor(&path, CLOSED_METADATA, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(line(&out, "FAIL", "relay ip 203.0.113.77").contains("508"));
}

/// A fake IMDSv2 on loopback: a token for PUT /latest/api/token, then `public` for
/// GET /latest/meta-data/public-ipv4 with that token, each answer dated `date`. Serves
/// `connections` connections, then its thread ends.
fn fake_imds(listener: TcpListener, public: &'static str, date: SystemTime, connections: usize) {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut token_ok = false;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header.trim().is_empty() {
                    break;
                }
                if header
                    .to_ascii_lowercase()
                    .starts_with("x-aws-ec2-metadata-token: tok-123")
                {
                    token_ok = true;
                }
            }
            let (status, body) = if request.starts_with("PUT /latest/api/token ") {
                ("200 OK", "tok-123")
            } else if request.starts_with("GET /latest/meta-data/public-ipv4 ") && token_ok {
                ("200 OK", public)
            } else {
                ("401 Unauthorized", "")
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nDate: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                httpdate::fmt_http_date(date),
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
}

#[test]
fn an_external_ip_other_than_the_metadata_services_fails() {
    let dir = TempDir::new("doctor-external");
    let tls = good_cert(&dir.0);
    let listener = TcpListener::bind("127.0.0.1:30320").unwrap();
    fake_imds(listener, "198.51.100.20", SystemTime::now(), 4);
    let text = healthy(30313, &tls).replace(
        "[peers]\n",
        "external_ip = [\"198.51.100.99/127.0.0.1\"]\n[peers]\nallow = [\"198.51.100.0/24\"]\n",
    );
    let path = write(&dir.0, "c.toml", &text);
    let (code, out) = doctor(&path, "http://127.0.0.1:30320", None);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line(&out, "OK", "metadata").contains("aws metadata service: public IPv4 198.51.100.20")
    );
    let l = line(&out, "FAIL", "external_ip 198.51.100.99");
    assert!(l.contains("198.51.100.20"), "{l}");
    assert!(
        out.contains("hint: set relay.external_ip.0 to \"198.51.100.20/127.0.0.1\""),
        "{out}"
    );
    // The clock agrees with the fake's Date.
    assert!(line(&out, "OK", "clock").contains("aws metadata service's Date"));
}

#[test]
fn a_clock_ten_minutes_off_the_metadata_date_fails() {
    let dir = TempDir::new("doctor-clock");
    let tls = good_cert(&dir.0);
    let listener = TcpListener::bind("127.0.0.1:30321").unwrap();
    fake_imds(
        listener,
        "198.51.100.20",
        SystemTime::now() - Duration::from_secs(600),
        2,
    );
    let path = write(&dir.0, "c.toml", &healthy(30314, &tls));
    let (code, out) = doctor(&path, "http://127.0.0.1:30321", None);
    assert_eq!(code, Some(1), "{out}");
    let l = line(&out, "FAIL", "clock");
    assert!(
        ["+600 s", "+601 s", "+602 s"].iter().any(|s| l.contains(s)),
        "{l}"
    );
}

#[test]
fn an_external_ip_the_peer_policy_denies_fails() {
    let dir = TempDir::new("doctor-denied");
    let tls = good_cert(&dir.0);
    let text = healthy(30315, &tls).replace(
        "[peers]\n",
        "external_ip = [\"10.1.2.3/127.0.0.1\"]\n[peers]\n",
    );
    let path = write(&dir.0, "c.toml", &text);
    let (code, out) = doctor(&path, CLOSED_METADATA, None);
    assert_eq!(code, Some(1), "{out}");
    let l = line(&out, "FAIL", "peer policy for 10.1.2.3");
    assert!(l.contains("private"), "{l}");
}

#[test]
fn an_expired_certificate_with_the_wrong_name_fails() {
    let dir = TempDir::new("doctor-cert");
    let tls = expired_cert(&dir.0);
    let text = healthy(30316, &tls).replace(
        "public_name = \"127.0.0.1\"",
        "public_name = \"turn.example.com\"",
    );
    let path = write(&dir.0, "c.toml", &text);
    let (code, out) = doctor(&path, CLOSED_METADATA, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(line(&out, "FAIL", "certificate expiry").contains("expired on"));
    let l = line(&out, "FAIL", "certificate name");
    assert!(
        l.contains("turn.example.com") && l.contains("wrong.example"),
        "{l}"
    );
}

#[test]
fn an_open_files_limit_too_low_for_the_relay_range_fails() {
    let dir = TempDir::new("doctor-nofile");
    let tls = good_cert(&dir.0);
    let text = healthy(30317, &tls).replace("40000-40099", "30000-40000");
    let path = write(&dir.0, "c.toml", &text);
    let (code, out) = doctor(&path, CLOSED_METADATA, Some("ulimit -n 512"));
    assert_eq!(code, Some(1), "{out}");
    let l = line(&out, "FAIL", "open files");
    assert!(
        l.contains("limit 512") && l.contains("10001 relay ports"),
        "{l}"
    );
    // With the limit as the test runs and the small range: fine.
    let path = write(&dir.0, "ok.toml", &healthy(30317, &tls));
    let (_, out) = doctor(&path, CLOSED_METADATA, Some("ulimit -n 4096"));
    line(&out, "OK", "open files");
}

#[test]
fn a_listener_port_held_by_a_silent_process_fails() {
    let dir = TempDir::new("doctor-busy");
    let tls = good_cert(&dir.0);
    // Held, never answering.
    let _udp = std::net::UdpSocket::bind("127.0.0.1:30318").unwrap();
    let path = write(&dir.0, "c.toml", &healthy(30318, &tls));
    let (code, out) = doctor(&path, CLOSED_METADATA, None);
    assert_eq!(code, Some(1), "{out}");
    let l = line(&out, "FAIL", "listener udp 127.0.0.1:30318");
    assert!(l.contains("does not answer a STUN Binding"), "{l}");
    assert!(l.contains(&format!("pid {}", std::process::id())), "{l}");
    line(&out, "OK", "listener tcp 127.0.0.1:30318");
}

/// `[offload] mode = "tc"`: with the program built, the kernel is asked to load and verify
/// it (not attach it); without the feature, or on an interface that does not exist, a WARN
/// that says why and that the server would relay in user space.
#[test]
fn the_offload_check_loads_the_program_without_attaching_it() {
    let dir = TempDir::new("doctor-offload");
    let tls = good_cert(&dir.0);
    let with_mode = |mode: &str, interface: &str| {
        format!(
            "{}[offload]\nmode = \"{mode}\"\ninterfaces = [\"{interface}\"]\n",
            healthy(30340, &tls)
        )
    };
    let with = |interface: &str| with_mode("tc", interface);
    for mode in ["tc", "xdp"] {
        let path = write(&dir.0, "lo.toml", &with_mode(mode, "lo"));
        let (code, out) = doctor(&path, CLOSED_METADATA, None);
        assert_eq!(code, Some(0), "a WARN is not a failure: {out}");
        if cfg!(feature = "ebpf") {
            let l = line(&out, "OK", "offload");
            let want = format!("{mode} on lo: the kernel takes the program");
            assert!(l.contains(&want), "{l}");
        } else {
            let l = line(&out, "WARN", "offload");
            assert!(l.contains("without the ebpf feature"), "{l}");
        }
    }
    let path = write(&dir.0, "missing.toml", &with("tpnosuch1"));
    let (_, out) = doctor(&path, CLOSED_METADATA, None);
    let reason = if cfg!(feature = "ebpf") {
        "no interface named"
    } else {
        "without the ebpf feature"
    };
    let l = line(&out, "WARN", "offload");
    assert!(
        l.contains(reason) && l.contains("relay in user space"),
        "{l}"
    );
}
