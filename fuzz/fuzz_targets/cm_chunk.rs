//! Context-mixing chunk payloads (format-spec section 8), without the
//! language model. Input layout (plain bytes, so that seeds are payloads):
//!
//! - byte 0 bit 7 clear, **decode**: bytes 1-2 are `raw_len` (u16 LE, so
//!   at most 64 KiB), the rest is a payload. `lza::cm::decode` must not
//!   panic; a success is exactly `raw_len` bytes; an unknown preset id or
//!   the model flag (bit 7) is an error (the x86 flag, bit 6, is not).
//! - byte 0 bit 7 set, **round trip**: preset `(byte 0 & 0x1F) % 3` (fast,
//!   normal, with-model's contexts), the rest is text; with bit 5 set, after
//!   the x86 filter. `encode` (or `encode_x86`) then `decode` gives the text
//!   back; the payload starts with the preset id (and the x86 flag).
//!   With bit 6 also set, the payload is damaged too: cut by one byte it is
//!   `Truncated`, with a byte appended `Trailing(1)`, and with one byte
//!   flipped (where the text's hash says) it decodes to something or an
//!   error, never a panic, and a success is exactly the text's length.
//!
//! A predictor costs a few milliseconds to set up under ASan (its tables,
//! 4 MiB of APM among them, whatever the chunk's length), so each input
//! builds as few as it can: the damage checks are opt-in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lza::cm::{decode, encode, encode_x86, CmError, Preset, FLAG_LM, FLAG_X86};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 == 0 {
        if rest.len() < 2 {
            return;
        }
        let raw_len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let payload = &rest[2..];
        let r = decode(payload, raw_len);
        match payload.first() {
            None => assert_eq!(r, Err(CmError::Empty)),
            Some(&b) if Preset::from_id(b & !(FLAG_LM | FLAG_X86)).is_none() => {
                assert_eq!(r, Err(CmError::BadPreset(b)))
            }
            Some(&b) if b & FLAG_LM != 0 => assert_eq!(r, Err(CmError::NeedsModel(b))),
            Some(_) => {
                if let Ok(out) = &r {
                    assert_eq!(out.len(), raw_len, "decoded length differs from raw_len");
                }
            }
        }
        return;
    }
    let preset = Preset::from_id((mode & 0x1F) % 3).expect("ids 0..=2 exist");
    let text = rest;
    let x86 = mode & 0x20 != 0;
    let c = if x86 {
        encode_x86(text, preset)
    } else {
        encode(text, preset)
    };
    assert_eq!(
        c[0],
        preset.id | if x86 { FLAG_X86 } else { 0 },
        "preset byte"
    );
    assert!(
        c.len() >= 5,
        "a payload has the preset byte and the 4-byte flush"
    );
    let back = decode(&c, text.len()).expect("round trip");
    assert!(back == text, "round trip gives other bytes");
    if mode & 0x40 == 0 {
        return;
    }
    assert_eq!(
        decode(&c[..c.len() - 1], text.len()),
        Err(CmError::Truncated)
    );
    let mut long = c.clone();
    long.push(mode);
    assert_eq!(decode(&long, text.len()), Err(CmError::Trailing(1)));
    // One coded byte flipped (not the preset byte).
    let h = text.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    });
    let mut bad = c.clone();
    let at = 1 + (h as usize % (c.len() - 1));
    bad[at] ^= 1 << (h >> 61);
    // A payload is canonical (spec 8.3: the flush is checked too), so no
    // other payload decodes to the same bytes.
    if let Ok(out) = decode(&bad, text.len()) {
        assert_eq!(out.len(), text.len());
        assert!(
            out != text,
            "a damaged payload decoded to the original bytes"
        );
    }
});
