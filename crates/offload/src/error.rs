//! Why the fast path could not load or a map operation failed.

use std::error::Error;
use std::fmt;
use std::io;

use aya::EbpfError;
use aya::maps::MapError;
use aya::programs::ProgramError;

/// An error from aya, kept whole as the source of an [`OffloadError`].
#[derive(Debug)]
pub enum AyaError {
    /// Parsing the object or creating its maps.
    Ebpf(EbpfError),
    /// Loading (the verifier) or attaching the program.
    Program(ProgramError),
    /// A map operation.
    Map(MapError),
    /// A system call made here directly.
    Io(io::Error),
}

impl fmt::Display for AyaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ebpf(e) => e.fmt(f),
            Self::Program(e) => e.fmt(f),
            Self::Map(e) => e.fmt(f),
            Self::Io(e) => e.fmt(f),
        }
    }
}

impl Error for AyaError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Ebpf(e) => Some(e),
            Self::Program(e) => Some(e),
            Self::Map(e) => Some(e),
            Self::Io(e) => Some(e),
        }
    }
}

impl AyaError {
    /// The OS error number somewhere in the chain, if any.
    fn errno(&self) -> Option<i32> {
        let mut cur: Option<&(dyn Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if let Some(n) = io.raw_os_error() {
                    return Some(n);
                }
            }
            cur = e.source();
        }
        None
    }
}

/// Why the offload could not load, or a map operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OffloadError {
    /// This build has no BPF program: it was built without the `ebpf` feature.
    NotBuilt,
    /// An interface to attach to does not exist.
    InterfaceMissing {
        /// Its name.
        interface: String,
    },
    /// No interface to attach to: none holds a listener or relay address (loopback is
    /// never chosen), and none was configured.
    NoInterfaces,
    /// The machine's interfaces could not be listed.
    Interfaces(io::Error),
    /// The process may not load BPF programs or attach them (needs CAP_BPF and
    /// CAP_NET_ADMIN, or root).
    NoPrivilege {
        /// What was being done.
        during: &'static str,
        /// The error as aya gave it.
        source: Box<AyaError>,
    },
    /// The kernel has no BPF support usable here (no `bpf()` syscall, no BTF for the
    /// spin lock, no TC classifier programs, …).
    NoBpf {
        /// What was being done.
        during: &'static str,
        /// The error as aya gave it.
        source: Box<AyaError>,
    },
    /// Loading or attaching failed otherwise (the verifier refused the program, …).
    Load {
        /// What was being done.
        during: &'static str,
        /// The error as aya gave it.
        source: Box<AyaError>,
    },
    /// The object lacks a map or program it must have (a build mismatch).
    MissingObject {
        /// The map or program name.
        name: &'static str,
    },
    /// A map operation failed (a full map gives E2BIG).
    Map {
        /// The map's name.
        map: &'static str,
        /// The error as aya gave it.
        source: Box<AyaError>,
    },
}

impl OffloadError {
    /// Sorts a load-time error by its errno into the reasons an operator acts on.
    pub(crate) fn classify(during: &'static str, source: AyaError) -> Self {
        let errno = source.errno();
        let source = Box::new(source);
        match errno {
            Some(libc::EPERM | libc::EACCES) => Self::NoPrivilege { during, source },
            Some(libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) if during == "creating maps" => {
                Self::NoBpf { during, source }
            }
            Some(libc::ENOSYS) => Self::NoBpf { during, source },
            _ => Self::Load { during, source },
        }
    }

    /// Wraps a map operation's error.
    pub(crate) fn map(map: &'static str, source: MapError) -> Self {
        Self::Map {
            map,
            source: Box::new(AyaError::Map(source)),
        }
    }
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBuilt => f.write_str(
                "the in-kernel fast path is not available: turnpike was built without the \
                 ebpf feature",
            ),
            Self::InterfaceMissing { interface } => {
                write!(
                    f,
                    "cannot attach the fast path: no interface named {interface:?}"
                )
            }
            Self::NoPrivilege { during, .. } => write!(
                f,
                "no privilege for the in-kernel fast path ({during}): it needs CAP_BPF and \
                 CAP_NET_ADMIN"
            ),
            Self::NoBpf { during, .. } => write!(
                f,
                "this kernel cannot run the in-kernel fast path ({during}): it needs bpf(), \
                 BTF and TC classifier programs"
            ),
            Self::Load { during, .. } => write!(f, "the in-kernel fast path failed {during}"),
            Self::MissingObject { name } => {
                write!(f, "the BPF object has no {name:?} (a build mismatch)")
            }
            Self::NoInterfaces => f.write_str(
                "no interface to attach the fast path to: none holds a UDP listener or relay \
                 address (loopback is never chosen); name them in [offload] interfaces",
            ),
            Self::Interfaces(e) => write!(f, "cannot list the network interfaces: {e}"),
            Self::Map { map, .. } => write!(f, "BPF map {map} operation failed"),
        }
    }
}

impl Error for OffloadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::NoPrivilege { source, .. }
            | Self::NoBpf { source, .. }
            | Self::Load { source, .. }
            | Self::Map { source, .. } => Some(&**source),
            Self::Interfaces(e) => Some(e),
            Self::NotBuilt
            | Self::InterfaceMissing { .. }
            | Self::NoInterfaces
            | Self::MissingObject { .. } => None,
        }
    }
}
