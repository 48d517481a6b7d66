//! `USERS`: users' traffic budgets, in an array map mapped into this process, so that
//! user space charges the very counters the program charges (the first six words of each
//! slot, `crates/proto/src/budget.rs`'s `BudgetCells`) with the same atomic steps.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// The words of one slot (`struct turn_user`): window start, window packets, window
/// bytes, period start, period bytes, dropped, then the limits the program reads —
/// packets per second, bytes per second, bytes per period, period in ns (0 = none).
pub type UserSlot = [AtomicU64; 10];

/// Index of the first limit word in a [`UserSlot`].
pub const LIMITS: usize = 6;

/// The `USERS` array mapped into this process for good (the mapping is never undone,
/// so the slots it hands out live as long as the process; it also keeps the map alive).
#[derive(Debug)]
pub struct UserSlots {
    base: NonNull<UserSlot>,
    len: u32,
}

// SAFETY: the mapping is shared memory of atomics only (`UserSlot` is `[AtomicU64; 10]`),
// never unmapped; every access goes through `&AtomicU64`.
unsafe impl Send for UserSlots {}
// SAFETY: as above: shared references to atomics are fine from any thread.
unsafe impl Sync for UserSlots {}

impl UserSlots {
    /// Maps `len` slots of the map `fd` (created with `BPF_F_MMAPABLE`, value size 80).
    pub(crate) fn map(fd: BorrowedFd<'_>, len: u32) -> io::Result<Self> {
        let bytes = size_of::<UserSlot>() * len as usize;
        // SAFETY: a fresh shared mapping of the map's value area, whose size the kernel
        // checks against the map (max_entries × value size, rounded up to pages).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<UserSlot>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { base, len })
    }

    /// Slot `index`, `None` past the end.
    pub fn get(&self, index: u32) -> Option<&'static UserSlot> {
        if index >= self.len {
            return None;
        }
        // SAFETY: `index` is within the mapping, which holds `len` consecutive 80-byte,
        // 8-aligned slots (an array map's values are laid out at their size rounded to 8)
        // and is never unmapped; the memory is only ever accessed as atomics.
        Some(unsafe { &*self.base.as_ptr().add(index as usize) })
    }

    /// How many slots there are.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
