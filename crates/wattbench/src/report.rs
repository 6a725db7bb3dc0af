//! `wattbench report`: a Markdown summary of a result file.
use crate::UsageError;
use anyhow::Result;
use clap::Args;
use comfy_table::presets::ASCII_MARKDOWN;
use std::path::PathBuf;
use wattbench_core::result::{Config, RunFile, Status};
use wattbench_core::units;

/// Options of `wattbench report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A result file written by `wattbench run`.
    input: PathBuf,
    /// Write the report here instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Render `doc` as Markdown.
pub fn render(doc: &RunFile) -> String {
    let env = &doc.environment;
    let h = &env.host;
    let unknown = || "unknown".to_string();
    let count = |s: Status| doc.cases.iter().filter(|c| c.status == s).count();
    let mut md = String::new();
    md.push_str(&format!("# wattbench run, {}\n\n", doc.created_at));
    md.push_str(&format!(
        "- suite: `{}`; {} ok, {} skipped, {} failed; {:.1} s{}\n",
        match &doc.config {
            Config::Run(r) => r.suite.clone(),
            Config::Train(t) => format!("train {}", t.settings.model.label()),
        },
        count(Status::Ok),
        count(Status::Skipped),
        count(Status::Failed),
        doc.duration_s,
        if doc.interrupted {
            " (interrupted: incomplete)"
        } else {
            ""
        }
    ));
    md.push_str(&format!(
        "- host: {} — {} ({} logical cores), {}\n",
        h.hostname.clone().unwrap_or_else(unknown),
        h.cpu_model.clone().unwrap_or_else(unknown),
        h.logical_cores,
        h.os.clone().unwrap_or_else(unknown)
    ));
    let sw: Vec<String> = env
        .software
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    md.push_str(&format!("- software: {}\n", sw.join(", ")));
    md.push_str(&format!(
        "- commit: {}\n",
        env.git_commit.clone().unwrap_or_else(unknown)
    ));
    md.push_str(&format!(
        "- GPUs: {}\n\n",
        if env.gpus.is_empty() {
            "none".to_string()
        } else {
            env.gpus.len().to_string()
        }
    ));
    if !doc.cases.is_empty() {
        md.push_str("Times are per call: the median of the samples and a bootstrap 95% interval of that median. ");
        md.push_str(
            "GB/s counts the minimum bytes (each input read once, each output written once). ",
        );
        md.push_str("Every ok case was verified against the f64 reference first.\n\n");
    }
    if !doc.trainings.is_empty() {
        md.push_str(
            "Training runs are end to end and are not verified against the f64 reference \
                     while they run; each backend's trainer (its loss and gradients) is checked \
                     against the f64 host model by `wattbench check` and the tests.\n\n",
        );
    }
    if !doc.cases.is_empty() {
        md.push_str(&crate::run::table(&doc.cases, ASCII_MARKDOWN).to_string());
        md.push_str("\n\n");
        for line in crate::energy::notes(doc) {
            md.push_str(&format!("{line}\n\n"));
        }
    }
    for t in &doc.trainings {
        md.push_str(&format!(
            "\n## Training run `{}`: {}\n\n",
            t.id,
            match (t.status, &t.reason) {
                (Status::Failed, Some(r)) => format!("FAILED: {r}"),
                (s, _) => format!("{s:?}").to_lowercase(),
            }
        ));
        md.push_str(&format!(
            "- {} steps ({} warm-up, {} measured), batch {}, lr {}\n",
            t.steps, t.warmup_steps, t.measured_steps, t.batch_size, t.lr
        ));
        let loss = |l: Option<f32>| l.map_or("not finite".to_string(), |l| format!("{l:.4}"));
        md.push_str(&format!(
            "- loss {} → {}\n",
            loss(t.loss.first),
            loss(t.loss.last)
        ));
        if let Some(tm) = &t.time {
            md.push_str(&format!(
                "- time per step: median {} (95% CI {} – {})\n",
                units::seconds(tm.median_s),
                units::seconds(tm.ci95_median_s[0]),
                units::seconds(tm.ci95_median_s[1])
            ));
        }
        md.push_str(&format!(
            "- energy per step: {}\n",
            crate::energy::summary(&t.energy)
        ));
        if let Some(p) = &t.projection {
            if let (Some(kwh), Some(co2)) = (&p.energy_kwh, &p.co2e_kg) {
                md.push_str(&format!(
                    "- projected to {} steps: {}, {}{}\n",
                    p.total_steps,
                    units::interval(kwh, "kWh", 1.0),
                    units::interval(co2, "kg CO2e", 1.0),
                    if p.energy_estimated {
                        " (ESTIMATED)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    md
}

/// Run the command; returns the exit code.
pub fn run(args: ReportArgs) -> Result<u8> {
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", args.input.display())))?;
    let doc = RunFile::from_json(&text)
        .map_err(|e| UsageError(format!("{}: {e}", args.input.display())))?;
    let md = render(&doc);
    match args.output {
        None => print!("{md}"),
        Some(path) => {
            let file = crate::output::prepare(&path)?;
            crate::output::commit(file, md.as_bytes())?;
        }
    }
    Ok(0)
}
