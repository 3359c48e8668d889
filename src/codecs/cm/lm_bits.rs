//! The language model's bits (format-spec 8.4, "The model's bits"): the
//! model's distribution of the next byte as the probability of each of its
//! bits, and their two mixer inputs.

use super::tables::stretch16;

/// The model's byte distribution as bit probabilities: its cumulative
/// frequencies, or the 8 probabilities of a byte an encoder knows.
pub(super) struct ModelBits {
    cum: [u32; 257],
    bits: Option<[u16; 8]>,
    /// Stretch of the current bit's probability.
    st: i32,
}

impl ModelBits {
    pub(super) fn new() -> ModelBits {
        ModelBits {
            cum: [0; 257],
            bits: None,
            st: 0,
        }
    }

    /// The model's frequencies for the next byte (all 256 nonzero).
    pub(super) fn set_freqs(&mut self, f: &[u32; 256]) {
        cumulate(f, &mut self.cum);
        self.bits = None;
    }

    /// The model's probabilities of the next byte's 8 bits, from
    /// [`lm_byte_bits`].
    pub(super) fn set_bits(&mut self, bits: &[u16; 8]) {
        self.bits = Some(*bits);
    }

    /// The two mixer inputs for bit `bitpos` after the bits `c0`, into
    /// `x`, and the model's confidence (0..7) that selects weight sets.
    #[inline(always)]
    pub(super) fn inputs(&mut self, c0: u32, bitpos: u32, x: &mut [i32]) -> usize {
        let p = match &self.bits {
            Some(b) => b[bitpos as usize] as u32,
            None => lm_bit_p(&self.cum, c0, bitpos),
        };
        let st = stretch16(p);
        self.st = st;
        x[0] = st;
        x[1] = (p as i32 - 32768) >> 4;
        (st.unsigned_abs() as usize >> 8).min(7)
    }

    /// The model's opinion of the current bit in 32 steps of its stretch:
    /// the context of APM stages `A3` and `A6`.
    #[inline(always)]
    pub(super) fn opinion(&self) -> usize {
        ((self.st + 2048) >> 7) as usize // 0..31
    }
}

/// Cumulative frequencies: `cum[v] = f[0] + ... + f[v-1]`.
#[inline(always)]
fn cumulate(f: &[u32; 256], cum: &mut [u32; 257]) {
    let mut s = 0u32;
    cum[0] = 0;
    for (i, &v) in f.iter().enumerate() {
        s += v;
        cum[i + 1] = s;
    }
}

/// The model's probability (16 bits) that bit `k` of the byte is 1 given
/// the bits `c0` before it (format-spec 8.4, "The model's bits").
#[inline(always)]
fn lm_bit_p(cum: &[u32; 257], c0: u32, k: u32) -> u32 {
    let lo = ((c0 - (1 << k)) << (8 - k)) as usize;
    let hi = lo + (1 << (8 - k));
    let mid = lo + (1 << (7 - k));
    let all = (cum[hi] - cum[lo]) as u64;
    let ones = (cum[hi] - cum[mid]) as u64;
    (ones << 16)
        .checked_div(all)
        .map_or(32768, |q| q.clamp(1, 65535) as u32)
}

/// The model's probabilities for the 8 bits of `byte` given its
/// frequencies `f`: what [`super::Predictor::set_lm`] would compute bit by
/// bit.
pub fn lm_byte_bits(f: &[u32; 256], byte: u8) -> [u16; 8] {
    let mut cum = [0u32; 257];
    cumulate(f, &mut cum);
    let mut out = [0u16; 8];
    let mut c0 = 1u32;
    for k in 0..8 {
        out[k as usize] = lm_bit_p(&cum, c0, k) as u16;
        c0 = (c0 << 1) | ((byte as u32 >> (7 - k)) & 1);
    }
    out
}
