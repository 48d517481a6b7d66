//! The in-kernel ChannelData fast path as the runtime runs it (`[offload]`): loading the
//! program at start (or saying once why it cannot), and turning the core's
//! [`ChannelRoute`]s into the program's map entries.
//!
//! The maps are shared by every worker behind one mutex: they change on ChannelBind,
//! CreatePermission, Refresh, a sweep or an allocation's end, never per datagram. Each
//! worker names its offloaded allocations with a 32-bit id the program's `ALLOCS` map is
//! keyed by (the core's session numbers are 64-bit) and reads their live counters for its
//! own metrics snapshot, so an allocation's figures are counted once: live in its
//! worker's snapshot, then in the ended totals the core keeps after
//! [`turnpike_proto::Host::end_offload`] handed them over.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use turnpike_offload::egress::{Egress, EthernetHop, egress, ethernet_hop, use_neighbour};
use turnpike_offload::{
    AllocCounters, BpfClock, FwdKey, Hook, Neigh, NeighKey, Offload, OffloadError, ProgramStats,
    RevKey, Route,
};
use turnpike_offload::{UserSlot, UserSlots};
use turnpike_proto::budget::{BudgetCells, SharedCells, UserBudget};
use turnpike_proto::server::offload::ChannelRoute;
use turnpike_proto::{FiveTuple, HashMap, Usage};

use crate::offload_config::{OffloadMode, OffloadSection};

/// The loaded program, shared by the workers.
pub(crate) struct KernelPath {
    maps: Mutex<Offload>,
    clock: BpfClock,
    /// The next allocation id to try (0 is never used).
    next_id: AtomicU32,
    /// Routes installed now (both directions count as one).
    routes: AtomicU64,
    /// Map updates the kernel refused (a full map, say): those channels stay in user
    /// space.
    refused: AtomicU64,
    /// At XDP: the next hops routes leave by, and their Ethernet addresses.
    neighbours: Option<Mutex<Neighbours>>,
    /// The thread that refreshes them, woken when a new one is not resolved yet.
    refresher: std::sync::OnceLock<std::thread::Thread>,
    /// Users' traffic budgets in the program's `USERS` slots.
    budgets: Arc<BudgetSlots>,
    /// The interfaces it is attached to.
    pub(crate) interfaces: Vec<String>,
}

/// The program's `USERS` slots: which are free.
struct BudgetSlots {
    slots: Arc<UserSlots>,
    /// Slots given back.
    free: Mutex<Vec<u32>>,
    /// The next slot never used.
    next: AtomicU32,
    clock: BpfClock,
}

/// One user's budget counters in a `USERS` slot; the slot is free again when the budget
/// is dropped (the ledger forgets a user's budget once no allocation holds it and its
/// period has ended).
struct KernelCells {
    pool: Arc<BudgetSlots>,
    index: u32,
    cells: &'static UserSlot,
}

impl KernelCells {
    fn take(pool: &Arc<BudgetSlots>) -> Option<Self> {
        let index = pool.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let index = match index {
            Some(i) => i,
            None => {
                let i = pool.next.fetch_add(1, Ordering::Relaxed);
                if i >= pool.slots.len() {
                    pool.next.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
                i
            }
        };
        Some(Self {
            pool: Arc::clone(pool),
            index,
            cells: pool.slots.get(index)?,
        })
    }
}

impl std::fmt::Debug for KernelCells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelCells")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl SharedCells for KernelCells {
    fn cells(&self) -> &BudgetCells {
        self.cells
    }

    fn ns(&self, now: Instant) -> u64 {
        self.pool.clock.ns(now)
    }

    fn slot(&self) -> u32 {
        self.index
    }
}

impl Drop for KernelCells {
    fn drop(&mut self) {
        // The program reads no limit from a slot no route names (routes go before their
        // allocation's budget does); cleared anyway, so a stale route charges nothing.
        for word in self.cells.iter() {
            word.store(0, Ordering::Relaxed);
        }
        self.pool
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.index);
    }
}

/// How often the XDP path reads the next hops' Ethernet addresses again: a neighbour
/// resolved since (a route's first datagrams to a new peer went through user space),
/// changed or gone shows within this. One that is missing or STALE is asked to be
/// resolved or confirmed ([`use_neighbour`]): XDP's sends bypass the neighbour table, so
/// nothing else would.
const NEIGHBOUR_REFRESH: Duration = Duration::from_secs(1);
/// While a next hop taken into use less than [`NEIGHBOUR_HURRY_FOR`] ago is unresolved,
/// the refresh runs this often instead, so a new peer's datagrams move into the kernel
/// within milliseconds of its resolution (an on-link neighbour resolves in about one).
const NEIGHBOUR_HURRY: Duration = Duration::from_millis(20);
const NEIGHBOUR_HURRY_FOR: Duration = Duration::from_secs(5);

/// The next hops XDP routes use, and what `NEIGH` holds for each.
#[derive(Default)]
struct Neighbours {
    hops: HashMap<(u32, IpAddr), HopState>,
}

struct HopState {
    /// How many installed routes leave by it.
    users: usize,
    /// What `NEIGH` holds.
    found: Option<EthernetHop>,
    /// When it was taken into use.
    since: Instant,
}

/// A route's next hop.
type Hop = (u32, IpAddr);

fn hop_of(e: &Egress) -> Hop {
    (e.ifindex, e.next_hop)
}

/// What `/metrics` and `doctor` show of the fast path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffloadStatus {
    /// The configured mode.
    pub mode: OffloadMode,
    /// Attached and relaying: the interfaces; empty when off or not loaded.
    pub interfaces: Vec<String>,
    /// Why it is not running although configured.
    pub failure: Option<String>,
    /// The program's counters (summed over CPUs).
    pub program: ProgramStats,
    /// Routes installed now.
    pub routes: u64,
    /// Route or allocation updates the kernel refused.
    pub refused: u64,
}

impl KernelPath {
    /// Loads and attaches the program as `[offload]` says; `None` when it is off or
    /// cannot load, in which case `failure` says why (logged once here).
    pub(crate) fn start(
        section: &OffloadSection,
        addresses: &[IpAddr],
    ) -> (Option<Arc<Self>>, Option<String>) {
        if section.mode == OffloadMode::Off {
            return (None, None);
        }
        let interfaces = match chosen(section, addresses) {
            Ok(found) => found,
            Err(e) => {
                let why = e.to_string();
                warn!(reason = %why, "offload: not loaded, relaying in user space");
                return (None, Some(why));
            }
        };
        let hook = section.hook().unwrap_or_default();
        match Offload::load(&interfaces, hook) {
            Ok(maps) => {
                info!(
                    ?interfaces,
                    ?hook,
                    "offload: ChannelData fast path attached"
                );
                let clock = *maps.clock();
                let budgets = Arc::new(BudgetSlots {
                    slots: maps.users(),
                    free: Mutex::new(Vec::new()),
                    next: AtomicU32::new(0),
                    clock,
                });
                let xdp = matches!(hook, Hook::Xdp(_));
                if xdp {
                    warn_veths(&interfaces);
                }
                let path = Arc::new(Self {
                    maps: Mutex::new(maps),
                    clock,
                    next_id: AtomicU32::new(1),
                    routes: AtomicU64::new(0),
                    refused: AtomicU64::new(0),
                    neighbours: xdp.then(|| Mutex::new(Neighbours::default())),
                    refresher: std::sync::OnceLock::new(),
                    budgets,
                    interfaces,
                });
                if xdp {
                    spawn_neighbour_refresh(Arc::downgrade(&path));
                }
                (Some(path), None)
            }
            Err(e) => {
                let why = e.to_string();
                warn!(reason = %why, ?interfaces, "offload: not loaded, relaying in user space");
                (None, Some(why))
            }
        }
    }

    /// A traffic budget for a new user in a `USERS` slot, which the program charges too;
    /// `None` when every slot is taken (the user's channels then stay in user space).
    pub(crate) fn new_budget(&self, now: Instant) -> Option<UserBudget> {
        let cells = KernelCells::take(&self.budgets)?;
        Some(UserBudget::shared(now, Box::new(cells)))
    }

    fn maps(&self) -> MutexGuard<'_, Offload> {
        // A panic while holding it cannot leave the maps half-written (each call is one
        // syscall), so a poisoned lock is still usable.
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The program's counters and the route count.
    pub(crate) fn status(&self, section: &OffloadSection) -> OffloadStatus {
        OffloadStatus {
            mode: section.mode,
            interfaces: self.interfaces.clone(),
            failure: None,
            program: self.maps().stats().unwrap_or_default(),
            routes: self.routes.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Counts a use of each of `hops` (XDP only); a next hop not used before gets its
    /// Ethernet addresses in `NEIGH` now, if the kernel has them.
    fn want(&self, hops: &[Hop]) {
        let Some(neighbours) = &self.neighbours else {
            return;
        };
        let mut n = neighbours.lock().unwrap_or_else(|e| e.into_inner());
        for &hop in hops {
            let entry = n.hops.entry(hop).or_insert_with(|| HopState {
                users: 0,
                found: None,
                since: Instant::now(),
            });
            entry.users += 1;
            if entry.users == 1 {
                let found = lookup(hop);
                entry.found = found;
                match found {
                    Some(found) => self.write_neigh(hop, found),
                    None => {
                        if let Some(thread) = self.refresher.get() {
                            thread.unpark();
                        }
                    }
                }
            }
        }
    }

    /// Counts a use of each of `hops` less; one no route uses leaves `NEIGH`.
    fn unwant(&self, hops: &[Hop]) {
        let Some(neighbours) = &self.neighbours else {
            return;
        };
        let mut n = neighbours.lock().unwrap_or_else(|e| e.into_inner());
        for hop in hops {
            let Some(entry) = n.hops.get_mut(hop) else {
                continue;
            };
            entry.users -= 1;
            if entry.users == 0 {
                n.hops.remove(hop);
                let _ = self.maps().remove_neigh(&NeighKey::new(hop.0, hop.1));
            }
        }
    }

    /// Reads every next hop's Ethernet addresses again and updates `NEIGH` where they
    /// changed: resolved since, moved, or gone (then the datagrams go through user
    /// space until it is resolved again). Returns when to look again.
    fn refresh_neighbours(&self) -> Duration {
        let Some(neighbours) = &self.neighbours else {
            return NEIGHBOUR_REFRESH;
        };
        let mut n = neighbours.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = NEIGHBOUR_REFRESH;
        for (&hop, entry) in &mut n.hops {
            let found = lookup(hop);
            if found.is_none() && entry.since.elapsed() < NEIGHBOUR_HURRY_FOR {
                next = NEIGHBOUR_HURRY;
            }
            let same = |a: Option<EthernetHop>| a.map(|h| (h.dst, h.src));
            if same(found) == same(entry.found) {
                continue;
            }
            entry.found = found;
            match found {
                Some(found) => self.write_neigh(hop, found),
                None => {
                    let _ = self.maps().remove_neigh(&NeighKey::new(hop.0, hop.1));
                }
            }
        }
        next
    }

    fn write_neigh(&self, hop: Hop, found: EthernetHop) {
        let neigh = Neigh {
            dst: found.dst,
            src: found.src,
        };
        if let Err(e) = self
            .maps()
            .insert_neigh(&NeighKey::new(hop.0, hop.1), &neigh)
        {
            self.refused("next hop", &e);
        }
    }

    fn refused(&self, what: &str, e: &dyn std::fmt::Display) {
        if self.refused.fetch_add(1, Ordering::Relaxed) == 0 {
            warn!(error = %e, "offload: the kernel refused a {what}; it stays in user space (logged once)");
        }
    }
}

/// The fast path as configured and as it came up: what the controller reports.
#[derive(Clone, Default)]
pub(crate) struct OffloadState {
    pub(crate) section: OffloadSection,
    pub(crate) path: Option<Arc<KernelPath>>,
    pub(crate) failure: Option<String>,
}

impl OffloadState {
    /// Loads the program if `[offload]` asks for it (see [`KernelPath::start`]).
    pub(crate) fn start(section: &OffloadSection, addresses: &[IpAddr]) -> Self {
        let (path, failure) = KernelPath::start(section, addresses);
        Self {
            section: section.clone(),
            path,
            failure,
        }
    }

    /// What `/metrics` and `doctor` show; `None` when `[offload]` is off.
    pub(crate) fn status(&self) -> Option<OffloadStatus> {
        if self.section.mode == OffloadMode::Off {
            return None;
        }
        Some(match &self.path {
            Some(path) => path.status(&self.section),
            None => OffloadStatus {
                mode: self.section.mode,
                failure: self.failure.clone(),
                ..OffloadStatus::default()
            },
        })
    }
}

/// One installed route: its allocation, its keys and values, and next hops (to the peer,
/// to the client).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Installed {
    allocation: u64,
    fwd: FwdKey,
    rev: RevKey,
    to_peer: Route,
    to_client: Route,
    hops: [Hop; 2],
}

/// One worker's use of the fast path.
pub(crate) struct WorkerKernel {
    path: Arc<KernelPath>,
    /// The core's session number → the program's allocation id and its bandwidth cap.
    ids: HashMap<u64, (u32, u64)>,
    /// The routes this worker installed (client 5-tuple, channel, peer): their keys in
    /// the maps and the next hops they leave by.
    installed: HashMap<(FiveTuple, u16, SocketAddr), Installed>,
}

impl WorkerKernel {
    /// The path it uses.
    pub(crate) fn path(&self) -> &Arc<KernelPath> {
        &self.path
    }

    pub(crate) fn new(path: Arc<KernelPath>) -> Self {
        Self {
            path,
            ids: HashMap::default(),
            installed: HashMap::default(),
        }
    }

    /// Creates allocation `serial`'s kernel state, or sets its new cap: its routes carry
    /// the rate, so they are replaced (`ALLOCS`, whose counters the program updates, is
    /// never rewritten).
    pub(crate) fn allocation(&mut self, serial: u64, rate: u64) {
        let mut maps = self.path.maps();
        if let Some((_, cap)) = self.ids.get_mut(&serial) {
            *cap = rate;
            for route in self
                .installed
                .values_mut()
                .filter(|r| r.allocation == serial)
            {
                route.to_peer.rate = rate;
                route.to_client.rate = rate;
                let done = maps
                    .insert_forward(&route.fwd, &route.to_peer)
                    .and_then(|()| maps.insert_reverse(&route.rev, &route.to_client));
                if let Err(e) = done {
                    self.path.refused("bandwidth cap", &e);
                }
            }
            return;
        }
        // Ids are taken in turn; one still in use (after 2^32 allocations) is skipped.
        for _ in 0..16 {
            let id = self.path.next_id.fetch_add(1, Ordering::Relaxed);
            if id == 0 {
                continue;
            }
            match maps.insert_alloc(id, rate, Instant::now()) {
                Ok(true) => {
                    self.ids.insert(serial, (id, rate));
                    return;
                }
                Ok(false) => continue,
                Err(e) => {
                    self.path.refused("allocation", &e);
                    return;
                }
            }
        }
    }

    /// Installs (or refreshes) `route`, whose relay socket is bound at `relay`.
    pub(crate) fn install(&mut self, route: &ChannelRoute, relay: SocketAddr) {
        let Some(&(id, rate)) = self.ids.get(&route.allocation) else {
            return;
        };
        let until = self.path.clock.ns(route.until);
        let channel = route.channel.value();
        // The kernel's routes out, asked now (a route that changes later is asked again
        // when the channel or permission is refreshed, within five minutes).
        let (client, mut server) = (route.client.client, route.client.server);
        let ways = egress(relay.ip(), route.peer.ip())
            .and_then(|p| Ok((p, egress(server.ip(), client.ip())?)));
        let (out_peer, out_client) = match ways {
            Ok(ways) => ways,
            Err(e) => {
                self.path.refused("route (no route out)", &e);
                return;
            }
        };
        // A wildcard listener: the client is taken to have sent to the address the
        // answers leave from (the route's preferred source, as for user space's own
        // sends). If it sent to another, the kernel finds no route and user space
        // relays, as before.
        if server.ip().is_unspecified() {
            let Some(source) = out_client.source else {
                return;
            };
            server.set_ip(source);
        }
        let (fwd, rev) = keys(client, server, route, relay);
        tracing::debug!(%client, %server, %relay, peer = %route.peer, channel, "offload: route installed");
        let df = route.dont_fragment;
        let mut to_peer = Route::new(relay, route.peer, 0, df, until, id, out_peer);
        let mut to_client = Route::new(server, client, channel, false, until, id, out_client);
        // The user's budget: `USERS` index + 1.
        let user = route.budget.map_or(0, |slot| slot + 1);
        for r in [&mut to_peer, &mut to_client] {
            r.user = user;
            r.rate = rate;
        }
        let mut maps = self.path.maps();
        let mut done = maps.insert_forward(&fwd, &to_peer);
        if done.is_ok() {
            done = maps.insert_reverse(&rev, &to_client);
        }
        drop(maps);
        let key = (route.client, channel, route.peer);
        let new = Installed {
            allocation: route.allocation,
            fwd,
            rev,
            to_peer,
            to_client,
            hops: [hop_of(&out_peer), hop_of(&out_client)],
        };
        match done {
            Ok(()) => {
                // The new next hops are counted before the old ones are let go, so
                // one both use stays in `NEIGH`.
                self.path.want(&new.hops);
                match self.installed.insert(key, new) {
                    None => {
                        self.path.routes.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(old) => {
                        self.path.unwant(&old.hops);
                        // The client's address resolved differently this time: the
                        // old entries go.
                        if (old.fwd, old.rev) != (fwd, rev) {
                            let mut maps = self.path.maps();
                            let _ = maps.remove_forward(&old.fwd);
                            let _ = maps.remove_reverse(&old.rev);
                        }
                    }
                }
            }
            Err(e) => {
                // Half a route is worse than none: user space relays both ways.
                let mut maps = self.path.maps();
                let _ = maps.remove_forward(&fwd);
                let _ = maps.remove_reverse(&rev);
                let old = self.installed.remove(&key);
                if let Some(old) = old {
                    let _ = maps.remove_forward(&old.fwd);
                    let _ = maps.remove_reverse(&old.rev);
                    self.path.routes.fetch_sub(1, Ordering::Relaxed);
                }
                drop(maps);
                if let Some(old) = old {
                    self.path.unwant(&old.hops);
                }
                self.path.refused("route", &e);
            }
        }
    }

    /// Takes `route` out (tolerating one that is not there).
    pub(crate) fn withdraw(&mut self, route: &ChannelRoute) {
        let key = (route.client, route.channel.value(), route.peer);
        let Some(old) = self.installed.remove(&key) else {
            return;
        };
        {
            let mut maps = self.path.maps();
            let _ = maps.remove_forward(&old.fwd);
            let _ = maps.remove_reverse(&old.rev);
        }
        self.path.routes.fetch_sub(1, Ordering::Relaxed);
        self.path.unwant(&old.hops);
    }

    /// Removes allocation `serial`'s state and returns what the kernel relayed for it.
    pub(crate) fn end(&mut self, serial: u64) -> Option<(Usage, Usage)> {
        let (id, _) = self.ids.remove(&serial)?;
        let counters = self.path.maps().remove_alloc(id).ok().flatten()?;
        Some(usage(&counters))
    }

    /// What the kernel relayed so far for this worker's live allocations.
    pub(crate) fn live(&self) -> (Usage, Usage) {
        let maps = self.path.maps();
        let (mut to_peer, mut to_client) = (Usage::default(), Usage::default());
        for &(id, _) in self.ids.values() {
            if let Ok(Some(c)) = maps.alloc_counters(id) {
                let (p, c) = usage(&c);
                to_peer.absorb(p);
                to_client.absorb(c);
            }
        }
        (to_peer, to_client)
    }
}

fn keys(
    client: SocketAddr,
    server: SocketAddr,
    route: &ChannelRoute,
    relay: SocketAddr,
) -> (FwdKey, RevKey) {
    (
        FwdKey::new(client, server, route.channel.value()),
        RevKey::new(route.peer, relay),
    )
}

fn usage(c: &AllocCounters) -> (Usage, Usage) {
    (
        Usage {
            packets: c.to_peer_packets,
            bytes: c.to_peer_bytes,
        },
        Usage {
            packets: c.to_client_packets,
            bytes: c.to_client_bytes,
        },
    )
}

/// The interfaces to attach to: as configured, else those holding `addresses`.
fn chosen(section: &OffloadSection, addresses: &[IpAddr]) -> Result<Vec<String>, OffloadError> {
    if !section.interfaces.is_empty() {
        return Ok(section.interfaces.clone());
    }
    let found = interfaces_of(addresses).map_err(OffloadError::Interfaces)?;
    if found.is_empty() {
        return Err(OffloadError::NoInterfaces);
    }
    Ok(found)
}

/// The interfaces holding `addresses`; with an unspecified one among them, every
/// interface that is up, but loopback.
fn interfaces_of(addresses: &[IpAddr]) -> std::io::Result<Vec<String>> {
    let all = if_addrs::get_if_addrs()?;
    let any = addresses.iter().any(IpAddr::is_unspecified);
    let mut names: Vec<String> = all
        .iter()
        .filter(|i| !i.is_loopback())
        .filter(|i| any || addresses.contains(&i.ip()))
        .map(|i| i.name.clone())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// What `turnpike doctor` says of `[offload]`: `None` when it is off; else the interfaces
/// it would attach to, and whether the kernel takes the program there (the maps made and
/// the program verified, not attached, so a running server's program is left alone).
pub fn probe_offload(config: &crate::Config) -> Option<(Vec<String>, Result<(), OffloadError>)> {
    let section = &config.offload;
    if section.mode == OffloadMode::Off {
        return None;
    }
    let mut addresses: Vec<IpAddr> = config.listen.udp.iter().map(SocketAddr::ip).collect();
    addresses.extend(config.relay.ips.iter().copied());
    Some(match chosen(section, &addresses) {
        Ok(interfaces) => {
            let verdict = Offload::probe(&interfaces, section.hook().unwrap_or_default());
            (interfaces, verdict)
        }
        Err(e) => (Vec::new(), Err(e)),
    })
}

/// The Ethernet addresses of `hop`, if the kernel has them; one it has not resolved, or
/// holds as STALE, it is asked to resolve or confirm (found next time).
fn lookup(hop: Hop) -> Option<EthernetHop> {
    let found = ethernet_hop(hop.0, hop.1).ok().flatten();
    if !found.is_some_and(|h| h.fresh) {
        let _ = use_neighbour(hop.0, hop.1);
    }
    found
}

/// Reads the next hops again every [`NEIGHBOUR_REFRESH`] (or [`NEIGHBOUR_HURRY`]) while
/// the path lives.
fn spawn_neighbour_refresh(path: Weak<KernelPath>) {
    let weak = path.clone();
    let spawned = std::thread::Builder::new()
        .name("turnpike-neigh".to_owned())
        .spawn(move || {
            let mut next = NEIGHBOUR_REFRESH;
            loop {
                // Woken early by `want` when a new next hop is not resolved yet.
                std::thread::park_timeout(next);
                match weak.upgrade() {
                    Some(path) => next = path.refresh_neighbours(),
                    None => break,
                }
            }
        });
    match spawned {
        Ok(handle) => {
            if let Some(path) = path.upgrade() {
                let _ = path.refresher.set(handle.thread().clone());
            }
        }
        Err(e) => {
            warn!(error = %e, "offload: no thread to refresh next hops; new ones stay in user space");
        }
    }
}

/// The interfaces among `interfaces` that are veths (by their driver).
pub fn veths(interfaces: &[String]) -> Vec<String> {
    interfaces
        .iter()
        .filter(|name| turnpike_offload::driver(name).is_some_and(|d| d == "veth"))
        .cloned()
        .collect()
}

/// XDP on a veth sees the partial checksum of a sender that leaves it to offload, and
/// would relay it as if complete: said once at start.
fn warn_veths(interfaces: &[String]) {
    let veths = veths(interfaces);
    if !veths.is_empty() {
        warn!(
            ?veths,
            "offload: XDP on veth interfaces relays correct checksums only from senders \
             without tx checksum offload (`ethtool -K <peer> tx off`); mode \"tc\" has no \
             such limit"
        );
    }
}
