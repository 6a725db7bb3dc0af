//! `wattbench check`: the generic correctness checks the test suite runs on every backend
//! (`backend_tests!`, `trainer_tests!`), from the command line, so that a machine without a
//! Rust toolchain (a GPU machine running the bundle) runs the very same assertions: every op
//! on odd shapes, every dtype, inference and training steps, against the f64 reference; and
//! each trainer's loss and gradients against the f64 host model.
use crate::backends;
use crate::options::{self, choices, usage};
use anyhow::Result;
use clap::Args;
use std::sync::Arc;
use wattbench_core::model::ModelKind;
use wattbench_core::testing::{check, check_training, declared_unsupported, Perturbed};
use wattbench_core::{Mode, Op};

/// The ops and modes of the backends that implement only some, by design: `check` reports the
/// others as not applicable. Every backend not listed implements every op and mode, and a
/// listed op it declares wholly unsupported fails the check.
const COVERAGE: &[(&str, &[(Op, Mode)])] = &[
    ("cuda-naive", &[(Op::Gemm, Mode::Infer)]),
    ("cuda-wgmma", &[(Op::Gemm, Mode::Infer)]),
    ("cuda-wgmma-c2", &[(Op::Gemm, Mode::Infer)]),
    ("cublas", &[(Op::Gemm, Mode::Infer)]),
    (
        "cudnn",
        &[(Op::Conv2d, Mode::Infer), (Op::Conv2d, Mode::Train)],
    ),
];

/// Whether `backend` implements `op` in `mode` ([`COVERAGE`]).
fn implements(backend: &str, op: Op, mode: Mode) -> bool {
    COVERAGE
        .iter()
        .find(|(b, _)| *b == backend)
        .is_none_or(|(_, ops)| ops.contains(&(op, mode)))
}

/// Options of `wattbench check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The backend to check; see `wattbench list`.
    #[arg(long)]
    backend: String,
    /// The device (default: the backend's first available one). GPU devices are UNVERIFIED
    /// ON HARDWARE.
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
    /// (For the tests of this command.) Add DELTA to one output value of every op case, so
    /// that a check fails as a wrong backend's would. Hidden from --help.
    #[arg(long, hide = true, value_name = "DELTA")]
    perturb: Option<f32>,
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

/// Run the checks; exit 0 when all pass, 1 when one fails, 2 when nothing is left to check
/// (`--op none` and no trainer check) or the selection is bad. An op and mode of which the
/// backend supports no case at all (cuBLAS has no convolution) is listed as `skip`, not run.
pub fn run(args: CheckArgs) -> Result<u8> {
    let all = backends::all();
    let mut backend = options::backend(&all, &args.backend)?.clone();
    if let Some(delta) = args.perturb {
        backend = Arc::new(Perturbed {
            inner: backend,
            delta,
            index: 0,
        });
    }
    let device = options::device(backend.as_ref(), args.device.as_deref())?;
    if !device.available {
        return Err(usage(format!(
            "{}/{} is unavailable: {}",
            backend.name(),
            device.name,
            device.reason.as_deref().unwrap_or("no reason given")
        )));
    }
    let mut args = args;
    options::trim_list("--op", &mut args.op)?;
    options::trim_list("--mode", &mut args.mode)?;
    options::trim_list("--model", &mut args.model)?;
    if args.op.len() > 1 && args.op.iter().any(|o| o == "none") {
        return Err(usage(format!(
            "--op none goes alone (it checks no op, only the trainers), not with {}",
            args.op.join(",")
        )));
    }
    let ops = if args.op.iter().any(|o| o == "none") {
        Vec::new()
    } else {
        pick("op", &args.op, &Op::ALL, Op::as_str)?
    };
    let modes = pick("mode", &args.mode, &Mode::ALL, Mode::as_str)?;
    let no_model = args.model.iter().any(|m| m == "none");
    if !backend.trains() && !no_model && !args.model.is_empty() {
        return Err(usage(format!(
            "the {} backend does not train whole models: there is no trainer to check; leave \
             --model out (see `wattbench list` for the backends that train)",
            backend.name()
        )));
    }
    let models = if no_model || !backend.trains() {
        Vec::new()
    } else {
        pick("model", &args.model, &ModelKind::ALL, ModelKind::as_str)?
    };
    if ops.is_empty() && models.is_empty() {
        return Err(usage(format!(
            "nothing to check: --op none leaves the op checks out, and {}; name ops (--op) or \
             models (--model)",
            if backend.trains() {
                "--model none the trainer check".to_string()
            } else {
                format!("{} does not train whole models", backend.name())
            }
        )));
    }
    let at = format!("{}/{}", backend.name(), device.name);
    let mut failed = 0;
    for &op in &ops {
        for &mode in &modes {
            let what = format!("{at} {} {}", op.as_str(), mode.as_str());
            if let Some(why) = declared_unsupported(backend.as_ref(), &device.name, op, mode) {
                if implements(backend.name(), op, mode) {
                    // A backend that should run this op but refuses every case: a regression
                    // in its `supports`, not a gap.
                    println!(
                        "FAIL  {what}: every case declared unsupported, though {} implements \
                         it (e.g. {why})",
                        backend.name()
                    );
                    failed += 1;
                } else {
                    println!("skip  {what}: not applicable, no case is supported (e.g. {why})");
                }
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

#[cfg(test)]
mod coverage_tests {
    use super::*;

    /// The table says what each backend built here declares: an op it stopped supporting (or
    /// started to) shows here, on any machine, before a GPU check reads it as "n/a".
    #[test]
    fn the_coverage_table_is_what_the_backends_declare() {
        for b in backends::all() {
            let device = if b.devices().iter().any(|d| d.name == "cpu") {
                "cpu"
            } else {
                "cuda:0"
            };
            for op in Op::ALL {
                for mode in Mode::ALL {
                    let gap = declared_unsupported(b.as_ref(), device, op, mode);
                    if gap.as_deref().is_some_and(|w| {
                        w.contains("built without")
                            || w.contains("not available in this build")
                            || w.contains("compute capability")
                    }) {
                        // Not compiled into this binary, or a GPU of another generation here
                        // (its device is then listed unavailable, and check stops before).
                        continue;
                    }
                    assert_eq!(
                        gap.is_none(),
                        implements(b.name(), op, mode),
                        "{} {device} {} {}: {gap:?}",
                        b.name(),
                        op.as_str(),
                        mode.as_str()
                    );
                }
            }
        }
    }
}
