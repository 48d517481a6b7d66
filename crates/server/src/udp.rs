//! The UDP listener loop: receive, let the core answer, send.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tracing::debug;
use turnpike_proto::binding::{BindingService, Response};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Serves one UDP socket until the task is cancelled.
///
/// # Cancel safety
///
/// Cancelling drops at most the datagram being answered.
pub(crate) async fn serve(socket: UdpSocket, binding: Arc<BindingService>) {
    let mut rx = vec![0u8; MAX_DATAGRAM];
    let mut tx = vec![0u8; 2048];
    loop {
        let (n, from) = match socket.recv_from(&mut rx).await {
            Ok(r) => r,
            // ICMP errors surface here on Linux (ECONNREFUSED for an earlier send): they
            // concern one client, never the socket.
            Err(e) => {
                debug!(error = %e, "udp receive error");
                continue;
            }
        };
        if let Response::Send(len) = binding.handle(&rx[..n], from, &mut tx) {
            if let Err(e) = socket.send_to(&tx[..len], from).await {
                debug!(error = %e, %from, "udp send error");
            }
        }
    }
}
