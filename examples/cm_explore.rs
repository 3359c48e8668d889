//! Ratio and coding speed of a preset built from parameters, for choosing
//! presets: `cm_explore key=value... -- FILE...` starts from preset 3 and
//! sets `orders=2,3,4`, `words`, `tokens`, `line_prefix`, `records`,
//! `columns`, `line_column`, `class_set`, `apm_order2`, `apm_match`,
//! `single`, `decay` (0 or 1), `S`, `R`, `m`, `maxlog`. Prints each file's
//! payload size and the encoder's speed (fastest of `REPS`, default 1).
use std::time::Instant;
fn main() {
    let mut p = lza::codecs::cm::TEXT;
    let mut files = Vec::new();
    let mut rest = false;
    for a in std::env::args().skip(1) {
        if rest {
            files.push(a);
            continue;
        }
        if a == "--" {
            rest = true;
            continue;
        }
        let (k, v) = a.split_once('=').expect("key=value");
        let b = v == "1";
        let n: i64 = v.parse().unwrap_or(0);
        match k {
            "orders" => {
                let o: Vec<u32> = v.split(',').map(|s| s.parse().unwrap()).collect();
                p.orders = Box::leak(o.into_boxed_slice());
            }
            "words" => p.words = b,
            "tokens" => p.tokens = b,
            "line_prefix" => p.line_prefix = b,
            "records" => p.records = b,
            "columns" => p.columns = b,
            "line_column" => p.line_column = b,
            "class_set" => p.class_set = b,
            "apm_order2" => p.apm_order2 = b,
            "apm_match" => p.apm_match = b,
            "single" => p.single_mixer = b,
            "decay" => p.mixer_decay = b,
            "S" => p.table_shift = n as u32,
            "R" => p.mixer_rate = n as i32,
            "m" => p.match_min = n as usize,
            "maxlog" => p.max_table_log = n as u32,
            _ => panic!("unknown key {k}"),
        }
    }
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let (mut total, mut secs, mut bytes) = (0usize, 0f64, 0usize);
    for f in files {
        let mut data = std::fs::read(&f).unwrap();
        data.truncate(2 << 20);
        let mut te = f64::MAX;
        let mut n = 0;
        for _ in 0..reps {
            let t = Instant::now();
            n = lza::codecs::cm::encode(&data, p).len();
            te = te.min(t.elapsed().as_secs_f64());
        }
        total += n;
        secs += te;
        bytes += data.len();
        println!(
            "{f}: {} -> {n} bpb {:.4} enc {:.3} MB/s",
            data.len(),
            8.0 * n as f64 / data.len() as f64,
            data.len() as f64 / te / 1e6
        );
    }
    println!("total {total} B, {:.3} MB/s", bytes as f64 / secs / 1e6);
}
