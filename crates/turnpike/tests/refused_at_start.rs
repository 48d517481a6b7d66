//! What cannot work on this machine is refused by `check-config` and by `run`, with exit
//! 2 and `file:line:col: key: reason` printed exactly once: a relay IP that is not the
//! machine's, TLS files that do not load or do not match, and a listener port another
//! process holds (even one that set `SO_REUSEPORT`, as a second turnpike does).
//! Ports 30300-30309.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TempDir, turnpike_bin};

/// Runs the binary with `args` for at most 10 s (killed by its PID after that: a server
/// that started instead of refusing); its exit code and stderr.
fn run_bounded(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(turnpike_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = common::wait_bounded(&mut child, Duration::from_secs(10));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (code, stderr)
}

/// `check-config` and `run` both exit 2 and print `needle` once, at `file:line:`.
fn refused_by_both(config: &Path, line: usize, needle: &str) {
    for args in [&["check-config"][..], &[][..]] {
        let (code, stderr) = run_bounded(args, config);
        assert_eq!(code, Some(2), "{args:?}: exit code; stderr: {stderr}");
        assert_eq!(
            stderr.matches(needle).count(),
            1,
            "{args:?}: {needle:?} exactly once in {stderr:?}"
        );
        let located = format!("{}:{line}:", config.display());
        let at = stderr.lines().find(|l| l.contains(needle)).unwrap();
        assert!(at.contains(&located), "{at:?} lacks {located:?}");
    }
}

#[test]
fn a_relay_ip_that_is_not_the_machines_is_refused() {
    let dir = TempDir::new("refuse-relay-ip");
    let path = dir.0.join("turnserver.toml");
    // TEST-NET-3: on no interface here; nothing is ever sent to it.
    std::fs::write(
        &path,
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n[relay]\nips = [\"127.0.0.1\", \"203.0.113.77\"]\n",
    )
    .unwrap();
    refused_by_both(
        &path,
        5,
        "relay.ips.1: 203.0.113.77 is not an address of this machine",
    );
    // A listener address likewise.
    std::fs::write(
        &path,
        "[listen]\nudp = []\ntcp = [\"203.0.113.77:0\"]\n[relay]\nips = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    refused_by_both(
        &path,
        3,
        "listen.tcp.0: 203.0.113.77 is not an address of this machine",
    );
}

#[test]
fn tls_files_that_do_not_load_or_do_not_match_are_refused() {
    let dir = TempDir::new("refuse-tls");
    let d = &dir.0;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-days", "2", "-subj", "/CN=a", "-keyout", "a.key", "-out", "a.pem",
    ]);
    common::openssl(d, &args);
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-days", "2", "-subj", "/CN=b", "-keyout", "b.key", "-out", "b.pem",
    ]);
    common::openssl(d, &args);
    std::fs::write(d.join("garbage.key"), "not a key at all\n").unwrap();
    let path = d.join("turnserver.toml");
    for key in ["garbage.key", "b.key"] {
        std::fs::write(
            &path,
            format!(
                "[listen]\nudp = []\ntcp = [\"127.0.0.1:0\"]\n[relay]\nips = [\"127.0.0.1\"]\n\
                 [tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                d.join("a.pem").display(),
                d.join(key).display()
            ),
        )
        .unwrap();
        refused_by_both(&path, 8, "tls.key: cannot be used for TLS");
    }
}

#[test]
fn a_listener_port_another_process_holds_is_refused_even_with_reuseport() {
    use socket2::{Domain, Protocol, Socket, Type};
    let dir = TempDir::new("refuse-busy");
    let path = dir.0.join("turnserver.toml");
    // As a second turnpike would: SO_REUSEPORT, same user. Without the probe the server
    // binds beside it and takes half its clients.
    let udp: SocketAddr = "127.0.0.1:30301".parse().unwrap();
    let holder = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    holder.set_reuse_port(true).unwrap();
    holder.bind(&udp.into()).unwrap();
    std::fs::write(
        &path,
        "[listen]\nudp = [\"127.0.0.1:30300\", \"127.0.0.1:30301\"]\ntcp = []\n[relay]\nips = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let needle = "listen.udp.1: udp 127.0.0.1:30301 is already in use by another process";
    refused_by_both(&path, 2, needle);
    // It says who holds it.
    let (_, stderr) = run_bounded(&["check-config"], &path);
    let pid = format!("pid {}", std::process::id());
    assert!(stderr.contains(&pid), "{stderr:?} lacks {pid:?}");
    drop(holder);

    let tcp = std::net::TcpListener::bind("127.0.0.1:30302").unwrap();
    std::fs::write(
        &path,
        "[listen]\nudp = []\ntcp = [\"127.0.0.1:30302\"]\n[relay]\nips = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    refused_by_both(
        &path,
        3,
        "listen.tcp.0: tcp 127.0.0.1:30302 is already in use by another process",
    );
    drop(tcp);
    // Free again: check-config is satisfied.
    let (code, stderr) = run_bounded(&["check-config"], &path);
    assert_eq!(code, Some(0), "{stderr}");
    // And --skip-host-checks does not look at the machine.
    let _tcp = std::net::TcpListener::bind("127.0.0.1:30302").unwrap();
    let (code, stderr) = run_bounded(&["check-config", "--skip-host-checks"], &path);
    assert_eq!(code, Some(0), "{stderr}");
}
