//! `wattbench check`: the generic correctness checks the test suite runs on every backend
//! (`backend_tests!`, `trainer_tests!`), from the command line, so that a machine without a
//! Rust toolchain (a GPU machine running the bundle) runs the very same assertions: every op
//! on odd shapes, every dtype, inference and training steps, against the f64 reference; and
//! each trainer's loss and gradients against the f64 host model.
use crate::backends;
use crate::options::{self, choices, usage};
use anyhow::Result;
use clap::Args;
use wattbench_core::model::ModelKind;
use wattbench_core::testing::{check, check_training, declared_unsupported};
use wattbench_core::{Mode, Op};

/// Options of `wattbench check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The backend to check; see `wattbench list`.
    #[arg(long)]
    backend: String,
    /// The device (default: the backend's first available one).
    #[arg(long)]
    device: Option<String>,
    /// Only these ops (comma-separated; default all). `none` leaves the op checks out.
    #[arg(long, value_delimiter = ',')]
    op: Vec<String>,
    /// Only these modes (comma-separated: infer, train; default both).
    #[arg(long, value_delimiter = ',')]
    mode: Vec<String>,
    /// Only these models for the trainer check (comma-separated: mlp, cnn, lstm; default all,
    /// when the backend trains). `none` leaves the trainer check out.
    #[arg(long, value_delimiter = ',')]
    model: Vec<String>,
}

/// The named choices among `all`, or all of them when none is given.
fn pick<T: Copy>(
    what: &str,
    given: &[String],
    all: &[T],
    name: impl Fn(T) -> &'static str + Copy,
) -> Result<Vec<T>> {
    let v = choices(what, given, all, name)?;
    Ok(if v.is_empty() { all.to_vec() } else { v })
}

/// Run the checks; exit 0 when all pass, 1 when one fails. An op and mode of which the
/// backend supports no case at all (cuBLAS has no convolution) is listed as `skip`, not run.
pub fn run(args: CheckArgs) -> Result<u8> {
    let all = backends::all();
    let backend = options::backend(&all, &args.backend)?;
    let devices = backend.devices();
    let device = match &args.device {
        Some(d) => devices.iter().find(|x| &x.name == d).ok_or_else(|| {
            let names: Vec<&str> = devices.iter().map(|x| x.name.as_str()).collect();
            usage(format!(
                "unknown device `{d}` for {}; valid: {}",
                backend.name(),
                names.join(", ")
            ))
        })?,
        None => devices.iter().find(|d| d.available).unwrap_or(&devices[0]),
    };
    if !device.available {
        return Err(usage(format!(
            "{}/{} is unavailable: {}",
            backend.name(),
            device.name,
            device.reason.as_deref().unwrap_or("no reason given")
        )));
    }
    let ops = if args.op.iter().any(|o| o == "none") {
        Vec::new()
    } else {
        pick("op", &args.op, &Op::ALL, Op::as_str)?
    };
    let modes = pick("mode", &args.mode, &Mode::ALL, Mode::as_str)?;
    let models = if args.model.iter().any(|m| m == "none") || !backend.trains() {
        Vec::new()
    } else {
        pick("model", &args.model, &ModelKind::ALL, ModelKind::as_str)?
    };
    let at = format!("{}/{}", backend.name(), device.name);
    let mut failed = 0;
    for &op in &ops {
        for &mode in &modes {
            let what = format!("{at} {} {}", op.as_str(), mode.as_str());
            if let Some(why) = declared_unsupported(backend.as_ref(), &device.name, op, mode) {
                println!("skip  {what}: not applicable, no case is supported (e.g. {why})");
                continue;
            }
            match check(backend.as_ref(), &device.name, op, mode) {
                Ok(r) => {
                    println!(
                        "ok    {what}: {} cases verified, {} skipped",
                        r.passed,
                        r.skipped.len()
                    );
                    for s in &r.skipped {
                        println!("      {s}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL  {what}: {e}");
                }
            }
        }
    }
    for &kind in &models {
        let what = format!("{at} trainer {}", kind.as_str());
        match check_training(backend.as_ref(), &device.name, kind) {
            Ok(()) => println!("ok    {what}: loss and gradients match the f64 host model"),
            Err(e) => {
                failed += 1;
                println!("FAIL  {what}: {e}");
            }
        }
    }
    Ok(u8::from(failed > 0))
}
