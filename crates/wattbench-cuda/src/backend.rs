//! The `cuda` backend (our kernels from `kernels/`), `cuda-naive` (the naive GEMM baseline),
//! `cuda-wgmma` (the Hopper GEMM, sm_90 only) and `cuda-wgmma-c2` (the same with clusters of
//! two CTAs sharing B by multicast), plus what every GPU backend of the crate
//! shares: device names, the element limit, the recorded versions and the one input check
//! before anything is allocated.
//!
//! Training cases (`cuda`, fp32) run forward, backward and the SGD update as one plan on the
//! stream, as `wattbench_core::reference::train_step` defines them: outputs
//! `[y, gradients…, updated weights…]`, the weights updated in place so the next call uses
//! them.
use crate::error::CudaError;
use crate::gpu::{self, device_infos, Gpu};
use crate::loader::{nvrtc_probe, nvrtc_version};
use crate::ops::{self, Kernels};
use crate::plan::MAX_ELEMS;
use crate::vendor::{cublas_version, cudnn_version};
use std::sync::Arc;
use wattbench_core::tensor::HostTensor;
use wattbench_core::{Backend, BackendError, Case, DType, DeviceInfo, Mode, Op, Prepared};

/// Our kernels: the best per case (`cuda`), the naive GEMM baseline (`cuda-naive`), or the
/// Hopper wgmma + TMA GEMM (`cuda-wgmma`), each its own backend so that results put them side
/// by side.
pub struct CudaKernels {
    kernels: Kernels,
}

impl CudaKernels {
    /// The best kernel per case: tiled fp32 / tensor-core GEMM, implicit-GEMM conv, fused RNN.
    pub fn new() -> Self {
        Self {
            kernels: Kernels::Best,
        }
    }
    /// The naive GEMM baseline.
    pub fn naive() -> Self {
        Self {
            kernels: Kernels::Naive,
        }
    }
    /// The Hopper GEMM (bf16/f16 forward, compute capability 9.0 only; verified on an H200).
    pub fn wgmma() -> Self {
        Self {
            kernels: Kernels::Wgmma,
        }
    }
    /// The Hopper GEMM with clusters of two CTAs that share B by TMA multicast, on shapes of
    /// 256-wide tiles in two or more tile rows with no split K; elsewhere the plain Hopper GEMM
    /// (the `implementation` says which ran; verified on an H200).
    pub fn wgmma_cluster() -> Self {
        Self {
            kernels: Kernels::WgmmaCluster,
        }
    }
}

/// Compute capability of `device` (`cuda:N`), when the driver knows it.
fn device_arch(device: &str) -> Option<u32> {
    gpu::inventory().ok().and_then(|g| {
        g.iter()
            .find(|g| format!("cuda:{}", g.ordinal) == device)
            .map(|g| g.arch())
    })
}

/// Whether the Hopper GEMM runs `case` on `device`; why not.
fn wgmma_supports(case: &Case, device: &str, name: &str) -> Result<(), String> {
    if case.op() != Op::Gemm {
        return Err(format!(
            "{name} is the Hopper GEMM only (bf16/f16 GEMM forward)"
        ));
    }
    if case.mode == Mode::Train {
        return Err(format!(
            "{name} runs the GEMM forward pass only (training steps run on `cuda`)"
        ));
    }
    if case.dtype == DType::F32 {
        return Err("the wgmma GEMM takes bf16 or f16 (fp32 GEMMs run on `cuda`)".into());
    }
    match device_arch(device).and_then(|a| arch_refusal(Kernels::Wgmma, a)) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// Why the Hopper GEMM runs on no other GPU.
const WGMMA_ARCH_NEEDED: &str = "the wgmma GEMM needs a compute capability 9.0 (Hopper) GPU: \
    wgmma and setmaxnreg are sm_90a instructions";

/// Why our other kernels need compute capability 8.0: the GEMM and elementwise modules hold
/// cp.async, bf16 mma and bf16 conversions, which the driver refuses to load for an older GPU
/// (the whole module, fp32 entry points included; training steps need both modules).
const KERNELS_ARCH_NEEDED: &str = "our CUDA kernels need a compute capability 8.0 (Ampere) or \
    newer GPU: their GEMM and elementwise modules use cp.async and bf16 instructions, which an \
    older GPU's driver will not load";

/// Why `kernels` cannot run at all on a GPU of compute capability `arch` (e.g. 75 for a T4),
/// or `None` where they can.
fn arch_refusal(kernels: Kernels, arch: u32) -> Option<String> {
    match kernels {
        Kernels::Wgmma | Kernels::WgmmaCluster if arch != 90 => {
            Some(format!("{WGMMA_ARCH_NEEDED}; this GPU is sm_{arch}"))
        }
        Kernels::Best | Kernels::Naive if arch < 80 => {
            Some(format!("{KERNELS_ARCH_NEEDED}; this GPU is sm_{arch}"))
        }
        _ => None,
    }
}

impl Default for CudaKernels {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether NVRTC (which compiles our kernels) can be loaded; why not.
pub(crate) fn probe_nvrtc() -> Result<(), String> {
    nvrtc_probe().map_err(|e| match e {
        CudaError::Unavailable(r) => r,
        e => e.to_string(),
    })
}

/// A run-time library whose version the CUDA backends record (crate versions come from
/// Cargo.lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lib {
    Driver,
    Nvrtc,
    Cublas,
    Cudnn,
}

impl Lib {
    /// The key a result records its version under.
    fn key(self) -> &'static str {
        match self {
            Lib::Driver => "cuda-driver",
            Lib::Nvrtc => "nvrtc",
            Lib::Cublas => "cublas",
            Lib::Cudnn => "cudnn",
        }
    }

    /// Its version on this machine, when it loads.
    fn loaded(self) -> Option<String> {
        match self {
            Lib::Driver => gpu::driver_version(),
            Lib::Nvrtc => nvrtc_version().ok().map(|(a, b)| format!("{a}.{b}")),
            Lib::Cublas => cublas_version(),
            Lib::Cudnn => cudnn_version(),
        }
    }
}

/// What a backend that uses `libs` records: the version of each that loads, under its key.
pub(crate) fn versions(libs: &[Lib]) -> Vec<(String, String)> {
    recorded(libs, Lib::loaded)
}

/// [`versions`], each read by `version` (stubbed in the tests: without CUDA nothing loads).
fn recorded(libs: &[Lib], version: impl Fn(Lib) -> Option<String>) -> Vec<(String, String)> {
    libs.iter()
        .filter_map(|&l| {
            version(l)
                .filter(|v| !v.is_empty())
                .map(|v| (l.key().to_string(), v))
        })
        .collect()
}

/// Checks shared by the CUDA backends: a CUDA device name and element counts our kernels can
/// index (every tensor of the case, with the training step's gradients).
pub(crate) fn common_supports(case: &Case, device: &str) -> Result<(), String> {
    gpu::parse_device(device)?;
    for t in case.input_specs().iter().chain(case.output_specs().iter()) {
        if t.numel() > MAX_ELEMS {
            return Err(format!(
                "tensor `{}` has {} elements, over the 2^31-1 supported",
                t.name,
                t.numel()
            ));
        }
    }
    Ok(())
}

/// For backends that run the forward pass only (`cublas`): training cases are unsupported.
pub(crate) fn inference_only(case: &Case, backend: &str) -> Result<(), String> {
    if case.mode == Mode::Train {
        return Err(format!(
            "the {backend} backend runs inference only (training steps run on `cuda`, and for \
             conv2d on `cudnn`)"
        ));
    }
    Ok(())
}

/// The start of every backend's `prepare`: [`check_prepare`], then the library `probe`
/// (before cudarc touches the library: it panics when one is missing), then the device.
pub(crate) fn prepare_device(
    backend: &dyn Backend,
    case: &Case,
    device: &str,
    inputs: &[HostTensor],
    probe: fn() -> Result<(), String>,
) -> Result<Arc<Gpu>, BackendError> {
    check_prepare(backend, case, device, inputs)?;
    probe().map_err(BackendError::Unavailable)?;
    gpu::gpu(device).map_err(|e| e.into_backend(backend.name()))
}

/// What every backend's `prepare` checks first, before touching a device: the backend
/// supports the case (device name, the 2^31-1 element limit, dtype, mode), and `inputs` are
/// the case's (count and element counts of `case.input_specs()`).
pub(crate) fn check_prepare(
    backend: &dyn Backend,
    case: &Case,
    device: &str,
    inputs: &[HostTensor],
) -> Result<(), BackendError> {
    backend
        .supports(case, device)
        .map_err(BackendError::Unsupported)?;
    let specs = case.input_specs();
    if inputs.len() != specs.len()
        || inputs
            .iter()
            .zip(&specs)
            .any(|(t, s)| t.data.len() != s.numel())
    {
        return Err(BackendError::failed(
            backend.name(),
            format!(
                "{case}: expected {} inputs of {:?} elements, got {:?}",
                specs.len(),
                specs.iter().map(|s| s.numel()).collect::<Vec<_>>(),
                inputs.iter().map(|t| t.data.len()).collect::<Vec<_>>()
            ),
        ));
    }
    Ok(())
}

impl Backend for CudaKernels {
    fn name(&self) -> &'static str {
        match self.kernels {
            Kernels::Best => "cuda",
            Kernels::Naive => "cuda-naive",
            Kernels::Wgmma => "cuda-wgmma",
            Kernels::WgmmaCluster => "cuda-wgmma-c2",
        }
    }

    fn devices(&self) -> Vec<DeviceInfo> {
        // A GPU our kernels cannot load on is unavailable to them (with the reason), not
        // available with every case failing at the driver's compile.
        device_infos(probe_nvrtc)
            .into_iter()
            .map(|d| match device_arch(&d.name) {
                Some(a) if d.available => match arch_refusal(self.kernels, a) {
                    Some(why) => DeviceInfo::unavailable(d.name, why),
                    None => d,
                },
                _ => d,
            })
            .collect()
    }

    fn versions(&self) -> Vec<(String, String)> {
        versions(&[Lib::Driver, Lib::Nvrtc])
    }

    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        common_supports(case, device)?;
        if matches!(self.kernels, Kernels::Wgmma | Kernels::WgmmaCluster) {
            return wgmma_supports(case, device, self.name());
        }
        if let Some(why) = device_arch(device).and_then(|a| arch_refusal(self.kernels, a)) {
            return Err(why);
        }
        let naive = self.kernels == Kernels::Naive;
        if case.mode == Mode::Train {
            if naive {
                return Err(
                    "cuda-naive is the forward GEMM baseline; training steps run on `cuda`".into(),
                );
            }
            if case.dtype != DType::F32 {
                return Err(format!(
                    "training steps are fp32 only (the backward kernels are fp32), not {}",
                    case.dtype.as_str()
                ));
            }
            return Ok(());
        }
        match (case.op(), case.dtype, naive) {
            (Op::Gemm, DType::F32, _) | (Op::Gemm, _, false) => Ok(()),
            (Op::Gemm, d, true) => Err(format!(
                "the naive GEMM baseline is fp32 only, not {}",
                d.as_str()
            )),
            (_, _, true) => Err("cuda-naive has only the GEMM baseline".into()),
            (_, DType::F32, false) => Ok(()),
            (op, d, false) => Err(format!(
                "{} kernels are fp32 only, not {}",
                op.as_str(),
                d.as_str()
            )),
        }
    }

    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        let g = prepare_device(self, case, device, inputs, probe_nvrtc)?;
        let name = self.name();
        let e = |e: CudaError| e.into_backend(name);
        let plan = ops::build(case, self.kernels, g.info.sms, inputs).map_err(e)?;
        Ok(Box::new(plan.into_case(&g, name).map_err(e)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};
    use wattbench_core::Params;

    /// The keys the CLI and the results know, each recorded only where its library loads with
    /// a version (the libraries stubbed: without CUDA none loads).
    #[test]
    fn versions_are_recorded_under_the_known_keys_where_the_library_loads() {
        let all = [Lib::Driver, Lib::Nvrtc, Lib::Cublas, Lib::Cudnn];
        let keys: Vec<_> = all.iter().map(|l| l.key()).collect();
        assert_eq!(keys, ["cuda-driver", "nvrtc", "cublas", "cudnn"]);
        let every = recorded(&all, |l| Some(format!("{}.0", l.key().len())));
        let want = [
            ("cuda-driver", "11.0"),
            ("nvrtc", "5.0"),
            ("cublas", "6.0"),
            ("cudnn", "5.0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(every, want);
        let some = recorded(&all, |l| match l {
            Lib::Nvrtc => None,
            Lib::Cublas => Some(String::new()),
            l => Some(l.key().to_uppercase()),
        });
        assert_eq!(
            some,
            [("cuda-driver", "CUDA-DRIVER"), ("cudnn", "CUDNN")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn supports_explains_unsupported_cases() {
        let case = |params, dtype, mode| Case {
            params,
            mode,
            dtype,
            tag: None,
        };
        let conv = Params::Conv2d(ConvParams::new(1, 1, 3, 3, 1, 1, 1));
        let gemm = Params::Gemm(GemmParams::new(2, 2, 2));
        let rnn = Params::Rnn(RnnParams::new(Cell::Gru, 3, 2, 2));
        let be = CudaKernels::new();
        assert!(be
            .supports(&case(conv, DType::Bf16, Mode::Infer), "cuda:0")
            .unwrap_err()
            .contains("fp32 only"));
        assert!(be
            .supports(&case(gemm, DType::F32, Mode::Infer), "cpu")
            .unwrap_err()
            .contains("cuda:N"));
        // Training: fp32 on `cuda` (and conv2d on `cudnn`); the baseline and cuBLAS are
        // forward only.
        for p in [gemm, conv, rnn] {
            assert_eq!(
                be.supports(&case(p, DType::F32, Mode::Train), "cuda:0"),
                Ok(())
            );
            for d in [DType::Bf16, DType::F16] {
                assert!(be
                    .supports(&case(p, d, Mode::Train), "cuda:0")
                    .unwrap_err()
                    .contains("fp32 only"));
            }
        }
        assert!(CudaKernels::naive()
            .supports(&case(gemm, DType::F32, Mode::Train), "cuda:0")
            .unwrap_err()
            .contains("training"));
        assert!(crate::Cublas
            .supports(&case(gemm, DType::F32, Mode::Train), "cuda:0")
            .unwrap_err()
            .contains("inference only"));
        assert_eq!(
            crate::Cudnn.supports(&case(conv, DType::F32, Mode::Train), "cuda:0"),
            Ok(())
        );
        assert!(CudaKernels::naive()
            .supports(&case(conv, DType::F32, Mode::Infer), "cuda:0")
            .is_err());
        assert!(CudaKernels::naive()
            .supports(&case(gemm, DType::F32, Mode::Infer), "cuda:0")
            .is_ok());
        // The Hopper GEMM: bf16/f16 GEMM forward only, each refusal with its reason.
        let w = CudaKernels::wgmma();
        assert_eq!(w.name(), "cuda-wgmma");
        for (c, why) in [
            (case(conv, DType::Bf16, Mode::Infer), "GEMM only"),
            (case(gemm, DType::F32, Mode::Train), "forward pass only"),
            (case(gemm, DType::F32, Mode::Infer), "bf16 or f16"),
        ] {
            let e = w.supports(&c, "cuda:0").unwrap_err();
            assert!(e.contains(why), "{c}: {e}");
        }
        match device_arch("cuda:0") {
            Some(a) if a != 90 => {
                let e = w.supports(&case(gemm, DType::Bf16, Mode::Infer), "cuda:0");
                assert!(e.unwrap_err().contains(&format!("is sm_{a}")));
            }
            _ => assert_eq!(
                w.supports(&case(gemm, DType::Bf16, Mode::Infer), "cuda:0"),
                Ok(())
            ),
        }
    }

    /// A GPU our kernels cannot load on is refused by name, for every kernel set (a T4 is
    /// sm_75: the GEMM module's cp.async and bf16 instructions fail the driver's compile).
    #[test]
    fn gpus_the_kernels_cannot_load_on_are_refused() {
        for k in [Kernels::Best, Kernels::Naive] {
            for arch in [70, 75] {
                let why = arch_refusal(k, arch).unwrap();
                assert!(
                    why.contains("8.0") && why.contains(&format!("sm_{arch}")),
                    "{why}"
                );
            }
            for arch in [80, 86, 89, 90, 100, 120] {
                assert_eq!(arch_refusal(k, arch), None, "{k:?} sm_{arch}");
            }
        }
        for k in [Kernels::Wgmma, Kernels::WgmmaCluster] {
            for arch in [75, 80, 89, 100] {
                assert!(arch_refusal(k, arch).unwrap().contains("9.0 (Hopper)"));
            }
            assert_eq!(arch_refusal(k, 90), None);
        }
    }

    #[test]
    fn inputs_are_checked_before_any_device_is_touched() {
        let case = Case {
            params: Params::Gemm(GemmParams::new(3, 4, 5)),
            mode: Mode::Infer,
            dtype: DType::F32,
            tag: None,
        };
        let good = wattbench_core::tensor::generate_case_inputs(&case, 1);
        let mut short = good.clone();
        short[1].data.pop();
        let backends: [&dyn Backend; 3] = [&CudaKernels::new(), &crate::Cublas, &crate::Cudnn];
        for be in backends {
            for bad in [&short[..], &good[..1]] {
                match check_prepare(be, &case, "cuda:0", bad) {
                    // cudnn does not run GEMM at all.
                    Err(BackendError::Unsupported(_)) if be.name() == "cudnn" => {}
                    Err(BackendError::Failed { msg, .. }) => {
                        assert!(msg.contains("expected"), "{msg}")
                    }
                    r => panic!("{}: {r:?}", be.name()),
                }
            }
        }
        let huge = Case {
            params: Params::Gemm(GemmParams::new(1 << 16, 1 << 16, 1)),
            ..case
        };
        let e = check_prepare(&CudaKernels::new(), &huge, "cuda:0", &good).unwrap_err();
        assert!(e.to_string().contains("2^31-1"), "{e}");
    }
}
