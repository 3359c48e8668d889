//! The model on the CPU, the first [`StepBackend`]: int8 kernels with
//! run-time path selection (`kernels`), the batched step (`engine`), and
//! the two-thread split of one chain's steps (`pair`, over the hand-off of
//! `handoff`).

pub(crate) mod engine;
pub(crate) mod handoff;
#[allow(unsafe_code)] // SIMD intrinsics, each path checked against `portable`
pub mod kernels;
pub(crate) mod pair;
mod sync;

use super::backend::StepBackend;
use super::model::Model;
use kernels::KernelPath;
use std::sync::Arc;

/// A model computed on the CPU with one kernel path.
#[derive(Debug, Clone)]
pub struct CpuBackend {
    model: Arc<Model>,
    path: KernelPath,
}

impl CpuBackend {
    /// `model` on kernel `path` (which the caller has checked is available).
    pub fn new(model: Arc<Model>, path: KernelPath) -> CpuBackend {
        CpuBackend { model, path }
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The kernel path.
    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// `h` and `q` values per chain: layers x dim.
    fn ld(&self) -> usize {
        self.model.layers() * self.model.dim()
    }
}

/// The state of a batch of chains in host memory: chain `b` owns
/// `h[b*ld..(b+1)*ld]` (f32, layer after layer) and the same range of `q`
/// (its quantization, i8).
#[derive(Debug)]
pub struct CpuChains {
    h: Vec<f32>,
    q: Vec<i8>,
    ld: usize,
}

/// Chains `0..n` of a [`CpuChains`].
#[derive(Debug)]
pub struct CpuPart<'a> {
    h: &'a mut [f32],
    q: &'a mut [i8],
    ld: usize,
}

impl StepBackend for CpuBackend {
    type Chains = CpuChains;
    type Part<'a> = CpuPart<'a>;
    type Scratch = engine::Scratch;

    fn new_chains(&self, cap: usize) -> CpuChains {
        let ld = self.ld();
        CpuChains {
            h: vec![0.0; cap * ld],
            q: vec![0; cap * ld],
            ld,
        }
    }

    fn reset_chain(&self, c: &mut CpuChains, i: usize) {
        let ld = c.ld;
        c.h[i * ld..(i + 1) * ld].fill(0.0);
        c.q[i * ld..(i + 1) * ld].fill(0);
    }

    fn move_chain(&self, c: &mut CpuChains, from: usize, to: usize) {
        let ld = c.ld;
        c.h.copy_within(from * ld..(from + 1) * ld, to * ld);
        c.q.copy_within(from * ld..(from + 1) * ld, to * ld);
    }

    fn part<'a>(&self, c: &'a mut CpuChains, n: usize) -> CpuPart<'a> {
        let ld = c.ld;
        CpuPart {
            h: &mut c.h[..n * ld],
            q: &mut c.q[..n * ld],
            ld,
        }
    }

    fn split_part<'a>(&self, p: Self::Part<'a>, at: usize) -> (Self::Part<'a>, Self::Part<'a>) {
        let ld = p.ld;
        let (h0, h1) = p.h.split_at_mut(at * ld);
        let (q0, q1) = p.q.split_at_mut(at * ld);
        (CpuPart { h: h0, q: q0, ld }, CpuPart { h: h1, q: q1, ld })
    }

    fn new_scratch(&self, cap: usize) -> engine::Scratch {
        engine::Scratch::new(&self.model, cap)
    }

    fn capacity(&self, s: &engine::Scratch) -> usize {
        s.capacity()
    }

    fn step<'s>(
        &self,
        p: &mut CpuPart<'_>,
        first: usize,
        inputs: &[u16],
        s: &'s mut engine::Scratch,
    ) -> &'s [[u32; 256]] {
        let ld = p.ld;
        engine::step(
            &self.model,
            self.path,
            inputs,
            &mut p.h[first * ld..],
            &mut p.q[first * ld..],
            s,
        );
        &s.freqs[..inputs.len()]
    }
}
