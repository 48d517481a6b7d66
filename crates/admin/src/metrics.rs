//! Prometheus metrics in text format (`GET /metrics`).
//!
//! A scrape asks the workers for a [`MetricsSnapshot`] (their figures summed between
//! packets, [`ServerControl::metrics`]) and builds a `prometheus-client` registry from it
//! on the spot: nothing is counted here, the cores and the runtime count as they go and
//! a scrape only reads. The histograms come pre-aggregated with fixed bounds
//! ([`LIFETIME_BOUNDS_SECS`], [`VOLUME_BOUNDS_BYTES`]) and are written with
//! `MetricEncoder::encode_histogram` as they are.
//!
//! # Format
//!
//! The output is the classic Prometheus text format (`text/plain; version=0.0.4`), which
//! Prometheus, VictoriaMetrics and `promtool check metrics` read. Counters are therefore
//! written with their `_total` name in `# TYPE` (OpenMetrics would drop the suffix there,
//! and `prometheus-client`'s own counter encoding follows OpenMetrics), and the build
//! information is a gauge `turnpike_build_info{version} 1` rather than an OpenMetrics
//! `info` type. Units are part of the names (`_seconds`, `_bytes`); no `# UNIT` lines.
//!
//! # Labels
//!
//! Every label takes values from a closed set: the client transport (`udp`, `tcp`,
//! `tls`), the relayed families (`ipv4`, `ipv6`, `dual`), end reasons, refusal codes
//! and reasons ([`Reject`]), auth failures ([`AuthFailure`]), deny rules
//! ([`DenyRule`]), drop reasons, TCP caps, and the relay IPs, which are the configured
//! ones. No client or peer address, user name or realm ever becomes a label. Every
//! combination is written, zeros included, so that series do not appear out of nowhere
//! when an event first happens.

use std::borrow::Cow;
use std::fmt;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use turnpike_proto::ClientTransport;
use turnpike_proto::auth::AuthFailure;
use turnpike_proto::policy::DenyRule;
use turnpike_proto::server::{
    EndReason, Histogram, LIFETIME_BOUNDS_SECS, Reject, RelayFamilies, VOLUME_BOUNDS_BYTES,
};
use turnpike_server::{MetricsSnapshot, OffloadStatus, ServerControl};

/// The Content-Type of the classic Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics' routes: `GET /metrics`.
pub fn router(control: ServerControl) -> Router {
    Router::new().route("/metrics", get(move || scrape(control.clone())))
}

/// One scrape: the snapshot, rendered; 503 once the server has stopped.
async fn scrape(control: ServerControl) -> Response {
    let Some(snapshot) = control.metrics().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the server has stopped\n").into_response();
    };
    match render(&snapshot) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(fmt::Error) => {
            tracing::error!("cannot render the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The snapshot in the Prometheus text format.
///
/// # Errors
///
/// Only if writing to the `String` fails, which it does not; kept for the encoder's
/// signature.
pub fn render(snapshot: &MetricsSnapshot) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(snapshot.clone())));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode_registry(&mut out, &registry)?;
    Ok(out)
}

/// A label set: `(name, value)` pairs.
type Labels = Vec<(&'static str, Cow<'static, str>)>;

/// A metric family's samples: a label set and a value each.
type Samples = Vec<(Labels, u64)>;

/// The snapshot as a `prometheus-client` collector, encoded once per scrape.
#[derive(Debug)]
struct Snapshot(MetricsSnapshot);

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let m = &self.0;
        let s = &m.stats;
        let g = &m.gauges;
        let r = &m.runtime;
        let gauge = MetricType::Gauge;
        let counter = MetricType::Counter;

        let version = vec![("version", Cow::Borrowed(env!("CARGO_PKG_VERSION")))];
        let help = "The running turnpike's version (always 1).";
        write(
            &mut enc,
            "turnpike_build_info",
            help,
            gauge,
            vec![(version, 1)],
        )?;
        let help = "Workers (cores) that answered this scrape.";
        let workers = m.workers as u64;
        write(&mut enc, "turnpike_workers", help, gauge, one(workers))?;

        let help = "Live allocations, by client transport and relayed address family.";
        let live = by_transport_family(&g.allocations);
        write(&mut enc, "turnpike_allocations", help, gauge, live)?;
        let help = "Allocations created, by client transport and relayed address family.";
        let created = by_transport_family(&s.created);
        let name = "turnpike_allocations_created_total";
        write(&mut enc, name, help, counter, created)?;
        let help = "Allocations ended, by client transport and relayed address family.";
        let ended = by_transport_family(&s.ended);
        write(
            &mut enc,
            "turnpike_allocations_ended_total",
            help,
            counter,
            ended,
        )?;
        let help = "Allocations ended, by why they ended.";
        let reasons = EndReason::ALL
            .iter()
            .map(|&e| (label("reason", end_reason(e)), s.ended_by_reason[e.index()]))
            .collect();
        let name = "turnpike_allocation_end_reasons_total";
        write(&mut enc, name, help, counter, reasons)?;

        let help = "Permissions installed now (not expired).";
        write(
            &mut enc,
            "turnpike_permissions",
            help,
            gauge,
            one(g.permissions),
        )?;
        let help = "Channels bound now (not expired).";
        write(&mut enc, "turnpike_channels", help, gauge, one(g.channels))?;
        let help = "RFC 6062 peer data connections now, pending or bound.";
        let peers = one(g.peer_connections);
        write(&mut enc, "turnpike_peer_connections", help, gauge, peers)?;
        let help = "RFC 6062 peer data connections made (Connect or ConnectionAttempt).";
        let peers = one(s.peer_connections);
        let name = "turnpike_peer_connections_created_total";
        write(&mut enc, name, help, counter, peers)?;

        let (packets, bytes) = relayed(m);
        let help = "Datagrams relayed, by direction and client transport.";
        write(
            &mut enc,
            "turnpike_relayed_packets_total",
            help,
            counter,
            packets,
        )?;
        let help = "Payload bytes relayed, by direction and client transport.";
        write(
            &mut enc,
            "turnpike_relayed_bytes_total",
            help,
            counter,
            bytes,
        )?;
        let help = "Datagrams dropped instead of relayed, by reason.";
        let drops = [
            ("no_permission", s.dropped_no_permission),
            ("rate_limit", s.dropped_bandwidth),
            ("user_budget", s.dropped_user_budget),
            ("queue_full", r.stream_queue_full),
            ("too_big", r.too_big),
            ("send_blocked", r.udp_send_blocked),
        ]
        .into_iter()
        .map(|(reason, n)| (label("reason", reason), n))
        .collect();
        write(
            &mut enc,
            "turnpike_dropped_packets_total",
            help,
            counter,
            drops,
        )?;
        let help = "ICMP errors relayed to clients as Data indications.";
        let icmp = one(s.icmp_relayed);
        write(&mut enc, "turnpike_icmp_relayed_total", help, counter, icmp)?;
        let help = "ICMP errors dropped (no permission, type not relayed, over the rate).";
        let icmp = one(s.icmp_dropped);
        write(&mut enc, "turnpike_icmp_dropped_total", help, counter, icmp)?;

        let ports = |f: fn(&turnpike_server::RelayPortUse) -> u64| -> Samples {
            m.relay_ports
                .iter()
                .map(|u| (vec![("relay_ip", Cow::Owned(u.ip.to_string()))], f(u)))
                .collect()
        };
        let help = "Relay ports held (relay sockets and RFC 6062 listeners), by relay IP.";
        let in_use = ports(|u| u.in_use);
        write(&mut enc, "turnpike_relay_ports_in_use", help, gauge, in_use)?;
        let help = "Relay ports in [relay] ports, by relay IP.";
        let capacity = ports(|u| u.capacity);
        write(
            &mut enc,
            "turnpike_relay_ports_capacity",
            help,
            gauge,
            capacity,
        )?;

        let help = "Requests answered with an error after authentication, by code and reason.";
        let refused = Reject::ALL
            .iter()
            .map(|&j| {
                let labels = vec![
                    ("code", Cow::Owned(j.code().code().to_string())),
                    ("reason", Cow::Borrowed(reject_reason(j))),
                ];
                (labels, s.refused(j))
            })
            .collect();
        let name = "turnpike_refused_requests_total";
        write(&mut enc, name, help, counter, refused)?;
        let help = "Allocate requests redirected with 300 Try Alternate.";
        let redirected = one(s.redirected);
        write(
            &mut enc,
            "turnpike_redirected_total",
            help,
            counter,
            redirected,
        )?;
        let help =
            "Answers to unproven UDP sources held back by [quotas] unauthenticated_bytes_per_sec.";
        let held = one(s.unproven_over_budget);
        write(
            &mut enc,
            "turnpike_unauthenticated_answers_held_total",
            help,
            counter,
            held,
        )?;
        let help = "Credentials refused, by reason.";
        let auth = AuthFailure::ALL
            .iter()
            .map(|&a| (label("reason", a.as_str()), s.auth_failures(a)))
            .collect();
        write(
            &mut enc,
            "turnpike_auth_failures_total",
            help,
            counter,
            auth,
        )?;
        let help = "Peer addresses refused by the peer policy, by rule.";
        let denied = DenyRule::ALL
            .iter()
            .map(|&d| (label("rule", d.as_str()), s.peer_denied(d)))
            .collect();
        write(
            &mut enc,
            "turnpike_peer_denied_total",
            help,
            counter,
            denied,
        )?;
        let help = "Allocations moved to a new 5-tuple with a MOBILITY-TICKET (RFC 8016).";
        let moves = one(s.mobility_moves);
        write(
            &mut enc,
            "turnpike_mobility_moves_total",
            help,
            counter,
            moves,
        )?;
        let help = "Users and usernames revoked now.";
        write(
            &mut enc,
            "turnpike_revocations",
            help,
            gauge,
            one(g.revocations),
        )?;
        let help = "Answers kept for retransmissions to 5-tuples without an allocation.";
        write(
            &mut enc,
            "turnpike_stranger_answers",
            help,
            gauge,
            one(g.stranger_answers),
        )?;

        let help = "TCP and TLS client connections open now.";
        let open = one(m.open_connections);
        write(&mut enc, "turnpike_tcp_connections_open", help, gauge, open)?;
        let help = "TCP client connections accepted (TLS included).";
        let accepted = one(r.connections_accepted);
        let name = "turnpike_tcp_connections_accepted_total";
        write(&mut enc, name, help, counter, accepted)?;
        let help = "TCP client connections refused at a cap ([tcp] max_connections, \
                    max_connections_per_ip).";
        let refused = vec![
            (label("cap", "total"), r.refused_total_cap),
            (label("cap", "per_ip"), r.refused_per_ip_cap),
        ];
        let name = "turnpike_tcp_connections_refused_total";
        write(&mut enc, name, help, counter, refused)?;
        let help = "TLS handshakes completed.";
        let tls = one(r.tls_handshakes);
        write(
            &mut enc,
            "turnpike_tls_handshakes_total",
            help,
            counter,
            tls,
        )?;
        let help = "TLS handshakes that did not complete: failed or timed out (error), or \
                    attempted while no certificate is configured (no_certificate).";
        let failures = vec![
            (label("reason", "error"), r.tls_handshake_failures),
            (label("reason", "no_certificate"), r.tls_unconfigured),
        ];
        let name = "turnpike_tls_handshake_failures_total";
        write(&mut enc, name, help, counter, failures)?;
        if let Some(not_after) = m.cert_not_after {
            let help = "When the TLS certificate expires (notAfter, unix seconds).";
            let name = "turnpike_tls_certificate_expiry_timestamp_seconds";
            write(&mut enc, name, help, gauge, one(not_after))?;
        }

        let help = "Lifetimes of ended allocations (whole seconds).";
        let name = "turnpike_allocation_lifetime_seconds";
        histogram(&mut enc, name, help, &LIFETIME_BOUNDS_SECS, &s.lifetime)?;
        let help = "Payload bytes relayed (both directions) by ended allocations.";
        let name = "turnpike_allocation_volume_bytes";
        histogram(&mut enc, name, help, &VOLUME_BOUNDS_BYTES, &s.volume)?;

        let help = "1 while a drain is under way.";
        let draining = one(u64::from(m.draining));
        write(&mut enc, "turnpike_draining", help, gauge, draining)?;
        let help = "1 while new Allocates are redirected to an alternate server.";
        let redirecting = one(u64::from(m.redirecting));
        write(&mut enc, "turnpike_redirecting", help, gauge, redirecting)?;
        if let Some(o) = &m.offload {
            offload(&mut enc, o)?;
        }
        Ok(())
    }
}

/// The in-kernel fast path's series (only when `[offload]` is on). What it relayed is
/// also in `turnpike_relayed_*`, which count both paths.
fn offload(enc: &mut DescriptorEncoder<'_>, o: &OffloadStatus) -> Result<(), fmt::Error> {
    let (gauge, counter) = (MetricType::Gauge, MetricType::Counter);
    let p = &o.program;
    let active = u64::from(!o.interfaces.is_empty());
    let help = "1 while the in-kernel ChannelData fast path is attached.";
    write(enc, "turnpike_offload_active", help, gauge, one(active))?;
    let help = "The configured mode (tc or xdp), as a label; always 1.";
    let mode = vec![(label("mode", o.mode.name()), 1)];
    write(enc, "turnpike_offload_mode", help, gauge, mode)?;
    let help = "The fast path was configured but could not load (the log says why).";
    let failed = u64::from(o.failure.is_some());
    write(
        enc,
        "turnpike_offload_load_failures_total",
        help,
        counter,
        one(failed),
    )?;
    let help =
        "Datagrams the kernel relayed, by direction (part of turnpike_relayed_packets_total).";
    let packets = vec![
        (label("direction", "to_peer"), p.to_peer_packets),
        (label("direction", "to_client"), p.to_client_packets),
    ];
    write(
        enc,
        "turnpike_offload_relayed_packets_total",
        help,
        counter,
        packets,
    )?;
    let help =
        "Payload bytes the kernel relayed, by direction (part of turnpike_relayed_bytes_total).";
    let bytes = vec![
        (label("direction", "to_peer"), p.to_peer_bytes),
        (label("direction", "to_client"), p.to_client_bytes),
    ];
    write(
        enc,
        "turnpike_offload_relayed_bytes_total",
        help,
        counter,
        bytes,
    )?;
    let help = "Datagrams that matched a route but went on to user space, by reason.";
    let passed = vec![
        (label("reason", "expired"), p.pass_expired),
        (label("reason", "unfit"), p.pass_unfit),
        (label("reason", "no_allocation"), p.pass_no_alloc),
        (label("reason", "too_big"), p.pass_too_big),
        (label("reason", "no_route"), p.pass_fib),
        (label("reason", "no_neighbour"), p.pass_neigh),
    ];
    write(enc, "turnpike_offload_passed_total", help, counter, passed)?;
    let help = "Datagrams the kernel dropped, by reason.";
    let dropped = vec![
        (label("reason", "bandwidth"), p.drop_bucket),
        (label("reason", "user_budget"), p.drop_user),
        (label("reason", "error"), p.drop_error),
    ];
    write(
        enc,
        "turnpike_offload_dropped_total",
        help,
        counter,
        dropped,
    )?;
    let help = "Channels installed in the kernel now (both directions count as one).";
    write(enc, "turnpike_offload_routes", help, gauge, one(o.routes))?;
    let help = "Map updates the kernel refused (those channels stay in user space).";
    write(
        enc,
        "turnpike_offload_refused_total",
        help,
        counter,
        one(o.refused),
    )?;
    Ok(())
}

/// Writes one metric family: its `# HELP` and `# TYPE` lines, then a sample per label
/// set. Counters too are written as plain samples under their `_total` name (see the
/// module docs, "Format").
fn write(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: Samples,
) -> Result<(), fmt::Error> {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in &samples {
        if labels.is_empty() {
            metric.encode_gauge(value)?;
        } else {
            metric.encode_family(labels)?.encode_gauge(value)?;
        }
    }
    Ok(())
}

/// Writes a histogram from per-bucket counts (not cumulative); what lies above the last
/// bound goes to `+Inf`.
fn histogram(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    bounds: &[u64; 10],
    h: &Histogram,
) -> Result<(), fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = bounds
        .iter()
        .zip(h.buckets)
        .map(|(&b, n)| (b as f64, n))
        .collect();
    let bounded: u64 = h.buckets.iter().sum();
    // The encoder writes `f64::MAX` as `le="+Inf"`.
    buckets.push((f64::MAX, h.count.saturating_sub(bounded)));
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    metric.encode_histogram::<NoLabelSet>(h.sum as f64, h.count, &buckets, None)
}

/// A single sample without labels.
fn one(value: u64) -> Samples {
    vec![(Vec::new(), value)]
}

/// A single label.
fn label(name: &'static str, value: &'static str) -> Labels {
    vec![(name, Cow::Borrowed(value))]
}

/// A `[transport][family]` table as samples.
fn by_transport_family(table: &[[u64; 3]; 3]) -> Samples {
    let mut out = Vec::with_capacity(9);
    for t in ClientTransport::ALL {
        for f in RelayFamilies::ALL {
            let labels = vec![
                ("transport", Cow::Borrowed(t.as_str())),
                ("family", Cow::Borrowed(f.as_str())),
            ];
            out.push((labels, table[t.index()][f as usize]));
        }
    }
    out
}

/// Packets and bytes relayed by direction and transport: what ended allocations
/// relayed plus what live ones have so far (an allocation's figures move from the live
/// sum to the ended one when it ends, so the total never goes down).
fn relayed(m: &MetricsSnapshot) -> (Samples, Samples) {
    let (s, g) = (&m.stats, &m.gauges);
    let mut packets = Vec::with_capacity(6);
    let mut bytes = Vec::with_capacity(6);
    for (direction, ended, live) in [
        ("to_peer", &s.ended_to_peer, &g.live_to_peer),
        ("to_client", &s.ended_to_client, &g.live_to_client),
    ] {
        for t in ClientTransport::ALL {
            let i = t.index();
            let labels = vec![
                ("direction", Cow::Borrowed(direction)),
                ("transport", Cow::Borrowed(t.as_str())),
            ];
            packets.push((labels.clone(), ended[i].packets + live[i].packets));
            bytes.push((labels, ended[i].bytes + live[i].bytes));
        }
    }
    (packets, bytes)
}

/// An end reason as a label value (snake case; [`EndReason::as_str`] is for logs).
fn end_reason(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Deleted => "deleted",
        EndReason::Expired => "expired",
        EndReason::CredentialExpired => "credential_expired",
        EndReason::ConnectionClosed => "connection_closed",
        EndReason::Ended => "ended",
        EndReason::Revoked => "revoked",
    }
}

/// A refusal as a label value: which of the code's cases it was.
fn reject_reason(reject: Reject) -> &'static str {
    match reject {
        Reject::TryAlternate => "try_alternate",
        Reject::BadRequest => "bad_request",
        Reject::ChannelNumberInUse => "channel_number_in_use",
        Reject::PeerOnAnotherChannel => "peer_on_another_channel",
        Reject::Forbidden => "forbidden",
        Reject::MobilityForbidden => "mobility_forbidden",
        Reject::AllocationMismatch => "allocation_mismatch",
        Reject::AddressFamilyNotSupported => "address_family_not_supported",
        Reject::WrongCredentials => "wrong_credentials",
        Reject::UnsupportedTransportProtocol => "unsupported_transport_protocol",
        Reject::PeerAddressFamilyMismatch => "peer_address_family_mismatch",
        Reject::ConnectionAlreadyExists => "connection_already_exists",
        Reject::ConnectionTimeoutOrFailure => "connection_timeout_or_failure",
        Reject::AllocationQuotaReached => "allocation_quota_reached",
        Reject::InsufficientCapacity => "insufficient_capacity",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line starting with `series ` (name and labels).
    fn sample(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn figures_land_in_their_series() {
        let mut m = MetricsSnapshot {
            workers: 2,
            cert_not_after: Some(1_900_000_000),
            draining: true,
            ..MetricsSnapshot::default()
        };
        m.gauges.allocations[0][0] = 3;
        m.stats.auth_failures[AuthFailure::BadIntegrity.index()] = 4;
        m.stats.peer_denied[DenyRule::Private.index()] = 5;
        m.stats.refused[Reject::AllocationQuotaReached.index()] = 6;
        m.stats.ended_to_peer[0].bytes = 100;
        m.gauges.live_to_peer[0].bytes = 20;
        m.stats.lifetime.observe(&LIFETIME_BOUNDS_SECS, 5);
        m.stats.lifetime.observe(&LIFETIME_BOUNDS_SECS, 100_000);
        let text = render(&m).unwrap();
        let want = [
            ("turnpike_workers", 2),
            (r#"turnpike_allocations{transport="udp",family="ipv4"}"#, 3),
            (r#"turnpike_allocations{transport="tls",family="dual"}"#, 0),
            (r#"turnpike_auth_failures_total{reason="bad_integrity"}"#, 4),
            (r#"turnpike_peer_denied_total{rule="private"}"#, 5),
            (
                r#"turnpike_refused_requests_total{code="486",reason="allocation_quota_reached"}"#,
                6,
            ),
            (
                r#"turnpike_relayed_bytes_total{direction="to_peer",transport="udp"}"#,
                120,
            ),
            (
                "turnpike_tls_certificate_expiry_timestamp_seconds",
                1_900_000_000,
            ),
            ("turnpike_draining", 1),
            ("turnpike_redirecting", 0),
            (
                r#"turnpike_allocation_lifetime_seconds_bucket{le="10.0"}"#,
                1,
            ),
            (
                r#"turnpike_allocation_lifetime_seconds_bucket{le="86400.0"}"#,
                1,
            ),
            (
                r#"turnpike_allocation_lifetime_seconds_bucket{le="+Inf"}"#,
                2,
            ),
            ("turnpike_allocation_lifetime_seconds_count", 2),
        ];
        for (series, value) in want {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE turnpike_auth_failures_total counter\n"));
        assert!(text.contains("turnpike_allocation_lifetime_seconds_sum 100005.0\n"));
    }

    #[test]
    fn offload_series_only_when_configured() {
        let text = render(&MetricsSnapshot::default()).unwrap();
        assert!(!text.contains("turnpike_offload"), "off: no series");
        let mut status = OffloadStatus {
            mode: turnpike_server::OffloadMode::Tc,
            interfaces: vec!["eth0".into()],
            routes: 3,
            ..OffloadStatus::default()
        };
        status.program.to_peer_packets = 7;
        status.program.to_client_bytes = 1200;
        status.program.pass_expired = 2;
        status.program.drop_bucket = 1;
        let m = MetricsSnapshot {
            offload: Some(status.clone()),
            ..MetricsSnapshot::default()
        };
        let text = render(&m).unwrap();
        let want = [
            ("turnpike_offload_active", 1),
            (r#"turnpike_offload_mode{mode="tc"}"#, 1),
            ("turnpike_offload_load_failures_total", 0),
            (
                r#"turnpike_offload_relayed_packets_total{direction="to_peer"}"#,
                7,
            ),
            (
                r#"turnpike_offload_relayed_bytes_total{direction="to_client"}"#,
                1200,
            ),
            (r#"turnpike_offload_passed_total{reason="expired"}"#, 2),
            (r#"turnpike_offload_dropped_total{reason="bandwidth"}"#, 1),
            ("turnpike_offload_routes", 3),
        ];
        for (series, value) in want {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        // Configured but not loaded.
        let failed = OffloadStatus {
            interfaces: Vec::new(),
            failure: Some("no privilege".into()),
            ..status
        };
        let m = MetricsSnapshot {
            offload: Some(failed),
            ..MetricsSnapshot::default()
        };
        let text = render(&m).unwrap();
        assert_eq!(sample(&text, "turnpike_offload_active"), Some(0));
        assert_eq!(
            sample(&text, "turnpike_offload_load_failures_total"),
            Some(1)
        );
    }

    #[test]
    fn no_certificate_no_expiry_series() {
        let text = render(&MetricsSnapshot::default()).unwrap();
        assert!(!text.contains("turnpike_tls_certificate_expiry"));
        let mut names = Vec::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap_or_default().to_owned();
            assert!(!names.contains(&name), "{name} written twice");
            assert!(name.starts_with("turnpike_"), "{name}");
            names.push(name);
        }
        assert!(names.len() > 30, "{} families", names.len());
    }
}
