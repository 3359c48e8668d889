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

/// Most weight sets one prediction mixes (a, b, c and d).
pub const MAX_SETS: usize = 4;

/// The gated linear mixer (format-spec 8.4, "Mixing"): the inputs of the
/// current bit, the weight sets, the sets the context selected and their
/// dot products, and the learning rate.
pub struct Mixer {
    /// The inputs, `lanes` of them (those past the preset's last are 0).
    pub x: Vec<i32>,
    /// Weight sets of `lanes` weights each, one after another.
    w: Vec<i32>,
    /// The selected sets' offsets into `w`, `k` of them.
    sets: [usize; MAX_SETS],
    k: usize,
    /// The selected sets' dot products.
    dots: [i32; MAX_SETS],
    /// The rate in sixteenths.
    pub rate16: i32,
    path: Path,
}

impl Mixer {
    /// `sets` weight sets over `inputs` inputs, input 0's weights 0 and
    /// the others' `2^14`.
    pub fn new(sets: usize, inputs: usize, rate16: i32) -> Mixer {
        let lanes = inputs.next_multiple_of(LANES);
        let mut w = vec![0i32; sets * lanes];
        for set in w.chunks_mut(lanes) {
            for wi in set.iter_mut().take(inputs).skip(1) {
                *wi = 1 << 14;
            }
        }
        Mixer {
            x: vec![0; lanes],
            w,
            sets: [0; MAX_SETS],
            k: 0,
            dots: [0; MAX_SETS],
            rate16,
            path: Path::detect(),
        }
    }

    /// Selects the weight sets `sets` (at most [`MAX_SETS`]) and returns
    /// their dot products with the inputs.
    #[inline(always)]
    pub fn mix(&mut self, sets: &[usize]) -> &[i32] {
        let n = self.x.len();
        self.k = sets.len();
        for (o, &s) in self.sets.iter_mut().zip(sets) {
            *o = s * n;
        }
        self.path.dots(
            &self.w,
            &self.sets[..self.k],
            &self.x,
            &mut self.dots[..self.k],
        );
        &self.dots[..self.k]
    }

    /// Trains the selected sets on `bit`: each by its own error, `((bit ?
    /// 4095 : 0) - (squash(dot) >> 4)) * rate16 >> 4`.
    #[inline(always)]
    pub fn train(&mut self, bit: u32) {
        let t = (bit << 12) as i32 - bit as i32;
        let mut err = [0i32; MAX_SETS];
        for (e, &d) in err.iter_mut().zip(&self.dots[..self.k]) {
            *e = ((t - (super::tables::squash(d) >> 4)) * self.rate16) >> 4;
        }
        self.path
            .trains(&mut self.w, &self.sets[..self.k], &self.x, &err[..self.k]);
    }
}

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
    #[cfg(test)]
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

    /// [`Path::dot`] of the weights at each offset of `sets` in `w` (as many
    /// as `x` has inputs) into `out`.
    #[inline(always)]
    pub fn dots(self, w: &[i32], sets: &[usize], x: &[i32], out: &mut [i32]) {
        let n = x.len();
        assert!(n.is_multiple_of(LANES) && sets.len() == out.len());
        assert!(sets.iter().all(|&s| s + n <= w.len()));
        #[cfg(target_arch = "x86_64")]
        if self == Path::Avx2 {
            // SAFETY: Path::Avx2 is only chosen where the CPU has AVX2; the
            // lengths and offsets are checked above.
            unsafe { dots_avx2(w, sets, x, out) };
            return;
        }
        for (o, &s) in out.iter_mut().zip(sets) {
            *o = dot_portable(&w[s..s + n], x);
        }
    }

    /// [`Path::train`] of the weights at each offset of `sets` in `w` (as
    /// many as `x` has inputs, the sets apart) by the error of the same
    /// index in `errs`.
    #[inline(always)]
    pub fn trains(self, w: &mut [i32], sets: &[usize], x: &[i32], errs: &[i32]) {
        let n = x.len();
        assert!(n.is_multiple_of(LANES) && sets.len() == errs.len());
        assert!(sets.iter().all(|&s| s + n <= w.len()));
        #[cfg(target_arch = "x86_64")]
        if self == Path::Avx2 {
            // SAFETY: as in `dots`.
            unsafe { trains_avx2(w, sets, x, errs) };
            return;
        }
        for (&s, &e) in sets.iter().zip(errs) {
            train_portable(&mut w[s..s + n], x, e);
        }
    }

    /// `w[i] = clamp(w[i] + ((x[i] * err + 2048) >> 12), -MAX_WEIGHT,
    /// MAX_WEIGHT)`, in 32 bits (`|x[i]| <= 2047`, `|err| < 2^14`: no
    /// product overflows).
    #[cfg(test)]
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

/// [`Path::dots`] with AVX2, in one call (the calls into code built for
/// AVX2 are not inlined: one per set took about 12% of the time of coding
/// calgary/book1 with preset 9, perf).
///
/// # Safety
///
/// The CPU must have AVX2; `x.len()` must be a multiple of [`LANES`] and
/// every `s + x.len()` of `sets` at most `w.len()`; `out` as long as
/// `sets`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2(w: &[i32], sets: &[usize], x: &[i32], out: &mut [i32]) {
    let n = x.len();
    for (o, &s) in out.iter_mut().zip(sets) {
        // SAFETY: as the caller promises.
        *o = unsafe { dot_avx2(&w[s..s + n], x) };
    }
}

/// [`Path::trains`] with AVX2, in one call.
///
/// # Safety
///
/// As [`dots_avx2`], with `errs` as long as `sets`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn trains_avx2(w: &mut [i32], sets: &[usize], x: &[i32], errs: &[i32]) {
    let n = x.len();
    for (&s, &e) in sets.iter().zip(errs) {
        // SAFETY: as the caller promises.
        unsafe { train_avx2(&mut w[s..s + n], x, e) };
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
#[inline]
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
#[inline]
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
            // several sets at once: each as alone (the last set is `w`
            // again, after two others of other values)
            let all: Vec<i32> = w.iter().rev().chain(&want_w).chain(&w).copied().collect();
            let sets = [0, n, 2 * n];
            let errs = [err, -err, err];
            let mut want_all = all.clone();
            for (&s, &e) in sets.iter().zip(&errs) {
                train_portable(&mut want_all[s..s + n], &x, e);
            }
            let want_dots: Vec<i32> = sets
                .iter()
                .map(|&s| dot_portable(&all[s..s + n], &x))
                .collect();
            for p in &paths {
                let mut out = [0; 3];
                p.dots(&all, &sets, &x, &mut out);
                assert_eq!(out[..], want_dots[..], "{p:?} dots, round {round}");
                let mut got = all.clone();
                p.trains(&mut got, &sets, &x, &errs);
                assert_eq!(got, want_all, "{p:?} trains, round {round}");
            }
        }
    }
}
