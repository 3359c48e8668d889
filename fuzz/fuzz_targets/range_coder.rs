//! The range coder and frequency tables of format-spec 7.4-7.5: arbitrary
//! symbols under arbitrary tables (from arbitrary logits, or normalised
//! arbitrary weights) round-trip exactly, every table has all frequencies
//! >= 1 summing to TOTAL, and arbitrary bytes decoded against a table end
//! cleanly (a symbol or an error, never a panic or a read past the end).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lza::codecs::testutil::{freqs_from_logits, RangeDecoder, RangeEncoder, TOTAL};

#[derive(Arbitrary, Debug)]
enum Table {
    Logits(Box<[f32; 256]>),
    Weights(Box<[u16; 256]>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    tables: Vec<Table>,
    symbols: Vec<u8>,
    garbage: Vec<u8>,
    garbage_symbols: u16,
}

/// A valid table: every frequency >= 1, sum TOTAL.
fn table(t: &Table) -> [u32; 256] {
    match t {
        Table::Logits(l) => {
            let mut l = **l;
            // Finite, and within what a valid model can produce (weights
            // |w| <= 127, scales and biases <= 1e6: |logit| < 1e13).
            for x in l.iter_mut() {
                *x = if x.is_finite() {
                    x.clamp(-1e13, 1e13)
                } else {
                    0.0
                };
            }
            freqs_from_logits(&l)
        }
        Table::Weights(w) => {
            let sum: u64 = w.iter().map(|&x| x as u64).sum::<u64>().max(1);
            let mut f = [1u32; 256];
            for v in 0..256 {
                f[v] += (w[v] as u64 * (TOTAL as u64 - 256) / sum) as u32;
            }
            let s: u32 = f.iter().sum();
            let am = (0..256)
                .max_by_key(|&v| (f[v], std::cmp::Reverse(v)))
                .unwrap();
            f[am] += TOTAL - s;
            f
        }
    }
}

fuzz_target!(|input: Input| {
    let tables: Vec<[u32; 256]> = input.tables.iter().take(8).map(table).collect();
    for f in &tables {
        assert!(f.iter().all(|&x| x >= 1), "a zero frequency: {f:?}");
        assert_eq!(f.iter().sum::<u32>(), TOTAL, "table does not sum to TOTAL");
    }
    let Some(first) = tables.first() else { return };
    let pick = |i: usize| &tables[i % tables.len()];

    // Round trip.
    let symbols = &input.symbols[..input.symbols.len().min(1 << 14)];
    let mut enc = RangeEncoder::new();
    for (i, &s) in symbols.iter().enumerate() {
        enc.encode_symbol(pick(i), s);
    }
    let payload = enc.finish();
    assert_eq!(payload[0], 0, "first payload byte must be 0");
    let mut dec = RangeDecoder::new(&payload).expect("a fresh payload starts a decoder");
    for (i, &s) in symbols.iter().enumerate() {
        assert_eq!(dec.decode_symbol(pick(i)).expect("decode"), s, "symbol {i}");
    }
    dec.finish().expect("every payload byte consumed");

    // Arbitrary bytes against the first table end cleanly.
    if let Ok(mut dec) = RangeDecoder::new(&input.garbage) {
        for i in 0..input.garbage_symbols as usize {
            match dec.decode_symbol(first) {
                Ok(_) => assert_eq!(dec.symbols(), i + 1),
                Err(_) => break,
            }
            assert!(dec.position() <= input.garbage.len());
        }
        let _ = dec.finish();
    }
});
