//! The hashed contexts' map (format-spec 8.4, "Tables", "Bit-history
//! states" and "Buckets") and the direct order-0 and order-1 tables.
//!
//! A [`ContextMap`] holds one table of cache lines for all hashed contexts
//! of a chunk. At bit 0 and bit 4 each context picks a bucket of a line for
//! the nibble; a bucket holds the bit-history states of the nibble's binary
//! tree, and a state map per context turns a state into a probability.

use super::counter;
use crate::runtime::mem::table;

/// Most hashed contexts a preset may use (preset 7: 21).
pub(super) const MAX_HASHED: usize = 21;

/// The hash of format-spec 8.4 that every context is made with.
#[inline(always)]
pub(super) fn hash2(a: u64, b: u64) -> u64 {
    let h = (a ^ b.rotate_left(23))
        .wrapping_add(b)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// The context hash of order `o` (bytes) given the last eight bytes `c8`.
#[inline(always)]
pub(super) fn order_context(c8: u64, o: u32) -> u64 {
    let mask = if o >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * o)) - 1
    };
    hash2(c8 & mask, o as u64 + 1)
}

/// The salt of a nibble's buckets: 0 for the first nibble, the partial
/// byte `c0` in the top byte for the second.
#[inline(always)]
pub(super) fn nibble_salt(c0: u32, bitpos: u32) -> u64 {
    if bitpos == 0 { 0 } else { (c0 as u64) << 56 }
}

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

/// Where a context's bucket is: its line and its check byte.
pub(super) type Key = (usize, u8);

/// The hashed contexts of a chunk: their hashes at the current byte
/// boundary (set by the predictor), the table of buckets, each context's
/// bucket for the current nibble and its state map.
pub(super) struct ContextMap {
    /// Buckets of 16 states (slot 0: check).
    ht: Vec<Line>,
    /// Lines, less one.
    mask: usize,
    /// One state map (state -> counter) per context.
    sm: Vec<u32>,
    /// The contexts' hashes.
    ctx: [u64; MAX_HASHED],
    /// Each context's bucket (line * 4 + bucket in the line).
    bucket: [usize; MAX_HASHED],
    /// Number of contexts.
    n: usize,
}

impl ContextMap {
    /// A map of `n` contexts in a table of `2^table_log` bytes.
    pub(super) fn new(n: usize, table_log: u32) -> ContextMap {
        debug_assert!(n <= MAX_HASHED);
        let lines = 1usize << (table_log - 6);
        ContextMap {
            ht: table(lines, Line([[0; 16]; 4])),
            mask: lines - 1,
            sm: (0..n).flat_map(|_| state_map_init()).collect(),
            ctx: [0; MAX_HASHED],
            bucket: [0; MAX_HASHED],
            n,
        }
    }

    /// Number of contexts.
    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.n
    }

    /// The contexts' hashes, to set at a byte boundary.
    #[inline(always)]
    pub(super) fn hashes_mut(&mut self) -> &mut [u64; MAX_HASHED] {
        &mut self.ctx
    }

    /// The contexts' hashes.
    #[inline(always)]
    pub(super) fn hashes(&self) -> [u64; MAX_HASHED] {
        self.ctx
    }

    /// Key of context `i`'s bucket for the nibble of salt `salt`.
    #[inline(always)]
    pub(super) fn key(&self, i: usize, salt: u64) -> Key {
        self.key_of(self.ctx[i], i, salt)
    }

    /// [`ContextMap::key`] of context hash `ctx` as context `i`.
    #[inline(always)]
    pub(super) fn key_of(&self, ctx: u64, i: usize, salt: u64) -> Key {
        let h = hash2(ctx, salt | i as u64);
        ((h >> 20) as usize & self.mask, (h & 0xFF) as u8)
    }

    /// Asks the cache for line `line`.
    #[inline(always)]
    pub(super) fn prefetch(&self, line: usize) {
        crate::runtime::mem::prefetch(&self.ht[line]);
    }

    /// Asks the cache for every context's line for the nibble of salt
    /// `salt`.
    #[inline(always)]
    pub(super) fn prefetch_all(&self, salt: u64) {
        for i in 0..self.n {
            let (line, _) = self.key(i, salt);
            self.prefetch(line);
        }
    }

    /// Every context's key for the nibble of salt `salt`; the lines are
    /// asked of the cache.
    #[inline(always)]
    pub(super) fn keys(&self, salt: u64) -> [Key; MAX_HASHED] {
        let mut keys = [(0usize, 0u8); MAX_HASHED];
        for (i, key) in keys.iter_mut().enumerate().take(self.n) {
            *key = self.key(i, salt);
            self.prefetch(key.0);
        }
        keys
    }

    /// Sets each context's bucket for the nibble of salt `salt`.
    pub(super) fn set_buckets(&mut self, salt: u64) {
        let keys = self.keys(salt);
        self.find_buckets(&keys);
    }

    /// Sets each context's bucket from its key.
    #[inline(always)]
    pub(super) fn find_buckets(&mut self, keys: &[Key; MAX_HASHED]) {
        let mut bucket = [0usize; MAX_HASHED];
        for i in 0..self.n {
            let (line, chk) = keys[i];
            bucket[i] = self.find_bucket(line, chk, &bucket[..i]);
        }
        self.bucket = bucket;
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

    /// The mixer inputs, one a context, at node `nib` of the nibble.
    #[inline(always)]
    pub(super) fn inputs(&self, nib: usize, x: &mut [i32]) {
        for (i, x) in x[..self.n].iter_mut().enumerate() {
            let b = self.bucket[i];
            let st = self.ht[b >> 2].0[b & 3][nib] as usize;
            *x = counter::stretch(self.sm[i * 256 + st]);
        }
    }

    /// Learns `bit` at node `nib`: each context's state map entry and
    /// state.
    #[inline(always)]
    pub(super) fn update(&mut self, nib: usize, bit: u32) {
        for i in 0..self.n {
            let b = self.bucket[i];
            let slot = &mut self.ht[b >> 2].0[b & 3][nib];
            counter::update(&mut self.sm[i * 256 + *slot as usize], bit);
            *slot = NEXT[*slot as usize][bit as usize];
        }
    }
}

/// The direct tables: `T0` by the partial byte, `T1` by the previous byte
/// and the partial byte.
pub(super) struct DirectTables {
    t0: Vec<u32>,
    t1: Vec<u32>,
}

impl DirectTables {
    pub(super) fn new() -> DirectTables {
        DirectTables {
            t0: vec![counter::INIT; 256],
            t1: vec![counter::INIT; 65536],
        }
    }

    /// The two mixer inputs for partial byte `c0` after byte `c1`.
    #[inline(always)]
    pub(super) fn inputs(&self, c0: usize, c1: usize) -> [i32; 2] {
        [
            counter::stretch(self.t0[c0]),
            counter::stretch(self.t1[c1 << 8 | c0]),
        ]
    }

    /// Learns `bit` for partial byte `c0` after byte `c1`.
    #[inline(always)]
    pub(super) fn update(&mut self, c0: usize, c1: usize, bit: u32) {
        counter::update(&mut self.t0[c0], bit);
        counter::update(&mut self.t1[c1 << 8 | c0], bit);
    }
}
