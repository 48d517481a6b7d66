//! Loading, attaching and feeding the program.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::sync::Arc;
use std::time::Instant;

use aya::Ebpf;
use aya::maps::{HashMap, IterableMap as _, Map, MapData, MapError, PerCpuArray};
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode, tc};
use aya::util::KernelVersion;

use crate::abi::{
    AllocCounters, AllocState, FwdKey, Neigh, NeighKey, ProgramStats, RevKey, Route, stat,
};
use crate::clock::BpfClock;
use crate::error::{AyaError, OffloadError};
use crate::users::UserSlots;

/// Where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hook {
    /// TC ingress (`bpf/turn_tc.bpf.c`): any interface, any driver, skbs with checksum
    /// offload state (veth and local senders included).
    #[default]
    Tc,
    /// XDP (`bpf/turn_xdp.bpf.c`), before an skb exists: frames from a NIC, whose
    /// checksums are complete.
    Xdp(XdpAttach),
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpAttach {
    /// The driver's own XDP where it has one, else generic XDP (the kernel's choice).
    #[default]
    Auto,
    /// The driver's own XDP only; an interface without it fails to attach.
    Native,
    /// Generic XDP (in the stack, after the skb is built): works everywhere, slower.
    Generic,
}

impl Hook {
    /// The program's name in its object (its C function).
    fn program(self) -> &'static str {
        match self {
            Self::Tc => "turn_offload",
            Self::Xdp(_) => "turn_offload_xdp",
        }
    }
}
/// `BPF_NOEXIST` and `BPF_F_LOCK` (`include/uapi/linux/bpf.h`).
const BPF_NOEXIST: u64 = 1;
const BPF_F_LOCK: u64 = 4;
/// `MAX_USERS` of `bpf/turn_common.h`: the `USERS` array's length.
const MAX_USERS: u32 = 65_536;
/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM`.
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;

/// The object `build.rs` compiled for `hook` (feature `ebpf`).
#[cfg(feature = "ebpf")]
fn object(hook: Hook) -> &'static [u8] {
    match hook {
        Hook::Tc => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/turn_tc.bpf.o")),
        Hook::Xdp(_) => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/turn_xdp.bpf.o")),
    }
}

/// The loaded program, attached at TC ingress or XDP of some interfaces, and its maps.
///
/// Dropping it detaches the program and frees the maps (when no one else holds them).
pub struct Offload {
    fwd: HashMap<MapData, FwdKey, Route>,
    rev: HashMap<MapData, RevKey, Route>,
    allocs: HashMap<MapData, u32, AllocState>,
    neigh: HashMap<MapData, NeighKey, Neigh>,
    users: Arc<UserSlots>,
    stats: PerCpuArray<MapData, u64>,
    clock: BpfClock,
    hook: Hook,
    interfaces: Vec<String>,
    /// Owns the program and its links; dropped last.
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Offload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offload")
            .field("hook", &self.hook)
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl Offload {
    /// Loads the program for `hook` and attaches it to each of `interfaces`: at TC
    /// ingress (TCX on kernels ≥ 6.6, else through a `clsact` qdisc it adds if
    /// missing), or at XDP as `hook` says.
    ///
    /// # Errors
    ///
    /// [`OffloadError::NotBuilt`] without the `ebpf` feature; otherwise why the kernel
    /// refused (privilege, no BPF, a missing interface, the verifier, a driver without
    /// native XDP).
    pub fn load(interfaces: &[String], hook: Hook) -> Result<Self, OffloadError> {
        #[cfg(feature = "ebpf")]
        {
            Self::load_object(object(hook), interfaces, hook)
        }
        #[cfg(not(feature = "ebpf"))]
        {
            let _ = (interfaces, hook);
            Err(OffloadError::NotBuilt)
        }
    }

    /// Checks that the program would load — the interfaces exist, the kernel takes the
    /// maps and its verifier accepts the program — without attaching it anywhere (so a
    /// running server's program is left alone). For `turnpike doctor`.
    ///
    /// # Errors
    ///
    /// As [`Offload::load`].
    pub fn probe(interfaces: &[String], hook: Hook) -> Result<(), OffloadError> {
        #[cfg(feature = "ebpf")]
        {
            Self::prepare(object(hook), interfaces, hook).map(drop)
        }
        #[cfg(not(feature = "ebpf"))]
        {
            let _ = (interfaces, hook);
            Err(OffloadError::NotBuilt)
        }
    }

    /// The object loaded and its program verified, not attached.
    #[cfg_attr(not(feature = "ebpf"), allow(dead_code))]
    fn prepare(object: &[u8], interfaces: &[String], hook: Hook) -> Result<Ebpf, OffloadError> {
        if interfaces.is_empty() {
            return Err(OffloadError::NoInterfaces);
        }
        for name in interfaces {
            if ifindex(name).is_none() {
                return Err(OffloadError::InterfaceMissing {
                    interface: name.clone(),
                });
            }
        }
        let mut ebpf = Ebpf::load(object)
            .map_err(|e| OffloadError::classify("creating maps", AyaError::Ebpf(e)))?;
        let name = hook.program();
        let program = ebpf
            .program_mut(name)
            .ok_or(OffloadError::MissingObject { name })?;
        let loaded = match hook {
            Hook::Tc => <&mut SchedClassifier>::try_from(program).and_then(|p| p.load()),
            Hook::Xdp(_) => <&mut Xdp>::try_from(program).and_then(|p| p.load()),
        };
        loaded.map_err(|e| OffloadError::classify("loading the program", AyaError::Program(e)))?;
        Ok(ebpf)
    }

    #[cfg_attr(not(feature = "ebpf"), allow(dead_code))]
    fn load_object(object: &[u8], interfaces: &[String], hook: Hook) -> Result<Self, OffloadError> {
        let mut ebpf = Self::prepare(object, interfaces, hook)?;
        let name = hook.program();
        let program = ebpf
            .program_mut(name)
            .ok_or(OffloadError::MissingObject { name })?;
        match hook {
            Hook::Tc => {
                let program: &mut SchedClassifier = program.try_into().map_err(|e| {
                    OffloadError::classify("finding the program", AyaError::Program(e))
                })?;
                attach_tc(program, interfaces)?;
            }
            Hook::Xdp(how) => {
                let program: &mut Xdp = program.try_into().map_err(|e| {
                    OffloadError::classify("finding the program", AyaError::Program(e))
                })?;
                let flags = match how {
                    XdpAttach::Auto => XdpMode::Default,
                    XdpAttach::Native => XdpMode::Driver,
                    XdpAttach::Generic => XdpMode::Skb,
                };
                for name in interfaces {
                    program
                        .attach(name, flags)
                        .map_err(|e| OffloadError::classify("attaching", AyaError::Program(e)))?;
                }
            }
        }
        let fwd =
            HashMap::try_from(take(&mut ebpf, "FWD")?).map_err(|e| OffloadError::map("FWD", e))?;
        let rev =
            HashMap::try_from(take(&mut ebpf, "REV")?).map_err(|e| OffloadError::map("REV", e))?;
        let allocs = HashMap::try_from(take(&mut ebpf, "ALLOCS")?)
            .map_err(|e| OffloadError::map("ALLOCS", e))?;
        let neigh = HashMap::try_from(take(&mut ebpf, "NEIGH")?)
            .map_err(|e| OffloadError::map("NEIGH", e))?;
        let users = match take(&mut ebpf, "USERS")? {
            Map::Array(data) => {
                UserSlots::map(data.fd().as_fd(), MAX_USERS).map_err(|e| OffloadError::Map {
                    map: "USERS",
                    source: Box::new(AyaError::Io(e)),
                })?
            }
            _ => return Err(OffloadError::MissingObject { name: "USERS" }),
        };
        let stats = PerCpuArray::try_from(take(&mut ebpf, "STATS")?)
            .map_err(|e| OffloadError::map("STATS", e))?;
        Ok(Self {
            fwd,
            rev,
            allocs,
            neigh,
            users: Arc::new(users),
            stats,
            clock: BpfClock::new(),
            hook,
            interfaces: interfaces.to_vec(),
            _ebpf: ebpf,
        })
    }

    /// The interfaces the program is attached to.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    /// Where it is attached.
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// The users' traffic budgets the program charges, mapped into this process.
    pub fn users(&self) -> Arc<UserSlots> {
        Arc::clone(&self.users)
    }

    /// The program's clock, for [`Route::deadline_ns`] and the bucket's start.
    pub fn clock(&self) -> &BpfClock {
        &self.clock
    }

    /// Creates or replaces the client → peer route of `key`.
    ///
    /// # Errors
    ///
    /// The map is full (E2BIG) or the syscall failed.
    pub fn insert_forward(&mut self, key: &FwdKey, route: &Route) -> Result<(), OffloadError> {
        self.fwd
            .insert(key, route, 0)
            .map_err(|e| OffloadError::map("FWD", e))
    }

    /// Creates or replaces the peer → client route of `key`.
    ///
    /// # Errors
    ///
    /// The map is full (E2BIG) or the syscall failed.
    pub fn insert_reverse(&mut self, key: &RevKey, route: &Route) -> Result<(), OffloadError> {
        self.rev
            .insert(key, route, 0)
            .map_err(|e| OffloadError::map("REV", e))
    }

    /// Removes a client → peer route; `false` if there was none.
    ///
    /// # Errors
    ///
    /// The syscall failed otherwise.
    pub fn remove_forward(&mut self, key: &FwdKey) -> Result<bool, OffloadError> {
        absent_is_false(self.fwd.remove(key)).map_err(|e| OffloadError::map("FWD", e))
    }

    /// Removes a peer → client route; `false` if there was none.
    ///
    /// # Errors
    ///
    /// The syscall failed otherwise.
    pub fn remove_reverse(&mut self, key: &RevKey) -> Result<bool, OffloadError> {
        absent_is_false(self.rev.remove(key)).map_err(|e| OffloadError::map("REV", e))
    }

    /// Creates or replaces the Ethernet addresses of a next hop (used at XDP only).
    ///
    /// # Errors
    ///
    /// The map is full (E2BIG) or the syscall failed.
    pub fn insert_neigh(&mut self, key: &NeighKey, neigh: &Neigh) -> Result<(), OffloadError> {
        self.neigh
            .insert(key, neigh, 0)
            .map_err(|e| OffloadError::map("NEIGH", e))
    }

    /// Removes a next hop's Ethernet addresses; `false` if there were none.
    ///
    /// # Errors
    ///
    /// The syscall failed otherwise.
    pub fn remove_neigh(&mut self, key: &NeighKey) -> Result<bool, OffloadError> {
        absent_is_false(self.neigh.remove(key)).map_err(|e| OffloadError::map("NEIGH", e))
    }

    /// Creates allocation `id` with a full bucket of `rate` bytes per second (0 =
    /// unlimited) as of `now`, as user space's `TokenBucket::new(now, rate)`; an
    /// existing entry is left as it is (counters kept). `true` if it was created. The
    /// program refills it at its routes' [`Route::rate`]: a new cap is a matter of
    /// replacing the routes.
    ///
    /// # Errors
    ///
    /// The map is full (E2BIG) or the syscall failed.
    pub fn insert_alloc(&mut self, id: u32, rate: u64, now: Instant) -> Result<bool, OffloadError> {
        let state = AllocState {
            rate,
            tokens: rate,
            last_ns: self.clock.ns(now),
            ..AllocState::default()
        };
        match self.allocs.insert(id, state, BPF_NOEXIST) {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(OffloadError::map("ALLOCS", e)),
        }
    }

    /// Removes allocation `id` and returns its final counters, read and deleted in
    /// one step (`BPF_MAP_LOOKUP_AND_DELETE_ELEM`), so nothing counted is lost.
    ///
    /// # Errors
    ///
    /// The syscall failed.
    pub fn remove_alloc(&mut self, id: u32) -> Result<Option<AllocCounters>, OffloadError> {
        let fd = self.allocs.map().fd().as_fd().as_raw_fd();
        let mut value = AllocState::default();
        let mut attr = MapElemAttr {
            map_fd: u32::try_from(fd).unwrap_or(u32::MAX),
            pad: 0,
            key: std::ptr::from_ref(&id) as u64,
            value: std::ptr::from_mut(&mut value) as u64,
            flags: BPF_F_LOCK,
        };
        // SAFETY: `attr` is the kernel's `bpf_attr` layout for element commands
        // (map_fd, key, value, flags), its size passed exactly; `key` points to a live
        // u32 and `value` to a live, writable `AllocState` of the map's value size
        // (64 bytes, checked by `HashMap::try_from`). The kernel reads and writes no
        // more than that during the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_AND_DELETE_ELEM,
                std::ptr::from_mut(&mut attr),
                size_of::<MapElemAttr>(),
            )
        };
        if rc == 0 {
            return Ok(Some(value.counters));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        Err(OffloadError::Map {
            map: "ALLOCS",
            source: Box::new(AyaError::Io(err)),
        })
    }

    /// The counters of allocation `id`, `None` if it does not exist.
    ///
    /// # Errors
    ///
    /// The syscall failed.
    pub fn alloc_counters(&self, id: u32) -> Result<Option<AllocCounters>, OffloadError> {
        match self.allocs.get(&id, BPF_F_LOCK) {
            Ok(s) => Ok(Some(s.counters)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(OffloadError::map("ALLOCS", e)),
        }
    }

    /// The program's counters, summed over CPUs.
    ///
    /// # Errors
    ///
    /// The syscall failed.
    pub fn stats(&self) -> Result<ProgramStats, OffloadError> {
        let mut sums = [0u64; stat::COUNT as usize];
        for (i, sum) in (0u32..).zip(sums.iter_mut()) {
            let per_cpu = self
                .stats
                .get(&i, 0)
                .map_err(|e| OffloadError::map("STATS", e))?;
            *sum = per_cpu.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        }
        Ok(ProgramStats::from_sums(&sums))
    }
}

/// Attaches the TC program at ingress of each of `interfaces`.
fn attach_tc(program: &mut SchedClassifier, interfaces: &[String]) -> Result<(), OffloadError> {
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    for name in interfaces {
        if !tcx {
            // Netlink attach needs the qdisc; one that exists already is fine.
            if let Err(e) = tc::qdisc_add_clsact(name) {
                let exists = matches!(&e, tc::TcError::NetlinkError(n)
                    if n.raw_os_error() == Some(libc::EEXIST));
                if !exists {
                    return Err(OffloadError::classify(
                        "adding the clsact qdisc",
                        AyaError::Program(e.into()),
                    ));
                }
            }
        }
        program
            .attach(name, TcAttachType::Ingress)
            .map_err(|e| OffloadError::classify("attaching", AyaError::Program(e)))?;
    }
    Ok(())
}

/// The `bpf_attr` of `BPF_MAP_*_ELEM` commands.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, OffloadError> {
    ebpf.take_map(name)
        .ok_or(OffloadError::MissingObject { name })
}

fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string alive for the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

fn errno(e: &MapError) -> Option<i32> {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        MapError::IoError(io) => io.raw_os_error(),
        _ => None,
    }
}

fn absent_is_false(r: Result<(), MapError>) -> Result<bool, MapError> {
    match r {
        Ok(()) => Ok(true),
        Err(MapError::KeyNotFound) => Ok(false),
        Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}
