//! One budget for the memory of context-mixing decoders, whatever `-T`.
//!
//! A decoder allocates its tables before it reads a bit: up to 144 MiB for
//! a chunk of presets 3, 6 and 7 (format-spec 10), and a hostile archive
//! can hold many such chunks behind a few hundred bytes each. Decoded side
//! by side, one per thread, 16 one-MiB preset-7 chunks peaked at 1,131 MB
//! with `-T 8`. Every decoder now leases its predictor's
//! [`Predictor::memory`](super::Predictor::memory) from [`DECODE`] first,
//! and waits while the budget is spent: the total is the budget (one lease
//! at most, when a single chunk needs more), not a multiple of the threads.
//!
//! Deadlock-free by construction: a lease is taken only by the thread
//! that runs the decoder it pays for, at the decoder's start, while that
//! thread holds no other lease, and it is given back when the decoder
//! ends. A holder runs its decoder on its own thread (or with a helper
//! thread of its own, never a pool thread), so it waits for nothing that
//! a waiting thread could hold up, and a thread waiting for a lease holds
//! none. Every holder therefore finishes, and a waiter runs once enough
//! has come back.
//!
//! The waits happen on pool threads, so they also cost threads: a lease
//! held for longer than its decoder ran would leave threads idle behind
//! it. So each decoder leases for itself, not a group for all of its
//! lanes (see `cmlm::decode_chunks`).

use std::sync::{Condvar, Mutex};

/// The least default budget: 1 GiB, room for seven decoders of the
/// largest tables at once.
pub const DEFAULT_DECODE_MEMORY: usize = 1 << 30;

/// Default budget per thread past [`DEFAULT_DECODE_MEMORY`]: one decoder
/// of any chunk lza's encoder writes (segments of at most 32 MiB: 186 MiB
/// with presets 3, 6 and 7, tables, history and match index), so that a
/// thread never waits for room with archives of lza's own making: at most
/// one decoder per thread runs. With `-T 16` on the 16-core Xeon, the
/// benchmark tree (8 MiB pieces) extracted in 118 s with 1 GiB and in 70
/// s with 4 GiB (peak RSS 2.6 GB): seven decoders at a time left the
/// other threads waiting.
pub const DECODE_MEMORY_PER_THREAD: usize = 192 << 20;

/// The default budget for `threads` threads: [`DECODE_MEMORY_PER_THREAD`]
/// each, at least [`DEFAULT_DECODE_MEMORY`], and no more than a quarter of
/// physical memory where that is known (as xz's default limit for
/// multi-threaded decompression), unless that is below 1 GiB.
pub fn default_decode_memory(threads: usize) -> usize {
    let want = threads.saturating_mul(DECODE_MEMORY_PER_THREAD);
    let cap = physical_memory().map_or(usize::MAX, |m| m / 4);
    want.min(cap).max(DEFAULT_DECODE_MEMORY)
}

/// Physical memory in bytes (Linux: `MemTotal` of `/proc/meminfo`).
fn physical_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Memory shared by decoders; see the module docs.
pub struct Budget {
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    total: usize,
    used: usize,
    peak: usize,
}

/// The decoders' budget.
pub static DECODE: Budget = Budget::new(DEFAULT_DECODE_MEMORY);

/// Bytes leased from a [`Budget`], given back when dropped.
#[must_use = "the memory is given back when this is dropped"]
pub struct Lease<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut s = self.budget.lock();
        s.used -= self.bytes;
        drop(s);
        self.budget.freed.notify_all();
    }
}

impl Budget {
    /// A budget of `total` bytes.
    pub const fn new(total: usize) -> Budget {
        Budget {
            state: Mutex::new(State {
                total,
                used: 0,
                peak: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set the total (the CLI's `--max-memory`); at least 1 byte.
    pub fn set_total(&self, total: usize) {
        self.lock().total = total.max(1);
        self.freed.notify_all();
    }

    /// The total.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// The most bytes leased at once so far.
    pub fn peak(&self) -> usize {
        self.lock().peak
    }

    /// `bytes`, waiting until they are free. A request above the total
    /// waits until nothing is leased and then runs alone.
    pub fn lease(&self, bytes: usize) -> Lease<'_> {
        self.lease_up_to(1, bytes).0
    }

    /// As many of `n` units of `unit` bytes as are free now, at least one
    /// (waiting for it as [`Budget::lease`] does); the lease and the count.
    pub fn lease_up_to(&self, n: usize, unit: usize) -> (Lease<'_>, usize) {
        let mut s = self.lock();
        loop {
            let free = s.total.saturating_sub(s.used);
            let k = free.checked_div(unit).map_or(n, |k| k.min(n));
            if k >= 1 || s.used == 0 {
                let k = k.max(1);
                let bytes = k * unit;
                s.used += bytes;
                s.peak = s.peak.max(s.used);
                return (
                    Lease {
                        budget: self,
                        bytes,
                    },
                    k,
                );
            }
            s = self.freed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_default_is_per_thread_within_bounds() {
        assert_eq!(default_decode_memory(1), DEFAULT_DECODE_MEMORY);
        assert_eq!(default_decode_memory(5), DEFAULT_DECODE_MEMORY);
        let sixteen = default_decode_memory(16);
        assert!((DEFAULT_DECODE_MEMORY..=16 * DECODE_MEMORY_PER_THREAD).contains(&sixteen));
        if let Some(m) = physical_memory() {
            assert!(m > 0);
            assert!(sixteen <= (m / 4).max(DEFAULT_DECODE_MEMORY));
            if m / 4 >= 16 * DECODE_MEMORY_PER_THREAD {
                assert_eq!(sixteen, 16 * DECODE_MEMORY_PER_THREAD);
            }
        }
        assert!(default_decode_memory(usize::MAX) >= DEFAULT_DECODE_MEMORY);
    }

    #[test]
    fn leases_never_exceed_the_total_whatever_the_threads() {
        let b = Budget::new(1000);
        let held = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for t in 0..8 {
                let (b, held, most) = (&b, &held, &most);
                sc.spawn(move || {
                    for i in 0..50 {
                        let bytes = 100 + 150 * ((t + i) % 5);
                        let _l = b.lease(bytes);
                        let now = held.fetch_add(bytes, Ordering::SeqCst) + bytes;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        held.fetch_sub(bytes, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 1000);
        assert!(b.peak() <= 1000);
        assert_eq!(b.lock().used, 0);
    }

    #[test]
    fn an_oversized_lease_runs_alone_and_up_to_takes_what_is_free() {
        let b = Budget::new(1000);
        let big = b.lease(5000);
        assert_eq!(b.peak(), 5000);
        drop(big);
        let a = b.lease(300);
        let (l, k) = b.lease_up_to(8, 200);
        assert_eq!(k, 3);
        drop((a, l));
        let (_l, k) = b.lease_up_to(8, 200);
        assert_eq!(k, 5);
        // waits for the others, then runs alone
        let (_l2, k2) = std::thread::scope(|sc| {
            let h = sc.spawn(|| b.lease_up_to(2, 5000));
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!h.is_finished());
            drop(_l);
            h.join().unwrap()
        });
        assert_eq!(k2, 1);
    }
}
