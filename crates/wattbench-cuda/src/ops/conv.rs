//! Conv2d (`conv.cu`, implicit GEMM): the forward tile choice, the backward-data and
//! backward-filter launches, and the inference and training plans.
use super::elementwise::sgd;
use crate::error::CudaError;
use crate::kernels::KernelId;
use crate::plan::{blocks, Arg, BufId, Dim3, Launch, PlanBuilder, View};
use wattbench_core::workload::ConvParams;
use wattbench_core::{DType, Mode};

fn launch_shape(entry: &str, grid: Dim3) -> Launch {
    Launch {
        kernel: KernelId::Conv,
        entry: entry.into(),
        grid,
        block: (256, 1, 1),
        smem: 0,
    }
}

/// The forward kernel for `c`: the 64-wide tile when K <= 64 (no half-empty tiles), grid
/// `(ceil(N·P·Q/128), ceil(K/BN))`.
pub(crate) fn forward_shape(c: &ConvParams) -> Launch {
    let m = c.n * c.p() * c.q();
    if c.k <= 64 {
        launch_shape("conv2d_fwd_f32_bn64", (blocks(m, 128), blocks(c.k, 64), 1))
    } else {
        launch_shape(
            "conv2d_fwd_f32_bn128",
            (blocks(m, 128), blocks(c.k, 128), 1),
        )
    }
}

/// `(x, w, y)` element counts of `c`.
fn sizes(c: &ConvParams) -> (usize, usize, usize) {
    (
        c.n * c.c * c.h * c.w,
        c.k * c.c * c.r * c.s,
        c.n * c.k * c.p() * c.q(),
    )
}

/// Three tensor pointers, then the 13 shape arguments every conv kernel takes.
fn args(views: [View; 3], c: &ConvParams) -> Vec<Arg> {
    let shape = [
        c.n,
        c.c,
        c.h,
        c.w,
        c.k,
        c.r,
        c.s,
        c.p(),
        c.q(),
        c.pad_h,
        c.pad_w,
        c.stride_h,
        c.stride_w,
    ];
    let mut v: Vec<Arg> = views.map(Arg::from).to_vec();
    v.extend(shape.map(Arg::Int));
    v
}

/// Check that `views` are f32 tensors of exactly `lens` elements.
fn expect(b: &PlanBuilder, views: [View; 3], lens: [usize; 3]) -> Result<(), CudaError> {
    for (v, n) in views.into_iter().zip(lens) {
        b.expect(v, n, DType::F32)?;
    }
    Ok(())
}

/// `y = conv(x, w)`.
fn forward(b: &mut PlanBuilder, c: &ConvParams, [x, w, y]: [View; 3]) -> Result<(), CudaError> {
    let (nx, nw, ny) = sizes(c);
    expect(b, [x, w, y], [nx, nw, ny])?;
    // SAFETY: `conv2d_fwd_f32_bn{64,128}(const float* x, const float* w, float* y, 13 ints)`,
    // launched with the grid and 256 threads it documents; it reads x [N,C,H,W] and
    // w [K,C,R,S] and writes y [N,K,P,Q] with every index guarded by the shape, and the views
    // were just checked to be exactly those f32 tensors.
    unsafe { b.launch(forward_shape(c), args([x, w, y], c)) }
}

/// Backward-data into `dx`, then backward-filter into `dw` (zeroed first: the filter kernel
/// adds split reductions with atomics), reading `x`, `w` and `dy`.
fn backward(
    b: &mut PlanBuilder,
    c: &ConvParams,
    [x, w, dy]: [View; 3],
    [dx, dw]: [View; 2],
) -> Result<(), CudaError> {
    let (nx, nw, ny) = sizes(c);
    expect(b, [dy, w, dx], [ny, nw, nx])?;
    expect(b, [x, dy, dw], [nx, ny, nw])?;
    let (crs, npq) = (c.c * c.r * c.s, c.n * c.p() * c.q());
    let data = launch_shape(
        "conv2d_bwd_data_f32",
        (blocks(c.n * c.h * c.w, 128), blocks(c.c, 64), 1),
    );
    // SAFETY: `conv2d_bwd_data_f32(const float* dy, const float* w, float* dx, 13 ints)` with
    // its documented grid (ceil(N·H·W/128), ceil(C/64)) and 256 threads; it reads dy and w and
    // writes dx within the shape's extents, the f32 views just checked.
    unsafe { b.launch(data, args([dy, w, dx], c)) }?;
    b.zero(dw)?;
    // Split the N·P·Q reduction so that about 2 blocks per SM-ish run even for small K·CRS.
    let tiles = blocks(c.k, 128) * blocks(crs, 64);
    let splits = (264 / tiles.max(1)).clamp(1, blocks(npq, 16 * 8).max(1));
    let filter = launch_shape(
        "conv2d_bwd_filter_f32",
        (blocks(c.k, 128), blocks(crs, 64), splits),
    );
    // SAFETY: `conv2d_bwd_filter_f32(const float* x, const float* dy, float* dw, 13 ints)` with
    // its documented grid (ceil(K/128), ceil(C·R·S/64), splits) and 256 threads; each split
    // reads its share of x and dy and adds into dw within the shape's extents, the f32 views
    // just checked.
    unsafe { b.launch(filter, args([x, dy, dw], c)) }
}

/// The plan of a conv2d case on inputs `ins` (`x`, `w`, and in training `dy`); returns the
/// outputs: `[y]`, or in training `[y, dx, dw, w_new]` (W updated in place).
pub(crate) fn plan(
    b: &mut PlanBuilder,
    c: &ConvParams,
    mode: Mode,
    ins: &[BufId],
) -> Result<Vec<View>, CudaError> {
    let (nx, nw, ny) = sizes(c);
    let f32 = DType::F32;
    if mode == Mode::Infer {
        let [x, w] = super::inputs(ins, "conv2d")?;
        let y = b.poisoned(ny, f32);
        let views = [x, w, y].map(|i| b.whole(i));
        forward(b, c, views)?;
        return Ok(vec![views[2]]);
    }
    let [x, w, dy] = super::inputs(ins, "conv2d training")?;
    let y = b.poisoned(ny, f32);
    let dx = b.poisoned(nx, f32);
    let dw = b.poisoned(nw, f32);
    let [x, w, dy, y, dx, dw] = [x, w, dy, y, dx, dw].map(|i| b.whole(i));
    forward(b, c, [x, w, y])?;
    backward(b, c, [x, w, dy], [dx, dw])?;
    sgd(b, w, dw)?;
    Ok(vec![y, dx, dw, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_tile_follows_k() {
        let c = ConvParams::new(2, 3, 7, 7, 65, 3, 3)
            .padded(1, 1)
            .strided(2, 2);
        let l = forward_shape(&c);
        assert_eq!(
            (l.entry.as_str(), l.grid),
            ("conv2d_fwd_f32_bn128", (1, 1, 1))
        );
        let l = forward_shape(&ConvParams { k: 64, ..c });
        assert_eq!(l.entry, "conv2d_fwd_f32_bn64");
        let mut b = PlanBuilder::new();
        let v = b.zeros(1, DType::F32);
        assert_eq!(args([b.whole(v); 3], &c).len(), 16);
    }
}
