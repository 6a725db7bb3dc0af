//! Short training runs through the driver on a real trainer (candle): every model's loss
//! falls, runs are deterministic, and the result, energy and projection are filled in
//! honestly. (Each framework's trainer is checked against the f64 host model, loss and
//! gradients, by core's `trainer_tests!` in its own crate.)
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use wattbench_candle::CandleBackend;
use wattbench_core::model::{ModelConfig, ModelKind, Size};
use wattbench_core::model::{TrainSetup, Trainer};
use wattbench_core::result::{LossPoint, ProjectionTarget, Status, TrainSettings, TrainingResult};
use wattbench_core::tensor::HostTensor;
use wattbench_core::{Backend, BackendError, Case, DeviceInfo, Prepared};
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::fake::{ConstantPower, StepCounter, Unreadable};
use wattbench_energy::{Domain, MeterConfig, Meters, Source};
use wattbench_train::{train, Abandoned, Control, Progress, TrainError};

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

/// [`train`] on the world grid, with no idle baseline.
fn train_on(
    o: &TrainSettings,
    backend: &dyn Backend,
    meters: Option<&Meters>,
    control: &Control<'_>,
    on_loss: &mut dyn FnMut(&LossPoint),
) -> Result<TrainingResult, TrainError> {
    train(o, &world(), backend, meters, &[], control, on_loss)
}

/// [`train_on`] candle, unmetered, nothing stopping it.
fn try_run(o: &TrainSettings) -> Result<TrainingResult, TrainError> {
    train_on(o, &CandleBackend, None, &Control::default(), &mut |_| {})
}

fn run(o: &TrainSettings) -> TrainingResult {
    try_run(o).unwrap()
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
    let r = train_on(&o, &CandleBackend, None, &Control::default(), &mut |p| {
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
    let meters = one_joule_meter_and(vec![Arc::new(Unreadable::new(
        "locked-dram",
        "permission denied",
    ))]);
    let mut o = tiny(ModelKind::Mlp, 12);
    o.warmup_steps = 2;
    o.projection = Some(ProjectionTarget::Steps(1000));
    let g500 = CarbonParams::resolve(None, Some(500.0), None, None).unwrap();
    let r = train(
        &o,
        &g500,
        &CandleBackend,
        Some(&meters),
        &[],
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
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

/// A counter lost midway through the measured steps: the per-step figure and the projection
/// complete it alike, to the whole window at its mean power (one rule, `cover_span`), so the
/// projected energy is the per-step energy times the steps, and the projection lists the
/// counter's warning among its assumptions. (Before, the projection added the raw domains:
/// a lower kWh and CO2e than the per-step figure beside it.)
#[test]
fn a_counter_lost_midway_is_completed_alike_per_step_and_in_the_projection() {
    let meters = Meters::from_domains(
        vec![
            Arc::new(StepCounter::new("fake-package", 1000, 0.25).lost_after(2)),
            // A power-only device: the sampler runs (every 5 ms) and reads both domains.
            Arc::new(ConstantPower::new("fake-gpu", 50.0)),
        ],
        &MeterConfig {
            nvml: false,
            sample_interval: std::time::Duration::from_millis(5),
            ..MeterConfig::default()
        },
    );
    let mut o = tiny(ModelKind::Mlp, 62);
    o.warmup_steps = 2;
    o.log_every = 1;
    o.projection = Some(ProjectionTarget::Steps(10_000));
    // Each step's report waits 5 ms: the 60 measured steps' window lasts 0.3 s or more, of
    // which the counter's two readings (the window's first, a sampler tick) cover ~5 ms.
    let r = train_on(
        &o,
        &CandleBackend,
        Some(&meters),
        &Control::default(),
        &mut |_| std::thread::sleep(std::time::Duration::from_millis(5)),
    )
    .unwrap();
    let e = &r.energy;
    assert!(e.window_s >= 0.29, "{e:?}");
    let package = e.domains.iter().find(|d| d.name == "fake-package").unwrap();
    // Completed to the window (or to the other domain's readings, which end a read later).
    assert!(package.window_s >= e.window_s, "{package:?} {}", e.window_s);
    assert!(
        package
            .warnings
            .iter()
            .any(|w| w.contains("counted at the mean power")),
        "{package:?}"
    );
    let per_step = e.total_joules_per_iter.unwrap();
    let p = r.projection.unwrap();
    let projected_per_step = p.energy_kwh.unwrap().value * 3.6e6 / 10_000.0;
    assert!(
        (projected_per_step - per_step.value).abs() <= 1e-9 * per_step.value,
        "projected {projected_per_step} J per step, measured {per_step:?}"
    );
    assert!(
        p.assumptions
            .iter()
            .any(|a| a.starts_with("fake-package: ") && a.contains("counted at the mean power")),
        "{:?}",
        p.assumptions
    );
}

/// FLOPs of the first layer's gradient with respect to its input, the data, at batch `b`:
/// the MLP's first GEMM, the CNN's first convolution, the LSTM's input projection of every
/// step (2 per multiply-add).
fn data_gradient_flops(model: &ModelConfig, b: u64) -> u64 {
    match *model {
        ModelConfig::Mlp(m) => 2 * b * (m.input * m.hidden[0]) as u64,
        ModelConfig::Cnn(c) => 2 * b * (c.filters[0] * c.size * c.size * c.channels * 9) as u64,
        ModelConfig::Lstm(l) => 2 * b * (l.seq * l.input * 4 * l.hidden) as u64,
    }
}

/// candle's autograd also computes the first layer's gradient with respect to the data, which
/// the FLOP count (the model's own work) leaves out: its results say how much, and what it
/// does to its GFLOP/s and GFLOP/J.
#[test]
fn candle_results_note_the_data_gradient_the_flop_count_leaves_out() {
    for kind in ModelKind::ALL {
        let r = run(&tiny(kind, 4));
        let extra = data_gradient_flops(&r.model, 16);
        let note = r
            .energy
            .notes
            .iter()
            .find(|n| n.contains("candle's autograd"))
            .unwrap_or_else(|| panic!("{kind:?}: no note in {:?}", r.energy.notes));
        let share = format!("{:.1}%", 100.0 * extra as f64 / r.flops.step as f64);
        assert!(note.contains(&share), "{kind:?}: {share} in {note}");
        assert!(
            note.contains("understate") && note.contains("GFLOP/J"),
            "{kind:?}: {note}"
        );
    }
}

/// Without a warm-up step the first, cold step is among the measured ones: the result and the
/// projection say so; with one they do not.
#[test]
fn a_run_without_warm_up_says_its_cold_first_step_is_measured() {
    let mut o = tiny(ModelKind::Mlp, 6);
    o.warmup_steps = 0;
    o.projection = Some(ProjectionTarget::Steps(1000));
    let r = run(&o);
    let cold = |v: &[String]| v.iter().any(|n| n.contains("no warm-up step"));
    assert!(cold(&r.energy.notes), "{:?}", r.energy.notes);
    assert!(cold(&r.projection.unwrap().assumptions));
    o.warmup_steps = 1;
    let r = run(&o);
    assert!(!cold(&r.energy.notes), "{:?}", r.energy.notes);
    assert!(!cold(&r.projection.unwrap().assumptions));
}

/// Step times that drift while measured (here a step 2 ms long for the first measured
/// steps, then 20 ms) are no steady state: the result and the projection say so.
#[test]
fn a_drifting_step_time_is_noted_in_the_result_and_the_projection() {
    let backend = Hooked(Arc::new(|step| {
        let ms = if step < 10 { 2 } else { 20 };
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(())
    }));
    let mut o = tiny(ModelKind::Mlp, 20);
    o.warmup_steps = 2;
    o.projection = Some(ProjectionTarget::Steps(1000));
    let r = train_on(&o, &backend, None, &Control::default(), &mut |_| {}).unwrap();
    let drifted = |v: &[String]| v.iter().any(|n| n.contains("step time drifted"));
    assert!(drifted(&r.energy.notes), "{:?}", r.energy.notes);
    assert!(drifted(&r.projection.unwrap().assumptions));
}

/// Time spent between the measured steps (here a 5 ms pause as each loss is reported) is in
/// the energy window but not in the step times the projected wall time rests on: the
/// projection says by how much the two differ.
#[test]
fn the_projection_says_when_its_energy_window_outlasts_its_step_times() {
    let mut o = tiny(ModelKind::Mlp, 12);
    o.warmup_steps = 2;
    o.log_every = 1;
    o.projection = Some(ProjectionTarget::Steps(1000));
    let meters = one_joule_meter();
    let r = train_on(
        &o,
        &CandleBackend,
        Some(&meters),
        &Control::default(),
        &mut |_| std::thread::sleep(std::time::Duration::from_millis(5)),
    )
    .unwrap();
    let steps: f64 = r.time.as_ref().unwrap().samples_s.iter().sum();
    assert!(
        r.measured_wall_s > 1.03 * steps,
        "{} vs {steps}",
        r.measured_wall_s
    );
    let p = r.projection.unwrap();
    assert!(
        p.assumptions
            .iter()
            .any(|a| a.contains("longer than the sum of their step times")),
        "{:?}",
        p.assumptions
    );
}

#[test]
fn bad_options_are_usage_errors() {
    let usage = |o: TrainSettings| match try_run(&o) {
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
    let backend_error = |o: &TrainSettings, b: &dyn Backend| match train_on(
        o,
        b,
        None,
        &Control::default(),
        &mut |_| {},
    ) {
        Err(TrainError::Backend(e)) => e,
        other => panic!("expected a backend error, got {other:?}"),
    };
    // A device the backend does not have, on any machine (a GPU one included).
    let mut dev = tiny(ModelKind::Mlp, 5);
    dev.device = "cuda:999".into();
    let e = backend_error(&dev, &CandleBackend);
    assert!(
        matches!(&e, BackendError::Unavailable(m) if m.contains("cuda:999")),
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

/// A learning rate past the stable limit grows the loss geometrically without reaching NaN
/// in 10 steps (tiny MLP: 0.73 at step 1, 2e20 at step 10): the run diverged, and fails.
#[test]
fn a_loss_that_grows_far_beyond_its_start_fails_as_diverged() {
    let mut o = tiny(ModelKind::Mlp, 10);
    o.lr = 3.0;
    o.projection = Some(ProjectionTarget::Steps(1000));
    let r = run(&o);
    let why = r.reason.as_deref().unwrap_or_default();
    assert_eq!(r.status, Status::Failed, "{why}");
    assert!(
        why.contains("data-set loss grew") && why.contains("10x"),
        "{why}"
    );
    assert!(why.contains("lower --lr (it was 3)"), "{why}");
    assert!(r.projection.is_none());
    // The finite figure that shows the blow-up stays in the file.
    assert!(r.loss.ratio.unwrap() > 1e6);
    // The default learning rate learns: the same check leaves it alone.
    let mut ok = tiny(ModelKind::Mlp, 10);
    ok.projection = Some(ProjectionTarget::Steps(1000));
    let r = run(&ok);
    assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
    assert!(r.projection.is_some());
}

/// The loss is computed every `--log-every` steps: a NaN seen at step 10 appeared at or
/// before it, not at it.
#[test]
fn a_nan_seen_at_a_logged_step_is_placed_at_or_before_it() {
    let mut o = tiny(ModelKind::Mlp, 40);
    o.lr = 1e30;
    o.log_every = 10;
    let r = run(&o);
    assert_eq!(r.status, Status::Failed);
    let why = r.reason.as_deref().unwrap();
    assert!(
        why.contains("at or before step 10/40") && why.contains("last computed, finite, at step 1"),
        "{why}"
    );
    // Computed every step, the step is exact.
    o.log_every = 1;
    let why = run(&o).reason.unwrap();
    assert!(why.contains("at step 2/40"), "{why}");
}

/// Candle with a hook that sets `flag` before step `at` runs, so that steps 0..=at complete.
fn interrupting(at: u64, flag: Arc<AtomicBool>) -> Hooked {
    Hooked(Arc::new(move |step| {
        if step == at {
            flag.store(true, Ordering::SeqCst);
        }
        Ok(())
    }))
}

/// An interrupt between logged steps: the loss the completed steps left is computed (one
/// forward pass), so the curve does not end at step 0, and a run that diverged before the
/// interrupt fails.
#[test]
fn an_interrupted_run_reports_the_loss_its_steps_left() {
    // The hook sets the interrupt as step 7 starts: steps 0–7 complete, none of 1–7 logged.
    let interrupted = |lr: f64| {
        let flag = Arc::new(AtomicBool::new(false));
        let mut o = tiny(ModelKind::Mlp, 100);
        o.log_every = 50;
        o.lr = lr;
        let control = Control {
            interrupt: &flag,
            progress: None,
        };
        let backend = interrupting(7, flag.clone());
        train_on(&o, &backend, None, &control, &mut |_| {}).unwrap()
    };
    let r = interrupted(tiny(ModelKind::Mlp, 1).lr);
    assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
    assert_eq!(r.steps, 8);
    let steps: Vec<u64> = r.loss.curve.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![0, 8], "the loss after the 8 steps done");
    assert!(r.loss.last.is_some_and(f32::is_finite));
    // The same interrupt after 8 steps at a rate that diverges: failed, not ok.
    let r = interrupted(3.0);
    assert_eq!(r.status, Status::Failed);
    let why = r.reason.as_deref().unwrap();
    assert!(
        why.contains("the loss after 8 steps was") && why.contains("lower --lr"),
        "{why}"
    );
}

/// A backend error in the middle of training (a CUDA out-of-memory in step 8) fails the run
/// with the steps done and the reason, rather than losing them.
#[test]
fn a_backend_failure_mid_run_fails_the_run_with_the_steps_done() {
    let backend = Hooked(Arc::new(|step| {
        if step == 7 {
            return Err(BackendError::failed("candle", "CUDA_ERROR_OUT_OF_MEMORY"));
        }
        Ok(())
    }));
    let meters = one_joule_meter();
    let mut o = tiny(ModelKind::Mlp, 20);
    o.warmup_steps = 2;
    o.log_every = 1;
    o.projection = Some(ProjectionTarget::Steps(1000));
    let r = train_on(
        &o,
        &backend,
        Some(&meters),
        &Control::default(),
        &mut |_| {},
    )
    .expect("a failed result, not an error");
    assert_eq!(r.status, Status::Failed);
    assert_eq!((r.steps, r.measured_steps), (7, 5));
    assert_eq!(r.loss.curve.len(), 7);
    let why = r.reason.as_deref().unwrap();
    assert!(
        why.contains("failed in step 8/20") && why.contains("CUDA_ERROR_OUT_OF_MEMORY"),
        "{why}"
    );
    assert!(why.contains("the 7 steps completed"), "{why}");
    // The completed measured steps keep their time and energy; no projection from a failure.
    assert_eq!(r.time.as_ref().unwrap().samples_s.len(), 5);
    assert_eq!(r.energy.calls, 5);
    assert!(r.energy.total_joules_per_iter.is_some());
    assert!(
        r.energy.notes.iter().any(|n| n.contains("cut short")),
        "the failed step's share is left out: {:?}",
        r.energy.notes
    );
    assert!(r.projection.is_none() && r.loss.dataset_after.is_none());
    let back: TrainingResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

/// A backend error while the model is set up (an out-of-memory error uploading it), before
/// any step, is the run's error: no result, since no step ran (the CLI writes no file and
/// exits 1); a failure in the first step is a failed result with no step done.
#[test]
fn a_backend_failure_before_the_first_step_is_an_error_and_in_it_a_failed_result() {
    let failing_at = |at: u64| {
        Hooked(Arc::new(move |step| {
            if step == at {
                return Err(BackendError::failed("candle", "CUDA_ERROR_OUT_OF_MEMORY"));
            }
            Ok(())
        }))
    };
    let o = tiny(ModelKind::Mlp, 5);
    let run_with = |b: &Hooked| train_on(&o, b, None, &Control::default(), &mut |_| {});
    match run_with(&failing_at(SETUP)) {
        Err(TrainError::Backend(e @ BackendError::Failed { .. })) => {
            assert!(e.to_string().contains("CUDA_ERROR_OUT_OF_MEMORY"), "{e}")
        }
        other => panic!("expected the backend's error, got {other:?}"),
    }
    let r = run_with(&failing_at(0)).expect("a failed result, not an error");
    assert_eq!((r.status, r.steps), (Status::Failed, 0));
    assert!(r.reason.as_deref().unwrap().contains("step 1/5"), "{r:?}");
}

/// A metered run whose backend fails in warm-up, or in its first measured step, says it
/// failed there, not that it was interrupted.
#[test]
fn a_failure_before_any_measured_step_is_not_called_an_interruption() {
    for (fails_at, where_) in [(1, "during warm-up"), (2, "inside its first measured step")] {
        let backend = Hooked(Arc::new(move |step| {
            if step == fails_at {
                return Err(BackendError::failed("candle", "CUDA_ERROR_ILLEGAL_ADDRESS"));
            }
            Ok(())
        }));
        let meters = one_joule_meter();
        let mut o = tiny(ModelKind::Mlp, 10);
        o.warmup_steps = 2;
        let r = train_on(
            &o,
            &backend,
            Some(&meters),
            &Control::default(),
            &mut |_| {},
        )
        .expect("a failed result");
        assert_eq!(r.status, Status::Failed);
        assert!(r.energy.total_joules_per_iter.is_none());
        let want = format!("the run failed {where_}");
        assert!(
            r.energy.notes.iter().any(|n| n.contains(&want)),
            "{want}: {:?}",
            r.energy.notes
        );
        assert!(
            r.energy.notes.iter().all(|n| !n.contains("interrupted")),
            "{:?}",
            r.energy.notes
        );
    }
}

/// Fake package meter: exactly 1 J ± 0.25 J over any window (one reading at each edge).
fn one_joule_meter() -> Meters {
    one_joule_meter_and(Vec::new())
}

/// [`one_joule_meter`] with `more` domains after it; no NVML.
fn one_joule_meter_and(more: Vec<Arc<dyn Domain>>) -> Meters {
    let mut domains: Vec<Arc<dyn Domain>> =
        vec![Arc::new(StepCounter::new("fake-package", 1000, 0.25))];
    domains.extend(more);
    Meters::from_domains(
        domains,
        &MeterConfig {
            nvml: false,
            ..MeterConfig::default()
        },
    )
}

/// A metered MLP run of `steps` steps (`warmup` of them warm-up, a loss logged every step,
/// projected to 10 000 steps) that an interrupt stops while step `stop_at` is reported.
fn interrupted_at(steps: u64, warmup: u64, stop_at: u64) -> TrainingResult {
    let meters = one_joule_meter();
    let mut o = tiny(ModelKind::Mlp, steps);
    o.warmup_steps = warmup;
    o.log_every = 1;
    o.projection = Some(ProjectionTarget::Steps(10_000));
    let flag = AtomicBool::new(false);
    let control = Control {
        interrupt: &flag,
        progress: None,
    };
    train_on(&o, &CandleBackend, Some(&meters), &control, &mut |p| {
        if p.step == stop_at {
            flag.store(true, Ordering::SeqCst);
        }
    })
    .unwrap()
}

#[test]
fn an_interrupt_stops_at_the_next_step_and_reports_the_steps_done() {
    // The stop comes while step 14 is being reported: steps 0–14 ran, 10 of them measured.
    let r = interrupted_at(1000, 5, 14);
    assert_eq!(r.status, Status::Ok);
    assert_eq!((r.steps, r.warmup_steps, r.measured_steps), (15, 5, 10));
    let why = r.reason.as_deref().unwrap();
    assert!(why.contains("interrupted after 15 of 1000 steps"), "{why}");
    assert!(why.contains("not evaluated"), "{why}");
    assert_eq!(r.loss.curve.len(), 15);
    assert!(r.loss.last.is_some() && r.loss.dataset_after.is_none());
    assert_eq!(r.time.as_ref().unwrap().samples_s.len(), 10);
    // The energy window closed at the step boundary: 1 J over the 10 measured steps.
    assert_eq!(r.energy.calls, 10);
    let e = r.energy.total_joules_per_iter.unwrap();
    assert!((e.value - 0.1).abs() < 1e-12, "{e:?}");
    assert!(r.energy.notes.iter().all(|n| !n.contains("scaled")));
    // The projection rests on the measured steps, and says the run was cut short.
    let p = r.projection.unwrap();
    assert_eq!(p.measured_steps, 10);
    assert!(p.assumptions.iter().any(|a| a.contains("interrupted")));
}

#[test]
fn an_interrupt_during_warm_up_leaves_time_energy_and_projection_null() {
    let r = interrupted_at(100, 50, 3);
    assert_eq!((r.steps, r.measured_steps), (4, 0));
    assert_eq!(r.loss.curve.len(), 4);
    // Null with a reason, never 0.
    assert!(r.time.is_none() && r.samples_per_s.is_none() && r.gflops_per_s.is_none());
    assert!(r.energy.total_joules_per_iter.is_none() && r.energy_per_sample_j.is_none());
    assert_eq!(r.energy.calls, 0);
    assert!(
        r.energy.notes.iter().any(|n| n.contains("warm-up")),
        "{:?}",
        r.energy.notes
    );
    assert!(r.projection.is_none());
    let why = r.reason.as_deref().unwrap();
    assert!(why.contains("none of them measured"), "{why}");
    // Still a valid result file entry.
    let back: TrainingResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn an_interrupt_before_the_first_step_reports_nothing() {
    let flag = AtomicBool::new(true);
    let control = Control {
        interrupt: &flag,
        progress: None,
    };
    let r = train_on(
        &tiny(ModelKind::Mlp, 10),
        &CandleBackend,
        None,
        &control,
        &mut |_| panic!("no step may run"),
    );
    assert!(matches!(r, Err(TrainError::Interrupted)), "{r:?}");
}

/// What a [`Hooked`] trainer does before step `n` (0-based) runs; an error is the step's.
type Hook = dyn Fn(u64) -> Result<(), BackendError> + Send + Sync;

/// Candle, whose trainer runs a hook before each step: a step that blocks as long as the test
/// wants, fails, or sets an interrupt. The hook also runs, with [`SETUP`], before the trainer
/// is built.
struct Hooked(Arc<Hook>);

/// The hook's step number while the trainer is being built (before any step).
const SETUP: u64 = u64::MAX;

/// Candle that blocks in step `at` until the test lets it go: says it entered on `entered`,
/// then waits on `release`.
fn gated(at: u64, entered: mpsc::Sender<()>, release: mpsc::Receiver<()>) -> Hooked {
    let (entered, release) = (Mutex::new(entered), Mutex::new(release));
    Hooked(Arc::new(move |step| {
        if step == at {
            entered.lock().unwrap().send(()).unwrap();
            release.lock().unwrap().recv().unwrap();
        }
        Ok(())
    }))
}

struct HookedTrainer {
    inner: Box<dyn Trainer>,
    hook: Arc<Hook>,
    step: u64,
}

impl Trainer for HookedTrainer {
    fn step(&mut self, bi: usize, lr: f64, want_loss: bool) -> Result<Option<f32>, BackendError> {
        (self.hook)(self.step)?;
        self.step += 1;
        self.inner.step(bi, lr, want_loss)
    }
    fn loss(&mut self, bi: usize) -> Result<f32, BackendError> {
        self.inner.loss(bi)
    }
    fn sync(&mut self) -> Result<(), BackendError> {
        self.inner.sync()
    }
    fn params(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        self.inner.params()
    }
}

impl Backend for Hooked {
    fn name(&self) -> &'static str {
        CandleBackend.name()
    }
    fn devices(&self) -> Vec<DeviceInfo> {
        CandleBackend.devices()
    }
    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        CandleBackend.supports(case, device)
    }
    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        CandleBackend.prepare(case, device, inputs)
    }
    fn trains(&self) -> bool {
        true
    }
    fn trainer(&self, setup: &TrainSetup<'_>) -> Result<Box<dyn Trainer>, BackendError> {
        (self.0)(SETUP)?;
        Ok(Box::new(HookedTrainer {
            inner: CandleBackend.trainer(setup)?,
            hook: self.0.clone(),
            step: 0,
        }))
    }
}

#[test]
fn a_run_abandoned_inside_a_long_step_reports_the_completed_steps() {
    let meters = one_joule_meter();
    let mut o = tiny(ModelKind::Mlp, 1000);
    o.warmup_steps = 2;
    o.log_every = 1;
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    // Step 12 does not end until released: steps 0–11 completed, 10 of them measured.
    let backend = gated(12, entered_tx, release_rx);
    let flag = AtomicBool::new(false);
    let progress = Progress::default();
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let control = Control {
                interrupt: &flag,
                progress: Some(&progress),
            };
            train_on(&o, &backend, Some(&meters), &control, &mut |_| {})
        });
        entered.recv().unwrap();
        // Let the window run past the last completed step before the caller gives up.
        std::thread::sleep(std::time::Duration::from_millis(20));
        flag.store(true, Ordering::SeqCst);
        let Abandoned::Partial(r) = progress.abandon(Some(&meters)) else {
            panic!("the run was under way");
        };
        assert!(matches!(
            progress.abandon(Some(&meters)),
            Abandoned::Finishing
        ));
        assert_eq!((r.steps, r.measured_steps), (12, 10));
        assert_eq!(r.loss.curve.len(), 12);
        assert_eq!(r.time.as_ref().unwrap().samples_s.len(), 10);
        let why = r.reason.as_deref().unwrap();
        assert!(why.contains("during step 13 of 1000"), "{why}");
        // The window's 1 J is scaled to the completed steps' share of it, and says so.
        let e = r.energy.total_joules_per_iter.unwrap();
        assert!(e.value > 0.0 && e.value < 0.1, "{e:?}");
        assert!(
            r.energy.notes.iter().any(|n| n.contains("scaled")),
            "{:?}",
            r.energy.notes
        );
        assert!(r.memory.device_peak_bytes.is_none() && r.loss.dataset_after.is_none());
        // The step ends; the run stops there and reports nothing more.
        release.send(()).unwrap();
        assert!(matches!(
            worker.join().unwrap(),
            Err(TrainError::Interrupted)
        ));
    });
}

#[test]
fn abandoning_a_run_still_setting_up_finds_nothing() {
    assert!(matches!(
        Progress::default().abandon(None),
        Abandoned::NotStarted
    ));
}
