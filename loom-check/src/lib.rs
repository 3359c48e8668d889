//! lza's two-thread hand-off (`src/codecs/lm/cpu/handoff.rs`) and its
//! lending of dry lanes' threads (`src/codecs/cmlm/lend.rs`), the very
//! files, built against loom's atomics, mutex, condition variable and
//! threads, so that `cargo test` here explores their interleavings
//! (`checks.rs`, `lend_checks.rs`). `sync` gives the names the modules
//! expect, as `src/codecs/lm/cpu/sync.rs` and `src/codecs/cmlm/sync.rs` do
//! with std's types and rayon.

#![allow(dead_code)]

mod sync {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread::Thread;

    /// One look before parking: the checker then explores the parking
    /// path at every wait, which is where wake-ups could be lost.
    pub(crate) struct Spin {
        looks: u32,
    }

    impl Spin {
        pub(crate) fn new() -> Spin {
            Spin { looks: 0 }
        }

        pub(crate) fn more(&mut self) -> bool {
            self.looks += 1;
            if self.looks > 1 {
                return false;
            }
            loom::thread::yield_now();
            true
        }
    }

    pub(crate) fn current() -> Thread {
        loom::thread::current()
    }

    /// Without a timeout: a lost wake-up is then a deadlock, which loom
    /// reports.
    pub(crate) fn park() {
        loom::thread::park();
    }

    pub(crate) fn yield_now() {
        loom::thread::yield_now();
    }

    pub(crate) fn sleep_micros(_: u64) {
        loom::thread::yield_now();
    }

    /// loom does not model time: a timed wait is a wait, so a protocol
    /// that needs the timeout for progress deadlocks here.
    pub(crate) const LOOK_AGAIN: std::time::Duration = std::time::Duration::from_millis(20);

    /// No pool: nothing to run.
    pub(crate) fn run_pool_work() -> bool {
        loom::thread::yield_now();
        false
    }
}

#[path = "../../src/codecs/lm/cpu/handoff.rs"]
mod handoff;

#[path = "../../src/codecs/cmlm/lend.rs"]
mod lend;

#[cfg(test)]
mod checks;

#[cfg(test)]
mod lend_checks;
