//! The synchronisation primitives that `handoff` is written against: std's
//! here. `loom-check/` gives the same names with loom's types, so that the
//! model checker runs the very source of the protocol.

pub(crate) use std::sync::Mutex;
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
pub(crate) use std::thread::Thread;

use std::time::{Duration, Instant};

/// How long a waiter spins before it parks: no step of the exchange takes
/// more than a few microseconds, so a longer wait means the other thread
/// lost its processor. A round trip through spinning costs about 130 ns on
/// the development machine, a park and unpark a few microseconds.
pub(crate) const STALL: Duration = Duration::from_micros(50);

/// A parked waiter wakes after this even without a ring (the protocol
/// never needs it; it bounds the cost of any wake-up it might miss).
const PARK_LIMIT: Duration = Duration::from_millis(2);

/// The spinning phase of a wait: [`STALL`] long.
pub(crate) struct Spin {
    start: Option<Instant>,
    spins: u32,
}

impl Spin {
    pub(crate) fn new() -> Spin {
        Spin {
            start: None,
            spins: 0,
        }
    }

    /// Whether to look again before parking (and spin a little).
    pub(crate) fn more(&mut self) -> bool {
        self.spins += 1;
        if self.spins.is_multiple_of(64) {
            let t = *self.start.get_or_insert_with(Instant::now);
            if t.elapsed() > STALL {
                return false;
            }
        }
        std::hint::spin_loop();
        true
    }
}

pub(crate) fn current() -> Thread {
    std::thread::current()
}

pub(crate) fn park() {
    std::thread::park_timeout(PARK_LIMIT);
}

pub(crate) fn yield_now() {
    std::thread::yield_now();
}

pub(crate) fn sleep_micros(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}
