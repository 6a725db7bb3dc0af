//! libtorch keeps what it finds at its first use of per-device state, so its CUDA library
//! must be loaded (or found absent) before the first tch op of a process, even when that op
//! runs on the CPU. This binary is its own process: nothing has touched tch before the test.
#[test]
fn a_cpu_case_probes_libtorch_cuda_before_its_first_op() {
    assert!(
        !wattbench_tch::cuda_probed(),
        "something probed CUDA before the test"
    );
    assert!(
        wattbench_core::testing::implementation_of_a_gemm(&wattbench_tch::TchBackend, "cpu")
            .is_some()
    );
    assert!(wattbench_tch::cuda_probed());
}
