//! One batched model step (format-spec 7.2) for a slice of slots.
//!
//! Slot `b` owns `h[b*ld .. (b+1)*ld]` (f32, `ld = L*d`, layer after layer)
//! and `q[b*ld .. (b+1)*ld]` (its quantization `q(h)`, i8). Each slot is
//! computed on its own: integer sums are exact and every float operation is
//! applied per element in the order of the spec, so the result for a slot
//! does not depend on which other slots share the batch, on the batch size or
//! on the thread that runs it.

#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use super::kernels::{self, KernelPath};
use crate::codecs::lm::math::{quantize, sigmoid, tanh};
use crate::codecs::lm::model::Model;
use crate::codecs::lm::rangecoder::freqs_from_logits_inline;

/// Per-thread work buffers for up to `cap` slots.
pub struct Scratch {
    cap: usize,
    acc_i: Vec<i32>,
    acc_h: Vec<i32>,
    acc_o: Vec<i32>,
    /// Frequency tables of the last step, one per slot.
    pub freqs: Vec<[u32; 256]>,
}

impl Scratch {
    /// Buffers for `cap` slots of `model`.
    pub fn new(model: &Model, cap: usize) -> Scratch {
        let d3 = 3 * model.dim();
        Scratch {
            cap,
            acc_i: vec![0; cap * d3],
            acc_h: vec![0; cap * d3],
            acc_o: vec![0; cap * 256],
            freqs: vec![[0; 256]; cap],
        }
    }

    /// Most slots one [`step`] call may advance.
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

/// Advances `inputs.len()` slots by one symbol: `inputs[b]` is the input
/// symbol of slot `b` (256 = start). Updates `h` and `q` and leaves the
/// frequency table of each slot's next symbol in `scratch.freqs[b]`.
pub fn step(
    model: &Model,
    path: KernelPath,
    inputs: &[u16],
    h: &mut [f32],
    q: &mut [i8],
    scratch: &mut Scratch,
) {
    let nb = inputs.len();
    if nb == 0 {
        return;
    }
    assert!(nb <= scratch.cap, "scratch too small");
    let d = model.dim();
    let d3 = 3 * d;
    let ld = model.layers() * d;
    assert!(h.len() >= nb * ld && q.len() >= nb * ld);
    let (h, q) = (&mut h[..nb * ld], &mut q[..nb * ld]);
    for (l, layer) in model.layer_weights().iter().enumerate() {
        let acc_h = &mut scratch.acc_h[..nb * d3];
        // gh from the previous state q(h[l]) (not yet overwritten)
        kernels::matmul_i8(path, &layer.w_hh.w, &q[l * d..], ld, nb, acc_h, d3);
        layer_cells(
            model,
            path,
            l,
            inputs,
            acc_h,
            &mut scratch.acc_i[..nb * d3],
            h,
            q,
            ld,
        );
    }
    head(model, path, q, nb, scratch);
}

/// The head of [`step`] alone: the frequency tables of `nb` slots' next
/// symbols from their states `q` (stride layers x dim), into
/// `scratch.freqs`.
pub fn head(model: &Model, path: KernelPath, q: &[i8], nb: usize, scratch: &mut Scratch) {
    let ld = model.layers() * model.dim();
    let head = model.head();
    let acc_o = &mut scratch.acc_o[..nb * 256];
    kernels::matmul_i8(path, &head.w, &q[..nb * ld], ld, nb, acc_o, 256);
    kernels::head_freqs(path, nb, acc_o, &head.m, &head.b, &mut scratch.freqs[..nb]);
}

/// The cells of layer `l` for `inputs.len()` slots (state stride `ld`),
/// given its recurrent products `acc_h` (`W_hh q(h[l])`, 3d per slot): the
/// input pre-activations come from the symbols (layer 0) or from `W_ih
/// q(h_new[l - 1])` (computed into `acc_i`); `h[l]` and `q[l]` are updated.
pub(super) fn layer_cells(
    model: &Model,
    path: KernelPath,
    l: usize,
    inputs: &[u16],
    acc_h: &[i32],
    acc_i: &mut [i32],
    h: &mut [f32],
    q: &mut [i8],
    ld: usize,
) {
    let (nb, d) = (inputs.len(), model.dim());
    let d3 = 3 * d;
    let layer = &model.layer_weights()[l];
    match &layer.w_ih {
        None => kernels::gru_layer0(
            path,
            d,
            nb,
            inputs,
            model.embed(),
            acc_h,
            &layer.w_hh.m,
            &layer.w_hh.b,
            &mut h[l * d..],
            &mut q[l * d..],
            ld,
        ),
        Some(w_ih) => {
            // gi from q(h_new[l-1]), already updated
            kernels::matmul_i8(path, &w_ih.w, &q[(l - 1) * d..], ld, nb, acc_i, d3);
            kernels::gru_layer(
                path,
                d,
                nb,
                acc_i,
                &w_ih.m,
                &w_ih.b,
                acc_h,
                &layer.w_hh.m,
                &layer.w_hh.b,
                &mut h[l * d..],
                &mut q[l * d..],
                ld,
            );
        }
    }
}

/// Units of a GRU layer updated together by [`cell`]: its work arrays
/// (the r and z gates of a block, the input pre-activations) are sized for
/// a block, not for the largest `lza.dim`, whose zeroing (20 KB a layer
/// and step) was 2% of a two-thread decode's CPU time (calgary/book1, AMD
/// EPYC Zen 4, perf). A divisor of every valid `lza.dim` (multiples of
/// 32). `lm_speed` d=256 L=2 on the same VM, samples in the cells (and
/// memset) per sample in the products: `avx512` batch 1 0.220 with whole
/// layers, 0.210 in blocks; batch 256 0.455 and 0.436; `avx2` batch 256
/// 0.251 and 0.256.
const CELL_BLOCK: usize = 32;

/// The GRU update of one layer and one slot given its input pre-activations
/// `gi` (`3d`, gates r, z, n), spec order:
/// `gh = acc*m + b; r = sigmoid(gi_r + gh_r); z = sigmoid(gi_z + gh_z);
/// n = tanh(gi_n + r*gh_n); h' = (1 - z)*n + z*h`; then `q = quantize(h')`.
///
/// Per block of [`CELL_BLOCK`] units, two loops: r and z of the block's
/// units first (independent sigmoids), then n, h' and q. In one loop each
/// vector iteration is a chain of three `exp` and three divisions with r
/// feeding n, and out-of-order execution overlaps few iterations of it.
/// Same operations on the same values per element, so the same bits. AMD
/// EPYC (Zen 4, family 25 model 17), lm_speed d=256 L=2 batch 256, `avx2`
/// path: 16% fewer CPU-time samples in the GRU cells than with one loop.
#[inline(always)]
fn cell(
    d: usize,
    gi: impl Fn(usize, &mut [f32; CELL_BLOCK]),
    acc_h: &[i32],
    m_hh: &[f32],
    b_hh: &[f32],
    h: &mut [f32],
    q: &mut [i8],
) {
    const B: usize = CELL_BLOCK;
    debug_assert!(d.is_multiple_of(B));
    let mut rz = [0.0f32; 2 * B];
    let mut g_in = [0.0f32; B];
    for k0 in (0..d).step_by(B) {
        for g in 0..2 {
            let o = g * d + k0;
            gi(o, &mut g_in);
            let (a, m, b) = (&acc_h[o..o + B], &m_hh[o..o + B], &b_hh[o..o + B]);
            let out = &mut rz[g * B..(g + 1) * B];
            for j in 0..B {
                let gh = a[j] as f32 * m[j] + b[j];
                out[j] = sigmoid(g_in[j] + gh);
            }
        }
        let (r, z) = rz.split_at(B);
        let o = 2 * d + k0;
        gi(o, &mut g_in);
        let (a_n, m_n, b_n) = (&acc_h[o..o + B], &m_hh[o..o + B], &b_hh[o..o + B]);
        let (h, q) = (&mut h[k0..k0 + B], &mut q[k0..k0 + B]);
        for k in 0..B {
            let gh_n = a_n[k] as f32 * m_n[k] + b_n[k];
            let n = tanh(g_in[k] + r[k] * gh_n);
            let hn = (1.0 - z[k]) * n + z[k] * h[k];
            h[k] = hn;
            q[k] = quantize(hn);
        }
    }
}

/// Layer 0: `gi = embed[u]`.
#[inline(always)]
pub fn gru_layer0_generic(
    d: usize,
    nb: usize,
    inputs: &[u16],
    embed: &[f32],
    acc_h: &[i32],
    m_hh: &[f32],
    b_hh: &[f32],
    h: &mut [f32],
    q: &mut [i8],
    ld: usize,
) {
    let d3 = 3 * d;
    for b in 0..nb {
        let u = inputs[b] as usize;
        let e = &embed[u * d3..(u + 1) * d3];
        cell(
            d,
            |o, g| g.copy_from_slice(&e[o..o + CELL_BLOCK]),
            &acc_h[b * d3..(b + 1) * d3],
            m_hh,
            b_hh,
            &mut h[b * ld..],
            &mut q[b * ld..],
        );
    }
}

/// Layer >= 1: `gi = acc_i * m_ih + b_ih`.
#[inline(always)]
pub fn gru_layer_generic(
    d: usize,
    nb: usize,
    acc_i: &[i32],
    m_ih: &[f32],
    b_ih: &[f32],
    acc_h: &[i32],
    m_hh: &[f32],
    b_hh: &[f32],
    h: &mut [f32],
    q: &mut [i8],
    ld: usize,
) {
    let d3 = 3 * d;
    let (m_ih, b_ih) = (&m_ih[..d3], &b_ih[..d3]);
    for b in 0..nb {
        let a = &acc_i[b * d3..(b + 1) * d3];
        let gi = |o: usize, g: &mut [f32; CELL_BLOCK]| {
            let (a, m, bi) = (
                &a[o..o + CELL_BLOCK],
                &m_ih[o..o + CELL_BLOCK],
                &b_ih[o..o + CELL_BLOCK],
            );
            for j in 0..CELL_BLOCK {
                g[j] = a[j] as f32 * m[j] + bi[j];
            }
        };
        cell(
            d,
            gi,
            &acc_h[b * d3..(b + 1) * d3],
            m_hh,
            b_hh,
            &mut h[b * ld..],
            &mut q[b * ld..],
        );
    }
}

/// `logits = acc * m + b`, then format-spec 7.4 frequencies.
#[inline(always)]
pub fn head_freqs_generic(nb: usize, acc: &[i32], m: &[f32], b: &[f32], freqs: &mut [[u32; 256]]) {
    let (m, bias) = (&m[..256], &b[..256]);
    for s in 0..nb {
        let a = &acc[s * 256..(s + 1) * 256];
        let mut logits = [0.0f32; 256];
        for j in 0..256 {
            logits[j] = a[j] as f32 * m[j] + bias[j];
        }
        freqs[s] = freqs_from_logits_inline(&logits);
    }
}
