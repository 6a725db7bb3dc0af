//! The plan builder: the one place where a case's device buffers and the steps of one call
//! are described and checked.
//!
//! Ops ([`crate::ops`]) add buffers (uploaded inputs, NaN-poisoned outputs, zeroed work
//! space) and then kernel launches, copies and memsets that address those buffers only
//! through element ranges ([`View`]s), which the builder checks against the buffers' lengths
//! when the step is added. The builder is plain host data: plans are built and inspected
//! without a GPU, and [`crate::device`] turns a finished one into device state.
//!
//! A copy or memset is checked completely here, so adding one is safe. What a kernel touches
//! is known only to the op that launches it, so adding a launch is `unsafe`: the op promises
//! that the arguments match the kernel's C signature and that the grid stays inside the views
//! it passes.
use crate::error::CudaError;
use crate::kernels::KernelId;
use crate::ops::rnn::RnnBwdArgs;
use wattbench_core::tensor::HostTensor;
use wattbench_core::DType;

/// A launch's grid or block dimensions.
pub(crate) type Dim3 = (u32, u32, u32);

/// Largest element count (and `int` argument) our kernels index with 32-bit ints.
pub(crate) const MAX_ELEMS: usize = i32::MAX as usize;

/// Largest dynamic shared memory of one block on the GPUs we target (sm_90: 227 KiB).
const MAX_SMEM_BYTES: u32 = 227 * 1024;

/// `ceil(a / b)` as a grid dimension.
pub(crate) fn blocks(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

/// Handle of one buffer of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BufId(usize);

impl BufId {
    /// Position in the plan's buffer list.
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// Elements `start..start + len` of one buffer. Plain data: checked where it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct View {
    buf: BufId,
    start: usize,
    len: usize,
}

impl View {
    /// The buffer.
    pub(crate) fn buf(self) -> BufId {
        self.buf
    }
    /// First element.
    pub(crate) fn start(self) -> usize {
        self.start
    }
    /// Number of elements.
    pub(crate) fn len(self) -> usize {
        self.len
    }
    /// The element range.
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }
}

/// How a buffer starts out.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init<'a> {
    /// These values (an input), converted to the buffer's dtype.
    Upload(&'a [f32]),
    /// NaN everywhere, so an output a kernel fails to write shows.
    Poison,
    /// Zeros (work space).
    Zero,
}

/// One buffer of a plan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BufSpec<'a> {
    /// Elements.
    pub(crate) len: usize,
    /// Element type (f32, or 16-bit floats stored as bits).
    pub(crate) dtype: DType,
    /// Contents before the first call.
    pub(crate) init: Init<'a>,
}

/// Which kernel a launch runs, and how: the launch shape an op chooses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Launch {
    /// Source file (CUDA module).
    pub(crate) kernel: KernelId,
    /// Entry point.
    pub(crate) entry: String,
    /// Grid.
    pub(crate) grid: Dim3,
    /// Block.
    pub(crate) block: Dim3,
    /// Dynamic shared memory bytes.
    pub(crate) smem: u32,
}

/// Bytes a 128-byte-swizzled TMA box row may span (the swizzle pattern's width).
const TMA_SWIZZLE_BYTES: usize = 128;

/// A 2-D TMA tensor map over a row-major matrix of 16-bit floats held in a view: what
/// `cuTensorMapEncodeTiled` is given once the view has a device address ([`crate::device`]
/// encodes it, with 128-byte swizzle and zeros read outside the matrix). The kernel receives
/// it by value as a `__grid_constant__` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TensorMap2d {
    /// The matrix: `rows` rows of `ld` elements.
    pub(crate) view: View,
    /// Rows (the outer dimension).
    pub(crate) rows: usize,
    /// Columns (the inner, contiguous dimension), at most `ld`: TMA reads zeros past them.
    pub(crate) cols: usize,
    /// Elements from one row to the next.
    pub(crate) ld: usize,
    /// One load's box: `[columns, rows]`.
    pub(crate) box_dims: [u32; 2],
}

impl TensorMap2d {
    /// Why the driver would refuse this map, or why it would read outside its view: TMA needs
    /// a 16-byte aligned start and row stride, a box at most 256 in each dimension, and (with
    /// 128-byte swizzle) box rows of at most 128 bytes in 16-byte units.
    pub(crate) fn check(&self, elem_bytes: usize) -> Result<(), String> {
        let [bc, br] = self.box_dims.map(|d| d as usize);
        let problems = [
            (
                self.rows == 0 || self.cols == 0,
                "an empty matrix".to_string(),
            ),
            (
                self.cols > self.ld,
                format!("{} columns in rows of {}", self.cols, self.ld),
            ),
            (
                self.rows.checked_mul(self.ld) != Some(self.view.len()),
                format!(
                    "{} x {} elements in a view of {}",
                    self.rows,
                    self.ld,
                    self.view.len()
                ),
            ),
            (
                !(self.ld * elem_bytes).is_multiple_of(16)
                    || !(self.view.start() * elem_bytes).is_multiple_of(16),
                format!(
                    "row stride {} B or start {} B not a multiple of 16",
                    self.ld * elem_bytes,
                    self.view.start() * elem_bytes
                ),
            ),
            (
                self.rows > u32::MAX as usize || self.cols > u32::MAX as usize,
                "a dimension over 2^32".to_string(),
            ),
            (
                !(1..=256).contains(&br)
                    || bc * elem_bytes > TMA_SWIZZLE_BYTES
                    || bc == 0
                    || !(bc * elem_bytes).is_multiple_of(16),
                format!("box {bc} x {br}"),
            ),
        ];
        match problems.into_iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(format!("tensor map over {:?}: {why}", self.view)),
            None => Ok(()),
        }
    }
}

/// A pointer argument (also a field of a by-value struct argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Ptr {
    /// The first element of a view; the kernel may touch the view's elements only.
    To(View),
    /// `nullptr`, for the kernels' nullable parameters.
    #[default]
    Null,
}

/// One kernel argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Arg {
    /// A pointer.
    Ptr(Ptr),
    /// An `int` (checked to fit when the launch is added).
    Int(usize),
    /// A `float`.
    F32(f32),
    /// The `RnnBwdArgs` struct of rnn.cu, by value.
    RnnBwd(RnnBwdArgs<Ptr>),
    /// A TMA tensor map (`WbTensorMap` in gemm_sm90.cu), by value.
    TensorMap(TensorMap2d),
}

impl From<View> for Arg {
    fn from(v: View) -> Self {
        Arg::Ptr(Ptr::To(v))
    }
}

impl From<View> for Ptr {
    fn from(v: View) -> Self {
        Ptr::To(v)
    }
}

/// The null pointer argument.
pub(crate) const NULL: Arg = Arg::Ptr(Ptr::Null);

/// One step of a call, in stream order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// A kernel launch.
    Launch(Launch, Vec<Arg>),
    /// Device-to-device copy of `src` into `dst` (same length and dtype, not overlapping).
    Copy {
        /// Destination.
        dst: View,
        /// Source.
        src: View,
    },
    /// Zero the view.
    Zero(View),
}

/// A plan under construction: buffers, steps and outputs, every view checked.
#[derive(Default)]
pub(crate) struct PlanBuilder<'a> {
    bufs: Vec<BufSpec<'a>>,
    steps: Vec<Step>,
    outputs: Vec<View>,
}

fn invalid(msg: String) -> CudaError {
    CudaError::Library {
        what: "building the plan",
        msg,
    }
}

impl<'a> PlanBuilder<'a> {
    /// An empty plan.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, len: usize, dtype: DType, init: Init<'a>) -> BufId {
        self.bufs.push(BufSpec { len, dtype, init });
        BufId(self.bufs.len() - 1)
    }

    /// A buffer holding `data` as `dtype`.
    pub(crate) fn upload(&mut self, data: &'a [f32], dtype: DType) -> BufId {
        self.push(data.len(), dtype, Init::Upload(data))
    }

    /// Every input, in order (so input `i` is buffer `i` when called first).
    pub(crate) fn upload_all(&mut self, inputs: &'a [HostTensor], dtype: DType) -> Vec<BufId> {
        inputs.iter().map(|t| self.upload(&t.data, dtype)).collect()
    }

    /// `len` elements of NaN: an output.
    pub(crate) fn poisoned(&mut self, len: usize, dtype: DType) -> BufId {
        self.push(len, dtype, Init::Poison)
    }

    /// `len` zeroed elements: work space.
    pub(crate) fn zeros(&mut self, len: usize, dtype: DType) -> BufId {
        self.push(len, dtype, Init::Zero)
    }

    /// All of buffer `id`.
    pub(crate) fn whole(&self, id: BufId) -> View {
        let len = self.bufs.get(id.0).map_or(0, |b| b.len);
        View {
            buf: id,
            start: 0,
            len,
        }
    }

    /// Elements `start..start + len` of buffer `id` (checked where the view is used).
    pub(crate) fn view(&self, id: BufId, start: usize, len: usize) -> View {
        View {
            buf: id,
            start,
            len,
        }
    }

    fn spec(&self, v: View) -> Result<&BufSpec<'a>, CudaError> {
        let b = self
            .bufs
            .get(v.buf.0)
            .ok_or_else(|| invalid(format!("{v:?}: no such buffer")))?;
        match v.start.checked_add(v.len) {
            Some(end) if end <= b.len => Ok(b),
            _ => Err(invalid(format!(
                "{v:?} outside buffer {} of {} elements",
                v.buf.0, b.len
            ))),
        }
    }

    /// Check that `v` lies inside its buffer and is exactly `len` elements of `dtype`: what an
    /// op establishes about the views it passes to a kernel, before launching it.
    pub(crate) fn expect(&self, v: View, len: usize, dtype: DType) -> Result<(), CudaError> {
        let b = self.spec(v)?;
        if v.len != len || b.dtype != dtype {
            return Err(invalid(format!(
                "{v:?} of {:?}: expected {len} elements of {dtype:?}",
                b.dtype
            )));
        }
        Ok(())
    }

    fn check_ptr(&self, p: Ptr) -> Result<(), CudaError> {
        match p {
            Ptr::To(v) => self.spec(v).map(|_| ()),
            Ptr::Null => Ok(()),
        }
    }

    /// Add a launch of `launch` with `args`, after checking that the entry point exists, the
    /// launch shape is valid, every view lies inside its buffer and every `int` fits.
    ///
    /// # Safety
    /// Only the caller knows the kernel, so it must guarantee that `args` match the C
    /// signature of `launch.entry` (count, order, and types: each [`Ptr`] a pointer to the
    /// element type of its view's buffer, each [`Arg::Int`] an `int`, each [`Arg::F32`] a
    /// `float`, [`Arg::RnnBwd`] the `RnnBwdArgs` struct, [`Arg::TensorMap`] a
    /// `__grid_constant__ WbTensorMap` of the view's element type), that with this grid, block and
    /// these arguments the kernel reads and writes only the elements of the views it is
    /// given ([`Ptr::Null`] only where the kernel accepts null), and that it needs no more
    /// dynamic shared memory than `launch.smem`.
    pub(crate) unsafe fn launch(
        &mut self,
        launch: Launch,
        args: Vec<Arg>,
    ) -> Result<(), CudaError> {
        let Launch {
            kernel,
            entry,
            grid,
            block,
            smem,
        } = &launch;
        if !kernel.entry_points().contains(entry) {
            return Err(invalid(format!(
                "no entry point {entry} in {}",
                kernel.file()
            )));
        }
        let dims = [grid.0, grid.1, grid.2, block.0, block.1, block.2];
        let threads = u64::from(block.0) * u64::from(block.1) * u64::from(block.2);
        // CUDA's limits: gridDim.x < 2^31, gridDim.y and .z <= 65535, blockDim.z <= 64.
        let beyond_cuda = grid.0 > i32::MAX as u32 || grid.1 > 65535 || grid.2 > 65535;
        if dims.contains(&0)
            || threads > 1024
            || block.2 > 64
            || beyond_cuda
            || *smem > MAX_SMEM_BYTES
        {
            return Err(invalid(format!("{entry}: bad launch shape {launch:?}")));
        }
        for a in &args {
            match *a {
                Arg::Ptr(p) => self.check_ptr(p)?,
                Arg::Int(n) if n > MAX_ELEMS => {
                    return Err(invalid(format!("{entry}: int argument {n} over 2^31-1")))
                }
                Arg::RnnBwd(s) => s
                    .pointers()
                    .into_iter()
                    .try_for_each(|p| self.check_ptr(p))?,
                Arg::TensorMap(m) => {
                    let b = self.spec(m.view)?;
                    if !matches!(b.dtype, DType::Bf16 | DType::F16) {
                        return Err(invalid(format!(
                            "{entry}: tensor map over {:?} data (16-bit floats only)",
                            b.dtype
                        )));
                    }
                    m.check(2).map_err(|e| invalid(format!("{entry}: {e}")))?;
                }
                Arg::Int(_) | Arg::F32(_) => {}
            }
        }
        self.steps.push(Step::Launch(launch, args));
        Ok(())
    }

    /// Copy `src` into `dst`: both inside their buffers, same length and dtype, no overlap.
    pub(crate) fn copy(&mut self, dst: View, src: View) -> Result<(), CudaError> {
        let (d, s) = (self.spec(dst)?.dtype, self.spec(src)?.dtype);
        let overlap = dst.buf == src.buf
            && dst.start < src.start + src.len
            && src.start < dst.start + dst.len;
        let problems = [
            (d != s, "different dtypes"),
            (dst.len != src.len, "different lengths"),
            (overlap, "overlapping views"),
        ];
        if let Some((_, why)) = problems.into_iter().find(|(bad, _)| *bad) {
            return Err(invalid(format!(
                "copy {src:?} ({s:?}) to {dst:?} ({d:?}): {why}"
            )));
        }
        self.steps.push(Step::Copy { dst, src });
        Ok(())
    }

    /// Zero `dst` (inside its buffer).
    pub(crate) fn zero(&mut self, dst: View) -> Result<(), CudaError> {
        self.spec(dst)?;
        self.steps.push(Step::Zero(dst));
        Ok(())
    }

    /// Add `v` to the outputs (downloaded as f32, in the order added).
    pub(crate) fn output(&mut self, v: View) -> Result<(), CudaError> {
        self.spec(v)?;
        self.outputs.push(v);
        Ok(())
    }

    /// The buffers.
    pub(crate) fn bufs(&self) -> &[BufSpec<'a>] {
        &self.bufs
    }

    /// The steps of one call.
    pub(crate) fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The outputs.
    pub(crate) fn outputs(&self) -> &[View] {
        &self.outputs
    }

    /// The entry points the steps launch, each once, in the order first launched (what a
    /// case records as its implementation), e.g. `conv2d_fwd_f32_bn64, conv2d_bwd_data_f32`.
    pub(crate) fn kernels(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for st in &self.steps {
            if let Step::Launch(l, _) = st {
                if !names.contains(&l.entry.as_str()) {
                    names.push(&l.entry);
                }
            }
        }
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sgd_like(w: View, n: usize) -> (Launch, Vec<Arg>) {
        let l = Launch {
            kernel: KernelId::Elementwise,
            entry: "sgd_update_f32".into(),
            grid: (1, 1, 1),
            block: (256, 1, 1),
            smem: 0,
        };
        (l, vec![w.into(), w.into(), Arg::F32(0.5), Arg::Int(n)])
    }

    /// `r` is the builder's refusal for the reason `why` (not merely any error).
    #[track_caller]
    fn refused<T: std::fmt::Debug>(r: Result<T, CudaError>, why: &str) {
        match r {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(why),
                    "refused for another reason than `{why}`: {msg}"
                );
            }
            Ok(v) => panic!("accepted ({v:?}); expected a refusal for `{why}`"),
        }
    }

    #[test]
    fn views_outside_their_buffer_are_refused_everywhere() {
        let mut b = PlanBuilder::new();
        let x = b.zeros(10, DType::F32);
        let y = b.poisoned(4, DType::F32);
        let h = b.zeros(4, DType::Bf16);
        let outside = "outside buffer";
        assert!(b.output(b.view(y, 1, 3)).is_ok());
        refused(b.output(b.view(y, 2, 3)), "outside buffer 1 of 4 elements");
        refused(b.output(b.view(y, usize::MAX, 2)), outside);
        assert!(b.zero(b.view(x, 10, 0)).is_ok());
        refused(b.zero(b.view(x, 10, 1)), "outside buffer 0 of 10 elements");
        refused(b.output(b.view(BufId(9), 0, 1)), "no such buffer");
        // Copies: same length and dtype, no overlap.
        assert!(b.copy(b.view(x, 0, 4), b.whole(y)).is_ok());
        refused(b.copy(b.view(x, 0, 5), b.whole(y)), "different lengths");
        refused(b.copy(b.whole(h), b.whole(y)), "different dtypes");
        refused(
            b.copy(b.view(x, 0, 4), b.view(x, 3, 4)),
            "overlapping views",
        );
        refused(b.copy(b.view(x, 0, 11), b.view(x, 0, 4)), outside);
        assert!(b.copy(b.view(x, 0, 4), b.view(x, 4, 4)).is_ok());
        // Launches: every view, every int, the entry point and the shape are checked.
        let (l, args) = sgd_like(b.whole(x), 10);
        // SAFETY: never run; only the builder's checks are exercised.
        assert!(unsafe { b.launch(l.clone(), args) }.is_ok());
        let (_, args) = sgd_like(b.view(x, 5, 6), 6);
        // SAFETY: as above.
        refused(unsafe { b.launch(l.clone(), args) }, outside);
        let (_, args) = sgd_like(b.whole(x), MAX_ELEMS + 1);
        // SAFETY: as above.
        refused(
            unsafe { b.launch(l.clone(), args) },
            "int argument 2147483648",
        );
        let (_, args) = sgd_like(b.whole(x), 10);
        let bad = Launch {
            entry: "no_such_kernel".into(),
            ..l.clone()
        };
        // SAFETY: as above.
        refused(
            unsafe { b.launch(bad, args.clone()) },
            "no entry point no_such_kernel",
        );
        let bad = Launch {
            grid: (0, 1, 1),
            ..l.clone()
        };
        // SAFETY: as above.
        refused(unsafe { b.launch(bad, args.clone()) }, "bad launch shape");
        // CUDA's own limits, which a launch would fail on with a less helpful error.
        for (grid, block) in [
            ((1, 1, 1), (1024, 2, 1)),
            ((1, 65536, 1), (32, 1, 1)),
            ((1, 1, 65536), (32, 1, 1)),
            ((1 << 31, 1, 1), (32, 1, 1)),
            ((1, 1, 1), (1, 1, 128)),
        ] {
            let bad = Launch {
                grid,
                block,
                ..l.clone()
            };
            // SAFETY: as above.
            refused(unsafe { b.launch(bad, args.clone()) }, "bad launch shape");
        }
        let edge = Launch {
            grid: ((1 << 31) - 1, 65535, 65535),
            block: (16, 1, 64),
            ..l.clone()
        };
        // SAFETY: as above; only recorded, never run.
        unsafe { b.launch(edge, args.clone()) }.expect("CUDA's largest grid");
        let rnn = RnnBwdArgs {
            carry: Ptr::To(b.view(x, 8, 3)),
            ..RnnBwdArgs::default()
        };
        // SAFETY: as above.
        refused(unsafe { b.launch(l, vec![Arg::RnnBwd(rnn)]) }, outside);
        assert_eq!(b.steps().len(), 5);
        assert_eq!(b.outputs(), [b.view(y, 1, 3)]);
    }

    #[test]
    fn tensor_maps_are_checked_against_their_view_and_tma_limits() {
        let mut b = PlanBuilder::new();
        // Room past the matrix, for a view that starts off the 16-byte alignment.
        let x = b.zeros(64 * 24 + 8, DType::Bf16);
        let f = b.zeros(64 * 24, DType::F32);
        let good = TensorMap2d {
            view: b.view(x, 0, 64 * 24),
            rows: 64,
            cols: 20,
            ld: 24,
            box_dims: [64, 128],
        };
        assert_eq!(good.check(2), Ok(()));
        // Each map breaks one rule, and is refused for that one.
        let bad = [
            (TensorMap2d { cols: 25, ..good }, "25 columns in rows of 24"),
            (
                TensorMap2d { rows: 65, ..good },
                "65 x 24 elements in a view of 1536",
            ),
            (
                TensorMap2d {
                    view: b.view(x, 0, 64 * 20),
                    ld: 20,
                    ..good
                },
                "row stride 40 B",
            ),
            (
                TensorMap2d {
                    view: b.view(x, 4, 64 * 24),
                    ..good
                },
                "start 8 B not a multiple of 16",
            ),
            (
                TensorMap2d {
                    box_dims: [72, 128],
                    ..good
                },
                "box 72 x 128",
            ),
            (
                TensorMap2d {
                    box_dims: [64, 257],
                    ..good
                },
                "box 64 x 257",
            ),
            (
                TensorMap2d {
                    box_dims: [0, 128],
                    ..good
                },
                "box 0 x 128",
            ),
            (TensorMap2d { rows: 0, ..good }, "an empty matrix"),
        ];
        for (m, why) in bad {
            let e = m.check(2).unwrap_err();
            assert!(e.contains(why), "{m:?}: {e}, expected `{why}`");
        }
        let l = Launch {
            kernel: KernelId::GemmSm90,
            entry: "gemm_wgmma_bf16_nn".into(),
            grid: (1, 1, 1),
            block: (384, 1, 1),
            smem: 0,
        };
        // SAFETY: never run; only the builder's checks are exercised.
        assert!(unsafe { b.launch(l.clone(), vec![Arg::TensorMap(good)]) }.is_ok());
        // SAFETY: as above.
        refused(
            unsafe { b.launch(l.clone(), vec![Arg::TensorMap(bad[1].0)]) },
            "gemm_wgmma_bf16_nn: tensor map over",
        );
        let over_f32 = TensorMap2d {
            view: b.whole(f),
            ..good
        };
        // SAFETY: as above.
        refused(
            unsafe { b.launch(l.clone(), vec![Arg::TensorMap(over_f32)]) },
            "tensor map over F32 data",
        );
        let past_the_buffer = TensorMap2d {
            view: b.view(x, 16, 64 * 24),
            ..good
        };
        // SAFETY: as above.
        refused(
            unsafe { b.launch(l, vec![Arg::TensorMap(past_the_buffer)]) },
            "outside buffer",
        );
    }

    #[test]
    fn blocks_rounds_up() {
        assert_eq!(blocks(1000, 128), 8);
        assert_eq!(blocks(1024, 128), 8);
        assert_eq!(blocks(1, 128), 1);
    }
}
