//! What the CLI test files share: running the binary, a tiny suite, quick runs.
#![allow(dead_code)]
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `wattbench ARGS` to completion.
pub fn wattbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wattbench"))
        .args(args)
        .output()
        .expect("spawn wattbench")
}

/// A command for the binary, to configure before spawning.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wattbench"))
}

/// Its standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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

/// `wattbench run` of the tiny suite (written into `dir`) to `dir/<out>`, quickly, with
/// `extra` options; its output and the result document, when one was written.
pub fn run_tiny(dir: &Path, out: &str, extra: &[&str]) -> (Output, Option<Value>) {
    let suite = tiny_suite(dir);
    let out = dir.join(out);
    let mut args = vec!["run", "--suite", &suite, "--output", out.to_str().unwrap()];
    args.extend(FAST);
    args.extend(extra);
    let o = wattbench(&args);
    let doc = std::fs::read_to_string(&out)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (o, doc)
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

/// `run` of the reference GEMM cases of `suite`, quickly; add `--output` and the rest.
pub fn reference_gemm(suite: &str) -> Vec<&str> {
    let mut a = vec![
        "run",
        "--suite",
        suite,
        "--backend",
        "reference",
        "--op",
        "gemm",
    ];
    a.extend(FAST);
    a
}
