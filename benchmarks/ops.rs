//! Criterion micro-benchmarks of every available backend's core ops, through the same
//! `Backend` trait `wattbench run` uses: a GEMM, a convolution and an LSTM step, inference
//! and one training step, in f32. Each is verified against the f64 reference before it is
//! benchmarked (a wrong kernel is never timed).
//!
//! Two groups per op: `time` (criterion's wall-clock measurement, the device synchronised
//! inside each sample by `Prepared::time_iters`) and `energy` (joules per iteration from the
//! hardware counters, `wattbench_energy::criterion::Joules`). Where this machine has no
//! energy counter the energy group is not run and the bench says why. Throughput is the
//! case's FLOPs, which criterion, having no FLOP unit, prints as `elem/s`.
//!
//! `cargo bench -p wattbench --bench ops [FILTER]` (with `--features tch` for libtorch);
//! criterion keeps its baselines under `target/criterion` and reports changes against the
//! last run. `make test` compiles this bench.
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use wattbench_core::harness::{CaseInputs, HarnessConfig};
use wattbench_core::workload::{ConvParams, GemmParams, RnnParams};
use wattbench_core::{Case, Cell, DType, Mode, Params, Prepared};
use wattbench_energy::criterion::Joules;
use wattbench_energy::MeterConfig;

#[path = "../crates/wattbench/src/backends.rs"]
#[allow(dead_code)]
mod backends;

/// The cases: small enough for a CPU, large enough to be more than call overhead.
fn cases() -> Vec<Case> {
    let ops = [
        Params::Gemm(GemmParams::new(256, 256, 256)),
        Params::Conv2d(ConvParams::new(4, 16, 32, 32, 16, 3, 3).padded(1, 1)),
        Params::Rnn(RnnParams::new(Cell::Lstm, 256, 8, 4)),
    ];
    ops.into_iter()
        .flat_map(|params| {
            [Mode::Infer, Mode::Train].map(|mode| Case {
                params,
                mode,
                dtype: DType::F32,
                tag: None,
            })
        })
        .collect()
}

/// Every (backend, device, case) that is available here and passes verification, prepared.
/// A case that fails verification, or whose backend fails, ends the bench (after the list of
/// them): a wrong result is a bug, not a case to leave out quietly. One its backend cannot run
/// here (unavailable, unsupported) is said and left out.
fn prepared() -> Vec<(String, Case, Box<dyn Prepared>)> {
    let cfg = HarnessConfig::default();
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for case in cases() {
        let inputs = CaseInputs::new(case.clone(), &cfg);
        for b in backends::all() {
            for dev in b.devices().into_iter().filter(|d| d.available) {
                let id = format!("{}/{}", b.name(), dev.name);
                let mut prep = match b.prepare(&case, &dev.name, inputs.tensors()) {
                    Ok(p) => p,
                    Err(e @ wattbench_core::BackendError::Failed { .. }) => {
                        failures.push(format!("{id} {}: {e}", name(&case)));
                        continue;
                    }
                    Err(e) => {
                        eprintln!("{id} {}: not benchmarked: {e}", name(&case));
                        continue;
                    }
                };
                let verified = prep
                    .execute()
                    .and_then(|()| prep.outputs())
                    .map(|outs| inputs.verify(&outs, prep.tolerance().as_ref()).passed);
                match verified {
                    Ok(true) => out.push((id, case.clone(), prep)),
                    Ok(false) => {
                        failures.push(format!("{id} {}: FAILED verification", name(&case)))
                    }
                    Err(e) => failures.push(format!("{id} {}: {e}", name(&case))),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed verification or errored, so nothing is benchmarked:\n{}",
        failures.len(),
        failures.join("\n")
    );
    out
}

fn name(case: &Case) -> String {
    format!(
        "{}-{}-{}",
        case.op().as_str(),
        case.mode.as_str(),
        case.params.label()
    )
}

fn time(c: &mut Criterion) {
    for (id, case, mut prep) in prepared() {
        let mut g = c.benchmark_group(format!("time/{}", name(&case)));
        g.throughput(Throughput::Elements(case.flops()));
        g.bench_function(BenchmarkId::from_parameter(&id), |b| {
            b.iter_custom(|iters| prep.time_iters(iters).expect("time_iters"))
        });
        g.finish();
    }
}

fn energy(_: &mut Criterion) {
    // One instance is criterion's measurement (units, formatting); the other reads the
    // counters around each sample inside `iter_custom`.
    let counters = || Joules::from_counters(&MeterConfig::default());
    let (joules, meter) = match (counters(), counters()) {
        (Ok(j), Ok(m)) => (j, m),
        (Err(why), _) | (_, Err(why)) => {
            eprintln!("energy benches not run: {why}");
            return;
        }
    };
    eprintln!("energy benches: joules of {}", joules.domains().join(" + "));
    let sample_time = joules.sample_time(10);
    let mut c = Criterion::default()
        .with_measurement(joules)
        .sample_size(10)
        .measurement_time(sample_time)
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    for (id, case, mut prep) in prepared() {
        let mut g = c.benchmark_group(format!("energy/{}", name(&case)));
        g.throughput(Throughput::Elements(case.flops()));
        g.bench_function(BenchmarkId::from_parameter(&id), |b| {
            b.iter_custom(|iters| {
                let w = meter.start();
                prep.time_iters(iters).expect("time_iters");
                meter.end(w)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, time, energy);
criterion_main!(benches);
