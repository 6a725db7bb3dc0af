//! `wattbench report`: a Markdown summary of a result file, or a self-contained HTML report
//! of several inputs (`--format html`, built in [`crate::html`]).
use crate::UsageError;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use wattbench_core::result::{Config, RunFile, Status};
use wattbench_core::units;

/// What `report` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A Markdown summary of one result file.
    Markdown,
    /// One self-contained HTML page (inline SVG plots, no script, nothing fetched).
    Html,
}

/// Options of `wattbench report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A result file written by `wattbench run` or `train`. With --format html, any number of
    /// them, and `measure` reports (their .trace.csv is found beside them), traces, ceilings
    /// files, or folders of these.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// markdown, or html.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// (html) The machine's ceilings for the roofline, from `wattbench ceilings` (default:
    /// the file whose hardware fingerprint matches each result file's, in results/ceilings/
    /// or a `ceilings/` folder beside the results' folder). May be given once per machine.
    #[arg(long, value_name = "FILE")]
    ceilings: Vec<PathBuf>,
    /// (html) Run history for the trend section (default: $WATTBENCH_HISTORY, else
    /// results/history.sqlite when it exists).
    #[arg(long, value_name = "DB")]
    history: Option<PathBuf>,
}

/// Render `doc` as Markdown.
pub fn render(doc: &RunFile) -> String {
    let env = &doc.environment;
    let h = &env.host;
    let unknown = || "unknown".to_string();
    // Kernel cases and training runs alike.
    let count = |s: Status| {
        doc.cases.iter().filter(|c| c.status == s).count()
            + doc.trainings.iter().filter(|t| t.status == s).count()
    };
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
        "- host: {} — {} ({}), {}\n",
        h.hostname.clone().unwrap_or_else(unknown),
        h.cpu_name(),
        h.cores_text(),
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
        "- environment variables: {}\n",
        env.variables_text()
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
        let (table, after) = crate::table::cases(&doc.cases, crate::table::Target::Markdown);
        md.push_str(&table.to_string());
        md.push_str("\n\n");
        for line in after {
            md.push_str(&format!("{line}\n\n"));
        }
    }
    for line in crate::energy::notes(doc) {
        md.push_str(&format!("{line}\n\n"));
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
            "- {} steps ({} warm-up, {} measured), batch {}, lr {}{}\n",
            t.steps,
            t.warmup_steps,
            t.measured_steps,
            t.batch_size,
            t.lr,
            t.threads
                .map_or(String::new(), |n| format!(", {n} CPU threads"))
        ));
        md.push_str(&format!("- loss {}\n", crate::train::loss_change(&t.loss)));
        if let Some(tm) = &t.time {
            md.push_str(&format!(
                "- time per step: median {} ({})\n",
                units::seconds(tm.median_s),
                crate::train::median_interval(tm)
            ));
        }
        md.push_str(&format!(
            "- energy per step: {}\n",
            crate::energy::summary(&t.energy)
        ));
        if t.energy.whole_net().is_some() {
            md.push_str(&format!(
                "- net of idle, per step: {}\n",
                crate::energy::net_with_sources(&t.energy)
            ));
        }
        if let Some(p) = &t.projection {
            md.push_str("\n```text\n");
            for line in crate::train::projection_lines(p, &t.energy.missing_domains()) {
                md.push_str(&format!("{line}\n"));
            }
            md.push_str("```\n");
        }
    }
    md
}

/// The Markdown report of the one result file given.
fn markdown(args: &ReportArgs) -> Result<String> {
    let [input] = args.inputs.as_slice() else {
        return Err(UsageError(format!(
            "the Markdown report takes one result file, not {}; --format html takes several",
            args.inputs.len()
        ))
        .into());
    };
    if !args.ceilings.is_empty() || args.history.is_some() {
        return Err(UsageError(
            "--ceilings and --history are for the HTML report (--format html)".into(),
        )
        .into());
    }
    Ok(render(&crate::output::read_run(input)?))
}

/// Run the command; returns the exit code.
pub fn run(args: ReportArgs) -> Result<u8> {
    if let Some(out) = &args.output {
        // Every file the report reads: inputs, ceilings and the history database.
        let mut read = args.inputs.clone();
        read.extend(args.ceilings.iter().cloned());
        read.push(crate::history::db_path(args.history.as_deref()));
        crate::output::not_an_input(out, &read)?;
    }
    let md = match args.format {
        Format::Markdown => markdown(&args)?,
        Format::Html => {
            let inputs = crate::html::load(&args.inputs, &args.ceilings, args.history.as_deref())?;
            if let Some(out) = &args.output {
                // Also the files found rather than given: traces beside measure reports and
                // the ceilings files of the results' machines.
                crate::output::not_an_input(out, &inputs.files())?;
            }
            crate::html::render(&inputs)
        }
    };
    match args.output {
        None => print!("{md}"),
        Some(path) => {
            let file = crate::output::prepare(&path)?;
            crate::output::commit(file, md.as_bytes())?;
        }
    }
    Ok(0)
}
