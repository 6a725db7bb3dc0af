//! `wattbench check`: the generic correctness checks the test suite runs on every backend
//! (`backend_tests!`, `trainer_tests!`), from the command line, so that a machine without a
//! Rust toolchain (a GPU machine running the bundle) runs the very same assertions: every op
//! on odd shapes, every dtype, inference and training steps, against the f64 reference; and
//! each trainer's loss and gradients against the f64 host model.
use crate::backends;
use crate::options::{self, choices, usage};
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use wattbench_core::model::ModelKind;
use wattbench_core::testing::{check_reporting, check_training, declared_unsupported, Perturbed};
use wattbench_core::{Backend, Mode, Op};

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
    /// The device (default: the backend's first available one). GPU devices were verified on
    /// one NVIDIA H200 only (`wattbench list` says where).
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

/// Run the checks; exit 0 when all pass, 1 when one fails (a backend that panics inside a
/// check fails it), 2 when nothing is left to check (`--op none` and no trainer check) or the
/// selection is bad. An op and mode of which the backend supports no case at all (cuBLAS has
/// no convolution) is listed as `skip`, not run.
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
    // Not locked across the checks: a backend that prints from the worker thread would wait
    // on the lock for ever.
    let mut out = std::io::stdout();
    Ok(check_all(
        backend.as_ref(),
        &device.name,
        &ops,
        &modes,
        &models,
        &mut out,
    )?)
}

/// Check `ops` in `modes` and the trainers of `models` on `backend`/`device`, writing a line
/// for each (`ok`, `FAIL`, `skip`, with what was not verified or verified at a widened
/// tolerance under an `ok`); 1 when one failed, else 0.
fn check_all(
    backend: &dyn Backend,
    device: &str,
    ops: &[Op],
    modes: &[Mode],
    models: &[ModelKind],
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    let at = format!("{}/{device}", backend.name());
    let mut failed = 0;
    for &op in ops {
        for &mode in modes {
            let what = format!("{at} {} {}", op.as_str(), mode.as_str());
            if let Some(why) = declared_unsupported(backend, device, op, mode) {
                if implements(backend.name(), op, mode) {
                    // A backend that should run this op but refuses every case: a regression
                    // in its `supports`, not a gap.
                    writeln!(
                        out,
                        "FAIL  {what}: every case declared unsupported, though {} implements \
                         it (e.g. {why})",
                        backend.name()
                    )?;
                    failed += 1;
                } else {
                    writeln!(
                        out,
                        "skip  {what}: not applicable, no case is supported (e.g. {why})"
                    )?;
                }
                continue;
            }
            match on_worker(|on_case| check_reporting(backend, device, op, mode, on_case)) {
                Ok(Ok(r)) => {
                    let mut counts = format!("{} cases verified", r.verified());
                    if !r.update_not_verified.is_empty() {
                        counts += &format!(
                            ", {} passed with the update not verified",
                            r.update_not_verified.len()
                        );
                    }
                    if !r.widened.is_empty() {
                        counts += &format!(", {} at a widened tolerance", r.widened.len());
                    }
                    writeln!(out, "ok    {what}: {counts}, {} skipped", r.skipped.len())?;
                    if !r.update_not_verified.is_empty() {
                        writeln!(
                            out,
                            "      update not verified (the SGD step is below the dtype's \
                             rounding of the weights, so weights returned without it would \
                             pass too; the gradients are verified):"
                        )?;
                        for c in &r.update_not_verified {
                            writeln!(out, "        {c}")?;
                        }
                    }
                    for c in &r.widened {
                        writeln!(out, "      widened tolerance: {c}")?;
                    }
                    for s in &r.skipped {
                        writeln!(out, "      {s}")?;
                    }
                }
                Ok(Err(e)) => {
                    failed += 1;
                    writeln!(out, "FAIL  {what}: {e}")?;
                }
                Err(p) => {
                    failed += 1;
                    writeln!(out, "FAIL  {what}: {p}")?;
                }
            }
        }
    }
    for &kind in models {
        let what = format!("{at} trainer {}", kind.as_str());
        match on_worker(|_| check_training(backend, device, kind)) {
            Ok(Ok(())) => writeln!(
                out,
                "ok    {what}: loss and gradients of two steps match the f64 host model"
            )?,
            Ok(Err(e)) => {
                failed += 1;
                writeln!(out, "FAIL  {what}: {e}")?;
            }
            Err(p) => {
                failed += 1;
                writeln!(out, "FAIL  {what}: {p}")?;
            }
        }
    }
    Ok(u8::from(failed > 0))
}

/// A backend that panicked inside a check: the case it was running and its message.
#[derive(Debug)]
struct Panicked {
    case: Option<String>,
    message: String,
}

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the backend panicked")?;
        if let Some(case) = &self.case {
            write!(f, " in {case}")?;
        }
        write!(
            f,
            ": {} (a bug of the backend: its panic message and location are on standard \
             error)",
            self.message
        )
    }
}

/// Run `work` on a worker thread, which tells it each case as it starts one, and return what
/// it returned, or the backend's panic with the case it was in. This is the one panic
/// boundary of `check`: the checks run backend code, and a panic there (an assertion or an
/// index out of bounds in a kernel wrapper) is a bug of the backend under check, which must
/// be a `FAIL` line naming the case, not an exit 101 with no verdict; `run` catches it at its
/// worker thread the same way. It fails the check, exit 1, where `run` exits 2: to `check`'s
/// callers (scripts/gpu-check.sh) 2 means an unavailable device or a refused selection, which
/// an optional backend's would hide. (A missing library is never left to panic: backends
/// probe for it and report their devices unavailable, and `check` stops before any case.)
fn on_worker<T: Send>(work: impl FnOnce(&mut dyn FnMut(&str)) -> T + Send) -> Result<T, Panicked> {
    let current: Mutex<Option<String>> = Mutex::new(None);
    let joined = std::thread::scope(|s| {
        s.spawn(|| {
            work(&mut |case: &str| {
                *current.lock().unwrap_or_else(PoisonError::into_inner) = Some(case.to_string());
            })
        })
        .join()
    });
    joined.map_err(|payload| Panicked {
        case: current.into_inner().unwrap_or_else(PoisonError::into_inner),
        message: (payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::backend::{BackendError, DeviceInfo, Prepared, ToleranceOverride};
    use wattbench_core::reference::ReferenceBackend;
    use wattbench_core::tensor::HostTensor;
    use wattbench_core::workload::{Case, GemmParams, Params};

    /// The reference backend, panicking when it prepares the training step of `panic_on`,
    /// and declaring its tolerance widened `widen` times when given.
    struct Faulty {
        panic_on: Option<GemmParams>,
        widen: Option<f64>,
    }

    struct Widened(Box<dyn Prepared>, Option<f64>);

    impl Backend for Faulty {
        fn name(&self) -> &'static str {
            "faulty"
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            vec![DeviceInfo::available("cpu")]
        }
        fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
            ReferenceBackend.supports(case, device)
        }
        fn prepare(
            &self,
            case: &Case,
            device: &str,
            inputs: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            if case.mode == Mode::Train
                && self
                    .panic_on
                    .is_some_and(|p| case.params == Params::Gemm(p))
            {
                panic!("index out of bounds (a test's)");
            }
            let p = ReferenceBackend.prepare(case, device, inputs)?;
            Ok(Box::new(Widened(p, self.widen)))
        }
    }

    impl Prepared for Widened {
        fn execute(&mut self) -> Result<(), BackendError> {
            self.0.execute()
        }
        fn sync(&mut self) -> Result<(), BackendError> {
            self.0.sync()
        }
        fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
            self.0.outputs()
        }
        fn tolerance(&self) -> Option<ToleranceOverride> {
            self.1.map(|factor| ToleranceOverride {
                factor,
                why: "a test's".into(),
            })
        }
    }

    /// The lines `check_all` writes for GEMM in both modes on `backend`, and its exit code.
    fn gemm_check(backend: &dyn Backend) -> (String, u8) {
        let mut out = Vec::new();
        let code = check_all(backend, "cpu", &[Op::Gemm], &Mode::ALL, &[], &mut out).unwrap();
        (String::from_utf8(out).unwrap(), code)
    }

    /// A backend that panicked inside a check ended `check` with exit 101 and no verdict:
    /// now its check fails with a line naming the case it panicked in, exit 1 (a failed
    /// check; 2 means an unavailable device or a refused selection to the GPU check script),
    /// and the other checks still run.
    #[test]
    fn a_backend_that_panics_fails_its_check_naming_the_case() {
        let (out, code) = gemm_check(&Faulty {
            panic_on: Some(GemmParams::new(17, 33, 65)),
            widen: None,
        });
        assert_eq!(code, 1, "{out}");
        let verdicts: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
        assert_eq!(verdicts.len(), 2, "{out}");
        assert!(
            verdicts[0].starts_with("ok    faulty/cpu gemm infer: 16 cases verified"),
            "{out}"
        );
        assert_eq!(
            verdicts[1],
            "FAIL  faulty/cpu gemm train: the backend panicked in \
             gemm/train/m17_n33_k65_nn/f32/faulty/cpu (seed 1): index out of bounds (a test's) \
             (a bug of the backend: its panic message and location are on standard error)",
        );
    }

    /// A case verified at a tolerance its implementation widened (cuDNN's FFT convolutions)
    /// was counted as verified with nothing said: its tolerance and why are listed.
    #[test]
    fn cases_at_a_widened_tolerance_are_listed_with_the_tolerance_and_why() {
        let (out, code) = gemm_check(&Faulty {
            panic_on: None,
            widen: Some(10.0),
        });
        assert_eq!(code, 0, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        // f16 and bf16 are declared unsupported: the reference is timed on f32 alone.
        assert_eq!(
            lines[0],
            "ok    faulty/cpu gemm infer: 16 cases verified, 16 at a widened tolerance, 16 \
             skipped"
        );
        assert_eq!(
            lines[1],
            "      widened tolerance: gemm/infer/m1_n1_k1_nn/f32/faulty/cpu (seed 1): tolerance \
             1.0e-3 (10x the default: a test's)"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("widened tolerance: "))
                .count(),
            2 * 16,
            "{out}"
        );
        let (plain, _) = gemm_check(&Faulty {
            panic_on: None,
            widen: None,
        });
        assert!(!plain.contains("widened"), "{plain}");
    }
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
