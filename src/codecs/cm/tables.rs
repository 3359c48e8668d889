//! Fixed-point logistic functions (format-spec 8.2), built at compile time
//! from integers only, so that every platform has the same tables.

/// `squash(x)` at `x = -2048 + 128 i`, `i = 0..=32`: `round(65536 / (1 +
/// e^(-x/256)))`. Everything else is interpolated from these 33 integers.
const SQUASH_KNOTS: [i32; 33] = [
    22, 36, 60, 98, 162, 267, 439, 720, 1179, 1921, 3108, 4971, 7812, 11955, 17625, 24743, 32768,
    40793, 47911, 53581, 57724, 60565, 62428, 63615, 64357, 64816, 65097, 65269, 65374, 65438,
    65476, 65500, 65514,
];

/// The logistic function: stretch domain (`x / 256` is the log-odds,
/// clamped to `[-2047, 2047]`) to a 16-bit probability in `[22, 65514]`.
#[inline(always)]
pub const fn squash(x: i32) -> i32 {
    let x = if x > 2047 {
        2047
    } else if x < -2047 {
        -2047
    } else {
        x
    };
    let w = x & 127;
    let i = ((x >> 7) + 16) as usize;
    (SQUASH_KNOTS[i] * (128 - w) + SQUASH_KNOTS[i + 1] * w + 64) >> 7
}

const fn build_stretch() -> [i16; 4096] {
    // stretch(p) = the smallest x with squash(x) >= p (12-bit p), an
    // inverse of squash that is exact in integers.
    let mut t = [0i16; 4096];
    let mut pi = 0usize;
    let mut x = -2047i32;
    while x <= 2047 {
        let v = (squash(x) >> 4) as usize;
        let mut j = pi;
        while j <= v {
            t[j] = x as i16;
            j += 1;
        }
        if v + 1 > pi {
            pi = v + 1;
        }
        x += 1;
    }
    while pi < 4096 {
        t[pi] = 2047;
        pi += 1;
    }
    t
}

/// `STRETCH[p]`: log-odds (times 256) of the 12-bit probability `p`.
pub static STRETCH: [i16; 4096] = build_stretch();

/// Stretch of a 16-bit probability.
#[inline(always)]
pub fn stretch16(p: u32) -> i32 {
    STRETCH[(p >> 4) as usize] as i32
}

const fn build_rates() -> [u32; 1024] {
    let mut t = [0u32; 1024];
    let mut n = 0;
    while n < 1024 {
        // 1 / (n + 1.5) in 16 bits
        t[n] = 131072 / (2 * n as u32 + 3);
        n += 1;
    }
    t
}

/// Adaptation rate of a counter seen `n` times: `65536 / (n + 1.5)`.
pub static RATES: [u32; 1024] = build_rates();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_is_monotone_and_symmetric() {
        let mut prev = 0;
        for x in -2047..=2047 {
            let s = squash(x);
            assert!(s >= prev, "x={x}");
            assert!((1..=65535).contains(&s));
            // symmetric within rounding
            assert!((s + squash(-x) - 65536).abs() <= 1, "x={x}");
            prev = s;
        }
        assert_eq!(squash(0), 32768);
    }

    #[test]
    fn stretch_inverts_squash() {
        for x in -2047..=2047 {
            let p = squash(x) >> 4;
            let y = STRETCH[p as usize] as i32;
            assert!(squash(y) >> 4 >= p);
            assert!(y <= x, "x={x} y={y}");
        }
        assert_eq!(STRETCH[2048], 0);
    }
}
