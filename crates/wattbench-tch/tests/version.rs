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
