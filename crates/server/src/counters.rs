//! What the runtime counts beside the cores: drops on the way out, TCP/TLS connections
//! and their refusals. A worker's own counters are `Cell`s it alone touches (read when it
//! is asked for a snapshot); the accept loops' are atomics, touched once per connection.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// One worker's counters.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    /// Relayed data (and indications) to a TCP/TLS client dropped: its write queue was
    /// full. Answers to a client's requests are never dropped this way: they wait.
    pub(crate) stream_queue_full: Cell<u64>,
    /// Datagrams the kernel would not take (send buffer full).
    pub(crate) udp_send_blocked: Cell<u64>,
    /// Datagrams to a peer refused as too big for the path (EMSGSIZE, DF set).
    pub(crate) too_big: Cell<u64>,
    /// TLS handshakes completed.
    pub(crate) tls_handshakes: Cell<u64>,
    /// TLS handshakes that failed or timed out.
    pub(crate) tls_handshake_failures: Cell<u64>,
    /// TLS attempted on a server without a certificate.
    pub(crate) tls_unconfigured: Cell<u64>,
}

impl WorkerCounters {
    /// Adds one to a counter.
    pub(crate) fn bump(counter: &Cell<u64>) {
        counter.set(counter.get() + 1);
    }

    /// The values now.
    pub(crate) fn snapshot(&self) -> RuntimeCounts {
        RuntimeCounts {
            stream_queue_full: self.stream_queue_full.get(),
            udp_send_blocked: self.udp_send_blocked.get(),
            too_big: self.too_big.get(),
            tls_handshakes: self.tls_handshakes.get(),
            tls_handshake_failures: self.tls_handshake_failures.get(),
            tls_unconfigured: self.tls_unconfigured.get(),
            ..RuntimeCounts::default()
        }
    }
}

/// The accept loops' counters, shared by all of them.
#[derive(Debug, Default)]
pub(crate) struct AcceptCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_total_cap: AtomicU64,
    pub(crate) refused_per_ip_cap: AtomicU64,
}

impl AcceptCounters {
    /// Adds the values now to `into`.
    pub(crate) fn add_to(&self, into: &mut RuntimeCounts) {
        into.connections_accepted += self.accepted.load(Ordering::Relaxed);
        into.refused_total_cap += self.refused_total_cap.load(Ordering::Relaxed);
        into.refused_per_ip_cap += self.refused_per_ip_cap.load(Ordering::Relaxed);
    }
}

/// The runtime's counters (they only grow), summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeCounts {
    /// Relayed data to TCP/TLS clients dropped on a full write queue (answers wait
    /// instead).
    pub stream_queue_full: u64,
    /// Datagrams the kernel would not take (send buffer full).
    pub udp_send_blocked: u64,
    /// Datagrams to peers refused as too big (EMSGSIZE).
    pub too_big: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
    /// TLS attempted while no certificate is configured.
    pub tls_unconfigured: u64,
    /// TCP connections accepted (TLS included).
    pub connections_accepted: u64,
    /// TCP connections refused at `[tcp] max_connections`.
    pub refused_total_cap: u64,
    /// TCP connections refused at `[tcp] max_connections_per_ip`.
    pub refused_per_ip_cap: u64,
}

impl RuntimeCounts {
    /// Adds another worker's counts.
    pub fn absorb(&mut self, o: &Self) {
        self.stream_queue_full += o.stream_queue_full;
        self.udp_send_blocked += o.udp_send_blocked;
        self.too_big += o.too_big;
        self.tls_handshakes += o.tls_handshakes;
        self.tls_handshake_failures += o.tls_handshake_failures;
        self.tls_unconfigured += o.tls_unconfigured;
        self.connections_accepted += o.connections_accepted;
        self.refused_total_cap += o.refused_total_cap;
        self.refused_per_ip_cap += o.refused_per_ip_cap;
    }
}
