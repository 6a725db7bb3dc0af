//! Short training runs on the real code paths: every model's loss falls on every CPU backend,
//! the backends agree with the f64 host forward and with each other, and the report, energy
//! and projection are filled in honestly.
use std::sync::Arc;

use wattbench_energy::{Domain, MeterConfig, Meters, ReadContext, Reading, Source};
use wattbench_train::{
    make_trainer, train, BackendKind, Dataset, ModelConfig, ModelKind, ProjectionTarget, Size,
    TrainError, TrainOptions,
};

/// Tiny model, batch 16, 4 batches of data, the model's default learning rate.
fn tiny(kind: ModelKind, backend: BackendKind, steps: u64) -> TrainOptions {
    let mut o = TrainOptions::new(ModelConfig::new(kind, Size::Tiny), backend, steps);
    o.batch = 16;
    o.dataset_samples = 64;
    o.log_every = 10;
    o.seed = 42;
    o
}

/// Steps, and the fraction of the initial data-set loss the loss must fall below.
fn budget(kind: ModelKind) -> (u64, f64) {
    match kind {
        ModelKind::Mlp => (150, 0.5),
        ModelKind::Cnn => (150, 0.5),
        ModelKind::Lstm => (150, 0.5),
    }
}

fn loss_falls(kind: ModelKind, backend: BackendKind) {
    let (steps, fraction) = budget(kind);
    let o = tiny(kind, backend, steps);
    let r = train(&o, None, &[], &mut |_| {}).unwrap();
    eprintln!(
        "{kind:?}/{backend:?}: data-set loss {:.4} -> {:.4} (x{:.3}); steps {:.4} -> {:.4}",
        r.loss.dataset_before, r.loss.dataset_after, r.loss.ratio, r.loss.first, r.loss.last
    );
    assert_eq!(r.status, wattbench_core::result::Status::Ok);
    assert!(
        r.loss.ratio < fraction,
        "{kind:?} on {backend:?}: loss fell only to {:.3} of its initial value",
        r.loss.ratio
    );
    assert!(r.loss.last < r.loss.first);
}

#[test]
fn mlp_loss_falls_on_candle() {
    loss_falls(ModelKind::Mlp, BackendKind::Candle);
}

#[test]
fn cnn_loss_falls_on_candle() {
    loss_falls(ModelKind::Cnn, BackendKind::Candle);
}

#[test]
fn lstm_loss_falls_on_candle() {
    loss_falls(ModelKind::Lstm, BackendKind::Candle);
}

#[test]
fn candle_starts_from_the_host_forward_loss() {
    for kind in ModelKind::ALL {
        let m = ModelConfig::new(kind, Size::Tiny);
        let data = Dataset::generate(&m, 8, 2, 5);
        let init = m.init_params(5);
        let mut t = make_trainer(BackendKind::Candle, "cpu", &m, &data, &init).unwrap();
        for bi in 0..2 {
            let want = data.host_loss(&m, &init, bi);
            let got = t.loss(bi).unwrap() as f64;
            assert!(
                (got - want).abs() <= 1e-5 * want.max(1.0),
                "{kind:?} batch {bi}: candle {got} vs host {want}"
            );
        }
        // The parameters come back as they went in.
        assert_eq!(t.params().unwrap(), init);
    }
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let o = tiny(ModelKind::Mlp, BackendKind::Candle, 20);
    let a = train(&o, None, &[], &mut |_| {}).unwrap();
    let b = train(&o, None, &[], &mut |_| {}).unwrap();
    assert_eq!(a.loss.curve, b.loss.curve);
    let mut other = o.clone();
    other.seed = 43;
    let c = train(&other, None, &[], &mut |_| {}).unwrap();
    assert_ne!(a.loss.first, c.loss.first);
}

#[test]
fn report_counts_steps_logs_losses_and_projects() {
    let mut o = tiny(ModelKind::Cnn, BackendKind::Candle, 25);
    o.log_every = 10;
    o.projection = Some(ProjectionTarget::Epochs(100));
    let mut seen = Vec::new();
    let r = train(&o, None, &[], &mut |p| seen.push(p.step)).unwrap();
    // Warm-up 2 (a tenth of 25), 23 measured; losses at steps 0, 9, 19 and the last (24).
    assert_eq!((r.warmup_steps, r.measured_steps, r.steps), (2, 23, 25));
    assert_eq!(seen, vec![0, 9, 19, 24]);
    assert_eq!(r.time.samples_s.len(), 23);
    assert_eq!(r.dataset.batches_per_epoch, 4);
    assert!((r.epochs - 6.25).abs() < 1e-12);
    assert!(r.samples_per_s > 0.0 && r.gflops_per_s > 0.0);
    assert_eq!(r.flops, o.model.flops(16));
    // No meters: energy is unmeasured (null), never 0 J.
    assert!(r.energy.total_j.is_none() && r.energy.per_step_j.is_none());
    assert!(r.energy.notes.iter().any(|n| n.contains("not measured")));
    let p = r.projection.clone().expect("asked for");
    assert_eq!(p.total_steps, 400);
    assert_eq!(p.total_samples, 6400);
    assert!(p.energy_kwh.is_none());
    assert!((p.duration_s.value - 400.0 * r.time.mean_s).abs() < 1e-9);
    if cfg!(target_os = "linux") {
        assert!(r.memory.host_peak_rss_bytes.unwrap() > 0);
    }
    // As a case of the run-file format, it survives a JSON round trip.
    let case = r.to_case_result();
    assert_eq!(case.id, "e2e/train/cnn_b16_s25/f32/candle/cpu");
    assert_eq!(
        case.throughput.as_ref().unwrap().flops,
        o.model.flops(16).step
    );
    let back: wattbench_core::result::CaseResult =
        serde_json::from_str(&serde_json::to_string(&case).unwrap()).unwrap();
    assert_eq!(back.params, case.params);
    assert_eq!(
        back.e2e.unwrap()["loss"]["curve"].as_array().unwrap().len(),
        4
    );
    assert!(back.energy.unwrap()["total_joules_per_iter"].is_null());
}

/// A counter that gains exactly 1 J per reading.
struct OneJoulePerRead(std::sync::atomic::AtomicU64);

impl Domain for OneJoulePerRead {
    fn name(&self) -> &str {
        "fake-package"
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    fn source(&self) -> Source {
        Source::Measured
    }
    fn scope(&self) -> &'static str {
        "package"
    }
    fn read(&self, _: &ReadContext) -> Result<Reading, String> {
        let raw = self.0.fetch_add(1000, std::sync::atomic::Ordering::SeqCst) + 1000;
        Ok(Reading::Counter {
            raw,
            joules_per_unit: 1e-3,
            wrap_at: None,
        })
    }
    fn uncertainty_j(&self, _: f64, _: f64, _: usize) -> f64 {
        0.25
    }
    fn min_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// A domain that cannot be read.
struct Unreadable;

impl Domain for Unreadable {
    fn name(&self) -> &str {
        "locked-dram"
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    fn source(&self) -> Source {
        Source::Measured
    }
    fn scope(&self) -> &'static str {
        "dram"
    }
    fn read(&self, _: &ReadContext) -> Result<Reading, String> {
        Err("permission denied".into())
    }
    fn uncertainty_j(&self, _: f64, _: f64, _: usize) -> f64 {
        0.0
    }
    fn min_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

#[test]
fn energy_is_metered_over_the_measured_steps_with_labels() {
    let meters = Meters::from_domains(
        vec![
            Arc::new(OneJoulePerRead(Default::default())),
            Arc::new(Unreadable),
        ],
        &MeterConfig {
            nvml: false,
            ..MeterConfig::default()
        },
    );
    let mut o = tiny(ModelKind::Mlp, BackendKind::Candle, 12);
    o.warmup_steps = Some(2);
    o.projection = Some(ProjectionTarget::Steps(1000));
    o.carbon =
        wattbench_energy::carbon::CarbonParams::resolve(None, Some(500.0), None, None).unwrap();
    let r = train(&o, Some(&meters), &[], &mut |_| {}).unwrap();
    let e = &r.energy;
    // One reading at each window edge: exactly 1 J ± 0.25 J over 10 steps of 16 samples.
    assert_eq!(e.steps, 10);
    let t = e.total_j.unwrap();
    assert!((t.value - 1.0).abs() < 1e-12 && (t.high - 1.25).abs() < 1e-12);
    assert!((e.per_step_j.unwrap().value - 0.1).abs() < 1e-12);
    assert!((e.per_sample_j.unwrap().value - 1.0 / 160.0).abs() < 1e-12);
    assert_eq!(e.sources, vec![Source::Measured]);
    // The unreadable domain is unsupported with its reason, null rather than 0 J.
    let dram = e.domains.iter().find(|d| d.name == "locked-dram").unwrap();
    assert_eq!(dram.source, Source::Unsupported);
    assert!(dram.joules.is_none() && dram.joules_per_step.is_none());
    assert!(dram
        .reason
        .as_deref()
        .unwrap()
        .contains("permission denied"));
    assert!(e.excludes.iter().any(|x| x.starts_with("locked-dram")));
    // 1000 steps at 0.1 J per step = 100 J → kWh → CO2e at 500 g/kWh.
    let p = r.projection.unwrap();
    let kwh = p.energy_kwh.unwrap();
    assert!((kwh.value - 100.0 / 3.6e6).abs() < 1e-15);
    assert!((p.co2e_kg.unwrap().value - 100.0 / 3.6e6 * 0.5).abs() < 1e-15);
    assert!(p.energy_per_step_j.unwrap().high >= 0.125 - 1e-12);
}

#[test]
fn bad_options_are_usage_errors() {
    let usage = |o: TrainOptions| match train(&o, None, &[], &mut |_| {}) {
        Err(TrainError::Usage(m)) => m,
        other => panic!("expected a usage error, got {other:?}"),
    };
    let zero = tiny(ModelKind::Mlp, BackendKind::Candle, 0);
    assert!(usage(zero).contains("--steps must be at least 1"));
    let mut w = tiny(ModelKind::Mlp, BackendKind::Candle, 5);
    w.warmup_steps = Some(5);
    assert!(usage(w).contains("warmup"));
    let mut lr = tiny(ModelKind::Mlp, BackendKind::Candle, 5);
    lr.lr = -1.0;
    assert!(usage(lr).contains("--lr"));
    let mut dev = tiny(ModelKind::Mlp, BackendKind::Candle, 5);
    dev.device = "tpu".into();
    assert!(usage(dev).contains("valid: cpu"));
    let mut cuda = tiny(ModelKind::Mlp, BackendKind::Candle, 5);
    cuda.device = "cuda".into();
    assert!(usage(cuda).contains("unknown device"));
}

#[cfg(not(feature = "tch"))]
#[test]
fn tch_without_the_feature_is_unavailable_with_the_fix() {
    let o = tiny(ModelKind::Mlp, BackendKind::Tch, 5);
    match train(&o, None, &[], &mut |_| {}) {
        Err(TrainError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "tch");
            assert!(reason.contains("--features tch"), "{reason}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[test]
fn a_diverging_run_fails_with_the_reason() {
    let mut o = tiny(ModelKind::Mlp, BackendKind::Candle, 40);
    o.lr = 1e6;
    o.log_every = 1;
    let r = train(&o, None, &[], &mut |_| {}).unwrap();
    assert_eq!(r.status, wattbench_core::result::Status::Failed);
    assert!(r.reason.unwrap().contains("lower --lr"));
    assert!(r.projection.is_none());
}

#[cfg(feature = "tch")]
mod tch {
    use super::*;

    #[test]
    fn mlp_loss_falls_on_tch() {
        loss_falls(ModelKind::Mlp, BackendKind::Tch);
    }

    #[test]
    fn cnn_loss_falls_on_tch() {
        loss_falls(ModelKind::Cnn, BackendKind::Tch);
    }

    #[test]
    fn lstm_loss_falls_on_tch() {
        loss_falls(ModelKind::Lstm, BackendKind::Tch);
    }

    /// Same seed and weights: the same initial loss as candle and the host, and after SGD
    /// steps the same weights (so the same gradients), within f32 tolerance.
    #[test]
    fn tch_and_candle_agree_on_loss_gradients_and_updates() {
        for kind in ModelKind::ALL {
            let m = ModelConfig::new(kind, Size::Tiny);
            let data = Dataset::generate(&m, 8, 2, 11);
            let init = m.init_params(11);
            let mut c = make_trainer(BackendKind::Candle, "cpu", &m, &data, &init).unwrap();
            let mut t = make_trainer(BackendKind::Tch, "cpu", &m, &data, &init).unwrap();
            let host = data.host_loss(&m, &init, 0);
            let (lc, lt) = (c.loss(0).unwrap() as f64, t.loss(0).unwrap() as f64);
            assert!(
                (lc - host).abs() <= 1e-5 * host.max(1.0),
                "{kind:?}: candle {lc} host {host}"
            );
            assert!(
                (lt - host).abs() <= 1e-5 * host.max(1.0),
                "{kind:?}: tch {lt} host {host}"
            );
            // One step: w1 − w0 = −lr·g on both, so the updates compare the gradients.
            let lr = m.default_lr();
            c.step(0, lr, false).unwrap();
            t.step(0, lr, false).unwrap();
            let (pc, pt) = (c.params().unwrap(), t.params().unwrap());
            for (k, ((a, b), w0)) in pc.iter().zip(&pt).zip(&init).enumerate() {
                let num: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| ((x - y) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let den: f64 = a
                    .iter()
                    .zip(w0)
                    .map(|(x, y)| ((x - y) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                // Relative to the size of the update itself.
                assert!(
                    num <= 1e-3 * den.max(1e-12),
                    "{kind:?} param {k}: updates differ by {num} (update size {den})"
                );
            }
            // And a few more steps stay together.
            for s in 1..5 {
                let a = c.step(s % 2, lr, true).unwrap().unwrap();
                let b = t.step(s % 2, lr, true).unwrap().unwrap();
                assert!(
                    (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                    "{kind:?} step {s}: {a} vs {b}"
                );
            }
        }
    }
}
