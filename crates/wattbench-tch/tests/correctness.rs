//! tch (libtorch) on the CPU against the f64 reference.
wattbench_core::backend_tests!(wattbench_tch::TchBackend, "cpu");
