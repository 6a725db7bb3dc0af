//! Helpers of the training steps (`elementwise.cu`): the SGD update and column sums.
use crate::error::CudaError;
use crate::kernels::KernelId;
use crate::plan::{blocks, Arg, Launch, PlanBuilder, View};
use wattbench_core::workload::SGD_LR;
use wattbench_core::DType;

fn launch_shape(entry: &str, grid: u32, block: (u32, u32, u32)) -> Launch {
    Launch {
        kernel: KernelId::Elementwise,
        entry: entry.into(),
        grid: (grid, 1, 1),
        block,
        smem: 0,
    }
}

/// `w -= lr·grad` with the workload's learning rate ([`SGD_LR`]), in place.
pub(crate) fn sgd(b: &mut PlanBuilder, w: View, grad: View) -> Result<(), CudaError> {
    let n = w.len();
    b.expect(w, n, DType::F32)?;
    b.expect(grad, n, DType::F32)?;
    let shape = launch_shape("sgd_update_f32", blocks(n, 256).clamp(1, 4096), (256, 1, 1));
    let args = vec![w.into(), grad.into(), Arg::F32(SGD_LR as f32), Arg::Int(n)];
    // SAFETY: `sgd_update_f32(float* w, const float* g, float lr, int n)`; a grid-stride loop
    // over `i < n` touches `w[..n]` and `g[..n]`, the two f32 views just checked.
    unsafe { b.launch(shape, args) }
}

/// `dst[c] = Σ_r src[r][c]` over a row-major `[rows, cols]` `src`.
pub(crate) fn colsum(
    b: &mut PlanBuilder,
    src: View,
    dst: View,
    rows: usize,
    cols: usize,
) -> Result<(), CudaError> {
    b.expect(src, rows * cols, DType::F32)?;
    b.expect(dst, cols, DType::F32)?;
    let shape = launch_shape("colsum_f32", blocks(cols, 32), (32, 8, 1));
    let args = vec![src.into(), dst.into(), Arg::Int(rows), Arg::Int(cols)];
    // SAFETY: `colsum_f32(const float* src, float* dst, int rows, int cols)` with its documented
    // block (32, 8); it reads `src[r * cols + c]` for `r < rows`, `c < cols` and writes
    // `dst[c]` for `c < cols`: the f32 views just checked.
    unsafe { b.launch(shape, args) }
}

/// Copy a row-major `[rows, cols]` matrix of 16-bit floats into rows of `ld >= cols` elements
/// (the Hopper GEMM's TMA needs row strides of 16 bytes); the columns past `cols` keep what
/// `dst` held.
pub(crate) fn pad_rows(
    b: &mut PlanBuilder,
    src: View,
    dst: View,
    [rows, cols, ld]: [usize; 3],
    dtype: DType,
) -> Result<(), CudaError> {
    if dtype == DType::F32 || ld < cols {
        return Err(CudaError::lib(
            "building the plan",
            format!("pad_rows: {dtype:?} data, {cols} columns into rows of {ld}"),
        ));
    }
    b.expect(src, rows * cols, dtype)?;
    b.expect(dst, rows * ld, dtype)?;
    let shape = launch_shape(
        "pad_rows_u16",
        blocks(rows * cols, 256).clamp(1, 4096),
        (256, 1, 1),
    );
    let args = vec![
        src.into(),
        dst.into(),
        Arg::Int(rows),
        Arg::Int(cols),
        Arg::Int(ld),
    ];
    // SAFETY: `pad_rows_u16(const u16* src, u16* dst, int rows, int cols, int ld)`; a
    // grid-stride loop over `i < rows * cols` reads `src[i]` and writes `dst[r * ld + c]` with
    // `c < cols <= ld`, `r < rows`: inside the two 16-bit views just checked.
    unsafe { b.launch(shape, args) }
}
