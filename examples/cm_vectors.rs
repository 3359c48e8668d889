//! Test vectors for `train/cm_ref.py` (format-spec section 8, no language model).
//!
//! `cargo run --release --example cm_vectors -- encode PRESET_ID FILE OUT`
//!     writes `lza::codecs::cm::encode(FILE, preset)` (preset byte + coded bytes) to OUT.
//! `cargo run --release --example cm_vectors -- encode-x86 PRESET_ID FILE OUT`
//!     writes `lza::codecs::cm::encode_x86(FILE, preset)` (the x86 filter of section 8.7,
//!     then the coder; preset byte with bit 6 set) to OUT, as `cm_ref.py encode-x86`.
//! `cargo run --release --example cm_vectors -- encode-image 6 FILE OUT WIDTH FIRST`
//!     writes `lza::codecs::cm::encode_image(FILE, Image { WIDTH, FIRST })` (preset 6,
//!     section 8.8) to OUT, as `cm_ref.py encode-image`.
//! `cargo run --release --example cm_vectors -- probs PRESET_ID FILE [N]`
//!     prints "byte bitpos p" for each bit of the first N bytes (default all),
//!     from a `Predictor` sized for those N bytes, as `cm_ref.py probs` does.
use lza::codecs::cm::{Predictor, Preset};
use std::io::Write;
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: cm_vectors encode PRESET_ID FILE OUT | encode-x86 PRESET_ID FILE OUT \
                 | encode-image 6 FILE OUT WIDTH FIRST | probs PRESET_ID FILE [N]";
    let id: u8 = args.get(1).expect(usage).parse().expect("preset id");
    let preset = Preset::from_id(id).expect("unknown preset id");
    let data = std::fs::read(args.get(2).expect(usage)).unwrap();
    match args[0].as_str() {
        "encode" => std::fs::write(
            args.get(3).expect(usage),
            lza::codecs::cm::encode(&data, preset),
        )
        .unwrap(),
        "encode-x86" => std::fs::write(
            args.get(3).expect(usage),
            lza::codecs::cm::encode_x86(&data, preset),
        )
        .unwrap(),
        "encode-image" => {
            let image = lza::codecs::cm::Image {
                width: args.get(4).expect(usage).parse().expect("width"),
                first: args.get(5).expect(usage).parse().expect("first"),
            };
            std::fs::write(
                args.get(3).expect(usage),
                lza::codecs::cm::encode_image(&data, image),
            )
            .unwrap()
        }
        "probs" => {
            let n: usize = args
                .get(3)
                .map(|s| s.parse().unwrap())
                .unwrap_or(data.len())
                .min(data.len());
            let mut pr = Predictor::new(preset, n, false);
            let out = std::io::stdout();
            let mut out = std::io::BufWriter::new(out.lock());
            for (i, &byte) in data[..n].iter().enumerate() {
                for k in (0..8).rev() {
                    let bit = (byte >> k) as u32 & 1;
                    writeln!(out, "{} {} {}", i, 7 - k, pr.p()).unwrap();
                    pr.update(bit);
                }
            }
        }
        _ => panic!("{usage}"),
    }
}
