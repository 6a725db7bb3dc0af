//! `cublas`: one `cublasGemmEx` per call, fp32 (`CUBLAS_COMPUTE_32F` on fp32 data: plain
//! FP32, no TF32, like our fp32 kernels) or bf16/f16 data with fp32 accumulation (split-K
//! reductions too: [`GEMM_MATH`]), algorithm `CUBLAS_GEMM_DEFAULT` (cuBLAS's own heuristic).
//! Also the SGD update of `cudnn`'s training step ([`Saxpy`]), so that step stays vendor-only.
use super::{prepare_library, probe_cublas};
use crate::backend::{common_supports, inference_only, versions, Lib};
use crate::device::{operand, DevBuf, DeviceCall};
use crate::error::CudaError;
use crate::gpu::{device_infos, Gpu};
use crate::plan::View;
use cudarc::cublas::result as cublas_result;
use cudarc::cublas::sys as cbs;
use std::sync::Arc;
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::GemmParams;
use wattbench_core::{Backend, BackendError, Case, DType, DeviceInfo, Op, Params, Prepared};

/// cuBLAS GEMM.
#[derive(Default)]
pub struct Cublas;

/// A cuBLAS handle on a GPU's stream, destroyed once when dropped. Ours rather than cudarc's
/// `CudaBlas`, whose drop unwraps `cublasDestroy`'s status: after a kernel fault has poisoned
/// the context, that status is an error, and the panic would end the whole run (and lose its
/// completed cases) where the harness reports the fault and skips the device's later cases.
/// A failed destroy only leaks the handle, in a process whose context is lost anyway.
struct BlasHandle {
    raw: cbs::cublasHandle_t,
    /// Kept alive as long as the handle that launches on it.
    _stream: Arc<cudarc::driver::CudaStream>,
}

// SAFETY: a cuBLAS handle may be used from any thread, one at a time (cuBLAS's thread-safety
// rule); `&self` methods pass it to cuBLAS calls the owning case makes from one thread.
unsafe impl Send for BlasHandle {}

impl BlasHandle {
    /// The raw handle, for cuBLAS calls.
    fn raw(&self) -> cbs::cublasHandle_t {
        self.raw
    }
}

impl Drop for BlasHandle {
    fn drop(&mut self) {
        // SAFETY: `raw` was created by `cublasCreate` in `handle` and is destroyed once, here;
        // nothing uses it after. The status is ignored: see the type's comment.
        let _ = unsafe { cublas_result::destroy_handle(self.raw) };
    }
}

/// A cuBLAS handle on `g`'s stream.
fn handle(g: &Gpu) -> Result<BlasHandle, CudaError> {
    let ctx = g.stream.context();
    ctx.bind_to_thread()
        .map_err(|e| CudaError::lib("cuCtxSetCurrent", e))?;
    let raw = cublas_result::create_handle().map_err(|e| CudaError::lib("cublasCreate", e))?;
    let h = BlasHandle {
        raw,
        _stream: g.stream.clone(),
    };
    // SAFETY: a live handle just created, and the stream of a live context, kept alive by `h`.
    unsafe { cublas_result::set_stream(h.raw(), g.stream.cu_stream() as _) }
        .map_err(|e| CudaError::lib("cublasSetStream", e))?;
    Ok(h)
}

/// The GEMM handle's math mode: `CUBLAS_DEFAULT_MATH` (no TF32 for fp32 data) with the flag
/// `CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION`. Without the flag cuBLAS may reduce the
/// partial sums of a split-K bf16/f16 GEMM in the output type (bf16/f16), so the accumulation
/// would not be fp32 throughout as recorded (our split-K reduces in fp32). `CUBLAS_DEFAULT_MATH`
/// is 0, so the flag's own value is the pair of them (set explicitly, not left to the handle's
/// default).
const GEMM_MATH: cbs::cublasMath_t =
    cbs::cublasMath_t::CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;

/// A cuBLAS handle on `g`'s stream for [`CublasGemm`], in [`GEMM_MATH`].
fn gemm_handle(g: &Gpu) -> Result<BlasHandle, CudaError> {
    let h = handle(g)?;
    // SAFETY: a live handle just created; the mode is a valid `cublasMath_t`.
    unsafe { cbs::cublasSetMathMode(h.raw(), GEMM_MATH) }
        .result()
        .map_err(|e| CudaError::lib("cublasSetMathMode", e))?;
    Ok(h)
}

/// cuBLAS arguments for a row-major GEMM: C = A·B row-major is Cᵀ = Bᵀ·Aᵀ column-major, so
/// cuBLAS sees (m, n) = (N, M), its "A" is our B and its "B" is our A.
/// Returns (transa, transb, m, n, k, lda, ldb, ldc).
fn cublas_shape(p: &GemmParams) -> (bool, bool, i32, i32, i32, i32, i32, i32) {
    let (m, n, k) = (p.m as i32, p.n as i32, p.k as i32);
    // Our B stored [K,N] is column-major [N,K] with ld N: op N; stored [N,K]: op T, ld K.
    let (ta, lda) = if p.trans_b { (true, k) } else { (false, n) };
    // Our A stored [M,K] is column-major [K,M] with ld K: op N; stored [K,M]: op T, ld M.
    let (tb, ldb) = if p.trans_a { (true, m) } else { (false, k) };
    (ta, tb, n, m, k, lda, ldb, n)
}

/// The cuBLAS data type of `dtype` and its name (the `CUDA_R_` suffix).
fn data_type(dtype: DType) -> (cbs::cudaDataType_t, &'static str) {
    match dtype {
        DType::F32 => (cbs::cudaDataType_t::CUDA_R_32F, "32F"),
        DType::Bf16 => (cbs::cudaDataType_t::CUDA_R_16BF, "16BF"),
        DType::F16 => (cbs::cudaDataType_t::CUDA_R_16F, "16F"),
    }
}

/// What a GEMM of `dtype` records as its implementation.
fn gemm_implementation(dtype: DType) -> String {
    format!(
        "cublasGemmEx CUBLAS_GEMM_DEFAULT, data {}, compute 32F, reductions 32F",
        data_type(dtype).1
    )
}

/// One `cublasGemmEx` on the case's `a`, `b` and `c`.
struct CublasGemm {
    handle: BlasHandle,
    p: GemmParams,
    dtype: DType,
    abc: [View; 3],
}

impl DeviceCall for CublasGemm {
    fn call(&mut self, g: &Gpu, bufs: &mut [DevBuf]) -> Result<(), CudaError> {
        let p = &self.p;
        let [a, b, c] = self.abc;
        let pa = operand(g, bufs, a, p.m * p.k, self.dtype)?;
        let pb = operand(g, bufs, b, p.k * p.n, self.dtype)?;
        let pc = operand(g, bufs, c, p.m * p.n, self.dtype)?;
        let (ta, tb, m, n, k, lda, ldb, ldc) = cublas_shape(p);
        let op = |t| {
            if t {
                cbs::cublasOperation_t::CUBLAS_OP_T
            } else {
                cbs::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let ty = data_type(self.dtype).0;
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the three addresses were just resolved, checked to be views of exactly
        // M·K, K·N and M·N elements of live buffers in `self.dtype`, which is what the types
        // and leading dimensions from `cublas_shape` address; alpha and beta are f32 as
        // CUBLAS_COMPUTE_32F requires.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                self.handle.raw(),
                op(ta),
                op(tb),
                m,
                n,
                k,
                (&alpha) as *const f32 as *const _,
                pb as *const _,
                ty,
                lda,
                pa as *const _,
                ty,
                ldb,
                (&beta) as *const f32 as *const _,
                pc as *mut _,
                ty,
                ldc,
                cbs::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cbs::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| CudaError::lib("cublasGemmEx", e))
    }

    fn implementation(&self) -> Option<String> {
        Some(gemm_implementation(self.dtype))
    }
}

/// `y += alpha·x` on fp32 device vectors with `cublasSaxpy` (the SGD update `w -= lr·dw`).
pub(crate) struct Saxpy {
    handle: BlasHandle,
}

impl Saxpy {
    /// A cuBLAS handle on `g`'s stream (host pointer mode, cuBLAS's default: `alpha` is read
    /// from the host when the call is enqueued).
    pub(crate) fn new(g: &Gpu) -> Result<Self, CudaError> {
        probe_cublas().map_err(CudaError::Unavailable)?;
        Ok(Self { handle: handle(g)? })
    }

    /// Enqueue `y += alpha·x` on views `x` and `y` of `n` fp32 elements each.
    pub(crate) fn run(
        &self,
        g: &Gpu,
        bufs: &[DevBuf],
        alpha: f32,
        [x, y]: [View; 2],
        n: usize,
    ) -> Result<(), CudaError> {
        let len = i32::try_from(n).map_err(|_| CudaError::lib("cublasSaxpy", "n over 2^31-1"))?;
        let px = operand(g, bufs, x, n, DType::F32)?;
        let py = operand(g, bufs, y, n, DType::F32)?;
        // SAFETY: both addresses were just checked to be views of exactly `n` f32 elements of
        // live buffers, which unit strides and `len = n` address; `alpha` is a host f32, as
        // the handle's (default) host pointer mode requires.
        unsafe {
            cbs::cublasSaxpy_v2(
                self.handle.raw(),
                len,
                &alpha,
                px as *const f32,
                1,
                py as *mut f32,
                1,
            )
        }
        .result()
        .map_err(|e| CudaError::lib("cublasSaxpy", e))
    }
}

impl Backend for Cublas {
    fn name(&self) -> &'static str {
        "cublas"
    }
    fn devices(&self) -> Vec<DeviceInfo> {
        device_infos(probe_cublas)
    }
    fn versions(&self) -> Vec<(String, String)> {
        versions(&[Lib::Driver, Lib::Cublas])
    }
    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        common_supports(case, device)?;
        inference_only(case, "cublas")?;
        if case.op() != Op::Gemm {
            return Err(format!("cublas runs GEMM only, not {}", case.op().as_str()));
        }
        Ok(())
    }
    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        prepare_library(self, probe_cublas, case, device, inputs, |g, views| {
            let Params::Gemm(p) = case.params else {
                return Err(CudaError::lib("cublas", "runs GEMM only"));
            };
            let abc = <[View; 3]>::try_from(views)
                .map_err(|v| CudaError::lib("cublas", format!("{} operands", v.len())))?;
            Ok(CublasGemm {
                handle: gemm_handle(g)?,
                p,
                dtype: case.dtype,
                abc,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column-major GEMM on the host, as cuBLAS defines it.
    #[allow(clippy::too_many_arguments)]
    fn colmajor_gemm(
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        a: &[f64],
        lda: usize,
        b: &[f64],
        ldb: usize,
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for j in 0..n {
            for i in 0..m {
                let mut s = 0.0;
                for p in 0..k {
                    let av = if ta { a[p + i * lda] } else { a[i + p * lda] };
                    let bv = if tb { b[j + p * ldb] } else { b[p + j * ldb] };
                    s += av * bv;
                }
                c[i + j * m] = s;
            }
        }
        c
    }

    #[test]
    fn row_major_mapping_matches_reference_for_all_transposes() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let p = GemmParams::new(3, 5, 4).transposed(ta, tb);
            let a: Vec<f64> = (0..12).map(|v| v as f64 * 0.5 - 2.0).collect();
            let b: Vec<f64> = (0..20).map(|v| (v as f64).sin()).collect();
            let (cta, ctb, m, n, k, lda, ldb, ldc) = cublas_shape(&p);
            assert_eq!(ldc, 5);
            // cuBLAS's argument rules: each leading dimension at least the rows of the matrix
            // as stored (A: m x k for op N, k x m for op T; B: k x n or n x k; C: m x n).
            assert!(lda >= if cta { k } else { m }, "{ta} {tb}: lda {lda}");
            assert!(ldb >= if ctb { n } else { k }, "{ta} {tb}: ldb {ldb}");
            assert!(ldc >= m);
            let c = colmajor_gemm(
                cta,
                ctb,
                m as usize,
                n as usize,
                k as usize,
                &b,
                lda as usize,
                &a,
                ldb as usize,
            );
            let want = wattbench_core::reference::gemm(&p, &a, &b);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-12, "{ta} {tb}: {c:?} vs {want:?}");
            }
        }
    }

    /// The GEMM handle's math mode is DEFAULT (no TF32, no pedantic or emulated math) plus
    /// the flag that keeps split-K reductions in the fp32 compute type.
    #[test]
    fn gemm_math_is_default_with_fp32_reductions() {
        let flag = cbs::cublasMath_t::CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION as u32;
        let default = cbs::cublasMath_t::CUBLAS_DEFAULT_MATH as u32;
        assert_eq!(GEMM_MATH as u32, default | flag);
        // The low bits select the math: 0, DEFAULT; none of TF32, pedantic or emulation.
        assert_eq!(GEMM_MATH as u32 & (flag - 1), default);
    }

    #[test]
    fn gemm_records_its_data_and_compute_types() {
        assert_eq!(
            gemm_implementation(DType::F32),
            "cublasGemmEx CUBLAS_GEMM_DEFAULT, data 32F, compute 32F, reductions 32F"
        );
        assert_eq!(
            gemm_implementation(DType::Bf16),
            "cublasGemmEx CUBLAS_GEMM_DEFAULT, data 16BF, compute 32F, reductions 32F"
        );
        assert_eq!(
            gemm_implementation(DType::F16),
            "cublasGemmEx CUBLAS_GEMM_DEFAULT, data 16F, compute 32F, reductions 32F"
        );
    }
}
