//! The mixer's arithmetic (format-spec 8.4, "Mixing"): the dot product of a
//! weight set and the inputs, and the weight update. Exact integer
//! arithmetic, so every path gives the same integers: the AVX2 path (taken
//! where the CPU has AVX2, unless `LZA_KERNEL=portable`) multiplies into
//! 64-bit lanes as the portable path does, and adds exactly.
//!
//! Slices are a whole number of groups of [`LANES`] inputs: inputs past a
//! preset's last are 0, so their weights never change and add nothing.
//! With preset 3 (21 inputs, three weight sets) the mixer took about 12% of
//! the time of coding calgary/book1 in portable code (perf, cpu-clock).

/// Inputs per group.
pub const LANES: usize = 8;

/// Weight bound (16.16 fixed point).
pub const MAX_WEIGHT: i32 = 1 << 22;

/// Which code runs the mixer's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Plain Rust, every platform.
    Portable,
    /// x86-64 AVX2.
    Avx2,
}

impl Path {
    /// AVX2 where the CPU has it, unless `LZA_KERNEL` is `portable`.
    pub fn detect() -> Path {
        static PATH: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *PATH.get_or_init(|| {
            let portable = std::env::var("LZA_KERNEL").is_ok_and(|k| k == "portable");
            if !portable && Path::Avx2.is_available() {
                Path::Avx2
            } else {
                Path::Portable
            }
        })
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Path::Avx2 => false,
        }
    }

    /// `clamp(sum(w[i] * x[i]) >> 16, -2047, 2047)`, the products and sum in
    /// 64 bits.
    #[inline(always)]
    pub fn dot(self, w: &[i32], x: &[i32]) -> i32 {
        assert!(w.len() == x.len() && w.len().is_multiple_of(LANES));
        #[cfg(target_arch = "x86_64")]
        if self == Path::Avx2 {
            // SAFETY: Path::Avx2 is only chosen where the CPU has AVX2; the
            // lengths are checked above.
            return unsafe { dot_avx2(w, x) };
        }
        dot_portable(w, x)
    }

    /// `w[i] = clamp(w[i] + ((x[i] * err + 2048) >> 12), -MAX_WEIGHT,
    /// MAX_WEIGHT)`, in 32 bits (`|x[i]| <= 2047`, `|err| < 2^14`: no
    /// product overflows).
    #[inline(always)]
    pub fn train(self, w: &mut [i32], x: &[i32], err: i32) {
        assert!(w.len() == x.len() && w.len().is_multiple_of(LANES));
        #[cfg(target_arch = "x86_64")]
        if self == Path::Avx2 {
            // SAFETY: as in `dot`.
            unsafe { train_avx2(w, x, err) };
            return;
        }
        train_portable(w, x, err)
    }
}

#[inline(always)]
fn dot_portable(w: &[i32], x: &[i32]) -> i32 {
    let mut s: i64 = 0;
    for (a, b) in w.iter().zip(x) {
        s += *a as i64 * *b as i64;
    }
    (s >> 16).clamp(-2047, 2047) as i32
}

#[inline(always)]
fn train_portable(w: &mut [i32], x: &[i32], err: i32) {
    for (a, b) in w.iter_mut().zip(x) {
        *a = (*a + ((b * err + 2048) >> 12)).clamp(-MAX_WEIGHT, MAX_WEIGHT);
    }
}

/// [`dot_portable`] with AVX2: signed 32 x 32 -> 64-bit products of the even
/// and the odd lanes, summed in four 64-bit lanes (exact: at most 32
/// products below 2^34 each).
///
/// # Safety
///
/// The CPU must have AVX2; `w` and `x` must have the same length, a
/// multiple of [`LANES`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(w: &[i32], x: &[i32]) -> i32 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_si256();
    for (a, b) in w.chunks_exact(LANES).zip(x.chunks_exact(LANES)) {
        // SAFETY: each chunk is 8 i32s, 32 bytes; loadu takes any alignment.
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr() as *const __m256i),
                _mm256_loadu_si256(b.as_ptr() as *const __m256i),
            )
        };
        let even = _mm256_mul_epi32(a, b);
        let odd = _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(b));
        acc = _mm256_add_epi64(acc, _mm256_add_epi64(even, odd));
    }
    let s = _mm_add_epi64(
        _mm256_castsi256_si128(acc),
        _mm256_extracti128_si256::<1>(acc),
    );
    let s = _mm_cvtsi128_si64(s).wrapping_add(_mm_extract_epi64::<1>(s));
    (s >> 16).clamp(-2047, 2047) as i32
}

/// [`train_portable`] with AVX2, eight weights at a time.
///
/// # Safety
///
/// As [`dot_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn train_avx2(w: &mut [i32], x: &[i32], err: i32) {
    use std::arch::x86_64::*;
    let e = _mm256_set1_epi32(err);
    let round = _mm256_set1_epi32(2048);
    let (lo, hi) = (
        _mm256_set1_epi32(-MAX_WEIGHT),
        _mm256_set1_epi32(MAX_WEIGHT),
    );
    for (a, b) in w.chunks_exact_mut(LANES).zip(x.chunks_exact(LANES)) {
        // SAFETY: each chunk is 8 i32s, 32 bytes; loadu/storeu take any
        // alignment.
        unsafe {
            let wv = _mm256_loadu_si256(a.as_ptr() as *const __m256i);
            let xv = _mm256_loadu_si256(b.as_ptr() as *const __m256i);
            let d = _mm256_srai_epi32::<12>(_mm256_add_epi32(_mm256_mullo_epi32(xv, e), round));
            let v = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(wv, d), lo), hi);
            _mm256_storeu_si256(a.as_mut_ptr() as *mut __m256i, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every available path gives the portable path's integers, at the
    /// extremes of the weights, inputs and errors and in between.
    #[test]
    fn paths_agree() {
        let mut s = 11u64;
        let mut r = |m: i64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 20) as i64 % (2 * m + 1) - m) as i32
        };
        let paths: Vec<Path> = [Path::Portable, Path::Avx2]
            .into_iter()
            .filter(|p| p.is_available())
            .collect();
        for round in 0..20_000 {
            let n = LANES * (1 + round % 4);
            let edge = round % 5 == 0;
            let w: Vec<i32> = (0..n)
                .map(|i| {
                    if edge {
                        [MAX_WEIGHT, -MAX_WEIGHT][i % 2]
                    } else {
                        r(MAX_WEIGHT as i64)
                    }
                })
                .collect();
            let x: Vec<i32> = (0..n)
                .map(|i| {
                    if edge {
                        [2047, -2047, 2047][i % 3]
                    } else {
                        r(2047)
                    }
                })
                .collect();
            let err = if edge {
                [12285, -12285][round % 2]
            } else {
                r(12285)
            };
            let want = dot_portable(&w, &x);
            let mut want_w = w.clone();
            train_portable(&mut want_w, &x, err);
            for p in &paths {
                assert_eq!(p.dot(&w, &x), want, "{p:?} dot, round {round}");
                let mut got = w.clone();
                p.train(&mut got, &x, err);
                assert_eq!(got, want_w, "{p:?} train, round {round}");
            }
        }
    }
}
