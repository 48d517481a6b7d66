//! Allocate (RFC 8656 §7.2, RFC 6156 §4.2; TCP relays RFC 6062 §5.1; mobility RFC 8016
//! §3.1; redirection RFC 8489 §10).
//!
//! In two steps: [`AllocateRequest::parse`] reads the attributes into a typed request and
//! checks them against each other, touching nothing; [`TurnServer::allocate`] then takes
//! the quota slot, binds the relays and answers. What it took is held by an [`Undo`]
//! guard until the allocation is in the table, so every failure on the way gives it all
//! back, whichever step failed.

use core::net::SocketAddr;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use turnpike_stun::attr::{
    AdditionalAddressFamily, AddressErrorCode, AddressFamily, DontFragment, EvenPort, Lifetime,
    MobilityTicket, RequestedAddressFamily, RequestedTransport, ReservationToken,
    TransportProtocol, XorMappedAddress, XorRelayedAddress,
};
use turnpike_stun::{ErrorCode, Message};

use super::{EndReason, Handled, RESERVATION_LIFETIME, Reject, Request, TurnServer, quota_user};
use crate::allocation::{Allocation, FiveTuple, Mobility, Relay, Usage, family_index};
use crate::host::{BoundRelay, Family, Host, PortRequest, RelayError, RelayId};
use crate::mobility::ticket_place;
use crate::quota::{QuotaExceeded, TokenBucket};

/// Where the primary relay comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// A port reserved by an earlier Allocate (RESERVATION-TOKEN).
    Reserved([u8; 8]),
    /// A new port of the range, as asked (EVEN-PORT or any).
    New(PortRequest),
}

/// An Allocate request's attributes, parsed and checked against each other.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AllocateRequest {
    /// A TCP relay (RFC 6062) rather than a UDP one.
    tcp: bool,
    /// The primary relay's family (REQUESTED-ADDRESS-FAMILY, IPv4 by default).
    family: Family,
    /// ADDITIONAL-ADDRESS-FAMILY: an IPv6 relay too (RFC 8656 §7.2).
    additional: bool,
    port: Port,
    dont_fragment: bool,
    lifetime: Option<Lifetime>,
    /// An empty MOBILITY-TICKET asked for mobility (RFC 8016 §3.1).
    mobility: bool,
}

impl AllocateRequest {
    /// Reads and checks an Allocate's attributes. `tcp_relays`: whether TCP relays are
    /// served at all (configured, and the host supports them); `mobility`: whether
    /// mobility is on.
    ///
    /// # Errors
    ///
    /// The refusal the RFCs give for the first rule the request breaks.
    pub(crate) fn parse(
        msg: &Message<&[u8]>,
        from: &FiveTuple,
        tcp_relays: bool,
        mobility: bool,
    ) -> Result<Self, Reject> {
        let transport = msg.get::<RequestedTransport>()?.ok_or(Reject::BadRequest)?;
        let dont_fragment = msg.get::<DontFragment>()?.is_some();
        let token = msg.get::<ReservationToken>()?;
        let even = msg.get::<EvenPort>()?;
        let requested = msg.get::<RequestedAddressFamily>()?;
        let additional = msg.get::<AdditionalAddressFamily>()?;
        let lifetime = msg.get::<Lifetime>()?;
        let tcp = match transport.0 {
            TransportProtocol::UDP => false,
            // RFC 6062 §5.1, in its order: a protocol other than UDP or TCP is 442 (and
            // so is TCP while TCP relaying is off); TCP from a client that is not on
            // TCP or TLS is 400; DONT-FRAGMENT, EVEN-PORT and RESERVATION-TOKEN make no
            // sense for a TCP relay: 400.
            TransportProtocol::TCP if tcp_relays => {
                if !from.transport.is_stream() {
                    return Err(Reject::BadRequest);
                }
                if dont_fragment || even.is_some() || token.is_some() {
                    return Err(Reject::BadRequest);
                }
                true
            }
            _ => return Err(Reject::UnsupportedTransportProtocol),
        };
        // RFC 8016 §3.1: an empty MOBILITY-TICKET asks for mobility.
        let mobility = match msg.get::<MobilityTicket>()? {
            None => false,
            Some(_) if !mobility => return Err(Reject::MobilityForbidden),
            Some(t) if !t.0.is_empty() => return Err(Reject::BadRequest),
            Some(_) => true,
        };
        // RFC 8656 §7.2: RESERVATION-TOKEN excludes EVEN-PORT, REQUESTED-ADDRESS-FAMILY
        // and ADDITIONAL-ADDRESS-FAMILY; the two family attributes exclude each other;
        // ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6.
        if token.is_some() && (even.is_some() || requested.is_some() || additional.is_some()) {
            return Err(Reject::BadRequest);
        }
        if requested.is_some() && additional.is_some() {
            return Err(Reject::BadRequest);
        }
        if additional.is_some_and(|a| a.0 != AddressFamily::IPV6) {
            return Err(Reject::BadRequest);
        }
        // A reserved port pair cannot span two families (RFC 8656 §7.2: EVEN-PORT with the
        // R bit and ADDITIONAL-ADDRESS-FAMILY together are a 400).
        if even.is_some_and(|e| e.reserve) && additional.is_some() {
            return Err(Reject::BadRequest);
        }
        let family = match requested.map(|r| r.0) {
            None | Some(AddressFamily::IPV4) => Family::V4,
            Some(AddressFamily::IPV6) => Family::V6,
            Some(_) => return Err(Reject::AddressFamilyNotSupported),
        };
        let port = match (token, even) {
            (Some(t), _) => Port::Reserved(t.0),
            (None, Some(e)) => Port::New(PortRequest::Even {
                reserve_next: e.reserve,
            }),
            (None, None) => Port::New(PortRequest::Any),
        };
        Ok(Self {
            tcp,
            family,
            additional: additional.is_some(),
            port,
            dont_fragment,
            lifetime,
            mobility,
        })
    }
}

/// The key of RESERVATION-TOKENs: unguessable tokens from the core's random numbers.
pub(crate) struct TokenKey(Hmac<Sha256>);

impl TokenKey {
    /// Derived from the nonce secret under its own label.
    pub(crate) fn new(secret: &[u8]) -> Self {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        mac.update(b"reservation-token");
        Self(mac)
    }

    fn token(&self, random: u64) -> [u8; 8] {
        let mut mac = self.0.clone();
        mac.update(&random.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut t = [0u8; 8];
        t.copy_from_slice(&full[..8]);
        t
    }
}

/// What a half-made allocation holds outside the core: released when the guard drops,
/// unless [`Undo::commit`] handed it over to the allocation.
struct Undo<'a, H: Host> {
    host: &'a mut H,
    /// The quota slot's user.
    user: &'a str,
    /// Relays bound so far (at most: IPv4, IPv6, a reserved next port).
    relays: [Option<RelayId>; 3],
    /// A reservation handed to the host for a port pair.
    token: Option<[u8; 8]>,
    now: Instant,
    committed: bool,
}

impl<'a, H: Host> Undo<'a, H> {
    fn new(host: &'a mut H, user: &'a str, now: Instant) -> Self {
        Self {
            host,
            user,
            relays: [None; 3],
            token: None,
            now,
            committed: false,
        }
    }

    fn hold(&mut self, relay: RelayId) {
        if let Some(free) = self.relays.iter_mut().find(|r| r.is_none()) {
            *free = Some(relay);
        }
    }

    /// Everything now belongs to the allocation.
    fn commit(mut self) {
        self.committed = true;
    }
}

impl<H: Host> Drop for Undo<'_, H> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for relay in self.relays.iter().flatten() {
            self.host.release_relay(*relay);
        }
        if let Some(token) = self.token {
            if let Some((relay, _)) = self.host.claim_reservation(token, self.now) {
                self.host.release_relay(relay);
            }
        }
        self.host.release_allocation(self.user);
    }
}

impl TurnServer {
    /// Allocate; see the module docs.
    pub(crate) fn allocate(
        &mut self,
        req: &Request<'_>,
        out: &mut [u8],
        host: &mut impl Host,
    ) -> Handled {
        let (now, from) = (req.now, req.from);
        if let Some(id) = self.table.by_five_tuple(&from) {
            if self.table[id].is_live(now) {
                return Err(Reject::AllocationMismatch);
            }
            // Expired but not yet swept: it is gone, so the 5-tuple is free again.
            self.remove(id, now, EndReason::Expired, host);
        }
        // A 5-tuple that is an RFC 6062 client data connection carries no more STUN; one
        // that got here anyway must not also become a control connection.
        if self.data_clients.contains_key(&from) {
            return Err(Reject::BadRequest);
        }
        // Draining: every new allocation goes elsewhere (after authentication, so the
        // signed 300 can be trusted, RFC 8489 §10).
        if self.redirect && self.has_alternate(&from) {
            return Err(Reject::TryAlternate);
        }
        // Draining to stop: 300 to a sibling, 508 where none is configured
        // ([`TurnServer::set_draining`]).
        if self.draining {
            return Err(Reject::TryAlternate);
        }
        let tcp_relays = self.config.turn.tcp_relay && host.supports_tcp_relay();
        let request =
            AllocateRequest::parse(req.msg, &from, tcp_relays, self.config.turn.mobility)?;
        if matches!(request.port, Port::New(_)) && !host.supports(request.family) {
            return Err(Reject::AddressFamilyNotSupported);
        }

        let user = quota_user(&req.auth.username);
        // The user's traffic budget, when one is configured: spent, it is over quota.
        let limits = self.config.quotas.user_limits();
        let budget = if limits.any() {
            host.user_budget(user, now, limits.period)
        } else {
            None
        };
        if budget.as_ref().is_some_and(|b| b.spent(now, &limits)) {
            return Err(Reject::AllocationQuotaReached);
        }
        match host.acquire_allocation(&self.config.quotas, user) {
            Ok(()) => {}
            Err(QuotaExceeded::User) => return Err(Reject::AllocationQuotaReached),
            // The server is full: another one may not be (RFC 8656 §7.2: the server may
            // reject an Allocate with 300 Try Alternate to redirect the client).
            Err(QuotaExceeded::Total) if self.has_alternate(&from) => {
                return Err(Reject::TryAlternate);
            }
            Err(QuotaExceeded::Total) => return Err(Reject::InsufficientCapacity),
        }
        let mut undo = Undo::new(host, user, now);

        let primary = self.bind_primary(&request, &from, &mut undo)?;
        let mut relays = [None, None];
        relays[family_index(Family::of(primary.addr))] = Some(primary);
        // Dual allocation (RFC 8656 §7.2, ADDITIONAL-ADDRESS-FAMILY): the IPv6 part may
        // fail on its own; the answer then carries ADDRESS-ERROR-CODE for it.
        let mut additional_error = None;
        if request.additional {
            match bind(undo.host, request.tcp, Family::V6, PortRequest::Any) {
                Ok(b) => {
                    undo.hold(b.relay);
                    relays[1] = Some(Relay {
                        id: b.relay,
                        addr: b.addr,
                    });
                }
                Err(RelayError::FamilyUnavailable) => {
                    additional_error = Some(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED);
                }
                Err(RelayError::Exhausted) => {
                    additional_error = Some(ErrorCode::INSUFFICIENT_CAPACITY);
                }
            }
        }

        let mut lifetime = self.granted_lifetime(request.lifetime);
        let credential_expires = self.credential_deadline(now, req);
        if let Some(deadline) = credential_expires {
            lifetime = lifetime.min(deadline.saturating_duration_since(now));
        }
        // The id `insert` will give the allocation: the ticket names it.
        let id = self.table.next_id();
        let ticket = match request.mobility {
            false => None,
            true => {
                let place =
                    ticket_place(self.shard, id.slot()).ok_or(Reject::InsufficientCapacity)?;
                let nonce = self.next_random();
                Some(self.ticket_key.mint(place, 0, nonce))
            }
        };
        let client = from.client;
        let reservation_token = undo.token;
        let n = self
            .write_answer(out, &self.answer(req, req.success()), |w| {
                for relay in relays.iter().flatten() {
                    w.put(&XorRelayedAddress(relay.addr))?;
                }
                if let Some(code) = additional_error {
                    w.put(&AddressErrorCode {
                        family: AddressFamily::IPV6,
                        code,
                        reason: code.reason(),
                    })?;
                }
                w.put(&Lifetime(lifetime.as_secs() as u32))?;
                if let Some(t) = reservation_token {
                    w.put(&ReservationToken(t))?;
                }
                if let Some(t) = &ticket {
                    w.put(&MobilityTicket(t))?;
                }
                w.put(&XorMappedAddress(SocketAddr::new(
                    client.ip().to_canonical(),
                    client.port(),
                )))
            })
            // Could not even answer: the guard undoes it all, so no orphan stays behind.
            .map_err(|_| Reject::InsufficientCapacity)?;
        let serial = self.next_serial();
        let quotas = &self.config.quotas;
        let inserted = self.table.insert(Allocation {
            five_tuple: from,
            username: req.auth.username.as_str().into(),
            relays: relays.map(|r| r.map(|r| r.id)),
            expires: now + lifetime,
            credential_expires,
            permissions: Vec::new(),
            channels: Vec::new(),
            bucket: TokenBucket::new(now, quotas.bandwidth_bytes_per_sec),
            dont_fragment: request.dont_fragment,
            tcp: request.tcp,
            connections: Vec::new(),
            cached: None,
            mobility: ticket.map(|ticket| {
                Box::new(Mobility {
                    ticket,
                    generation: 0,
                })
            }),
            icmp_bucket: TokenBucket::new(now, u64::from(self.config.turn.icmp_per_second)),
            created: now,
            relayed: relays.map(|r| r.map(|r| r.addr)),
            to_peer: Usage::default(),
            to_client: Usage::default(),
            serial,
            budget,
            offloaded: None,
        });
        debug_assert_eq!(inserted, id, "the ticket names the slot used");
        undo.commit();
        if reservation_token.is_some() {
            let until = now + RESERVATION_LIFETIME;
            self.reservations_until = Some(self.reservations_until.map_or(until, |u| u.max(until)));
        }
        self.stats.record_created(&self.table[id]);
        self.schedule_sweep(now);
        Ok(n)
    }

    /// Binds (or claims) the primary relay, and for EVEN-PORT with the R bit hands the
    /// next port to the host as a reservation under a new token.
    fn bind_primary<H: Host>(
        &mut self,
        request: &AllocateRequest,
        from: &FiveTuple,
        undo: &mut Undo<'_, H>,
    ) -> Result<Relay, Reject> {
        let port = match request.port {
            Port::Reserved(token) => {
                // An unknown or expired token: the port is gone (RFC 8656 §7.2: 508).
                let (id, addr) = undo
                    .host
                    .claim_reservation(token, undo.now)
                    .ok_or(Reject::InsufficientCapacity)?;
                undo.hold(id);
                return Ok(Relay { id, addr });
            }
            Port::New(port) => port,
        };
        let bound = match bind(undo.host, request.tcp, request.family, port) {
            Ok(bound) => bound,
            Err(RelayError::FamilyUnavailable) => return Err(Reject::AddressFamilyNotSupported),
            Err(RelayError::Exhausted) if self.has_alternate(from) => {
                return Err(Reject::TryAlternate);
            }
            Err(RelayError::Exhausted) => return Err(Reject::InsufficientCapacity),
        };
        undo.hold(bound.relay);
        if let Some((relay, addr)) = bound.reserved {
            if request.tcp {
                // Not asked for: a TCP relay has no port pair.
                undo.host.release_relay(relay);
            } else {
                let random = self.next_random();
                let token = self.token_key.token(random);
                undo.host
                    .hold_reservation(token, relay, addr, undo.now + RESERVATION_LIFETIME);
                undo.token = Some(token);
            }
        }
        Ok(Relay {
            id: bound.relay,
            addr: bound.addr,
        })
    }

    /// With `strict_expiry`, when the request's REST credential runs out.
    pub(crate) fn credential_deadline(&self, now: Instant, req: &Request<'_>) -> Option<Instant> {
        if !self.config.turn.strict_expiry {
            return None;
        }
        let expiry = req.auth.expiry?;
        let left = expiry.saturating_sub(self.unix_now(now));
        Some(now + core::time::Duration::from_secs(left))
    }
}

/// Binds a UDP or TCP relay of `family`.
fn bind(
    host: &mut impl Host,
    tcp: bool,
    family: Family,
    port: PortRequest,
) -> Result<BoundRelay, RelayError> {
    if tcp {
        host.bind_tcp_relay(family)
    } else {
        host.bind_relay(family, port)
    }
}
