//! Vendor yardsticks: `cublas` (GEMM: SGEMM-equivalent fp32, and bf16/f16 GemmEx with fp32
//! accumulation) and `cudnn` (conv2d forward, fp32 with tensor cores off, so it computes what
//! our fp32 kernel computes rather than TF32).
//!
//! Each is a library call ([`DeviceCall`]) on buffers from the same [`PlanBuilder`] our kernels
//! use, so uploads, poisoned outputs, timing and memory tracking are shared.
use crate::backend::{common_supports, cuda_versions, inference_only, prepare_device};
use crate::device::{addr, DevBuf, DeviceCall};
use crate::error::CudaError;
use crate::gpu::{self, device_infos, Gpu};
use crate::plan::{PlanBuilder, View};
use cudarc::cublas::sys as cbs;
use cudarc::cudnn::sys as cds;
use std::sync::Arc;
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::{ConvParams, GemmParams};
use wattbench_core::{Backend, BackendError, Case, DType, DeviceInfo, Op, Params, Prepared};

fn probe_cublas() -> Result<(), String> {
    // SAFETY: only tries to dlopen the candidate library names.
    if unsafe { cbs::is_culib_present() } {
        Ok(())
    } else {
        Err(
            "libcublas.so not found (put the CUDA 13 cuBLAS library directory, e.g. the \
             nvidia-cublas wheel's lib/, on LD_LIBRARY_PATH)"
                .into(),
        )
    }
}

fn probe_cudnn() -> Result<(), String> {
    // SAFETY: only tries to dlopen the candidate library names.
    if unsafe { cds::is_culib_present() } {
        Ok(())
    } else {
        Err(
            "libcudnn.so not found (put cuDNN 9's lib/, e.g. the nvidia-cudnn-cu13 wheel's, on \
             LD_LIBRARY_PATH)"
                .into(),
        )
    }
}

/// A vendor backend's `prepare`: the shared checks and the library `probe`, then the inputs
/// uploaded in the case's dtype and one NaN-poisoned buffer per output, then the call `make`
/// sets up on them (given the views of the inputs and outputs, in order).
fn prepare_library<C: DeviceCall + 'static>(
    backend: &dyn Backend,
    probe: fn() -> Result<(), String>,
    case: &Case,
    device: &str,
    inputs: &[HostTensor],
    make: impl FnOnce(&Arc<Gpu>, Vec<View>) -> Result<C, CudaError>,
) -> Result<Box<dyn Prepared>, BackendError> {
    let g = prepare_device(backend, case, device, inputs, probe)?;
    let name = backend.name();
    let mut b = PlanBuilder::new();
    let mut ids = b.upload_all(inputs, case.dtype);
    for spec in case.output_specs() {
        let out = b.poisoned(spec.numel(), case.dtype);
        b.output(b.whole(out)).map_err(|e| e.into_backend(name))?;
        ids.push(out);
    }
    let views = ids.into_iter().map(|i| b.whole(i)).collect();
    let case = b
        .into_library_case(&g, name, |g| make(g, views))
        .map_err(|e| e.into_backend(name))?;
    Ok(Box::new(case))
}

/// cuBLAS GEMM.
#[derive(Default)]
pub struct Cublas;

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

/// One `cublasGemmEx` on the case's `a`, `b` and `c`.
struct CublasGemm {
    handle: cudarc::cublas::CudaBlas,
    p: GemmParams,
    dtype: DType,
    abc: [View; 3],
}

impl DeviceCall for CublasGemm {
    fn call(&mut self, g: &Gpu, bufs: &mut [DevBuf]) -> Result<(), CudaError> {
        let p = &self.p;
        let [a, b, c] = self.abc;
        let sizes = [(a, p.m * p.k), (b, p.k * p.n), (c, p.m * p.n)];
        if sizes.iter().any(|&(v, n)| v.len() != n) {
            return Err(CudaError::lib(
                "cublasGemmEx",
                format!("operands {:?} for {p:?}", self.abc),
            ));
        }
        let (pa, pb, pc) = (addr(g, bufs, a)?, addr(g, bufs, b)?, addr(g, bufs, c)?);
        let (ta, tb, m, n, k, lda, ldb, ldc) = cublas_shape(p);
        let op = |t| {
            if t {
                cbs::cublasOperation_t::CUBLAS_OP_T
            } else {
                cbs::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let ty = match self.dtype {
            DType::F32 => cbs::cudaDataType_t::CUDA_R_32F,
            DType::Bf16 => cbs::cudaDataType_t::CUDA_R_16BF,
            DType::F16 => cbs::cudaDataType_t::CUDA_R_16F,
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the three addresses were just resolved, bounds-checked, from views of
        // exactly M·K, K·N and M·N elements of live buffers in the case's dtype (the builder
        // allocated them in `self.dtype`), which is what the leading dimensions from
        // `cublas_shape` address; alpha and beta are f32 as CUBLAS_COMPUTE_32F requires.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.handle.handle(),
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
}

impl Backend for Cublas {
    fn name(&self) -> &'static str {
        "cublas"
    }
    fn devices(&self) -> Vec<DeviceInfo> {
        device_infos(probe_cublas)
    }
    fn versions(&self) -> Vec<(String, String)> {
        cuda_versions()
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
            let handle = cudarc::cublas::CudaBlas::new(g.stream.clone())
                .map_err(|x| CudaError::lib("cublasCreate", x))?;
            let abc = <[View; 3]>::try_from(views)
                .map_err(|v| CudaError::lib("cublas", format!("{} operands", v.len())))?;
            Ok(CublasGemm {
                handle,
                p,
                dtype: case.dtype,
                abc,
            })
        })
    }
}

/// cuDNN conv2d forward.
#[derive(Default)]
pub struct Cudnn;

/// One cuDNN ConvForward of the case's `x` and `w` into `y` (buffers 0, 1, 2).
struct CudnnConv {
    _handle: Arc<cudarc::cudnn::Cudnn>,
    c: ConvParams,
    xd: cudarc::cudnn::TensorDescriptor<f32>,
    wd: cudarc::cudnn::FilterDescriptor<f32>,
    yd: cudarc::cudnn::TensorDescriptor<f32>,
    conv: cudarc::cudnn::ConvDescriptor<f32>,
    algo: cds::cudnnConvolutionFwdAlgo_t,
    workspace: Option<cudarc::driver::CudaSlice<u8>>,
}

impl DeviceCall for CudnnConv {
    fn call(&mut self, _: &Gpu, bufs: &mut [DevBuf]) -> Result<(), CudaError> {
        let c = &self.c;
        let [DevBuf::F32(x), DevBuf::F32(w), DevBuf::F32(y)] = bufs else {
            return Err(CudaError::lib(
                "cudnnConvolutionForward",
                "expected three f32 buffers",
            ));
        };
        let want = [
            c.n * c.c * c.h * c.w,
            c.k * c.c * c.r * c.s,
            c.n * c.k * c.p() * c.q(),
        ];
        if [x.len(), w.len(), y.len()] != want {
            return Err(CudaError::lib(
                "cudnnConvolutionForward",
                format!("buffers for {c:?}"),
            ));
        }
        let op = cudarc::cudnn::ConvForward {
            conv: &self.conv,
            x: &self.xd,
            w: &self.wd,
            y: &self.yd,
        };
        // SAFETY: x, w and y were just checked to hold exactly the elements of the NCHW
        // descriptors made from the same shape, and the workspace is the size cuDNN asked for
        // this algorithm.
        unsafe {
            op.launch(
                self.algo,
                self.workspace.as_mut(),
                (1.0f32, 0.0f32),
                &*x,
                &*w,
                y,
            )
        }
        .map_err(|e| CudaError::lib("cudnnConvolutionForward", e))
    }
}

fn i(v: usize) -> i32 {
    v as i32
}

/// cuDNN's handle, descriptors, algorithm and workspace for a forward conv of `c`.
fn cudnn_conv(g: &Arc<Gpu>, c: ConvParams) -> Result<CudnnConv, CudaError> {
    fn lib<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> CudaError {
        move |e| CudaError::lib(what, e)
    }
    let h = cudarc::cudnn::Cudnn::new(g.stream.clone()).map_err(lib("cudnnCreate"))?;
    let nchw = cds::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
    let xd = h
        .create_4d_tensor::<f32>(nchw, [i(c.n), i(c.c), i(c.h), i(c.w)])
        .map_err(lib("cudnnSetTensor4dDescriptor"))?;
    let wd = h
        .create_4d_filter::<f32>(nchw, [i(c.k), i(c.c), i(c.r), i(c.s)])
        .map_err(lib("cudnnSetFilter4dDescriptor"))?;
    let yd = h
        .create_4d_tensor::<f32>(nchw, [i(c.n), i(c.k), i(c.p()), i(c.q())])
        .map_err(lib("cudnnSetTensor4dDescriptor"))?;
    let mut conv = h
        .create_conv2d::<f32>(
            [i(c.pad_h), i(c.pad_w)],
            [i(c.stride_h), i(c.stride_w)],
            [1, 1],
            cds::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
        )
        .map_err(lib("cudnnSetConvolution2dDescriptor"))?;
    // Plain fp32 FMA math: no TF32 tensor cores, so the comparison is like for like.
    conv.set_math_type(cds::cudnnMathType_t::CUDNN_FMA_MATH)
        .map_err(lib("cudnnSetConvolutionMathType"))?;
    let (algo, ws) = {
        let op = cudarc::cudnn::ConvForward {
            conv: &conv,
            x: &xd,
            w: &wd,
            y: &yd,
        };
        let algo = op
            .pick_algorithm()
            .map_err(lib("cudnnGetConvolutionForwardAlgorithm_v7"))?;
        (
            algo,
            op.get_workspace_size(algo)
                .map_err(lib("cudnnGetConvolutionForwardWorkspaceSize"))?,
        )
    };
    let workspace = if ws > 0 {
        Some(
            g.stream
                .alloc_zeros::<u8>(ws)
                .map_err(lib("cuMemAlloc (workspace)"))?,
        )
    } else {
        None
    };
    Ok(CudnnConv {
        _handle: h,
        c,
        xd,
        wd,
        yd,
        conv,
        algo,
        workspace,
    })
}

impl Backend for Cudnn {
    fn name(&self) -> &'static str {
        "cudnn"
    }
    fn devices(&self) -> Vec<DeviceInfo> {
        device_infos(probe_cudnn)
    }
    fn versions(&self) -> Vec<(String, String)> {
        let mut v = cuda_versions();
        if probe_cudnn().is_ok() && gpu::inventory().is_ok() {
            // SAFETY: the library is present (probed above).
            let ver = unsafe { cds::cudnnGetVersion() };
            v.push((
                "cudnn".into(),
                format!("{}.{}.{}", ver / 10000, (ver % 10000) / 100, ver % 100),
            ));
        }
        v
    }
    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        common_supports(case, device)?;
        inference_only(case, "cudnn")?;
        if case.op() != Op::Conv2d {
            return Err(format!(
                "the cudnn backend runs conv2d only, not {}",
                case.op().as_str()
            ));
        }
        if case.dtype != DType::F32 {
            return Err(format!(
                "the cudnn backend runs fp32 only, not {}",
                case.dtype.as_str()
            ));
        }
        Ok(())
    }
    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        prepare_library(self, probe_cudnn, case, device, inputs, |g, _| {
            match case.params {
                Params::Conv2d(c) => cudnn_conv(g, c),
                _ => Err(CudaError::lib("cudnn", "runs conv2d only")),
            }
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
}
