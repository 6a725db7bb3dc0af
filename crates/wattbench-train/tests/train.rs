//! Short training runs through the driver on a real trainer (candle): every model's loss
//! falls, runs are deterministic, and the result, energy and projection are filled in
//! honestly. (Each framework's trainer is checked against the f64 host model, loss and
//! gradients, by core's `trainer_tests!` in its own crate.)
use std::sync::Arc;

use wattbench_candle::CandleBackend;
use wattbench_core::model::{ModelConfig, ModelKind, Size};
use wattbench_core::result::{ProjectionTarget, Status, TrainSettings, TrainingResult};
use wattbench_core::BackendError;
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::fake::{StepCounter, Unreadable};
use wattbench_energy::{MeterConfig, Meters, Source};
use wattbench_train::{train, TrainError};

/// Tiny model, batch 16, 4 batches of data, the model's default learning rate.
fn tiny(kind: ModelKind, steps: u64) -> TrainSettings {
    let mut o = TrainSettings::new(ModelConfig::new(kind, Size::Tiny), steps);
    o.batch_size = 16;
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

/// The world-average grid, PUE 1.
fn world() -> CarbonParams {
    CarbonParams::resolve(None, None, None, None).unwrap()
}

fn run(o: &TrainSettings) -> TrainingResult {
    train(o, &world(), &CandleBackend, None, &[], &mut |_| {}).unwrap()
}

fn loss_falls(kind: ModelKind) {
    let (steps, fraction) = budget(kind);
    let r = run(&tiny(kind, steps));
    let ratio = r.loss.ratio.unwrap();
    eprintln!(
        "{kind:?}: data-set loss {:.4} -> {:?} (x{ratio:.3}); steps {:?} -> {:?}",
        r.loss.dataset_before, r.loss.dataset_after, r.loss.first, r.loss.last
    );
    assert_eq!(r.status, Status::Ok);
    assert!(
        ratio < fraction,
        "{kind:?}: loss fell only to {ratio:.3} of its initial value"
    );
    assert!(r.loss.last.unwrap() < r.loss.first.unwrap());
}

#[test]
fn mlp_loss_falls() {
    loss_falls(ModelKind::Mlp);
}

#[test]
fn cnn_loss_falls() {
    loss_falls(ModelKind::Cnn);
}

#[test]
fn lstm_loss_falls() {
    loss_falls(ModelKind::Lstm);
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let o = tiny(ModelKind::Mlp, 20);
    let (a, b) = (run(&o), run(&o));
    assert_eq!(a.loss.curve, b.loss.curve);
    let mut other = o.clone();
    other.seed = 43;
    let c = run(&other);
    assert_ne!(a.loss.first, c.loss.first);
}

#[test]
fn report_counts_steps_logs_losses_and_projects() {
    let mut o = tiny(ModelKind::Cnn, 25);
    o.log_every = 10;
    o.projection = Some(ProjectionTarget::Epochs(100));
    let mut seen = Vec::new();
    let r = train(&o, &world(), &CandleBackend, None, &[], &mut |p| {
        seen.push(p.step)
    })
    .unwrap();
    // Warm-up 2 (a tenth of 25), 23 measured; losses at steps 0, 9, 19 and the last (24).
    assert_eq!((r.warmup_steps, r.measured_steps, r.steps), (2, 23, 25));
    assert_eq!(seen, vec![0, 9, 19, 24]);
    let time = r.time.as_ref().unwrap();
    assert_eq!(time.samples_s.len(), 23);
    assert_eq!(r.dataset.batches_per_epoch, 4);
    assert!((r.epochs - 6.25).abs() < 1e-12);
    assert!(r.samples_per_s.unwrap() > 0.0 && r.gflops_per_s.unwrap() > 0.0);
    assert_eq!(r.flops, o.model.flops(16));
    // No meters: energy is unmeasured (null), never 0 J, and says why.
    assert!(r.energy.total_joules_per_iter.is_none() && r.energy_per_sample_j.is_none());
    assert_eq!(r.energy.calls, 23);
    assert!(r.energy.notes.iter().any(|n| n.contains("not measured")));
    let p = r.projection.clone().expect("asked for");
    assert_eq!(p.total_steps, 400);
    assert_eq!(p.total_samples, 6400);
    assert!(p.energy_kwh.is_none());
    assert!((p.duration_s.value - 400.0 * time.mean_s).abs() < 1e-9);
    if cfg!(target_os = "linux") {
        assert!(r.memory.host_peak_rss_bytes.unwrap() > 0);
    }
    assert_eq!(r.id, "train/cnn_c2_s8_f4x8_o3_b16_s25/candle/cpu");
    // It survives a JSON round trip unchanged.
    let back: TrainingResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn energy_is_metered_over_the_measured_steps_with_labels() {
    let meters = Meters::from_domains(
        vec![
            // Exactly 1 J per reading, ± 0.25 J.
            Arc::new(StepCounter::new("fake-package", 1000, 0.25)),
            Arc::new(Unreadable::new("locked-dram", "permission denied")),
        ],
        &MeterConfig {
            nvml: false,
            ..MeterConfig::default()
        },
    );
    let mut o = tiny(ModelKind::Mlp, 12);
    o.warmup_steps = 2;
    o.projection = Some(ProjectionTarget::Steps(1000));
    let g500 = CarbonParams::resolve(None, Some(500.0), None, None).unwrap();
    let r = train(&o, &g500, &CandleBackend, Some(&meters), &[], &mut |_| {}).unwrap();
    let e = &r.energy;
    // One reading at each window edge: exactly 1 J ± 0.25 J over 10 steps of 16 samples.
    assert_eq!((e.calls, e.unit.as_str()), (10, "training step"));
    let t = e.total_joules_per_iter.unwrap();
    assert!((t.value - 0.1).abs() < 1e-12 && (t.high - 0.125).abs() < 1e-12);
    assert!((r.energy_per_sample_j.unwrap().value - 1.0 / 160.0).abs() < 1e-12);
    assert_eq!(e.total_sources, vec![Source::Measured]);
    // The unreadable domain is unsupported with its reason, null rather than 0 J.
    let dram = e.domains.iter().find(|d| d.name == "locked-dram").unwrap();
    assert_eq!(dram.source, Source::Unsupported);
    assert!(dram.joules_per_iter.is_none());
    assert!(dram
        .reason
        .as_deref()
        .unwrap()
        .contains("permission denied"));
    assert!(e
        .total_excludes
        .iter()
        .any(|x| x.starts_with("locked-dram")));
    // 1000 steps at 0.1 J per step = 100 J → kWh → CO2e at 500 g/kWh.
    let p = r.projection.unwrap();
    let kwh = p.energy_kwh.unwrap();
    assert!((kwh.value - 100.0 / 3.6e6).abs() < 1e-15);
    assert!((p.co2e_kg.unwrap().value - 100.0 / 3.6e6 * 0.5).abs() < 1e-15);
    assert!(p.energy_per_step_j.unwrap().high >= 0.125 - 1e-12);
}

#[test]
fn bad_options_are_usage_errors() {
    let usage = |o: TrainSettings| match train(&o, &world(), &CandleBackend, None, &[], &mut |_| {})
    {
        Err(TrainError::Usage(m)) => m,
        other => panic!("expected a usage error, got {other:?}"),
    };
    assert!(usage(tiny(ModelKind::Mlp, 0)).contains("--steps must be at least 1"));
    let mut w = tiny(ModelKind::Mlp, 5);
    w.warmup_steps = 5;
    assert!(usage(w).contains("warmup"));
    let mut lr = tiny(ModelKind::Mlp, 5);
    lr.lr = -1.0;
    assert!(usage(lr).contains("--lr"));
}

#[test]
fn what_the_backend_cannot_do_is_its_error_with_the_reason() {
    let backend_error = |o: &TrainSettings, b: &dyn wattbench_core::Backend| match train(
        o,
        &world(),
        b,
        None,
        &[],
        &mut |_| {},
    ) {
        Err(TrainError::Backend(e)) => e,
        other => panic!("expected a backend error, got {other:?}"),
    };
    // A device the backend does not have.
    let mut dev = tiny(ModelKind::Mlp, 5);
    dev.device = "cuda".into();
    let e = backend_error(&dev, &CandleBackend);
    assert!(
        matches!(&e, BackendError::Unavailable(m) if m.contains("cuda")),
        "{e}"
    );
    // A backend that does not train.
    let e = backend_error(
        &tiny(ModelKind::Mlp, 5),
        &wattbench_core::reference::ReferenceBackend,
    );
    assert!(
        matches!(&e, BackendError::Unsupported(m) if m.contains("does not train")),
        "{e}"
    );
}

#[test]
fn a_diverging_run_fails_with_the_reason() {
    let mut o = tiny(ModelKind::Mlp, 40);
    o.lr = 1e6;
    o.log_every = 1;
    let r = run(&o);
    assert_eq!(r.status, Status::Failed);
    assert!(r.reason.as_deref().unwrap().contains("lower --lr"));
    assert!(r.projection.is_none() && r.loss.dataset_after.is_none());
    // The failed run still serialises and reads back (no NaN where JSON has none).
    let text = serde_json::to_string(&r).unwrap();
    let _: TrainingResult = serde_json::from_str(&text).unwrap();
}
