//! A turnpike server inside another program: the configuration built in code (the same
//! typed [`Config`] the binary reads from `turnserver.toml`, checked by the same
//! [`Config::validate`]), a TURN REST credential minted for a browser with the
//! `iceServers` to hand it, and a clean stop on Ctrl-C.
//!
//! ```sh
//! cargo run -p turnpike-server --example embedded
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use turnpike_proto::auth::rest;
use turnpike_server::{Config, IceServers, Server};

/// The shared secret of this example; a real program reads it from its own secrets store.
const SECRET: &str = "example-secret-change-me";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = Config::default();
    // Port 0: the system picks free ports, read back from `local_addrs` below.
    config.listen.udp = vec![SocketAddr::new(loopback, 0)];
    config.listen.tcp = vec![SocketAddr::new(loopback, 0)];
    config.relay.ips = vec![loopback];
    config.relay.min_port = 50_000;
    config.relay.max_port = 50_999;
    config.turn.secrets = vec![SECRET.to_owned()];
    if let Err(problems) = config.validate() {
        for p in &problems {
            eprintln!("embedded: {p}");
        }
        return Err("invalid configuration".into());
    }

    let server = Server::bind(config)?;
    for (transport, addr) in server.local_addrs() {
        println!("listening {transport} {addr}");
    }

    // A credential valid for one hour, as an app server would hand it to a browser.
    let expiry = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let (username, password) = rest::mint(SECRET.as_bytes(), "alice", expiry);
    let ice = IceServers::new(server.config(), &username, &password);
    println!("{}", serde_json::to_string_pretty(&ice)?);

    println!("serving; Ctrl-C stops");
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
