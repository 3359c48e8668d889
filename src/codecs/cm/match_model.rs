//! The match model (format-spec 8.4, "Match model"): finds the last place
//! where the bytes before the current one occurred and predicts the byte
//! that followed there.
//!
//! Each stream has its own [`MatchState`] (its table of positions and the
//! match it follows); the streams share the [`MatchModel`]'s counters.

use super::contexts::hash2;
use super::counter;
use crate::runtime::mem::table;

/// How far back a match candidate is verified.
const MATCH_VERIFY: usize = 32;

/// The match model's state of one stream: the table of positions by hash
/// of the last bytes, the match followed, and its predicted byte.
#[derive(Default)]
pub(super) struct MatchState {
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

impl MatchState {
    /// A state with a table of `2^log` positions.
    pub(super) fn new(log: u32) -> MatchState {
        MatchState {
            tab: table(1 << log, 0),
            ..MatchState::default()
        }
    }

    /// Whether a match goes on through the current byte: it predicts.
    #[inline(always)]
    fn predicts(&self) -> bool {
        self.len > 0 && !self.miss
    }

    /// The predicted value of bit `bitpos` (0: the byte's top bit).
    #[inline(always)]
    fn expected(&self, bitpos: u32) -> u32 {
        (self.byte >> (7 - bitpos)) & 1
    }
}

/// What the streams share: the match map (64 counters by length and
/// predicted bit), the context of the current bit in it, and the table's
/// size and the shortest match of the preset.
pub(super) struct MatchModel {
    sm: Vec<u32>,
    /// The current bit's context in `sm` (`usize::MAX`: no prediction).
    cx: usize,
    /// The tables' entries, less one.
    mask: usize,
    /// Shortest match followed (at most 8 bytes).
    min: usize,
}

impl MatchModel {
    /// The model for matches of at least `min` bytes and tables of `2^log`
    /// positions.
    pub(super) fn new(min: usize, log: u32) -> MatchModel {
        MatchModel {
            sm: vec![counter::INIT; 64],
            cx: usize::MAX,
            mask: (1 << log) - 1,
            min,
        }
    }

    /// The table slot for the last bytes `c8`.
    #[inline(always)]
    fn slot(&self, c8: u64) -> usize {
        let key = c8 & (u64::MAX >> (64 - 8 * self.min));
        (hash2(key, 0x51) >> 30) as usize & self.mask
    }

    /// Asks the cache for the slot of stream state `m` that the last bytes
    /// `c8` fall in.
    #[inline(always)]
    pub(super) fn prefetch_slot(&self, m: &MatchState, c8: u64) {
        crate::runtime::mem::prefetch(&m.tab[self.slot(c8)]);
    }

    /// Steps stream state `m` after a byte was appended to its history
    /// `hist`, whose last eight bytes are `c8`: the match goes on or ends,
    /// a new one is looked for, and the position is recorded.
    pub(super) fn step(&self, m: &mut MatchState, hist: &[u8], c8: u64) {
        let pos = hist.len();
        if m.len > 0 {
            if !m.miss && hist[m.ptr] == hist[pos - 1] {
                m.len = (m.len + 1).min(65535);
                m.ptr += 1;
            } else {
                m.len = 0;
            }
        }
        let min = self.min;
        if pos >= min {
            let h = self.slot(c8);
            if m.len == 0 {
                let cand = m.tab[h] as usize;
                if cand > 0 {
                    let mut l = 0;
                    while l < MATCH_VERIFY && l < cand && hist[cand - 1 - l] == hist[pos - 1 - l] {
                        l += 1;
                    }
                    if l >= min {
                        m.len = l;
                        m.ptr = cand;
                    }
                }
            }
            m.tab[h] = pos as u32;
        }
        m.miss = false;
        if m.len > 0 {
            m.byte = hist[m.ptr] as u32 | 0x100;
        }
    }

    /// The two mixer inputs for bit `bitpos` of stream state `m`, into
    /// `x`, and the match state of weight set b (0: no prediction, then 1,
    /// 2 and 3 for lengths below 16, below 32 and longer).
    #[inline(always)]
    pub(super) fn inputs(&mut self, m: &MatchState, bitpos: u32, x: &mut [i32]) -> usize {
        self.cx = usize::MAX;
        if m.predicts() {
            let expect = m.expected(bitpos);
            let l = m.len;
            let lq = if l < 16 {
                l
            } else {
                (16 + ((l - 16) >> 3)).min(31)
            };
            self.cx = lq * 2 + expect as usize;
            x[0] = counter::stretch(self.sm[self.cx]);
            x[1] = if expect == 1 {
                lq as i32 * 32
            } else {
                -(lq as i32) * 32
            };
            if l < 16 {
                1
            } else if l < 32 {
                2
            } else {
                3
            }
        } else {
            x[0] = 0;
            x[1] = 0;
            0
        }
    }

    /// `A5`'s context for the current bit: its match-map context, 0
    /// without a prediction.
    #[inline(always)]
    pub(super) fn apm_context(&self) -> usize {
        if self.cx == usize::MAX { 0 } else { self.cx }
    }

    /// `A5`'s context for the bit after `bitpos` (below 7) if the match
    /// still predicts then, ignoring the length step a byte makes.
    #[inline(always)]
    pub(super) fn next_apm_context(&self, m: &MatchState, bitpos: u32) -> Option<usize> {
        m.predicts()
            .then(|| self.cx & !1 | (m.byte >> (6 - bitpos)) as usize & 1)
    }

    /// Learns `bit` at `bitpos` of stream state `m`: the match map's
    /// counter, and a miss ends the prediction for the rest of the byte.
    #[inline(always)]
    pub(super) fn update(&mut self, m: &mut MatchState, bitpos: u32, bit: u32) {
        if self.cx != usize::MAX {
            counter::update(&mut self.sm[self.cx], bit);
            if m.expected(bitpos) != bit {
                m.miss = true;
            }
        }
    }
}
