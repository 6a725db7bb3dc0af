//! Our kernels, one module per op: each owns its launch shapes and builds its inference and
//! training plans on a [`PlanBuilder`]. The `unsafe` launches live here, next to the shapes
//! and extents they depend on. A new op is one module and one arm of [`build`].
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod rnn;

use crate::error::CudaError;
use crate::plan::{BufId, PlanBuilder};
use wattbench_core::tensor::HostTensor;
use wattbench_core::{Case, Params};

/// Which of our kernel sets a `cuda*` backend plans with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// The best kernel per case of gemm.cu, conv.cu and rnn.cu (the `cuda` backend).
    Best,
    /// The naive GEMM baseline (`cuda-naive`).
    Naive,
    /// The Hopper GEMM of gemm_sm90.cu (`cuda-wgmma`).
    Wgmma,
    /// The Hopper GEMM with clusters of two CTAs sharing B by TMA multicast where the shape
    /// allows, the plain Hopper GEMM elsewhere (`cuda-wgmma-c2`).
    WgmmaCluster,
}

/// A `cuda*` backend's plan for `case` on `inputs` (already checked against the case), for a
/// GPU with `sms` multiprocessors (the Hopper GEMM's persistent grid): the inputs uploaded in
/// order, then the op's buffers, steps and outputs.
pub(crate) fn build<'a>(
    case: &Case,
    kernels: Kernels,
    sms: u32,
    inputs: &'a [HostTensor],
) -> Result<PlanBuilder<'a>, CudaError> {
    let mut b = PlanBuilder::new();
    let ins = b.upload_all(inputs, case.dtype);
    let gemm_only = || {
        CudaError::lib(
            "building the plan",
            format!(
                "{kernels:?} kernels run GEMM only, not {}",
                case.op().as_str()
            ),
        )
    };
    let outputs = match case.params {
        Params::Gemm(p) => gemm::plan(&mut b, &p, case.mode, case.dtype, (kernels, sms), &ins)?,
        _ if kernels != Kernels::Best => return Err(gemm_only()),
        Params::Conv2d(c) => conv::plan(&mut b, &c, case.mode, &ins)?,
        Params::Rnn(r) => rnn::plan(&mut b, &r, case.mode, &ins)?,
    };
    for v in outputs {
        b.output(v)?;
    }
    Ok(b)
}

/// `N` input buffers, or an error naming `what` (counts are checked before planning).
pub(crate) fn inputs<const N: usize>(ins: &[BufId], what: &str) -> Result<[BufId; N], CudaError> {
    ins.try_into().map_err(|_| {
        CudaError::lib(
            "building the plan",
            format!("{what}: {} inputs, expected {N}", ins.len()),
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernels::KernelId;
    use crate::plan::Step;
    use wattbench_core::tensor::generate_case_inputs;
    use wattbench_core::workload::GemmParams;
    use wattbench_core::{testing, DType, Mode, Op};

    /// `f` on the plan of a case (seeded inputs) and the case.
    fn with_plan<R>(
        params: Params,
        mode: Mode,
        dtype: DType,
        kernels: Kernels,
        f: impl FnOnce(&Case, &PlanBuilder) -> R,
    ) -> R {
        let case = Case {
            params,
            mode,
            dtype,
            tag: None,
        };
        let inputs = generate_case_inputs(&case, 1);
        let b = build(&case, kernels, 132, &inputs).unwrap_or_else(|e| panic!("{case}: {e}"));
        f(&case, &b)
    }

    /// Every plan the `cuda` backend builds for the generic check's shapes (and odd sizes),
    /// in every mode and dtype it supports: outputs with the case's output lengths, every
    /// launch's entry point defined by its file, every step checked by the builder.
    #[test]
    fn every_plan_builds_with_the_case_outputs() {
        let mut launched = std::collections::BTreeSet::new();
        // The generic check's shapes, plus K > 64 (the 128-wide conv tile).
        let Params::Conv2d(c) = testing::shapes(Op::Conv2d)[1] else {
            unreachable!()
        };
        let wide = Params::Conv2d(wattbench_core::workload::ConvParams { k: 70, ..c });
        // And for the Hopper GEMM, in every layout: N > 128 (the 256-wide tile), a long K
        // over few tiles (split K), and three tile rows (clusters of two, one row past M).
        let layouts = [(false, false), (false, true), (true, false), (true, true)];
        let hopper = layouts.into_iter().flat_map(|(ta, tb)| {
            [
                GemmParams::new(40, 300, 24).transposed(ta, tb),
                GemmParams::new(150, 20, 1100).transposed(ta, tb),
                GemmParams::new(300, 300, 24).transposed(ta, tb),
            ]
            .map(Params::Gemm)
        });
        for op in Op::ALL {
            let extra: Vec<Params> = match op {
                Op::Conv2d => vec![wide],
                Op::Gemm => hopper.clone().collect(),
                Op::Rnn => vec![],
            };
            for params in testing::shapes(op).into_iter().chain(extra) {
                let wgmma = Kernels::Wgmma;
                let c2 = Kernels::WgmmaCluster;
                for (mode, dtype, kernels) in [
                    (Mode::Infer, DType::F32, Kernels::Best),
                    (Mode::Infer, DType::F32, Kernels::Naive),
                    (Mode::Infer, DType::Bf16, Kernels::Best),
                    (Mode::Infer, DType::F16, Kernels::Best),
                    (Mode::Infer, DType::Bf16, wgmma),
                    (Mode::Infer, DType::F16, wgmma),
                    (Mode::Infer, DType::Bf16, c2),
                    (Mode::Infer, DType::F16, c2),
                    (Mode::Train, DType::F32, Kernels::Best),
                ] {
                    if (kernels != Kernels::Best || dtype != DType::F32) && op != Op::Gemm {
                        continue;
                    }
                    with_plan(params, mode, dtype, kernels, |case, b| {
                        let want: Vec<usize> =
                            case.output_specs().iter().map(|s| s.numel()).collect();
                        let got: Vec<usize> = b.outputs().iter().map(|v| v.len()).collect();
                        assert_eq!(got, want, "{case}");
                        for st in b.steps() {
                            if let Step::Launch(l, _) = st {
                                launched.insert((l.kernel, l.entry.clone()));
                            }
                        }
                    });
                }
            }
        }
        // Every main kernel is reached by some plan (the naive GEMM through `cuda-naive`, the
        // Hopper GEMM's widths and split-K reduction through `cuda-wgmma`, the row padding by
        // its odd shapes).
        for id in KernelId::ALL {
            for e in id.entry_points() {
                if KernelId::is_main(&e)
                    || e.starts_with("gemm_naive")
                    || e.starts_with("rnn_bwd_last")
                    || e == "pad_rows_u16"
                {
                    assert!(launched.contains(&(id, e.clone())), "{e} is never launched");
                }
            }
        }
    }

    /// What the `cuda` backends record as their implementation: the entry points of the plan,
    /// each once, in launch order.
    #[test]
    fn plans_name_the_kernels_they_launch() {
        use wattbench_core::workload::ConvParams;
        let kernels = |params, mode, dtype, naive: bool| {
            let k = if naive { Kernels::Naive } else { Kernels::Best };
            with_plan(params, mode, dtype, k, |_, b| b.kernels())
        };
        let gemm = Params::Gemm(GemmParams::new(5, 6, 7).transposed(true, false));
        let conv = Params::Conv2d(ConvParams::new(2, 3, 9, 11, 5, 3, 3).padded(1, 1));
        let f32 = DType::F32;
        assert_eq!(kernels(gemm, Mode::Infer, f32, false), "gemm_tiled_f32_tn");
        assert_eq!(kernels(gemm, Mode::Infer, f32, true), "gemm_naive_f32_tn");
        assert_eq!(
            kernels(gemm, Mode::Infer, DType::Bf16, false),
            "gemm_tc_bf16_tn"
        );
        assert_eq!(
            kernels(gemm, Mode::Train, f32, false),
            "gemm_tiled_f32_tn, gemm_tiled_f32_nt, gemm_tiled_f32_nn, sgd_update_f32"
        );
        assert_eq!(
            kernels(conv, Mode::Train, f32, false),
            "conv2d_fwd_f32_bn64, conv2d_bwd_data_f32, conv2d_bwd_filter_f32, sgd_update_f32"
        );
        // The Hopper GEMM names the padded copy it needs (A is [7,5] here: 5-element rows),
        // its tile width (narrow for N <= 128) and the reduction of a split K.
        let wgmma = |params, dtype| {
            with_plan(params, Mode::Infer, dtype, Kernels::Wgmma, |_, b| {
                b.kernels()
            })
        };
        assert_eq!(
            wgmma(gemm, DType::Bf16),
            "pad_rows_u16, gemm_wgmma_n64_bf16_tn"
        );
        let even = Params::Gemm(GemmParams::new(8, 16, 24).transposed(true, false));
        assert_eq!(wgmma(even, DType::F16), "gemm_wgmma_n64_f16_tn");
        let wide = Params::Gemm(GemmParams::new(8, 256, 24).transposed(true, false));
        assert_eq!(wgmma(wide, DType::F16), "gemm_wgmma_f16_tn");
        let split = Params::Gemm(GemmParams::new(4096, 16, 11008));
        assert_eq!(
            wgmma(split, DType::Bf16),
            "gemm_wgmma_n64_bf16_nn, gemm_splitk_reduce_bf16"
        );
    }
}
