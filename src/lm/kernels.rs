//! Integer matrix kernels and instruction-set dispatch. The only module of
//! `lm` with `unsafe` code.
//!
//! `acc[b][j] = sum_k W[j,k] * x[b][k]` with `W`, `x` in -127..=127 and exact
//! `i32` sums, on three paths that give identical bits:
//!
//! - `portable`: plain Rust.
//! - `avx2`: weights sign-extended to i16 and `_mm256_madd_epi16` (exact; no
//!   `maddubs`, which saturates).
//! - `avx512`: AVX-512 VNNI `vpdpbusd` (u8 x i8). The weights are stored
//!   offset by +128 as u8 (`W + 128` in 1..=255), so the instruction computes
//!   `sum_k (W[j,k] + 128) * x[k] = acc[j] + 128 * sum_k x[k]`; the kernel
//!   subtracts `128 * sum_k x[b][k]` per batch row. Partial sums stay far
//!   below `2^31` (`255 * 127 * cols`, `cols <= 65536`), so all of it is exact.
//!
//! The element-wise float code (GRU gates, quantization, frequencies) lives in
//! `engine.rs` as `#[inline(always)]` functions; this module compiles it once
//! per instruction set (`multiversion!`). IEEE-754 operations round the same in
//! every vector lane as in scalar code and Rust never fuses `a * b + c`, so the
//! dispatch changes speed only, never bits.

#![allow(
    clippy::too_many_arguments,
    clippy::needless_range_loop,
    clippy::manual_is_multiple_of
)]

use super::LmError;
use std::fmt;

/// Which kernel implementation runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Plain Rust, every CPU.
    Portable,
    /// x86-64 with AVX2.
    Avx2,
    /// x86-64 with AVX-512 F, BW, VL and VNNI.
    Avx512,
}

impl KernelPath {
    /// All paths, slowest first.
    pub const ALL: [KernelPath; 3] = [KernelPath::Portable, KernelPath::Avx2, KernelPath::Avx512];

    /// The name used by `LZA_KERNEL`: `portable`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Portable => "portable",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            KernelPath::Portable => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest path this CPU can run.
    pub fn best_available() -> KernelPath {
        *KernelPath::ALL
            .iter()
            .rev()
            .find(|p| p.is_available())
            .unwrap_or(&KernelPath::Portable)
    }

    /// Paths this CPU can run, slowest first.
    pub fn available() -> Vec<KernelPath> {
        KernelPath::ALL
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }

    /// Parses a path name and checks that this CPU can run it.
    pub fn from_name(name: &str) -> Result<KernelPath, LmError> {
        let path = match name {
            "portable" => KernelPath::Portable,
            "avx2" => KernelPath::Avx2,
            "avx512" => KernelPath::Avx512,
            other => return Err(LmError::BadKernelName(other.to_string())),
        };
        if !path.is_available() {
            return Err(LmError::KernelUnavailable(path.name()));
        }
        Ok(path)
    }

    /// `LZA_KERNEL` if set (an unknown or unavailable value is an error, never
    /// a silent fallback), else [`KernelPath::best_available`].
    pub fn detect() -> Result<KernelPath, LmError> {
        match std::env::var("LZA_KERNEL") {
            Ok(v) if v.is_empty() => Ok(KernelPath::best_available()),
            Ok(v) => KernelPath::from_name(&v),
            Err(std::env::VarError::NotPresent) => Ok(KernelPath::best_available()),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(LmError::BadKernelName(v.to_string_lossy().into_owned()))
            }
        }
    }
}

impl fmt::Display for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// 16 rows x 4 columns of weights, row-major within the block, each byte
/// `W + 128`. 64-byte aligned so a block is one aligned 512-bit load.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Block([u8; 64]);

/// An int8 weight matrix in the kernels' layout: row blocks of 16 rows, each a
/// run of `cols / 4` 64-byte blocks. Rows must be a multiple of 16 and columns a
/// multiple of 4 (every matrix of a valid model is).
#[derive(Clone)]
pub struct PackedI8 {
    rows: usize,
    cols: usize,
    blocks: Vec<Block>,
}

impl fmt::Debug for PackedI8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackedI8({}x{})", self.rows, self.cols)
    }
}

/// Largest supported column count (keeps every partial sum below 2^31).
pub const MAX_COLS: usize = 65536;

impl PackedI8 {
    /// Packs a row-major `rows x cols` matrix. Panics on a shape the kernels
    /// do not support (rows % 16, cols % 4, cols > MAX_COLS, wrong length) or a
    /// weight of -128.
    pub fn new(rows: usize, cols: usize, w: &[i8]) -> PackedI8 {
        assert!(
            rows % 16 == 0 && cols % 4 == 0 && cols <= MAX_COLS,
            "unsupported matrix shape {rows}x{cols}"
        );
        assert_eq!(w.len(), rows * cols);
        assert!(!w.contains(&-128), "weight -128");
        let groups = cols / 4;
        let mut blocks = vec![Block([0; 64]); rows / 16 * groups];
        for rb in 0..rows / 16 {
            for g in 0..groups {
                let blk = &mut blocks[rb * groups + g].0;
                for r in 0..16 {
                    for kk in 0..4 {
                        blk[r * 4 + kk] = (w[(rb * 16 + r) * cols + g * 4 + kk] as u8) ^ 0x80;
                    }
                }
            }
        }
        PackedI8 { rows, cols, blocks }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Weight `W[j, k]`.
    pub fn get(&self, j: usize, k: usize) -> i8 {
        let groups = self.cols / 4;
        (self.blocks[(j / 16) * groups + k / 4].0[(j % 16) * 4 + k % 4] ^ 0x80) as i8
    }
}

/// `out[b * out_stride + j] = sum_k W[j,k] * x[b * x_stride + k]` for
/// `b < batch`, `j < rows`, `k < cols`; exact.
///
/// Panics if the path is not available on this CPU or a slice is too short.
pub fn matmul_i8(
    path: KernelPath,
    w: &PackedI8,
    x: &[i8],
    x_stride: usize,
    batch: usize,
    out: &mut [i32],
    out_stride: usize,
) {
    if batch == 0 {
        return;
    }
    assert!(x_stride >= w.cols && out_stride >= w.rows, "bad strides");
    assert!(x.len() >= (batch - 1) * x_stride + w.cols, "x too short");
    assert!(
        out.len() >= (batch - 1) * out_stride + w.rows,
        "out too short"
    );
    match path {
        KernelPath::Portable => matmul_portable(w, x, x_stride, batch, out, out_stride),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => {
            assert!(
                path.is_available(),
                "kernel path avx2 is not available on this CPU"
            );
            // SAFETY: AVX2 is available (checked above); slice bounds checked above.
            unsafe {
                x86::matmul_avx2(w, x.as_ptr(), x_stride, batch, out.as_mut_ptr(), out_stride)
            }
        }
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => {
            assert!(
                path.is_available(),
                "kernel path avx512 is not available on this CPU"
            );
            // SAFETY: AVX-512 F/BW/VNNI available (checked above); bounds checked above.
            unsafe {
                x86::matmul_avx512(w, x.as_ptr(), x_stride, batch, out.as_mut_ptr(), out_stride)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => panic!("kernel path {path} is not available on this CPU"),
    }
}

fn matmul_portable(w: &PackedI8, x: &[i8], xs: usize, batch: usize, out: &mut [i32], os: usize) {
    // Written so that baseline SIMD (SSE2, NEON) vectorises it: per block, 64
    // i16 weights times the block's 4 inputs repeated 16 times (`xrep`),
    // adjacent products summed in pairs (`pmaddwd`-shaped); lane `i` of `acc`
    // holds half of row `i / 2`.
    let groups = w.cols / 4;
    let mut xrep = vec![0i16; groups * 64];
    for b in 0..batch {
        let xb = &x[b * xs..b * xs + w.cols];
        for (xr, xg) in xrep.chunks_exact_mut(64).zip(xb.chunks_exact(4)) {
            for (i, v) in xr.iter_mut().enumerate() {
                *v = xg[i % 4] as i16;
            }
        }
        let ob = &mut out[b * os..b * os + w.rows];
        for (rb, oblk) in ob.chunks_exact_mut(16).enumerate() {
            let mut acc = [0i32; 32];
            let blocks = &w.blocks[rb * groups..(rb + 1) * groups];
            for (blk, xg) in blocks.iter().zip(xrep.chunks_exact(64)) {
                let mut wv = [0i16; 64];
                for i in 0..64 {
                    wv[i] = (blk.0[i] ^ 0x80) as i8 as i16;
                }
                for i in 0..32 {
                    acc[i] += wv[2 * i] as i32 * xg[2 * i] as i32
                        + wv[2 * i + 1] as i32 * xg[2 * i + 1] as i32;
                }
            }
            for (r, o) in oblk.iter_mut().enumerate() {
                *o = acc[2 * r] + acc[2 * r + 1];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Block, PackedI8};
    use std::arch::x86_64::*;

    /// AVX2: 16 rows x 2 batch rows per tile; inputs widened to i16 once.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn matmul_avx2(
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        let groups = w.cols / 4;
        let cols = w.cols;
        let mut xw = vec![0i16; batch * cols];
        for b in 0..batch {
            // SAFETY: the caller checked that `x` holds `batch` rows of `cols` at stride `xs`.
            let xr = unsafe { std::slice::from_raw_parts(x.add(b * xs), cols) };
            for (d, &s) in xw[b * cols..(b + 1) * cols].iter_mut().zip(xr) {
                *d = s as i16;
            }
        }
        let xp = xw.as_ptr();
        for rb in 0..w.rows / 16 {
            // SAFETY (whole body): `xw` holds `batch` rows of `cols`; the
            // caller checked that `out` holds `batch` rows of `rows` at stride
            // `os`; `blocks` holds `rows/16 * groups` blocks.
            unsafe {
                let wp = w.blocks.as_ptr().add(rb * groups);
                let mut b = 0;
                while b + 2 <= batch {
                    avx2_tile::<2>(
                        wp,
                        groups,
                        xp.add(b * cols),
                        cols,
                        out.add(b * os + rb * 16),
                        os,
                    );
                    b += 2;
                }
                if b < batch {
                    avx2_tile::<1>(
                        wp,
                        groups,
                        xp.add(b * cols),
                        cols,
                        out.add(b * os + rb * 16),
                        os,
                    );
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn avx2_tile<const NB: usize>(
        wp: *const Block,
        groups: usize,
        x: *const i16,
        xs: usize,
        out: *mut i32,
        os: usize,
    ) {
        unsafe {
            let flip = _mm256_set1_epi8(0x80u8 as i8);
            let mut acc = [[_mm256_setzero_si256(); 4]; NB];
            for g in 0..groups {
                let p = wp.add(g) as *const __m256i;
                let lo = _mm256_xor_si256(_mm256_load_si256(p), flip);
                let hi = _mm256_xor_si256(_mm256_load_si256(p.add(1)), flip);
                let wv = [
                    _mm256_cvtepi8_epi16(_mm256_castsi256_si128(lo)),
                    _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(lo)),
                    _mm256_cvtepi8_epi16(_mm256_castsi256_si128(hi)),
                    _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(hi)),
                ];
                for n in 0..NB {
                    // four i16 inputs, broadcast to every 64-bit lane
                    let xv =
                        _mm256_set1_epi64x((x.add(n * xs + 4 * g) as *const i64).read_unaligned());
                    for i in 0..4 {
                        acc[n][i] = _mm256_add_epi32(acc[n][i], _mm256_madd_epi16(wv[i], xv));
                    }
                }
            }
            let idx = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
            for n in 0..NB {
                // lanes [r0a r0b r1a r1b | r2a r2b r3a r3b] -> hadd pairs -> reorder
                let a = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(acc[n][0], acc[n][1]), idx);
                let c = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(acc[n][2], acc[n][3]), idx);
                _mm256_storeu_si256(out.add(n * os) as *mut __m256i, a);
                _mm256_storeu_si256(out.add(n * os + 8) as *mut __m256i, c);
            }
        }
    }

    const RB: usize = 4;
    const NB: usize = 6;

    /// AVX-512 VNNI: tiles of 4 row blocks (64 rows) x 6 batch rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn matmul_avx512(
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        let groups = w.cols / 4;
        let nrb = w.rows / 16;
        let mut rb = 0;
        // SAFETY (whole body): as in `matmul_avx2`.
        unsafe {
            while rb < nrb {
                let wp = w.blocks.as_ptr().add(rb * groups);
                let o = out.add(rb * 16);
                match nrb - rb {
                    1 => vnni_rows::<1>(wp, groups, x, xs, batch, o, os),
                    2 => vnni_rows::<2>(wp, groups, x, xs, batch, o, os),
                    3 => vnni_rows::<3>(wp, groups, x, xs, batch, o, os),
                    _ => vnni_rows::<RB>(wp, groups, x, xs, batch, o, os),
                }
                rb += RB;
            }
        }
    }

    #[inline(always)]
    unsafe fn vnni_rows<const R: usize>(
        wp: *const Block,
        groups: usize,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        unsafe {
            let mut b = 0;
            while b + NB <= batch {
                vnni_tile::<R, NB>(wp, groups, x.add(b * xs), xs, out.add(b * os), os);
                b += NB;
            }
            let (xr, or) = (x.add(b * xs), out.add(b * os));
            match batch - b {
                0 => {}
                1 => vnni_tile::<R, 1>(wp, groups, xr, xs, or, os),
                2 => vnni_tile::<R, 2>(wp, groups, xr, xs, or, os),
                3 => vnni_tile::<R, 3>(wp, groups, xr, xs, or, os),
                4 => vnni_tile::<R, 4>(wp, groups, xr, xs, or, os),
                _ => vnni_tile::<R, 5>(wp, groups, xr, xs, or, os),
            }
        }
    }

    #[inline(always)]
    unsafe fn vnni_tile<const R: usize, const N: usize>(
        wp: *const Block,
        groups: usize,
        x: *const i8,
        xs: usize,
        out: *mut i32,
        os: usize,
    ) {
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); N]; R];
            for g in 0..groups {
                let mut wv = [_mm512_setzero_si512(); R];
                for (i, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_load_si512(wp.add(i * groups + g) as *const __m512i);
                }
                for n in 0..N {
                    let xv =
                        _mm512_set1_epi32((x.add(n * xs + 4 * g) as *const i32).read_unaligned());
                    for i in 0..R {
                        acc[i][n] = _mm512_dpbusd_epi32(acc[i][n], wv[i], xv);
                    }
                }
            }
            let cols = groups * 4;
            for n in 0..N {
                let xr = std::slice::from_raw_parts(x.add(n * xs), cols);
                let mut s = 0i32;
                for &v in xr {
                    s += v as i32;
                }
                let c = _mm512_set1_epi32(128 * s);
                for i in 0..R {
                    _mm512_storeu_si512(
                        out.add(n * os + i * 16) as *mut __m512i,
                        _mm512_sub_epi32(acc[i][n], c),
                    );
                }
            }
        }
    }
}

/// Compiles an `#[inline(always)]` element-wise function once per
/// instruction set and dispatches on the kernel path. Bits never depend on
/// the choice (see the module docs).
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) => $generic:path;) => {
        $(#[$m])*
        $vis fn $name(path: KernelPath, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
                unsafe fn v512($($arg: $ty),*) { $generic($($arg),*) }
                #[target_feature(enable = "avx2")]
                unsafe fn v256($($arg: $ty),*) { $generic($($arg),*) }
                match path {
                    KernelPath::Avx512 if path.is_available() => {
                        // SAFETY: the features are available (checked).
                        return unsafe { v512($($arg),*) };
                    }
                    KernelPath::Avx2 if path.is_available() => {
                        // SAFETY: AVX2 is available (checked).
                        return unsafe { v256($($arg),*) };
                    }
                    _ => {}
                }
            }
            let _ = path;
            $generic($($arg),*)
        }
    };
}

multiversion! {
    /// Layer-0 GRU cells of `nb` slots (see `engine::gru_layer0_generic`).
    pub(crate) fn gru_layer0(
        d: usize, nb: usize, inputs: &[u16], embed: &[f32], acc_h: &[i32],
        m_hh: &[f32], b_hh: &[f32], h: &mut [f32], q: &mut [i8], ld: usize,
    ) => super::engine::gru_layer0_generic;
}

multiversion! {
    /// GRU cells of layer >= 1 for `nb` slots (see `engine::gru_layer_generic`).
    pub(crate) fn gru_layer(
        d: usize, nb: usize, acc_i: &[i32], m_ih: &[f32], b_ih: &[f32], acc_h: &[i32],
        m_hh: &[f32], b_hh: &[f32], h: &mut [f32], q: &mut [i8], ld: usize,
    ) => super::engine::gru_layer_generic;
}

multiversion! {
    /// Logits and frequency tables of `nb` slots (see `engine::head_freqs_generic`).
    pub(crate) fn head_freqs(nb: usize, acc: &[i32], m: &[f32], b: &[f32], freqs: &mut [[u32; 256]]) => super::engine::head_freqs_generic;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545F4914F6CDD1D)
        }
    }

    fn rand_i8(rng: &mut Rng) -> i8 {
        ((rng.next() % 255) as i32 - 127) as i8 // -127..=127
    }

    fn reference(
        rows: usize,
        cols: usize,
        w: &[i8],
        x: &[i8],
        xs: usize,
        batch: usize,
        os: usize,
    ) -> Vec<i32> {
        let mut out = vec![i32::MIN; (batch.max(1) - 1) * os + rows];
        for b in 0..batch {
            for j in 0..rows {
                out[b * os + j] = (0..cols)
                    .map(|k| w[j * cols + k] as i32 * x[b * xs + k] as i32)
                    .sum();
            }
        }
        out
    }

    #[test]
    fn all_paths_bit_identical_to_reference() {
        let mut rng = Rng(0xfeed_beef_1234_5678);
        let shapes = [
            (16, 4),
            (16, 32),
            (32, 64),
            (48, 36),
            (96, 32),
            (80, 100),
            (256, 512),
            (768, 256),
            (112, 1024),
        ];
        let paths = KernelPath::available();
        eprintln!("testing kernel paths {paths:?}");
        for (si, &(rows, cols)) in shapes.iter().enumerate() {
            for &batch in &[1usize, 2, 3, 5, 6, 7, 12, 13, 31] {
                let extreme = (si + batch) % 3;
                let w: Vec<i8> = (0..rows * cols)
                    .map(|_| match extreme {
                        0 => 127 * if rng.next() & 1 == 0 { 1 } else { -1 },
                        _ => rand_i8(&mut rng),
                    })
                    .collect();
                let xs = cols + (batch % 3) * 4;
                let os = rows + (batch % 2) * 16;
                let x: Vec<i8> = (0..(batch - 1) * xs + cols)
                    .map(|_| match extreme {
                        0 => -127,
                        1 => 127,
                        _ => rand_i8(&mut rng),
                    })
                    .collect();
                let want = reference(rows, cols, &w, &x, xs, batch, os);
                let pw = PackedI8::new(rows, cols, &w);
                for j in 0..rows {
                    for k in 0..cols {
                        assert_eq!(pw.get(j, k), w[j * cols + k]);
                    }
                }
                for &p in &paths {
                    let mut out = vec![i32::MIN; want.len()];
                    matmul_i8(p, &pw, &x, xs, batch, &mut out, os);
                    for b in 0..batch {
                        for j in 0..rows {
                            assert_eq!(
                                out[b * os + j],
                                want[b * os + j],
                                "{p} {rows}x{cols} batch {batch} b {b} j {j}"
                            );
                        }
                        // untouched padding
                        for j in rows..os {
                            if b * os + j < out.len() {
                                assert_eq!(out[b * os + j], i32::MIN);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_names() {
        assert_eq!(
            KernelPath::from_name("portable").unwrap(),
            KernelPath::Portable
        );
        assert!(matches!(
            KernelPath::from_name("sse9"),
            Err(LmError::BadKernelName(_))
        ));
        for p in KernelPath::ALL {
            assert_eq!(KernelPath::from_name(p.name()).is_ok(), p.is_available());
        }
        assert!(KernelPath::best_available().is_available());
    }
}

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
