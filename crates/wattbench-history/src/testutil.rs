//! Small result files for the tests.
use wattbench_core::energy::{CaseEnergy, Interval, Source};
use wattbench_core::harness::HarnessConfig;
use wattbench_core::result::{
    CaseResult, Config, Environment, Filters, Host, Memory, RunConfig, RunFile, Status,
    SCHEMA_VERSION,
};
use wattbench_core::stats::TimeStats;
use wattbench_core::workload::{DType, GemmParams, Mode, Op, Params};

/// An ok GEMM case `id` with median time `median` (five samples), 10 × `median` J per call,
/// and a per-case peak RSS of 1 MiB.
pub fn case(id: &str, median: f64) -> CaseResult {
    let samples = vec![median * 0.99, median, median * 1.01, median, median];
    CaseResult {
        id: id.into(),
        tag: None,
        op: Op::Gemm,
        mode: Mode::Infer,
        backend: "reference".into(),
        device: "cpu".into(),
        dtype: DType::F32,
        params: Params::Gemm(GemmParams {
            m: 2,
            n: 2,
            k: 2,
            trans_a: false,
            trans_b: false,
        }),
        status: Status::Ok,
        reason: None,
        verification: None,
        time: Some(TimeStats::from_samples(samples, 1, 50, 1)),
        throughput: None,
        memory: Memory {
            host_peak_rss_bytes: Some(1 << 20),
            host_peak_reset: true,
            device_peak_bytes: None,
        },
        energy: Some(CaseEnergy {
            calls: 100,
            unit: "call".into(),
            window_s: 1.0,
            domains: Vec::new(),
            total_joules_per_iter: Some(Interval::symmetric(10.0 * median, median)),
            net_joules_per_iter: None,
            total_includes: Vec::new(),
            total_excludes: Vec::new(),
            total_sources: vec![Source::Measured],
            total_mixes_sources: false,
            gflops_per_joule: None,
            notes: Vec::new(),
            gpu_state: Vec::new(),
        }),
        implementation: None,
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
    RunFile {
        schema_version: SCHEMA_VERSION,
        created_at: created_at.into(),
        duration_s: 1.0,
        interrupted: false,
        environment: Environment {
            host: Host {
                cpu_model: Some(cpu.into()),
                logical_cores: 2,
                ..Host::default()
            },
            ..Environment::default()
        },
        config: Config::Run(RunConfig {
            argv: vec!["wattbench".into(), "run".into()],
            suite: "test".into(),
            filters: Filters::default(),
            harness: HarnessConfig::default(),
        }),
        energy: None,
        cases,
        trainings: Vec::new(),
    }
}
