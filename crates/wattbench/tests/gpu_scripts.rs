//! The GPU machine's scripts (scripts/gpu-check.sh, profile-gemm.sh and the gpu-env.sh they
//! source) on a machine without a GPU, in two ways: their summaries rewritten
//! (`--summary-only`) from copies of the work folders an H200 returned on 2026-11-30
//! (results/gpu/2026-11-30-h200; the committed files are never modified), and whole runs from a
//! fake bundle whose wattbench, test binary, nvidia-smi and torch stand-ins replay those
//! results. They need bash and python3, as the scripts do.
//!
//! WATTBENCH_TEST_SCRIPTS names another folder of the three scripts to test (e.g. an older
//! version, to see these tests fail on it).
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scripts() -> PathBuf {
    std::env::var_os("WATTBENCH_TEST_SCRIPTS").map_or_else(|| repo().join("scripts"), PathBuf::from)
}

/// What the H200 returned on 2026-11-30.
fn h200(sub: &str) -> PathBuf {
    repo().join("results/gpu/2026-11-30-h200").join(sub)
}

/// SRC's files and folders copied to DST. Symbolic links are left out: a run's cuda-libs/ links
/// into the GPU machine's folders, and would dangle here (fs::copy fails on one).
fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            continue;
        } else if kind.is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

#[test]
fn copy_tree_leaves_out_symbolic_links_a_dangling_one_included() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("cuda-libs")).unwrap();
    fs::write(src.join("env.txt"), "x").unwrap();
    std::os::unix::fs::symlink(
        "/nowhere/libcublas.so.13",
        src.join("cuda-libs/libcublas.so"),
    )
    .unwrap();
    std::os::unix::fs::symlink(src.join("env.txt"), src.join("env-link.txt")).unwrap();
    let dst = tmp.path().join("dst");
    copy_tree(&src, &dst);
    assert_eq!(fs::read_to_string(dst.join("env.txt")).unwrap(), "x");
    assert!(dst.join("cuda-libs").is_dir());
    assert!(fs::symlink_metadata(dst.join("cuda-libs/libcublas.so")).is_err());
    assert!(fs::symlink_metadata(dst.join("env-link.txt")).is_err());
}

/// A copy of one of the H200's work folders (gpu-check or profile-gemm) in a fresh temp dir,
/// as it was: its result files show a mix of CUDA library sets loaded (a failure now).
fn h200_copy_as_run(sub: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(sub);
    copy_tree(&h200(sub), &dir);
    (tmp, dir)
}

/// A copy of one of the H200's work folders whose result files show one set of CUDA libraries
/// loaded (the toolkit's and the system's copies left out of `environment.libraries`), for the
/// tests of everything else the summaries judge.
fn h200_copy(sub: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = h200_copy_as_run(sub);
    for e in fs::read_dir(&dir).unwrap() {
        one_library_set(&e.unwrap().path());
    }
    (tmp, dir)
}

/// The result file PATH (when it is one) with only the site-packages copies of the CUDA
/// libraries in its `environment.libraries`.
fn one_library_set(path: &Path) {
    edit_libraries(path, |l| {
        (!(l.starts_with("/usr/local/cuda") || l.starts_with("/usr/lib/"))).then(|| l.to_string())
    });
}

/// The result file PATH (when it is one) with each of its `environment.libraries` passed
/// through `map` (None: left out).
fn edit_libraries(path: &Path, map: impl Fn(&str) -> Option<String>) {
    if path.extension().is_none_or(|x| x != "json") {
        return;
    }
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&fs::read_to_string(path).unwrap())
    else {
        return;
    };
    if let Some(libs) = doc
        .pointer_mut("/environment/libraries")
        .and_then(|l| l.as_array_mut())
    {
        *libs = libs
            .iter()
            .filter_map(|l| map(l.as_str().unwrap_or("")))
            .map(serde_json::Value::from)
            .collect();
        fs::write(path, doc.to_string()).unwrap();
    }
}

/// `bash SCRIPT --summary-only DIR` with the script under test named SCRIPT.
fn rewrite(script: &str, dir: &Path) -> (i32, String) {
    rewrite_with(&scripts().join(script), dir)
}

/// `bash SCRIPT --summary-only DIR`: its exit status and what it printed, which must be the
/// summary.txt it wrote.
fn rewrite_with(script: &Path, dir: &Path) -> (i32, String) {
    let o = Command::new("bash")
        .arg(script)
        .arg("--summary-only")
        .arg(dir)
        .env("CUDA_CACHE_PATH", dir.join("../jit-cache"))
        .output()
        .expect("run bash");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let written = fs::read_to_string(dir.join("summary.txt")).unwrap_or_default();
    assert_eq!(
        text,
        written,
        "{} --summary-only printed something other than the summary.txt it wrote; stderr:\n{}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

fn line<'a>(text: &'a str, has: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(has))
        .unwrap_or_else(|| panic!("no line with {has:?} in:\n{text}"))
}

fn assert_has(text: &str, want: &str) {
    assert!(text.contains(want), "{want:?} not in:\n{text}");
}

/// Each TFLOP/s or GFLOP/J figure of `text` printed as zero ("0", "0.0", ...).
fn zero_figures(text: &str) -> Vec<String> {
    let mut zeros = Vec::new();
    for l in text.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        for w in words.windows(2) {
            if (w[1] == "TFLOP/s" || w[1] == "GFLOP/J") && w[0].parse::<f64>() == Ok(0.0) {
                zeros.push(l.to_string());
            }
        }
    }
    zeros
}

/// Where the H200 of 2026-11-30 had its wheels, torch among them.
const H200_SITE_PACKAGES: &str = "/opt/torch/.venv/lib/python3.12/site-packages";
/// Its CUDA toolkit's library folder, as the processes' maps name it.
const H200_TOOLKIT: &str = "/usr/local/cuda-13.0/targets/x86_64-linux/lib";
/// Its system folder, cuDNN 9.14's.
const H200_SYSTEM: &str = "/usr/lib/x86_64-linux-gnu";

#[test]
fn summaries_fail_the_h200_run_for_its_mix_of_cuda_library_sets() {
    // As it ran: cuBLAS and cuRAND from the toolkit and from the wheels, cuDNN from /usr/lib and
    // from the wheels, NVRTC from the toolkit alone, cuBLASLt from the wheels, while env.txt
    // said "cuda library set: wheels" (and the wheels' files are what each versioned name
    // resolved to: the set chosen).
    let (_tmp, dir) = h200_copy_as_run("gpu-check");
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("wattbench GPU check: FAILED"), "{text}");
    assert_has(
        line(&text, "wattbench GPU check:"),
        "(BUT A MIX WAS LOADED: below)",
    );
    assert_has(&text, "FAILED: a mix of CUDA libraries loaded by the runs");
    let wheels = format!("{H200_SITE_PACKAGES}/nvidia/cu13/lib");
    assert_has(
        line(&text, "    cuBLAS from 2 folders: "),
        &format!(
            "{H200_TOOLKIT} (libcublas.so.13.1.0.3; not the chosen set); {wheels} (libcublas.so.13; the chosen set)"
        ),
    );
    assert_has(
        line(&text, "    cuDNN from 2 folders: "),
        &format!("{H200_SYSTEM} (libcudnn_graph.so.9.14.0 libcudnn.so.9.14.0 "),
    );
    assert_has(
        line(&text, "    cuDNN from 2 folders: "),
        &format!("{H200_SITE_PACKAGES}/nvidia/cudnn/lib (libcudnn.so.9; the chosen set)"),
    );
    // The rnn run's cuRAND: the toolkit's beside the wheel's.
    assert_has(
        line(&text, "    cuRAND from 2 folders: "),
        &format!("{H200_TOOLKIT} (libcurand.so.10.4.0.35; not the chosen set)"),
    );
    assert_has(
        line(&text, "    NVRTC from outside the chosen set: "),
        &format!(
            "{H200_TOOLKIT} (libnvrtc.so.13.0.88), where the chosen set has {wheels}/libnvrtc.so.13"
        ),
    );
    assert_has(
        line(
            &text,
            "    cuBLAS and cuBLASLt from different folders (they must match): ",
        ),
        &format!("cuBLAS from {H200_TOOLKIT}, {wheels}; cuBLASLt from {wheels}"),
    );
    assert_has(
        line(&text, "(rewritten from the work folder"),
        "a mix of CUDA libraries loaded: cuBLAS from 2 folders",
    );
    // No env.txt in the profile's folder (from before it had one): a library from two folders,
    // and cuBLAS beside another folder's cuBLASLt, are a mix all the same.
    let (code, text) = rewrite("profile-gemm.sh", &h200_copy_as_run("profile-gemm").1);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.starts_with("wattbench Hopper GEMM profile: FAILED"),
        "{text}"
    );
    assert_has(
        &text,
        "FAILED: a mix of CUDA libraries loaded by the suite runs",
    );
    for l in [
        "    cuBLAS from 2 folders: ",
        "    cuDNN from 2 folders: ",
        "    cuBLAS and cuBLASLt from different folders",
    ] {
        line(&text, l);
    }
}

/// DIR's env.txt with the "cuda library" lines of a run that chose KIND with LINKS, each
/// (name, file) in place of the ones it had.
fn chose(dir: &Path, kind: &str, links: &[(&str, String)]) {
    let env = fs::read_to_string(dir.join("env.txt")).unwrap();
    let mut kept: Vec<String> = env
        .lines()
        .filter(|l| !l.starts_with("cuda library "))
        .map(str::to_string)
        .collect();
    let mut chosen = vec![
        format!("cuda library set: {kind}"),
        format!(
            "cuda library links: {} (unversioned names, first on LD_LIBRARY_PATH)",
            if links.is_empty() {
                "none made"
            } else {
                "/tmp/wb-gpu/check/cuda-libs"
            }
        ),
    ];
    chosen.extend(
        links
            .iter()
            .map(|(name, file)| format!("cuda library chosen: {name} -> {file}")),
    );
    let at = kept.iter().position(|l| l.starts_with("gpu: ")).unwrap() + 1;
    kept.splice(at..at, chosen);
    fs::write(dir.join("env.txt"), kept.join("\n") + "\n").unwrap();
}

/// Each result file of DIR passed through `edit_libraries` with `map`.
fn edit_all_libraries(dir: &Path, map: impl Fn(&str) -> Option<String>) {
    for e in fs::read_dir(dir).unwrap() {
        edit_libraries(&e.unwrap().path(), &map);
    }
}

/// The H200's run as it would have loaded the toolkit's libraries and the system's cuDNN 9, the
/// set a toolkit machine gets (no toolkit ships cuDNN): each wheel's file replaced by the
/// toolkit's (cuDNN's by the system's), and env.txt naming that set. `nvrtc`: where NVRTC is
/// loaded from.
fn h200_as_toolkit_run(nvrtc: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = h200_copy_as_run("gpu-check");
    let nvrtc = nvrtc.to_string();
    edit_all_libraries(&dir, |l| {
        let Some(name) = l.strip_prefix(&format!("{H200_SITE_PACKAGES}/nvidia/")) else {
            return Some(l.to_string());
        };
        Some(match name {
            "cu13/lib/libcublas.so.13" => format!("{H200_TOOLKIT}/libcublas.so.13.1.0.3"),
            "cu13/lib/libcublasLt.so.13" => format!("{H200_TOOLKIT}/libcublasLt.so.13.1.0.3"),
            "cu13/lib/libcurand.so.10" => format!("{H200_TOOLKIT}/libcurand.so.10.4.0.35"),
            "cu13/lib/libcudart.so.13" => format!("{H200_TOOLKIT}/libcudart.so.13.0.96"),
            "cudnn/lib/libcudnn.so.9" => format!("{H200_SYSTEM}/libcudnn.so.9.14.0"),
            other => format!("{H200_SITE_PACKAGES}/nvidia/{other}"),
        })
    });
    edit_all_libraries(&dir, |l| {
        Some(if l.ends_with("/libnvrtc.so.13.0.88") {
            nvrtc.clone()
        } else {
            l.to_string()
        })
    });
    chose(
        &dir,
        "toolkit",
        &[
            (
                "libcublas.so",
                format!("{H200_TOOLKIT}/libcublas.so.13.1.0.3"),
            ),
            (
                "libcublasLt.so",
                format!("{H200_TOOLKIT}/libcublasLt.so.13.1.0.3"),
            ),
            ("libnvrtc.so", format!("{H200_TOOLKIT}/libnvrtc.so.13.0.88")),
            ("libcudnn.so", format!("{H200_SYSTEM}/libcudnn.so.9.14.0")),
            (
                "libcudart.so",
                format!("{H200_TOOLKIT}/libcudart.so.13.0.96"),
            ),
            (
                "libcurand.so",
                format!("{H200_TOOLKIT}/libcurand.so.10.4.0.35"),
            ),
        ],
    );
    (tmp, dir)
}

#[test]
fn a_toolkit_run_with_the_systems_cudnn_passes_and_a_library_from_outside_its_set_fails() {
    // The toolkit's libraries and the system's cuDNN, as chosen: one set.
    let (_tmp, dir) = h200_as_toolkit_run(&format!("{H200_TOOLKIT}/libnvrtc.so.13.0.88"));
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("wattbench GPU check: PASSED"), "{text}");
    assert_has(
        line(&text, "wattbench GPU check:"),
        "CUDA libraries: toolkit",
    );
    assert!(!text.contains("mix"), "{text}");

    // NVRTC from the wheels alone (one folder), where the chosen toolkit has its own.
    let wheel = format!("{H200_SITE_PACKAGES}/nvidia/cu13/lib/libnvrtc.so.13");
    let (_tmp, dir) = h200_as_toolkit_run(&wheel);
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("wattbench GPU check: FAILED"), "{text}");
    assert_has(
        line(&text, "    NVRTC from outside the chosen set: "),
        &format!(
            "{H200_SITE_PACKAGES}/nvidia/cu13/lib (libnvrtc.so.13), where the chosen set has \
             {H200_TOOLKIT}/libnvrtc.so.13.0.88"
        ),
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("    ")).count(),
        1,
        "{text}"
    );
}

#[test]
fn cublas_and_cublaslt_from_different_folders_are_a_mix() {
    // cuBLAS from the toolkit alone, cuBLASLt from the wheels alone, no set recorded as chosen:
    // each library from one folder, but not the pair.
    let (_tmp, dir) = h200_copy_as_run("gpu-check");
    edit_all_libraries(&dir, |l| {
        let keep = l.contains("libcublasLt") || !l.contains("site-packages/nvidia/cu13");
        (keep && !l.starts_with(H200_SYSTEM)).then(|| l.to_string())
    });
    chose(&dir, "none", &[]);
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("    "))
            .collect::<Vec<_>>(),
        [format!(
            "    cuBLAS and cuBLASLt from different folders (they must match): cuBLAS from \
             {H200_TOOLKIT}; cuBLASLt from {H200_SITE_PACKAGES}/nvidia/cu13/lib"
        )],
        "{text}"
    );
}

#[test]
fn wheels_in_dist_packages_are_one_set() {
    // The wheels of a system python3 (dist-packages), cuBLAS and cuDNN in folders of their own
    // packages: one set, chosen.
    let dist = "/usr/local/lib/python3.12/dist-packages";
    let (_tmp, dir) = h200_copy("gpu-check");
    edit_all_libraries(&dir, |l| Some(l.replace(H200_SITE_PACKAGES, dist)));
    chose(
        &dir,
        "wheels",
        &[
            (
                "libcublas.so",
                format!("{dist}/nvidia/cu13/lib/libcublas.so.13"),
            ),
            (
                "libcudnn.so",
                format!("{dist}/nvidia/cudnn/lib/libcudnn.so.9"),
            ),
        ],
    );
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("wattbench GPU check: PASSED"), "{text}");
    assert!(!text.contains("mix"), "{text}");
}

#[test]
fn gpu_check_summary_prints_small_figures_with_three_significant_digits() {
    let (_tmp, dir) = h200_copy("gpu-check");
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 0, "the H200's check passed:\n{text}");
    assert!(text.starts_with("wattbench GPU check: PASSED"), "{text}");
    // The GRU step: 0.2, 0.1 and 0.0 TFLOP/s, 1, 0 and 0 GFLOP/J before.
    let gru = line(&text, "rnn infer gru512 f32");
    for want in [
        "cuda  0.170 TFLOP/s",
        "1.11 GFLOP/J",
        "tch 0.0586 TFLOP/s",
        "0.442 GFLOP/J",
        "candle 0.0362 TFLOP/s",
        "0.268 GFLOP/J",
    ] {
        assert_has(gru, want);
    }
    assert_eq!(zero_figures(&text), Vec::<String>::new());
}

#[test]
fn profile_summary_prints_small_figures_with_three_significant_digits() {
    let (_tmp, dir) = h200_copy("profile-gemm");
    let (_, text) = rewrite("profile-gemm.sh", &dir);
    // cuda on the Llama down-projection at T = 1: 0.2 TFLOP/s and 1.0 GFLOP/J before.
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("llama-down-T1 ") && l.split_whitespace().nth(1) == Some("cuda"))
        .unwrap_or_else(|| panic!("no llama-down-T1 cuda row in:\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[2..5], ["0.194", "0.0583", "0.974"], "{text}");
    // No figure of the table (TFLOP/s, the ratio, GFLOP/J) printed as zero.
    for l in text
        .lines()
        .filter(|l| l.contains("cuda") || l.contains("cublas"))
    {
        let cells: Vec<&str> = l.split_whitespace().collect();
        if cells.len() >= 5 && cells[2].parse::<f64>().is_ok() {
            for c in &cells[2..5] {
                assert_ne!(
                    c.parse::<f64>().ok(),
                    Some(0.0),
                    "a figure printed as 0: {l}"
                );
            }
        }
    }
}

/// torch.txt as step 3 writes it now: per product a sustained figure (1 s of warm-up, then
/// >= 2 s of back-to-back calls) and the burst; `sustained_8192_bf16` in seconds.
fn torch_txt(sustained_8192_bf16: f64) -> String {
    let product = |n: u32, dtype: &str, sustained: f64, burst: f64| {
        serde_json::json!({
            "n": n, "dtype": dtype,
            "burst": {"calls": 30, "median_s": burst, "min_s": burst * 0.99, "p5_s": burst * 0.99,
                      "p95_s": burst * 1.01, "max_s": burst * 1.02, "tflops": 1.0},
            "sustained": {"calls": 1200, "median_s": sustained, "min_s": sustained * 0.97,
                          "p5_s": sustained * 0.98, "p95_s": sustained * 1.02, "max_s": sustained * 1.05,
                          "tflops": 1.0, "warmup_s": 1.01, "span_s": 2.03},
        })
    };
    let doc = serde_json::json!({
        "torch": "2.11.0+cu130", "cuda": "13.0", "python": "/opt/torch/.venv/bin/python3",
        "device": "NVIDIA H200", "fp32": "torch.backends.cuda.matmul.fp32_precision = 'ieee'",
        "bf16_reduced_precision_reduction": false,
        "method": {"sustained": "1 s of back-to-back warm-up calls, then back-to-back calls for at least 2 s",
                   "burst": "5 warm-up calls, then 30 timed"},
        "gemm": [
            product(4096, "f32", 2.700e-3, 2.710e-3),
            product(4096, "bf16", 0.2039e-3, 0.1888e-3),
            product(8192, "f32", 21.550e-3, 21.559e-3),
            product(8192, "bf16", sustained_8192_bf16, 1.4296e-3),
        ],
    });
    format!("{doc}\n")
}

#[test]
fn timing_truth_compares_the_sustained_figure_and_shows_the_burst_beside_it() {
    let (_tmp, dir) = h200_copy("gpu-check");
    fs::write(dir.join("torch.txt"), torch_txt(1.640e-3)).unwrap();
    let (_, text) = rewrite("gpu-check.sh", &dir);
    // wattbench's cublas 8192^3 bf16 median on the H200: 1.646 ms.
    let sustained = line(&text, "torch.mm 8192^3 bf16: sustained 1.640 ms");
    assert_has(
        sustained,
        "wattbench cublas 1.646 ms -> 1.004x (within 5 %)",
    );
    // The burst on the next line, and why it differs.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| *l == sustained).unwrap();
    let burst = lines[at + 1];
    assert_has(
        burst,
        "burst (5 warm-up calls, then 30 timed) 1.430 ms, 13 % faster than sustained",
    );
    assert_has(burst, "the GPU not yet at its power cap");
    // Energy truth's window ended throttled by the power cap: said, with the evidence.
    assert_has(burst, "energy truth's window ended throttled by it");
    assert_has(burst, "results/gpu/2026-11-30-h200/timing-truth/");
    let f32 = lines[lines
        .iter()
        .position(|l| l.contains("torch.mm 8192^3 f32: sustained"))
        .unwrap()
        + 1];
    assert_has(f32, "(within 5 % of the sustained figure)");
    assert!(!text.contains("MORE THAN 5 %"), "{text}");
    assert!(
        !text.contains("a torch.txt from before the sustained timing"),
        "{text}"
    );

    // A sustained figure 10 % off wattbench's is flagged, whatever the burst says.
    fs::write(dir.join("torch.txt"), torch_txt(1.480e-3)).unwrap();
    let (_, text) = rewrite("gpu-check.sh", &dir);
    assert_has(
        line(&text, "torch.mm 8192^3 bf16: sustained 1.480 ms"),
        "-> 1.112x (MORE THAN 5 % apart: explain)",
    );
}

#[test]
fn timing_truth_of_an_older_torch_txt_labels_its_figures_bursts() {
    // The H200's torch.txt: the burst alone (5 warm-up calls, 30 timed).
    let (_tmp, dir) = h200_copy("gpu-check");
    let (_, text) = rewrite("gpu-check.sh", &dir);
    assert_has(
        line(&text, "torch.mm 8192^3 bf16:"),
        "burst 1.430 ms | wattbench cublas 1.646 ms -> 1.151x (MORE THAN 5 % apart",
    );
    assert_has(
        &text,
        "(a torch.txt from before the sustained timing: bursts alone",
    );
}

#[test]
fn profile_run_killed_at_its_limit_after_writing_every_case_does_not_fail() {
    // As recorded: the suite's step "exit 124", and a hopper-gemm.json not interrupted.
    let (_tmp, dir) = h200_copy("profile-gemm");
    assert_has(
        &fs::read_to_string(dir.join("steps.txt")).unwrap(),
        "suite-hopper-gemm: 159 s, exit 124",
    );
    let (code, text) = rewrite("profile-gemm.sh", &dir);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("wattbench Hopper GEMM profile: OK"),
        "{text}"
    );
    assert_has(
        &text,
        "suite hopper-gemm: finished; killed at its time limit while exiting (all cases written: 32 ok, 0 skipped",
    );
}

#[test]
fn profile_run_killed_at_its_limit_with_an_interrupted_or_missing_file_fails() {
    let (_tmp, dir) = h200_copy("profile-gemm");
    let path = dir.join("hopper-gemm.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    doc["interrupted"] = true.into();
    fs::write(&path, doc.to_string()).unwrap();
    let (code, text) = rewrite("profile-gemm.sh", &dir);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.starts_with("wattbench Hopper GEMM profile: FAILED"),
        "{text}"
    );
    assert_has(
        &text,
        "suite hopper-gemm: hit its time limit: the completed cases are in hopper-gemm.json (marked interrupted)",
    );

    fs::remove_file(&path).unwrap();
    let (code, text) = rewrite("profile-gemm.sh", &dir);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.starts_with("wattbench Hopper GEMM profile: FAILED"),
        "{text}"
    );
    assert_has(
        &text,
        "hit its time limit before any result file was written",
    );
}

#[test]
fn gpu_check_suite_run_killed_at_its_limit_is_judged_on_its_result_file() {
    // suite-status.txt as step 6 records a run now: name, message, verdict, exit status,
    // limit, seconds; the gemm family's run killed at its 50 s limit.
    let (_tmp, dir) = h200_copy("gpu-check");
    let status = "gemm\thit its 50 s time limit\tfail\t124\t50\t50\n\
                  gemm-wgmma\tok in 15 s\tpass\t0\t30\t15\n\
                  gemm-wgmma-c2\tok in 16 s\tpass\t0\t30\t16\n\
                  conv2d\tok in 59 s\tpass\t0\t70\t59\n\
                  rnn\tok in 47 s\tpass\t0\t65\t47\n";
    fs::write(dir.join("suite-status.txt"), status).unwrap();
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("wattbench GPU check: PASSED"), "{text}");
    assert_has(
        line(&text, "suite gemm:"),
        "finished; killed at its time limit while exiting (all cases written: 8 ok, 0 skipped; the limit was 50 s)",
    );

    let path = dir.join("gpu-check.gemm.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    doc["interrupted"] = true.into();
    fs::write(&path, doc.to_string()).unwrap();
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("wattbench GPU check: FAILED"), "{text}");
    assert_has(
        line(&text, "suite gemm:"),
        "hit its 50 s time limit: the completed cases are in gpu-check.gemm.json (marked interrupted)",
    );
}

/// `wb_run_tail` of gpu-env.sh on LOG, as a step echoes a run's output.
fn run_tail(log: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new("bash")
        .arg("-c")
        .arg(r#". "$1" && wb_run_tail "$2""#)
        .arg("bash")
        .arg(scripts().join("gpu-env.sh"))
        .arg(log)
        .env("CUDA_CACHE_PATH", tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_step_echoes_each_warning_of_a_run_whole() {
    // The H200's conv2d run: its output ends with a note wrapped at 100 columns, whose last
    // line, "RAPL package counter here)", each suite step echoed alone.
    let text = run_tail(&h200("gpu-check/run.conv2d.txt"));
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "warning: gpu0: idle power moved from 97.83 W before the run to 144.55 W after it (clocks, \
             temperature or other load changed); the net figures use the mean, with half the difference \
             in their uncertainty",
            "16 ok, 0 skipped, 0 failed in 57.9 s",
            "/tmp/wb-gpu/check/gpu-check.conv2d.json",
        ]
    );
    // A run cut off in its notes: its last lines, each paragraph whole.
    let tmp = tempfile::tempdir().unwrap();
    let full = fs::read_to_string(h200("gpu-check/run.gemm.txt")).unwrap();
    let cut: Vec<&str> = full
        .lines()
        .take_while(|l| !l.starts_with("GPU energy counter"))
        .collect();
    let log = tmp.path().join("run.txt");
    fs::write(&log, cut.join("\n") + "\n").unwrap();
    let text = run_tail(&log);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.starts_with("warning: ")), "{text}");
    assert_has(
        &text,
        "(sw_power_cap); gemm/infer/m8192_n8192_k8192_nn/bf16/cublas/cuda:0 (sw_power_cap)",
    );
}

// ---- whole runs from a fake bundle ------------------------------------------------------------

/// A stand-in for the wattbench binary: answers what the GPU scripts ask, replaying the results
/// recorded in $FAKE_RECORDS (NAME.json, and NAME.txt, the run's output); $FAKE_DIR/exit.NAME
/// holds a run's exit status (default 0), $FAKE_DIR/interrupted.NAME marks its file interrupted.
const FAKE_WATTBENCH: &str = r#"#!/usr/bin/env bash
cmd=$1
shift
opt() { # NAME ARGS...: the value of option NAME
  local n=$1
  shift
  while [ $# -gt 1 ]; do [ "$1" = "$n" ] && { echo "$2"; return; }; shift; done
}
case $cmd in
  list) if [ "${1:-}" = --json ]; then echo '{"backends": [{"name": "tch", "trains": true}]}'; else echo "backends (fake)"; fi ;;
  info) echo "fake wattbench info" ;;
  measure) exit 0 ;;
  check)
    what=$(opt --op "$@")
    [ "$what" = none ] && what=trainer
    echo "ok $(opt --backend "$@")/cuda:0 $what (fake)" ;;
  report) : >"$(opt --output "$@")" ;;
  run)
    out=$(opt --output "$@")
    [ -n "$out" ] || out=$(opt -o "$@")
    name=$(basename "$out" .json)
    [ -f "$FAKE_RECORDS/$name.json" ] || { echo "no recorded result for $name: every case skipped"; exit 3; }
    cat "$FAKE_RECORDS/$name.txt"
    python3 - "$FAKE_RECORDS/$name.json" "$out" "$FAKE_DIR/interrupted.$name" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
d["interrupted"] = os.path.exists(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"))
PY
    exit "$(cat "$FAKE_DIR/exit.$name" 2>/dev/null || echo 0)" ;;
  *) echo "fake wattbench: $cmd is not faked" >&2; exit 2 ;;
esac
"#;

/// A stand-in for the GPU test binary: two tests, which pass.
const FAKE_TESTS: &str = r#"#!/usr/bin/env bash
if [ "$1" = --list ]; then
  printf '%s: test\n' cuda::gemm_small cuda_wgmma::gemm_small
  exit 0
fi
echo "test result: ok. 1 passed; 0 failed; 0 ignored"
"#;

/// A stand-in for nvidia-smi: one H200.
const FAKE_SMI: &str = r#"#!/usr/bin/env bash
case "$*" in
  -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)" ;;
  *compute_cap*) echo "9.0" ;;
  *) echo "NVIDIA H200 (fake nvidia-smi)" ;;
esac
"#;

/// A stand-in for PyTorch: CUDA events on a simulated GPU clock, each n^3 product taking the
/// H200's time of 2026-11-30, faster for the first 0.1 s of a load (before the power cap).
/// Events behave as CUDA's do for the host: one is complete only once it, or an event recorded
/// after it, was synchronized (or torch.cuda.synchronize() ran), and `elapsed_time` between
/// events not both complete raises, as PyTorch does ("device not ready").
const FAKE_TORCH: &str = r#"
__version__ = "0.0-fake"
float32, bfloat16 = "f32", "bf16"
_TIMES = {(4096, "f32"): (2.71e-3, 2.71e-3), (4096, "bf16"): (0.186e-3, 0.204e-3),
          (8192, "f32"): (21.56e-3, 21.56e-3), (8192, "bf16"): (1.434e-3, 1.640e-3)}
_now = 0.0
_load = 0.0
_recorded = 0  # events recorded so far
_done = 0  # events known complete: those recorded up to the last synchronized one
class _T:
    def __init__(self, n, dtype):
        self.n, self.dtype = n, dtype
def manual_seed(_):
    pass
def randn(n, m, device=None, dtype=float32):
    global _load
    _load = 0.0  # new operands: the GPU idled a moment
    return _T(n, dtype)
def empty(n, m, device=None, dtype=float32):
    return _T(n, dtype)
def mm(a, b, out=None):
    global _now, _load
    cool, capped = _TIMES[(a.n, a.dtype)]
    dt = cool if _load < 0.1 else capped
    _now += dt
    _load += dt
    return out
class _Matmul:
    fp32_precision = "tf32"
    allow_bf16_reduced_precision_reduction = True
class backends:
    class cuda:
        matmul = _Matmul()
class version:
    cuda = "13.0-fake"
class cuda:
    @staticmethod
    def synchronize():
        global _done
        _done = _recorded
    @staticmethod
    def is_available():
        return True
    @staticmethod
    def get_device_name(_):
        return "Fake H200"
    class Event:
        def __init__(self, enable_timing=False):
            self.t = None
            self.seq = None
        def record(self):
            global _recorded
            _recorded += 1
            self.t, self.seq = _now, _recorded
        def synchronize(self):
            global _done
            if self.seq is not None:
                _done = max(_done, self.seq)
        def elapsed_time(self, end):
            for e in (self, end):
                if e.seq is None or e.seq > _done:
                    raise RuntimeError("CUDA error: device not ready")
            return (end.t - self.t) * 1e3
"#;

/// A bundle folder with the scripts under test and the stand-ins, the H200's results to
/// replay, and a site-packages folder with the CUDA wheels (empty files), which the scripts
/// choose (WATTBENCH_SITE_PACKAGES) and the replayed results name where the H200's named its
/// own.
struct FakeBundle {
    tmp: tempfile::TempDir,
}

impl FakeBundle {
    /// Its runs load one set of CUDA libraries, the wheels the scripts chose.
    fn new() -> FakeBundle {
        FakeBundle::with_libraries(true)
    }

    /// Its runs load the CUDA libraries as the H200's did: the toolkit's and the system's
    /// copies beside the wheels.
    fn with_the_h200s_libraries() -> FakeBundle {
        FakeBundle::with_libraries(false)
    }

    fn with_libraries(one_set: bool) -> FakeBundle {
        let tmp = tempfile::tempdir().unwrap();
        let p = &tmp.path().canonicalize().unwrap();
        for d in [
            "bundle/benchmarks",
            "bin",
            "py/torch",
            "records",
            "fake",
            "work",
            "out",
            "site-packages/nvidia/cu13/lib",
            "site-packages/nvidia/cudnn/lib",
        ] {
            fs::create_dir_all(p.join(d)).unwrap();
        }
        for f in [
            "cu13/lib/libcublas.so.13",
            "cu13/lib/libcublasLt.so.13",
            "cu13/lib/libnvrtc.so.13",
            "cu13/lib/libcudart.so.13",
            "cu13/lib/libcurand.so.10",
            "cudnn/lib/libcudnn.so.9",
        ] {
            fs::write(p.join("site-packages/nvidia").join(f), "").unwrap();
        }
        for s in ["gpu-check.sh", "profile-gemm.sh", "gpu-env.sh"] {
            fs::copy(scripts().join(s), p.join("bundle").join(s)).unwrap();
        }
        for s in ["gpu-check.toml", "hopper-gemm.toml"] {
            fs::copy(
                repo().join("benchmarks").join(s),
                p.join("bundle/benchmarks").join(s),
            )
            .unwrap();
        }
        let exe = |path: PathBuf, text: &str| {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(p.join("bundle/wattbench"), FAKE_WATTBENCH);
        exe(p.join("bundle/wattbench-cuda-gpu-tests"), FAKE_TESTS);
        exe(p.join("bin/nvidia-smi"), FAKE_SMI);
        fs::write(p.join("py/torch/__init__.py"), FAKE_TORCH).unwrap();
        let records = p.join("records");
        for fam in ["gemm", "gemm-wgmma", "gemm-wgmma-c2", "conv2d", "rnn"] {
            let json = format!("gpu-check/gpu-check.{fam}.json");
            fs::copy(h200(&json), records.join(format!("gpu-check.{fam}.json"))).unwrap();
            let txt = format!("gpu-check/run.{fam}.txt");
            fs::copy(h200(&txt), records.join(format!("gpu-check.{fam}.txt"))).unwrap();
        }
        fs::copy(
            h200("profile-gemm/hopper-gemm.json"),
            records.join("hopper-gemm.json"),
        )
        .unwrap();
        fs::copy(
            h200("profile-gemm/run.hopper-gemm.txt"),
            records.join("hopper-gemm.txt"),
        )
        .unwrap();
        // Replayed with this machine's wheels in place of the H200's, and (one_set) as a run
        // with one set of CUDA libraries would write them.
        let sp = p.join("site-packages");
        for e in fs::read_dir(&records).unwrap() {
            let path = e.unwrap().path();
            edit_libraries(&path, |l| {
                Some(l.replace(H200_SITE_PACKAGES, &sp.display().to_string()))
            });
            if one_set {
                one_library_set(&path);
            }
        }
        FakeBundle { tmp }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.tmp.path().canonicalize().unwrap().join(sub)
    }

    /// The run named NAME exits with `rc`, its result file complete or marked interrupted.
    fn run_ends(&self, name: &str, rc: i32, interrupted: bool) {
        fs::write(self.path(&format!("fake/exit.{name}")), rc.to_string()).unwrap();
        if interrupted {
            fs::write(self.path(&format!("fake/interrupted.{name}")), "").unwrap();
        }
    }

    /// `bash bundle/SCRIPT OUT` on the fake GPU.
    fn run(&self, script: &str) -> Output {
        self.run_with(script, &[])
    }

    /// `bash bundle/SCRIPT OUT` on the fake GPU, with the environment variables `envs`.
    fn run_with(&self, script: &str, envs: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.arg(self.path("bundle").join(script))
            .arg(self.path("out"))
            .env("PATH", path)
            .env("PYTHONPATH", self.path("py"))
            .env("WATTBENCH_WORK", self.path("work"))
            .env("WATTBENCH_CACHE", self.path("cache"))
            .env("CUDA_CACHE_PATH", self.path("jit-cache"))
            .env("FAKE_RECORDS", self.path("records"))
            .env("FAKE_DIR", self.path("fake"))
            .env("WATTBENCH_SITE_PACKAGES", self.path("site-packages"));
        for v in [
            "WATTBENCH_GPU_BACKENDS",
            "WATTBENCH_GPU_OPTIONAL",
            "WATTBENCH_CHECK_BUDGET",
            "WATTBENCH_CHECK_JOBS",
            "WATTBENCH_PROFILE_BUDGET",
            "NVIDIA_TF32_OVERRIDE",
        ] {
            c.env_remove(v);
        }
        c.envs(envs.iter().copied());
        c.output().expect("run bash")
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn gpu_check_on_a_fake_gpu_passes_a_suite_run_killed_while_exiting_and_times_torch_sustained() {
    let b = FakeBundle::new();
    b.run_ends("gpu-check.gemm", 124, false);
    let o = b.run("gpu-check.sh");
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let summary = fs::read_to_string(b.path("work/check/summary.txt")).unwrap();
    assert!(
        summary.starts_with("wattbench GPU check: PASSED"),
        "{summary}"
    );
    assert_has(
        line(&summary, "suite gemm:"),
        "finished; killed at its time limit while exiting (all cases written: 8 ok, 0 skipped",
    );

    // What the steps echo of the runs: no line is the tail of a wrapped warning.
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.contains(&"RAPL package counter here)"), "{text}");
    assert!(!lines.contains(&"uncertainty"), "{text}");
    assert_has(
        &text,
        "\nwarning: gpu0: idle power moved from 87.04 W before the run to 142.93 W after it (clocks, \
         temperature or other load changed); the net figures use the mean, with half the difference in \
         their uncertainty\n",
    );

    // Step 3 timed torch's products the way wattbench does, and kept the burst beside it.
    let torch = fs::read_to_string(b.path("work/check/torch.txt")).unwrap();
    let t: serde_json::Value = serde_json::from_str(torch.lines().last().unwrap()).unwrap();
    assert_eq!(
        t["fp32"],
        "torch.backends.cuda.matmul.fp32_precision = 'ieee'"
    );
    assert_eq!(t["bf16_reduced_precision_reduction"], false);
    let gemm = t["gemm"].as_array().unwrap();
    assert_eq!(gemm.len(), 4);
    for g in gemm {
        let s = &g["sustained"];
        assert!(s["warmup_s"].as_f64().unwrap() >= 1.0, "{g}");
        assert!(s["span_s"].as_f64().unwrap() >= 2.0, "{g}");
        assert_eq!(g["burst"]["calls"], 30, "{g}");
    }
    let bf16 = gemm
        .iter()
        .find(|g| g["n"] == 8192 && g["dtype"] == "bf16")
        .unwrap();
    // The simulated GPU's times at its power cap and before it.
    assert!(
        (bf16["sustained"]["median_s"].as_f64().unwrap() - 1.640e-3).abs() < 1e-9,
        "{bf16}"
    );
    assert!(
        (bf16["burst"]["median_s"].as_f64().unwrap() - 1.434e-3).abs() < 1e-9,
        "{bf16}"
    );
    assert_has(
        line(&summary, "torch.mm 8192^3 bf16: sustained 1.640 ms"),
        "wattbench cublas 1.646 ms -> 1.004x (within 5 %)",
    );
    assert_has(
        &summary,
        "burst (5 warm-up calls, then 30 timed) 1.434 ms, 13 % faster than sustained",
    );

    // The summary rewritten from the work folder reaches the run's verdict.
    let (code, again) = rewrite_with(&b.path("bundle/gpu-check.sh"), &b.path("work/check"));
    assert_eq!(code, 0, "{again}");
    assert!(again.starts_with("wattbench GPU check: PASSED"), "{again}");
}

/// The names in the archive TGZ.
fn archive_names(tgz: &Path) -> Vec<String> {
    let o = Command::new("tar").arg("-tzf").arg(tgz).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_archives_leave_out_the_cuda_library_links() {
    // The links are made (the fake wheels chosen), used, and not packed: they point into the
    // GPU machine's folders, and would dangle wherever the archive is unpacked.
    let b = FakeBundle::new();
    let o = b.run("gpu-check.sh");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(fs::read_link(b.path("work/check/cuda-libs/libcublas.so")).is_ok());
    let names = archive_names(&b.path("out/gpu-check.tgz"));
    assert!(names.iter().any(|n| n == "check/env.txt"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("cuda-libs")), "{names:?}");
    let summary = fs::read_to_string(b.path("work/check/summary.txt")).unwrap();
    assert!(!line(&summary, "files (in gpu-check.tgz):").contains("cuda-libs"));

    let o = b.run("profile-gemm.sh");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(fs::read_link(b.path("work/profile/cuda-libs/libcublas.so")).is_ok());
    let names = archive_names(&b.path("out/profile-gemm.tgz"));
    assert!(names.iter().any(|n| n == "profile/env.txt"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("cuda-libs")), "{names:?}");
    let summary = fs::read_to_string(b.path("work/profile/summary.txt")).unwrap();
    assert!(!line(&summary, "files (in profile-gemm.tgz):").contains("cuda-libs"));
}

#[test]
fn runs_on_a_fake_gpu_that_load_the_h200s_mix_exit_1() {
    // Every step passes; the runs' result files show the toolkit's cuBLAS, cuRAND and NVRTC
    // and the system's cuDNN loaded beside the wheels chosen.
    let b = FakeBundle::with_the_h200s_libraries();
    let o = b.run("gpu-check.sh");
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let summary = fs::read_to_string(b.path("work/check/summary.txt")).unwrap();
    assert!(
        summary.starts_with("wattbench GPU check: FAILED"),
        "{summary}"
    );
    let wheels = b.path("site-packages/nvidia/cu13/lib");
    assert_has(
        line(&summary, "    cuBLAS from 2 folders: "),
        &format!(
            "{H200_TOOLKIT} (libcublas.so.13.1.0.3; not the chosen set); {} (libcublas.so.13; \
             the chosen set)",
            wheels.display()
        ),
    );
    line(&summary, "    cuDNN from 2 folders: ");
    line(&summary, "    cuRAND from 2 folders: ");
    assert_has(
        line(&summary, "    NVRTC from outside the chosen set: "),
        &format!(
            "where the chosen set has {}/libnvrtc.so.13",
            wheels.display()
        ),
    );

    let o = b.run("profile-gemm.sh");
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let summary = fs::read_to_string(b.path("work/profile/summary.txt")).unwrap();
    assert!(
        summary.starts_with("wattbench Hopper GEMM profile: FAILED"),
        "{summary}"
    );
    line(&summary, "    cuBLAS from 2 folders: ");
    line(&summary, "    NVRTC from outside the chosen set: ");
}

#[test]
fn gpu_check_on_a_fake_gpu_that_leaves_a_family_out_for_the_budget_exits_3() {
    // 100 s: less than the 10 s the first family (gemm) needs beside the 94 s kept for the
    // families after it and the summary, however fast the steps before it were.
    let b = FakeBundle::new();
    let o = b.run_with("gpu-check.sh", &[("WATTBENCH_CHECK_BUDGET", "100")]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(3), "{text}");
    let summary = fs::read_to_string(b.path("work/check/summary.txt")).unwrap();
    assert!(
        summary.starts_with(
            "wattbench GPU check: INCOMPLETE: passed where run, suite run(s) not run for the budget: gemm"
        ),
        "{summary}"
    );
}

#[test]
fn gpu_check_on_a_fake_gpu_fails_a_suite_run_killed_with_its_file_interrupted() {
    let b = FakeBundle::new();
    b.run_ends("gpu-check.gemm", 124, true);
    let o = b.run("gpu-check.sh");
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let summary = fs::read_to_string(b.path("work/check/summary.txt")).unwrap();
    assert!(
        summary.starts_with("wattbench GPU check: FAILED"),
        "{summary}"
    );
    assert_has(
        line(&summary, "suite gemm:"),
        "time limit: the completed cases are in gpu-check.gemm.json (marked interrupted)",
    );
    let (code, again) = rewrite_with(&b.path("bundle/gpu-check.sh"), &b.path("work/check"));
    assert_eq!(code, 1, "{again}");
    assert!(again.starts_with("wattbench GPU check: FAILED"), "{again}");
}

#[test]
fn profile_on_a_fake_gpu_judges_a_run_killed_at_its_limit_on_its_result_file() {
    let b = FakeBundle::new();
    b.run_ends("hopper-gemm", 124, false);
    let o = b.run("profile-gemm.sh");
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert_has(
        &text,
        "\nfinished; killed at its time limit while exiting (all cases written: 32 ok",
    );
    assert!(!text.contains("(interrupted)"), "{text}");
    let summary = fs::read_to_string(b.path("work/profile/summary.txt")).unwrap();
    assert!(
        summary.starts_with("wattbench Hopper GEMM profile: OK"),
        "{summary}"
    );
    // The suite's limit re-planned from the H200's times: at most 190 s, 45 s kept for ncu.
    assert_has(&summary, "the limit was 190 s");
    assert!(
        !text.lines().any(|l| l == "RAPL package counter here)"),
        "{text}"
    );

    let b = FakeBundle::new();
    b.run_ends("hopper-gemm", 124, true);
    let o = b.run("profile-gemm.sh");
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let summary = fs::read_to_string(b.path("work/profile/summary.txt")).unwrap();
    assert!(
        summary.starts_with("wattbench Hopper GEMM profile: FAILED"),
        "{summary}"
    );
    assert_has(
        &summary,
        "the completed cases are in hopper-gemm.json (marked interrupted)",
    );
}

/// The H200 copy's steps.txt cut after the step named `last`.
fn cut_steps(dir: &Path, last: &str) {
    let steps = fs::read_to_string(dir.join("steps.txt")).unwrap();
    let mut kept = String::new();
    for l in steps.lines() {
        kept += l;
        kept += "\n";
        if l.starts_with(&format!("{last}:")) {
            break;
        }
    }
    fs::write(dir.join("steps.txt"), kept).unwrap();
}

/// Removes DIR's files whose names satisfy `gone`.
fn remove_files(dir: &Path, gone: impl Fn(&str) -> bool) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if gone(&e.file_name().to_string_lossy()) {
            fs::remove_file(e.path()).unwrap();
        }
    }
}

#[test]
fn gpu_check_rewrite_of_a_run_cut_after_step_5_is_incomplete_not_passed() {
    // The H200 folder as if the run had stopped after the checks: no suites, no sanitizer; its
    // summary.txt (the final one, PASSED) left as it was.
    let (_tmp, dir) = h200_copy("gpu-check");
    cut_steps(&dir, "checks");
    remove_files(&dir, |f| {
        f.starts_with("gpu-check.") || f.starts_with("run.") || f == "suite-status.txt"
    });
    let tests = fs::read_to_string(dir.join("tests.txt")).unwrap();
    let cut = &tests[..tests.find("## 7.").unwrap()];
    fs::write(dir.join("tests.txt"), cut).unwrap();
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.starts_with(
            "wattbench GPU check: INCOMPLETE, the records end after step checks (steps.txt has no \
             sanitizer step): no verdict"
        ),
        "{text}"
    );
    // Rewritten again: the same (the summary it wrote says INCOMPLETE).
    let (code, again) = rewrite("gpu-check.sh", &dir);
    assert_eq!((code, again.lines().next()), (3, text.lines().next()));
}

#[test]
fn gpu_check_with_a_suite_family_left_out_for_the_budget_is_incomplete() {
    let (_tmp, dir) = h200_copy("gpu-check");
    let status = fs::read_to_string(dir.join("suite-status.txt")).unwrap();
    let status = status.replace(
        "rnn\tok in 47 s\n",
        "rnn\tSKIPPED: the time budget is spent (8 s left, 10 s kept for what follows)\tnot-run\n",
    );
    fs::write(dir.join("suite-status.txt"), status).unwrap();
    fs::remove_file(dir.join("gpu-check.rnn.json")).unwrap();
    let (code, text) = rewrite("gpu-check.sh", &dir);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.starts_with(
            "wattbench GPU check: INCOMPLETE: passed where run, suite run(s) not run for the budget: rnn"
        ),
        "{text}"
    );
}

#[test]
fn profile_rewrite_of_a_run_cut_short_is_incomplete_on_its_gpu() {
    // Stopped after its suite: no ncu step.
    let (_tmp, dir) = h200_copy("profile-gemm");
    cut_steps(&dir, "suite-hopper-gemm");
    fs::remove_file(dir.join("ncu.txt")).unwrap();
    let (code, text) = rewrite("profile-gemm.sh", &dir);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.starts_with(
            "wattbench Hopper GEMM profile: INCOMPLETE, the records end after step \
             suite-hopper-gemm (steps.txt has no ncu step): no verdict"
        ),
        "{text}"
    );

    // Stopped after the wgmma checks, nothing else recorded: still the H200's run, not a dry
    // run (its summary.txt, written at every step, gave no dry run's verdict).
    let (_tmp, dir) = h200_copy("profile-gemm");
    cut_steps(&dir, "wgmma-checks");
    remove_files(&dir, |f| {
        f.ends_with(".json") || f.starts_with("run.") || f == "ncu.txt"
    });
    let (code, text) = rewrite("profile-gemm.sh", &dir);
    assert_eq!(code, 3, "{text}");
    let verdict = line(&text, "wattbench Hopper GEMM profile:");
    assert_has(
        verdict,
        "INCOMPLETE, the records end after step wgmma-checks",
    );
    assert!(
        !verdict.contains("dry run") && !verdict.contains("DRY RUN"),
        "{text}"
    );
    // A dry run's records say so.
    fs::write(
        dir.join("summary.txt"),
        "wattbench Hopper GEMM profile: DRY RUN, NOTHING MEASURED (no GPU on this machine), 3 s\n",
    )
    .unwrap();
    let (_, text) = rewrite("profile-gemm.sh", &dir);
    assert_has(line(&text, "wattbench Hopper GEMM profile:"), "; a dry run");
}

/// `wb_judge_run gemm RC FILE 50 GPU` of gpu-env.sh on DIR/gpu-check.gemm.json, its output in
/// DIR/run.gemm.txt: "pass|fail|skip<TAB>message".
fn judge(dir: &Path, rc: i32, gpu: bool) -> String {
    let o = Command::new("bash")
        .arg("-c")
        .arg(r#". "$1" && wb_judge_run gemm "$2" "$3" 50 "$4" 50"#)
        .arg("bash")
        .arg(scripts().join("gpu-env.sh"))
        .arg(rc.to_string())
        .arg(dir.join("gpu-check.gemm.json"))
        .arg(if gpu { "1" } else { "0" })
        .env("CUDA_CACHE_PATH", dir.join("jit-cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

/// DIR with the H200's gemm result file, its cases passed through `edit`, and its output with
/// the count line of what is left (and `tail` after it).
fn gemm_run(edit: impl Fn(&mut Vec<serde_json::Value>), tail: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(h200("gpu-check/gpu-check.gemm.json")).unwrap())
            .unwrap();
    edit(doc["cases"].as_array_mut().unwrap());
    let n = |s: &str| {
        doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == s)
            .count()
    };
    let log = fs::read_to_string(h200("gpu-check/run.gemm.txt")).unwrap();
    let log = log.replace(
        "8 ok, 0 skipped, 0 failed in 39.5 s",
        &format!(
            "{} ok, {} skipped, {} failed in 39.5 s",
            n("ok"),
            n("skipped"),
            n("failed")
        ),
    ) + tail;
    fs::write(tmp.path().join("gpu-check.gemm.json"), doc.to_string()).unwrap();
    fs::write(tmp.path().join("run.gemm.txt"), log).unwrap();
    tmp
}

#[test]
fn a_run_killed_while_exiting_is_judged_on_its_cases_and_its_output() {
    // Every case written, all ok: a pass, at 124 and at 137 alike.
    let run = gemm_run(|_| {}, "");
    for rc in [124, 137] {
        assert!(
            judge(run.path(), rc, true).starts_with(
                "pass\tfinished; killed at its time limit while exiting (all cases written: 8 ok"
            ),
            "{rc}"
        );
    }
    // A failed case.
    let run = gemm_run(|cs| cs[0]["status"] = "failed".into(), "");
    let v = judge(run.path(), 124, true);
    assert!(
        v.starts_with("fail\tFAILED: 1 case(s) failed verification"),
        "{v}"
    );
    // Every case skipped, on a GPU.
    let run = gemm_run(
        |cs| cs.iter_mut().for_each(|c| c["status"] = "skipped".into()),
        "",
    );
    let v = judge(run.path(), 137, true);
    assert!(
        v.starts_with("fail\tFAILED: nothing ran, every case was skipped"),
        "{v}"
    );
    // A backend panicked: the file is not marked interrupted, but 3 of the 8 cases are missing.
    let run = gemm_run(
        |cs| cs.truncate(5),
        "Error: internal error: a backend panicked; the 5 completed cases were written to x.json\n",
    );
    let v = judge(run.path(), 124, true);
    assert!(
        v.starts_with("fail\thit its 50 s time limit; gpu-check.gemm.json is not marked interrupted, but run.gemm.txt shows a run that did not finish: a backend panicked"),
        "{v}"
    );
    // The same without the panic's line: the cases announced ([i/8]) are not all in the file.
    let run = gemm_run(|cs| cs.truncate(5), "");
    let v = judge(run.path(), 124, true);
    assert!(v.ends_with("it announced 8 cases, its file has 5"), "{v}");
}

#[test]
fn a_burst_faster_than_sustained_is_put_down_to_the_power_cap_only_where_this_run_saw_it() {
    let (_tmp, dir) = h200_copy("gpu-check");
    fs::write(dir.join("torch.txt"), torch_txt(1.640e-3)).unwrap();
    // No throttle reason sw_power_cap recorded in this run (energy truth's, the suites').
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = fs::read_to_string(&p).unwrap();
            fs::write(&p, text.replace("\"sw_power_cap\"", "\"hw_slowdown\"")).unwrap();
        }
    }
    let (_, text) = rewrite("gpu-check.sh", &dir);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("  torch.mm 8192^3 bf16: sustained"))
        .unwrap();
    assert_has(
        lines[at + 1],
        "1.430 ms, 13 % faster than sustained (unexplained here: this run recorded no sw_power_cap throttling)",
    );
    assert!(!text.contains("power cap during a burst"), "{text}");
}

/// A site-packages folder `sp` with CUDA 13 wheels, versioned files only as pip installs them,
/// but for the files named in `without`: its (nvidia/cu13/lib, nvidia/cudnn/lib).
fn fake_wheels(sp: &Path, without: &[&str]) -> (PathBuf, PathBuf) {
    let cu13 = sp.join("nvidia/cu13/lib");
    let cudnn = sp.join("nvidia/cudnn/lib");
    fs::create_dir_all(&cu13).unwrap();
    fs::create_dir_all(&cudnn).unwrap();
    let files = [
        (&cu13, "libcublas.so.13"),
        (&cu13, "libcublasLt.so.13"),
        (&cu13, "libnvrtc.so.13"),
        (&cu13, "libcudart.so.13"),
        (&cu13, "libcurand.so.10"),
        (&cudnn, "libcudnn.so.9"),
    ];
    for (dir, f) in files.into_iter().filter(|(_, f)| !without.contains(f)) {
        fs::write(dir.join(f), "").unwrap();
    }
    (cu13, cudnn)
}

#[test]
fn the_chosen_wheels_get_unversioned_links_first_on_the_library_path() {
    let tmp = tempfile::tempdir().unwrap();
    let sp = tmp.path().canonicalize().unwrap().join("site-packages");
    let (cu13, cudnn) = fake_wheels(&sp, &[]);
    let links = sp.parent().unwrap().join("work/cuda-libs");
    let o = Command::new("bash")
        .arg("-c")
        .arg(r#". "$1" && wb_cuda_libs "$2" && echo "kind=$kind" && echo "path=$LD_LIBRARY_PATH" && wb_cuda_resolve"#)
        .arg("bash")
        .arg(scripts().join("gpu-env.sh"))
        .arg(&links)
        .env("WATTBENCH_SITE_PACKAGES", &sp)
        .env("LD_LIBRARY_PATH", "/elsewhere")
        .env("CUDA_CACHE_PATH", tmp.path().join("jit-cache"))
        .output()
        .unwrap();
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.lines().any(|l| l == "kind=wheels"), "{text}");
    assert_has(
        &text,
        &format!(
            "\npath={}:{}:{}",
            links.display(),
            cu13.display(),
            cudnn.display()
        ),
    );
    for (link, target) in [
        ("libcublas.so", cu13.join("libcublas.so.13")),
        ("libcublasLt.so", cu13.join("libcublasLt.so.13")),
        ("libnvrtc.so", cu13.join("libnvrtc.so.13")),
        ("libcudart.so", cu13.join("libcudart.so.13")),
        ("libcurand.so", cu13.join("libcurand.so.10")),
        ("libcudnn.so", cudnn.join("libcudnn.so.9")),
    ] {
        assert_eq!(fs::read_link(links.join(link)).unwrap(), target, "{link}");
    }
    // The inventory resolves the name cudarc asks first, through the links.
    assert_has(
        &text,
        &format!(
            "resolves: libcublas.so else libcublas.so.13 -> {} (libcublas.so in {})",
            cu13.join("libcublas.so.13").display(),
            links.display()
        ),
    );
    assert_has(
        &text,
        &format!(
            "resolves: libcudnn.so else libcudnn.so.9 -> {} (libcudnn.so in {})",
            cudnn.join("libcudnn.so.9").display(),
            links.display()
        ),
    );
}

/// `wb_cuda_libs LINKS` of gpu-env.sh after `prelude` (bash run after sourcing it), with
/// `envs` set: its output, then "kind=", "path=" ($LD_LIBRARY_PATH, /elsewhere before) and
/// wb_cuda_chosen's lines.
fn cuda_libs(prelude: &str, links: &Path, envs: &[(&str, &Path)]) -> String {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!(
            r#". "$1" && {prelude}
wb_cuda_libs "$2" && echo "kind=$kind" && echo "path=$LD_LIBRARY_PATH" && wb_cuda_chosen"#
        ))
        .arg("bash")
        .arg(scripts().join("gpu-env.sh"))
        .arg(links)
        .env("LD_LIBRARY_PATH", "/elsewhere")
        .env("CUDA_CACHE_PATH", links.with_file_name("jit-cache"))
        .env_remove("WATTBENCH_SITE_PACKAGES");
    for (k, v) in envs {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    text
}

#[test]
fn wheels_without_curand_get_the_other_links_first_on_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let sp = tmp.path().canonicalize().unwrap().join("site-packages");
    // curand, the last name linked, left out.
    let (cu13, cudnn) = fake_wheels(&sp, &["libcurand.so.10"]);
    let links = sp.parent().unwrap().join("work/cuda-libs");
    let text = cuda_libs("", &links, &[("WATTBENCH_SITE_PACKAGES", &sp)]);
    assert!(text.lines().any(|l| l == "kind=wheels"), "{text}");
    assert_has(
        &text,
        &format!(
            "\npath={}:{}:{}",
            links.display(),
            cu13.display(),
            cudnn.display()
        ),
    );
    for (link, target) in [
        ("libcublas.so", cu13.join("libcublas.so.13")),
        ("libcublasLt.so", cu13.join("libcublasLt.so.13")),
        ("libnvrtc.so", cu13.join("libnvrtc.so.13")),
        ("libcudart.so", cu13.join("libcudart.so.13")),
        ("libcudnn.so", cudnn.join("libcudnn.so.9")),
    ] {
        assert_eq!(fs::read_link(links.join(link)).unwrap(), target, "{link}");
    }
    assert!(fs::symlink_metadata(links.join("libcurand.so")).is_err());
    assert_has(
        &text,
        &format!(
            "\ncuda library links: {} (unversioned names, first on LD_LIBRARY_PATH)\n",
            links.display()
        ),
    );
    assert_has(
        &text,
        &format!(
            "\ncuda library chosen: libcublas.so -> {}\n",
            cu13.join("libcublas.so.13").display()
        ),
    );
    assert_has(
        &text,
        "\ncuda library not linked: curand (not in the chosen set",
    );
}

#[test]
fn the_toolkit_set_gets_the_systems_cudnn_linked_beside_it() {
    // A toolkit's folder (fuller versions, as the toolkit installs them), no wheels, and cuDNN 9
    // where the system keeps it: found through ld.so.cache, else among the usual folders.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let toolkit = root.join("cuda/lib64");
    let system = root.join("usr/lib");
    fs::create_dir_all(&toolkit).unwrap();
    fs::create_dir_all(&system).unwrap();
    for f in [
        "libcublas.so.13.1.0.3",
        "libcublasLt.so.13.1.0.3",
        "libnvrtc.so.13.0.88",
        "libcudart.so.13.0.96",
        "libcurand.so.10.4.0.35",
    ] {
        fs::write(toolkit.join(f), "").unwrap();
    }
    fs::write(system.join("libcudnn.so.9.14.0"), "").unwrap();
    std::os::unix::fs::symlink("libcudnn.so.9.14.0", system.join("libcudnn.so.9")).unwrap();
    let links = root.join("work/cuda-libs");
    let no_wheels = r#"wb_site_packages() { :; }; wb_toolkit_dirs=$TOOLKIT;"#;
    let cache = r#"ldconfig() { printf '\tlibcudnn.so.9 (libc6,x86-64) => %s/libcudnn.so.9\n' "$SYSTEM"; }; wb_cudnn_dirs="";"#;
    let usual = r#"ldconfig() { :; }; wb_cudnn_dirs="/nowhere $SYSTEM";"#;
    for how in [cache, usual] {
        let text = cuda_libs(
            &format!("{no_wheels} {how}"),
            &links,
            &[("TOOLKIT", &toolkit), ("SYSTEM", &system)],
        );
        assert!(text.lines().any(|l| l == "kind=toolkit"), "{text}");
        // The system's folder is linked, not put on the path (it would override the set).
        assert_has(
            &text,
            &format!(
                "\npath={}:{}:/elsewhere\n",
                links.display(),
                toolkit.display()
            ),
        );
        assert_eq!(
            fs::read_link(links.join("libcudnn.so")).unwrap(),
            system.join("libcudnn.so.9"),
            "{how}"
        );
        assert_eq!(
            fs::read_link(links.join("libcublas.so")).unwrap(),
            toolkit.join("libcublas.so.13.1.0.3")
        );
        assert_has(
            &text,
            &format!(
                "\ncuda library chosen: libcudnn.so -> {}\n",
                system.join("libcudnn.so.9.14.0").display()
            ),
        );
        assert!(!text.contains("not linked"), "{text}");
    }
}
