//! The state of a stream (format-spec 8.4, "State" and "Two streams"):
//! its history and what is computed from it, the contexts' running hashes,
//! its match state and record detection. [`Streams`] holds the one or two
//! streams of a chunk.

use super::match_model::MatchState;
use super::presets::Preset;

/// The state of one stream, which a two-stream predictor keeps apart: its
/// history and everything computed from it (format-spec 8.4, "Two
/// streams"). The predictor codes with the current stream's and keeps the
/// other's aside, swapping the two after each byte.
#[derive(Default)]
pub(super) struct Stream {
    /// The bytes coded so far.
    pub(super) hist: Vec<u8>,
    /// The last eight bytes.
    pub(super) c8: u64,
    /// Running hashes of the current word and the two before it, of the
    /// current token and the separator bytes before it, of the line so far.
    pub(super) word: u64,
    pub(super) word_prev: u64,
    pub(super) word_prev2: u64,
    pub(super) token: u64,
    pub(super) token_sep: u64,
    pub(super) line_hash: u64,
    /// Start of the current line and of the line before it.
    pub(super) line: usize,
    pub(super) line_prev: usize,
    /// The match model's table and state.
    pub(super) mm: MatchState,
    /// Record length detection.
    pub(super) rec: Records,
}

impl Stream {
    /// Appends byte `b` to the history and steps the contexts' state
    /// (format-spec 8.4, "Learning"), but for the match model and records.
    #[inline(always)]
    pub(super) fn append(&mut self, b: u8, preset: &Preset) {
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
    pub(super) fn text_state(&self) -> [u64; 9] {
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

    /// Puts back what [`Stream::text_state`] returned.
    pub(super) fn set_text_state(&mut self, t: [u64; 9]) {
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

    /// A stream of up to `cap` bytes with a match table of `2^mm_log`
    /// positions, and record detection if `records`.
    pub(super) fn new(cap: usize, mm_log: u32, records: bool) -> Stream {
        Stream {
            hist: Vec::with_capacity(cap),
            mm: MatchState::new(mm_log),
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

/// Record length detection (format-spec 8.4, "Records").
#[derive(Default)]
pub(super) struct Records {
    /// Last four positions (1-based) of each byte value.
    pos: Vec<[u32; 4]>,
    /// The record length (0: none).
    pub(super) len: usize,
    cand: [usize; 2],
    count: [u32; 2],
}

impl Records {
    /// After byte `b` was appended at position `pos` (1-based): a distance
    /// that separated the last five occurrences of a byte value is a
    /// candidate; a candidate seen 16 more times than its rival becomes
    /// the record length.
    pub(super) fn update(&mut self, pos: u32, b: u8) {
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

/// The one or two streams of a chunk (format-spec 8.4, "Two streams"):
/// the current one, which the predictor codes with, and with two streams
/// the other, kept aside and swapped in after each byte.
pub(super) struct Streams {
    /// The stream the next byte belongs to.
    pub(super) cur: Stream,
    /// Two streams: the other one.
    other: Option<Box<Stream>>,
    /// The current stream is the second.
    second: bool,
    /// Length of the first stream (the chunk's length with one stream).
    split: usize,
}

impl Streams {
    /// The streams of a chunk of `raw_len` bytes for `preset`, with match
    /// tables of `2^mm_log` positions: with two streams, the first is the
    /// chunk's first `ceil(raw_len / 2)` bytes.
    pub(super) fn new(preset: &Preset, raw_len: usize, mm_log: u32) -> Streams {
        let split = if preset.two_streams {
            raw_len.div_ceil(2)
        } else {
            raw_len
        };
        Streams {
            cur: Stream::new(split, mm_log, preset.records),
            other: preset
                .two_streams
                .then(|| Box::new(Stream::new(raw_len - split, mm_log, preset.records))),
            second: false,
            split,
        }
    }

    /// Whether there are two streams.
    #[inline(always)]
    pub(super) fn two(&self) -> bool {
        self.other.is_some()
    }

    /// Makes the other stream the current one (two streams).
    pub(super) fn swap(&mut self) {
        let o = self.other.as_mut().expect("two streams");
        std::mem::swap(&mut self.cur, o);
        self.second = !self.second;
    }

    /// Where the second stream starts in the chunk.
    pub(super) fn split(&self) -> usize {
        self.split
    }

    /// How many bytes were coded so far (of both streams).
    #[inline(always)]
    pub(super) fn coded(&self) -> usize {
        self.cur.hist.len() + self.other.as_ref().map_or(0, |o| o.hist.len())
    }

    /// Which stream the next byte belongs to (0 or 1) and its index in it.
    pub(super) fn next_in_stream(&self) -> (usize, usize) {
        (self.second as usize, self.cur.hist.len())
    }

    /// The bytes coded so far, taken out: with two streams, the first
    /// followed by the second.
    pub(super) fn take_history(&mut self) -> Vec<u8> {
        let mut h = std::mem::take(&mut self.cur.hist);
        if let Some(o) = self.other.as_mut() {
            let mut o = std::mem::take(&mut o.hist);
            if self.second {
                std::mem::swap(&mut h, &mut o);
            }
            h.extend_from_slice(&o);
        }
        h
    }
}
