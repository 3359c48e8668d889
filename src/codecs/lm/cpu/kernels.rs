//! Integer matrix kernels and instruction-set dispatch. The only module of
//! `lm` with `unsafe` code.
//!
//! `acc[b][j] = sum_k W[j,k] * x[b][k]` with `W`, `x` in -127..=127 and exact
//! `i32` sums. Every path gives the same bits because every path computes the
//! exact integer; they differ only in the instructions:
//!
//! - `portable`: plain Rust (baseline SIMD by auto-vectorisation).
//! - `avx2`: x86-64 with AVX2. From [`AVX2_MADD_MIN_BATCH`] batch rows on,
//!   `vpmaddwd` on weights sign-extended to i16 (`vpmovsxbw`, once per tile
//!   and reused by up to 6 batch rows) and inputs widened to i16 once per
//!   call; below, `vpsignb` + `vpmaddubsw` + `vpmaddwd` on the bytes.
//! - `avxvnni`: VEX `vpdpbusd` on 256-bit registers (AVX-VNNI).
//! - `avx512`: EVEX `vpdpbusd` on 512-bit registers (AVX-512 VNNI).
//! - `amx`: AMX-INT8 `tdpbssd` tiles for batches of [`AMX_MIN_BATCH`] rows
//!   or more, `avx512` below; Linux only (the tile state needs the kernel's
//!   permission, asked once with `arch_prctl(ARCH_REQ_XCOMP_PERM)`).
//! - `dotprod`: aarch64 NEON `sdot`.
//! - `i8mm`: aarch64 NEON `smmla` for pairs of batch rows, `sdot` for an odd
//!   last row.
//!
//! Why every path is exact (no intermediate saturates, none wraps):
//!
//! - A product of two values in -127..=127 lies in -16129..=16129.
//! - Two's-complement `i32` additions that wrap are still exact modulo 2^32,
//!   so a wrapping accumulator (`vpaddd`, `vpdpbusd`, `sdot`, `smmla`,
//!   `tdpbssd`, plain `+` on the portable path where no sum can overflow
//!   anyway) gives the true sum whenever the true sum fits in `i32`. The
//!   largest true sum is `127 * 127 * MAX_COLS = 1,057,030,144 < 2^31`, and
//!   on the VNNI paths, whose unsigned operand is `x + 128` in 1..=255, the
//!   uncompensated sum is at most `255 * 127 * MAX_COLS = 2,122,383,360 <
//!   2^31 - 1` as well.
//! - The only saturating instruction is AVX2's `vpmaddubsw` (u8 x i8, adjacent
//!   pairs summed to i16 with saturation). Its unsigned operand is `|x|` in
//!   0..=127 and its signed operand `sign(x) * W` in -127..=127 (`vpsignb`;
//!   `W = -128` is rejected when packing), so each pair sum lies in
//!   `-2 * 127 * 127 ..= 2 * 127 * 127 = -32258..=32258`, inside i16's
//!   -32768..=32767. `vpmaddwd` against ones then widens the two pairs of a
//!   row to i32 exactly. (With `x = -128`, which the model never produces,
//!   `|x|` reads as the unsigned 128 and the bound is `2 * 128 * 127 = 32512`:
//!   still exact.)
//! - AVX2's `vpmaddwd` path multiplies i16 copies of the same values: each
//!   product lies in -16129..=16129 and each pair sum in -32258..=32258,
//!   formed in i32 (the instruction's only inexact case, all four inputs
//!   -32768, cannot occur); `vpaddd` accumulates as above and `vphaddd`
//!   adds a row's two partial sums, whose true total fits in i32.
//! - `vpdpbusd` (non-saturating form), `sdot`, `smmla` and `tdpbssd` multiply
//!   bytes into i32 without saturation at any step.
//!
//! The kernel-identity tests (`tests` below) check every available path
//! against a plain `i32` reference, including all-`±127` weights and inputs,
//! the largest column count and odd shapes; `examples/kernel_check.rs` does
//! the same from a release binary and prints OK or MISMATCH per path.
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

use crate::codecs::lm::LmError;
use std::fmt;

/// Which kernel implementation runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Plain Rust, every CPU.
    Portable,
    /// x86-64 with AVX2.
    Avx2,
    /// x86-64 with AVX2 and AVX-VNNI (VEX `vpdpbusd`, 256-bit).
    AvxVnni,
    /// x86-64 with AVX-512 F, BW, VL and VNNI.
    Avx512,
    /// x86-64 Linux with AMX-TILE, AMX-INT8 and the `avx512` path's features.
    Amx,
    /// aarch64 with the dot-product extension (`sdot`).
    Dotprod,
    /// aarch64 with dot product and the int8 matrix multiply (`smmla`).
    I8mm,
}

/// The smallest batch the `avx2` path computes with `vpmaddwd` on widened
/// inputs; smaller batches use `vpmaddubsw` on the bytes.
///
/// Per 32 products the `vpmaddubsw` form issues `vpsignb`, `vpmaddubsw` and
/// `vpmaddwd`, all three on the integer-multiply ports (two on AMD Zen 4,
/// p0/p1 on Intel), and `vpaddd`; the `vpmaddwd` form issues two
/// `vpmaddwd` on those ports and two `vpaddd` on any vector ALU, plus a
/// `vpmovsxbw` per 16 weights shared by the batch rows of a tile. On an AMD
/// EPYC (Zen 4, family 25 model 17), 768x256 matrix, products per second:
/// `vpmaddubsw` 71 G at every batch; `vpmaddwd` 70 G at batch 2, 76 G at 3,
/// 85 G at 6 and more.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // x86 paths only
pub const AVX2_MADD_MIN_BATCH: usize = 3;

/// The smallest batch the `amx` path hands to the tiles; smaller batches run
/// on `avx512`, since a tile always computes 16 batch rows.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // x86 paths only
pub const AMX_MIN_BATCH: usize = 8;

impl KernelPath {
    /// All paths, slowest first within each architecture.
    pub const ALL: [KernelPath; 7] = [
        KernelPath::Portable,
        KernelPath::Avx2,
        KernelPath::AvxVnni,
        KernelPath::Avx512,
        KernelPath::Amx,
        KernelPath::Dotprod,
        KernelPath::I8mm,
    ];

    /// The name used by `LZA_KERNEL`: `portable`, `avx2`, `avxvnni`,
    /// `avx512`, `amx`, `dotprod`, `i8mm`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Portable => "portable",
            KernelPath::Avx2 => "avx2",
            KernelPath::AvxVnni => "avxvnni",
            KernelPath::Avx512 => "avx512",
            KernelPath::Amx => "amx",
            KernelPath::Dotprod => "dotprod",
            KernelPath::I8mm => "i8mm",
        }
    }

    /// Every path's name, comma-separated, from [`KernelPath::ALL`].
    pub fn names() -> String {
        let names: Vec<&str> = KernelPath::ALL.iter().map(|p| p.name()).collect();
        names.join(", ")
    }

    /// Whether this CPU (and, for `amx`, the OS) can run the path.
    pub fn is_available(self) -> bool {
        match self {
            KernelPath::Portable => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            KernelPath::AvxVnni => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avxvnni")
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Amx => KernelPath::Avx512.is_available() && amx::available(),
            #[cfg(target_arch = "aarch64")]
            KernelPath::Dotprod => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[cfg(target_arch = "aarch64")]
            KernelPath::I8mm => {
                std::arch::is_aarch64_feature_detected!("dotprod")
                    && std::arch::is_aarch64_feature_detected!("i8mm")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Whether [`KernelPath::best_available`] may pick the path on its own.
    /// `amx` is chosen only by name (`LZA_KERNEL=amx`) until its identity
    /// test has passed on a CPU that has AMX: a path that computed a wrong
    /// sum would make archives that no other machine extracts.
    pub fn auto_selected(self) -> bool {
        self != KernelPath::Amx
    }

    /// The fastest path this CPU can run (of those picked automatically).
    pub fn best_available() -> KernelPath {
        *KernelPath::ALL
            .iter()
            .rev()
            .find(|p| p.auto_selected() && p.is_available())
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
        let Some(path) = KernelPath::ALL.into_iter().find(|p| p.name() == name) else {
            return Err(LmError::BadKernelName(name.to_string()));
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

/// 16 rows x 4 columns of signed weights, row-major within the block:
/// byte `r * 4 + i` is `W[16 * rb + r, 4 * g + i]`. 64-byte aligned, so a
/// block is one aligned 512-bit load, two 256-bit ones or four NEON
/// registers, and a run of 16 blocks is one AMX tile in the layout
/// `tdpbssd` wants for its second operand.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Block([i8; 64]);

/// Blocks of zeros after the last row block, so a 16-block AMX tile load that
/// starts in the last row block stays inside the allocation (the columns it
/// reads past the matrix meet zero inputs).
const PAD_BLOCKS: usize = 16;

/// An int8 weight matrix in the kernels' layout: row blocks of 16 rows, each a
/// run of `cols / 4` 64-byte blocks. Rows must be a multiple of 16 and columns a
/// multiple of 4 (every matrix of a valid model is).
#[derive(Clone)]
pub struct PackedI8 {
    rows: usize,
    cols: usize,
    blocks: Vec<Block>,
    /// `128 * sum_k W[j, k]` per row: the VNNI paths multiply `x + 128`
    /// (unsigned) by `W` and subtract this.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    comp: Vec<i32>,
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
        let mut blocks = vec![Block([0; 64]); rows / 16 * groups + PAD_BLOCKS];
        for rb in 0..rows / 16 {
            for g in 0..groups {
                let blk = &mut blocks[rb * groups + g].0;
                for r in 0..16 {
                    for i in 0..4 {
                        blk[r * 4 + i] = w[(rb * 16 + r) * cols + g * 4 + i];
                    }
                }
            }
        }
        let comp = w
            .chunks_exact(cols.max(1))
            .take(rows)
            .map(|row| 128 * row.iter().map(|&v| v as i32).sum::<i32>())
            .collect();
        PackedI8 {
            rows,
            cols,
            blocks,
            comp,
        }
    }

    /// Number of rows.
    #[cfg(any(test, feature = "testutil"))]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    #[cfg(any(test, feature = "testutil"))]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Weight `W[j, k]`.
    pub fn get(&self, j: usize, k: usize) -> i8 {
        let groups = self.cols / 4;
        self.blocks[(j / 16) * groups + k / 4].0[(j % 16) * 4 + k % 4]
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
    if batch == 0 || w.rows == 0 {
        return;
    }
    assert!(x_stride >= w.cols && out_stride >= w.rows, "bad strides");
    assert!(x.len() >= (batch - 1) * x_stride + w.cols, "x too short");
    assert!(
        out.len() >= (batch - 1) * out_stride + w.rows,
        "out too short"
    );
    if path == KernelPath::Portable {
        return matmul_portable(w, x, x_stride, batch, out, out_stride);
    }
    assert!(
        path.is_available(),
        "kernel path {path} is not available on this CPU"
    );
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let (xs, os) = (x_stride, out_stride);
    // SAFETY (every arm): the path's CPU features are available (checked
    // above) and `x`, `out` hold `batch` rows of `cols` and `rows` at
    // strides `xs`, `os` (checked above), which is what the kernels read and
    // write.
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => unsafe { x86::matmul_avx2(w, xp, xs, batch, op, os) },
        #[cfg(target_arch = "x86_64")]
        KernelPath::AvxVnni => unsafe { x86::matmul_avxvnni(w, xp, xs, batch, op, os) },
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => unsafe { x86::matmul_avx512(w, xp, xs, batch, op, os) },
        #[cfg(target_arch = "x86_64")]
        KernelPath::Amx if batch < AMX_MIN_BATCH => unsafe {
            x86::matmul_avx512(w, xp, xs, batch, op, os)
        },
        #[cfg(target_arch = "x86_64")]
        KernelPath::Amx => unsafe { amx::matmul_amx(w, xp, xs, batch, op, os) },
        #[cfg(target_arch = "aarch64")]
        KernelPath::Dotprod => unsafe { arm::matmul_dotprod(w, xp, xs, batch, op, os) },
        #[cfg(target_arch = "aarch64")]
        KernelPath::I8mm => unsafe { arm::matmul_i8mm(w, xp, xs, batch, op, os) },
        _ => unreachable!("kernel path {path} is available but has no kernel"),
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
                    wv[i] = blk.0[i] as i16;
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

/// Runs `tile::<R, N>(rb, b, args...)` over a matrix of `nrb` row blocks and
/// `batch` rows: tiles of the largest `R` by the largest `N` listed, smaller
/// ones at the edges (the lists must be 1, 2, ..., max).
macro_rules! tiled {
    ($nrb:expr, $batch:expr, $tile:ident, R = [$($r:literal)+], N = [$($n:literal)+], ($($arg:expr),*)) => {{
        let (nrb, batch): (usize, usize) = ($nrb, $batch);
        let (rmax, nmax) = (*[$($r),+].iter().max().unwrap(), *[$($n),+].iter().max().unwrap());
        let mut rb = 0;
        while rb < nrb {
            let r = (nrb - rb).min(rmax);
            let mut b = 0;
            while b < batch {
                let n = (batch - b).min(nmax);
                tiled!(@r r, n, $tile, [$($r)+], [$($n)+], (rb, b, $($arg),*));
                b += n;
            }
            rb += r;
        }
    }};
    (@r $r:ident, $n:ident, $tile:ident, [$($rv:literal)+], $ns:tt, $call:tt) => {
        match $r {
            $($rv => tiled!(@n $rv, $n, $tile, $ns, $call),)+
            _ => unreachable!(),
        }
    };
    (@n $rv:literal, $n:ident, $tile:ident, [$($nv:literal)+], $call:tt) => {
        match $n {
            $($nv => $tile::<$rv, $nv> $call,)+
            _ => unreachable!(),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Block, PackedI8};
    use std::arch::x86_64::*;

    /// AVX2 tile: `R` row blocks (2R registers of 8 rows x 4 columns) by `N`
    /// batch rows. Per block and batch row: `vpsignb` (`sign(x) * W`),
    /// `vpmaddubsw` (`|x|` times that, pairs to i16: at most 32258, see the
    /// module docs), `vpmaddwd` with ones (the row's 4 products to i32),
    /// `vpaddd`.
    ///
    /// # Safety
    /// The CPU must have AVX2; `rb + R <= w.rows() / 16` and `b + N <= batch`
    /// (the tiling of the caller), where `x` holds `batch` rows of `w.cols()`
    /// bytes at stride `xs` and `out` `batch` rows of `w.rows()` values at
    /// stride `os`.
    #[inline(always)]
    unsafe fn avx2_tile<const R: usize, const N: usize>(
        rb: usize,
        b: usize,
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        out: *mut i32,
        os: usize,
    ) {
        let groups = w.cols / 4;
        // SAFETY: `rb + R <= rows / 16` and `b + N <= batch` (the tiling), so
        // every block, input and output touched is inside what the caller
        // vouched for.
        unsafe {
            let wp = w.blocks.as_ptr().add(rb * groups);
            let x = x.add(b * xs);
            let ones = _mm256_set1_epi16(1);
            let mut acc = [[[_mm256_setzero_si256(); 2]; N]; R];
            for g in 0..groups {
                let mut wv = [[_mm256_setzero_si256(); 2]; R];
                for i in 0..R {
                    let p = wp.add(i * groups + g) as *const __m256i;
                    wv[i] = [_mm256_load_si256(p), _mm256_load_si256(p.add(1))];
                }
                for n in 0..N {
                    let xv =
                        _mm256_set1_epi32((x.add(n * xs + 4 * g) as *const i32).read_unaligned());
                    let ax = _mm256_abs_epi8(xv);
                    for i in 0..R {
                        for h in 0..2 {
                            let s = _mm256_sign_epi8(wv[i][h], xv);
                            let p = _mm256_maddubs_epi16(ax, s);
                            acc[i][n][h] =
                                _mm256_add_epi32(acc[i][n][h], _mm256_madd_epi16(p, ones));
                        }
                    }
                }
            }
            for i in 0..R {
                for n in 0..N {
                    let o = out.add((b + n) * os + (rb + i) * 16) as *mut __m256i;
                    _mm256_storeu_si256(o, acc[i][n][0]);
                    _mm256_storeu_si256(o.add(1), acc[i][n][1]);
                }
            }
        }
    }

    /// AVX2 tile of the `vpmaddwd` layout: 8 rows (half of row block
    /// `hb / 2`: its 16-byte quarters `2 * (hb % 2)` and `2 * (hb % 2) + 1`,
    /// 4 rows x 4 columns each) by `N` batch rows. Per group of 4 columns:
    /// each quarter is sign-extended to 16 i16 (`vpmovsxbw`) once and used
    /// for all `N` batch rows; each batch row's 4 inputs, already i16 (`xw`),
    /// are broadcast (`vpbroadcastq`); `vpmaddwd` leaves per row two i32
    /// sums of 2 products, `vpaddd` accumulates. At the end `vphaddd` adds the
    /// two sums of each row and `vpermq` puts the 8 rows in order.
    ///
    /// # Safety
    /// The CPU must have AVX2; `hb < w.rows() / 8` and `b + N <= batch` (the
    /// tiling of the caller), where `xw` holds `batch` rows of `w.cols()`
    /// i16 back to back and `out` `batch` rows of `w.rows()` values at
    /// stride `os`.
    #[inline(always)]
    unsafe fn avx2_madd_tile<const N: usize>(
        hb: usize,
        b: usize,
        w: &PackedI8,
        xw: *const i16,
        out: *mut i32,
        os: usize,
    ) {
        let (cols, groups) = (w.cols, w.cols / 4);
        // SAFETY: `hb < rows / 8` and `b + N <= batch` (the tiling), so
        // every block, input and output touched is inside what the caller
        // vouched for.
        unsafe {
            let wp = (w.blocks.as_ptr().add((hb / 2) * groups) as *const i8).add((hb % 2) * 32);
            let xw = xw.add(b * cols);
            let mut acc = [[_mm256_setzero_si256(); 2]; N];
            for g in 0..groups {
                let p = wp.add(g * 64) as *const __m128i;
                let w0 = _mm256_cvtepi8_epi16(_mm_load_si128(p));
                let w1 = _mm256_cvtepi8_epi16(_mm_load_si128(p.add(1)));
                for n in 0..N {
                    let xv = _mm256_set1_epi64x(
                        (xw.add(n * cols + 4 * g) as *const i64).read_unaligned(),
                    );
                    acc[n][0] = _mm256_add_epi32(acc[n][0], _mm256_madd_epi16(w0, xv));
                    acc[n][1] = _mm256_add_epi32(acc[n][1], _mm256_madd_epi16(w1, xv));
                }
            }
            for n in 0..N {
                // lanes [r0 r1 r4 r5 | r2 r3 r6 r7] -> [r0 .. r7]
                let h = _mm256_hadd_epi32(acc[n][0], acc[n][1]);
                let h = _mm256_permute4x64_epi64::<0b11_01_10_00>(h);
                _mm256_storeu_si256(out.add((b + n) * os + hb * 8) as *mut __m256i, h);
            }
        }
    }

    /// AVX2: `vpmaddubsw` on `|x|` and `sign(x) * W` (`avx2_tile`) for
    /// batches below [`super::AVX2_MADD_MIN_BATCH`], `vpmaddwd` on i16
    /// weights and inputs (`avx2_madd_tile`) for larger ones (module docs).
    /// Tiles of 6 batch rows: 12 accumulators, 2 weight registers and a
    /// broadcast fill 15 of the 16 registers; the batch is the outer loop
    /// (its 6 widened input rows stay in L1 while the weights stream), which
    /// measured 4% faster than row blocks outside.
    ///
    /// # Safety
    /// The CPU must have AVX2; `x` must hold `batch` rows of `w.cols()` bytes
    /// at stride `xs` and `out` `batch` rows of `w.rows()` values at stride
    /// `os`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn matmul_avx2(
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        // SAFETY: as this function's contract; the tiles stay inside it and
        // the `vpmaddwd` tiles read the widened copy (`batch` rows of `cols`).
        unsafe {
            if batch < super::AVX2_MADD_MIN_BATCH {
                tiled!(w.rows / 16, batch, avx2_tile, R = [1 2], N = [1 2], (w, x, xs, out, os));
                return;
            }
            let xw = widened(x, xs, batch, w.cols);
            let xw = xw.as_ptr();
            let nhb = w.rows / 8;
            let mut b = 0;
            while b < batch {
                let n = (batch - b).min(6);
                for hb in 0..nhb {
                    match n {
                        6 => avx2_madd_tile::<6>(hb, b, w, xw, out, os),
                        5 => avx2_madd_tile::<5>(hb, b, w, xw, out, os),
                        4 => avx2_madd_tile::<4>(hb, b, w, xw, out, os),
                        3 => avx2_madd_tile::<3>(hb, b, w, xw, out, os),
                        2 => avx2_madd_tile::<2>(hb, b, w, xw, out, os),
                        _ => avx2_madd_tile::<1>(hb, b, w, xw, out, os),
                    }
                }
                b += n;
            }
        }
    }

    /// `x` sign-extended to i16, `batch` rows of `cols` back to back (the
    /// `vpmaddwd` tiles' inputs, widened once per call rather than once per
    /// row block).
    ///
    /// # Safety
    /// `x` must hold `batch` rows of `cols` bytes at stride `xs`.
    unsafe fn widened(x: *const i8, xs: usize, batch: usize, cols: usize) -> Vec<i16> {
        let mut xw = vec![0i16; batch * cols];
        for (b, row) in xw.chunks_exact_mut(cols.max(1)).enumerate().take(batch) {
            // SAFETY: row `b < batch` of `x` (the contract).
            let src = unsafe { std::slice::from_raw_parts(x.add(b * xs), cols) };
            for (d, &v) in row.iter_mut().zip(src) {
                *d = v as i16;
            }
        }
        xw
    }

    /// `x + 128` as unsigned bytes (the VNNI paths' unsigned operand), `batch`
    /// rows of `cols` back to back. Flipped once per call here rather than
    /// per broadcast in the tiles: an `xor` of the broadcast made LLVM never
    /// finish compiling the tiles with `-C target-cpu=native` (still
    /// running after 20 minutes; a few seconds this way).
    ///
    /// # Safety
    /// `x` must hold `batch` rows of `cols` bytes at stride `xs`.
    unsafe fn flipped(x: *const i8, xs: usize, batch: usize, cols: usize) -> Vec<i8> {
        let mut xu = vec![0i8; batch * cols];
        for (b, row) in xu.chunks_exact_mut(cols.max(1)).enumerate().take(batch) {
            // SAFETY: row `b < batch` of `x` (the contract).
            let src = unsafe { std::slice::from_raw_parts(x.add(b * xs), cols) };
            for (d, &v) in row.iter_mut().zip(src) {
                *d = v ^ i8::MIN;
            }
        }
        xu
    }

    /// AVX-VNNI tile: `R` row blocks by `N` batch rows, `vpdpbusd` of
    /// `x + 128` (u8, from [`flipped`], broadcast) and `W` (i8); `128 * rowsum(W)` subtracted
    /// at the end.
    ///
    /// # Safety
    /// The CPU must have AVX-VNNI; `rb + R <= w.rows() / 16` and `b + N <=
    /// batch` (the tiling of the caller), where `x` holds `batch` rows of
    /// `w.cols()` bytes at stride `xs` and `out` `batch` rows of `w.rows()`
    /// values at stride `os`.
    #[inline(always)]
    unsafe fn avxvnni_tile<const R: usize, const N: usize>(
        rb: usize,
        b: usize,
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        out: *mut i32,
        os: usize,
    ) {
        let groups = w.cols / 4;
        // SAFETY: as in `avx2_tile`; `comp` has `rows` entries.
        unsafe {
            let wp = w.blocks.as_ptr().add(rb * groups);
            let x = x.add(b * xs);
            let mut acc = [[[_mm256_setzero_si256(); 2]; N]; R];
            for g in 0..groups {
                let mut wv = [[_mm256_setzero_si256(); 2]; R];
                for i in 0..R {
                    let p = wp.add(i * groups + g) as *const __m256i;
                    wv[i] = [_mm256_load_si256(p), _mm256_load_si256(p.add(1))];
                }
                for n in 0..N {
                    let xv =
                        _mm256_set1_epi32((x.add(n * xs + 4 * g) as *const i32).read_unaligned());
                    for i in 0..R {
                        for h in 0..2 {
                            acc[i][n][h] = _mm256_dpbusd_avx_epi32(acc[i][n][h], xv, wv[i][h]);
                        }
                    }
                }
            }
            for i in 0..R {
                let c = w.comp.as_ptr().add((rb + i) * 16) as *const __m256i;
                let c = [_mm256_loadu_si256(c), _mm256_loadu_si256(c.add(1))];
                for n in 0..N {
                    let o = out.add((b + n) * os + (rb + i) * 16) as *mut __m256i;
                    _mm256_storeu_si256(o, _mm256_sub_epi32(acc[i][n][0], c[0]));
                    _mm256_storeu_si256(o.add(1), _mm256_sub_epi32(acc[i][n][1], c[1]));
                }
            }
        }
    }

    /// AVX-VNNI: 256-bit `vpdpbusd`.
    ///
    /// # Safety
    /// The CPU must have AVX2 and AVX-VNNI; `x` and `out` as for
    /// [`matmul_avx2`].
    #[target_feature(enable = "avx2,avxvnni")]
    pub(super) unsafe fn matmul_avxvnni(
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        // SAFETY: as this function's contract; the tiles stay inside it and
        // read the flipped copy (`batch` rows of `cols`).
        unsafe {
            let xu = flipped(x, xs, batch, w.cols);
            let (x, xs) = (xu.as_ptr(), w.cols);
            tiled!(w.rows / 16, batch, avxvnni_tile, R = [1 2], N = [1 2], (w, x, xs, out, os));
        }
    }

    /// AVX-512 VNNI: tiles of up to 4 row blocks (64 rows) x 6 batch rows.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW, VL and VNNI; `x` and `out` as for
    /// [`matmul_avx2`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn matmul_avx512(
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        // SAFETY: as this function's contract; the tiles stay inside it and
        // read the flipped copy (`batch` rows of `cols`).
        unsafe {
            let xu = flipped(x, xs, batch, w.cols);
            let (x, xs) = (xu.as_ptr(), w.cols);
            tiled!(w.rows / 16, batch, vnni_tile, R = [1 2 3 4], N = [1 2 3 4 5 6], (w, x, xs, out, os));
        }
    }

    /// AVX-512 VNNI tile: `R` row blocks by `N` batch rows, 512-bit
    /// `vpdpbusd` of `x + 128` (u8, from [`flipped`]) and `W` (i8);
    /// `128 * rowsum(W)` subtracted at the end.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F/BW/VNNI; `rb + R <= w.rows() / 16` and `b +
    /// N <= batch` (the tiling of the caller), where `x` holds `batch` rows of
    /// `w.cols()` bytes at stride `xs` and `out` `batch` rows of `w.rows()`
    /// values at stride `os`.
    #[inline(always)]
    unsafe fn vnni_tile<const R: usize, const N: usize>(
        rb: usize,
        b: usize,
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        out: *mut i32,
        os: usize,
    ) {
        let groups = w.cols / 4;
        // SAFETY: as in `avx2_tile`; `comp` has `rows` entries.
        unsafe {
            let wp: *const Block = w.blocks.as_ptr().add(rb * groups);
            let x = x.add(b * xs);
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
                        acc[i][n] = _mm512_dpbusd_epi32(acc[i][n], xv, wv[i]);
                    }
                }
            }
            for i in 0..R {
                let c = _mm512_loadu_si512(w.comp.as_ptr().add((rb + i) * 16) as *const __m512i);
                for n in 0..N {
                    _mm512_storeu_si512(
                        out.add((b + n) * os + (rb + i) * 16) as *mut __m512i,
                        _mm512_sub_epi32(acc[i][n], c),
                    );
                }
            }
        }
    }
}

/// AMX-INT8 (x86-64 Linux). The tiles are used through `asm!` (the AMX
/// intrinsics are not stable Rust). One call: the inputs are copied into a
/// zero-padded buffer of 32-row, 64-column tiles; per pair of 16-row batch
/// blocks and pair of row blocks, four accumulator tiles take `tdpbssd`
/// products over the columns, 64 at a time, and are stored to a buffer that
/// is copied to `out`.
#[cfg(target_arch = "x86_64")]
mod amx {
    use super::PackedI8;
    use std::sync::OnceLock;

    /// Whether the CPU has AMX-TILE and AMX-INT8 and Linux lets this process
    /// use the tile data state (asked once, for the whole process).
    pub(super) fn available() -> bool {
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| cpu_has_amx_int8() && request_tile_permission())
    }

    fn cpu_has_amx_int8() -> bool {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        // SAFETY: `cpuid` exists on every x86-64 CPU; leaf 7 is read only
        // when the maximum leaf (leaf 0's eax) says it exists.
        #[allow(unused_unsafe)]
        let (max_leaf, edx7) = unsafe { (__cpuid(0).eax, __cpuid_count(7, 0).edx) };
        // leaf 7 subleaf 0, edx bit 24: AMX-TILE, bit 25: AMX-INT8
        max_leaf >= 7 && edx7 & (1 << 24) != 0 && edx7 & (1 << 25) != 0
    }

    #[cfg(target_os = "linux")]
    fn request_tile_permission() -> bool {
        const SYS_ARCH_PRCTL: usize = 158;
        const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
        const XFEATURE_XTILEDATA: usize = 18;
        let ret: isize;
        // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) only asks the
        // kernel to allow a larger signal/context-switch state for this
        // process; it touches no memory of ours. `syscall` clobbers rcx and
        // r11, declared.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }

    #[cfg(not(target_os = "linux"))]
    fn request_tile_permission() -> bool {
        false
    }

    /// The `ldtilecfg` operand (palette 1): tiles 0-7 all 16 rows x 64 bytes.
    /// Tiles 0-3 accumulate (16 batch rows x 16 outputs, i32), 4-5 hold
    /// inputs (16 batch rows x 64 columns), 6-7 weights (16 groups of 4
    /// columns x 16 rows: 16 consecutive blocks of one row block).
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    fn tile_config() -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1; // palette
        for t in 0..8 {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes()); // bytes per row
            c[48 + t] = 16; // rows
        }
        TileConfig(c)
    }

    /// AMX-INT8 `tdpbssd` (signed x signed bytes into i32 tiles).
    ///
    /// # Safety
    /// The CPU must have AMX-TILE and AMX-INT8 and the tile data permission
    /// must have been granted ([`available`] returned true); `x` must hold
    /// `batch` rows of `w.cols()` bytes at stride `xs` and `out` `batch`
    /// rows of `w.rows()` values at stride `os`.
    pub(super) unsafe fn matmul_amx(
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        let (rows, cols) = (w.rows, w.cols);
        let groups = cols / 4;
        let nrb = rows / 16;
        let kpad = cols.div_ceil(64) * 64;
        let mpad = batch.div_ceil(32) * 32;
        let mut xp = vec![0i8; mpad * kpad];
        for b in 0..batch {
            // SAFETY: row `b < batch` of `x` (the contract).
            let src = unsafe { std::slice::from_raw_parts(x.add(b * xs), cols) };
            xp[b * kpad..b * kpad + cols].copy_from_slice(src);
        }
        // outputs of every batch row, padded rows included, 16 per row block
        let cs = nrb.div_ceil(2) * 32;
        let mut cbuf = vec![0i32; mpad * cs];
        let cfg = tile_config();
        let wbase = w.blocks.as_ptr() as *const i8;
        // SAFETY: AMX is usable (the contract). Tile loads read 16 rows of 64
        // bytes: from `xp` rows `bb..bb + 32` at columns `64t..64t + 64`
        // (inside its `mpad x kpad`), and from 16 consecutive blocks starting
        // at block `rb * groups + 16t` with `rb < nrb` and `16t < groups`,
        // which ends at most `PAD_BLOCKS` blocks past the last row block
        // (inside `blocks`; the columns past `cols` meet zero inputs). The
        // second row block of a pair is the first again when `nrb` is odd, so
        // no read leaves the matrix. Stores write 16 rows of 64 bytes into
        // `cbuf` rows `bb..bb + 32` at columns `16 * rb2 .. 16 * rb2 + 32`
        // (inside its `mpad x cs`). `tilerelease` puts the tile state back.
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileConfig, options(nostack));
            for bb in (0..mpad).step_by(32) {
                for rb in (0..nrb).step_by(2) {
                    let rb1 = if rb + 1 < nrb { rb + 1 } else { rb };
                    let xa = xp.as_ptr().add(bb * kpad);
                    let xb = xp.as_ptr().add((bb + 16) * kpad);
                    let wa = wbase.add(rb * groups * 64);
                    let wb = wbase.add(rb1 * groups * 64);
                    let ca = cbuf.as_mut_ptr().add(bb * cs + rb * 16);
                    let cb = cbuf.as_mut_ptr().add((bb + 16) * cs + rb * 16);
                    std::arch::asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        "2:",
                        "tileloadd tmm4, [{xa} + {xs} * 1]",
                        "tileloadd tmm5, [{xb} + {xs} * 1]",
                        "tileloadd tmm6, [{wa} + {s64} * 1]",
                        "tileloadd tmm7, [{wb} + {s64} * 1]",
                        "tdpbssd tmm0, tmm4, tmm6",
                        "tdpbssd tmm1, tmm4, tmm7",
                        "tdpbssd tmm2, tmm5, tmm6",
                        "tdpbssd tmm3, tmm5, tmm7",
                        "add {xa}, 64",
                        "add {xb}, 64",
                        "add {wa}, 1024",
                        "add {wb}, 1024",
                        "dec {nt}",
                        "jnz 2b",
                        "tilestored [{ca} + {cst} * 1], tmm0",
                        "tilestored [{cb} + {cst} * 1], tmm2",
                        "add {ca}, 64",
                        "add {cb}, 64",
                        "tilestored [{ca} + {cst} * 1], tmm1",
                        "tilestored [{cb} + {cst} * 1], tmm3",
                        xa = inout(reg) xa => _,
                        xb = inout(reg) xb => _,
                        wa = inout(reg) wa => _,
                        wb = inout(reg) wb => _,
                        ca = inout(reg) ca => _,
                        cb = inout(reg) cb => _,
                        nt = inout(reg) kpad / 64 => _,
                        xs = in(reg) kpad,
                        s64 = in(reg) 64usize,
                        cst = in(reg) cs * 4,
                        options(nostack),
                    );
                }
            }
            std::arch::asm!("tilerelease", options(nostack, nomem));
            for b in 0..batch {
                let src = &cbuf[b * cs..b * cs + rows];
                std::ptr::copy_nonoverlapping(src.as_ptr(), out.add(b * os), rows);
            }
        }
    }
}

/// aarch64 NEON with the dot-product (`sdot`) and int8 matrix-multiply
/// (`smmla`) extensions. A block is four registers of 4 rows x 4 columns.
#[cfg(target_arch = "aarch64")]
mod arm {
    use super::PackedI8;
    use std::arch::aarch64::*;

    /// `sdot acc.4s, a.16b, b.16b`: lane `i` of `acc` plus the dot product of
    /// bytes `4i..4i+4` of `a` and `b`. Written as `asm!` because the
    /// dot-product intrinsics are not stable Rust.
    ///
    /// # Safety
    /// The CPU must have the dot-product extension.
    #[inline(always)]
    unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: the caller guarantees the instruction exists; it reads and
        // writes registers only.
        unsafe {
            std::arch::asm!(
                ".arch_extension dotprod",
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// `smmla acc.4s, a.16b, b.16b`: `acc` (2x2 i32, row-major) plus `a`
    /// (2x8 bytes) times the transpose of `b` (2x8 bytes). `asm!` because
    /// the int8 matrix-multiply intrinsics are not stable Rust.
    ///
    /// # Safety
    /// The CPU must have the int8 matrix-multiply extension.
    #[inline(always)]
    unsafe fn smmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: as in `sdot`.
        unsafe {
            std::arch::asm!(
                ".arch_extension i8mm",
                "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// `sdot` tile: `R` row blocks (4R registers of accumulators per batch
    /// row) by `N` batch rows; the 4 inputs of a group broadcast to every
    /// 32-bit lane.
    ///
    /// # Safety
    /// The CPU must have the dot-product extension; `rb + R <= w.rows() / 16`
    /// and `b + N <= batch` (the tiling of the caller), where `x` holds `batch`
    /// rows of `w.cols()` bytes at stride `xs` and `out` `batch` rows of
    /// `w.rows()` values at stride `os`.
    #[inline(always)]
    unsafe fn dot_tile<const R: usize, const N: usize>(
        rb: usize,
        b: usize,
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        out: *mut i32,
        os: usize,
    ) {
        let groups = w.cols / 4;
        // SAFETY: `rb + R <= rows / 16` and `b + N <= batch` (the tiling).
        unsafe {
            let wp = w.blocks.as_ptr().add(rb * groups) as *const i8;
            let x = x.add(b * xs);
            let mut acc = [[[vdupq_n_s32(0); 4]; N]; R];
            for g in 0..groups {
                let mut wv = [[vdupq_n_s8(0); 4]; R];
                for i in 0..R {
                    for q in 0..4 {
                        wv[i][q] = vld1q_s8(wp.add((i * groups + g) * 64 + 16 * q));
                    }
                }
                for n in 0..N {
                    let xv = vreinterpretq_s8_s32(vdupq_n_s32(
                        (x.add(n * xs + 4 * g) as *const i32).read_unaligned(),
                    ));
                    for i in 0..R {
                        for q in 0..4 {
                            acc[i][n][q] = sdot(acc[i][n][q], wv[i][q], xv);
                        }
                    }
                }
            }
            for i in 0..R {
                for n in 0..N {
                    let o = out.add((b + n) * os + (rb + i) * 16);
                    for q in 0..4 {
                        vst1q_s32(o.add(4 * q), acc[i][n][q]);
                    }
                }
            }
        }
    }

    /// NEON `sdot`.
    ///
    /// # Safety
    /// The CPU must have the dot-product extension; `x` must hold `batch`
    /// rows of `w.cols()` bytes at stride `xs` and `out` `batch` rows of
    /// `w.rows()` values at stride `os`.
    #[target_feature(enable = "neon,dotprod")]
    pub(super) unsafe fn matmul_dotprod(
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        // SAFETY: as this function's contract; the tiles stay inside it.
        unsafe {
            tiled!(w.rows / 16, batch, dot_tile, R = [1 2], N = [1 2], (w, x, xs, out, os));
        }
    }

    /// `smmla` tile: one row block by `2P` batch rows. `smmla` multiplies a
    /// 2x8 by an 8x2 byte matrix into 2x2 i32: the weights of two groups
    /// (8 columns) are zipped into row pairs (`zip1`/`zip2` of 32-bit lanes:
    /// rows r, r+1 x 8 columns), the inputs of two batch rows stacked, and
    /// the 2x2 results unzipped back into rows at the end. An odd last group
    /// goes through `sdot`.
    ///
    /// # Safety
    /// The CPU must have the dot-product and I8MM extensions; `rb < w.rows() /
    /// 16` and `b + 2P <= batch` (the tiling of the caller), where `x` holds
    /// `batch` rows of `w.cols()` bytes at stride `xs` and `out` `batch` rows
    /// of `w.rows()` values at stride `os`.
    #[inline(always)]
    unsafe fn mmla_tile<const P: usize>(
        rb: usize,
        b: usize,
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        out: *mut i32,
        os: usize,
    ) {
        let groups = w.cols / 4;
        // SAFETY: `rb < rows / 16` and `b + 2P <= batch` (the caller).
        unsafe {
            let wp = w.blocks.as_ptr().add(rb * groups) as *const i8;
            let x = x.add(b * xs);
            // acc[p][q]: rows 2q, 2q+1 x batch rows b+2p, b+2p+1
            let mut acc = [[vdupq_n_s32(0); 8]; P];
            let mut g = 0;
            while g + 2 <= groups {
                let mut wz = [vdupq_n_s8(0); 8];
                for q in 0..4 {
                    let lo = vreinterpretq_s32_s8(vld1q_s8(wp.add(g * 64 + 16 * q)));
                    let hi = vreinterpretq_s32_s8(vld1q_s8(wp.add((g + 1) * 64 + 16 * q)));
                    wz[2 * q] = vreinterpretq_s8_s32(vzip1q_s32(lo, hi));
                    wz[2 * q + 1] = vreinterpretq_s8_s32(vzip2q_s32(lo, hi));
                }
                for p in 0..P {
                    let xv = vcombine_s8(
                        vld1_s8(x.add(2 * p * xs + 4 * g)),
                        vld1_s8(x.add((2 * p + 1) * xs + 4 * g)),
                    );
                    for q in 0..8 {
                        acc[p][q] = smmla(acc[p][q], wz[q], xv);
                    }
                }
                g += 2;
            }
            for p in 0..P {
                for half in 0..4 {
                    let (a, c) = (acc[p][2 * half], acc[p][2 * half + 1]);
                    // rows 4*half .. 4*half+4 of batch rows b+2p and b+2p+1
                    let mut r0 = vuzp1q_s32(a, c);
                    let mut r1 = vuzp2q_s32(a, c);
                    if g < groups {
                        let wv = vld1q_s8(wp.add(g * 64 + 16 * half));
                        let x0 = (x.add(2 * p * xs + 4 * g) as *const i32).read_unaligned();
                        let x1 = (x.add((2 * p + 1) * xs + 4 * g) as *const i32).read_unaligned();
                        r0 = sdot(r0, wv, vreinterpretq_s8_s32(vdupq_n_s32(x0)));
                        r1 = sdot(r1, wv, vreinterpretq_s8_s32(vdupq_n_s32(x1)));
                    }
                    vst1q_s32(out.add((b + 2 * p) * os + rb * 16 + 4 * half), r0);
                    vst1q_s32(out.add((b + 2 * p + 1) * os + rb * 16 + 4 * half), r1);
                }
            }
        }
    }

    /// NEON `smmla` for pairs of batch rows, `sdot` for an odd last row.
    ///
    /// # Safety
    /// The CPU must have the dot-product and int8 matrix-multiply
    /// extensions; `x` and `out` as for [`matmul_dotprod`].
    #[target_feature(enable = "neon,dotprod,i8mm")]
    pub(super) unsafe fn matmul_i8mm(
        w: &PackedI8,
        x: *const i8,
        xs: usize,
        batch: usize,
        out: *mut i32,
        os: usize,
    ) {
        // SAFETY: as this function's contract; every tile stays inside it.
        unsafe {
            let nrb = w.rows / 16;
            for rb in 0..nrb {
                let mut b = 0;
                while b + 4 <= batch {
                    mmla_tile::<2>(rb, b, w, x, xs, out, os);
                    b += 4;
                }
                if b + 2 <= batch {
                    mmla_tile::<1>(rb, b, w, x, xs, out, os);
                    b += 2;
                }
                if b < batch {
                    dot_tile::<1, 1>(rb, b, w, x, xs, out, os);
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
                /// # Safety
                /// The CPU must have AVX-512 F/BW/VL and AVX2.
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
                unsafe fn v512($($arg: $ty),*) { $generic($($arg),*) }
                /// # Safety
                /// The CPU must have AVX2.
                #[target_feature(enable = "avx2")]
                unsafe fn v256($($arg: $ty),*) { $generic($($arg),*) }
                match path {
                    KernelPath::Avx512 | KernelPath::Amx if path.is_available() => {
                        // SAFETY: the features are available (checked; `amx` needs
                        // the `avx512` path's features).
                        return unsafe { v512($($arg),*) };
                    }
                    KernelPath::Avx2 | KernelPath::AvxVnni if path.is_available() => {
                        // SAFETY: AVX2 is available (checked; both paths need it).
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

    use crate::codecs::lm::tests::Rng;

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
            for &batch in &[1usize, 2, 3, 5, 6, 7, 12, 13, 16, 31, 33] {
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

    /// The bounds of the module docs, met: all weights and inputs at +-127
    /// in every sign combination (each `vpmaddubsw` and `vpmaddwd` pair at
    /// +-32258), a matrix of the largest column count (the largest true sum)
    /// on both forms of the `avx2` path, and the batch sizes around each
    /// path's tile and the `avx2` and AMX thresholds.
    #[test]
    fn extreme_weights_and_inputs_are_exact() {
        let paths = KernelPath::available();
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for (rows, cols) in [(16, 4), (32, 256), (48, 68), (256, 512), (16, MAX_COLS)] {
            for (wv, xv) in [
                (127i8, 127i8),
                (127, -127),
                (-127, 127),
                (-127, -127),
                (0, 0),
            ] {
                for &batch in &[1usize, 2, 3, 6, 7, 16, 33] {
                    if cols == MAX_COLS && batch > 7 {
                        continue;
                    }
                    let w = vec![wv; rows * cols];
                    let mut x = vec![xv; batch * cols];
                    if wv == 0 {
                        // mixed signs at full magnitude, alternating with zeros
                        for v in x.iter_mut() {
                            *v = [127, -127, 0][(rng.next() % 3) as usize];
                        }
                    }
                    let want = reference(rows, cols, &w, &x, cols, batch, rows);
                    let pw = PackedI8::new(rows, cols, &w);
                    for &p in &paths {
                        let mut out = vec![i32::MIN; want.len()];
                        matmul_i8(p, &pw, &x, cols, batch, &mut out, rows);
                        assert!(out == want, "{p} {rows}x{cols} w {wv} x {xv} batch {batch}");
                    }
                }
            }
        }
        // the largest sum, 127 * 127 * MAX_COLS, on one batch row and on as
        // many as take the `avx2` path's `vpmaddwd` form
        let w = PackedI8::new(16, MAX_COLS, &vec![127i8; 16 * MAX_COLS]);
        for batch in [1, AVX2_MADD_MIN_BATCH] {
            let x = vec![-127i8; batch * MAX_COLS];
            for &p in &paths {
                let mut out = vec![0; batch * 16];
                matmul_i8(p, &w, &x, MAX_COLS, batch, &mut out, 16);
                let want = vec![-127 * 127 * MAX_COLS as i32; batch * 16];
                assert_eq!(out, want, "{p} batch {batch}");
            }
        }
    }

    /// The AMX path against the reference on its own, with batches on both
    /// sides of [`AMX_MIN_BATCH`] and shapes that leave partial tiles (odd
    /// row-block counts, columns not a multiple of 64, batches not a multiple
    /// of 32). Where AMX is not usable it says so and checks nothing.
    #[test]
    fn amx_matches_reference() {
        if !KernelPath::Amx.is_available() {
            eprintln!("note: AMX-INT8 not available here (CPU or OS): amx identity test skipped");
            return;
        }
        let mut rng = Rng(0xa3c5_0000_1111_2222);
        for &(rows, cols) in &[
            (16, 64),
            (16, 4),
            (48, 36),
            (768, 256),
            (256, 512),
            (80, 100),
        ] {
            for &batch in &[1usize, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 256] {
                let w: Vec<i8> = (0..rows * cols).map(|_| rand_i8(&mut rng)).collect();
                let xs = cols + 4 * (batch % 3);
                let x: Vec<i8> = (0..(batch - 1) * xs + cols)
                    .map(|_| rand_i8(&mut rng))
                    .collect();
                let os = rows + 16 * (batch % 2);
                let want = reference(rows, cols, &w, &x, xs, batch, os);
                let mut out = vec![i32::MIN; want.len()];
                matmul_i8(
                    KernelPath::Amx,
                    &PackedI8::new(rows, cols, &w),
                    &x,
                    xs,
                    batch,
                    &mut out,
                    os,
                );
                assert!(out == want, "amx {rows}x{cols} batch {batch}");
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
        let msg = KernelPath::from_name("sse9").unwrap_err().to_string();
        for p in KernelPath::ALL {
            assert_eq!(KernelPath::from_name(p.name()).is_ok(), p.is_available());
            assert!(msg.contains(p.name()), "{msg}");
        }
        assert!(KernelPath::best_available().is_available());
        assert!(KernelPath::best_available().auto_selected());
    }
}
