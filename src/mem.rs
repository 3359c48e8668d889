//! Memory hints below every coder: cache prefetches for the
//! context-mixing tables' lookups. They change how fast memory is reached,
//! never what it holds.

/// Hint the CPU to bring the cache line holding `*p` into the cache (used
/// by the context-mixing model before its hash-table lookups). A hint only:
/// it reads nothing and changes nothing, so it is safe for any reference.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch has no architectural effect and never faults; SSE is
    // part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            p as *const T as *const i8,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
