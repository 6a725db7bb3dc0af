//! Small result files for the tests.
use wattbench_core::energy::Source;
use wattbench_core::result::{CaseResult, Host, RunFile};
use wattbench_core::testing::{self, case_energy, timed_case};

/// An ok GEMM case `id` with median time `median` (five samples), 10 × `median` J per call,
/// and a per-case peak RSS of 1 MiB.
pub fn case(id: &str, median: f64) -> CaseResult {
    let samples = vec![median * 0.99, median, median * 1.01, median, median];
    CaseResult {
        energy: Some(case_energy(10.0 * median, median, Source::Measured)),
        ..timed_case(id, samples)
    }
}

/// A `run` result started at `created_at` on the test CPU with `software` versions.
pub fn run_file(created_at: &str, software: &[(&str, &str)], cases: Vec<CaseResult>) -> RunFile {
    let mut r = run_file_on("test cpu", created_at, cases);
    r.environment.software = software
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    r
}

/// A `run` result started at `created_at` on a CPU named `cpu`.
pub fn run_file_on(cpu: &str, created_at: &str, cases: Vec<CaseResult>) -> RunFile {
    let mut r = testing::run_file(created_at, cases);
    r.environment.host = Host {
        cpu_model: Some(cpu.into()),
        logical_cores: 2,
        ..Host::default()
    };
    r
}
