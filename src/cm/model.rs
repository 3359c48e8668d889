//! The context-mixing predictor (format-spec 8.4): online context models,
//! a match model, the language model's byte distribution as bit
//! probabilities, a gated logistic mixer and two APM stages. Integer
//! arithmetic only, in a fixed order: encoder and decoder compute the same
//! probabilities on every platform.

use super::mixer::Mixer;
use super::tables::{RATES, STRETCH, squash, stretch16};

/// Most hashed contexts a preset may use (preset 7: 21).
const MAX_HASHED: usize = 21;
/// Most mixer inputs (preset 7: 3 + 21 + 2 match inputs), rounded up to
/// whole groups of the mixer's lanes: a weight set's stride.
const MAX_INPUTS: usize = 32;
/// Counter value of a context never seen: p = 1/2, count 0.
const COUNTER_INIT: u32 = 1 << 31;
/// How far back a match candidate is verified.
const MATCH_VERIFY: usize = 32;
/// APM adaptation: 1/2^APM_RATE of the error.
const APM_RATE: u32 = 6;
/// Weight sets a, b and c (format-spec 8.4, "Mixing").
const WEIGHT_SETS: usize = 256 + 64 + 256 * 8;

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

/// A fixed set of models (format-spec 8.5). Which one a chunk uses is in
/// its payload's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Wire value.
    pub id: u8,
    /// Name in format-spec 8.5.
    pub name: &'static str,
    /// Hashed context orders (bytes of history), in input order.
    pub orders: &'static [u32],
    /// Word contexts (current word; current and previous word).
    pub words: bool,
    /// Column context (position in the line, byte above) and a sparse
    /// context (the two bytes before the last).
    pub columns: bool,
    /// log2 of the largest hashed table in bytes.
    pub max_table_log: u32,
    /// One weight set (by partial byte) and one APM stage instead of three
    /// weight sets and two or three stages.
    pub single_mixer: bool,
    /// log2 of the hashed table's bytes per input byte.
    pub table_shift: u32,
    /// Mixer learning rate (error times rate, shifted right by 12).
    pub mixer_rate: i32,
    /// The mixer's rate falls as the chunk is coded, from 3 to 0.625 (in
    /// sixteenths: `max(10, 48 - n / 4096)` after `n` bytes); `mixer_rate`
    /// is unused.
    pub mixer_decay: bool,
    /// Shortest match the match model follows (at most 8).
    pub match_min: usize,
    /// Token (letters and digits after a separator) and word-trigram
    /// contexts, with `words`.
    pub tokens: bool,
    /// A context of everything since the line's start.
    pub line_prefix: bool,
    /// Record contexts: bytes one and two record lengths back, the record
    /// length detected from repeating byte distances.
    pub records: bool,
    /// An APM stage in an order-2 context (hashed to 8 bits).
    pub apm_order2: bool,
    /// An APM stage in the match model's state.
    pub apm_match: bool,
    /// A context of the position in the line alone (where lines break).
    pub line_column: bool,
    /// A fourth weight set, by the class of the previous byte, the bit
    /// position and the model's confidence.
    pub class_set: bool,
    /// With the model, an APM stage in the model's opinion and the class of
    /// the previous byte.
    pub apm_class: bool,
    /// Image contexts for 16-bit little-endian samples (format-spec 8.8),
    /// whose row width and first byte are in the payload header.
    pub image: bool,
    /// Sparse contexts for binary data (format-spec 8.4), after the orders.
    pub code: bool,
    /// The chunk is coded as two streams, its first and second half, a
    /// byte of each in turn; the streams share the tables, mixers and APMs
    /// and keep their own history and contexts (format-spec 8.4, "Two
    /// streams").
    pub two_streams: bool,
}

/// Normal: orders 1-6, word contexts, the match model.
pub const NORMAL: Preset = Preset {
    id: 1,
    name: "normal",
    orders: &[2, 3, 4, 5, 6, 8],
    words: true,
    columns: true,
    max_table_log: 26,
    single_mixer: false,
    table_shift: 4,
    mixer_rate: 3,
    mixer_decay: false,
    match_min: 6,
    tokens: false,
    line_prefix: false,
    records: false,
    apm_order2: false,
    apm_match: false,
    line_column: false,
    class_set: false,
    apm_class: false,
    image: false,
    code: false,
    two_streams: false,
};

/// Fast: orders 1-4 and 6, the match model.
pub const FAST: Preset = Preset {
    id: 0,
    name: "fast",
    orders: &[2, 3, 4, 6],
    words: false,
    columns: false,
    max_table_log: 24,
    single_mixer: true,
    ..NORMAL
};

/// Lighter contexts next to the language model.
pub const WITH_LM: Preset = Preset {
    id: 2,
    name: "with-model",
    orders: &[2, 3, 4, 6],
    ..NORMAL
};

/// Text: preset 1 with more contexts (tokens, word trigrams, line prefix,
/// records), larger tables and two more APM stages (order 2, match). What
/// the encoder tries on text without the model, and the base of presets 6,
/// 7 and 9.
pub const TEXT: Preset = Preset {
    id: 3,
    name: "text",
    max_table_log: 27,
    table_shift: 7,
    mixer_rate: 2,
    match_min: 5,
    tokens: true,
    line_prefix: true,
    records: true,
    apm_order2: true,
    apm_match: true,
    ..NORMAL
};

/// With the model: preset 2 with token and word-trigram contexts, larger
/// tables and the order-2 APM stage.
pub const WITH_LM_TOKENS: Preset = Preset {
    id: 4,
    name: "with-model-tokens",
    table_shift: 6,
    mixer_rate: 2,
    tokens: true,
    apm_order2: true,
    ..WITH_LM
};

/// With the model: preset 4 with a line-column context, a weight set by
/// byte class and an APM stage by the model's opinion and byte class.
pub const WITH_LM_CLASSES: Preset = Preset {
    id: 5,
    name: "with-model-classes",
    line_column: true,
    class_set: true,
    apm_class: true,
    ..WITH_LM_TOKENS
};

/// Preset 5 over two streams (the chunk's halves, interleaved byte by
/// byte): one chunk's history for both halves, while the language model
/// still has two independent chains to run side by side.
pub const WITH_LM_TWO_STREAMS: Preset = Preset {
    id: 8,
    name: "with-model-two-streams",
    two_streams: true,
    mixer_decay: true,
    ..WITH_LM_CLASSES
};

/// 16-bit images: orders 2 and 3 and 14 image contexts in place of the
/// text and record contexts; the mixer and two APM stages select by the
/// image's predictions (format-spec 8.8).
pub const IMAGE16: Preset = Preset {
    id: 6,
    name: "image-16",
    orders: &[2, 3],
    words: false,
    columns: false,
    tokens: false,
    line_prefix: false,
    records: false,
    image: true,
    mixer_rate: 1,
    ..TEXT
};

/// Binary data (machine code, databases, tables): preset 3 with five
/// sparse contexts after the orders.
pub const BINARY: Preset = Preset {
    id: 7,
    name: "binary",
    code: true,
    ..TEXT
};

/// Text at about 1.4 times preset 3's speed: preset 3 without orders 5
/// and 8, the line prefix, the records and the match APM, with 64 table
/// bytes per input byte and the falling mixer rate of preset 8. Ten hashed
/// contexts instead of 16 (each costs two cache lines a byte and its share
/// of the mixer); on calgary/book1 199,480 bytes against preset 3's 200,328
/// (the falling rate gains what the contexts gave), silesia/xml's first
/// 2 MiB 157,293 against 156,002, calgary/obj2 58,624 against 57,036.
pub const TEXT_FAST: Preset = Preset {
    id: 9,
    name: "text-fast",
    orders: &[2, 3, 4, 6],
    table_shift: 6,
    mixer_decay: true,
    line_prefix: false,
    records: false,
    apm_match: false,
    ..TEXT
};

/// Every preset, by id (format-spec 8.5).
pub const PRESETS: [Preset; 10] = [
    FAST,
    NORMAL,
    WITH_LM,
    TEXT,
    WITH_LM_TOKENS,
    WITH_LM_CLASSES,
    IMAGE16,
    BINARY,
    WITH_LM_TWO_STREAMS,
    TEXT_FAST,
];

/// Image contexts of preset 6.
const IMAGE_CONTEXTS: usize = 14;

/// Where a chunk's 16-bit little-endian samples lie (format-spec 8.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    /// Samples per row, at least 2.
    pub width: u16,
    /// Offset of the first sample's first byte: 0 or 1.
    pub first: u8,
}

impl Preset {
    /// The preset with wire value `id`.
    pub fn from_id(id: u8) -> Option<Preset> {
        PRESETS.get(id as usize).copied()
    }

    fn hashed(&self) -> usize {
        self.orders.len()
            + if self.words { 2 } else { 0 }
            + if self.words && self.tokens { 2 } else { 0 }
            + if self.line_prefix { 1 } else { 0 }
            + if self.records { 3 } else { 0 }
            + if self.columns { 2 } else { 0 }
            + if self.line_column { 1 } else { 0 }
            + if self.image { IMAGE_CONTEXTS } else { 0 }
            + if self.code { 5 } else { 0 }
    }

    /// Weight sets: 2,368 (a, b, c) and 512 more with the class set.
    fn weight_sets(&self) -> usize {
        WEIGHT_SETS + if self.class_set { 512 } else { 0 }
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

/// An adaptive probability: 22 bits of P(1), 10 bits of count.
#[inline(always)]
fn counter_update(c: &mut u32, bit: u32) {
    let n = *c & 1023;
    let p = (*c >> 10) as i64;
    let target = ((bit << 22) - bit) as i64;
    let np = p + (((target - p) * RATES[n as usize] as i64) >> 16);
    *c = ((np as u32) << 10) | (n + (n < 1023) as u32);
}

#[inline(always)]
fn counter_stretch(c: u32) -> i32 {
    STRETCH[(c >> 20) as usize] as i32
}

#[inline(always)]
fn hash2(a: u64, b: u64) -> u64 {
    let h = (a ^ b.rotate_left(23))
        .wrapping_add(b)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// The context hash of order `o` (bytes) given the last eight bytes `c8`.
#[inline(always)]
fn order_context(c8: u64, o: u32) -> u64 {
    let mask = if o >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * o)) - 1
    };
    hash2(c8 & mask, o as u64 + 1)
}

/// The byte that partial byte `c0` (8 bits, the leading 1 and seven bits)
/// and its last bit `bit` make.
#[inline(always)]
fn next_byte(c0: usize, bit: usize) -> u8 {
    (c0 << 1 | bit) as u8
}

use crate::mem::table;

/// Four buckets on one cache line. A bucket is 16 bytes: byte 0 holds the
/// context's check value, bytes 1-15 the bit-history states of the nodes of
/// a nibble's binary tree.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line([[u8; 16]; 4]);

/// Bit-history state `n0 << 4 | n1`: how often 0 and 1 were seen in a
/// context (at most 15 each), the other count halved (plus one) above 2
/// each time a bit is seen, so that recent bits weigh more.
const fn build_next() -> [[u8; 2]; 256] {
    let mut t = [[0u8; 2]; 256];
    let mut s = 0;
    while s < 256 {
        let (n0, n1) = ((s >> 4) as u32, (s & 15) as u32);
        let mut b = 0;
        while b < 2 {
            let (mut a, mut o) = if b == 1 { (n1, n0) } else { (n0, n1) };
            if a < 15 {
                a += 1;
            }
            if o > 2 {
                o = o / 2 + 1;
            }
            let (m0, m1) = if b == 1 { (o, a) } else { (a, o) };
            t[s][b] = (m0 << 4 | m1) as u8;
            b += 1;
        }
        s += 1;
    }
    t
}

static NEXT: [[u8; 2]; 256] = build_next();

/// Initial probability of a bit-history state: (n1 + 1) / (n0 + n1 + 2).
fn state_map_init() -> Vec<u32> {
    (0..256u32)
        .map(|s| {
            let (n0, n1) = (s >> 4, s & 15);
            let p = ((n1 * 2 + 1) << 22) / (2 * (n0 + n1) + 2);
            (p.min((1 << 22) - 1)) << 10
        })
        .collect()
}

/// Adaptive probability map (secondary estimation): refines a probability
/// given a context, interpolating between 33 buckets of its stretch.
struct Apm {
    t: Vec<u16>,
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
                crate::mem::prefetch(v);
            }
            i += 32;
        }
        if let Some(v) = self.t.get(end) {
            crate::mem::prefetch(v);
        }
    }

    #[inline(always)]
    fn update(&mut self, bit: u32, rate: u32) {
        let v = self.t[self.index] as i32;
        let target = ((bit << 16) - bit) as i32;
        self.t[self.index] = (v + ((target - v) >> rate)) as u16;
    }
}

/// The state of one stream, which a two-stream predictor keeps apart: its
/// history and everything computed from it (format-spec 8.4, "Two
/// streams"). The predictor codes with the current stream's and keeps the
/// other's aside, swapping the two after each byte.
#[derive(Default)]
struct Stream {
    /// The bytes coded so far.
    hist: Vec<u8>,
    /// The last eight bytes.
    c8: u64,
    word: u64,
    word_prev: u64,
    word_prev2: u64,
    token: u64,
    token_sep: u64,
    line_hash: u64,
    /// Start of the current line and of the line before it.
    line: usize,
    line_prev: usize,
    /// The match model's table and state.
    mm: Match,
    /// Record length detection.
    rec: Records,
}

impl Stream {
    /// Appends byte `b` to the history and steps the contexts' state
    /// (format-spec 8.4, "Learning"), but for the match model and records.
    #[inline(always)]
    fn append(&mut self, b: u8, preset: &Preset) {
        self.hist.push(b);
        self.c8 = (self.c8 << 8) | b as u64;
        if b == b'\n' {
            self.line_prev = self.line;
            self.line = self.hist.len();
        }
        if preset.words {
            let l = b.to_ascii_lowercase();
            if l.is_ascii_lowercase() || b >= 0x80 {
                self.word =
                    (self.word.wrapping_add(l as u64 + 1)).wrapping_mul(0x2F0F_3D8B_5A1C_6E27);
            } else if self.word != 0 {
                self.word_prev2 = self.word_prev;
                self.word_prev = self.word;
                self.word = 0;
            }
            if preset.tokens {
                if b.is_ascii_alphanumeric() || b >= 0x80 {
                    self.token =
                        (self.token.wrapping_add(b as u64 + 1)).wrapping_mul(0x2F0F_3D8B_5A1C_6E27);
                } else {
                    self.token_sep = (self.token_sep << 8 | b as u64) & 0xFFFF;
                    self.token = 0;
                }
            }
        }
        if preset.line_prefix {
            self.line_hash = if b == b'\n' {
                0
            } else {
                (self.line_hash.wrapping_add(b as u64 + 1)).wrapping_mul(0x2F0F_3D8B_5A1C_6E27)
            };
        }
    }

    /// The state [`Stream::append`] changes, but for the history.
    fn text_state(&self) -> [u64; 9] {
        [
            self.c8,
            self.word,
            self.word_prev,
            self.word_prev2,
            self.token,
            self.token_sep,
            self.line_hash,
            self.line as u64,
            self.line_prev as u64,
        ]
    }

    fn set_text_state(&mut self, t: [u64; 9]) {
        [
            self.c8,
            self.word,
            self.word_prev,
            self.word_prev2,
            self.token,
            self.token_sep,
            self.line_hash,
        ] = [t[0], t[1], t[2], t[3], t[4], t[5], t[6]];
        self.line = t[7] as usize;
        self.line_prev = t[8] as usize;
    }

    fn new(cap: usize, mm_log: u32, records: bool) -> Stream {
        Stream {
            hist: Vec::with_capacity(cap),
            mm: Match {
                tab: table(1 << mm_log, 0),
                ..Match::default()
            },
            rec: Records {
                pos: if records {
                    vec![[0; 4]; 256]
                } else {
                    Vec::new()
                },
                ..Records::default()
            },
            ..Stream::default()
        }
    }
}

/// The match model's state of one stream (format-spec 8.4, "Match
/// model"): the table of positions by hash of the last bytes, the match
/// followed, and its predicted byte.
#[derive(Default)]
struct Match {
    tab: Vec<u32>,
    /// Where the predicted byte is in the history.
    ptr: usize,
    /// Length of the match (0: none).
    len: usize,
    /// The predicted byte with a leading 1.
    byte: u32,
    /// A bit of this byte differed from the predicted byte's.
    miss: bool,
}

/// Record length detection (format-spec 8.4, "Records").
#[derive(Default)]
struct Records {
    /// Last four positions (1-based) of each byte value.
    pos: Vec<[u32; 4]>,
    /// The record length (0: none).
    len: usize,
    cand: [usize; 2],
    count: [u32; 2],
}

impl Records {
    /// After byte `b` was appended at position `pos` (1-based): a distance
    /// that separated the last five occurrences of a byte value is a
    /// candidate; a candidate seen 16 more times than its rival becomes
    /// the record length.
    fn update(&mut self, pos: u32, b: u8) {
        let cp = &mut self.pos[b as usize];
        let r = pos - cp[0];
        if cp[3] != 0 && r > 1 && r == cp[0] - cp[1] && r == cp[1] - cp[2] && r == cp[2] - cp[3] {
            let r = r as usize;
            if r == self.cand[0] {
                self.count[0] += 1;
            } else if r == self.cand[1] {
                self.count[1] += 1;
            } else if self.count[0] > self.count[1] {
                self.cand[1] = r;
                self.count[1] = 1;
            } else {
                self.cand[0] = r;
                self.count[0] = 1;
            }
        }
        *cp = [pos, cp[0], cp[1], cp[2]];
        for i in 0..2 {
            if self.count[i] > 15 && self.len != self.cand[i] {
                self.len = self.cand[i];
                self.count = [0, 0];
            }
        }
    }
}

/// The predictor for one chunk. It owns the chunk's history (the bytes
/// coded so far).
pub struct Predictor {
    preset: Preset,
    nh: usize,
    /// The current stream.
    s: Stream,
    // bit state
    c0: u32,
    nib: u32,
    bitpos: u32,
    // direct tables
    t0: Vec<u32>,
    t1: Vec<u32>,
    // hashed contexts: buckets of 16 counters (slot 0: check)
    ht: Vec<Line>,
    hmask: usize,
    /// One state map (state -> adaptive probability) per hashed context.
    sm: Vec<u32>,
    ctx: [u64; MAX_HASHED],
    bucket: [usize; MAX_HASHED],
    // match model: the streams' tables have `mm_mask + 1` entries
    mm_mask: usize,
    mm_sm: Vec<u32>,
    mm_cx: usize,
    // language model
    lm: bool,
    cum: [u32; 257],
    lm_st: i32,
    lm_bits: Option<[u16; 8]>,
    /// Number of mixer inputs.
    nin: usize,
    mx: Mixer,
    // APMs
    apm1: Apm,
    apm2: Apm,
    apm3: Apm,
    apm4: Apm,
    apm5: Apm,
    apm6: Apm,
    pr: u32,
    // image contexts (preset 6)
    image: Option<Image>,
    /// Mixer set c's selector: the byte's half and the local texture.
    img_sel: usize,
    /// Contexts of APM stages 2 and 4: bytes of two predictions.
    img_apm2: usize,
    img_apm4: usize,
    /// Two streams: the other stream's state, and whether the current one
    /// is the second.
    other: Option<Box<Stream>>,
    second: bool,
    /// Length of the first stream (two streams).
    split: usize,
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
        debug_assert!(image.width >= 2 && image.first <= 1);
        Self::build(IMAGE16, raw_len, false, Some(image))
    }

    fn build(preset: Preset, raw_len: usize, lm: bool, image: Option<Image>) -> Predictor {
        debug_assert_eq!(preset.image, image.is_some());
        let nh = preset.hashed();
        let (table_log, mm_log) = table_logs(preset, raw_len);
        let lines = 1usize << (table_log - 6);
        let nin = 3 + nh + 2 + if lm { 2 } else { 0 };
        // with two streams, the first is the chunk's first ceil(n / 2) bytes
        let split = if preset.two_streams {
            raw_len.div_ceil(2)
        } else {
            raw_len
        };
        let mut p = Predictor {
            preset,
            nh,
            s: Stream::new(split, mm_log, preset.records),
            c0: 1,
            nib: 1,
            bitpos: 0,
            t0: vec![COUNTER_INIT; 256],
            t1: vec![COUNTER_INIT; 65536],
            ht: table(lines, Line([[0; 16]; 4])),
            hmask: lines - 1,
            sm: (0..nh).flat_map(|_| state_map_init()).collect(),
            ctx: [0; MAX_HASHED],
            bucket: [0; MAX_HASHED],
            mm_mask: (1 << mm_log) - 1,
            mm_sm: vec![COUNTER_INIT; 64],
            mm_cx: usize::MAX,
            lm,
            cum: [0; 257],
            lm_st: 0,
            lm_bits: None,
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
            apm1: Apm::new(256),
            apm2: Apm::new(1 << 16),
            apm3: Apm::new(if lm { 1 << 13 } else { 1 }),
            apm4: Apm::new(if preset.apm_order2 { 1 << 16 } else { 1 }),
            apm5: Apm::new(if preset.apm_match { 64 << 8 } else { 1 }),
            apm6: Apm::new(if lm && preset.apm_class { 1 << 16 } else { 1 }),
            pr: 32768,
            image,
            img_sel: 0,
            img_apm2: 0,
            img_apm4: 0,
            other: preset
                .two_streams
                .then(|| Box::new(Stream::new(raw_len - split, mm_log, preset.records))),
            second: false,
            split,
        };
        p.byte_contexts();
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
            + 2 * 33
                * ((1 << 16)
                    + 256
                    + if lm { 1 << 13 } else { 0 }
                    + if preset.apm_order2 { 1 << 16 } else { 0 }
                    + if preset.apm_match { 64 << 8 } else { 0 }
                    + if lm && preset.apm_class { 1 << 16 } else { 0 })
            + if preset.records { 16 * 256 } else { 0 }
            + 4 * (256 + 65536)
            + 4 * MAX_INPUTS * preset.weight_sets()
    }

    /// Where the second stream starts in the chunk (its length with one
    /// stream).
    pub fn split(&self) -> usize {
        self.split
    }

    /// How many bytes were coded so far (of both streams).
    pub fn coded(&self) -> usize {
        self.s.hist.len() + self.other.as_ref().map_or(0, |o| o.hist.len())
    }

    /// Which stream the next byte belongs to (0: the chunk's first half,
    /// 1: its second; always 0 with one stream) and its index in it.
    pub fn next_in_stream(&self) -> (usize, usize) {
        (self.second as usize, self.s.hist.len())
    }

    /// The bytes coded so far, taken.
    pub fn into_history(mut self) -> Vec<u8> {
        self.take_history()
    }

    /// The bytes coded so far, taken out (the predictor is spent): with two
    /// streams, the first followed by the second.
    pub fn take_history(&mut self) -> Vec<u8> {
        let mut h = std::mem::take(&mut self.s.hist);
        if let Some(o) = self.other.as_mut() {
            let mut o = std::mem::take(&mut o.hist);
            if self.second {
                std::mem::swap(&mut h, &mut o);
            }
            h.extend_from_slice(&o);
        }
        h
    }

    /// The language model's frequencies for the next byte (all 256 nonzero;
    /// format-spec 7.4). Called before each byte when the predictor was made
    /// with `lm`.
    pub fn set_lm(&mut self, f: &[u32; 256]) {
        debug_assert!(self.lm && self.bitpos == 0);
        cumulate(f, &mut self.cum);
        self.lm_bits = None;
        self.predict();
    }

    /// As [`Predictor::set_lm`] for an encoder that already knows the byte:
    /// the model's probabilities for its 8 bits, from [`lm_byte_bits`].
    pub fn set_lm_bits(&mut self, bits: &[u16; 8]) {
        debug_assert!(self.lm && self.bitpos == 0);
        self.lm_bits = Some(*bits);
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
        crate::progress::tick();
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
        crate::progress::tick();
        byte
    }

    /// Bucket of a context for the current nibble, in line `line` with
    /// check byte `chk`: one of the four in the line with the check byte;
    /// a miss takes the least used of the four (fewest bits seen at the
    /// nibble's first node; the first of equals) that no earlier context
    /// took in this lookup, emptied (bucket 0 when all four are taken).
    /// `earlier` holds the buckets of the earlier contexts of this lookup.
    ///
    /// The hit scan comes first and the taken buckets are looked for only on
    /// a miss, among the earlier contexts that fell in the same line (rare
    /// in 2^21 lines or more): the same choice as testing every candidate
    /// against every earlier bucket, which took 14% of the time of coding
    /// calgary/book1 with preset 3 (profile by perf).
    #[inline(always)]
    fn find_bucket(&mut self, line: usize, chk: u8, earlier: &[usize]) -> usize {
        let l = &mut self.ht[line].0;
        for (k, b) in l.iter().enumerate() {
            if b[0] == chk {
                return line * 4 + k;
            }
        }
        let mut taken = 0u32;
        for &e in earlier {
            if e >> 2 == line {
                taken |= 1 << (e & 3);
            }
        }
        let mut best = 0;
        let mut best_n = u32::MAX;
        for (k, b) in l.iter().enumerate() {
            let s = b[1] as u32;
            let n = (s >> 4) + (s & 15);
            if n < best_n && taken & (1 << k) == 0 {
                best_n = n;
                best = k;
            }
        }
        l[best] = [0; 16];
        l[best][0] = chk;
        line * 4 + best
    }

    /// Line and check byte of context `i`'s bucket for the nibble whose
    /// salt (the partial byte, shifted) is `salt`.
    #[inline(always)]
    fn bucket_key(&self, i: usize, salt: u64) -> (usize, u8) {
        self.bucket_key_of(self.ctx[i], i, salt)
    }

    /// [`Predictor::bucket_key`] of context hash `ctx` as context `i`.
    #[inline(always)]
    fn bucket_key_of(&self, ctx: u64, i: usize, salt: u64) -> (usize, u8) {
        let h = hash2(ctx, salt | i as u64);
        ((h >> 20) as usize & self.hmask, (h & 0xFF) as u8)
    }

    fn nibble_buckets(&mut self) {
        let keys = self.nibble_keys();
        self.find_buckets(&keys);
    }

    /// The line and check byte of each context's bucket for the current
    /// nibble; the lines are asked of the cache.
    #[inline(always)]
    fn nibble_keys(&self) -> [(usize, u8); MAX_HASHED] {
        let salt = if self.bitpos == 0 {
            0
        } else {
            (self.c0 as u64) << 56
        };
        let mut keys = [(0usize, 0u8); MAX_HASHED];
        for (i, key) in keys.iter_mut().enumerate().take(self.nh) {
            *key = self.bucket_key(i, salt);
            crate::mem::prefetch(&self.ht[key.0]);
        }
        keys
    }

    /// Sets each context's bucket from its key.
    #[inline(always)]
    fn find_buckets(&mut self, keys: &[(usize, u8); MAX_HASHED]) {
        let mut bucket = [0usize; MAX_HASHED];
        for i in 0..self.nh {
            let (line, chk) = keys[i];
            bucket[i] = self.find_bucket(line, chk, &bucket[..i]);
        }
        self.bucket = bucket;
    }

    /// Contexts and buckets at a byte boundary.
    fn byte_contexts(&mut self) {
        self.contexts();
        self.nibble_buckets();
    }

    /// Contexts at a byte boundary.
    fn contexts(&mut self) {
        let mut k = 0;
        for &o in self.preset.orders {
            self.ctx[k] = order_context(self.s.c8, o);
            k += 1;
        }
        if self.preset.code {
            // bytes 1 and 3, 3 and 4, 1 and 5, 2 back; the last two bytes
            // and the position mod 4
            let c8 = self.s.c8;
            self.ctx[k] = hash2(c8 & 0xFF_00FF, 0x7001);
            self.ctx[k + 1] = hash2(c8 & 0xFFFF_0000, 0x7002);
            self.ctx[k + 2] = hash2(c8 & 0xFF_0000_00FF, 0x7003);
            self.ctx[k + 3] = hash2(c8 & 0xFF00, 0x7004);
            self.ctx[k + 4] = hash2(c8 & 0xFFFF, 0x7010 + (self.s.hist.len() & 3) as u64);
            k += 5;
        }
        if self.preset.words {
            let c1 = self.s.c8 & 0xFF;
            self.ctx[k] = hash2(self.s.word, 0x100 + if self.s.word == 0 { c1 } else { 0 });
            self.ctx[k + 1] = hash2(self.s.word, self.s.word_prev.wrapping_add(0x200));
            k += 2;
            if self.preset.tokens {
                self.ctx[k] = hash2(self.s.token, self.s.token_sep + 0x500);
                self.ctx[k + 1] = hash2(
                    hash2(self.s.word, self.s.word_prev),
                    self.s.word_prev2.wrapping_add(0x600),
                );
                k += 2;
            }
        }
        if self.preset.line_prefix {
            self.ctx[k] = hash2(self.s.line_hash, 0x800);
            k += 1;
        }
        if self.preset.records {
            let pos = self.s.hist.len();
            let r = self.s.rec.len;
            let at = |d: usize| {
                if r > 0 && pos >= d {
                    self.s.hist[pos - d] as u64
                } else {
                    0x100
                }
            };
            let (above, above2) = (at(r), at(2 * r));
            let salt = (r as u64) << 12;
            let col = if r > 0 { (pos % r).min(1023) as u64 } else { 0 };
            self.ctx[k] = hash2(above << 9 | above2, salt + 0xB00);
            self.ctx[k + 1] = hash2(above << 9 | (self.s.c8 & 0xFF), salt + 0xC00);
            self.ctx[k + 2] = hash2(col << 9 | above, salt + 0xD00);
            k += 3;
        }
        if self.preset.columns {
            let pos = self.s.hist.len();
            let col = pos - self.s.line;
            let above = if self.s.line_prev + col < self.s.line {
                self.s.hist[self.s.line_prev + col] as u64
            } else {
                0x100
            };
            self.ctx[k] = hash2(
                (col.min(255) as u64) << 9 | above,
                0x300 + (self.s.c8 & 0xFF),
            );
            self.ctx[k + 1] = hash2((self.s.c8 >> 8) & 0xFFFF, 0x400);
            k += 2;
        }
        if self.preset.line_column {
            let col = self.s.hist.len() - self.s.line;
            self.ctx[k] = hash2(col.min(255) as u64, 0xF00);
            k += 1;
        }
        if let Some(img) = self.image {
            self.image_contexts(k, img);
            k += IMAGE_CONTEXTS;
        }
        debug_assert_eq!(k, self.nh);
    }

    /// Sample `i` of the image (0 for `i < 0`); only samples before the
    /// current one are read.
    #[inline(always)]
    fn sample(&self, img: Image, i: isize) -> i32 {
        if i < 0 {
            return 0;
        }
        let at = img.first as usize + 2 * i as usize;
        self.s.hist[at] as i32 | (self.s.hist[at + 1] as i32) << 8
    }

    /// The median predictor (LOCO-I) of sample `i` from its neighbours.
    #[inline(always)]
    fn median(&self, img: Image, i: isize) -> i32 {
        let w = img.width as isize;
        let (a, b, c) = (
            self.sample(img, i - 1),
            self.sample(img, i - w),
            self.sample(img, i - w - 1),
        );
        if c >= a.max(b) {
            a.min(b)
        } else if c <= a.min(b) {
            a.max(b)
        } else {
            a + b - c
        }
    }

    /// The 14 image contexts (format-spec 8.8) at a byte boundary, into
    /// `ctx[k..]`, and the image's mixer and APM selectors.
    fn image_contexts(&mut self, k: usize, img: Image) {
        let pos = self.s.hist.len();
        let first = img.first as usize;
        if pos < first {
            for j in 0..IMAGE_CONTEXTS {
                self.ctx[k + j] = hash2(pos as u64, 0x1000 + j as u64);
            }
            self.img_sel = 0;
            self.img_apm2 = 0;
            self.img_apm4 = 0;
            return;
        }
        let half = (pos - first) & 1;
        let i = ((pos - first) >> 1) as isize;
        let w = img.width as isize;
        let s = |d: isize| self.sample(img, i - d);
        let (wv, n, nw, ne, ww, nn) = (s(1), s(w), s(w + 1), s(w - 1), s(2), s(2 * w));
        let grad = (wv + n - nw).clamp(0, 65535);
        let med = self.median(img, i);
        let av = (wv + ne + 1) >> 1;
        let g2 = (wv + ne - n).clamp(0, 65535);
        let nv = (2 * n - nn).clamp(0, 65535);
        let wv2 = (2 * wv - ww).clamp(0, 65535);
        let mean4 = (wv + n + ne + nw + 2) >> 2;
        let err_w = wv - self.median(img, i - 1);
        let err_n = n - self.median(img, i - w);
        let wcorr = (med + err_w / 2).clamp(0, 65535);
        let ncorr = (med + err_n / 2).clamp(0, 65535);
        // sign and magnitude class of an error
        let eq = |e: i32| -> u64 {
            ((32 - e.unsigned_abs().leading_zeros()) << 1) as u64 | (e < 0) as u64
        };
        let tex = ((wv - nw).abs() + (n - nw).abs() + (n - ne).abs()) as u32;
        let tq = (32 - tex.leading_zeros()) as u64;
        self.img_sel = half << 4 | tq.min(15) as usize;
        let v: [(u64, u64); IMAGE_CONTEXTS];
        if half == 0 {
            // the low byte: predictions at full precision
            let q = |p: i32| p as u64;
            self.img_apm2 = (med & 0xFF) as usize;
            self.img_apm4 = (wcorr & 0xFF) as usize;
            v = [
                (q(med), 0),
                (q(grad), 0),
                (q(wv >> 2) << 16 | q(n >> 2), 0),
                (q(av), 0),
                (q(g2), tq),
                (q(med >> 2), tq),
                (q(nv >> 1) << 16 | q(wv2 >> 1), 0),
                (q(mean4), 0),
                (q(wcorr), 0),
                (q(med), eq(err_w)),
                (q(n >> 1) << 16 | q(ne >> 1), 0),
                (q(wv >> 1) << 16 | q(nw >> 1), 0),
                (q(ncorr), 0),
                (q((wv + n) >> 1), eq(err_n)),
            ];
        } else {
            // the high byte, given the low byte l: the high byte that
            // brings each prediction nearest
            let l = self.s.hist[pos - 1] as i32;
            let eh = |p: i32| ((p - l + 128) >> 8).clamp(0, 255) as u64;
            let (l, lq) = (l as u64, (l >> 4) as u64);
            self.img_apm2 = eh(med) as usize;
            self.img_apm4 = eh(wcorr) as usize;
            v = [
                (eh(med) << 8 | lq, 0),
                (eh(grad) << 8 | lq, 0),
                (eh(wv) << 8 | eh(n), 0),
                (eh(av) << 8 | l, 0),
                (eh(g2), tq),
                (eh(med), tq),
                (eh(nv) << 8 | eh(wv2), 0),
                (eh(mean4) << 8 | lq, 0),
                (eh(wcorr) << 8 | lq, 0),
                (eh(med) << 8 | l, eq(err_w)),
                (eh(n) << 8 | eh(ne), lq),
                (eh(wv) << 8 | eh(nw), lq),
                (eh(ncorr) << 8 | lq, 0),
                (eh((wv + n) >> 1) << 8 | l, eq(err_n)),
            ];
        }
        let salt = 0x2000 + 32 * half as u64;
        for (j, &(a, b)) in v.iter().enumerate() {
            self.ctx[k + j] = hash2(a | b << 40, salt + j as u64);
        }
    }

    /// The match table's slot for the last bytes `c8`.
    #[inline(always)]
    fn match_slot(&self, c8: u64) -> usize {
        let key = c8 & (u64::MAX >> (64 - 8 * self.preset.match_min));
        (hash2(key, 0x51) >> 30) as usize & self.mm_mask
    }

    /// Match model, after byte `b` was appended to the history.
    fn match_update(&mut self) {
        let pos = self.s.hist.len();
        if self.s.mm.len > 0 {
            if !self.s.mm.miss && self.s.hist[self.s.mm.ptr] == self.s.hist[pos - 1] {
                self.s.mm.len = (self.s.mm.len + 1).min(65535);
                self.s.mm.ptr += 1;
            } else {
                self.s.mm.len = 0;
            }
        }
        let min = self.preset.match_min;
        if pos >= min {
            let h = self.match_slot(self.s.c8);
            if self.s.mm.len == 0 {
                let cand = self.s.mm.tab[h] as usize;
                if cand > 0 {
                    let mut l = 0;
                    while l < MATCH_VERIFY
                        && l < cand
                        && self.s.hist[cand - 1 - l] == self.s.hist[pos - 1 - l]
                    {
                        l += 1;
                    }
                    if l >= min {
                        self.s.mm.len = l;
                        self.s.mm.ptr = cand;
                    }
                }
            }
            self.s.mm.tab[h] = pos as u32;
        }
        self.s.mm.miss = false;
        if self.s.mm.len > 0 {
            self.s.mm.byte = self.s.hist[self.s.mm.ptr] as u32 | 0x100;
        }
    }

    fn byte_update(&mut self) {
        let b = (self.c0 & 0xFF) as u8;
        self.s.append(b, &self.preset);
        self.c0 = 1;
        self.nib = 1;
        self.bitpos = 0;
        if self.preset.records {
            self.s.rec.update(self.s.hist.len() as u32, b);
        }
        if self.other.is_some() {
            self.match_update();
            self.update_rate();
            self.swap_streams();
            self.byte_contexts();
        } else {
            // The contexts do not depend on the match model: their lines
            // are asked of the cache first, so that the match model's own
            // table and history reads overlap with those misses.
            self.update_rate();
            self.contexts();
            let keys = self.nibble_keys();
            self.match_update();
            self.find_buckets(&keys);
        }
    }

    /// The mixers' rate with `mixer_decay`.
    #[inline(always)]
    fn update_rate(&mut self) {
        if self.preset.mixer_decay {
            self.mx.rate16 = (48 - (self.coded() >> 12) as i32).max(10);
        }
    }

    /// Two streams: makes the other stream the current one.
    fn swap_streams(&mut self) {
        let o = self.other.as_mut().expect("two streams");
        std::mem::swap(&mut self.s, o);
        self.second = !self.second;
    }

    /// Compute the inputs, mix and refine: sets `self.pr`.
    #[inline(always)]
    fn predict(&mut self) {
        let c1 = (self.s.c8 & 0xFF) as usize;
        let mut n = 0;
        self.mx.x[n] = 256;
        n += 1;
        self.mx.x[n] = counter_stretch(self.t0[self.c0 as usize]);
        n += 1;
        self.mx.x[n] = counter_stretch(self.t1[c1 << 8 | self.c0 as usize]);
        n += 1;
        for i in 0..self.nh {
            let b = self.bucket[i];
            let st = self.ht[b >> 2].0[b & 3][self.nib as usize] as usize;
            self.mx.x[n] = counter_stretch(self.sm[i * 256 + st]);
            n += 1;
        }
        // match model
        let mut mstate = 0;
        self.mm_cx = usize::MAX;
        if self.s.mm.len > 0 && !self.s.mm.miss {
            let expect = (self.s.mm.byte >> (7 - self.bitpos)) & 1;
            let l = self.s.mm.len;
            let lq = if l < 16 {
                l
            } else {
                (16 + ((l - 16) >> 3)).min(31)
            };
            self.mm_cx = lq * 2 + expect as usize;
            let st = counter_stretch(self.mm_sm[self.mm_cx]);
            self.mx.x[n] = st;
            self.mx.x[n + 1] = if expect == 1 {
                lq as i32 * 32
            } else {
                -(lq as i32) * 32
            };
            mstate = if l < 16 {
                1
            } else if l < 32 {
                2
            } else {
                3
            };
        } else {
            self.mx.x[n] = 0;
            self.mx.x[n + 1] = 0;
        }
        n += 2;
        let mut lmq = self.bitpos as usize;
        if self.lm {
            let p = match &self.lm_bits {
                Some(b) => b[self.bitpos as usize] as u32,
                None => lm_bit_p(&self.cum, self.c0, self.bitpos),
            };
            let st = stretch16(p);
            self.lm_st = st;
            self.mx.x[n] = st;
            self.mx.x[n + 1] = (p as i32 - 32768) >> 4;
            n += 2;
            lmq = (st.unsigned_abs() as usize >> 8).min(7);
        }
        debug_assert_eq!(n, self.nin);
        // weight sets: by partial byte; then by match state and model
        // confidence, by the last byte (or the image's texture) and bit
        // position, and by byte class
        if self.preset.single_mixer {
            let pm = squash(self.mx.mix(&[self.c0 as usize])[0]) as u32;
            let p2 = self.apm2.refine(pm, self.c0 as usize | c1 << 8);
            self.pr = ((pm + 3 * p2 + 2) >> 2).clamp(1, 65535);
            self.prefetch_next();
            return;
        }
        let set_b = 256 + mstate * 8 + lmq;
        let set_c = 320
            + if self.preset.image {
                self.img_sel << 3 | self.bitpos as usize
            } else {
                c1 << 3 | self.bitpos as usize
            };
        let s = if self.preset.class_set {
            let set_d =
                WEIGHT_SETS + (byte_class(c1 as u8) << 6 | (self.bitpos as usize) << 3 | lmq);
            let d = self.mx.mix(&[self.c0 as usize, set_b, set_c, set_d]);
            (d[0] + d[1] + d[2] + d[3]) / 4
        } else {
            let d = self.mx.mix(&[self.c0 as usize, set_b, set_c]);
            (d[0] + d[1] + d[2]) / 3
        };
        let pm = squash(s) as u32;
        let p1 = self.apm1.refine(pm, self.c0 as usize);
        let a2 = if self.preset.image { self.img_apm2 } else { c1 };
        let p2 = self.apm2.refine(pm, self.c0 as usize | a2 << 8);
        let mut p = (p1 + 3 * p2 + 2) >> 2;
        if self.preset.apm_order2 {
            let h = self.apm4_h();
            p = (p + self.apm4.refine(pm, self.c0 as usize | h << 8) + 1) >> 1;
        }
        if self.preset.apm_match {
            let m = if self.mm_cx == usize::MAX {
                0
            } else {
                self.mm_cx
            };
            p = (p + 3 * self.apm5.refine(p, self.c0 as usize | m << 8) + 2) >> 2;
        }
        let p = if self.lm {
            // refined once more in the context of the model's own opinion
            let opinion = ((self.lm_st + 2048) >> 7) as usize; // 0..31
            let cx = opinion << 8 | self.c0 as usize;
            if self.preset.apm_class {
                let cx6 = opinion << 11 | byte_class(c1 as u8) << 8 | self.c0 as usize;
                (2 * p + self.apm3.refine(pm, cx) + self.apm6.refine(pm, cx6) + 2) >> 2
            } else {
                (3 * p + self.apm3.refine(pm, cx) + 2) >> 2
            }
        } else {
            p
        };
        self.pr = p.clamp(1, 65535);
        self.prefetch_next();
        if self.bitpos == 7 && self.other.is_none() && !self.preset.records && !self.preset.image {
            self.prefetch_guess(next_byte(self.c0 as usize, (self.pr >= 32768) as usize));
        }
    }

    /// At a byte's last bit, with one stream and no records: asks the
    /// cache for the first nibble's lines of every hashed context of the
    /// next byte, as if this byte is `b` (the likelier value of its last
    /// bit). Those contexts are computed here on the state `b` would make,
    /// which is then put back: the word, token and column contexts' lines
    /// are then on their way while the last bit is coded and learnt from,
    /// where only the order contexts' were before (preset 9 on
    /// calgary/book1: the bucket search's reads of those lines were its
    /// largest cost, 11% of the samples, perf). Changes no result.
    #[inline(always)]
    fn prefetch_guess(&mut self, b: u8) {
        let (state, ctx) = (self.s.text_state(), self.ctx);
        self.s.append(b, &self.preset);
        self.contexts();
        for i in 0..self.nh {
            let (line, _) = self.bucket_key(i, 0);
            crate::mem::prefetch(&self.ht[line]);
        }
        self.s.hist.pop();
        self.s.set_text_state(state);
        self.ctx = ctx;
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
        let c0 = self.c0 as usize;
        let c1 = (self.s.c8 & 0xFF) as usize;
        let likely = (self.pr >= 32768) as usize;
        if self.bitpos < 7 {
            let next = c0 << 1;
            let a2 = if self.preset.image { self.img_apm2 } else { c1 };
            self.apm2.prefetch(next | a2 << 8, 2);
            if self.preset.apm_order2 {
                self.apm4.prefetch(next | self.apm4_h() << 8, 2);
            }
            if self.preset.apm_match && self.s.mm.len > 0 && !self.s.mm.miss {
                let m = self.mm_cx & !1 | (self.s.mm.byte >> (6 - self.bitpos)) as usize & 1;
                self.apm5.prefetch(next | m << 8, 2);
            }
            if self.bitpos == 3 {
                let salt = ((next as u64) | likely as u64) << 56;
                for i in 0..self.nh {
                    let (line, _) = self.bucket_key(i, salt);
                    crate::mem::prefetch(&self.ht[line]);
                }
            }
        } else if !self.preset.image {
            for bit in 0..2 {
                let b = (next_byte(c0, bit)) as usize;
                self.apm2.prefetch(1 | b << 8, 1);
                if self.preset.apm_order2 {
                    let h = (((c1 << 8 | b) as u64).wrapping_mul(0x9E37_79B9) >> 8) as usize & 0xFF;
                    self.apm4.prefetch(1 | h << 8, 1);
                }
            }
            let c8 = self.s.c8 << 8 | next_byte(c0, likely) as u64;
            crate::mem::prefetch(&self.s.mm.tab[self.match_slot(c8)]);
            if self.other.is_some() || self.preset.records {
                for (i, &o) in self.preset.orders.iter().enumerate() {
                    let (line, _) = self.bucket_key_of(order_context(c8, o), i, 0);
                    crate::mem::prefetch(&self.ht[line]);
                }
            }
        }
    }

    /// The hash of APM stage 4's context: the last two bytes, or with
    /// preset 6 a byte of a prediction.
    #[inline(always)]
    fn apm4_h(&self) -> usize {
        if self.preset.image {
            self.img_apm4
        } else {
            ((self.s.c8 & 0xFFFF).wrapping_mul(0x9E37_79B9) >> 8) as usize & 0xFF
        }
    }

    /// Learn from `bit` and move to the next bit.
    #[inline(always)]
    pub fn update(&mut self, bit: u32) {
        counter_update(&mut self.t0[self.c0 as usize], bit);
        let c1 = (self.s.c8 & 0xFF) as usize;
        counter_update(&mut self.t1[c1 << 8 | self.c0 as usize], bit);
        for i in 0..self.nh {
            let b = self.bucket[i];
            let slot = &mut self.ht[b >> 2].0[b & 3][self.nib as usize];
            counter_update(&mut self.sm[i * 256 + *slot as usize], bit);
            *slot = NEXT[*slot as usize][bit as usize];
        }
        if self.mm_cx != usize::MAX {
            counter_update(&mut self.mm_sm[self.mm_cx], bit);
            if (self.s.mm.byte >> (7 - self.bitpos)) & 1 != bit {
                self.s.mm.miss = true;
            }
        }
        // mixers: error in 12 bits
        self.mx.train(bit);
        if !self.preset.single_mixer {
            self.apm1.update(bit, APM_RATE);
            if self.preset.apm_order2 {
                self.apm4.update(bit, APM_RATE);
            }
            if self.preset.apm_match {
                self.apm5.update(bit, APM_RATE);
            }
        }
        self.apm2.update(bit, APM_RATE);
        if self.lm && !self.preset.single_mixer {
            self.apm3.update(bit, APM_RATE);
            if self.preset.apm_class {
                self.apm6.update(bit, APM_RATE);
            }
        }

        self.c0 = (self.c0 << 1) | bit;
        self.nib = (self.nib << 1) | bit;
        self.bitpos += 1;
        if self.bitpos == 8 {
            self.byte_update();
        } else if self.bitpos == 4 {
            self.nib = 1;
            self.nibble_buckets();
        }
        if !(self.lm && self.bitpos == 0) {
            self.predict();
        }
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
/// frequencies `f`: what [`Predictor::set_lm`] would compute bit by bit.
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(p.s.rec.len, 37);
        let (without, p) = code(&data, NORMAL);
        assert_eq!(p.s.rec.len, 0);
        assert!(with < without, "records {with} B, without {without} B");
    }
}
