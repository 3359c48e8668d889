//! The APM stages (format-spec 8.4, "Mixing"): adaptive probability maps
//! that refine the mixer's probability in small contexts, and the chain
//! of them that a preset uses (`A1` to `A6`).

use super::presets::Preset;
use super::tables::{squash, stretch16};
use crate::runtime::mem::table;

/// APM adaptation: 1/2^APM_RATE of the error.
const APM_RATE: u32 = 6;

/// Adaptive probability map (secondary estimation): refines a probability
/// given a context, interpolating between 33 buckets of its stretch.
struct Apm {
    t: Vec<u16>,
    /// The entry the last refinement was nearest, which learns.
    index: usize,
}

impl Apm {
    fn new(contexts: usize) -> Apm {
        let row: [u16; 33] = std::array::from_fn(|j| squash((j as i32 - 16) * 128) as u16);
        let mut t = table(contexts * 33, 0);
        for (c, &r) in t.iter_mut().zip(row.iter().cycle()) {
            *c = r;
        }
        Apm { t, index: 0 }
    }

    #[inline(always)]
    fn refine(&mut self, p16: u32, cx: usize) -> u32 {
        let s = stretch16(p16) + 2048; // 1..4095
        let lo = (s >> 7) as usize;
        let w = (s & 127) as u32;
        let base = cx * 33 + lo;
        self.index = base + (w >> 6) as usize;
        (self.t[base] as u32 * (128 - w) + self.t[base + 1] as u32 * w) >> 7
    }

    /// Asks the cache for the rows of `rows` contexts from `cx` on (33
    /// entries, 66 bytes each): what a later [`Apm::refine`] in one of them
    /// reads, whichever bucket of the row it falls in.
    #[inline(always)]
    fn prefetch(&self, cx: usize, rows: usize) {
        let (start, end) = (cx * 33, (cx + rows) * 33 - 1);
        let mut i = start;
        while i < end {
            if let Some(v) = self.t.get(i) {
                crate::runtime::mem::prefetch(v);
            }
            i += 32;
        }
        if let Some(v) = self.t.get(end) {
            crate::runtime::mem::prefetch(v);
        }
    }

    #[inline(always)]
    fn update(&mut self, bit: u32) {
        let v = self.t[self.index] as i32;
        let target = ((bit << 16) - bit) as i32;
        self.t[self.index] = (v + ((target - v) >> APM_RATE)) as u16;
    }
}

/// The hash of `A4`'s context from the last two bytes `c2`.
#[inline(always)]
pub(super) fn order2_hash(c2: u64) -> usize {
    ((c2 & 0xFFFF).wrapping_mul(0x9E37_79B9) >> 8) as usize & 0xFF
}

/// The contexts of one bit's refinement, each the byte above the partial
/// byte `c0` in its APM's context.
#[derive(Clone, Copy)]
pub(super) struct ApmContexts {
    /// The partial byte.
    pub c0: usize,
    /// `A2`: the previous byte (preset 6: a byte of a prediction).
    pub a2: usize,
    /// `A4`: [`order2_hash`] (preset 6: a byte of a prediction).
    pub a4: usize,
    /// `A5`: the match model's context (0 without a match).
    pub a5: usize,
    /// `A3` and `A6`: the model's opinion (its stretch, in 32 steps).
    pub opinion: usize,
    /// `A6`: the class of the previous byte.
    pub class: usize,
}

/// The APM stages of a preset (format-spec 8.4): `A2` alone with one
/// weight set; otherwise `A1` and `A2`, then `A4` (order 2) and `A5`
/// (match) where the preset has them, and with the model `A3` and `A6`
/// (class APM).
pub(super) struct ApmChain {
    a1: Apm,
    a2: Apm,
    a3: Apm,
    a4: Apm,
    a5: Apm,
    a6: Apm,
    single: bool,
    order2: bool,
    matched: bool,
    model: bool,
    class: bool,
}

impl ApmChain {
    /// The stages of `preset`, with the model if `lm`.
    pub(super) fn new(preset: &Preset, lm: bool) -> ApmChain {
        let [c1, c2, c3, c4, c5, c6] = Self::sizes(preset, lm);
        ApmChain {
            a1: Apm::new(c1),
            a2: Apm::new(c2),
            a3: Apm::new(c3),
            a4: Apm::new(c4),
            a5: Apm::new(c5),
            a6: Apm::new(c6),
            single: preset.single_mixer,
            order2: preset.apm_order2,
            matched: preset.apm_match,
            model: lm,
            class: lm && preset.apm_class,
        }
    }

    /// Contexts of `A1` to `A6` (1 for a stage not used).
    fn sizes(preset: &Preset, lm: bool) -> [usize; 6] {
        [
            256,
            1 << 16,
            if lm { 1 << 13 } else { 1 },
            if preset.apm_order2 { 1 << 16 } else { 1 },
            if preset.apm_match { 64 << 8 } else { 1 },
            if lm && preset.apm_class { 1 << 16 } else { 1 },
        ]
    }

    /// Bytes of the stages of `preset`, for scheduling.
    pub(super) fn memory(preset: &Preset, lm: bool) -> usize {
        let used = |n: usize| if n > 1 { n } else { 0 };
        2 * 33 * Self::sizes(preset, lm).into_iter().map(used).sum::<usize>()
    }

    /// The probability with one weight set: the mixer's `pm` and `A2`'s
    /// refinement in the context of the previous byte `c1`, 1:3.
    #[inline(always)]
    pub(super) fn refine_single(&mut self, pm: u32, c0: usize, c1: usize) -> u32 {
        let p2 = self.a2.refine(pm, c0 | c1 << 8);
        ((pm + 3 * p2 + 2) >> 2).clamp(1, 65535)
    }

    /// The probability of the mixer's `pm` refined by the chain, with
    /// three or four weight sets.
    #[inline(always)]
    pub(super) fn refine(&mut self, pm: u32, cx: &ApmContexts) -> u32 {
        let p1 = self.a1.refine(pm, cx.c0);
        let p2 = self.a2.refine(pm, cx.c0 | cx.a2 << 8);
        let mut p = (p1 + 3 * p2 + 2) >> 2;
        if self.order2 {
            p = (p + self.a4.refine(pm, cx.c0 | cx.a4 << 8) + 1) >> 1;
        }
        if self.matched {
            p = (p + 3 * self.a5.refine(p, cx.c0 | cx.a5 << 8) + 2) >> 2;
        }
        let p = if self.model {
            // refined once more in the context of the model's own opinion
            let a3 = cx.opinion << 8 | cx.c0;
            if self.class {
                let a6 = cx.opinion << 11 | cx.class << 8 | cx.c0;
                (2 * p + self.a3.refine(pm, a3) + self.a6.refine(pm, a6) + 2) >> 2
            } else {
                (3 * p + self.a3.refine(pm, a3) + 2) >> 2
            }
        } else {
            p
        };
        p.clamp(1, 65535)
    }

    /// Learns `bit` in the stages that refined it.
    #[inline(always)]
    pub(super) fn update(&mut self, bit: u32) {
        if !self.single {
            self.a1.update(bit);
            if self.order2 {
                self.a4.update(bit);
            }
            if self.matched {
                self.a5.update(bit);
            }
        }
        self.a2.update(bit);
        if self.model && !self.single {
            self.a3.update(bit);
            if self.class {
                self.a6.update(bit);
            }
        }
    }

    /// Asks the cache for the rows of `A2`, `A4` and `A5` that the next
    /// bit within the byte reads, for both values of this bit: `next` is
    /// the partial byte with this bit 0, `a5` the match context if a match
    /// goes on.
    #[inline(always)]
    pub(super) fn prefetch_bit(&self, next: usize, a2: usize, a4: usize, a5: Option<usize>) {
        self.a2.prefetch(next | a2 << 8, 2);
        if self.order2 {
            self.a4.prefetch(next | a4 << 8, 2);
        }
        if let Some(m) = a5.filter(|_| self.matched) {
            self.a5.prefetch(next | m << 8, 2);
        }
    }

    /// Asks the cache for the rows of `A2` and `A4` that the next byte's
    /// first bit reads, for both values of this byte's last bit (`c0` is
    /// the partial byte of seven bits, `c1` the previous byte).
    #[inline(always)]
    pub(super) fn prefetch_byte(&self, c0: usize, c1: usize) {
        for bit in 0..2 {
            let b = (c0 << 1 | bit) & 0xFF;
            self.a2.prefetch(1 | b << 8, 1);
            if self.order2 {
                self.a4
                    .prefetch(1 | order2_hash((c1 << 8 | b) as u64) << 8, 1);
            }
        }
    }
}
