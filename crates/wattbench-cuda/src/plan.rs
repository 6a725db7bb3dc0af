//! A prepared GPU computation as data: owned buffers plus a list of launches and copies that
//! one call replays. Shared by the `cuda` backend and the backward-kernel drivers.
use crate::buffers::{launch, Arg, DevBuf};
use crate::error::CudaError;
use crate::gpu::{Gpu, MemTracker};
use cudarc::driver::CudaFunction;
use std::sync::Arc;
use std::time::Duration;
use wattbench_core::{BackendError, Prepared};

/// One step of a call.
pub enum Step {
    /// A kernel launch.
    Launch {
        /// The kernel.
        f: CudaFunction,
        /// Grid.
        grid: (u32, u32, u32),
        /// Block.
        block: (u32, u32, u32),
        /// Dynamic shared memory bytes.
        smem: u32,
        /// Arguments (pointers into the plan's buffers).
        args: Vec<Arg>,
    },
    /// Device-to-device copy of `bytes`.
    Copy {
        /// Destination address.
        dst: u64,
        /// Source address.
        src: u64,
        /// Bytes.
        bytes: usize,
    },
    /// Zero `bytes` at `dst`.
    Zero {
        /// Destination address.
        dst: u64,
        /// Bytes.
        bytes: usize,
    },
}

/// One output of a plan: elements `range` of buffer `buf` (the whole buffer when `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Index into the plan's buffers.
    pub buf: usize,
    /// Element range within the buffer.
    pub range: Option<std::ops::Range<usize>>,
}

impl Output {
    /// The whole of buffer `buf`.
    pub fn whole(buf: usize) -> Self {
        Self { buf, range: None }
    }
    /// `len` elements of buffer `buf` from element `start`.
    pub fn part(buf: usize, start: usize, len: usize) -> Self {
        Self {
            buf,
            range: Some(start..start + len),
        }
    }
}

/// Buffers and the steps of one call on one GPU.
pub struct Plan {
    /// The device.
    pub gpu: Arc<Gpu>,
    /// Every allocation the steps address (kept alive here).
    pub bufs: Vec<DevBuf>,
    /// The call.
    pub steps: Vec<Step>,
    /// The outputs, in `Case::output_specs` order.
    pub outputs: Vec<Output>,
    /// Backend name, for errors.
    pub backend: &'static str,
    /// Device memory tracking from before the first allocation.
    pub mem: MemTracker,
}

impl Plan {
    /// Run the steps once (asynchronously).
    pub fn run(&self) -> Result<(), CudaError> {
        let g = &self.gpu;
        let s = g.stream.cu_stream();
        for st in &self.steps {
            match st {
                // SAFETY: plans are built with argument lists matching their kernels and
                // pointers into `self.bufs`, sized for the grids (see the builders).
                Step::Launch {
                    f,
                    grid,
                    block,
                    smem,
                    args,
                } => unsafe { launch(g, f, *grid, *block, *smem, args)? },
                // SAFETY: addresses and sizes come from `self.bufs`.
                Step::Copy { dst, src, bytes } => unsafe {
                    cudarc::driver::result::memcpy_dtod_async(*dst, *src, *bytes, s)
                        .map_err(|e| CudaError::lib("cuMemcpyDtoDAsync", e))?
                },
                // SAFETY: as above.
                Step::Zero { dst, bytes } => unsafe {
                    cudarc::driver::result::memset_d8_async(*dst, 0, *bytes, s)
                        .map_err(|e| CudaError::lib("cuMemsetD8Async", e))?
                },
            }
        }
        Ok(())
    }

    /// Address of buffer `i`.
    pub fn ptr(&self, i: usize) -> u64 {
        self.bufs[i].ptr(&self.gpu)
    }
}

impl Prepared for Plan {
    fn execute(&mut self) -> Result<(), BackendError> {
        self.run().map_err(|e| e.into_backend(self.backend))
    }
    fn sync(&mut self) -> Result<(), BackendError> {
        self.gpu.sync().map_err(|e| e.into_backend(self.backend))?;
        self.mem.observe(&self.gpu);
        Ok(())
    }
    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        self.sync()?;
        self.outputs
            .iter()
            .map(|o| {
                let b = &self.bufs[o.buf];
                match &o.range {
                    None => b.download(&self.gpu),
                    Some(r) => b.download_range(&self.gpu, r.clone()),
                }
                .map_err(|e| e.into_backend(self.backend))
            })
            .collect()
    }
    fn time_iters(&mut self, iters: u64) -> Result<Duration, BackendError> {
        let d = self
            .gpu
            .time_with_events(iters, || self.run())
            .map_err(|e| e.into_backend(self.backend))?;
        self.mem.observe(&self.gpu);
        Ok(d)
    }
    fn device_peak_bytes(&mut self) -> Option<u64> {
        self.mem.peak_bytes()
    }
}
