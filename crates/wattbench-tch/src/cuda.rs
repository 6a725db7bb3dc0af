//! libtorch on CUDA without linking CUDA: this crate links libtorch's CPU libraries only (a
//! binary that links `libtorch_cuda` cannot start without fourteen NVIDIA libraries). At run
//! time, before any tch call touches CUDA state, [`runtime`] loads `libtorch_cuda.so` from the
//! directory of the `libtorch_cpu.so` this process loaded (the same torch build: on a GPU
//! machine, torch's `lib/` on `LD_LIBRARY_PATH`), with `RTLD_GLOBAL`, so its CUDA hooks
//! register. Order matters: if CUDA state is queried first, torch caches stub hooks and CUDA
//! stays unusable; so every CUDA query of this crate goes through [`runtime`], once.
use std::path::PathBuf;
use std::sync::OnceLock;
use wattbench_core::{DType, Params};

/// The CUDA devices libtorch sees (`Ok(count)`, at least 1), or why there are none.
pub(crate) fn runtime() -> Result<usize, String> {
    RUNTIME.get_or_init(load).clone()
}

static RUNTIME: OnceLock<Result<usize, String>> = OnceLock::new();

/// Whether [`runtime`] has run in this process (for the test of the load order).
pub(crate) fn probed() -> bool {
    RUNTIME.get().is_some()
}

fn load() -> Result<usize, String> {
    let cpu = wattbench_core::libraries::find("libtorch_cpu.so").ok_or_else(|| {
        "libtorch_cpu.so is not among this process's libraries, so its CUDA library cannot \
         be located"
            .to_string()
    })?;
    let dir = cpu.parent().map(PathBuf::from).unwrap_or_default();
    let cuda = dir.join("libtorch_cuda.so");
    if !cuda.exists() {
        return Err(format!(
            "{} is not there: the libtorch this process loaded ({}) is a CPU-only build; \
             put a CUDA build's lib/ (torch 2.11 from pip, cu130) on LD_LIBRARY_PATH",
            cuda.display(),
            dir.display()
        ));
    }
    // SAFETY: loading libtorch_cuda runs its static initialisers, which register CUDA hooks
    // with the libtorch already loaded from the same directory (same build); the library is
    // never unloaded (leaked below), so no code or data of it dangles.
    let lib = unsafe {
        libloading::os::unix::Library::open(
            Some(&cuda),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
        )
    }
    .map_err(|e| format!("cannot load {}: {e}", cuda.display()))?;
    std::mem::forget(lib);
    if !tch::Cuda::is_available() {
        return Err(format!(
            "{} loaded, but libtorch sees no CUDA device (no NVIDIA driver on this machine?)",
            cuda.display()
        ));
    }
    match tch::Cuda::device_count() {
        n if n > 0 => {
            // libtorch's default, pinned so that what `describe` records holds: cuDNN picks
            // each convolution's algorithm by its heuristics, not by timing them all.
            tch::Cuda::cudnn_set_benchmark(false);
            Ok(n as usize)
        }
        _ => Err("libtorch reports no CUDA device".into()),
    }
}

/// What a case on `cuda:{index}` runs, for its result: convolutions on cuDNN (when libtorch
/// has it) with algorithms chosen by cuDNN's heuristics (benchmark mode off, libtorch's
/// default, pinned by [`runtime`]), and whether an f32 convolution may use TF32 tensor
/// cores, which libtorch allows cuDNN by default and only `NVIDIA_TF32_OVERRIDE=0` forbids
/// (`wattbench` sets it unless it is set); matmuls on cuBLAS, which libtorch runs in FP32 by
/// default.
pub(crate) fn describe(index: usize, params: &Params, dtype: DType) -> String {
    let conv = matches!(params, Params::Conv2d(_));
    let cudnn = conv && tch::Cuda::cudnn_is_available() && tch::Cuda::user_enabled_cudnn();
    let tf32_override = std::env::var("NVIDIA_TF32_OVERRIDE").ok();
    describe_with(index, params, dtype, cudnn, tf32_override.as_deref())
}

fn describe_with(
    index: usize,
    params: &Params,
    dtype: DType,
    cudnn: bool,
    tf32_override: Option<&str>,
) -> String {
    let ops = match params {
        Params::Conv2d(_) if cudnn => {
            let tf32 = match (dtype, tf32_override) {
                (DType::F32, Some("0")) => "; no TF32 (NVIDIA_TF32_OVERRIDE=0)",
                (DType::F32, _) => "; TF32 allowed (libtorch's default for cuDNN convolutions)",
                _ => "",
            };
            format!(
                "cuDNN convolutions, algorithms by cuDNN's heuristics (benchmark mode off, \
                 libtorch's default){tf32}"
            )
        }
        Params::Conv2d(_) => "libtorch's own CUDA convolutions (no cuDNN)".to_string(),
        // libtorch allows cuBLAS to add a split-K GEMM's partial sums in bf16/f16
        // (`allow_bf16_reduced_precision_reduction`, `..._fp16_...`: true by default), where
        // our kernels and the `cublas` backend keep them in fp32.
        Params::Gemm(_) | Params::Rnn(_) => match dtype {
            DType::F32 => "cuBLAS matmuls".to_string(),
            half => format!(
                "cuBLAS matmuls ({} split-K sums may be reduced in {}: libtorch's default)",
                half.as_str(),
                half.as_str()
            ),
        },
    };
    format!("libtorch CUDA ops on cuda:{index}: {ops}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::workload::{ConvParams, GemmParams};

    /// A CUDA convolution records how its algorithm was chosen and whether f32 may use TF32.
    #[test]
    fn cuda_cases_record_the_algorithm_choice_and_tf32() {
        let conv = Params::Conv2d(ConvParams::new(1, 2, 5, 5, 3, 3, 3));
        let d = describe_with(1, &conv, DType::F32, true, Some("0"));
        assert_eq!(
            d,
            "libtorch CUDA ops on cuda:1: cuDNN convolutions, algorithms by cuDNN's \
             heuristics (benchmark mode off, libtorch's default); no TF32 \
             (NVIDIA_TF32_OVERRIDE=0)"
        );
        let d = describe_with(0, &conv, DType::F32, true, None);
        assert!(d.ends_with("TF32 allowed (libtorch's default for cuDNN convolutions)"));
        let d = describe_with(0, &conv, DType::Bf16, true, None);
        assert!(
            d.ends_with("(benchmark mode off, libtorch's default)"),
            "{d}"
        );
        let gemm = Params::Gemm(GemmParams::new(2, 2, 2));
        let d = describe_with(0, &gemm, DType::F32, false, None);
        assert_eq!(d, "libtorch CUDA ops on cuda:0: cuBLAS matmuls");
        let d = describe_with(0, &gemm, DType::Bf16, false, None);
        assert!(
            d.ends_with("(bf16 split-K sums may be reduced in bf16: libtorch's default)"),
            "{d}"
        );
    }
}
