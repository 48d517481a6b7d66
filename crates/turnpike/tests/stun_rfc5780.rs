//! RFC 5780 NAT behaviour discovery against the real binary, classified by coturn's
//! `turnutils_natdiscovery` with two loopback addresses (127.0.0.1 and 127.0.0.2) and two
//! ports. On loopback there is no NAT, so the right answer is "endpoint independent"
//! mapping and filtering; without `[rfc5780]` the tool gets no classification at all.

mod common;

use std::process::Command;

use common::ServerProcess;

fn natdiscovery(port: u16) -> String {
    let out = Command::new("timeout")
        .args(["20", "turnutils_natdiscovery", "-m", "-f", "-p"])
        .arg(port.to_string())
        .arg("127.0.0.1")
        .output()
        .expect("turnutils_natdiscovery is installed (Debian package coturn)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn natdiscovery_classifies_mapping_and_filtering() {
    let server = ServerProcess::start(
        "rfc5780",
        "[listen]\nudp = []\ntcp = []\n[rfc5780]\nips = [\"127.0.0.1\", \"127.0.0.2\"]\n\
         ports = [26800, 26801]\n",
    );
    // The four address/port combinations are listening.
    let mut udp = server.udp.clone();
    udp.sort();
    let expected: Vec<std::net::SocketAddr> = [
        "127.0.0.1:26800",
        "127.0.0.1:26801",
        "127.0.0.2:26800",
        "127.0.0.2:26801",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(udp, expected);

    let out = natdiscovery(26800);
    assert!(
        out.contains("NAT with Endpoint Independent Mapping!"),
        "mapping not classified:\n{out}"
    );
    assert!(
        out.contains("NAT with Endpoint Independent Filtering!"),
        "filtering not classified:\n{out}"
    );
    assert!(out.contains("Other addr: : 127.0.0.2:26801"), "{out}");
    assert!(out.contains("Response origin: : 127.0.0.2:26801"), "{out}");
}

#[test]
fn without_rfc5780_natdiscovery_gets_no_classification() {
    let server = ServerProcess::start(
        "no-rfc5780",
        "[listen]\nudp = [\"127.0.0.1:0\"]\ntcp = []\n",
    );
    let out = natdiscovery(server.udp[0].port());
    assert!(
        out.contains("UDP reflexive addr"),
        "Binding still works:\n{out}"
    );
    assert!(!out.contains("Independent"), "{out}");
    assert!(!out.contains("Other addr"), "{out}");
}
