//! Where the model runs: the choice of `--device` and the backend it gives.
//!
//! Every backend returns the same frequency tables bit for bit
//! ([`StepBackend`]'s contract), so the choice changes speed only: an
//! archive made on one device is byte-identical with one made on another,
//! and each extracts the other's.

use super::backend::StepBackend;
use super::cpu::{CpuBackend, CpuChains, CpuPart, engine};
use super::cuda::{CudaBackend, CudaChains, CudaError, CudaPart, CudaScratch};

/// The device asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU kernels.
    #[default]
    Cpu,
    /// GPU 0 through CUDA; an error where none is usable.
    Cuda,
    /// The GPU where one is usable, else the CPU.
    Auto,
}

impl Device {
    /// The names `--device` takes.
    pub const NAMES: [&'static str; 3] = ["cpu", "cuda", "auto"];

    /// The device named `s` (one of [`Device::NAMES`]).
    pub fn parse(s: &str) -> Option<Device> {
        match s {
            "cpu" => Some(Device::Cpu),
            "cuda" => Some(Device::Cuda),
            "auto" => Some(Device::Auto),
            _ => None,
        }
    }
}

/// The model on the device in use.
#[derive(Debug)]
pub enum Backend {
    /// On the CPU.
    Cpu(CpuBackend),
    /// On a GPU (boxed: its weights' handles are large beside the CPU's).
    Cuda(Box<CudaBackend>),
}

/// The chains of a [`Backend`]'s batch.
#[derive(Debug)]
pub enum Chains {
    /// On the CPU.
    Cpu(CpuChains),
    /// On a GPU.
    Cuda(CudaChains),
}

/// Chains of a [`Chains`], borrowed.
pub enum Part<'a> {
    /// On the CPU.
    Cpu(CpuPart<'a>),
    /// On a GPU.
    Cuda(CudaPart<'a>),
}

/// Working memory of a [`Backend`]'s steps.
pub enum Scratch {
    /// On the CPU.
    Cpu(engine::Scratch),
    /// On a GPU.
    Cuda(CudaScratch),
}

const MIXED: &str = "chains of one backend given to another";

impl Backend {
    /// The backend for `device`: on the CPU with `cpu`, on GPU 0, or the
    /// GPU if one is usable and else `cpu` (`Auto`).
    pub fn open(device: Device, cpu: CpuBackend) -> Result<Backend, CudaError> {
        match device {
            Device::Cpu => Ok(Backend::Cpu(cpu)),
            Device::Cuda => Ok(Backend::Cuda(Box::new(CudaBackend::new(
                cpu.model().clone(),
            )?))),
            Device::Auto => match CudaBackend::new(cpu.model().clone()) {
                Ok(g) => Ok(Backend::Cuda(Box::new(g))),
                Err(_) => Ok(Backend::Cpu(cpu)),
            },
        }
    }

    /// The model.
    pub fn model(&self) -> &std::sync::Arc<super::Model> {
        match self {
            Backend::Cpu(b) => b.model(),
            Backend::Cuda(b) => b.model(),
        }
    }

    /// The CPU backend, if that is where the model runs.
    pub fn cpu(&self) -> Option<&CpuBackend> {
        match self {
            Backend::Cpu(b) => Some(b),
            Backend::Cuda(_) => None,
        }
    }

    /// The GPU backend, if that is where the model runs.
    pub fn cuda(&self) -> Option<&CudaBackend> {
        match self {
            Backend::Cpu(_) => None,
            Backend::Cuda(b) => Some(b),
        }
    }

    /// Where the model runs, in words (`cpu (avx2)`, or the GPU's name).
    pub fn describe(&self) -> String {
        match self {
            Backend::Cpu(b) => format!("cpu ({})", b.path().name()),
            Backend::Cuda(b) => format!("cuda ({})", b.device_name()),
        }
    }
}

impl StepBackend for Backend {
    type Chains = Chains;
    type Part<'a> = Part<'a>;
    type Scratch = Scratch;

    fn new_chains(&self, cap: usize) -> Chains {
        match self {
            Backend::Cpu(b) => Chains::Cpu(b.new_chains(cap)),
            Backend::Cuda(b) => Chains::Cuda(b.new_chains(cap)),
        }
    }

    fn reset_chain(&self, c: &mut Chains, i: usize) {
        match (self, c) {
            (Backend::Cpu(b), Chains::Cpu(c)) => b.reset_chain(c, i),
            (Backend::Cuda(b), Chains::Cuda(c)) => b.reset_chain(c, i),
            _ => unreachable!("{MIXED}"),
        }
    }

    fn move_chain(&self, c: &mut Chains, from: usize, to: usize) {
        match (self, c) {
            (Backend::Cpu(b), Chains::Cpu(c)) => b.move_chain(c, from, to),
            (Backend::Cuda(b), Chains::Cuda(c)) => b.move_chain(c, from, to),
            _ => unreachable!("{MIXED}"),
        }
    }

    fn part<'a>(&self, c: &'a mut Chains, n: usize) -> Part<'a> {
        match (self, c) {
            (Backend::Cpu(b), Chains::Cpu(c)) => Part::Cpu(b.part(c, n)),
            (Backend::Cuda(b), Chains::Cuda(c)) => Part::Cuda(b.part(c, n)),
            _ => unreachable!("{MIXED}"),
        }
    }

    fn split_part<'a>(&self, p: Self::Part<'a>, at: usize) -> (Self::Part<'a>, Self::Part<'a>) {
        match (self, p) {
            (Backend::Cpu(b), Part::Cpu(p)) => {
                let (x, y) = b.split_part(p, at);
                (Part::Cpu(x), Part::Cpu(y))
            }
            (Backend::Cuda(b), Part::Cuda(p)) => {
                let (x, y) = b.split_part(p, at);
                (Part::Cuda(x), Part::Cuda(y))
            }
            _ => unreachable!("{MIXED}"),
        }
    }

    fn new_scratch(&self, cap: usize) -> Scratch {
        match self {
            Backend::Cpu(b) => Scratch::Cpu(b.new_scratch(cap)),
            Backend::Cuda(b) => Scratch::Cuda(b.new_scratch(cap)),
        }
    }

    fn capacity(&self, s: &Scratch) -> usize {
        match (self, s) {
            (Backend::Cpu(b), Scratch::Cpu(s)) => b.capacity(s),
            (Backend::Cuda(b), Scratch::Cuda(s)) => b.capacity(s),
            _ => unreachable!("{MIXED}"),
        }
    }

    fn whole_batch(&self) -> bool {
        match self {
            Backend::Cpu(b) => b.whole_batch(),
            Backend::Cuda(b) => b.whole_batch(),
        }
    }

    fn step<'s>(
        &self,
        p: &mut Part<'_>,
        first: usize,
        inputs: &[u16],
        s: &'s mut Scratch,
    ) -> &'s [[u32; 256]] {
        match (self, p, s) {
            (Backend::Cpu(b), Part::Cpu(p), Scratch::Cpu(s)) => b.step(p, first, inputs, s),
            (Backend::Cuda(b), Part::Cuda(p), Scratch::Cuda(s)) => b.step(p, first, inputs, s),
            _ => unreachable!("{MIXED}"),
        }
    }
}
