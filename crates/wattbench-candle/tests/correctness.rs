//! candle against the f64 reference: every op and mode, and (with the `train` feature) every
//! model's trainer against the f64 host model, on the CPU. On `cuda:0` the same generic checks
//! run as `wattbench check --backend candle --device cuda:0` (one op or the trainers a
//! process), in step 5 of the GPU check (scripts/gpu-check.sh): this test binary, with candle's
//! CUDA kernels in it, is too large for the GPU bundle.
wattbench_core::backend_tests!(wattbench_candle::CandleBackend, "cpu");

#[cfg(feature = "train")]
mod trainer {
    wattbench_core::trainer_tests!(wattbench_candle::CandleBackend, "cpu");
}

/// candle lists `cuda:N` devices in every build: where one is unavailable (no GPU, no driver,
/// or a build without the feature) it says why, and cases asked for on it are not run.
#[test]
fn unavailable_cuda_devices_say_why_and_run_nothing() {
    use wattbench_core::workload::{Case, DType, GemmParams, Mode, Params};
    use wattbench_core::Backend;
    let backend = wattbench_candle::CandleBackend;
    let devices = backend.devices();
    let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"cpu"), "{names:?}");
    let cuda: Vec<_> = devices
        .iter()
        .filter(|d| d.name.starts_with("cuda:"))
        .collect();
    assert!(!cuda.is_empty(), "no cuda:N device listed: {names:?}");
    let case = Case {
        params: Params::Gemm(GemmParams::new(2, 3, 4)),
        mode: Mode::Infer,
        dtype: DType::F32,
        tag: None,
    };
    for d in cuda.iter().filter(|d| !d.available) {
        let why = d.reason.as_deref().unwrap_or_default();
        assert!(!why.is_empty(), "{} unavailable without a reason", d.name);
        assert!(
            backend.supports(&case, &d.name).is_err(),
            "{} is unavailable ({why}) but a case on it would run",
            d.name
        );
    }
}

/// A CPU case names the threads candle's ops use: side-by-side figures depend on them.
#[test]
fn cpu_cases_name_the_threads_their_ops_use() {
    assert_eq!(
        wattbench_core::testing::implementation_of_a_gemm(&wattbench_candle::CandleBackend, "cpu"),
        Some(format!(
            "candle CPU ops, {} threads",
            candle_core::utils::get_num_threads()
        ))
    );
}

/// candle-core 0.11 computes a bf16 matmul on the CPU as an f32 one (both operands widened in
/// every call, the product rounded back): a bf16 case says so, since its time is that of an
/// f32 GEMM plus the conversions, not of a bf16 kernel.
#[test]
fn cpu_bf16_cases_say_their_matmuls_are_computed_in_f32() {
    use wattbench_core::workload::{Case, DType, GemmParams, Mode, Params};
    use wattbench_core::Backend;
    let implementation = |dtype| {
        let case = Case {
            params: Params::Gemm(GemmParams::new(4, 3, 2)),
            mode: Mode::Infer,
            dtype,
            tag: None,
        };
        let inputs = wattbench_core::tensor::generate_case_inputs(&case, 1);
        let mut p = wattbench_candle::CandleBackend
            .prepare(&case, "cpu", &inputs)
            .unwrap();
        p.execute().unwrap();
        p.implementation().unwrap()
    };
    let bf16 = implementation(DType::Bf16);
    assert!(bf16.contains("bf16 matmuls computed as f32 ones"), "{bf16}");
    let f16 = implementation(DType::F16);
    assert!(!f16.contains("computed as f32"), "{f16}");
}

/// A training case says how its gradient enters autograd (a scalar loss over the output: work
/// the FLOP count leaves out and our CUDA steps do not do); an inference case does not.
#[test]
fn training_cases_name_the_loss_they_backpropagate() {
    use wattbench_core::testing::implementation_of_a_gemm_in;
    use wattbench_core::workload::Mode;
    let b = wattbench_candle::CandleBackend;
    let train = implementation_of_a_gemm_in(&b, "cpu", Mode::Train).unwrap();
    assert!(train.contains("scalar loss Σ y·dy"), "{train}");
    let infer = implementation_of_a_gemm_in(&b, "cpu", Mode::Infer).unwrap();
    assert!(!infer.contains("loss"), "{infer}");
}
