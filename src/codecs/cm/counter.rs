//! Counters (format-spec 8.2): an adaptive probability in a `u32`, 22 bits
//! of P(1) and 10 bits of how often it was updated, which sets its rate.
//! The direct tables, the state maps and the match map are made of them.

use super::tables::{RATES, STRETCH};

/// Counter value of a context never seen: p = 1/2, count 0.
pub(super) const INIT: u32 = 1 << 31;

/// Moves counter `c` towards `bit` at the rate of its count, and counts.
#[inline(always)]
pub(super) fn update(c: &mut u32, bit: u32) {
    let n = *c & 1023;
    let p = (*c >> 10) as i64;
    let target = ((bit << 22) - bit) as i64;
    let np = p + (((target - p) * RATES[n as usize] as i64) >> 16);
    *c = ((np as u32) << 10) | (n + (n < 1023) as u32);
}

/// Counter `c`'s input to the mixer: the stretch of its probability.
#[inline(always)]
pub(super) fn stretch(c: u32) -> i32 {
    STRETCH[(c >> 20) as usize] as i32
}
