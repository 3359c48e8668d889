//! A process-wide count of bytes actually coded or decoded, for progress
//! displays: the context-mixing predictor adds each byte as it codes it
//! (in batches of [`BATCH`] per thread), and the other codecs add a chunk's
//! length when it is done. Each input byte is counted once: trial codings
//! whose result may be thrown away run [`uncounted`].

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes a thread counts before it adds them to the shared total.
pub const BATCH: u32 = 4096;

static DONE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static PENDING: Cell<u32> = const { Cell::new(0) };
    static MUTED: Cell<bool> = const { Cell::new(false) };
}

/// Bytes coded or decoded so far by this process (never decreases; take
/// differences).
pub fn done() -> u64 {
    DONE.load(Ordering::Relaxed)
}

/// Count `n` bytes done at once (a zstd or stored chunk).
pub fn add(n: u64) {
    if !MUTED.with(Cell::get) {
        DONE.fetch_add(n, Ordering::Relaxed);
    }
}

/// Count one byte (the context-mixing coders, per byte).
#[inline]
pub fn tick() {
    PENDING.with(|p| {
        let n = p.get() + 1;
        if n >= BATCH {
            p.set(0);
            add(n as u64);
        } else {
            p.set(n);
        }
    });
}

/// Run `f` without counting what it codes on this thread (a trial whose
/// bytes are counted by the coding that competes with it).
pub fn uncounted<T>(f: impl FnOnce() -> T) -> T {
    counted_as(false, f)
}

/// Whether what this thread codes is counted (false inside [`uncounted`]):
/// work handed to another thread takes it along with [`counted_as`].
pub fn counted() -> bool {
    !MUTED.with(|m| m.get())
}

/// Run `f` counting what it codes on this thread or not, as `counted`.
pub fn counted_as<T>(counted: bool, f: impl FnOnce() -> T) -> T {
    let was = MUTED.with(|m| m.replace(!counted));
    let out = f();
    MUTED.with(|m| m.set(was));
    out
}
