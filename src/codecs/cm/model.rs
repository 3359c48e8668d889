//! The context-mixing predictor (format-spec 8.4): it composes the parts
//! of this module, each with its own state, into one probability a bit:
//!
//! - the `Streams` of the chunk (`stream.rs`), whose history and running
//!   hashes give the contexts;
//! - the `DirectTables` of orders 0 and 1 and the `ContextMap` of the
//!   hashed contexts (`contexts.rs`), with the `ImageModel`'s contexts
//!   for preset 6 (`image.rs`);
//! - the `MatchModel` (`match_model.rs`) and, with the language model,
//!   its `ModelBits` (`lm_bits.rs`);
//! - the gated `Mixer` (`mixer.rs`) with weight sets chosen here, and the
//!   `ApmChain` (`apm.rs`) that refines its output.
//!
//! Integer arithmetic only, in a fixed order: encoder and decoder compute
//! the same probabilities on every platform.

use super::apm::{ApmChain, ApmContexts, order2_hash};
use super::contexts::{ContextMap, DirectTables, hash2, nibble_salt, order_context};
use super::image::{IMAGE_CONTEXTS, Image, ImageModel};
use super::lm_bits::ModelBits;
use super::match_model::MatchModel;
use super::mixer::Mixer;
use super::presets::{IMAGE16, Preset, WEIGHT_SETS};
use super::stream::Streams;
use super::tables::squash;

/// Most mixer inputs (preset 7: 3 + 21 + 2 match inputs), rounded up to
/// whole groups of the mixer's lanes: a weight set's stride.
const MAX_INPUTS: usize = 32;

/// Class of a byte (format-spec 8.4): space, lower-case letter, upper-case
/// letter, digit, line feed, sentence punctuation, quote, other.
#[inline(always)]
fn byte_class(b: u8) -> usize {
    match b {
        b' ' => 0,
        b'a'..=b'z' => 1,
        b'A'..=b'Z' => 2,
        b'0'..=b'9' => 3,
        b'\n' => 4,
        b'.' | b',' | b';' | b':' | b'!' | b'?' => 5,
        b'"' | b'\'' => 6,
        _ => 7,
    }
}

/// `ceil(log2(n))` for n >= 1.
fn ceil_log2(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

/// log2 of the hashed table's bytes and of the match table's entries for a
/// chunk of `raw_len` bytes (format-spec 8.4, "Tables"): `2^table_shift`
/// bytes per input byte, at least 64 KiB, at most `2^max_table_log`; half
/// an entry per byte.
fn table_logs(preset: Preset, raw_len: usize) -> (u32, u32) {
    let l = ceil_log2(raw_len.max(1));
    (
        (l + preset.table_shift).clamp(16, preset.max_table_log),
        l.saturating_sub(1).clamp(10, 22),
    )
}

/// The byte that partial byte `c0` (8 bits, the leading 1 and seven bits)
/// and its last bit `bit` make.
#[inline(always)]
fn next_byte(c0: usize, bit: usize) -> u8 {
    (c0 << 1 | bit) as u8
}

/// The predictor for one chunk. It owns the chunk's history (the bytes
/// coded so far).
pub struct Predictor {
    preset: Preset,
    /// The chunk's one or two streams.
    streams: Streams,
    /// The partial byte with a leading 1, the partial nibble with a
    /// leading 1, and the bit's position in the byte (0..7).
    c0: u32,
    nib: u32,
    bitpos: u32,
    direct: DirectTables,
    hashed: ContextMap,
    matches: MatchModel,
    /// The language model's bits, when it takes part.
    lm: Option<ModelBits>,
    /// Number of mixer inputs.
    nin: usize,
    mx: Mixer,
    apms: ApmChain,
    /// Probability (16 bits) that the next bit is 1.
    pr: u32,
    /// Preset 6's image model.
    image: Option<ImageModel>,
}

impl Predictor {
    /// A fresh predictor for a chunk of `raw_len` bytes; `lm` says whether
    /// the language model's distribution is given for every byte.
    pub fn new(preset: Preset, raw_len: usize, lm: bool) -> Predictor {
        Self::build(preset, raw_len, lm, None)
    }

    /// A fresh predictor of preset 6 for a chunk of `raw_len` bytes whose
    /// samples lie as `image` says.
    pub fn new_image(raw_len: usize, image: Image) -> Predictor {
        Self::build(IMAGE16, raw_len, false, Some(image))
    }

    fn build(preset: Preset, raw_len: usize, lm: bool, image: Option<Image>) -> Predictor {
        debug_assert_eq!(preset.image, image.is_some());
        let nh = preset.hashed();
        let (table_log, mm_log) = table_logs(preset, raw_len);
        let nin = 3 + nh + 2 + if lm { 2 } else { 0 };
        let mut p = Predictor {
            preset,
            streams: Streams::new(&preset, raw_len, mm_log),
            c0: 1,
            nib: 1,
            bitpos: 0,
            direct: DirectTables::new(),
            hashed: ContextMap::new(nh, table_log),
            matches: MatchModel::new(preset.match_min, mm_log),
            lm: lm.then(ModelBits::new),
            nin,
            mx: Mixer::new(
                preset.weight_sets(),
                nin,
                if preset.mixer_decay {
                    48
                } else {
                    preset.mixer_rate * 16
                },
            ),
            apms: ApmChain::new(&preset, lm),
            pr: 32768,
            image: image.map(ImageModel::new),
        };
        p.contexts();
        p.hashed.set_buckets(0);
        p.predict();
        p
    }

    /// Bytes of memory a predictor for a chunk of `raw_len` bytes takes
    /// (tables and history), for scheduling.
    pub fn memory(preset: Preset, raw_len: usize, lm: bool) -> usize {
        let (table_log, mm_log) = table_logs(preset, raw_len);
        (1 << table_log)
            + (4 << mm_log) * (1 + preset.two_streams as usize)
            + raw_len
            + ApmChain::memory(&preset, lm)
            + if preset.records { 16 * 256 } else { 0 }
            + 4 * (256 + 65536)
            + 4 * MAX_INPUTS * preset.weight_sets()
    }

    /// Where the second stream starts in the chunk (its length with one
    /// stream).
    pub fn split(&self) -> usize {
        self.streams.split()
    }

    /// How many bytes were coded so far (of both streams).
    pub fn coded(&self) -> usize {
        self.streams.coded()
    }

    /// Which stream the next byte belongs to (0: the chunk's first half,
    /// 1: its second; always 0 with one stream) and its index in it.
    pub fn next_in_stream(&self) -> (usize, usize) {
        self.streams.next_in_stream()
    }

    /// The bytes coded so far, taken.
    pub fn into_history(mut self) -> Vec<u8> {
        self.take_history()
    }

    /// The bytes coded so far, taken out (the predictor is spent): with two
    /// streams, the first followed by the second.
    pub fn take_history(&mut self) -> Vec<u8> {
        self.streams.take_history()
    }

    /// The language model's frequencies for the next byte (all 256 nonzero;
    /// format-spec 7.4). Called before each byte when the predictor was made
    /// with `lm`.
    pub fn set_lm(&mut self, f: &[u32; 256]) {
        debug_assert!(self.lm.is_some() && self.bitpos == 0);
        if let Some(lm) = self.lm.as_mut() {
            lm.set_freqs(f);
        }
        self.predict();
    }

    /// As [`Predictor::set_lm`] for an encoder that already knows the byte:
    /// the model's probabilities for its 8 bits, from
    /// [`super::lm_byte_bits`].
    pub fn set_lm_bits(&mut self, bits: &[u16; 8]) {
        debug_assert!(self.lm.is_some() && self.bitpos == 0);
        if let Some(lm) = self.lm.as_mut() {
            lm.set_bits(bits);
        }
        self.predict();
    }

    /// Probability (16 bits, in `[1, 65535]`) that the next bit is 1.
    #[inline(always)]
    pub fn p(&self) -> u32 {
        self.pr
    }

    /// Code one byte with `enc`.
    pub fn encode_byte(&mut self, enc: &mut super::coder::Encoder, byte: u8) {
        for k in (0..8).rev() {
            let bit = (byte as u32 >> k) & 1;
            enc.encode(bit, self.pr);
            self.update(bit);
        }
        crate::runtime::progress::tick();
    }

    /// Decode one byte with `dec`.
    pub fn decode_byte(&mut self, dec: &mut super::coder::Decoder<'_>) -> u8 {
        self.decode_byte_early(dec, |_| {})
    }

    /// [`Predictor::decode_byte`] that hands the byte to `early` as soon as
    /// its last bit is decoded, before the predictor's own update for it
    /// (so that another thread can start on the next byte's model step).
    pub fn decode_byte_early(
        &mut self,
        dec: &mut super::coder::Decoder<'_>,
        early: impl FnOnce(u8),
    ) -> u8 {
        debug_assert_eq!(self.bitpos, 0);
        for _ in 0..7 {
            let bit = dec.decode(self.pr);
            self.update(bit);
        }
        let bit = dec.decode(self.pr);
        let byte = ((self.c0 << 1) | bit) as u8;
        early(byte);
        self.update(bit);
        crate::runtime::progress::tick();
        byte
    }

    /// The hashed contexts at a byte boundary (format-spec 8.4, "Contexts
    /// at a byte boundary"), from the current stream, into the context
    /// map; with preset 6 the image model's too.
    fn contexts(&mut self) {
        let s = &self.streams.cur;
        let preset = &self.preset;
        let ctx = self.hashed.hashes_mut();
        let mut k = 0;
        for &o in preset.orders {
            ctx[k] = order_context(s.c8, o);
            k += 1;
        }
        if preset.code {
            // bytes 1 and 3, 3 and 4, 1 and 5, 2 back; the last two bytes
            // and the position mod 4
            let c8 = s.c8;
            ctx[k] = hash2(c8 & 0xFF_00FF, 0x7001);
            ctx[k + 1] = hash2(c8 & 0xFFFF_0000, 0x7002);
            ctx[k + 2] = hash2(c8 & 0xFF_0000_00FF, 0x7003);
            ctx[k + 3] = hash2(c8 & 0xFF00, 0x7004);
            ctx[k + 4] = hash2(c8 & 0xFFFF, 0x7010 + (s.hist.len() & 3) as u64);
            k += 5;
        }
        if preset.words {
            let c1 = s.c8 & 0xFF;
            ctx[k] = hash2(s.word, 0x100 + if s.word == 0 { c1 } else { 0 });
            ctx[k + 1] = hash2(s.word, s.word_prev.wrapping_add(0x200));
            k += 2;
            if preset.tokens {
                ctx[k] = hash2(s.token, s.token_sep + 0x500);
                ctx[k + 1] = hash2(hash2(s.word, s.word_prev), s.word_prev2.wrapping_add(0x600));
                k += 2;
            }
        }
        if preset.line_prefix {
            ctx[k] = hash2(s.line_hash, 0x800);
            k += 1;
        }
        if preset.records {
            let pos = s.hist.len();
            let r = s.rec.len;
            let at = |d: usize| {
                if r > 0 && pos >= d {
                    s.hist[pos - d] as u64
                } else {
                    0x100
                }
            };
            let (above, above2) = (at(r), at(2 * r));
            let salt = (r as u64) << 12;
            let col = if r > 0 { (pos % r).min(1023) as u64 } else { 0 };
            ctx[k] = hash2(above << 9 | above2, salt + 0xB00);
            ctx[k + 1] = hash2(above << 9 | (s.c8 & 0xFF), salt + 0xC00);
            ctx[k + 2] = hash2(col << 9 | above, salt + 0xD00);
            k += 3;
        }
        if preset.columns {
            let pos = s.hist.len();
            let col = pos - s.line;
            let above = if s.line_prev + col < s.line {
                s.hist[s.line_prev + col] as u64
            } else {
                0x100
            };
            ctx[k] = hash2((col.min(255) as u64) << 9 | above, 0x300 + (s.c8 & 0xFF));
            ctx[k + 1] = hash2((s.c8 >> 8) & 0xFFFF, 0x400);
            k += 2;
        }
        if preset.line_column {
            let col = s.hist.len() - s.line;
            ctx[k] = hash2(col.min(255) as u64, 0xF00);
            k += 1;
        }
        if let Some(im) = self.image.as_mut() {
            im.contexts(&s.hist, &mut ctx[k..k + IMAGE_CONTEXTS]);
            k += IMAGE_CONTEXTS;
        }
        debug_assert_eq!(k, self.hashed.len());
    }

    fn byte_update(&mut self) {
        let b = (self.c0 & 0xFF) as u8;
        let s = &mut self.streams.cur;
        s.append(b, &self.preset);
        self.c0 = 1;
        self.nib = 1;
        self.bitpos = 0;
        if self.preset.records {
            s.rec.update(s.hist.len() as u32, b);
        }
        if self.streams.two() {
            let s = &mut self.streams.cur;
            self.matches.step(&mut s.mm, &s.hist, s.c8);
            self.update_rate();
            self.streams.swap();
            self.contexts();
            self.hashed.set_buckets(0);
        } else {
            // The contexts do not depend on the match model: their lines
            // are asked of the cache first, so that the match model's own
            // table and history reads overlap with those misses.
            self.update_rate();
            self.contexts();
            let keys = self.hashed.keys(0);
            let s = &mut self.streams.cur;
            self.matches.step(&mut s.mm, &s.hist, s.c8);
            self.hashed.find_buckets(&keys);
        }
    }

    /// The mixers' rate with `mixer_decay`.
    #[inline(always)]
    fn update_rate(&mut self) {
        if self.preset.mixer_decay {
            self.mx.rate16 = (48 - (self.coded() >> 12) as i32).max(10);
        }
    }

    /// Compute the inputs, mix and refine: sets `self.pr`.
    #[inline(always)]
    fn predict(&mut self) {
        let s = &self.streams.cur;
        let c0 = self.c0 as usize;
        let c1 = (s.c8 & 0xFF) as usize;
        let nh = self.hashed.len();
        let x = &mut self.mx.x;
        x[0] = 256;
        [x[1], x[2]] = self.direct.inputs(c0, c1);
        self.hashed.inputs(self.nib as usize, &mut x[3..]);
        let n = 3 + nh;
        let mstate = self.matches.inputs(&s.mm, self.bitpos, &mut x[n..n + 2]);
        let mut lmq = self.bitpos as usize;
        if let Some(lm) = self.lm.as_mut() {
            lmq = lm.inputs(self.c0, self.bitpos, &mut x[n + 2..n + 4]);
        }
        debug_assert_eq!(n + 2 + 2 * self.lm.is_some() as usize, self.nin);
        // weight sets: by partial byte; then by match state and model
        // confidence, by the last byte (or the image's texture) and bit
        // position, and by byte class
        if self.preset.single_mixer {
            let pm = squash(self.mx.mix(&[c0])[0]) as u32;
            self.pr = self.apms.refine_single(pm, c0, c1);
            self.prefetch_next();
            return;
        }
        let set_b = 256 + mstate * 8 + lmq;
        let set_c = 320
            + match &self.image {
                Some(im) => im.mixer_select() << 3 | self.bitpos as usize,
                None => c1 << 3 | self.bitpos as usize,
            };
        let st = if self.preset.class_set {
            let set_d =
                WEIGHT_SETS + (byte_class(c1 as u8) << 6 | (self.bitpos as usize) << 3 | lmq);
            let d = self.mx.mix(&[c0, set_b, set_c, set_d]);
            (d[0] + d[1] + d[2] + d[3]) / 4
        } else {
            let d = self.mx.mix(&[c0, set_b, set_c]);
            (d[0] + d[1] + d[2]) / 3
        };
        let pm = squash(st) as u32;
        let cx = ApmContexts {
            c0,
            a2: self.apm2_context(),
            a4: if self.preset.apm_order2 {
                self.apm4_context()
            } else {
                0
            },
            a5: self.matches.apm_context(),
            opinion: self.lm.as_ref().map_or(0, |lm| lm.opinion()),
            class: if self.preset.apm_class {
                byte_class(c1 as u8)
            } else {
                0
            },
        };
        self.pr = self.apms.refine(pm, &cx);
        self.prefetch_next();
        if self.bitpos == 7 && !self.streams.two() && !self.preset.records && self.image.is_none() {
            self.prefetch_guess(next_byte(c0, (self.pr >= 32768) as usize));
        }
    }

    /// At a byte's last bit, with one stream and no records: asks the
    /// cache for the first nibble's lines of every hashed context of the
    /// next byte, as if this byte is `b` (the likelier value of its last
    /// bit). Those contexts are computed here on the state `b` would make,
    /// which is then put back: the word, token and column contexts' lines
    /// are then on their way while the last bit is coded and learnt from,
    /// as the order contexts' are (preset 9 on calgary/book1: without it,
    /// the bucket search's reads of those lines were its largest cost,
    /// 11% of the samples, perf). Changes no result.
    #[inline(always)]
    fn prefetch_guess(&mut self, b: u8) {
        let (state, ctx) = (self.streams.cur.text_state(), self.hashed.hashes());
        self.streams.cur.append(b, &self.preset);
        self.contexts();
        self.hashed.prefetch_all(0);
        self.streams.cur.hist.pop();
        self.streams.cur.set_text_state(state);
        *self.hashed.hashes_mut() = ctx;
    }

    /// Asks the cache for what the next bit's prediction reads from large
    /// tables, while this bit is coded and learnt from: the rows of APM
    /// stages 2, 4 and 5 (4.3, 4.3 and 1.1 MB with preset 3) for both values
    /// of this bit and, before the last bit of a nibble, the hashed lines of
    /// the next nibble for the likelier value (at the byte's last bit, those
    /// of the order contexts, which depend on the byte alone, and the match
    /// table's slot). The reads behind them were the most frequent cache
    /// misses of preset 3 on calgary/book1. Lines for both values of the
    /// bit were tried: the prefetches then waited on full miss buffers
    /// (11% of the coding loop's samples, perf) and gained nothing over
    /// the likelier value alone. Prefetches change no result.
    #[inline(always)]
    fn prefetch_next(&self) {
        let s = &self.streams.cur;
        let c0 = self.c0 as usize;
        let c1 = (s.c8 & 0xFF) as usize;
        let likely = (self.pr >= 32768) as usize;
        if self.bitpos < 7 {
            let next = c0 << 1;
            let a4 = if self.preset.apm_order2 {
                self.apm4_context()
            } else {
                0
            };
            let a5 = if self.preset.apm_match {
                self.matches.next_apm_context(&s.mm, self.bitpos)
            } else {
                None
            };
            self.apms.prefetch_bit(next, self.apm2_context(), a4, a5);
            if self.bitpos == 3 {
                self.hashed
                    .prefetch_all(((next as u64) | likely as u64) << 56);
            }
        } else if self.image.is_none() {
            self.apms.prefetch_byte(c0, c1);
            let c8 = s.c8 << 8 | next_byte(c0, likely) as u64;
            self.matches.prefetch_slot(&s.mm, c8);
            if self.streams.two() || self.preset.records {
                for (i, &o) in self.preset.orders.iter().enumerate() {
                    let (line, _) = self.hashed.key_of(order_context(c8, o), i, 0);
                    self.hashed.prefetch(line);
                }
            }
        }
    }

    /// `A2`'s context: the last byte, or with preset 6 a byte of a
    /// prediction.
    #[inline(always)]
    fn apm2_context(&self) -> usize {
        match &self.image {
            Some(im) => im.apm2(),
            None => (self.streams.cur.c8 & 0xFF) as usize,
        }
    }

    /// `A4`'s context: the hash of the last two bytes, or with preset 6 a
    /// byte of a prediction.
    #[inline(always)]
    fn apm4_context(&self) -> usize {
        match &self.image {
            Some(im) => im.apm4(),
            None => order2_hash(self.streams.cur.c8),
        }
    }

    /// Learn from `bit` and move to the next bit.
    #[inline(always)]
    pub fn update(&mut self, bit: u32) {
        let s = &mut self.streams.cur;
        let c1 = (s.c8 & 0xFF) as usize;
        self.direct.update(self.c0 as usize, c1, bit);
        self.hashed.update(self.nib as usize, bit);
        self.matches.update(&mut s.mm, self.bitpos, bit);
        // mixers: error in 12 bits
        self.mx.train(bit);
        self.apms.update(bit);

        self.c0 = (self.c0 << 1) | bit;
        self.nib = (self.nib << 1) | bit;
        self.bitpos += 1;
        if self.bitpos == 8 {
            self.byte_update();
        } else if self.bitpos == 4 {
            self.nib = 1;
            self.hashed.set_buckets(nibble_salt(self.c0, self.bitpos));
        }
        if !(self.lm.is_some() && self.bitpos == 0) {
            self.predict();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::cm::presets::{NORMAL, TEXT};

    /// 300 records of 37 bytes: a counter, a slowly changing field, noise.
    fn records() -> Vec<u8> {
        let mut v = Vec::new();
        let mut x = 12345u32;
        for i in 0..300u32 {
            let mut r = [0u8; 37];
            r[0] = (i & 0xFF) as u8;
            r[1] = (i >> 8) as u8;
            for (j, b) in r.iter_mut().enumerate().skip(2) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = if j < 20 {
                    (j as u8) * 3 + (i / 50) as u8
                } else {
                    (x >> 28) as u8
                };
            }
            v.extend_from_slice(&r);
        }
        v
    }

    fn code(data: &[u8], preset: Preset) -> (usize, Predictor) {
        let mut enc = super::super::coder::Encoder::with_capacity(data.len());
        let mut p = Predictor::new(preset, data.len(), false);
        for &b in data {
            p.encode_byte(&mut enc, b);
        }
        (enc.finish().len(), p)
    }

    #[test]
    fn record_length_is_detected_and_pays() {
        let data = records();
        let (with, p) = code(&data, TEXT);
        assert_eq!(p.streams.cur.rec.len, 37);
        let (without, p) = code(&data, NORMAL);
        assert_eq!(p.streams.cur.rec.len, 0);
        assert!(with < without, "records {with} B, without {without} B");
    }
}
