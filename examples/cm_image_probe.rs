//! Probe: the 16-bit image guess and preset 6 against preset 3.
//! `cargo run --release --example cm_image_probe -- FILE...`
//! (env: SKIP_DECODE to only encode).
use std::time::Instant;
fn main() {
    for f in std::env::args().skip(1) {
        let data = std::fs::read(&f).unwrap();
        let t = Instant::now();
        let guess = lza::codecs::cm::guess_image(&data);
        let tg = t.elapsed().as_secs_f64();
        let Some(image) = guess else {
            println!("{f}: no image ({tg:.2} s)");
            continue;
        };
        let t = Instant::now();
        let p = lza::codecs::cm::encode_image(&data, image);
        let te = t.elapsed().as_secs_f64();
        let plain = if std::env::var("PLAIN").is_ok() {
            format!(
                " preset 3 {}",
                lza::codecs::cm::encode(&data, lza::codecs::cm::TEXT).len()
            )
        } else {
            String::new()
        };
        let dec = if std::env::var("SKIP_DECODE").is_ok() {
            String::new()
        } else {
            let t = Instant::now();
            assert_eq!(lza::codecs::cm::decode(&p, data.len()).unwrap(), data);
            format!(
                " dec {:.2} MB/s",
                data.len() as f64 / t.elapsed().as_secs_f64() / 1e6
            )
        };
        println!(
            "{f}: {image:?} ({tg:.2} s) {} -> {} bpb {:.4} enc {:.2} MB/s{dec}{plain}",
            data.len(),
            p.len(),
            8.0 * p.len() as f64 / data.len() as f64,
            data.len() as f64 / te / 1e6
        );
    }
}
