//! Log lines an attacker could multiply (refused credentials, denied peers), written at
//! most [`PER_SECOND`] a second per kind and worker; what is held back is counted and
//! said in the next line that gets through, so a flood cannot fill a disk and nothing
//! goes unmentioned. Metrics count every one regardless.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Lines per second and kind one worker writes at most.
pub(crate) const PER_SECOND: u32 = 10;

/// One kind's budget.
pub(crate) struct Budget {
    window: Cell<Option<Instant>>,
    used: Cell<u32>,
    held_back: Cell<u64>,
}

impl Budget {
    pub(crate) const fn new() -> Self {
        Self {
            window: Cell::new(None),
            used: Cell::new(0),
            held_back: Cell::new(0),
        }
    }

    /// Whether a line may be written at `now`; if so, how many were held back before it
    /// (to say in that line).
    pub(crate) fn take(&self, now: Instant) -> Option<u64> {
        let fresh = self
            .window
            .get()
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window.set(Some(now));
            self.used.set(0);
        }
        if self.used.get() >= PER_SECOND {
            self.held_back.set(self.held_back.get() + 1);
            return None;
        }
        self.used.set(self.used.get() + 1);
        Some(self.held_back.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_budget_and_the_rest_is_counted() {
        let b = Budget::new();
        let t0 = Instant::now();
        let written = (0..1000).filter(|_| b.take(t0).is_some()).count();
        assert_eq!(written, PER_SECOND as usize);
        // The next second's first line says how many were held back.
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Some(1000 - 10));
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Some(0));
    }
}
