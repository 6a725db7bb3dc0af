//! `wattbench run --devices all|LIST`: one worker process per GPU, each pinned to its GPU
//! (`CUDA_VISIBLE_DEVICES` set to the GPU's UUID, so it meters that GPU alone), run at once or
//! one after another, their result files merged into the output (`wattbench merge`'s
//! format): per-GPU time, energy and memory stay apart, each run keeps its environment. Case
//! ids name each GPU by its NVML index (`…/cuda:3`), not the worker's `cuda:0`.
//!
//! UNVERIFIED ON HARDWARE: no session has had a machine with several GPUs; on a machine
//! without GPUs the flag says so and stops.
use crate::options::usage;
use crate::signals::Stop;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;
use wattbench_core::result::{GpuRecord, MergedFile, RunFile};
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
    if list.len() == 1 && list[0].trim() == "all" {
        return Ok(visible);
    }
    let mut out = Vec::new();
    for e in list.iter().map(|e| e.trim()) {
        let g = visible
            .iter()
            .find(|g| {
                g.index.to_string() == e || g.uuid.as_deref().is_some_and(|u| u.starts_with(e))
            })
            .ok_or_else(|| {
                usage(format!(
                    "--devices: `{e}` is not a visible GPU (NVML index or GPU- UUID); visible: {}",
                    visible
                        .iter()
                        .map(|g| g.index.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        out.push(g.clone());
    }
    Ok(out)
}

/// A folder removed when dropped.
struct Workdir(PathBuf);

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SIGTERM to a worker that has not been reaped.
fn terminate(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
    if pid > 0 {
        // SAFETY: kill(2) on our own child, which `child` still holds (not yet waited for,
        // so its pid cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Run the workers and merge their files into `output`; the exit code.
/// `record`: `run --record [DB]`, applied to the merged file.
pub fn run(
    list: &[String],
    sequential: bool,
    output: &Path,
    record: Option<Option<&Path>>,
) -> Result<u8> {
    let gpus = chosen(list)?;
    let file = crate::output::prepare(output)?;
    // The workers' files, beside the output; removed at the end.
    let dir = Workdir(output.with_extension(format!("workers-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)
        .map_err(|e| usage(format!("cannot create {}: {e}", dir.0.display())))?;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let exe = std::env::current_exe()?;
    let stop = Stop::install()?;
    let spawn = |g: &GpuRecord| -> Result<(PathBuf, Child)> {
        let out = dir.0.join(format!("gpu{}.json", g.index));
        let child = Command::new(&exe)
            .args(worker_args(&argv, &out))
            .env(
                "CUDA_VISIBLE_DEVICES",
                g.uuid.clone().unwrap_or(g.index.to_string()),
            )
            .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            .spawn()?;
        Ok((out, child))
    };
    let wait = |child: &mut Child| -> Result<i32> {
        loop {
            if let Some(s) = child.try_wait()? {
                return Ok(s.code().unwrap_or(1));
            }
            if stop.requested() {
                // The worker writes its completed cases and exits 143.
                terminate(child);
                return Ok(child.wait()?.code().unwrap_or(1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut codes = Vec::new();
    let mut files = Vec::new();
    if sequential {
        for g in &gpus {
            let (out, mut child) = spawn(g)?;
            codes.push(wait(&mut child)?);
            files.push((g, out));
            if stop.requested() {
                break;
            }
        }
    } else {
        let mut children = Vec::new();
        for g in &gpus {
            let (out, child) = spawn(g)?;
            children.push((g, out, child));
        }
        for (g, out, mut child) in children {
            codes.push(wait(&mut child)?);
            files.push((g, out));
        }
    }
    let mut runs = Vec::new();
    for (g, path) in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("gpu{}: the worker wrote no result file", g.index);
            continue;
        };
        let mut run =
            RunFile::from_json(&text).map_err(|e| usage(format!("gpu{}: {e}", g.index)))?;
        rename_device(&mut run, g.index);
        runs.push((
            format!("gpu{} ({})", g.index, g.uuid.as_deref().unwrap_or("?")),
            run,
        ));
    }
    let n = runs.len();
    if n == 0 {
        eprintln!(
            "no GPU worker wrote a result file (exit codes {codes:?}); nothing written to {}",
            output.display()
        );
        return Ok(if stop.requested() {
            stop.exit_code()
        } else {
            1
        });
    }
    let mut merged = MergedFile::merge(
        runs,
        false,
        std::env::args().collect(),
        chrono::Utc::now().to_rfc3339(),
    )
    .map_err(|e| usage(e.to_string()))?;
    merged.merged.notes.push(if sequential {
        "the GPUs ran one after another (--devices-sequential)".into()
    } else {
        format!(
            "the {} GPUs ran at once: they shared the node's power, cooling and host CPUs, \
             which can move every figure (--devices-sequential runs them one after another); \
             each worker metered its own GPU, and each metered the whole CPU package",
            gpus.len()
        )
    });
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
    if let Some(failure) = &written.failure {
        eprintln!("error: {failure}");
        return Ok(crate::output::EXIT_NOT_WRITTEN);
    }
    Ok(if stop.requested() {
        stop.exit_code()
    } else if codes.contains(&1) || n < gpus.len() {
        1
    } else if codes
        .iter()
        .all(|&c| c == i32::from(crate::run::EXIT_NOTHING_RAN))
    {
        crate::run::EXIT_NOTHING_RAN
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
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
            "--device",
            "cuda",
        ]);
        assert_eq!(
            worker_args(&argv, Path::new("w.json")),
            s(&["run", "--device", "cuda", "--output", "w.json"])
        );
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
