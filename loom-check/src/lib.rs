//! lza's two-thread hand-off (`src/codecs/lm/cpu/handoff.rs`, the very file) built
//! against loom's atomics, mutex and threads, so that `cargo test` here
//! explores its interleavings (`checks.rs`). `sync` gives the names
//! the module expects, as `src/codecs/lm/cpu/sync.rs` does with std's types.

#![allow(dead_code)]

mod sync {
    pub(crate) use loom::sync::Mutex;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
}

#[path = "../../src/codecs/lm/cpu/handoff.rs"]
mod handoff;

#[cfg(test)]
mod checks;
