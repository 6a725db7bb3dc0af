//! `wattbench report`: a Markdown summary of a result file.
use crate::UsageError;
use anyhow::Result;
use clap::Args;
use comfy_table::presets::ASCII_MARKDOWN;
use std::path::PathBuf;
use wattbench_core::result::{RunFile, Status};

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
        doc.config
            .get("suite")
            .and_then(|s| s.as_str())
            .unwrap_or("?"),
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
    md.push_str("Times are per call: the median of the samples and a bootstrap 95% interval of that median. ");
    md.push_str("GB/s counts the minimum bytes (each input read once, each output written once). ");
    md.push_str("Every ok case was verified against the f64 reference first.\n\n");
    md.push_str(&crate::run::table(&doc.cases, ASCII_MARKDOWN).to_string());
    md.push('\n');
    md
}

/// Run the command; returns the exit code.
pub fn run(args: ReportArgs) -> Result<u8> {
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", args.input.display())))?;
    let doc: RunFile = serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "{} is not a wattbench result file: {e}",
            args.input.display()
        ))
    })?;
    let md = render(&doc);
    match args.output {
        None => print!("{md}"),
        Some(path) => {
            let tmp = crate::output::open(&path)?;
            crate::output::commit(tmp, md.as_bytes(), &path)?;
        }
    }
    Ok(0)
}
