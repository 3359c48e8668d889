//! The model on an NVIDIA GPU, a [`StepBackend`] through the CUDA driver.
//!
//! The kernel (`step.cu`, the project's own CUDA C) is compiled at run time
//! by NVRTC; the driver and NVRTC libraries are loaded when a backend is
//! first made (`cudarc`'s dynamic loading), so a build and every test run
//! on a machine without CUDA, and [`CudaBackend::new`] reports there that
//! no GPU is usable.
//!
//! The weights and the chains' state stay on the device. One step uploads
//! one word per chain (its state slot, a reset flag and its input symbol)
//! and downloads its frequency table; every chain of the step runs in one
//! launch, one thread block per chain. The kernel computes format-spec
//! 7.2-7.4 exactly (see the comments in `step.cu`): its tables equal the CPU
//! backend's bit for bit.
//!
//! Resets and the scheduler's compaction cost no device work: a chain is a
//! slot index into the state buffers, moving a chain moves the index, and a
//! reset is a flag sent with the chain's next input (the kernel then starts
//! from the zero state).
//!
//! Sequences known in advance (an encoder's) take another way,
//! [`CudaBackend::known_bits`]: one launch runs every step of every chain on
//! the device (`lza_known_T`, a block per `T` chains, their state in shared
//! memory) and leaves each byte's 8 bit probabilities, 16 bytes a byte, so
//! neither a launch nor a copy waits for the host between steps.

use super::backend::StepBackend;
use super::model::Model;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use std::sync::Arc;

/// The kernel source.
const SOURCE: &str = include_str!("step.cu");
/// Threads per block (`THREADS` in the source).
const THREADS: u32 = 256;
/// Largest `d` and `L` the kernel's shared memory holds (`MAX_DIM`,
/// `MAX_LAYERS`: the limits of format-spec 7.1).
const MAX_DIM: usize = 1024;
const MAX_LAYERS: usize = 8;
/// A chain's pending reset, in its slot word.
const RESET: u32 = 1 << 31;
/// Chains per block of the known-sequence kernels (`lza_known_T`).
const TILES: [usize; 5] = [16, 8, 4, 2, 1];
/// Most bytes one launch of a known-sequence kernel takes (offsets are
/// `u32`, and its bit probabilities take 16 bytes a byte on the device).
const MAX_KNOWN_BYTES: usize = 64 << 20;

/// Why no GPU backend could be made.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// The CUDA driver library is not installed or no device is present.
    #[error("no usable CUDA GPU: {0}")]
    Unavailable(String),
    /// The kernel did not compile or load, or a device call failed.
    #[error("CUDA error: {0}")]
    Failed(String),
}

fn failed(what: &str) -> impl Fn(cudarc::driver::DriverError) -> CudaError + '_ {
    move |e| CudaError::Failed(format!("{what}: {e}"))
}

/// The kernels (`step.cu`) compiled by NVRTC for compute capability
/// `arch` (`"90"` for 9.0): no fused multiply-add, no flush to zero, IEEE
/// division and square root, no fast math. Needs the NVRTC library only,
/// no GPU (`examples/cuda_compile` checks the source so).
pub fn compile(arch: &str) -> Result<cudarc::nvrtc::Ptx, CudaError> {
    if !nvrtc_present() {
        return Err(CudaError::Unavailable(
            "the CUDA run-time compiler library (libnvrtc) is not installed".into(),
        ));
    }
    let opts = cudarc::nvrtc::CompileOptions {
        fmad: Some(false),
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        use_fast_math: Some(false),
        options: vec![format!("--gpu-architecture=compute_{arch}")],
        name: Some("lza_step.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
        .map_err(|e| CudaError::Failed(format!("compiling the kernel: {e}")))
}

/// The model's weights on the device, row-major as in the model file.
#[derive(Debug)]
struct Weights {
    embed: CudaSlice<f32>,
    w_hh: CudaSlice<i8>,
    m_hh: CudaSlice<f32>,
    b_hh: CudaSlice<f32>,
    w_ih: CudaSlice<i8>,
    m_ih: CudaSlice<f32>,
    b_ih: CudaSlice<f32>,
    w_head: CudaSlice<i8>,
    m_head: CudaSlice<f32>,
    b_head: CudaSlice<f32>,
}

impl Weights {
    /// The weights as the kernels take them, in their order: `embed`, then
    /// `w`, `m`, `b` of the recurrent products, the input products and the
    /// head.
    fn args<'a>(&'a self, launch: &mut cudarc::driver::LaunchArgs<'a>) {
        launch
            .arg(&self.embed)
            .arg(&self.w_hh)
            .arg(&self.m_hh)
            .arg(&self.b_hh)
            .arg(&self.w_ih)
            .arg(&self.m_ih)
            .arg(&self.b_ih)
            .arg(&self.w_head)
            .arg(&self.m_head)
            .arg(&self.b_head);
    }
}

/// A model computed on GPU 0.
pub struct CudaBackend {
    model: Arc<Model>,
    name: String,
    ctx: Arc<CudaContext>,
    /// The stream of the weights' upload and of the chains' allocation.
    stream: Arc<CudaStream>,
    step: CudaFunction,
    /// The known-sequence kernels that fit the device's shared memory:
    /// (chains per block, kernel, shared bytes per block).
    known: Vec<(usize, CudaFunction, u32)>,
    /// The device's multiprocessors.
    sms: usize,
    weights: Weights,
}

/// The sequences of each launch of a known-sequence kernel, given their
/// lengths: consecutive runs of at most `cap` bytes, each of at least one
/// sequence (a longer sequence goes alone), every sequence once, in order.
fn launches(lens: &[usize], cap: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < lens.len() {
        let mut end = start + 1;
        let mut bytes = lens[start];
        while end < lens.len() && bytes + lens[end] <= cap {
            bytes += lens[end];
            end += 1;
        }
        assert!(bytes <= u32::MAX as usize, "a sequence of 4 GiB or more");
        runs.push(start..end);
        start = end;
    }
    runs
}

/// Where each sequence of one launch starts in their concatenation, and
/// the non-empty ones longest first (the kernel's chain order, so that a
/// block's chains end together). The lengths add up to less than 2^32.
fn layout(lens: &[usize]) -> (Vec<u32>, Vec<usize>) {
    let offsets = lens
        .iter()
        .scan(0u32, |at, &len| {
            let o = *at;
            *at += len as u32;
            Some(o)
        })
        .collect();
    let mut order: Vec<usize> = (0..lens.len()).filter(|&i| lens[i] > 0).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    (offsets, order)
}

/// Shared memory of a block of `t` chains of the known-sequence kernel
/// (the layout in `step.cu`, before `known_body`).
fn known_smem(t: usize, d: usize, layers: usize) -> usize {
    let ld = layers * d;
    2 * t * ld + 4 * t * ld + 2 * 4 * t * 3 * d + 4 * t * 256 + 4 * t * 256 + 4 * t * 260 + 16 * t
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.name)
            .finish()
    }
}

/// Whether the CUDA driver library can be loaded (no device is touched).
fn driver_present() -> bool {
    // SAFETY: only tries to load the library and drops it.
    #[allow(unsafe_code)]
    unsafe {
        cudarc::driver::sys::is_culib_present()
    }
}

fn nvrtc_present() -> bool {
    // SAFETY: only tries to load the library and drops it.
    #[allow(unsafe_code)]
    unsafe {
        cudarc::nvrtc::sys::is_culib_present()
    }
}

impl CudaBackend {
    /// `model` on GPU 0: compiles the kernel and uploads the weights.
    pub fn new(model: Arc<Model>) -> Result<CudaBackend, CudaError> {
        if !driver_present() {
            return Err(CudaError::Unavailable(
                "the CUDA driver library (libcuda) is not installed".into(),
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| CudaError::Unavailable(format!("CUDA driver: {e}")))?;
        if count < 1 {
            return Err(CudaError::Unavailable("no CUDA device".into()));
        }
        if !nvrtc_present() {
            return Err(CudaError::Unavailable(
                "the CUDA run-time compiler library (libnvrtc) is not installed".into(),
            ));
        }
        let (d, layers) = (model.dim(), model.layers());
        if d > MAX_DIM || layers > MAX_LAYERS || d % 32 != 0 {
            return Err(CudaError::Failed(format!(
                "model shape d={d}, L={layers} is outside the kernel's limits"
            )));
        }
        let ctx = CudaContext::new(0).map_err(|e| CudaError::Unavailable(format!("GPU 0: {e}")))?;
        // Each thread's steps run on a stream of its own (its scratch's)
        // and end with that stream synchronized; the state a step touches
        // belongs to one thread at a time, and allocations are finished
        // before first use. So no event tracking is needed across streams.
        // SAFETY: called before any allocation in this context; the
        // synchronisation rules it leaves to us are kept as just said.
        #[allow(unsafe_code)]
        unsafe {
            ctx.disable_event_tracking()
        };
        let (major, minor) = ctx
            .compute_capability()
            .map_err(failed("compute capability"))?;
        if (major, minor) < (6, 1) {
            return Err(CudaError::Unavailable(format!(
                "GPU 0 has compute capability {major}.{minor}; dp4a needs 6.1"
            )));
        }
        let name = ctx.name().unwrap_or_else(|_| "GPU 0".into());
        let ptx = compile(&format!("{major}{minor}"))?;
        let module = ctx.load_module(ptx).map_err(failed("loading the kernel"))?;
        let step = module.load_function("lza_step").map_err(failed("kernel"))?;
        use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
        let attr = |a| ctx.attribute(a).map_err(failed("device attribute"));
        let sms =
            attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?.max(1) as usize;
        let optin = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?
            as usize;
        let mut known = Vec::new();
        for t in TILES {
            let bytes = known_smem(t, d, layers);
            if bytes > optin {
                continue;
            }
            let f = module
                .load_function(&format!("lza_known_{t}"))
                .map_err(failed("kernel"))?;
            f.set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
            .map_err(failed("kernel attribute"))?;
            known.push((t, f, bytes as u32));
        }
        let stream = ctx.new_stream().map_err(failed("stream"))?;
        let weights = upload(&stream, &model)?;
        stream.synchronize().map_err(failed("uploading weights"))?;
        Ok(CudaBackend {
            model,
            name,
            ctx,
            stream,
            step,
            known,
            sms,
            weights,
        })
    }

    /// The model's probabilities of the 8 bits of every byte of `seqs`
    /// (format-spec 8.4, "The model's bits"), each sequence a chain from
    /// the zero state with the start symbol as its first input: what
    /// [`crate::codecs::cm::lm_byte_bits`] gives of the frequency tables
    /// of stepping each chain through its own bytes. All steps run on the
    /// device, in one launch per 64 MiB of input.
    pub fn known_bits(&self, seqs: &[&[u8]]) -> Vec<Vec<[u16; 8]>> {
        self.known(seqs, None, false).0
    }

    /// The chains per block of the known-sequence kernels this device
    /// runs (those whose shared memory fits it), largest first.
    pub fn known_tiles(&self) -> Vec<usize> {
        self.known.iter().map(|k| k.0).collect()
    }

    /// [`CudaBackend::known_bits`] with `tile` chains per block (one of 1,
    /// 2, 4, 8, 16 that the device's shared memory holds; `None` chooses),
    /// and with `tables` also every step's frequency table, 256 a byte, in
    /// the order of the sequences' bytes: for the check against the CPU.
    pub fn known(
        &self,
        seqs: &[&[u8]],
        tile: Option<usize>,
        tables: bool,
    ) -> (Vec<Vec<[u16; 8]>>, Vec<u32>) {
        let per = if tables { 16 + 1024 } else { 16 };
        let cap = MAX_KNOWN_BYTES * 16 / per;
        let mut bits = Vec::with_capacity(seqs.len());
        let mut freqs = Vec::new();
        let sizes: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        for run in launches(&sizes, cap) {
            let (b, f) = self.known_launch(&seqs[run], tile, tables);
            bits.extend(b);
            freqs.extend(f);
        }
        (bits, freqs)
    }

    fn known_launch(
        &self,
        seqs: &[&[u8]],
        tile: Option<usize>,
        tables: bool,
    ) -> (Vec<Vec<[u16; 8]>>, Vec<u32>) {
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        if total == 0 {
            return (seqs.iter().map(|_| Vec::new()).collect(), Vec::new());
        }
        let sizes: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let (offsets, order) = layout(&sizes);
        let n = order.len();
        let starts: Vec<u32> = order.iter().map(|&i| offsets[i]).collect();
        let lens: Vec<u32> = order.iter().map(|&i| seqs[i].len() as u32).collect();
        let (t, f, smem) = match tile {
            Some(t) => self
                .known
                .iter()
                .find(|k| k.0 == t)
                .unwrap_or_else(|| panic!("no known-sequence kernel of {t} chains a block")),
            // the most chains a block that still gives every
            // multiprocessor two blocks: on an H100 (132 of them), 633
            // chains of 16 KiB ran at 8.8, 11.9, 11.2, 8.1 and 4.9 MB/s
            // with 1, 2, 4, 8 and 16 chains a block, and 1211 chains of 1
            // B to 16 KiB at 12.1, 12.9, 12.0, 8.3 and 5.0 MB/s
            // (`examples/gpu_check`)
            None => self
                .known
                .iter()
                .find(|k| n.div_ceil(k.0) >= 2 * self.sms)
                .unwrap_or_else(|| self.known.last().expect("the kernel of one chain a block")),
        };
        let stream = self
            .ctx
            .new_stream()
            .unwrap_or_else(|e| device_fault("stream creation", e));
        let data: Vec<u8> = seqs.concat();
        let up = |e| -> ! { device_fault("upload", e) };
        let d_data = stream.clone_htod(&data).unwrap_or_else(|e| up(e));
        let d_starts = stream.clone_htod(&starts).unwrap_or_else(|e| up(e));
        let d_lens = stream.clone_htod(&lens).unwrap_or_else(|e| up(e));
        let alloc = |e| -> ! { device_fault("allocation", e) };
        let d_probs = stream
            .alloc_zeros::<u16>(total * 8)
            .unwrap_or_else(|e| alloc(e));
        let d_tables = stream
            .alloc_zeros::<u32>(if tables { total * 256 } else { 1 })
            .unwrap_or_else(|e| alloc(e));
        let (d, layers) = (self.model.dim() as i32, self.model.layers() as i32);
        let (n32, want) = (n as i32, tables as i32);
        let w = &self.weights;
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(*t) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: *smem,
        };
        let mut launch = stream.launch_builder(f);
        launch
            .arg(&d)
            .arg(&layers)
            .arg(&n32)
            .arg(&d_data)
            .arg(&d_starts)
            .arg(&d_lens);
        w.args(&mut launch);
        launch.arg(&d_probs).arg(&d_tables).arg(&want);
        // SAFETY: the arguments match `lza_known_T`'s signature in order
        // and type; the `n` chains' starts and lengths lie inside `data`
        // (offsets of the concatenation, its length below 2^32), `probs`
        // holds 8 values a byte and `tables` 256 a byte when `want` is set;
        // the dynamic shared memory is the kernel's `known_smem`, within the
        // limit set on the function.
        #[allow(unsafe_code)]
        unsafe { launch.launch(cfg) }.unwrap_or_else(|e| device_fault("launch", e));
        let probs: Vec<u16> = stream
            .clone_dtoh(&d_probs)
            .unwrap_or_else(|e| device_fault("download", e));
        let freqs: Vec<u32> = match tables {
            true => stream
                .clone_dtoh(&d_tables)
                .unwrap_or_else(|e| device_fault("download", e)),
            false => Vec::new(),
        };
        stream
            .synchronize()
            .unwrap_or_else(|e| device_fault("known sequences", e));
        let bits = seqs
            .iter()
            .zip(&offsets)
            .map(|(s, &o)| {
                let o = o as usize * 8;
                probs[o..o + s.len() * 8]
                    .chunks_exact(8)
                    .map(|c| c.try_into().expect("8 values"))
                    .collect()
            })
            .collect();
        (bits, freqs)
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        &self.name
    }

    fn ld(&self) -> usize {
        self.model.layers() * self.model.dim()
    }
}

/// The weights of `model` on the device, row-major.
fn upload(stream: &Arc<CudaStream>, model: &Model) -> Result<Weights, CudaError> {
    let (d, layers) = (model.dim(), model.layers());
    let d3 = 3 * d;
    let up_f = |v: &[f32]| stream.clone_htod(v).map_err(failed("uploading weights"));
    let up_i = |v: &[i8]| stream.clone_htod(v).map_err(failed("uploading weights"));
    let rows = |w: &super::cpu::kernels::PackedI8, rows: usize, cols: usize, out: &mut Vec<i8>| {
        for j in 0..rows {
            out.extend((0..cols).map(|k| w.get(j, k)));
        }
    };
    let (mut w_hh, mut m_hh, mut b_hh) = (Vec::new(), Vec::new(), Vec::new());
    let (mut w_ih, mut m_ih, mut b_ih) = (Vec::new(), Vec::new(), Vec::new());
    for layer in model.layer_weights() {
        rows(&layer.w_hh.w, d3, d, &mut w_hh);
        m_hh.extend_from_slice(&layer.w_hh.m);
        b_hh.extend_from_slice(&layer.w_hh.b);
        match &layer.w_ih {
            Some(w) => {
                rows(&w.w, d3, d, &mut w_ih);
                m_ih.extend_from_slice(&w.m);
                b_ih.extend_from_slice(&w.b);
            }
            None => {
                // layer 0 takes its input from `embed`; keep the offsets
                w_ih.resize(w_ih.len() + d3 * d, 0);
                m_ih.resize(m_ih.len() + d3, 0.0);
                b_ih.resize(b_ih.len() + d3, 0.0);
            }
        }
    }
    let head = model.head();
    let mut w_head = Vec::new();
    rows(&head.w, 256, layers * d, &mut w_head);
    Ok(Weights {
        embed: up_f(model.embed())?,
        w_hh: up_i(&w_hh)?,
        m_hh: up_f(&m_hh)?,
        b_hh: up_f(&b_hh)?,
        w_ih: up_i(&w_ih)?,
        m_ih: up_f(&m_ih)?,
        b_ih: up_f(&b_ih)?,
        w_head: up_i(&w_head)?,
        m_head: up_f(&head.m)?,
        b_head: up_f(&head.b)?,
    })
}

/// The state of a batch of chains on the device: `cap` slots of `h` (f32)
/// and `q` (i8), `L*d` each, and on the host each chain's slot with its
/// pending reset (the `RESET` bit).
pub struct CudaChains {
    h: CudaSlice<f32>,
    q: CudaSlice<i8>,
    slots: Vec<u32>,
}

impl std::fmt::Debug for CudaChains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaChains({})", self.slots.len())
    }
}

/// Chains of a [`CudaChains`]: their slot words, and the state buffers
/// (each chain's kernel block touches only its own slot, so parts with
/// disjoint slots can share them).
pub struct CudaPart<'a> {
    slots: &'a mut [u32],
    h: &'a CudaSlice<f32>,
    q: &'a CudaSlice<i8>,
}

/// Buffers of one thread's steps.
pub struct CudaScratch {
    cap: usize,
    /// The stream of this thread's steps.
    stream: Arc<CudaStream>,
    words: Vec<u32>,
    d_words: CudaSlice<u32>,
    d_freqs: CudaSlice<u32>,
    host: Vec<u32>,
    freqs: Vec<[u32; 256]>,
}

impl std::fmt::Debug for CudaScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaScratch({})", self.cap)
    }
}

/// A failed device call in a step: the trait has no error path (a step of
/// a validated model cannot fail on the CPU), so this is a fault of the
/// device or its driver, raised as a panic with a
/// [`crate::runtime::pipeline::DeviceFault`] payload, which the archive
/// layer reports as a device error.
fn device_fault(what: &str, e: impl std::fmt::Display) -> ! {
    std::panic::panic_any(crate::runtime::pipeline::DeviceFault(format!(
        "CUDA {what} failed: {e}"
    )))
}

impl StepBackend for CudaBackend {
    type Chains = CudaChains;
    type Part<'a> = CudaPart<'a>;
    type Scratch = CudaScratch;

    fn new_chains(&self, cap: usize) -> CudaChains {
        let n = cap.max(1) * self.ld();
        let chains = CudaChains {
            h: (self.stream.alloc_zeros(n)).unwrap_or_else(|e| device_fault("allocation", e)),
            q: (self.stream.alloc_zeros(n)).unwrap_or_else(|e| device_fault("allocation", e)),
            slots: (0..cap as u32).collect(),
        };
        self.stream
            .synchronize()
            .unwrap_or_else(|e| device_fault("allocation", e));
        chains
    }

    fn reset_chain(&self, c: &mut CudaChains, i: usize) {
        c.slots[i] |= RESET;
    }

    fn move_chain(&self, c: &mut CudaChains, from: usize, to: usize) {
        // `to`'s old slot goes to `from`, which starts from zero if used again
        c.slots.swap(from, to);
        c.slots[from] |= RESET;
    }

    fn part<'a>(&self, c: &'a mut CudaChains, n: usize) -> CudaPart<'a> {
        CudaPart {
            slots: &mut c.slots[..n],
            h: &c.h,
            q: &c.q,
        }
    }

    fn split_part<'a>(&self, p: Self::Part<'a>, at: usize) -> (Self::Part<'a>, Self::Part<'a>) {
        let (s0, s1) = p.slots.split_at_mut(at);
        (
            CudaPart {
                slots: s0,
                h: p.h,
                q: p.q,
            },
            CudaPart {
                slots: s1,
                h: p.h,
                q: p.q,
            },
        )
    }

    fn new_scratch(&self, cap: usize) -> CudaScratch {
        let cap = cap.max(1);
        let stream = self
            .ctx
            .new_stream()
            .unwrap_or_else(|e| device_fault("stream creation", e));
        let alloc = |n| {
            stream
                .alloc_zeros::<u32>(n)
                .unwrap_or_else(|e| device_fault("allocation", e))
        };
        CudaScratch {
            cap,
            stream: stream.clone(),
            words: vec![0; cap],
            d_words: alloc(cap),
            d_freqs: alloc(cap * 256),
            host: vec![0; cap * 256],
            freqs: vec![[0; 256]; cap],
        }
    }

    fn capacity(&self, s: &CudaScratch) -> usize {
        s.cap
    }

    fn whole_batch(&self) -> bool {
        true
    }

    fn step<'s>(
        &self,
        p: &mut CudaPart<'_>,
        first: usize,
        inputs: &[u16],
        s: &'s mut CudaScratch,
    ) -> &'s [[u32; 256]] {
        let n = inputs.len();
        if n == 0 {
            return &s.freqs[..0];
        }
        assert!(n <= s.cap, "scratch too small");
        for (b, (&u, slot)) in inputs
            .iter()
            .zip(&mut p.slots[first..first + n])
            .enumerate()
        {
            debug_assert!(u <= 256);
            let reset = (*slot & RESET != 0) as u32;
            *slot &= !RESET;
            s.words[b] = (*slot << 10) | (reset << 9) | u as u32;
        }
        let st = &s.stream;
        st.memcpy_htod(&s.words[..n], &mut s.d_words)
            .unwrap_or_else(|e| device_fault("upload", e));
        let (d, layers) = (self.model.dim() as i32, self.model.layers() as i32);
        let w = &self.weights;
        let cfg = LaunchConfig {
            grid_dim: (n as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = st.launch_builder(&self.step);
        launch.arg(&d).arg(&layers).arg(&s.d_words);
        w.args(&mut launch);
        launch.arg(p.h).arg(p.q).arg(&s.d_freqs);
        // SAFETY: the arguments match the kernel's signature in order and
        // type; every slot word names a slot below the buffers' capacity
        // (`new_chains`), the buffers hold `L*d` values per slot, `d_words`
        // holds `n` words and `d_freqs` `n * 256` values.
        #[allow(unsafe_code)]
        unsafe { launch.launch(cfg) }.unwrap_or_else(|e| device_fault("launch", e));
        st.memcpy_dtoh(&s.d_freqs.slice(..n * 256), &mut s.host[..n * 256])
            .unwrap_or_else(|e| device_fault("download", e));
        st.synchronize().unwrap_or_else(|e| device_fault("step", e));
        for (f, src) in s.freqs[..n].iter_mut().zip(s.host.chunks_exact(256)) {
            f.copy_from_slice(src);
        }
        &s.freqs[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::{launches, layout};

    #[test]
    fn launches_cover_every_sequence_once_within_the_cap() {
        assert!(launches(&[], 10).is_empty());
        assert_eq!(launches(&[5, 0, 3], 4), vec![0..1, 1..3]);
        assert_eq!(launches(&[3, 3, 3, 3], 6), vec![0..2, 2..4]);
        assert_eq!(launches(&[0, 0], 1), vec![0..2]);
        let lens: Vec<usize> = (0..200).map(|i| (i * 7919) % 50).collect();
        for cap in [1, 49, 50, 100, 1000, 1 << 20] {
            let runs = launches(&lens, cap);
            let mut next = 0;
            for r in &runs {
                assert_eq!(r.start, next, "cap {cap}");
                assert!(r.end > r.start, "cap {cap}");
                let bytes: usize = lens[r.clone()].iter().sum();
                assert!(bytes <= cap || r.len() == 1, "cap {cap}: {r:?} {bytes}");
                next = r.end;
            }
            assert_eq!(next, lens.len(), "cap {cap}");
        }
    }

    #[test]
    fn layout_is_offsets_and_the_nonempty_longest_first() {
        let (offsets, order) = layout(&[3, 0, 7, 3, 1]);
        assert_eq!(offsets, vec![0, 3, 3, 10, 13]);
        assert_eq!(order, vec![2, 0, 3, 4]);
        let (offsets, order) = layout(&[]);
        assert!(offsets.is_empty() && order.is_empty());
    }
}
