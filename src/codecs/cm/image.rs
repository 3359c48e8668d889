//! The image model of preset 6 (format-spec 8.8): contexts for 16-bit
//! little-endian samples from predictions of each sample by its
//! neighbours, and the mixer and APM selectors those predictions give.

use super::contexts::hash2;

/// Image contexts of preset 6.
pub(super) const IMAGE_CONTEXTS: usize = 14;

/// Where a chunk's 16-bit little-endian samples lie (format-spec 8.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    /// Samples per row, at least 2.
    pub width: u16,
    /// Offset of the first sample's first byte: 0 or 1.
    pub first: u8,
}

/// The image model's state at a byte boundary: what the predictions of
/// the current sample select besides the contexts.
pub(super) struct ImageModel {
    image: Image,
    /// Mixer set c's selector: the byte's half and the local texture.
    sel: usize,
    /// Contexts of APM stages 2 and 4: bytes of two predictions.
    apm2: usize,
    apm4: usize,
}

impl ImageModel {
    pub(super) fn new(image: Image) -> ImageModel {
        debug_assert!(image.width >= 2 && image.first <= 1);
        ImageModel {
            image,
            sel: 0,
            apm2: 0,
            apm4: 0,
        }
    }

    /// Weight set c's selector (`sel` of 8.8).
    #[inline(always)]
    pub(super) fn mixer_select(&self) -> usize {
        self.sel
    }

    /// `A2`'s context (`ap2` of 8.8).
    #[inline(always)]
    pub(super) fn apm2(&self) -> usize {
        self.apm2
    }

    /// `A4`'s context (`ap4` of 8.8).
    #[inline(always)]
    pub(super) fn apm4(&self) -> usize {
        self.apm4
    }

    /// Sample `i` of the image (0 for `i < 0`); only samples before the
    /// current one are read.
    #[inline(always)]
    fn sample(&self, hist: &[u8], i: isize) -> i32 {
        if i < 0 {
            return 0;
        }
        let at = self.image.first as usize + 2 * i as usize;
        hist[at] as i32 | (hist[at + 1] as i32) << 8
    }

    /// The median predictor (LOCO-I) of sample `i` from its neighbours.
    #[inline(always)]
    fn median(&self, hist: &[u8], i: isize) -> i32 {
        let w = self.image.width as isize;
        let (a, b, c) = (
            self.sample(hist, i - 1),
            self.sample(hist, i - w),
            self.sample(hist, i - w - 1),
        );
        if c >= a.max(b) {
            a.min(b)
        } else if c <= a.min(b) {
            a.max(b)
        } else {
            a + b - c
        }
    }

    /// The 14 image contexts (format-spec 8.8) after the bytes `hist`,
    /// into `ctx`, and the selectors.
    pub(super) fn contexts(&mut self, hist: &[u8], ctx: &mut [u64]) {
        let img = self.image;
        let pos = hist.len();
        let first = img.first as usize;
        if pos < first {
            for (j, c) in ctx[..IMAGE_CONTEXTS].iter_mut().enumerate() {
                *c = hash2(pos as u64, 0x1000 + j as u64);
            }
            self.sel = 0;
            self.apm2 = 0;
            self.apm4 = 0;
            return;
        }
        let half = (pos - first) & 1;
        let i = ((pos - first) >> 1) as isize;
        let w = img.width as isize;
        let s = |d: isize| self.sample(hist, i - d);
        let (wv, n, nw, ne, ww, nn) = (s(1), s(w), s(w + 1), s(w - 1), s(2), s(2 * w));
        let grad = (wv + n - nw).clamp(0, 65535);
        let med = self.median(hist, i);
        let av = (wv + ne + 1) >> 1;
        let g2 = (wv + ne - n).clamp(0, 65535);
        let nv = (2 * n - nn).clamp(0, 65535);
        let wv2 = (2 * wv - ww).clamp(0, 65535);
        let mean4 = (wv + n + ne + nw + 2) >> 2;
        let err_w = wv - self.median(hist, i - 1);
        let err_n = n - self.median(hist, i - w);
        let wcorr = (med + err_w / 2).clamp(0, 65535);
        let ncorr = (med + err_n / 2).clamp(0, 65535);
        // sign and magnitude class of an error
        let eq = |e: i32| -> u64 {
            ((32 - e.unsigned_abs().leading_zeros()) << 1) as u64 | (e < 0) as u64
        };
        let tex = ((wv - nw).abs() + (n - nw).abs() + (n - ne).abs()) as u32;
        let tq = (32 - tex.leading_zeros()) as u64;
        self.sel = half << 4 | tq.min(15) as usize;
        let v: [(u64, u64); IMAGE_CONTEXTS];
        if half == 0 {
            // the low byte: predictions at full precision
            let q = |p: i32| p as u64;
            self.apm2 = (med & 0xFF) as usize;
            self.apm4 = (wcorr & 0xFF) as usize;
            v = [
                (q(med), 0),
                (q(grad), 0),
                (q(wv >> 2) << 16 | q(n >> 2), 0),
                (q(av), 0),
                (q(g2), tq),
                (q(med >> 2), tq),
                (q(nv >> 1) << 16 | q(wv2 >> 1), 0),
                (q(mean4), 0),
                (q(wcorr), 0),
                (q(med), eq(err_w)),
                (q(n >> 1) << 16 | q(ne >> 1), 0),
                (q(wv >> 1) << 16 | q(nw >> 1), 0),
                (q(ncorr), 0),
                (q((wv + n) >> 1), eq(err_n)),
            ];
        } else {
            // the high byte, given the low byte l: the high byte that
            // brings each prediction nearest
            let l = hist[pos - 1] as i32;
            let eh = |p: i32| ((p - l + 128) >> 8).clamp(0, 255) as u64;
            let (l, lq) = (l as u64, (l >> 4) as u64);
            self.apm2 = eh(med) as usize;
            self.apm4 = eh(wcorr) as usize;
            v = [
                (eh(med) << 8 | lq, 0),
                (eh(grad) << 8 | lq, 0),
                (eh(wv) << 8 | eh(n), 0),
                (eh(av) << 8 | l, 0),
                (eh(g2), tq),
                (eh(med), tq),
                (eh(nv) << 8 | eh(wv2), 0),
                (eh(mean4) << 8 | lq, 0),
                (eh(wcorr) << 8 | lq, 0),
                (eh(med) << 8 | l, eq(err_w)),
                (eh(n) << 8 | eh(ne), lq),
                (eh(wv) << 8 | eh(nw), lq),
                (eh(ncorr) << 8 | lq, 0),
                (eh((wv + n) >> 1) << 8 | l, eq(err_n)),
            ];
        }
        let salt = 0x2000 + 32 * half as u64;
        for (j, &(a, b)) in v.iter().enumerate() {
            ctx[j] = hash2(a | b << 40, salt + j as u64);
        }
    }
}
