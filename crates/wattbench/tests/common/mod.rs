//! What the CLI test files share: running the binary, a tiny suite, quick runs.
#![allow(dead_code)]
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

/// Settings a user may have exported that change what the binary reads or records; the
/// tests set them themselves where they test them.
const USER_SETTINGS: [&str; 4] = [
    "WATTBENCH_HISTORY",
    "WATTBENCH_NODE_NAME",
    "WATTBENCH_CARBON_TABLE",
    "WATTBENCH_POWERCAP_ROOT",
];

/// Runs `wattbench ARGS` to completion.
pub fn wattbench(args: &[&str]) -> Output {
    command().args(args).output().expect("spawn wattbench")
}

/// A command for the binary, to configure before spawning, without the user's settings.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wattbench"));
    for v in USER_SETTINGS {
        c.env_remove(v);
    }
    c
}

/// The binary's command with SIGHUP at `disposition` (SIG_DFL, SIG_IGN as `nohup` leaves it)
/// whatever this test process has (CI runs the tests under `nohup`).
pub fn with_sighup(disposition: libc::sighandler_t) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = command();
    // SAFETY: signal(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGHUP, disposition);
            Ok(())
        })
    };
    c
}

/// Every timing figure of every case of `doc` multiplied by `k` (samples, summaries, interval).
pub fn scale_times(doc: &mut Value, k: f64) {
    for c in doc["cases"].as_array_mut().unwrap() {
        let Some(t) = c["time"].as_object_mut() else {
            continue;
        };
        for (key, v) in t.iter_mut() {
            match v {
                Value::Number(n) if key != "iters_per_sample" => {
                    *v = (n.as_f64().unwrap() * k).into();
                }
                Value::Array(a) => {
                    for x in a.iter_mut().filter(|x| x.is_number()) {
                        *x = (x.as_f64().unwrap() * k).into();
                    }
                }
                _ => {}
            }
        }
    }
}

/// Its standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Its standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Fails unless `text` contains `want`, showing the text.
pub fn assert_contains(text: &str, want: &str) {
    assert!(text.contains(want), "wanted {want:?} in:\n{text}");
}

/// Exit 2 (a usage error), `needle` in the message, and no panic.
pub fn usage_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_contains(&err, needle);
    assert!(!err.contains("panicked"), "{err}");
}

/// The JSON document in the file at `p`.
pub fn read_json(p: impl AsRef<Path>) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// One small case of each op.
pub const TINY: &str = r#"
name = "tiny"
dtypes = ["f32"]
gemm = [ { tag = "g", m = 19, n = 7, k = 33, trans_b = true } ]
conv2d = [ { n = 1, c = 2, h = 8, w = 9, k = 3, r = 3, s = 3, pad_h = 1, pad_w = 1 } ]
rnn = [ { cell = "gru", hidden = 6, batch = 2, steps = 3 } ]
"#;

/// Writes [`TINY`] into `dir`; its path.
pub fn tiny_suite(dir: &Path) -> String {
    let p = dir.join("tiny.toml");
    std::fs::write(&p, TINY).unwrap();
    p.to_string_lossy().into_owned()
}

/// Options that make a run quick.
pub const FAST: [&str; 6] = ["--min-time", "0", "--min-samples", "3", "--warmup", "0"];

/// `wattbench run --suite SUITE` to `out`, quickly, with `extra` options; its output and the
/// result document, when one was written.
pub fn run_quick(suite: &str, out: &Path, extra: &[&str]) -> (Output, Option<Value>) {
    run_quick_with(command(), suite, out, extra)
}

/// [`run_quick`] by the command `c`.
fn run_quick_with(
    mut c: Command,
    suite: &str,
    out: &Path,
    extra: &[&str],
) -> (Output, Option<Value>) {
    let mut args = vec!["run", "--suite", suite, "--output", out.to_str().unwrap()];
    args.extend(FAST);
    args.extend(extra);
    let o = c.args(&args).output().expect("spawn wattbench");
    let doc = std::fs::read_to_string(out)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (o, doc)
}

/// [`run_quick`] of the tiny suite (written into `dir`) to `dir/<out>`.
pub fn run_tiny(dir: &Path, out: &str, extra: &[&str]) -> (Output, Option<Value>) {
    run_quick(&tiny_suite(dir), &dir.join(out), extra)
}

/// The sizes of a `ceilings` measurement of the CPU in under a second.
pub const SMALL_CEILINGS: [&str; 8] = [
    "--gemm-size",
    "32",
    "--copy-mib",
    "1",
    "--copies",
    "1",
    "--dtype",
    "f32",
];

/// A small `ceilings --quick` of the CPU at `out` (under a second).
pub fn quick_ceilings(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["ceilings", "--quick"];
    args.extend(SMALL_CEILINGS);
    args.extend(["--output", out.to_str().unwrap()]);
    args.extend(extra);
    wattbench(&args)
}

/// [`command`] with every GPU hidden from CUDA and from the metering (an empty
/// `CUDA_VISIBLE_DEVICES`), for tests of what a machine without a GPU shows: the GPU backends
/// are skipped with their reason on any machine.
pub fn without_gpus() -> Command {
    let mut c = command();
    c.env("CUDA_VISIBLE_DEVICES", "");
    c
}

/// [`run_tiny`] with every GPU hidden ([`without_gpus`]).
pub fn run_tiny_without_gpus(dir: &Path, out: &str, extra: &[&str]) -> (Output, Option<Value>) {
    run_quick_with(without_gpus(), &tiny_suite(dir), &dir.join(out), extra)
}

/// Whether `p` is still a character device (not replaced by a regular file).
pub fn is_char_device(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
}

/// A quick `wattbench train`: the tiny MLP for 3 steps.
pub const TRAIN_TINY: [&str; 7] = ["train", "--model", "mlp", "--size", "tiny", "--steps", "3"];

/// [`TRAIN_TINY`] with the result written to `out`.
pub fn train_tiny(out: &str) -> Output {
    wattbench(&[&TRAIN_TINY[..], &["--output", out]].concat())
}

/// `run` of the reference GEMM cases of `suite`; add the rest.
pub fn reference_gemm_args(suite: &str) -> Vec<&str> {
    vec![
        "run",
        "--suite",
        suite,
        "--backend",
        "reference",
        "--op",
        "gemm",
    ]
}

/// [`reference_gemm_args`], quickly; add `--output` and the rest.
pub fn reference_gemm(suite: &str) -> Vec<&str> {
    let mut a = reference_gemm_args(suite);
    a.extend(FAST);
    a
}

/// `c` (from [`command`]) made `wattbench run` of a fast case, then a recurrence whose single
/// f64 reference call takes minutes, on the reference backend, writing `out` (its suite in
/// `dir`).
pub fn slow_run(mut c: Command, dir: &Path, out: &Path) -> Command {
    let suite = dir.join("slow.toml");
    std::fs::write(
        &suite,
        "gemm = [ { m = 8, n = 8, k = 8 } ]\nrnn = [ { cell = \"lstm\", hidden = 1024, batch = 64, steps = 100 } ]\n",
    )
    .unwrap();
    c.args([
        "run",
        "--suite",
        suite.to_str().unwrap(),
        "--backend",
        "reference",
    ])
    .args(FAST)
    .args(["--output", out.to_str().unwrap()]);
    c
}

/// Starts the [`slow_run`] by `c`; returns once the first case is done (on any machine's
/// speed: its progress line is out), the second then computing. The child, and the thread that
/// collects its standard error.
pub fn start_slow_run(c: Command, dir: &Path, out: &Path) -> (Child, JoinHandle<String>) {
    let mut child = slow_run(c, dir, out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stderr.take().unwrap();
    let (first_done, done) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if line.starts_with("[1/2]") {
                let _ = first_done.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if done.recv_timeout(Duration::from_secs(300)).is_err() {
        let _ = child.kill();
        panic!(
            "the first case never completed:\n{}",
            reader.join().unwrap()
        );
    }
    (child, reader)
}
