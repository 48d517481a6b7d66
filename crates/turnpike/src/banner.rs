//! What the server prints on stdout once it is up: one machine-readable line per listener
//! and relay address (tests and scripts read them; with port 0 in the config this is how
//! the chosen port is learned), the ports to open in a firewall, and the `stun:`/`turn:`/
//! `turns:` URLs to put in a browser's `iceServers`. Also the warnings for the
//! configuration's `dangerous_*` switches, which `check-config` prints too.

use std::io::Write;

use turnpike_server::ice::IceServers;
use turnpike_server::{Config, Server};

/// The admin surfaces' addresses, as started.
pub(crate) struct Surfaces<'a> {
    /// `(name, address)` of each HTTP listener that runs.
    pub(crate) listeners: &'a [(&'static str, Option<std::net::SocketAddr>)],
    /// The admin token, when it was generated at start.
    pub(crate) admin_token_generated: Option<&'a str>,
}

/// Writes the start-up lines (everything before `ready`).
pub(crate) fn print(out: &mut impl Write, server: &Server, surfaces: &Surfaces<'_>) {
    let config = server.config();
    for (transport, addr) in server.local_addrs() {
        let _ = writeln!(out, "listening {transport} {addr}");
    }
    for ip in server.relay_ips() {
        let _ = writeln!(out, "relaying on {ip}");
    }
    let _ = writeln!(out, "{}", firewall_line(config));
    for url in IceServers::new(config, "", "").urls() {
        let _ = writeln!(out, "url {url}");
    }
    for (name, addr) in surfaces.listeners {
        if let Some(addr) = addr {
            let _ = writeln!(out, "{name} http://{addr}");
        }
    }
    if let Some(token) = surfaces.admin_token_generated {
        let _ = writeln!(out, "admin token {token}");
    }
}

/// `firewall: open 3478/udp 3478/tcp 49152-65535/udp 49152-65535/tcp`: what must reach
/// this machine from the internet (the relay range over TCP only with RFC 6062 relays).
fn firewall_line(config: &Config) -> String {
    let listen = config.listeners();
    let mut open: Vec<String> = Vec::new();
    for (transport, addrs) in [("udp", &listen.udp), ("tcp", &listen.tcp)] {
        for addr in addrs.iter() {
            let item = format!("{}/{transport}", addr.port());
            if !open.contains(&item) {
                open.push(item);
            }
        }
    }
    let range = format!("{}-{}", config.relay.min_port, config.relay.max_port);
    open.push(format!("{range}/udp"));
    if config.turn.tcp_relay && !listen.tcp.is_empty() {
        open.push(format!("{range}/tcp"));
    }
    format!("firewall: open {}", open.join(" "))
}

/// One warning per `dangerous_*` switch that is on.
pub(crate) fn dangers(config: &Config) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    if config.peers.dangerous_allow_loopback {
        warnings.push(
            "[peers] dangerous_allow_loopback_peers is on: any client may relay to this \
             machine's loopback services (127.0.0.0/8, ::1); for tests on one host only",
        );
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_firewall_line_names_listeners_and_the_relay_range() {
        let config = Config::default();
        assert_eq!(
            firewall_line(&config),
            "firewall: open 3478/udp 3478/tcp 49152-65535/udp 49152-65535/tcp"
        );
        let mut config = Config::default();
        config.turn.tcp_relay = false;
        config.relay.min_port = 50000;
        config.relay.max_port = 50100;
        assert_eq!(
            firewall_line(&config),
            "firewall: open 3478/udp 3478/tcp 50000-50100/udp"
        );
    }

    #[test]
    fn each_dangerous_switch_warns() {
        let mut config = Config::default();
        assert!(dangers(&config).is_empty());
        config.peers.dangerous_allow_loopback = true;
        assert_eq!(dangers(&config).len(), 1);
    }
}
