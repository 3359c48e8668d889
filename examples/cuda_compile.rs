//! Compiles the CUDA kernels (`src/codecs/lm/cuda/step.cu`) with NVRTC as
//! `--device cuda` does, with no GPU and no CUDA driver: a check of the
//! kernel source on any machine that has the NVRTC library.
//!
//! ```text
//! cargo run --release --example cuda_compile -- [ARCH] [PTX_OUT]
//! ```
//!
//! `ARCH` is a compute capability such as `90` (the default; `80` for an
//! A100, `89` for an RTX 40xx), compiled with the options of
//! `--device cuda` (`lza::codecs::lm::compile_cuda_kernels`). The library
//! can come from a CUDA toolkit or from PyPI (`pip download
//! nvidia-cuda-nvrtc-cu12`, unzip the wheel, and put its
//! `nvidia/cuda_nvrtc/lib` in `LD_LIBRARY_PATH`). It prints the size of
//! the PTX, or the compiler's log and exits with failure; with `PTX_OUT`
//! it writes the PTX there (`.local` in it means a kernel spills an array
//! to local memory).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arch = args.first().map_or("90", |s| s.as_str());
    match lza::codecs::lm::compile_cuda_kernels(arch) {
        Ok(ptx) => {
            let text = ptx.to_src();
            println!("compute_{arch}: {} bytes of PTX", text.len());
            if let Some(out) = args.get(1) {
                std::fs::write(out, &text).expect("writing the PTX");
            }
        }
        Err(e) => {
            eprintln!("compute_{arch}: {e}");
            std::process::exit(1);
        }
    }
}
