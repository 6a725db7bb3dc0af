//! `wattbench ab --a BIN_A --b BIN_B [--rounds N] -- RUN-OPTIONS`: the same cases with two
//! builds in alternating rounds on one machine (A B, B A, A B, B A, ...: an even number of
//! rounds, so each build runs first as often as second and both have the same mean position
//! in time), so that drift of a shared machine (other load, clocks, temperature) hits both
//! alike; then `compare` of the pooled runs, B against A. This is how a change is gated on a
//! noisy CI machine: each side has several runs, so the comparison's interval includes
//! run-to-run variation, and energy gets a test over one window per run.
//!
//! Each side must be one build: both binaries are copied into the run folder before the
//! first round and the copies run, so a rebuild of a path during the A/B (another session's
//! `cargo build`) cannot mix two builds into a side.
//!
//! Each run is a supervised child (`signals::supervised`): a stop sent to `ab` alone is passed
//! on, the run writes its completed cases, and `ab` stops after it; a second stop kills the
//! run and ends `ab` at once.
//!
//! Two git revisions: build each into its own target folder and pass the binaries
//! (`scripts/ab.sh REV_A REV_B -- RUN-OPTIONS` does this with `git worktree`).
use crate::compare::{compare_and_report, CompareSettings};
use crate::options::usage;
use crate::signals::{self, Stop};
use anyhow::{Context, Result};
use clap::Args;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
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
    /// side gets this many runs. An even number, so that neither build runs first more
    /// often: 2 or more; 6 or more on a noisy machine (below, the interval covers less than its
    /// nominal 95 %).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Folder for the runs' result files (`a/round-NN.json`, `b/round-NN.json`); default
    /// `results/ab/TIME-PID/`. It must not hold result files already.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    settings: CompareSettings,
    /// Options for `wattbench run` (suite, filters, times), after `--`; `--output` and
    /// `--json` are set by `ab`, and `--record` is refused (it would interleave both builds
    /// in one history series).
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
    // `ab` runs a copy in its folder (see [`Build::pin`]): a script (`.gpu-bundle/wb`) would
    // lose the files beside it that it runs.
    if is_script(p) {
        return Err(usage(format!(
            "{flag} {}: a script, not a built binary; `ab` runs copies of the builds, so give \
             the binary the script runs (run `ab` itself through the script when it sets up \
             the environment)",
            p.display()
        )));
    }
    std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
}

/// Whether `p` begins with `#!` (an interpreter script, not a built binary).
fn is_script(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(p).is_ok_and(|mut f| f.read_exact(&mut head).is_ok() && &head == b"#!")
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

/// The refusal of `--rounds n`, if any: an even number, 2 or more.
fn check_rounds(n: usize) -> Result<()> {
    if n >= 2 && n.is_multiple_of(2) {
        return Ok(());
    }
    Err(usage(format!(
        "--rounds must be an even number, 2 or more (6 or more on a noisy machine), not {n}: \
         rounds alternate A B, B A, and only an even count lets each build run first as often \
         as second, with the same mean position in time, so that warm-up and drift favour \
         neither"
    )))
}

/// The refusal of a run option `ab` sets or cannot allow, if any.
fn check_run_options(run_args: &[String]) -> Result<()> {
    if let Some(bad) = run_args.iter().find(|a| {
        matches!(a.as_str(), "--output" | "--json")
            || a.starts_with("--output=")
            || (a.starts_with("-o") && !a.starts_with("--"))
    }) {
        return Err(usage(format!(
            "`{bad}` is set by `ab` (each run writes its own file); leave it out of the run \
             options"
        )));
    }
    if let Some(bad) = (run_args.iter()).find(|a| *a == "--record" || a.starts_with("--record=")) {
        return Err(usage(format!(
            "`{bad}` among the run options would record both builds' runs in one history \
             series, interleaved (A, B, B, A, ...), which its trend and change-point tests \
             would read as noise or as changes; leave it out, and record the build you mean \
             afterwards (`wattbench history add` on its result file, or a run of that build \
             with --record)"
        )));
    }
    Ok(())
}

/// The refusal of an `--output` among the runs `ab` makes in `dir`, if any: inside the run
/// folders `dir/a` and `dir/b`, where it would be read as a run, or `dir` itself or a folder
/// above it, which `ab` makes a folder. Beside them in `dir` is fine. Checked before the run
/// folders are made, so that a refusal leaves nothing behind and no round is lost.
fn check_output_place(out: &Path, dir: &Path) -> Result<()> {
    let o = resolved(out);
    let inside = ["a", "b"]
        .iter()
        .any(|side| o.starts_with(resolved(&dir.join(side))));
    if inside {
        return Err(usage(format!(
            "--output {} is inside the run folders of --dir {} (a/ or b/), where it would be \
             read as a run; give an output path outside them (beside them in {} is fine)",
            out.display(),
            dir.display(),
            dir.display()
        )));
    }
    if resolved(dir).starts_with(&o) {
        return Err(usage(format!(
            "--output {} is the run folder --dir {}, or a folder above it: `ab` makes it a \
             folder, of the runs, so the comparison cannot be written there; give a file path, \
             e.g. {}",
            out.display(),
            dir.display(),
            dir.join("comparison.md").display()
        )));
    }
    Ok(())
}

/// What identifies a file's content without reading it: its device, inode, size and
/// modification time (a rebuild replaces or rewrites the binary, changing one of them).
type FileId = (u64, u64, u64, Option<std::time::SystemTime>);

fn file_id(p: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.modified().ok()))
}

/// A build pinned for the A/B: the binary given, and the copy that every run of its side
/// runs.
struct Build {
    /// `a` or `b`.
    side: &'static str,
    /// The binary given (canonical).
    given: PathBuf,
    /// What the binary given was when it was copied.
    id: Option<FileId>,
    /// The copy the runs run.
    copy: PathBuf,
}

impl Build {
    /// Copies `given` into `into/<side>/`; refused when it changed while it was copied (a
    /// build writing it).
    fn pin(side: &'static str, given: PathBuf, into: &Path) -> Result<Build> {
        let folder = into.join(side);
        let copy = folder.join(
            given
                .file_name()
                .unwrap_or(std::ffi::OsStr::new("wattbench")),
        );
        let before = file_id(&given);
        std::fs::create_dir(&folder)
            .and_then(|_| std::fs::copy(&given, &copy))
            .map_err(|e| {
                usage(format!(
                    "cannot copy --{side} {} to {}: {e} (`ab` runs copies of the builds, so \
                     that a rebuild during the A/B cannot change a side); give a --dir where \
                     it can write",
                    given.display(),
                    copy.display()
                ))
            })?;
        if file_id(&given) != before {
            return Err(usage(format!(
                "--{side} {} changed while it was copied (a build writing it?); run `ab` once \
                 the build is done",
                given.display()
            )));
        }
        Ok(Build {
            side,
            given,
            id: before,
            copy,
        })
    }

    /// `A` or `B`.
    fn name(&self) -> String {
        self.side.to_uppercase()
    }
}

/// The refusal of a side whose result files name several git commits, if any: each side of
/// `ab` is one build (its copy), so such a file did not come from this A/B (something else
/// wrote into the run folder), and the comparison would not be of two builds.
fn one_build_a_side(name: &str, folder: &Path, set: &ResultSet) -> Result<()> {
    let mut commits: Vec<&str> = (set.runs.iter())
        .filter_map(|r| r.environment.git_commit.as_deref())
        .collect();
    commits.sort_unstable();
    commits.dedup();
    if commits.len() > 1 {
        return Err(usage(format!(
            "the {name} runs in {} name {} git commits ({}), but `ab` ran one build a side: a \
             file there did not come from this A/B, and the comparison would mix builds; \
             `wattbench compare` shows the folders as they are, or rerun `ab` with an empty \
             --dir",
            folder.display(),
            commits.len(),
            commits.join(", ")
        )));
    }
    Ok(())
}

/// Run the command; returns the exit code: compare's (0; 1 when B is slower, failed a case A
/// passed, or skipped or lost one; 2 on bad input), or 128 + signal when stopped.
pub fn run(args: AbArgs) -> Result<u8> {
    check_rounds(args.rounds)?;
    check_run_options(&args.run_args)?;
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
    if let Some(out) = args.settings.output_path() {
        check_output_place(out, &dir)?;
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
    // The copies the runs run, removed when `ab` ends.
    let pinned = tempfile::Builder::new()
        .prefix(".builds-")
        .tempdir_in(&dir)
        .map_err(|e| usage(format!("cannot make a folder in {}: {e}", dir.display())))?;
    let (a, b) = (
        Build::pin("a", a, pinned.path())?,
        Build::pin("b", b, pinned.path())?,
    );
    let pids: Arc<[AtomicI32]> = Arc::from([AtomicI32::new(0)]);
    // Before the stop's handlers, so that it speaks before the second signal's exit.
    signals::say_on_second_signal(format!(
        "\nsecond signal: the run in progress is killed; the runs completed so far are in {} \
         (and the copies of the builds in {}, to remove)\n",
        dir.display(),
        pinned.path().display()
    ))?;
    let stop = Stop::install_killing_on_second(pids.clone())?;
    let stopped = |round: usize| {
        eprintln!(
            "{}: stopped in round {round}; the runs so far are in {}",
            stop.signal_name(),
            dir.display()
        );
        stop.exit_code()
    };
    for round in 1..=args.rounds {
        let order = if round % 2 == 1 { [&a, &b] } else { [&b, &a] };
        for build in order {
            if stop.requested() {
                return Ok(stopped(round));
            }
            let out = dir.join(build.side).join(format!("round-{round:02}.json"));
            eprintln!(
                "round {round}/{}: {} ({})",
                args.rounds,
                build.name(),
                build.given.display()
            );
            let mut command = Command::new(&build.copy);
            // The result file records the build given, not its copy (removed at the end).
            command
                .arg0(&build.given)
                .arg("run")
                .args(&args.run_args)
                .arg("--output")
                .arg(&out)
                .stdout(Stdio::null());
            let mut child = signals::supervised(&mut command).spawn().map_err(|e| {
                usage(format!(
                    "cannot run {}, the copy of --{} {}: {e} (is {} on a file system that \
                     does not allow running programs? give a --dir elsewhere)",
                    build.copy.display(),
                    build.side,
                    build.given.display(),
                    dir.display()
                ))
            })?;
            pids[0].store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
            let status = signals::wait_supervised(&mut child, &stop, &pids[0], || {
                eprintln!(
                    "\n{}: passing the stop on to {}'s run of round {round}, which writes its \
                     completed cases; `ab` stops after it (send the signal again to stop at \
                     once)",
                    stop.signal_name(),
                    build.name()
                )
            })?;
            if stop.requested() {
                return Ok(stopped(round));
            }
            match status.code() {
                // A failed case is listed by the comparison, not a reason to stop.
                Some(c @ (0 | 1)) if !out.is_file() => {
                    return Err(usage(format!(
                        "--{} {} exited with {c} but wrote no result file {}: is it a \
                         `wattbench`? The A/B stops (the runs so far are in {})",
                        build.side,
                        build.given.display(),
                        out.display(),
                        dir.display()
                    )))
                }
                Some(0 | 1) => {}
                // Stopped by a signal sent to the run alone: it wrote its completed cases.
                Some(c @ (129 | 130 | 143)) => {
                    eprintln!(
                        "{}'s run of round {round} was stopped by a signal sent to it (exit \
                         {c}) and wrote its completed cases; `ab` stops too (the runs so far \
                         are in {})",
                        build.name(),
                        dir.display()
                    );
                    return Ok(c as u8);
                }
                code => {
                    return Err(usage(format!(
                        "`{} run` exited with {}: the A/B stops (its message is above; the \
                         runs so far are in {})",
                        build.given.display(),
                        code.map_or("a signal".to_string(), |c| c.to_string()),
                        dir.display()
                    )))
                }
            }
        }
    }
    for build in [&a, &b] {
        if file_id(&build.given) != build.id {
            eprintln!(
                "note: --{} {} changed during the A/B (rebuilt or replaced); every {} run ran \
                 the copy made before round 1, so the side is one build",
                build.side,
                build.given.display(),
                build.name()
            );
        }
    }
    let copies = pinned.path().display().to_string();
    if let Err(e) = pinned.close() {
        eprintln!("warning: the copies of the builds in {copies} could not be removed: {e}");
    }
    let load = |side: &str| ResultSet::load(&dir.join(side)).map_err(|e| usage(e.to_string()));
    let (base, new) = (load("a")?, load("b")?);
    one_build_a_side("A", &dir.join("a"), &base)?;
    one_build_a_side("B", &dir.join("b"), &new)?;
    eprintln!(
        "B ({}) against A ({}), {} runs each, interleaved:",
        b.given.display(),
        a.given.display(),
        args.rounds
    );
    // Both builds ran the same options: a case B skipped or lost is B's doing.
    compare_and_report(&base, &new, &args.settings, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::testing::run_file;

    #[test]
    fn rounds_must_be_even() {
        for n in [0, 1, 3, 5] {
            let e = check_rounds(n).unwrap_err().to_string();
            assert!(
                e.contains("an even number") && e.contains("first as often"),
                "{e}"
            );
        }
        for n in [2, 4, 6] {
            check_rounds(n).unwrap();
        }
    }

    #[test]
    fn a_side_of_several_commits_is_refused() {
        let side = |commits: &[Option<&str>]| {
            ResultSet::from_runs(commits.iter().enumerate().map(|(i, c)| {
                let mut r = run_file(&format!("2025-01-01T00:00:0{i}Z"), Vec::new());
                r.environment.git_commit = c.map(String::from);
                (format!("round-0{i}.json"), r)
            }))
        };
        let folder = Path::new("ab/a");
        let two = side(&[Some("ecaab80-dirty"), Some("0dc9f40-dirty")]);
        let e = one_build_a_side("A", folder, &two).unwrap_err().to_string();
        assert!(
            e.contains("2 git commits (0dc9f40-dirty, ecaab80-dirty)"),
            "{e}"
        );
        for fine in [side(&[Some("x"), Some("x")]), side(&[Some("x"), None])] {
            one_build_a_side("A", folder, &fine).unwrap();
        }
    }
}
