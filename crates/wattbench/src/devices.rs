//! `wattbench run --devices all|LIST`: one worker process per GPU, each pinned to its GPU
//! (`CUDA_VISIBLE_DEVICES` set to the GPU's UUID, so it meters that GPU alone), run at once or
//! one after another, their result files merged into the output (`wattbench merge`'s
//! format): per-GPU time, energy and memory stay apart, each run keeps its environment. Case
//! ids name each GPU by its NVML index (`…/cuda:3`), not the worker's `cuda:0`.
//!
//! Signals: each worker runs in a process group of its own, so the terminal's Ctrl-C reaches
//! the parent alone; the parent passes its stop on to every running worker once and waits
//! for them to write (a worker that a scheduler signalled directly takes the stop passed on
//! as the same one: [`crate::signals`]); a second signal kills them and ends the parent.
//!
//! UNVERIFIED ON HARDWARE: no session has had a machine with several GPUs; on a machine
//! without GPUs the flag says so and stops.
use crate::options::usage;
use crate::signals::Stop;
use anyhow::Result;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wattbench_core::energy::CaseEnergy;
use wattbench_core::result::{Environment, GpuRecord, MergedFile, RunFile};
use wattbench_energy::gpus::GpuSelection;

/// The options that belong to the parent and are not passed to the workers: (flag, takes a
/// value). `--record` takes an optional one and is handled apart.
const PARENT_FLAGS: [(&str, bool); 5] = [
    ("--devices", true),
    ("--devices-sequential", false),
    ("--output", true),
    ("-o", true),
    ("--json", false),
];

/// The worker's arguments: the parent's `run` arguments (`argv` without the program name)
/// less the parent's own options, plus the device, the meters and the output of the worker.
pub fn worker_args(argv: &[String], output: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a == "--" {
            out.extend(argv[i..].iter().cloned());
            break;
        }
        let flag = a.split('=').next().unwrap_or(a);
        // `-oFILE`: the short output option with its value attached.
        if a.len() > 2 && a.starts_with("-o") {
            i += 1;
            continue;
        }
        if let Some((_, takes)) = PARENT_FLAGS.iter().find(|(f, _)| *f == flag) {
            i += if *takes && !a.contains('=') { 2 } else { 1 };
            continue;
        }
        if flag == "--record" {
            // Its value is optional: the next word is it unless that is an option.
            let has_value =
                !a.contains('=') && argv.get(i + 1).is_some_and(|n| !n.starts_with('-'));
            i += if has_value { 2 } else { 1 };
            continue;
        }
        out.push(argv[i].clone());
        i += 1;
    }
    let at = out.iter().position(|a| a == "--").unwrap_or(out.len());
    let mut own = vec!["--output".to_string(), output.display().to_string()];
    // Each worker runs on its GPU only (CPU cases would be measured once per worker).
    if !out
        .iter()
        .any(|a| a == "--device" || a.starts_with("--device="))
    {
        own.extend(["--device".to_string(), "cuda".to_string()]);
    }
    out.splice(at..at, own);
    out
}

/// `cuda:0` in a worker pinned to NVML GPU `index` becomes `cuda:<index>` in case ids and
/// devices; CPU cases are left as they are.
pub fn rename_device(run: &mut RunFile, index: u32) {
    let to = format!("cuda:{index}");
    let fix = |id: &mut String, device: &mut String| {
        if device.starts_with("cuda") {
            if let Some(cut) = id.rfind('/') {
                id.replace_range(cut + 1.., &to);
            }
            *device = to.clone();
        }
    };
    for c in &mut run.cases {
        fix(&mut c.id, &mut c.device);
    }
    for t in &mut run.trainings {
        fix(&mut t.id, &mut t.device);
    }
}

/// The GPUs `--devices` names among those this process may use (`CUDA_VISIBLE_DEVICES`).
fn chosen(list: &[String]) -> Result<Vec<GpuRecord>> {
    let found = wattbench_energy::nvml::discover(&GpuSelection::Auto)
        .map_err(|e| usage(format!("--devices: {e}")))?;
    let visible: Vec<GpuRecord> = found.gpus.into_iter().filter(|g| g.metered).collect();
    if visible.is_empty() {
        let why = found
            .unavailable
            .iter()
            .map(|m| m.reason.clone().unwrap_or_default())
            .find(|r| !r.is_empty())
            .unwrap_or_else(|| "no NVIDIA GPU visible".into());
        return Err(usage(format!(
            "--devices runs one worker per GPU, and this process sees none ({why}); without \
             --devices, `run` uses the devices here (see `wattbench list`)"
        )));
    }
    pick(list, visible)
}

/// The GPUs of `visible` that `list` names (`all`, NVML indexes, GPU UUIDs or their unique
/// prefixes), each once.
fn pick(list: &[String], visible: Vec<GpuRecord>) -> Result<Vec<GpuRecord>> {
    if list.len() == 1 && list[0].trim() == "all" {
        return Ok(visible);
    }
    let mut out: Vec<GpuRecord> = Vec::new();
    for e in list.iter().map(|e| e.trim()) {
        let fits: Vec<&GpuRecord> = (visible.iter())
            .filter(|g| {
                g.index.to_string() == e
                    || (e.starts_with("GPU-")
                        && g.uuid.as_deref().is_some_and(|u| u.starts_with(e)))
            })
            .collect();
        if fits.len() > 1 {
            return Err(usage(format!(
                "--devices: `{e}` fits several GPUs ({}): give more of the UUID",
                fits.iter()
                    .map(|g| g.index.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let g = fits.first().copied().ok_or_else(|| {
            usage(format!(
                "--devices: `{e}` is not a visible GPU (NVML index or GPU- UUID); visible: {}",
                visible
                    .iter()
                    .map(|g| g.index.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if out.iter().any(|o| o.index == g.index) {
            return Err(usage(format!(
                "--devices: GPU {} is named twice (`{e}`): one worker runs per GPU",
                g.index
            )));
        }
        out.push(g.clone());
    }
    Ok(out)
}

/// The workers' files: a folder removed at the end, or kept (and named) when they could not
/// all be merged, so that no worker's results are lost.
struct Workdir(Option<tempfile::TempDir>);

impl Workdir {
    /// A new folder beside a regular output file in a folder that exists (the same disk;
    /// where a user finds it if it is kept), else in the temporary folder (an output that is
    /// a device or a pipe, or whose folder is made only when it is written).
    fn beside(output: &Path, regular: bool) -> Result<Workdir> {
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = if regular && parent.is_dir() {
            parent
        } else {
            std::env::temp_dir()
        };
        let stem = output
            .file_stem()
            .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
        tempfile::Builder::new()
            .prefix(&format!("{stem}.workers-"))
            .tempdir_in(&base)
            .map(|d| Workdir(Some(d)))
            .map_err(|e| {
                usage(format!(
                    "cannot create the workers' folder in {}: {e}",
                    base.display()
                ))
            })
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("not kept yet").path()
    }

    /// Keep the folder (it is not removed) and say where it is and why.
    fn keep(&mut self, why: &str) {
        if let Some(d) = self.0.take() {
            eprintln!(
                "{why}: the workers' result files are kept in {}",
                d.keep().display()
            );
        }
    }
}

/// The command of a worker pinned to the GPU `cuda_visible` names: in a process group of its
/// own, so that what the terminal sends its foreground group (Ctrl-C) reaches the parent
/// alone, which passes one stop on ([`supervise`]); without standard input (a background
/// group that read the terminal would be stopped).
/// Workers that run at once (`at_once` > 1) are told how many ([`AT_ONCE_ENV`], a recorded
/// variable): they share the node's host counters, power and cooling, so their figures are
/// not those of a GPU measured alone, and a history must not join the two.
/// A worker whose parent dies (killed, crashed) gets the stop and writes its completed cases
/// instead of running on, unsupervised, on its GPU ([`crate::signals::supervised`]).
fn worker_command(exe: &Path, args: &[String], cuda_visible: &str, at_once: usize) -> Command {
    let mut c = Command::new(exe);
    c.args(args)
        .env("CUDA_VISIBLE_DEVICES", cuda_visible)
        .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        .env_remove(AT_ONCE_ENV);
    if at_once > 1 {
        c.env(AT_ONCE_ENV, at_once.to_string());
    }
    crate::signals::supervised(&mut c);
    c
}

/// The number of GPU workers of `run --devices` that ran at once, set in each worker's
/// environment when more than one did (recorded in its `environment.variables`).
pub const AT_ONCE_ENV: &str = "WATTBENCH_GPU_WORKERS_AT_ONCE";

/// A started worker.
struct Worker {
    /// Its slot in the table of pids a second signal kills.
    slot: usize,
    child: Child,
    /// Whether the stop was passed on to it.
    told: bool,
    /// Its exit code once it ended (128 + the signal that killed it).
    code: Option<i32>,
}

/// Waits until every worker has ended. Once a stop is requested, it is passed on to each
/// worker still running, once ([`Stop::worker_signal`]), and the worker then writes its
/// completed cases. `pids`: the table a second signal kills; a worker's slot is cleared
/// before it is reaped.
fn supervise(workers: &mut [Worker], stop: &Stop, pids: &[AtomicI32]) -> Result<()> {
    loop {
        let mut running = false;
        for w in workers.iter_mut().filter(|w| w.code.is_none()) {
            if crate::signals::child_ended(w.child.id()) {
                pids[w.slot].store(0, Ordering::SeqCst);
                let status = w.child.wait()?;
                w.code = Some(
                    status
                        .code()
                        .or(status.signal().map(|s| 128 + s))
                        .unwrap_or(1),
                );
                continue;
            }
            running = true;
            if stop.requested() && !w.told {
                let pid = libc::pid_t::try_from(w.child.id()).unwrap_or(0);
                if pid > 0 {
                    // SAFETY: kill(2) on our own child, not yet reaped (its pid cannot have
                    // been reused).
                    unsafe { libc::kill(pid, stop.worker_signal()) };
                }
                w.told = true;
            }
        }
        if !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A worker's slot, and why it could not be started.
type Unstarted = (usize, std::io::Error);

/// Starts a worker for each of `slots` with `spawn` and waits for them: all at once, or each
/// to its end before the next when `sequential`; none is started once a stop is requested. A
/// worker that cannot be started (fork or exec failing) is returned with its error, and the
/// workers already running carry on, so the GPUs that ran keep their results.
fn run_workers(
    slots: usize,
    sequential: bool,
    stop: &Stop,
    pids: &[AtomicI32],
    spawn: impl Fn(usize) -> std::io::Result<Worker>,
) -> Result<(Vec<Worker>, Vec<Unstarted>)> {
    let mut workers: Vec<Worker> = Vec::new();
    let mut unstarted = Vec::new();
    for slot in 0..slots {
        if stop.requested() {
            break;
        }
        match spawn(slot) {
            Ok(w) => {
                workers.push(w);
                if sequential {
                    let last = workers.len() - 1;
                    supervise(&mut workers[last..], stop, pids)?;
                }
            }
            Err(e) => unstarted.push((slot, e)),
        }
    }
    supervise(&mut workers, stop, pids)?;
    Ok((workers, unstarted))
}

/// Exit code of a worker that a signal stopped, having written its completed cases.
fn stopped_by_a_signal(code: i32) -> bool {
    code == 129 || code == 130 || code == 143
}

/// The parent's exit code (docs/cli.md's table): `stopped`, the parent's own stop; `codes`,
/// the workers' exit codes; `wrote`, how many wrote a result file, of `gpus`. A worker a
/// signal stopped from outside wrote an interrupted file, and the merged run is interrupted
/// too (its code, as `run`'s interrupt comes before its failures); a worker's internal error
/// (its exit 2 after writing its completed cases, every worker's file merged) is the
/// parent's; else 1 when a worker failed, wrote nothing or ended otherwise (4: its file went to a fallback; a crash), 3 when
/// nothing ran on any GPU, 0.
fn exit_code(stopped: Option<u8>, codes: &[i32], wrote: usize, gpus: usize) -> u8 {
    if let Some(code) = stopped {
        return code;
    }
    if let Some(&c) = codes.iter().find(|&&c| stopped_by_a_signal(c)) {
        return c as u8;
    }
    let known = |c: i32| c == 0 || c == 1 || c == i32::from(crate::run::EXIT_NOTHING_RAN);
    if codes.contains(&1) || wrote < gpus {
        return 1;
    }
    if codes.contains(&2) {
        return 2;
    }
    if codes.iter().any(|&c| !known(c)) {
        1
    } else if codes
        .iter()
        .all(|&c| c == i32::from(crate::run::EXIT_NOTHING_RAN))
    {
        crate::run::EXIT_NOTHING_RAN
    } else {
        0
    }
}

/// Run the workers and merge their files into `output`; the exit code. The options were
/// checked by `run` before.
/// `record`: `run --record [DB]`, applied to the merged file.
pub fn run(
    list: &[String],
    sequential: bool,
    output: &Path,
    record: Option<Option<&Path>>,
) -> Result<u8> {
    let gpus = chosen(list)?;
    let file = crate::output::prepare_beside_stdout(
        output,
        "its workers' tables",
        "write the merged file to a path",
    )?;
    if record.is_some() && !file.is_regular_file() {
        return Err(usage(format!(
            "--record reads the result file back: give -o a file path, not {}",
            output.display()
        )));
    }
    // Passed on to the workers as they are: an argument that is not UTF-8 is refused, not
    // passed on changed.
    let argv: Vec<String> = (std::env::args_os().skip(1))
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
        .map_err(|a| {
            usage(format!(
                "an argument is not UTF-8 ({}): --devices passes its options on to its workers \
                 as text; rename the file or folder",
                a.to_string_lossy()
            ))
        })?;
    let exe = std::env::current_exe()?;
    // The workers' files; removed at the end unless they could not all be merged.
    let mut dir = Workdir::beside(output, file.is_regular_file())?;
    let pids: Arc<[AtomicI32]> = gpus.iter().map(|_| AtomicI32::new(0)).collect();
    // Before the stop's handlers, so that it speaks before the second signal's exit.
    crate::signals::say_on_second_signal(second_signal_message(dir.path()))?;
    let stop = Stop::install_killing_on_second(pids.clone())?;
    let work = dir.path().to_path_buf();
    let out_of = |g: &GpuRecord| work.join(format!("gpu{}.json", g.index));
    let spawn = |slot: usize| -> std::io::Result<Worker> {
        let g = &gpus[slot];
        let args = worker_args(&argv, &out_of(g));
        let visible = g.uuid.clone().unwrap_or(g.index.to_string());
        let at_once = if sequential { 1 } else { gpus.len() };
        let child = worker_command(&exe, &args, &visible, at_once).spawn()?;
        pids[slot].store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
        Ok(Worker {
            slot,
            child,
            told: false,
            code: None,
        })
    };
    let (workers, unstarted) = run_workers(gpus.len(), sequential, &stop, &pids, spawn)?;
    for (slot, e) in &unstarted {
        eprintln!(
            "gpu{}: the worker could not be started ({e}); the other GPUs' results are kept",
            gpus[*slot].index
        );
    }
    let codes: Vec<i32> = workers
        .iter()
        .map(|w| w.code.unwrap_or(1))
        .chain(unstarted.iter().map(|_| 1))
        .collect();
    let mut runs = Vec::new();
    let mut no_file = Vec::new();
    for (w, &code) in workers.iter().zip(&codes) {
        let g = &gpus[w.slot];
        let text = match std::fs::read(out_of(g)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "gpu{}: the worker wrote no result file (exit code {code})",
                    g.index
                );
                no_file.push((w.slot, code));
                continue;
            }
            Err(e) => {
                let why = format!("gpu{}: its result file cannot be read ({e})", g.index);
                dir.keep(&why);
                return Err(anyhow::anyhow!("{why}; nothing was merged"));
            }
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        if stopped_by_a_signal(code) && !stop.requested() {
            eprintln!(
                "gpu{}: the worker was stopped by a signal from outside (exit code {code}); its \
                 completed cases are merged, marked interrupted",
                g.index
            );
        }
        let mut run = match RunFile::from_json(&text) {
            Ok(run) => run,
            Err(e) => {
                let why = format!("gpu{}: its result file cannot be read ({e})", g.index);
                dir.keep(&why);
                return Err(anyhow::anyhow!("{why}; nothing was merged"));
            }
        };
        rename_device(&mut run, g.index);
        runs.push((
            format!("gpu{} ({})", g.index, g.uuid.as_deref().unwrap_or("?")),
            run,
        ));
    }
    let n = runs.len();
    let stopped = stop.requested().then(|| stop.exit_code());
    if n == 0 {
        eprintln!(
            "no GPU worker wrote a result file (exit codes {codes:?}); nothing written to {}",
            output.display()
        );
        return Ok(stopped.unwrap_or(1));
    }
    let mut merged =
        match MergedFile::merge(runs, false, crate::argv(), chrono::Utc::now().to_rfc3339()) {
            Ok(m) => m,
            Err(e) => {
                let why = format!("the workers' results cannot be merged ({e})");
                dir.keep(&why);
                return Err(anyhow::anyhow!(
                    "{why}; nothing was written to {}",
                    output.display()
                ));
            }
        };
    // Only the workers that started ran at once, whatever was asked.
    let at_once = if sequential { 1 } else { workers.len() };
    record_at_once(&mut merged.runs, at_once);
    if at_once > 1 {
        note_shared_host_counters(&mut merged.runs, at_once);
    }
    merged.merged.notes.push(how_they_ran(sequential, at_once));
    let started: Vec<usize> = workers.iter().map(|w| w.slot).collect();
    let absent = absences(gpus.len(), &started, &unstarted, &no_file);
    (merged.merged.notes).extend(absent.iter().map(|(slot, why)| why.note(&gpus[*slot])));
    // A failure to write where asked keeps the merged runs in a fallback file (exit 4).
    let written = crate::output::write_after_work(file, serde_json::to_string_pretty(&merged)?)?;
    if written.unsaved() {
        println!("{}", written.text);
    }
    if let (Some(db), None) = (record, &written.failure) {
        crate::history::record(db, output);
    }
    println!(
        "{n} of {} GPU workers wrote results, merged into {} (exit codes {codes:?})",
        gpus.len(),
        written.location()
    );
    // As `merge` says them: interrupted workers, failed or skipped cases.
    for line in crate::merge::caveats(&merged) {
        eprintln!("note: {line}");
    }
    if let Some(failure) = &written.failure {
        eprintln!("error: {failure}");
        return Ok(crate::output::EXIT_NOT_WRITTEN);
    }
    Ok(exit_code(stopped, &codes, n, gpus.len()))
}

/// The merged file's note on how the GPUs ran: one after another, `at_once` at once (the
/// workers that started), or one alone.
fn how_they_ran(sequential: bool, at_once: usize) -> String {
    if sequential {
        "the GPUs ran one after another (--devices-sequential)".into()
    } else if at_once > 1 {
        format!(
            "the {at_once} GPUs whose workers started ran at once: they shared the node's \
             power, cooling and host CPUs, which can move every figure (--devices-sequential \
             runs them one after another); each worker metered its own GPU, and each metered \
             the whole CPU package"
        )
    } else {
        "one GPU worker started: it ran alone".into()
    }
}

/// Each run's recorded [`AT_ONCE_ENV`] set to the workers that ran at once (`at_once`): a
/// worker is told the number asked for when it starts, before the others could fail to.
/// Removed when it ran alone, as in a plain run.
fn record_at_once(runs: &mut [RunFile], at_once: usize) {
    for vars in runs
        .iter_mut()
        .filter_map(|r| r.environment.variables.as_mut())
    {
        if at_once > 1 {
            vars.insert(AT_ONCE_ENV.to_string(), at_once.to_string());
        } else {
            vars.remove(AT_ONCE_ENV);
        }
    }
}

/// Why a GPU chosen for `--devices` has no run in the merged file.
#[derive(Debug, PartialEq)]
enum Absence {
    /// Its worker could not be started (fork or exec failed), with the error.
    CouldNotStart(String),
    /// Its worker ended without writing a result file, with its exit code.
    NoResultFile(i32),
    /// A stop came before its turn, and its worker was never started.
    NotStartedAfterStop,
}

impl Absence {
    /// Its note in the merged file, naming the GPU by index and UUID.
    fn note(&self, g: &GpuRecord) -> String {
        let gpu = format!(
            "gpu{} ({})",
            g.index,
            g.uuid.as_deref().unwrap_or("no UUID")
        );
        match self {
            Absence::CouldNotStart(e) => {
                format!("{gpu}: no result: its worker could not be started ({e})")
            }
            Absence::NoResultFile(code) => {
                format!("{gpu}: no result file: its worker ended with exit code {code}")
            }
            Absence::NotStartedAfterStop => {
                format!("{gpu}: no result: its worker was not started after the stop")
            }
        }
    }
}

/// The GPUs (by slot, of `slots`) without a run: those whose worker could not be started,
/// those whose started worker wrote no file (`no_file`: slot, exit code), and those never
/// started (a stop came first); in slot order.
fn absences(
    slots: usize,
    started: &[usize],
    unstarted: &[Unstarted],
    no_file: &[(usize, i32)],
) -> Vec<(usize, Absence)> {
    (0..slots)
        .filter_map(|slot| {
            let why = if let Some((_, e)) = unstarted.iter().find(|(s, _)| *s == slot) {
                Absence::CouldNotStart(e.to_string())
            } else if let Some((_, code)) = no_file.iter().find(|(s, _)| *s == slot) {
                Absence::NoResultFile(*code)
            } else if !started.contains(&slot) {
                Absence::NotStartedAfterStop
            } else {
                return None;
            };
            Some((slot, why))
        })
        .collect()
}

/// What a second signal, which ends the parent at once and kills its workers, writes on
/// stderr: where the workers' folder `dir` is left (no code of ours removes it then).
fn second_signal_message(dir: &Path) -> String {
    format!(
        "\nsecond signal: the GPU workers are killed and nothing is merged; the result files \
         they had written are kept in {}\n",
        dir.display()
    )
}

/// Whether a domain of `scope` is one of the host's counters (CPU package, DRAM, platform),
/// which count every process on the host, not one run's alone.
pub fn host_wide_scope(scope: &str) -> bool {
    matches!(scope, "package" | "dram" | "platform")
}

/// Whether a case's energy total adds one of the host's counters.
pub fn adds_host_counters(e: &CaseEnergy) -> bool {
    e.domains
        .iter()
        .any(|d| d.in_total && host_wide_scope(&d.scope))
}

/// The words that mark the note of a case measured while several GPU workers ran at once
/// (readers such as `compare --across-hardware` find it by them).
pub const AT_ONCE_NOTE_MARK: &str = "GPU workers ran at once";

/// How many GPU workers of `run --devices` ran at once in a run ([`AT_ONCE_ENV`] among its
/// recorded variables); 1 for a run made alone.
pub fn workers_at_once(env: &Environment) -> usize {
    (env.variables.as_ref())
        .and_then(|v| v.get(AT_ONCE_ENV))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1)
}

/// Workers that ran at once shared the host's counters (CPU package, DRAM, platform): each
/// case whose total adds one gets a note saying so. The caveat then travels with the figures
/// it concerns (tables, reports, and any later merge), not only in this merge's notes.
fn note_shared_host_counters(runs: &mut [RunFile], workers: usize) {
    let note = format!(
        "measured while {workers} {AT_ONCE_NOTE_MARK}: the host counters in this total (CPU \
         package, DRAM) counted every worker's host work, not this case's alone \
         (--devices-sequential runs them one after another)"
    );
    for run in runs {
        for e in run.cases.iter_mut().filter_map(|c| c.energy.as_mut()) {
            if adds_host_counters(e) {
                e.notes.push(note.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn cases_that_added_host_counters_say_the_workers_shared_them() {
        use wattbench_core::energy::Source;
        use wattbench_core::testing::{case_energy, run_file, timed_case};
        let with = |scope: &str| {
            let mut e = case_energy(1.0, 0.1, Source::Measured);
            let mut d: wattbench_core::energy::DomainRecord =
                serde_json::from_value(serde_json::json!({
                    "name": "d", "source": "measured", "reason": null, "scope": scope,
                    "in_total": true, "joules_per_iter": 1.0, "uncertainty_j": 0.1,
                    "window_s": 1.0, "avg_watts": null, "idle_watts": null,
                    "net_joules_per_iter": null, "note": null, "assumptions": null
                }))
                .unwrap();
            d.name = scope.into();
            e.domains = vec![d];
            let mut c = timed_case(scope, vec![1.0]);
            c.energy = Some(e);
            c
        };
        let mut runs = vec![run_file("now", vec![with("package"), with("device")])];
        note_shared_host_counters(&mut runs, 4);
        let notes = |i: usize| runs[0].cases[i].energy.as_ref().unwrap().notes.clone();
        assert!(
            notes(0)[0].contains("4 GPU workers ran at once"),
            "{:?}",
            notes(0)
        );
        // A GPU's own counter is its own: no note.
        assert!(notes(1).is_empty());
    }

    /// The review's case: 4 GPUs asked for, one worker could not start, one wrote nothing, one
    /// was never started after a stop. Each missing GPU gets its note, and only the started
    /// workers count as run at once (the old note said "the 4 GPUs ran at once").
    #[test]
    fn each_missing_gpu_is_noted_and_only_started_workers_ran_at_once() {
        let gpu = wattbench_core::testing::gpu_record;
        let gpus = [
            gpu(0, "GPU-a"),
            gpu(1, "GPU-b"),
            gpu(2, "GPU-c"),
            gpu(3, "GPU-d"),
        ];
        let unstarted = vec![(1, std::io::Error::from(std::io::ErrorKind::NotFound))];
        let absent = absences(4, &[0, 2], &unstarted, &[(2, 101)]);
        let notes: Vec<String> = (absent.iter())
            .map(|(slot, why)| why.note(&gpus[*slot]))
            .collect();
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].starts_with("gpu1 (GPU-b): no result: its worker could not be started"));
        assert_eq!(
            notes[1],
            "gpu2 (GPU-c): no result file: its worker ended with exit code 101"
        );
        assert_eq!(
            notes[2],
            "gpu3 (GPU-d): no result: its worker was not started after the stop"
        );
        assert!(how_they_ran(false, 2).starts_with("the 2 GPUs whose workers started ran at once"));
        assert_eq!(
            how_they_ran(false, 1),
            "one GPU worker started: it ran alone"
        );
        // The recorded count is the workers that started, not the GPUs asked for.
        let mut run = wattbench_core::testing::run_file("t", Vec::new());
        run.environment.variables = Some([(AT_ONCE_ENV.to_string(), "4".to_string())].into());
        let mut runs = vec![run];
        record_at_once(&mut runs, 2);
        assert_eq!(workers_at_once(&runs[0].environment), 2);
        record_at_once(&mut runs, 1);
        assert_eq!(workers_at_once(&runs[0].environment), 1);
        assert!(!runs[0]
            .environment
            .variables
            .as_ref()
            .unwrap()
            .contains_key(AT_ONCE_ENV));
    }

    /// A worker whose parent (the thread that started it) ends gets the stop, instead of
    /// running on unsupervised on its GPU.
    #[test]
    fn a_worker_is_stopped_when_its_parent_dies() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("w");
        let c = fake_worker(&log);
        // The thread that starts the worker ends once the worker has set its traps, as a
        // parent that died would.
        let ready = log.clone();
        let mut child = std::thread::spawn(move || {
            let mut c = c;
            let child = c.spawn().unwrap();
            wait_until_ready(&ready);
            child
        })
        .join()
        .unwrap();
        let t0 = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(143));
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("the worker ran on after its parent ended");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(std::fs::read_to_string(&log).unwrap().starts_with("stop"));
        assert!(second_signal_message(dir.path()).contains(&dir.path().display().to_string()));
    }

    #[test]
    fn gpus_are_named_once_each_and_a_prefix_must_be_unique() {
        let gpu = wattbench_core::testing::gpu_record;
        let visible = vec![gpu(0, "GPU-ab12"), gpu(1, "GPU-ab34"), gpu(2, "GPU-cd56")];
        let picked = |list: &[&str]| -> Result<Vec<u32>, String> {
            pick(&s(list), visible.clone())
                .map(|v| v.iter().map(|g| g.index).collect())
                .map_err(|e| e.to_string())
        };
        assert_eq!(picked(&["all"]).unwrap(), [0, 1, 2]);
        assert_eq!(picked(&["2", "GPU-ab3"]).unwrap(), [2, 1]);
        let err = picked(&["GPU-ab"]).unwrap_err();
        assert!(err.contains("fits several GPUs (0, 1)"), "{err}");
        let err = picked(&["0", "GPU-ab1"]).unwrap_err();
        assert!(err.contains("GPU 0 is named twice"), "{err}");
        let err = picked(&["7"]).unwrap_err();
        assert!(
            err.contains("not a visible GPU") && err.contains("0, 1, 2"),
            "{err}"
        );
    }

    #[test]
    fn workers_run_at_once_say_how_many_in_a_recorded_variable() {
        let env = |at_once: usize| -> Option<String> {
            let c = worker_command(Path::new("true"), &[], "GPU-x", at_once);
            c.get_envs()
                .find(|(k, _)| *k == AT_ONCE_ENV)
                .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        };
        assert_eq!(env(4).as_deref(), Some("4"));
        // Alone (sequential, or one GPU): as a plain run, whatever the parent's environment.
        assert_eq!(env(1), None);
        assert!(crate::inventory::RECORDED_VARIABLES.contains(&AT_ONCE_ENV));
    }

    #[test]
    fn workers_get_the_run_options_without_the_parents() {
        let argv = s(&[
            "run",
            "--suite",
            "quick",
            "--devices",
            "all",
            "-o",
            "x.json",
            "--record",
            "--devices-sequential",
            "--min-time=1",
            "--output=y.json",
            "--json",
        ]);
        assert_eq!(
            worker_args(&argv, Path::new("w.json")),
            s(&[
                "run",
                "--suite",
                "quick",
                "--min-time=1",
                "--output",
                "w.json",
                "--device",
                "cuda"
            ])
        );
        let argv = s(&[
            "run",
            "--record",
            "db.sqlite",
            "--devices=0,1",
            "-ox.json",
            "--device",
            "cuda",
        ]);
        assert_eq!(
            worker_args(&argv, Path::new("w.json")),
            s(&["run", "--device", "cuda", "--output", "w.json"])
        );
    }

    /// The terminal sends Ctrl-C to its foreground process group (and a shell's `kill -INT
    /// -PGID` reaches a group): a worker in the parent's group would get it besides the stop
    /// the parent passes on, a second signal that ends it before it writes.
    #[test]
    fn workers_run_in_a_process_group_of_their_own() {
        let mut child = worker_command(Path::new("sleep"), &s(&["10"]), "GPU-x", 1)
            .spawn()
            .unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: getpgid(2) reads a process's group; ours (0) and our unreaped child's.
        let (theirs, ours) = unsafe { (libc::getpgid(pid), libc::getpgid(0)) };
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(theirs, pid, "the worker leads a group of its own");
        assert_ne!(theirs, ours);
    }

    /// A fake worker: on the stop the parent passes on (SIGUSR2, for SIGTERM) it notes the
    /// signal, takes a moment to "write", and exits 143; it notes every signal it gets. Once
    /// its traps are set it creates `<log>.ready` ([`wait_until_ready`]).
    fn fake_worker(log: &Path) -> Command {
        let script = format!(
            "trap 'echo stop >> {0}; sleep 0.3; echo wrote >> {0}; exit 143' USR2; \
             trap 'echo other >> {0}' USR1 INT TERM; \
             : > {0}.ready; \
             while :; do sleep 0.05; done",
            log.display()
        );
        let mut c = worker_command(Path::new("sh"), &s(&["-c", &script]), "GPU-x", 1);
        c.env_remove(crate::signals::WORKER_ENV);
        c
    }

    /// Waits for the [`fake_worker`] writing `log` to have set its traps (a safety limit of
    /// minutes, so that a worker that never gets there fails the test instead of hanging it).
    fn wait_until_ready(log: &Path) {
        let ready = PathBuf::from(format!("{}.ready", log.display()));
        let t0 = std::time::Instant::now();
        while !ready.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "the fake worker never set its traps"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_parent_passes_its_stop_on_once_and_waits_for_the_workers_to_write() {
        let dir = tempfile::tempdir().unwrap();
        let logs: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("w{i}"))).collect();
        let pids: Vec<AtomicI32> = (0..2).map(|_| AtomicI32::new(0)).collect();
        let mut workers: Vec<Worker> = logs
            .iter()
            .enumerate()
            .map(|(slot, log)| {
                let child = fake_worker(log).spawn().unwrap();
                pids[slot].store(child.id() as i32, Ordering::SeqCst);
                Worker {
                    slot,
                    child,
                    told: false,
                    code: None,
                }
            })
            .collect();
        // The shells have set their traps (on a busy machine a fixed pause was not enough: the
        // stop then killed a shell before its trap was set).
        for log in &logs {
            wait_until_ready(log);
        }
        supervise(&mut workers, &Stop::requested_by(libc::SIGTERM), &pids).unwrap();
        for (w, log) in workers.iter().zip(&logs) {
            assert_eq!(w.code, Some(143));
            assert!(w.told);
            assert_eq!(std::fs::read_to_string(log).unwrap(), "stop\nwrote\n");
        }
        // Reaped workers are out of the table a second signal kills.
        assert!(pids.iter().all(|p| p.load(Ordering::SeqCst) == 0));
    }

    /// A worker that cannot be started (fork or exec failing) is reported with its error;
    /// the workers started before and after it run to their end and are reaped, in both
    /// modes (the early return that left them running, their folder removed, is gone).
    #[test]
    fn a_worker_that_cannot_start_leaves_the_others_running_to_their_end() {
        for sequential in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let pids: Vec<AtomicI32> = (0..3).map(|_| AtomicI32::new(0)).collect();
            let spawn = |slot: usize| -> std::io::Result<Worker> {
                let marker = dir.path().join(format!("w{slot}"));
                let exe = if slot == 1 {
                    Path::new("/nonexistent/wattbench-worker")
                } else {
                    Path::new("sh")
                };
                let script = format!("sleep 0.2; touch {}", marker.display());
                let child = worker_command(exe, &s(&["-c", &script]), "GPU-x", 1).spawn()?;
                pids[slot].store(child.id() as i32, Ordering::SeqCst);
                Ok(Worker {
                    slot,
                    child,
                    told: false,
                    code: None,
                })
            };
            let (workers, unstarted) =
                run_workers(3, sequential, &Stop::none(), &pids, spawn).unwrap();
            assert_eq!(unstarted.len(), 1, "{sequential}");
            assert_eq!(unstarted[0].0, 1);
            assert_eq!(unstarted[0].1.kind(), std::io::ErrorKind::NotFound);
            let slots: Vec<usize> = workers.iter().map(|w| w.slot).collect();
            assert_eq!(slots, [0, 2], "{sequential}");
            for w in &workers {
                assert_eq!(w.code, Some(0), "slot {} ({sequential})", w.slot);
                assert!(dir.path().join(format!("w{}", w.slot)).exists());
            }
            assert!(pids.iter().all(|p| p.load(Ordering::SeqCst) == 0));
        }
        // A stop requested before a worker starts starts none.
        let pids = [AtomicI32::new(0)];
        let (workers, unstarted) = run_workers(
            1,
            false,
            &Stop::requested_by(libc::SIGINT),
            &pids,
            |_| -> std::io::Result<Worker> { panic!("started after the stop") },
        )
        .unwrap();
        assert!(workers.is_empty() && unstarted.is_empty());
    }

    #[test]
    fn a_worker_stopped_from_outside_makes_the_merged_run_interrupted() {
        // The parent stopped: its own signal's code.
        assert_eq!(exit_code(Some(130), &[0, 130], 2, 2), 130);
        // A worker stopped from outside wrote an interrupted file: not 0, and before a
        // failure elsewhere (as `run`'s interrupt comes before its failed cases).
        assert_eq!(exit_code(None, &[0, 143], 2, 2), 143);
        assert_eq!(exit_code(None, &[130, 0, 1], 3, 3), 130);
        assert_eq!(exit_code(None, &[0, 1], 2, 2), 1);
        assert_eq!(exit_code(None, &[0, 0], 1, 2), 1, "a worker wrote nothing");
        assert_eq!(exit_code(None, &[3, 3], 2, 2), 3);
        assert_eq!(exit_code(None, &[0, 3], 2, 2), 0);
        // A worker's internal error after its completed cases (run's exit 2) is the parent's;
        // any other ending (4: its file in a fallback; a crash) fails it, files or not.
        assert_eq!(exit_code(None, &[0, 2], 2, 2), 2);
        assert_eq!(
            exit_code(None, &[0, 2], 1, 2),
            1,
            "the worker that ended 2 wrote nothing"
        );
        assert_eq!(exit_code(None, &[0, 4], 2, 2), 1);
        assert_eq!(exit_code(None, &[101, 3], 2, 2), 1);
    }

    #[test]
    fn gpu_cases_are_named_by_their_nvml_index() {
        use wattbench_core::testing::{run_file, timed_case};
        let mut gpu = timed_case("gemm/infer/m2_n2_k2_nn/f32/cuda/cuda:0", vec![1.0]);
        gpu.device = "cuda:0".into();
        let cpu = timed_case("gemm/infer/m2_n2_k2_nn/f32/reference/cpu", vec![1.0]);
        let mut run = run_file("t", vec![gpu, cpu]);
        rename_device(&mut run, 3);
        assert_eq!(run.cases[0].id, "gemm/infer/m2_n2_k2_nn/f32/cuda/cuda:3");
        assert_eq!(run.cases[0].device, "cuda:3");
        assert_eq!(run.cases[1].id, "gemm/infer/m2_n2_k2_nn/f32/reference/cpu");
    }
}
