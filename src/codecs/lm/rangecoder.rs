//! Frequency tables (format-spec 7.4) and the range coder (7.5).

#![allow(clippy::needless_range_loop)]

use super::LmError;
use super::math;

/// log2 of [`TOTAL`].
pub const TOTAL_BITS: u32 = 16;
/// Sum of every frequency table.
pub const TOTAL: u32 = 1 << TOTAL_BITS;

/// Frequencies from logits, exactly as format-spec 7.4:
///
/// ```text
/// mx     = the largest logit, am = the first index holding it
/// e[v]   = exp(logits[v] - mx)                    (math::exp; e[am] == 1.0)
/// s[i]   = e[i] + e[16+i] + e[32+i] + ... + e[240+i]   (i = 0..15, left to right)
/// for w in 8, 4, 2, 1:  s[i] = s[i] + s[i+w]  for i < w
/// sum    = s[0]
/// inv    = 65280.0 / sum                          (TOTAL - 256)
/// f[v]   = 1 + min(floor(e[v] * inv), 65280)
/// f[am]  = f[am] + TOTAL - (f[0] + ... + f[255]) (signed correction)
/// ```
///
/// (The 16-lane sum is what SIMD code computes naturally; it is written out
/// here so that every build performs the same additions in the same order.)
/// Every `f[v] >= 1`, and they sum to [`TOTAL`]. The correction usually adds;
/// by f32 rounding of `sum` it can in rare cases remove one or two, and
/// `f[am] >= 256` before it (`e[am] = 1`, `sum <= 256`), so it stays positive.
/// Logits must be finite (model validation guarantees it); for finite logits
/// `mx` and `am` do not depend on the order of comparison (a `-0.0`/`+0.0`
/// tie gives the same `e`).
#[cfg(any(test, feature = "testutil"))]
pub fn freqs_from_logits(logits: &[f32; 256]) -> [u32; 256] {
    freqs_from_logits_inline(logits)
}

/// [`freqs_from_logits`], inlined into the multiversioned kernels.
#[inline(always)]
pub(crate) fn freqs_from_logits_inline(logits: &[f32; 256]) -> [u32; 256] {
    // per-lane maximum and its first index, lanes combined in order
    let mut lm = [0.0f32; 16];
    let mut li = [0u32; 16];
    for i in 0..16 {
        lm[i] = logits[i];
        li[i] = i as u32;
    }
    for j in 1..16 {
        for i in 0..16 {
            let l = logits[16 * j + i];
            let gt = l > lm[i];
            lm[i] = if gt { l } else { lm[i] };
            li[i] = if gt { (16 * j + i) as u32 } else { li[i] };
        }
    }
    let (mut mx, mut am) = (lm[0], li[0]);
    for i in 1..16 {
        if lm[i] > mx || (lm[i] == mx && li[i] < am) {
            mx = lm[i];
            am = li[i];
        }
    }
    let am = am as usize;
    let mut e = [0.0f32; 256];
    for (ev, &l) in e.iter_mut().zip(logits.iter()) {
        *ev = math::exp(l - mx);
    }
    let mut s = [0.0f32; 16];
    s.copy_from_slice(&e[..16]);
    for j in 1..16 {
        for i in 0..16 {
            s[i] += e[16 * j + i];
        }
    }
    for w in [8, 4, 2, 1] {
        for i in 0..w {
            s[i] += s[i + w];
        }
    }
    let sum = s[0];
    let inv = (TOTAL - 256) as f32 / sum;
    let mut f = [0u32; 256];
    for (fv, &ev) in f.iter_mut().zip(e.iter()) {
        *fv = 1 + floor_clamped(ev * inv);
    }
    let mut total = 0u32;
    for &fv in f.iter() {
        total += fv;
    }
    f[am] = f[am].wrapping_add(TOTAL).wrapping_sub(total);
    debug_assert!(f[am] >= 1 && f[am] <= TOTAL);
    f
}

/// `min(floor(x), 65280)` for `x >= 0` (0 for NaN), without a float-to-int
/// conversion so that it vectorises: `2^23 + x` rounds `x` to an integer held
/// in the mantissa bits; one is taken off where that rounded up.
#[inline(always)]
fn floor_clamped(x: f32) -> u32 {
    const MAX: f32 = (TOTAL - 256) as f32;
    let x = if x >= 0.0 {
        if x > MAX { MAX } else { x }
    } else {
        0.0
    };
    let s = x + 8_388_608.0;
    let r = s - 8_388_608.0;
    (s.to_bits() - 0x4B00_0000) - (r > x) as u32
}

/// `cum[v] = f[0] + ... + f[v-1]`, `cum[256] == TOTAL`.
#[cfg(any(test, feature = "testutil"))]
pub fn cumulative(f: &[u32; 256]) -> [u32; 257] {
    let mut cum = [0u32; 257];
    let mut acc = 0u32;
    for v in 0..256 {
        cum[v] = acc;
        acc += f[v];
    }
    cum[256] = acc;
    cum
}

/// LZMA-style range encoder with 32-bit range, 64-bit low and carry
/// propagation through a cached byte (format-spec 7.5).
#[derive(Debug, Clone)]
pub struct RangeEncoder {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u64,
    out: Vec<u8>,
}

impl Default for RangeEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeEncoder {
    /// A fresh encoder.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A fresh encoder with room for `cap` output bytes.
    pub fn with_capacity(cap: usize) -> Self {
        RangeEncoder {
            low: 0,
            range: 0xFFFF_FFFF,
            cache: 0,
            cache_size: 1,
            out: Vec::with_capacity(cap),
        }
    }

    /// Codes a symbol with cumulative frequency `cum` and frequency `freq`
    /// (`freq >= 1`, `cum + freq <= TOTAL`).
    #[inline]
    pub fn encode(&mut self, cum: u32, freq: u32) {
        debug_assert!(freq >= 1 && cum + freq <= TOTAL);
        let r = self.range >> TOTAL_BITS;
        self.low += r as u64 * cum as u64;
        self.range = r * freq;
        while self.range < (1 << 24) {
            self.range <<= 8;
            self.shift_low();
        }
    }

    /// Codes byte `sym` with the table `f` (computes the cumulative frequency).
    #[inline]
    pub fn encode_symbol(&mut self, f: &[u32; 256], sym: u8) {
        let mut cum = 0u32;
        for &fv in &f[..sym as usize] {
            cum += fv;
        }
        self.encode(cum, f[sym as usize]);
    }

    fn shift_low(&mut self) {
        if (self.low as u32) < 0xFF00_0000 || (self.low >> 32) != 0 {
            let carry = (self.low >> 32) as u8;
            let mut temp = self.cache;
            loop {
                self.out.push(temp.wrapping_add(carry));
                temp = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = (self.low >> 24) as u8;
        }
        self.cache_size += 1;
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }

    /// Flushes (five `shift_low`s) and returns the payload. Its first byte is
    /// always 0 and a decoder consumes exactly all of its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        for _ in 0..5 {
            self.shift_low();
        }
        self.out
    }
}

/// Range decoder over a byte slice. Never panics and never reads past the
/// slice: every byte it needs and does not find is an error.
///
/// Errors (format-spec 7.5): fewer than 5 bytes or a first byte other than 0;
/// a normalisation that needs a byte after the end (the payload ended before
/// all symbols were decoded); a decoded cumulative value `>= TOTAL`; and,
/// checked by [`RangeDecoder::finish`], bytes left after the last symbol.
#[derive(Debug, Clone)]
pub struct RangeDecoder<'a> {
    data: &'a [u8],
    pos: usize,
    range: u32,
    code: u32,
    symbols: usize,
}

impl<'a> RangeDecoder<'a> {
    /// Starts decoding `data`: needs at least 5 bytes, the first one 0.
    pub fn new(data: &'a [u8]) -> Result<Self, LmError> {
        if data.len() < 5 {
            return Err(LmError::PayloadTruncated { decoded: 0 });
        }
        if data[0] != 0 {
            return Err(LmError::PayloadFirstByte(data[0]));
        }
        let code = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
        Ok(RangeDecoder {
            data,
            pos: 5,
            range: 0xFFFF_FFFF,
            code,
            symbols: 0,
        })
    }

    /// Number of symbols decoded so far.
    #[cfg(any(test, feature = "testutil"))]
    pub fn symbols(&self) -> usize {
        self.symbols
    }

    /// Bytes consumed so far.
    #[cfg(any(test, feature = "testutil"))]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Decodes one symbol coded with table `f`.
    #[inline]
    pub fn decode_symbol(&mut self, f: &[u32; 256]) -> Result<u8, LmError> {
        let r = self.range >> TOTAL_BITS;
        // invariant: code < range, so r >= 256 and the division is safe
        let value = self.code / r;
        if value >= TOTAL {
            return Err(LmError::PayloadCorrupt {
                symbol: self.symbols,
            });
        }
        // linear scan over the table: find v with cum[v] <= value < cum[v+1]
        let mut cum = 0u32;
        let mut v = 0usize;
        loop {
            let next = cum + f[v];
            if value < next || v == 255 {
                break;
            }
            cum = next;
            v += 1;
        }
        let freq = f[v];
        if value >= cum + freq {
            // only reachable with a table that does not sum to TOTAL
            return Err(LmError::PayloadCorrupt {
                symbol: self.symbols,
            });
        }
        self.code -= r * cum;
        self.range = r * freq;
        while self.range < (1 << 24) {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(LmError::PayloadTruncated {
                    decoded: self.symbols,
                });
            };
            self.pos += 1;
            self.range <<= 8;
            self.code = (self.code << 8) | b as u32;
        }
        self.symbols += 1;
        Ok(v as u8)
    }

    /// Checks that every byte of the payload was consumed.
    pub fn finish(&self) -> Result<(), LmError> {
        if self.pos != self.data.len() {
            return Err(LmError::PayloadTrailing {
                extra: self.data.len() - self.pos,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::codecs::lm::tests::Rng;

    fn random_table(rng: &mut Rng) -> [u32; 256] {
        // random positive weights scaled to TOTAL, each >= 1
        let mut w = [0u64; 256];
        let skew = rng.below(4);
        for x in w.iter_mut() {
            *x = match skew {
                0 => 1 + rng.below(100),
                1 => 1 + rng.below(2).pow(1) * rng.below(100_000),
                2 => 1 + (rng.below(1 << 20) >> rng.below(20)),
                _ => 1 + rng.below(3),
            };
        }
        let s: u64 = w.iter().sum();
        let mut f = [0u32; 256];
        for v in 0..256 {
            f[v] = 1 + ((w[v] * (TOTAL as u64 - 256)) / s) as u32;
        }
        let t: u32 = f.iter().sum();
        let m = (0..256).max_by_key(|&v| f[v]).unwrap();
        f[m] += TOTAL - t;
        assert_eq!(f.iter().sum::<u32>(), TOTAL);
        f
    }

    fn sample(rng: &mut Rng, f: &[u32; 256]) -> u8 {
        let x = rng.below(TOTAL as u64) as u32;
        let cum = cumulative(f);
        (0..256).find(|&v| cum[v + 1] > x).unwrap() as u8
    }

    fn roundtrip(tables: &[[u32; 256]], syms: &[u8]) -> Vec<u8> {
        let mut enc = RangeEncoder::new();
        for (i, &s) in syms.iter().enumerate() {
            enc.encode_symbol(&tables[i % tables.len()], s);
        }
        let out = enc.finish();
        assert_eq!(out[0], 0);
        let mut dec = RangeDecoder::new(&out).unwrap();
        for (i, &s) in syms.iter().enumerate() {
            assert_eq!(
                dec.decode_symbol(&tables[i % tables.len()]).unwrap(),
                s,
                "symbol {i}"
            );
        }
        dec.finish().unwrap();
        // one more symbol must fail (truncated) or hit garbage, never panic
        let _ = dec.decode_symbol(&tables[0]);
        out
    }

    #[test]
    fn empty_payload_is_five_zeros() {
        assert_eq!(RangeEncoder::new().finish(), vec![0; 5]);
        let d = RangeDecoder::new(&[0; 5]).unwrap();
        d.finish().unwrap();
    }

    #[test]
    fn random_distributions_roundtrip() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..200 {
            let nt = 1 + rng.below(8) as usize;
            let tables: Vec<_> = (0..nt).map(|_| random_table(&mut rng)).collect();
            let n = rng.below(3000) as usize;
            let syms: Vec<u8> = (0..n)
                .map(|i| {
                    if rng.below(5) == 0 {
                        rng.below(256) as u8
                    } else {
                        sample(&mut rng, &tables[i % nt])
                    }
                })
                .collect();
            roundtrip(&tables, &syms);
        }
    }

    #[test]
    fn extreme_distributions_roundtrip() {
        let mut rng = Rng(99);
        for peak in [0usize, 1, 77, 254, 255] {
            let mut f = [1u32; 256];
            f[peak] = TOTAL - 255;
            // mostly the likely symbol
            let syms: Vec<u8> = (0..20000)
                .map(|_| {
                    if rng.below(100) == 0 {
                        rng.below(256) as u8
                    } else {
                        peak as u8
                    }
                })
                .collect();
            let out = roundtrip(&[f], &syms);
            // the likely symbol costs ~0.0056 bits
            assert!(out.len() < 20000 / 4, "{}", out.len());
            // only unlikely symbols: 16 bits each
            let syms: Vec<u8> = (0..5000)
                .map(|i| ((peak + 1 + i % 255) % 256) as u8)
                .collect();
            let out = roundtrip(&[f], &syms);
            assert!(out.len() <= 5000 * 2 + 5);
            // all the likely symbol
            roundtrip(&[f], &vec![peak as u8; 100_000]);
        }
        // uniform: 8 bits per symbol; full alphabet many times
        let f = [256u32; 256];
        let syms: Vec<u8> = (0..256 * 40).map(|i| (i * 7 % 256) as u8).collect();
        let out = roundtrip(&[f], &syms);
        assert!(out.len() <= syms.len() + 5);
        // carry propagation: symbols at the top of the range
        let mut f = [1u32; 256];
        f[255] = TOTAL - 255;
        roundtrip(&[f], &vec![255u8; 50_000]);
        let mut f = [1u32; 256];
        f[0] = TOTAL - 255;
        let syms: Vec<u8> = (0..50_000)
            .map(|i| if i % 3 == 0 { 255 } else { 0 })
            .collect();
        roundtrip(&[f], &syms);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(7);
        let tables: Vec<_> = (0..4).map(|_| random_table(&mut rng)).collect();
        let mut f1 = [1u32; 256];
        f1[3] = TOTAL - 255;
        let mut errors = 0;
        for i in 0..20000 {
            let len = rng.below(64) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            if i % 2 == 0 && !data.is_empty() {
                data[0] = 0;
            }
            let Ok(mut dec) = RangeDecoder::new(&data) else {
                errors += 1;
                continue;
            };
            for k in 0..1000 {
                let t = if i % 3 == 0 { &f1 } else { &tables[k % 4] };
                if dec.decode_symbol(t).is_err() {
                    errors += 1;
                    break;
                }
            }
            let _ = dec.finish();
        }
        assert!(errors > 0);
        // all-0xFF code: value beyond TOTAL
        let data = [0u8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let mut dec = RangeDecoder::new(&data).unwrap();
        assert!(matches!(
            dec.decode_symbol(&tables[0]),
            Err(LmError::PayloadCorrupt { symbol: 0 })
        ));
        assert!(matches!(
            RangeDecoder::new(&[1, 0, 0, 0, 0]),
            Err(LmError::PayloadFirstByte(1))
        ));
        assert!(matches!(
            RangeDecoder::new(&[0, 0, 0, 0]),
            Err(LmError::PayloadTruncated { .. })
        ));
    }

    #[test]
    fn truncation_and_trailing_detected() {
        let mut rng = Rng(3);
        let t = random_table(&mut rng);
        let syms: Vec<u8> = (0..2000).map(|_| sample(&mut rng, &t)).collect();
        let mut enc = RangeEncoder::new();
        for &s in &syms {
            enc.encode_symbol(&t, s);
        }
        let out = enc.finish();
        // cut: must fail before all symbols decode, or at least not claim success
        for cut in [out.len() - 1, out.len() - 2, out.len() / 2, 5] {
            let mut dec = RangeDecoder::new(&out[..cut]).unwrap();
            let mut ok = true;
            for _ in 0..syms.len() {
                if dec.decode_symbol(&t).is_err() {
                    ok = false;
                    break;
                }
            }
            assert!(!ok, "cut at {cut} of {} went unnoticed", out.len());
        }
        let mut long = out.clone();
        long.push(0);
        let mut dec = RangeDecoder::new(&long).unwrap();
        for _ in 0..syms.len() {
            dec.decode_symbol(&t).unwrap();
        }
        assert!(matches!(
            dec.finish(),
            Err(LmError::PayloadTrailing { extra: 1 })
        ));
    }

    #[test]
    fn floor_clamped_is_floor() {
        let mut x = 0.0f32;
        while x < 70000.0 {
            for v in [
                x,
                f32::from_bits(x.to_bits() + 1),
                f32::from_bits(x.to_bits().saturating_sub(1)),
            ] {
                assert_eq!(floor_clamped(v), (v as u32).min(TOTAL - 256), "{v}");
            }
            x += 0.125;
        }
        for v in [
            0.0f32,
            1e-30,
            0.49999997,
            0.5,
            0.99999994,
            1.0,
            1.5,
            2.5,
            65279.996,
            65280.0,
            1e30,
            f32::INFINITY,
        ] {
            assert_eq!(floor_clamped(v), (v as u32).min(TOTAL - 256), "{v}");
        }
        assert_eq!(floor_clamped(f32::NAN), 0);
        assert_eq!(floor_clamped(-3.0), 0);
    }

    /// The spec's definition written out plainly (scalar, sequential argmax).
    fn freqs_reference(l: &[f32; 256]) -> [u32; 256] {
        let mut am = 0;
        for v in 1..256 {
            if l[v] > l[am] {
                am = v;
            }
        }
        let e: Vec<f32> = l.iter().map(|&x| math::exp(x - l[am])).collect();
        let mut s: Vec<f32> = (0..16)
            .map(|i| (1..16).fold(e[i], |a, j| a + e[16 * j + i]))
            .collect();
        for w in [8, 4, 2, 1] {
            for i in 0..w {
                s[i] += s[i + w];
            }
        }
        let inv = 65280.0f32 / s[0];
        let mut f = [0u32; 256];
        for v in 0..256 {
            f[v] = 1 + ((e[v] * inv).floor() as u32).min(65280);
        }
        let t: u32 = f.iter().sum();
        f[am] = f[am] + TOTAL - t;
        f
    }

    #[test]
    fn freqs_from_logits_properties() {
        let mut rng = Rng(11);
        for case in 0..3000 {
            let mut l = [0f32; 256];
            let scale = [0.0f32, 0.01, 1.0, 5.0, 30.0, 200.0, 1e6][case % 7];
            for x in l.iter_mut() {
                *x = ((rng.below(2_000_001) as f32) / 1_000_000.0 - 1.0) * scale;
            }
            if case % 11 == 0 {
                l[rng.below(256) as usize] = 1e9;
            }
            if case % 5 == 0 {
                // ties, including -0.0 and +0.0
                for v in 0..256 {
                    l[v] = [0.0, -0.0, 1.0, -1.0][(rng.below(4)) as usize] * scale;
                }
            }
            let f = freqs_from_logits(&l);
            assert_eq!(f, freqs_reference(&l));
            assert_eq!(f.iter().sum::<u32>(), TOTAL);
            assert!(f.iter().all(|&x| x >= 1));
            // monotone in the logits (ties aside, argmax may gain the remainder)
            let am = (0..256).fold(0, |a, v| if l[v] > l[a] { v } else { a });
            assert!(f[am] >= *f.iter().max().unwrap());
        }
        let f = freqs_from_logits(&[0.0; 256]);
        assert!(f.iter().all(|&x| x == 256));
        let mut l = [-1e9f32; 256];
        l[42] = 0.0;
        let f = freqs_from_logits(&l);
        assert_eq!(f[42], TOTAL - 255);
        let f = freqs_from_logits(&[f32::NAN; 256]);
        assert_eq!(f.iter().sum::<u32>(), TOTAL);
    }
}
