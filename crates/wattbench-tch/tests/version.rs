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
