//! Bytes decoded so far in this process, counted as the decoders go, so
//! that a long decode (a context-mixing chunk runs at a few hundred KB/s,
//! and one chunk can be 64 MiB) shows on the progress display instead of
//! the archive offset standing still.

use std::sync::atomic::{AtomicU64, Ordering};

static DECODED: AtomicU64 = AtomicU64::new(0);

/// Granularity of the context-mixing decoders' counting.
pub const STEP: u64 = 1 << 16;

/// Count `n` more decoded bytes.
pub fn add(n: u64) {
    DECODED.fetch_add(n, Ordering::Relaxed);
}

/// A context-mixing decoder's stream reached `len` bytes: every [`STEP`]
/// bytes count (the rest of a chunk counts when it is done).
#[inline(always)]
pub fn stream_at(len: usize) {
    if (len as u64).is_multiple_of(STEP) {
        add(STEP);
    }
}

/// Bytes decoded so far.
pub fn decoded() -> u64 {
    DECODED.load(Ordering::Relaxed)
}
