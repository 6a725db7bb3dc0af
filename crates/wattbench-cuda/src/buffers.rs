//! Device buffers in a case's dtype, uploads/downloads as f32, and kernel launches with raw
//! device pointers (so one allocation can be passed as several offset slices per launch).
use crate::error::CudaError;
use crate::gpu::Gpu;
use cudarc::driver::{CudaFunction, CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};
use half::{bf16, f16};
use wattbench_core::DType;

/// A device allocation: f32, or 16-bit floats as raw bits.
pub enum DevBuf {
    /// fp32 values.
    F32(CudaSlice<f32>),
    /// bf16 or f16 bits.
    U16(CudaSlice<u16>, DType),
}

fn to_bits(data: &[f32], dtype: DType) -> Vec<u16> {
    match dtype {
        DType::Bf16 => data.iter().map(|&v| bf16::from_f32(v).to_bits()).collect(),
        _ => data.iter().map(|&v| f16::from_f32(v).to_bits()).collect(),
    }
}

impl DevBuf {
    /// Upload `data` (already representable in `dtype`) as `dtype`.
    pub fn upload(g: &Gpu, data: &[f32], dtype: DType) -> Result<Self, CudaError> {
        let e = |e| CudaError::lib("cuMemcpyHtoD", e);
        Ok(match dtype {
            DType::F32 => DevBuf::F32(g.stream.clone_htod(data).map_err(e)?),
            d => DevBuf::U16(g.stream.clone_htod(&to_bits(data, d)).map_err(e)?, d),
        })
    }

    /// `n` elements of `dtype` filled with NaN, so an output a kernel fails to write shows.
    pub fn poisoned(g: &Gpu, n: usize, dtype: DType) -> Result<Self, CudaError> {
        Self::upload(g, &vec![f32::NAN; n], dtype)
    }

    /// `n` zeroed elements.
    pub fn zeros(g: &Gpu, n: usize, dtype: DType) -> Result<Self, CudaError> {
        let e = |e| CudaError::lib("cuMemAlloc", e);
        Ok(match dtype {
            DType::F32 => DevBuf::F32(g.stream.alloc_zeros(n).map_err(e)?),
            d => DevBuf::U16(g.stream.alloc_zeros(n).map_err(e)?, d),
        })
    }

    /// Copy back as f32.
    pub fn download(&self, g: &Gpu) -> Result<Vec<f32>, CudaError> {
        self.download_range(g, 0..self.len())
    }

    /// Copy elements `range` back as f32.
    pub fn download_range(
        &self,
        g: &Gpu,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<f32>, CudaError> {
        if range.start > range.end || range.end > self.len() {
            return Err(CudaError::lib(
                "download",
                format!("range {range:?} outside a buffer of {}", self.len()),
            ));
        }
        let e = |e| CudaError::lib("cuMemcpyDtoH", e);
        Ok(match self {
            DevBuf::F32(s) => g.stream.clone_dtoh(&s.slice(range)).map_err(e)?,
            DevBuf::U16(s, DType::Bf16) => g
                .stream
                .clone_dtoh(&s.slice(range))
                .map_err(e)?
                .into_iter()
                .map(|b| bf16::from_bits(b).to_f32())
                .collect(),
            DevBuf::U16(s, _) => g
                .stream
                .clone_dtoh(&s.slice(range))
                .map_err(e)?
                .into_iter()
                .map(|b| f16::from_bits(b).to_f32())
                .collect(),
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            DevBuf::F32(s) => s.len(),
            DevBuf::U16(s, _) => s.len(),
        }
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw device address (valid while `self` lives).
    pub fn ptr(&self, g: &Gpu) -> u64 {
        match self {
            DevBuf::F32(s) => s.device_ptr(&g.stream).0,
            DevBuf::U16(s, _) => s.device_ptr(&g.stream).0,
        }
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        match self {
            DevBuf::F32(s) => s.len() * 4,
            DevBuf::U16(s, _) => s.len() * 2,
        }
    }
}

/// One kernel argument.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// A device pointer.
    Ptr(u64),
    /// An `int`.
    I32(i32),
    /// A `float`.
    F32(f32),
    /// The `RnnBwdArgs` struct of rnn.cu, by value.
    RnnBwd(RnnBwdArgs),
}

/// Mirror of `struct RnnBwdArgs` in kernels/rnn.cu (same field order and C layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RnnBwdArgs {
    /// HS[s] (vanilla) or h_{s-1} (GRU).
    pub hs: u64,
    /// save[s].
    pub save: u64,
    /// LSTM c_{s-1}.
    pub cprev: u64,
    /// Row pitch of `cprev` in elements.
    pub cprev_pitch: i32,
    /// dXP[s].
    pub dxp: u64,
    /// dREC[s].
    pub drec: u64,
    /// LSTM dc carry / GRU direct term.
    pub carry: u64,
}

// SAFETY: plain-old-data with the kernel's C layout (checked by a size test).
unsafe impl cudarc::driver::DeviceRepr for RnnBwdArgs {}

/// Launch `f` on `g`'s stream.
///
/// # Safety
/// `args` must match the kernel's parameter list, and every pointer must address device
/// memory that stays allocated until the launch completes, large enough for the grid.
pub unsafe fn launch(
    g: &Gpu,
    f: &CudaFunction,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    smem: u32,
    args: &[Arg],
) -> Result<(), CudaError> {
    let mut b = g.stream.launch_builder(f);
    for a in args {
        match a {
            Arg::Ptr(p) => b.arg(p),
            Arg::I32(v) => b.arg(v),
            Arg::F32(v) => b.arg(v),
            Arg::RnnBwd(v) => b.arg(v),
        };
    }
    let cfg = LaunchConfig {
        grid_dim: grid,
        block_dim: block,
        shared_mem_bytes: smem,
    };
    // SAFETY: forwarded to the caller.
    unsafe { b.launch(cfg) }
        .map(|_| ())
        .map_err(|e| CudaError::lib("cuLaunchKernel", e))
}

/// `ceil(a / b)` as a grid dimension.
pub fn blocks(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

/// Largest element count our kernels index with 32-bit ints.
pub const MAX_ELEMS: usize = i32::MAX as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_exactly_for_representable_values() {
        let v = [1.0f32, -0.5, 0.099609375, 3.0];
        let b = to_bits(&v, DType::Bf16);
        let back: Vec<f32> = b.iter().map(|&x| bf16::from_bits(x).to_f32()).collect();
        assert_eq!(back, v);
        assert_eq!(to_bits(&[1.0], DType::F16), vec![0x3c00]);
    }

    #[test]
    fn rnn_bwd_args_has_the_c_layout() {
        assert_eq!(std::mem::size_of::<RnnBwdArgs>(), 56);
        assert_eq!(std::mem::offset_of!(RnnBwdArgs, dxp), 32);
    }

    #[test]
    fn blocks_rounds_up() {
        assert_eq!(blocks(1000, 128), 8);
        assert_eq!(blocks(1024, 128), 8);
        assert_eq!(blocks(1, 128), 1);
    }
}
