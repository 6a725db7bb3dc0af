//! `wattbench ab --a BIN_A --b BIN_B [--rounds N] -- RUN-OPTIONS`: the same cases with two
//! builds in alternating rounds on one machine (A B, B A, A B, ...), so that drift of a shared
//! machine (other load, clocks, temperature) hits both alike; then `compare` of the pooled
//! runs, B against A. This is how a change is gated on a noisy CI machine: each side has
//! several runs, so the comparison's interval includes run-to-run variation, and energy gets
//! a test over one window per run.
//!
//! Two git revisions: build each into its own target folder and pass the binaries
//! (`scripts/ab.sh REV_A REV_B -- RUN-OPTIONS` does this with `git worktree`).
use crate::compare::{compare_and_report, CompareSettings};
use crate::options::usage;
use crate::signals::Stop;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use wattbench_compare::ResultSet;

/// Options of `wattbench ab`.
#[derive(Args, Debug)]
pub struct AbArgs {
    /// The baseline build: a `wattbench` binary.
    #[arg(long, value_name = "BIN")]
    a: PathBuf,
    /// The build under test: a `wattbench` binary.
    #[arg(long, value_name = "BIN")]
    b: PathBuf,
    /// Rounds; each runs both builds, in alternating order (A B, then B A, ...), so each
    /// side gets this many runs. At least 2; 4 or more on a noisy machine.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Folder for the runs' result files (`a/round-NN.json`, `b/round-NN.json`); default
    /// `results/ab/TIME-PID/`. It must not hold result files already.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    settings: CompareSettings,
    /// Options for `wattbench run` (suite, filters, times), after `--`; `--output` and
    /// `--json` are set by `ab`.
    #[arg(last = true, value_name = "RUN-OPTIONS")]
    run_args: Vec<String>,
}

/// A build's binary, checked before any round starts.
fn binary(flag: &str, p: &Path) -> Result<PathBuf> {
    let ok = std::fs::metadata(p).is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o111 != 0
    });
    if !ok {
        return Err(usage(format!(
            "{flag} {}: not an executable file; give the path of a built `wattbench`",
            p.display()
        )));
    }
    std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
}

/// `p` with links resolved as far as it exists, the rest appended as written: the same for
/// two spellings of one place, whether it exists yet or not.
fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    for base in abs.ancestors() {
        if let Ok(real) = std::fs::canonicalize(base) {
            let rest = abs.strip_prefix(base).unwrap_or(Path::new(""));
            return rest.components().fold(real, |acc, c| match c {
                std::path::Component::ParentDir => {
                    acc.parent().map_or(acc.clone(), Path::to_path_buf)
                }
                std::path::Component::CurDir => acc,
                other => acc.join(other),
            });
        }
    }
    abs
}

/// Run the command; returns the exit code: compare's (0; 1 when B is slower, failed a case A
/// passed, or skipped or lost one; 2 on bad
/// input), or 128 + signal when stopped.
pub fn run(args: AbArgs) -> Result<u8> {
    if args.rounds < 2 {
        return Err(usage(format!(
            "--rounds must be at least 2 (each side needs two runs for a test), not {}",
            args.rounds
        )));
    }
    if let Some(bad) = args.run_args.iter().find(|a| {
        matches!(a.as_str(), "--output" | "--json")
            || a.starts_with("--output=")
            || (a.starts_with("-o") && !a.starts_with("--"))
    }) {
        return Err(usage(format!(
            "`{bad}` is set by `ab` (each run writes its own file); leave it out of the run \
             options"
        )));
    }
    let (a, b) = (binary("--a", &args.a)?, binary("--b", &args.b)?);
    // Everything that could be refused is refused before the first round.
    args.settings.options()?;
    if let Some(out) = args.settings.output_path() {
        crate::output::prepare_beside_stdout(
            out,
            "a summary line",
            "leave out -o to print the comparison there",
        )?;
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/ab").join(crate::output::stamp()));
    // The comparison's output must not land among the runs it reads (checked before the
    // run folders are made: a refusal leaves nothing behind).
    if let Some(out) = args.settings.output_path() {
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let inside = ["a", "b"]
            .iter()
            .any(|side| resolved(parent) == resolved(&dir.join(side)));
        if inside {
            return Err(usage(format!(
                "--output {} is inside the run folders of --dir {} (a/ or b/), where it would \
                 be read as a run; give an output path outside them",
                out.display(),
                dir.display()
            )));
        }
    }
    for side in ["a", "b"] {
        let d = dir.join(side);
        std::fs::create_dir_all(&d)
            .map_err(|e| usage(format!("cannot create {}: {e}", d.display())))?;
        let taken = std::fs::read_dir(&d)
            .map_err(|e| usage(format!("cannot read {}: {e}", d.display())))?
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "json"));
        if taken {
            return Err(usage(format!(
                "{} already holds result files: give an empty --dir",
                d.display()
            )));
        }
    }
    let stop = Stop::install()?;
    for round in 1..=args.rounds {
        let order = if round % 2 == 1 {
            [("a", &a), ("b", &b)]
        } else {
            [("b", &b), ("a", &a)]
        };
        for (side, bin) in order {
            let out = dir.join(side).join(format!("round-{round:02}.json"));
            eprintln!(
                "round {round}/{}: {} ({})",
                args.rounds,
                side.to_uppercase(),
                bin.display()
            );
            let status = Command::new(bin)
                .arg("run")
                .args(&args.run_args)
                .arg("--output")
                .arg(&out)
                .stdout(Stdio::null())
                .status()
                .with_context(|| format!("running {}", bin.display()))?;
            if stop.requested() {
                eprintln!(
                    "{}: stopped after round {round}; the runs so far are in {}",
                    stop.signal_name(),
                    dir.display()
                );
                return Ok(stop.exit_code());
            }
            match status.code() {
                // A failed case is listed by the comparison, not a reason to stop.
                Some(c @ (0 | 1)) if !out.is_file() => {
                    return Err(usage(format!(
                        "--{side} {} exited with {c} but wrote no result file {}: is it a \
                         `wattbench`? The A/B stops (the runs so far are in {})",
                        bin.display(),
                        out.display(),
                        dir.display()
                    )))
                }
                Some(0 | 1) => {}
                code => {
                    return Err(usage(format!(
                        "`{} run` exited with {}: the A/B stops (its message is above; the \
                         runs so far are in {})",
                        bin.display(),
                        code.map_or("a signal".to_string(), |c| c.to_string()),
                        dir.display()
                    )))
                }
            }
        }
    }
    let load = |side: &str| ResultSet::load(&dir.join(side)).map_err(|e| usage(e.to_string()));
    let (base, new) = (load("a")?, load("b")?);
    eprintln!(
        "B ({}) against A ({}), {} runs each, interleaved:",
        b.display(),
        a.display(),
        args.rounds
    );
    // Both builds ran the same options: a case B skipped or lost is B's doing.
    compare_and_report(&base, &new, &args.settings, true)
}
