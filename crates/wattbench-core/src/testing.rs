//! The one generic correctness check every backend runs: small, odd-sized cases of every op
//! (not multiples of any tile, transposes, asymmetric padding and stride, every cell), fresh
//! seeded inputs, verified against the f64 reference through the real harness.
//!
//! Instantiate it in a backend crate's tests with [`backend_tests!`](crate::backend_tests).
use crate::harness::{CaseInputs, Harness, HarnessConfig};
use crate::result::Status;
use crate::workload::{Case, Cell, ConvParams, DType, GemmParams, Mode, Params, RnnParams};
use crate::Backend;
use std::sync::atomic::AtomicBool;

/// Small shapes of `op` ("gemm", "conv2d" or "rnn") that exercise edge cases.
pub fn shapes(op: &str) -> Vec<Params> {
    match op {
        "gemm" => [
            (1, 1, 1, false, false),
            (17, 33, 65, false, false),
            (31, 7, 129, true, false),
            (5, 67, 19, false, true),
            (33, 17, 9, true, true),
        ]
        .into_iter()
        .map(|(m, n, k, trans_a, trans_b)| {
            Params::Gemm(GemmParams {
                m,
                n,
                k,
                trans_a,
                trans_b,
            })
        })
        .collect(),
        "conv2d" => vec![
            Params::Conv2d(ConvParams {
                n: 2,
                c: 3,
                h: 9,
                w: 11,
                k: 5,
                r: 3,
                s: 3,
                pad_h: 1,
                pad_w: 1,
                stride_h: 1,
                stride_w: 1,
            }),
            Params::Conv2d(ConvParams {
                n: 1,
                c: 4,
                h: 13,
                w: 10,
                k: 3,
                r: 5,
                s: 3,
                pad_h: 2,
                pad_w: 0,
                stride_h: 2,
                stride_w: 2,
            }),
            Params::Conv2d(ConvParams {
                n: 3,
                c: 2,
                h: 7,
                w: 7,
                k: 4,
                r: 1,
                s: 1,
                pad_h: 0,
                pad_w: 0,
                stride_h: 1,
                stride_w: 2,
            }),
        ],
        "rnn" => [Cell::Vanilla, Cell::Lstm, Cell::Gru]
            .into_iter()
            .flat_map(|cell| {
                [(13, 3, 4), (1, 1, 2)].map(|(hidden, batch, steps)| {
                    Params::Rnn(RnnParams {
                        cell,
                        hidden,
                        batch,
                        steps,
                    })
                })
            })
            .collect(),
        other => panic!("unknown op {other}"),
    }
}

/// Run every shape of `op` in every dtype on `backend`/`device`; panic with the details of
/// any case that does not pass. Cases the backend declares unsupported up front are printed
/// and left out; an f32 case that turns out unsupported while running fails, and at least
/// one case of the op must run.
pub fn check_backend(backend: &dyn Backend, device: &str, op: &str, mode: Mode) {
    let flag = AtomicBool::new(false);
    let cfg = HarnessConfig {
        warmup_s: 0.0,
        min_time_s: 0.0,
        min_samples: 2,
        bootstrap_resamples: 10,
        ..Default::default()
    };
    let harness = Harness {
        cfg,
        interrupt: &flag,
    };
    let mut ok = 0;
    for params in shapes(op) {
        for dtype in DType::ALL {
            let case = Case {
                params,
                mode,
                dtype,
                tag: None,
            };
            if let Err(why) = backend.supports(&case, device) {
                eprintln!(
                    "{}: declared unsupported: {why}",
                    case.id(backend.name(), device)
                );
                continue;
            }
            for seed in [1u64, 2] {
                let cfg = HarnessConfig {
                    seed,
                    ..harness.cfg.clone()
                };
                let inputs = CaseInputs::new(case.clone(), &cfg);
                let r = harness
                    .run_case(&inputs, backend, device, None)
                    .expect("not interrupted");
                match r.status {
                    Status::Ok => ok += 1,
                    Status::Skipped if dtype != DType::F32 => {
                        eprintln!("{}: skipped: {}", r.id, r.reason.unwrap_or_default());
                    }
                    _ => panic!(
                        "{}: {:?}: {:?} {:?}",
                        r.id, r.status, r.reason, r.verification
                    ),
                }
            }
        }
    }
    assert!(
        ok > 0,
        "no {op} {} case ran on {}/{device}",
        mode.as_str(),
        backend.name()
    );
}

/// Generate one `#[test]` per op and mode that runs [`check_backend`] on `$backend` /
/// `$device`: the forward pass, and the training step (output, every gradient and the
/// updated weights).
#[macro_export]
macro_rules! backend_tests {
    ($backend:expr, $device:expr) => {
        #[test]
        fn gemm_matches_reference() {
            $crate::testing::check_backend(&$backend, $device, "gemm", $crate::Mode::Infer);
        }
        #[test]
        fn gemm_training_step_matches_reference() {
            $crate::testing::check_backend(&$backend, $device, "gemm", $crate::Mode::Train);
        }
        #[test]
        fn conv2d_matches_reference() {
            $crate::testing::check_backend(&$backend, $device, "conv2d", $crate::Mode::Infer);
        }
        #[test]
        fn conv2d_training_step_matches_reference() {
            $crate::testing::check_backend(&$backend, $device, "conv2d", $crate::Mode::Train);
        }
        #[test]
        fn rnn_matches_reference() {
            $crate::testing::check_backend(&$backend, $device, "rnn", $crate::Mode::Infer);
        }
        #[test]
        fn rnn_training_step_matches_reference() {
            $crate::testing::check_backend(&$backend, $device, "rnn", $crate::Mode::Train);
        }
    };
}
