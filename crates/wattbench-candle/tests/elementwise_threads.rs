//! candle-core 0.11 runs its elementwise CPU ops on a pool of its own, sized by
//! `CANDLE_NUM_THREADS` before `RAYON_NUM_THREADS`, and its matmuls on `RAYON_NUM_THREADS`
//! tasks: where the two differ, a CPU case records both. Its own test binary: the pool is
//! sized once per process, from the environment, on first use.

#[test]
fn cpu_cases_name_the_elementwise_threads_when_they_differ() {
    let gemm = candle_core::utils::get_num_threads();
    // Before any candle op: no thread of this process reads the environment yet.
    std::env::set_var("CANDLE_NUM_THREADS", (gemm + 1).to_string());
    let implementation =
        wattbench_core::testing::implementation_of_a_gemm(&wattbench_candle::CandleBackend, "cpu");
    assert_eq!(
        implementation,
        Some(format!(
            "candle CPU ops, {gemm} threads ({} for elementwise ops, CANDLE_NUM_THREADS)",
            gemm + 1
        ))
    );
}
