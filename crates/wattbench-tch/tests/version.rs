//! tch 0.24 binds libtorch 2.11: the version read from the headers at build time must say so
//! (it is recorded in every result file).
#[test]
fn built_against_libtorch_2_11() {
    assert!(
        wattbench_tch::LIBTORCH_VERSION.starts_with("2.11."),
        "libtorch {}",
        wattbench_tch::LIBTORCH_VERSION
    );
}

/// A CPU case names the threads libtorch's ops use: side-by-side figures depend on them.
#[test]
fn cpu_cases_name_the_threads_their_ops_use() {
    assert_eq!(
        wattbench_core::testing::implementation_of_a_gemm(&wattbench_tch::TchBackend, "cpu"),
        Some(format!(
            "libtorch CPU ops, {} intra-op threads",
            tch::get_num_threads()
        ))
    );
}

/// A training case says how its gradient enters autograd (a scalar loss over the output: work
/// the FLOP count leaves out and our CUDA steps do not do); an inference case does not.
#[test]
fn training_cases_name_the_loss_they_backpropagate() {
    use wattbench_core::testing::implementation_of_a_gemm_in;
    use wattbench_core::workload::Mode;
    let b = wattbench_tch::TchBackend;
    let train = implementation_of_a_gemm_in(&b, "cpu", Mode::Train).unwrap();
    assert!(train.contains("scalar loss Σ y·dy"), "{train}");
    let infer = implementation_of_a_gemm_in(&b, "cpu", Mode::Infer).unwrap();
    assert!(!infer.contains("loss"), "{infer}");
}
