//! Memory hints below every coder: cache prefetches for the
//! context-mixing tables' lookups, and tables advised to use huge pages.
//! They change how fast memory is reached, never what it holds.

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

/// `n` copies of `v` in memory that Linux may back with 2 MiB pages: the
/// allocation is advised `MADV_HUGEPAGE` before its pages are first written.
/// The predictor's tables are tens of MB read at random, so with 4 KiB pages
/// nearly every lookup also misses the TLB; on calgary/book1 (preset 3, one
/// thread) decoding went from 0.32-0.34 to 0.39-0.40 MB/s with huge pages.
/// Where the kernel does not take the advice (other systems, huge pages
/// off), this is a plain `vec![v; n]`.
pub(crate) fn table<T: Clone>(n: usize, v: T) -> Vec<T> {
    let mut t: Vec<T> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let len = n * std::mem::size_of::<T>();
        let start = (t.as_mut_ptr() as usize).next_multiple_of(PAGE);
        let end = (t.as_mut_ptr() as usize + len) / PAGE * PAGE;
        if len >= 2 << 20 && end > start {
            // SAFETY: [start, end) lies inside the allocation `t` owns; the
            // advice changes how the kernel backs those pages (none is
            // written yet), never what they hold. A refusal is harmless.
            let _ = unsafe {
                rustix::mm::madvise(
                    start as *mut std::ffi::c_void,
                    end - start,
                    rustix::mm::Advice::LinuxHugepage,
                )
            };
        }
    }
    t.resize(n, v);
    t
}
