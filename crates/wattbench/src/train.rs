//! `wattbench train`: a short end-to-end training run of a small model on one backend, its
//! falling loss, time and energy per step, and a projection of the full run's time, kWh and
//! CO2e. Training, metering and projection live in `wattbench_train`; this module parses the
//! options, prints and writes the run file atomically.
use crate::{backends, energy, inventory, output, UsageError};
use anyhow::Result;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::path::{Path, PathBuf};
use wattbench_core::result::{RunFile, Status, SCHEMA_VERSION};
use wattbench_core::workload::parse_choice;
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::{Interval, MeterConfig, Meters};
use wattbench_train::run::DEFAULT_DATASET_SAMPLES;
use wattbench_train::{
    train, BackendKind, ModelConfig, ModelKind, ProjectionTarget, Size, TrainError, TrainOptions,
    TrainReport,
};

/// Options of `wattbench train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model: mlp, cnn or lstm.
    #[arg(long)]
    model: String,
    /// Backend: candle or tch (tch needs a build with the `tch` feature).
    #[arg(long, default_value = "candle")]
    backend: String,
    /// Device: cpu, or cuda (tch, when libtorch sees a GPU).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Model size: standard, or tiny for a quick check.
    #[arg(long, default_value = "standard")]
    size: String,
    /// SGD steps, warm-up included (default 200 unless --epochs is given).
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<u64>,
    /// Train for this many passes over the synthetic data set instead of --steps.
    #[arg(long)]
    epochs: Option<u64>,
    /// Samples per step (default: 64 for mlp and cnn, 32 for lstm).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate (default: 0.2 for mlp and cnn, 0.5 for lstm).
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of the weights, the teacher and the inputs.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Samples in the synthetic data set (rounded down to whole batches).
    #[arg(long, default_value_t = DEFAULT_DATASET_SAMPLES)]
    dataset_samples: usize,
    /// Print and record the loss every N steps (default: a tenth of the run).
    #[arg(long, value_name = "N")]
    log_every: Option<u64>,
    /// Steps left out of timing and energy (default: a tenth of the run, 1 to 10).
    #[arg(long, value_name = "N")]
    warmup_steps: Option<u64>,
    /// Project the time, energy and CO2e of a full run of N steps.
    #[arg(long, value_name = "N", group = "project")]
    project_steps: Option<u64>,
    /// Project a full run of N training samples.
    #[arg(long, value_name = "N", group = "project")]
    project_samples: Option<u64>,
    /// Project a full run of N epochs over this run's data set.
    #[arg(long, value_name = "N", group = "project")]
    project_epochs: Option<u64>,
    /// Grid region for the carbon intensity: country code (FR, US...) or cloud region
    /// (aws:eu-west-3...). Default: world average.
    #[arg(long, value_name = "CODE")]
    region: Option<String>,
    /// Grid carbon intensity, gCO2e/kWh (overrides the table's figure for --region).
    #[arg(long, value_name = "G_PER_KWH")]
    intensity: Option<f64>,
    /// Data-centre power usage effectiveness (default 1.0: IT energy only).
    #[arg(long, value_name = "PUE")]
    pue: Option<f64>,
    /// Electricity price per kWh, in any currency, for a cost figure.
    #[arg(long, value_name = "PRICE")]
    price_per_kwh: Option<f64>,
    /// CPU TDP in watts for the energy estimate where no counter exists.
    #[arg(long, value_name = "WATTS")]
    tdp_watts: Option<f64>,
    /// Powercap sysfs root for RAPL (default: $WATTBENCH_POWERCAP_ROOT, else
    /// /sys/class/powercap).
    #[arg(long, value_name = "DIR")]
    powercap_root: Option<PathBuf>,
    /// Do not look for NVIDIA GPUs.
    #[arg(long)]
    no_nvml: bool,
    /// Result file (default: results/runs/<time>-<host>-train-<model>.json).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print the result document as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn options(args: &TrainArgs) -> Result<TrainOptions> {
    let kind =
        parse_choice("model", &args.model, &ModelKind::ALL, ModelKind::as_str).map_err(usage)?;
    let backend = parse_choice(
        "backend",
        &args.backend,
        &BackendKind::ALL,
        BackendKind::as_str,
    )
    .map_err(usage)?;
    let size = parse_choice("size", &args.size, &Size::ALL, Size::as_str).map_err(usage)?;
    if !backend.devices().contains(&args.device.as_str()) {
        return Err(usage(format!(
            "unknown device `{}` for backend {}; valid: {}",
            args.device,
            backend.as_str(),
            backend.devices().join(", ")
        )));
    }
    let model = ModelConfig::new(kind, size);
    let mut o = TrainOptions::new(model, backend, 200);
    o.device = args.device.clone();
    o.seed = args.seed;
    o.dataset_samples = args.dataset_samples;
    if let Some(b) = args.batch_size {
        o.batch = b;
    }
    if let Some(lr) = args.lr {
        o.lr = lr;
    }
    o.steps = match (args.steps, args.epochs) {
        (Some(s), _) => s,
        (None, Some(0)) => return Err(usage("--epochs must be at least 1")),
        (None, Some(e)) => e.saturating_mul(o.batches() as u64),
        (None, None) => 200,
    };
    o.log_every = args.log_every.unwrap_or((o.steps / 10).max(1));
    o.warmup_steps = args.warmup_steps;
    o.projection = match (
        args.project_steps,
        args.project_samples,
        args.project_epochs,
    ) {
        (Some(n), _, _) => Some(ProjectionTarget::Steps(n)),
        (_, Some(n), _) => Some(ProjectionTarget::Samples(n)),
        (_, _, Some(n)) => Some(ProjectionTarget::Epochs(n)),
        _ => None,
    };
    if let Some(t) = args.tdp_watts {
        if !t.is_finite() || t <= 0.0 {
            return Err(usage(format!(
                "--tdp-watts must be a positive number of watts, not {t}"
            )));
        }
    }
    o.carbon = CarbonParams::resolve(
        args.region.as_deref(),
        args.intensity,
        args.pue,
        args.price_per_kwh,
    )
    .map_err(|e| usage(e.to_string()))?;
    o.validate().map_err(|e| usage(e.to_string()))?;
    Ok(o)
}

/// `x` with four significant digits.
fn sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..9).contains(&mag) {
        return format!("{x:.3e}");
    }
    format!("{x:.*}", (3 - mag).max(0) as usize)
}

fn iv(i: &Interval, unit: &str, k: f64) -> String {
    format!(
        "{} {unit} [{} – {}]",
        sig(i.value * k),
        sig(i.low * k),
        sig(i.high * k)
    )
}

fn print_summary(r: &TrainReport, path: &Path) {
    let f = r.flops;
    println!(
        "{} on {}/{}: {} parameters, batch {}, lr {}, {} steps ({} warm-up, {} measured), {:.2} epochs of {} samples",
        r.model.kind().as_str(),
        r.backend,
        r.device,
        r.parameters,
        r.batch_size,
        r.lr,
        r.steps,
        r.warmup_steps,
        r.measured_steps,
        r.epochs,
        r.dataset.samples
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["", "value"]);
    let l = &r.loss;
    t.add_row(vec![
        "loss (step MSE)".to_string(),
        format!("{:.4} → {:.4}", l.first, l.last),
    ]);
    t.add_row(vec![
        "loss (whole data set)".to_string(),
        format!(
            "{:.4} → {:.4} (×{:.3})",
            l.dataset_before, l.dataset_after, l.ratio
        ),
    ]);
    let tm = &r.time;
    t.add_row(vec![
        "time per step".to_string(),
        format!(
            "median {} (95% CI {} – {}), mean {}, p95 {}",
            output::seconds(tm.median_s),
            output::seconds(tm.ci95_median_s[0]),
            output::seconds(tm.ci95_median_s[1]),
            output::seconds(tm.mean_s),
            output::seconds(tm.p95_s)
        ),
    ]);
    t.add_row(vec![
        "throughput".to_string(),
        format!(
            "{:.1} samples/s, {:.2} GFLOP/s ({} MFLOP per step: fwd {}, bwd {}, update {})",
            r.samples_per_s,
            r.gflops_per_s,
            sig(f.step as f64 / 1e6),
            sig(f.forward as f64 / 1e6),
            sig(f.backward as f64 / 1e6),
            sig(f.update as f64 / 1e6)
        ),
    ]);
    let e = &r.energy;
    let sources = e
        .sources
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("+");
    match (&e.per_step_j, &e.per_sample_j) {
        (Some(s), Some(p)) => {
            t.add_row(vec![
                "energy per step".to_string(),
                format!(
                    "{} ± {} ({sources}; {})",
                    output::joules(s.value),
                    output::joules((s.high - s.value).abs()),
                    e.includes.join(" + ")
                ),
            ]);
            t.add_row(vec![
                "energy per sample".to_string(),
                format!("{} ({sources})", output::joules(p.value)),
            ]);
            if let Some(n) = e.net_per_step_j {
                t.add_row(vec!["net of idle, per step".to_string(), output::joules(n)]);
            }
        }
        _ => {
            t.add_row(vec![
                "energy per step".to_string(),
                format!("unmeasured: {}", e.excludes.join("; ")),
            ]);
        }
    }
    if let Some(m) = r.memory.host_peak_rss_bytes {
        t.add_row(vec![
            "peak host memory".to_string(),
            format!(
                "{:.1} MiB (process RSS{})",
                m as f64 / 1048576.0,
                if r.memory.host_peak_reset {
                    ", reset at the start of the run"
                } else {
                    ", since the process started"
                }
            ),
        ]);
    }
    println!("{t}");
    for n in &e.notes {
        println!("energy note: {n}");
    }
    if let Some(p) = &r.projection {
        println!(
            "projection to {} steps ({} samples):",
            p.total_steps, p.total_samples
        );
        println!("  wall time  {}", iv(&p.duration_s, "h", 1.0 / 3600.0));
        match (&p.energy_kwh, &p.co2e_kg) {
            (Some(kwh), Some(co2)) => {
                println!(
                    "  energy     {}{}",
                    iv(kwh, "kWh", 1.0),
                    if p.energy_estimated {
                        " (ESTIMATED)"
                    } else {
                        ""
                    }
                );
                if let Some(fk) = &p.facility_kwh {
                    println!(
                        "  facility   {} (× PUE {:.2})",
                        iv(fk, "kWh", 1.0),
                        p.carbon.pue
                    );
                }
                println!("  emissions  {}", iv(co2, "kg CO2e", 1.0));
                if let Some(c) = &p.cost {
                    println!(
                        "  cost       {}",
                        iv(c, "(currency of --price-per-kwh)", 1.0)
                    );
                }
            }
            _ => println!("  energy     no reading: no kWh or CO2e figure"),
        }
        println!("  assumptions:");
        for a in &p.assumptions {
            println!("  - {a}");
        }
    }
    if let Some(why) = &r.reason {
        println!("FAILED: {why}");
    }
    println!("{}", path.display());
}

/// Run `wattbench train`; returns the exit code (0 ok, 1 training diverged).
pub fn run(args: TrainArgs) -> Result<u8> {
    let opts = options(&args)?;
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| output::default_path(&format!("train-{}", opts.model.kind().as_str())));
    let tmp = output::open(&path)?;

    let meters = Meters::discover(&MeterConfig {
        powercap_root: args.powercap_root.clone(),
        tdp_watts: args.tdp_watts,
        nvml: !args.no_nvml,
        ..MeterConfig::default()
    });
    let backends = backends::all();
    let mut environment = inventory::environment(&backends, &meters);
    environment.meters = meters
        .inventory()
        .iter()
        .map(|m| serde_json::json!(m))
        .collect();
    let idle = energy::idle_baseline(&meters);
    let created_at = chrono::Utc::now().to_rfc3339();
    let started = std::time::Instant::now();

    let quiet = args.json;
    let total = opts.steps;
    let report = match train(&opts, Some(&meters), &idle, &mut |p| {
        if !quiet {
            eprintln!(
                "step {:>6}/{total}  epoch {:>4}  loss {:.5}",
                p.step + 1,
                p.epoch,
                p.loss
            );
        }
    }) {
        Ok(r) => r,
        Err(e @ (TrainError::Usage(_) | TrainError::Unavailable { .. })) => {
            return Err(usage(e.to_string()))
        }
        Err(e) => return Err(anyhow::Error::new(e).context("wattbench train")),
    };

    let config = serde_json::json!({
        "argv": std::env::args().collect::<Vec<_>>(),
        "command": "train",
        "model": opts.model,
        "backend": opts.backend,
        "device": opts.device,
        "steps": opts.steps,
        "batch_size": opts.batch,
        "lr": opts.lr,
        "seed": opts.seed,
        "dataset_samples": opts.dataset_samples,
        "log_every": opts.log_every,
        "warmup_steps": opts.warmup(),
        "projection": opts.projection,
    });
    let doc = RunFile {
        schema_version: SCHEMA_VERSION,
        created_at,
        duration_s: started.elapsed().as_secs_f64(),
        interrupted: false,
        environment,
        config,
        energy: Some(serde_json::json!({
            "idle_baseline": idle,
            "min_window_s": meters.min_window().as_secs_f64(),
            "note": "the e2e case's energy covers its measured steps (after warm-up), divided by their number",
        })),
        cases: vec![report.to_case_result()],
    };
    let text = serde_json::to_string_pretty(&doc)?;
    output::commit(tmp, text.as_bytes(), &path)?;

    if args.json {
        println!("{text}");
        eprintln!("{}", path.display());
    } else {
        print_summary(&report, &path);
    }
    Ok(if report.status == Status::Failed {
        1
    } else {
        0
    })
}
