//! The kernel sources (`kernels/*.cu` at the repository root), embedded at build time under
//! [`KernelId`], with the entry points each one defines.

/// Helpers pasted in front of every kernel file (NVRTC compiles one string per program).
const COMMON: &str = include_str!("../../../kernels/common.cuh");

/// One kernel source file: one NVRTC program, one CUDA module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelId {
    /// `gemm.cu`: naive, tiled fp32 and tensor-core (`mma.sync`) GEMMs.
    Gemm,
    /// `gemm_sm90.cu`: the Hopper GEMM (wgmma fed by TMA), for sm_90a only.
    GemmSm90,
    /// `conv.cu`: implicit-GEMM conv2d forward, backward-data and backward-filter.
    Conv,
    /// `rnn.cu`: fused vanilla/LSTM/GRU steps, forward and backward.
    Rnn,
    /// `elementwise.cu`: SGD update, activation backward, column sums, fills, conversions.
    Elementwise,
}

const TRANSPOSES: [&str; 4] = ["nn", "nt", "tn", "tt"];

impl KernelId {
    /// Every kernel file.
    pub const ALL: [KernelId; 5] = [
        KernelId::Gemm,
        KernelId::GemmSm90,
        KernelId::Conv,
        KernelId::Rnn,
        KernelId::Elementwise,
    ];

    /// File name under `kernels/`.
    pub fn file(self) -> &'static str {
        match self {
            KernelId::Gemm => "gemm.cu",
            KernelId::GemmSm90 => "gemm_sm90.cu",
            KernelId::Conv => "conv.cu",
            KernelId::Rnn => "rnn.cu",
            KernelId::Elementwise => "elementwise.cu",
        }
    }

    fn body(self) -> &'static str {
        match self {
            KernelId::Gemm => include_str!("../../../kernels/gemm.cu"),
            KernelId::GemmSm90 => include_str!("../../../kernels/gemm_sm90.cu"),
            KernelId::Conv => include_str!("../../../kernels/conv.cu"),
            KernelId::Rnn => include_str!("../../../kernels/rnn.cu"),
            KernelId::Elementwise => include_str!("../../../kernels/elementwise.cu"),
        }
    }

    /// The architecture NVRTC compiles this file for on a GPU of compute capability `arch`
    /// (`"89"` for `compute_89`), or `None` when the file cannot run there. The Hopper GEMM
    /// uses sm_90a's arch-specific instructions (wgmma, setmaxnreg), so it is compiled for
    /// `compute_90a`, whose PTX loads on compute capability 9.0 only (not on later GPUs).
    pub fn target(self, arch: u32) -> Option<String> {
        match self {
            KernelId::GemmSm90 => (arch == 90).then(|| "90a".to_string()),
            _ => Some(arch.to_string()),
        }
    }

    /// The full program text given to NVRTC: the shared helpers, then the file (with a
    /// `#line` directive so NVRTC's log points into the file itself).
    pub fn source(self) -> String {
        format!("{COMMON}\n#line 1 \"{}\"\n{}", self.file(), self.body())
    }

    /// Entry points (`extern "C" __global__` functions) the file defines.
    pub fn entry_points(self) -> Vec<String> {
        let mut v = Vec::new();
        match self {
            KernelId::Gemm => {
                for t in TRANSPOSES {
                    v.push(format!("gemm_naive_f32_{t}"));
                    v.push(format!("gemm_tiled_f32_{t}"));
                    v.push(format!("gemm_tc_bf16_{t}"));
                    v.push(format!("gemm_tc_f16_{t}"));
                }
            }
            KernelId::GemmSm90 => {
                for t in TRANSPOSES {
                    for ty in ["bf16", "f16"] {
                        v.push(format!("gemm_wgmma_{ty}_{t}"));
                        v.push(format!("gemm_wgmma_n64_{ty}_{t}"));
                        v.push(format!("gemm_wgmma_c2_{ty}_{t}"));
                    }
                }
                v.push("gemm_splitk_reduce_bf16".into());
                v.push("gemm_splitk_reduce_f16".into());
            }
            KernelId::Conv => {
                for n in [
                    "conv2d_fwd_f32_bn128",
                    "conv2d_fwd_f32_bn64",
                    "conv2d_bwd_data_f32",
                    "conv2d_bwd_filter_f32",
                ] {
                    v.push(n.to_string());
                }
            }
            KernelId::Rnn => {
                for c in ["vanilla", "lstm", "gru"] {
                    v.push(format!("rnn_fwd_{c}"));
                    v.push(format!("rnn_bwd_{c}"));
                    v.push(format!("rnn_bwd_last_{c}"));
                }
            }
            KernelId::Elementwise => {
                for n in [
                    "sgd_update_f32",
                    "relu_bwd_f32",
                    "tanh_bwd_f32",
                    "sigmoid_bwd_f32",
                    "colsum_f32",
                    "fill_u32",
                    "f32_to_bf16",
                    "f32_to_f16",
                    "pad_rows_u16",
                ] {
                    v.push(n.to_string());
                }
            }
        }
        v
    }

    /// The cluster shape an entry point is compiled for (`__cluster_dims__`), if any: the
    /// Hopper GEMM's cluster kernels (`gemm_wgmma_c2_*`) run in clusters of two CTAs along x.
    /// The kernel check holds the PTX to this.
    pub fn cluster(entry: &str) -> Option<[u32; 3]> {
        entry.starts_with("gemm_wgmma_c2_").then_some([2, 1, 1])
    }

    /// Whether an entry point is a main (performance-critical) kernel, where a register spill
    /// fails the kernel check. The naive baseline and the elementwise helpers are not.
    pub fn is_main(entry: &str) -> bool {
        !(entry.starts_with("gemm_naive") || entry.starts_with("rnn_bwd_last"))
            && KernelId::Elementwise
                .entry_points()
                .iter()
                .all(|e| e != entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_family_appears_in_its_source() {
        // Exact names are checked against the compiled PTX by the kernel check; many are built
        // by macros, so here only the family prefix (`gemm_tc`, `rnn_bwd`, ...) is checked.
        for id in KernelId::ALL {
            let src = id.source();
            for e in id.entry_points() {
                let family: Vec<&str> = e.split('_').take(2).collect();
                let family = family.join("_");
                assert!(
                    src.contains(&family),
                    "{e} ({family}) not found in {}",
                    id.file()
                );
            }
        }
    }

    #[test]
    fn only_the_hopper_gemm_is_arch_specific() {
        for id in KernelId::ALL {
            for arch in [80, 86, 89, 90, 100] {
                let want = match id {
                    KernelId::GemmSm90 => (arch == 90).then(|| "90a".to_string()),
                    _ => Some(arch.to_string()),
                };
                assert_eq!(id.target(arch), want, "{id:?} on sm_{arch}");
            }
        }
    }

    #[test]
    fn main_kernels_exclude_baselines_and_helpers() {
        assert!(KernelId::is_main("gemm_tiled_f32_nn"));
        assert!(KernelId::is_main("rnn_fwd_lstm"));
        assert!(KernelId::is_main("gemm_wgmma_bf16_tn"));
        assert!(!KernelId::is_main("pad_rows_u16"));
        assert!(!KernelId::is_main("gemm_naive_f32_nn"));
        assert!(!KernelId::is_main("sgd_update_f32"));
    }
}
