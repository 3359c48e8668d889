//! Binary arithmetic coder for the context-mixing codec (format-spec 8.3).
//!
//! The classic carry-less 32-bit binary coder of the PAQ family: the range
//! `[x1, x2]` is split in proportion to `P(bit = 1)` given in 16 bits, and
//! leading bytes are shifted out as soon as `x1` and `x2` agree on them.
//! Written here (about 80 lines) rather than taken from a crate: the
//! split rule, the flush and the strict end-of-payload checks are part of
//! lza's format, and no crate pins them down.

/// Encoder: bits in, bytes out.
#[derive(Debug)]
pub struct Encoder {
    x1: u32,
    x2: u32,
    out: Vec<u8>,
}

impl Encoder {
    /// An empty encoder with room for `cap` output bytes.
    pub fn with_capacity(cap: usize) -> Encoder {
        Encoder {
            x1: 0,
            x2: u32::MAX,
            out: Vec::with_capacity(cap),
        }
    }

    /// Code `bit` with `p1 = P(bit = 1) * 65536`, `1 <= p1 <= 65535`.
    #[inline(always)]
    pub fn encode(&mut self, bit: u32, p1: u32) {
        debug_assert!((1..=65535).contains(&p1));
        let xmid = self.x1 + (((self.x2 - self.x1) as u64 * p1 as u64) >> 16) as u32;
        if bit != 0 {
            self.x2 = xmid;
        } else {
            self.x1 = xmid + 1;
        }
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.out.push((self.x2 >> 24) as u8);
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 0xFF;
        }
    }

    /// Flush: the four bytes of `x1`, so that the decoder ends exactly at
    /// the end of the payload.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&self.x1.to_be_bytes());
        self.out
    }
}

/// Decoder: bytes in, bits out. Reading past the end of the payload yields
/// zero bytes and is reported by [`Decoder::finish`].
#[derive(Debug)]
pub struct Decoder<'a> {
    x1: u32,
    x2: u32,
    x: u32,
    data: &'a [u8],
    pos: usize,
    overrun: bool,
}

impl<'a> Decoder<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Decoder<'a> {
        let mut d = Decoder {
            x1: 0,
            x2: u32::MAX,
            x: 0,
            data,
            pos: 0,
            overrun: false,
        };
        for _ in 0..4 {
            d.x = (d.x << 8) | d.next_byte();
        }
        d
    }

    #[inline(always)]
    fn next_byte(&mut self) -> u32 {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b as u32
            }
            None => {
                self.overrun = true;
                0
            }
        }
    }

    /// Decode one bit coded with `p1` (as in [`Encoder::encode`]).
    #[inline(always)]
    pub fn decode(&mut self, p1: u32) -> u32 {
        debug_assert!((1..=65535).contains(&p1));
        let xmid = self.x1 + (((self.x2 - self.x1) as u64 * p1 as u64) >> 16) as u32;
        let bit = (self.x <= xmid) as u32;
        if bit != 0 {
            self.x2 = xmid;
        } else {
            self.x1 = xmid + 1;
        }
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 0xFF;
            self.x = (self.x << 8) | self.next_byte();
        }
        bit
    }

    /// Whether the decoder has read past the end of the payload.
    pub fn overrun(&self) -> bool {
        self.overrun
    }

    /// Ends decoding: `Ok` when exactly the whole payload was read and its
    /// last four bytes are the coder's final `x1`, as the encoder writes
    /// them (so every chunk has exactly one payload).
    pub fn finish(&self) -> Result<(), End> {
        if self.overrun {
            Err(End::Truncated)
        } else if self.pos != self.data.len() {
            Err(End::Trailing(self.data.len() - self.pos))
        } else if self.x != self.x1 {
            Err(End::BadFlush)
        } else {
            Ok(())
        }
    }
}

/// Why a payload did not end as the encoder ends one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A byte was needed after the end.
    Truncated,
    /// Bytes were left over.
    Trailing(usize),
    /// The last four bytes are not the final `x1`.
    BadFlush,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(x: &mut u64) -> u32 {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*x >> 33) as u32
    }

    #[test]
    fn round_trip_random_bits_and_probabilities() {
        let mut s = 7u64;
        let items: Vec<(u32, u32)> = (0..200_000)
            .map(|_| {
                let p = match lcg(&mut s) % 4 {
                    0 => 1,
                    1 => 65535,
                    _ => 1 + lcg(&mut s) % 65535,
                };
                // bits drawn roughly with probability p, plus surprises
                let bit = ((lcg(&mut s) % 65536) < p) as u32;
                (bit, p)
            })
            .collect();
        let mut e = Encoder::with_capacity(0);
        for &(b, p) in &items {
            e.encode(b, p);
        }
        let out = e.finish();
        let mut d = Decoder::new(&out);
        for (i, &(b, p)) in items.iter().enumerate() {
            assert_eq!(d.decode(p), b, "bit {i}");
        }
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn empty_stream_is_four_bytes_and_strict() {
        let out = Encoder::with_capacity(0).finish();
        assert_eq!(out.len(), 4);
        assert_eq!(Decoder::new(&out).finish(), Ok(()));
        assert_eq!(Decoder::new(&out[..3]).finish(), Err(End::Truncated));
        let mut long = out.clone();
        long.push(0);
        assert_eq!(Decoder::new(&long).finish(), Err(End::Trailing(1)));
        // other flush bytes would decode the same bits: refused
        let mut other = out.clone();
        other[3] ^= 1;
        assert_eq!(Decoder::new(&other).finish(), Err(End::BadFlush));
    }

    #[test]
    fn skewed_bits_cost_little() {
        let mut e = Encoder::with_capacity(0);
        for _ in 0..80_000 {
            e.encode(1, 65535);
        }
        // -log2(65535/65536) * 80000 = 1.76 bits
        assert!(e.finish().len() <= 8);
    }
}
