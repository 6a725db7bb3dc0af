//! `wattbench ceilings` and `report --format html` on real files: a small suite run three
//! times into a history, a `measure` trace, a training run, the machine's ceilings and a
//! second machine's copy of a run; every section and plot is checked, and the page is opened
//! in headless Chromium (Debian's `chromium`, installed by `make test`), which must render it
//! without a console message and take a screenshot. Also the terminal table of `run`: it fits
//! 100 columns and keeps every reason whole.
mod common;

use common::{
    assert_contains, command, quick_ceilings, read_json, run_tiny_without_gpus, scale_times,
    stderr, stdout, tiny_suite, usage_error, wattbench, without_gpus, FAST, SMALL_CEILINGS,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The section ids of the page, in order.
const SECTIONS: [&str; 7] = [
    "summary", "roofline", "backends", "traces", "trend", "hardware", "carbon",
];

/// The HTML of section `id` (up to the next section).
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = html[start + 1..]
        .find("<section ")
        .map_or(html.len(), |e| start + 1 + e);
    &html[start..end]
}

/// `s` as the report escapes text.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Runs `wattbench ARGS`, which must succeed.
fn ok(args: &[&str]) {
    let o = wattbench(args);
    assert!(
        o.status.success(),
        "wattbench {args:?}: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
}

/// Every input of the report, made in `dir`: (result files, measure report, ceilings, db).
fn inputs(dir: &Path) -> (Vec<PathBuf>, PathBuf, PathBuf, PathBuf) {
    let suite = tiny_suite(dir);
    let db = dir.join("history.sqlite");
    let mut runs = Vec::new();
    for i in 1..=3 {
        let out = dir.join(format!("run{i}.json"));
        let mut args = vec![
            "run",
            "--suite",
            &suite,
            "--backend",
            "reference,candle,cuda",
            "--output",
            out.to_str().unwrap(),
            "--record",
            db.to_str().unwrap(),
        ];
        args.extend(FAST);
        // GPUs hidden: the cuda backend is skipped with its reason on any machine.
        let o = without_gpus().args(&args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        runs.push(out);
    }
    let train = dir.join("train.json");
    ok(&[
        "train",
        "--model",
        "mlp",
        "--size",
        "tiny",
        "--steps",
        "5",
        "--output",
        train.to_str().unwrap(),
    ]);
    runs.push(train);
    let measure = dir.join("measure.json");
    ok(&[
        "measure",
        "--output",
        measure.to_str().unwrap(),
        "--",
        "sleep",
        "1",
    ]);
    assert!(dir.join("measure.trace.csv").is_file());
    let ceilings = dir.join("ceilings.json");
    ok(&[
        "ceilings",
        "--quick",
        "--gemm-size",
        "128",
        "--copy-mib",
        "16",
        "--output",
        ceilings.to_str().unwrap(),
    ]);
    (runs, measure, ceilings, db)
}

/// A copy of the result file `from` as if made on another machine (another CPU model).
fn other_machine(from: &Path, to: &Path) {
    let mut doc: Value = read_json(from);
    doc["environment"]["host"]["cpu_model"] = "Imaginary CPU 9000".into();
    std::fs::write(to, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

#[test]
fn ceilings_measures_bandwidth_and_peak_gemm_per_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.json");
    ok(&[
        "ceilings",
        "--quick",
        "--gemm-size",
        "96",
        "--copy-mib",
        "8",
        "--dtype",
        "f32",
        "--output",
        out.to_str().unwrap(),
    ]);
    let doc = read_json(&out);
    assert_eq!(doc["schema_version"], 1);
    let cpu = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "cpu")
        .expect("the CPU is measured");
    let mem = &cpu["memory"];
    assert!(mem["best_gbytes_per_s"].as_f64().unwrap() > 0.0, "{mem}");
    // Read + written: twice the buffer per copy.
    assert_eq!(
        mem["bytes_counted"].as_u64(),
        mem["bytes_per_copy"].as_u64().map(|b| 2 * b)
    );
    let peak = &cpu["peak_gflops"]["f32"];
    assert!(peak["gflops_per_s"].as_f64().unwrap() > 0.0, "{peak}");
    assert_ne!(
        peak["backend"], "reference",
        "the oracle is not a contender"
    );
    // The peak is the best verified GEMM among those recorded.
    let best = cpu["gemm"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "ok" && r["dtype"] == "f32")
        .map(|r| r["throughput"]["gflops_per_s"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(peak["gflops_per_s"].as_f64().unwrap(), best);
    // A second measurement to the same file replaces it, a bad option changes nothing.
    let before = std::fs::read(&out).unwrap();
    let o = wattbench(&["ceilings", "--copy-mib", "0", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn html_report_has_every_section_and_plot_and_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut files, measure, ceilings, db) = inputs(d);
    let other = d.join("other-machine.json");
    other_machine(&files[0], &other);
    files.push(other);
    let html_path = d.join("report.html");
    let mut args: Vec<&str> = vec!["report", "--format", "html", "-o"];
    args.push(html_path.to_str().unwrap());
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend([
        measure.to_str().unwrap(),
        "--ceilings",
        ceilings.to_str().unwrap(),
        "--history",
        db.to_str().unwrap(),
    ]);
    ok(&args);
    let html = std::fs::read_to_string(&html_path).unwrap();

    // Self-contained: no script, nothing fetched, a policy that forbids fetching.
    assert!(!html.contains("<script"), "a script in the report");
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(fetch), "the report fetches: {fetch}");
    }
    assert_contains(&html, "Content-Security-Policy");
    // Every section, in order.
    let at: Vec<usize> = SECTIONS
        .iter()
        .map(|id| html.find(&format!("<section id=\"{id}\"")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "sections out of order");

    // Summary: every case's verification, and the full reason of the skipped ones.
    let summary = section(&html, "summary");
    let run1 = read_json(&files[0]);
    let cases = run1["cases"].as_array().unwrap();
    let skipped: Vec<&Value> = cases.iter().filter(|c| c["status"] == "skipped").collect();
    assert!(!skipped.is_empty(), "the cuda backend is skipped here");
    for c in cases {
        assert_contains(summary, c["id"].as_str().unwrap());
    }
    for c in &skipped {
        let reason = c["reason"].as_str().unwrap();
        assert!(
            reason.len() > 60,
            "a long reason, to see it whole: {reason}"
        );
        assert_contains(summary, &escaped(reason));
    }

    // Roofline: a plot for the CPU under its measured roofs, a marker per backend that ran.
    let roof = section(&html, "roofline");
    assert_contains(roof, "<svg");
    assert_contains(roof, "roofline: cpu");
    assert_contains(roof, "f32 roof");
    assert_contains(roof, "GB/s (slope)");
    for backend in ["reference", "candle"] {
        assert_contains(roof, &format!(">{backend}<"));
    }
    // Backends: throughput and energy efficiency per op, with where each figure comes from.
    let backends = section(&html, "backends");
    for op in ["gemm", "conv2d", "rnn"] {
        assert_contains(backends, &format!("{op} infer: throughput"));
        assert_contains(backends, &format!("{op} infer: energy efficiency"));
    }
    assert_contains(backends, "estimated: outlined");
    assert_contains(backends, "J net (above idle)");
    // GFLOP/J bars carry the energy's interval.
    assert_contains(backends, " – ");
    // Traces: the measure report's power and memory, the training run's loss.
    let traces = section(&html, "traces");
    assert_contains(traces, "measure: power");
    assert_contains(traces, "measure: memory");
    assert_contains(traces, ": loss");
    assert!(traces.matches("<svg").count() >= 3);
    // A model's power line is labelled as one.
    for d in read_json(&measure)["domains"].as_array().unwrap() {
        if d["source"] == "estimated" {
            let name = d["name"].as_str().unwrap();
            assert_contains(traces, &format!("{name} (estimated)"));
        }
    }
    // Trend: one plot per case from the three recorded runs.
    let trend = section(&html, "trend");
    assert_contains(trend, "3 runs recorded");
    let ran = cases.iter().filter(|c| c["status"] == "ok").count();
    assert!(trend.matches("<svg").count() >= ran, "{ran} cases");
    // Cross-hardware: both machines named, and a plot of the cases they share.
    let hw = section(&html, "hardware");
    assert_contains(hw, "Imaginary CPU 9000");
    assert_contains(hw, "<svg");
    // Carbon: the figures and their assumptions.
    let carbon = section(&html, "carbon");
    for want in ["gCO2e/kWh", "PUE", "intensity source"] {
        assert_contains(carbon, want);
    }
    assert!(!carbon.contains("PARTIAL"), "{carbon}");

    browser_check(&html_path, d);

    // A measure report whose total lacks a domain: each carbon figure says so where it is.
    let mut doc = read_json(&measure);
    doc["total"]["missing"] = serde_json::json!(["gpu0"]);
    std::fs::write(&measure, doc.to_string()).unwrap();
    let partial = d.join("partial.html");
    ok(&[
        "report",
        "--format",
        "html",
        "-o",
        partial.to_str().unwrap(),
        measure.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&partial).unwrap();
    let carbon = section(&html, "carbon");
    assert!(
        carbon.matches("PARTIAL: without gpu0").count() >= 2,
        "the energy and what is computed from it: {carbon}"
    );
}

/// Headless Chromium, as the machine's probe starts it: no background networking; shared
/// memory in /tmp, not /dev/shm (a container's 64 MB /dev/shm crashes a tall screenshot).
fn chromium(page: &Path, png: &Path, profile: &Path) -> String {
    let exe = std::env::var("WATTBENCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let o = Command::new(&exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {exe}: {e}. The browser check needs Debian's chromium: `make \
                 browser` installs it (or set WATTBENCH_CHROMIUM to a Chromium binary)"
            )
        });
    assert!(o.status.success(), "{exe}: {}", stderr(&o));
    stderr(&o)
}

/// Console messages in Chromium's log.
fn console_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

fn browser_check(page: &Path, dir: &Path) {
    // The check itself can fail: a page that fetches an image logs a console error.
    let control = dir.join("fetches.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'\"></head><body><img src=\"http://127.0.0.1:9/x.png\">\
         </body></html>",
    )
    .unwrap();
    let log = chromium(&control, &dir.join("control.png"), &dir.join("profile"));
    assert!(
        !console_lines(&log).is_empty(),
        "the console check sees nothing:\n{log}"
    );

    let png = dir.join("report.png");
    let log = chromium(page, &png, &dir.join("profile"));
    let console = console_lines(&log);
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    let shot = std::fs::read(&png).expect("a screenshot");
    assert_eq!(&shot[1..4], b"PNG");
    // A rendered page of tables and plots, not a blank one: a blank PNG compresses to a few KB.
    assert!(shot.len() > 50_000, "screenshot of {} bytes", shot.len());
    if let Ok(keep) = std::env::var("WATTBENCH_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}

#[test]
fn run_table_fits_100_columns_keeps_reasons_whole_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) = run_tiny_without_gpus(dir.path(), "r.json", &["--backend", "reference,cuda"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for line in out.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.len()
        );
    }
    let doc = doc.unwrap();
    let cases = doc["cases"].as_array().unwrap();
    // Each reason whole, wrapped at spaces under its number.
    let unwrapped: String = out.split_whitespace().collect();
    for c in cases.iter().filter(|c| c["status"] == "skipped") {
        let reason: String = c["reason"].as_str().unwrap().split_whitespace().collect();
        assert_contains(&unwrapped, &format!("]{reason}"));
    }
    assert_contains(&out, "skipped [");
    // Not a terminal: a line per case on stderr.
    let err = stderr(&o);
    let n = cases.len();
    for i in 1..=n {
        assert_contains(&err, &format!("[{i}/{n}] "));
    }
    // The Markdown report keeps every column and every reason too.
    let md = dir.path().join("r.md");
    ok(&[
        "report",
        dir.path().join("r.json").to_str().unwrap(),
        "-o",
        md.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(md).unwrap();
    assert_contains(&md, "95% CI of median");
    for c in cases.iter().filter(|c| c["status"] == "skipped") {
        assert_contains(&md, c["reason"].as_str().unwrap());
    }
}

#[test]
fn bad_report_inputs_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("r.html");
    let o = out.to_str().unwrap();
    let junk = d.join("junk.json");
    std::fs::write(&junk, r#"{"a": 1}"#).unwrap();
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = d.join("missing.json");
    for (input, needle) in [
        (missing.to_str().unwrap(), "cannot read"),
        (junk.to_str().unwrap(), "not a result file, measure report"),
        (
            empty.to_str().unwrap(),
            "no .json or .trace.csv file in this folder",
        ),
    ] {
        let a = wattbench(&["report", "--format", "html", input, "-o", o]);
        usage_error(&a, needle);
        assert!(!out.exists(), "{input}: an output was written");
    }
    // The Markdown report is of one file, and says where several go.
    let j = junk.to_str().unwrap();
    usage_error(
        &wattbench(&["report", j, j, "-o", o]),
        "--format html takes several",
    );
    assert!(!out.exists());
}

/// The ceilings file at `from` as a full measurement (as `wattbench ceilings` without
/// --quick writes it), measured at `at`, written to `to`.
fn as_full(from: &Path, to: &Path, at: &str) {
    let mut doc = read_json(from);
    doc["quick"] = false.into();
    doc["argv"] = serde_json::json!(["wattbench", "ceilings"]);
    doc["created_at"] = at.into();
    std::fs::write(to, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

#[test]
fn a_quick_measurement_never_silently_replaces_a_full_one() {
    let dir = tempfile::tempdir().unwrap();
    let quick = dir.path().join("quick.json");
    let o = quick_ceilings(&quick, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_json(&quick)["quick"], true);
    let full = dir.path().join("full.json");
    as_full(&quick, &full, "2020-01-01T00:00:00+00:00");
    let before = std::fs::read(&full).unwrap();
    // Refused, file untouched; --force replaces it; a quick one replaces a quick one.
    let o = quick_ceilings(&full, &[]);
    usage_error(&o, "holds a full measurement");
    assert_contains(&stderr(&o), "--force");
    assert_eq!(std::fs::read(&full).unwrap(), before);
    let o = quick_ceilings(&full, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_json(&full)["quick"], true);
    let o = quick_ceilings(&quick, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn the_report_says_which_ceilings_it_uses_and_which_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (o, _) = run_tiny_without_gpus(d, "run.json", &["--backend", "reference", "--op", "gemm"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = d.join("run.json");
    let quick = d.join("quick.json");
    assert!(quick_ceilings(&quick, &[]).status.success());
    // An older full measurement and a newer quick one of this machine: the full one is used,
    // in either order, and the page and stderr say why.
    let full = d.join("full.json");
    as_full(&quick, &full, "2020-01-01T00:00:00+00:00");
    let report = |ceilings: &[&Path]| {
        let html = d.join("r.html");
        let mut args = vec!["report", "--format", "html", "-o", html.to_str().unwrap()];
        args.push(run.to_str().unwrap());
        for c in ceilings {
            args.extend(["--ceilings", c.to_str().unwrap()]);
        }
        let o = wattbench(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        (
            std::fs::read_to_string(&html).unwrap(),
            stderr(&o).to_string(),
        )
    };
    for order in [[&full, &quick], [&quick, &full]] {
        let (html, err) = report(&[order[0], order[1]]);
        let roof = section(&html, "roofline");
        let used = format!("using {}", full.display());
        assert_contains(roof, &escaped(&used));
        assert_contains(&err, &used);
        assert_contains(
            roof,
            &escaped(&format!("Ceilings from {} (full", full.display())),
        );
        assert!(!roof.contains("quick ceilings: a lower bound"), "{roof}");
    }
    // A newer full measurement from another host of the same kind: the runs' own host's file
    // is used, and the reason says so.
    let elsewhere = d.join("elsewhere.json");
    as_full(&quick, &elsewhere, "2030-01-01T00:00:00+00:00");
    let mut doc = read_json(&elsewhere);
    doc["environment"]["host"]["hostname"] = "another-host-of-this-kind".into();
    std::fs::write(&elsewhere, doc.to_string()).unwrap();
    let (html, err) = report(&[&elsewhere, &full]);
    let used = format!("using {}", full.display());
    assert_contains(&err, &used);
    assert_contains(&err, "one measured on the runs' own host is preferred");
    assert_contains(section(&html, "roofline"), &escaped(&used));
    // Quick ceilings alone: marked as a lower bound.
    let (html, _) = report(&[&quick]);
    let roof = section(&html, "roofline");
    assert_contains(roof, "quick: a lower bound");
    assert_contains(roof, "roofline: cpu (quick ceilings: a lower bound)");
    // Ceilings of another machine: said, not silently ignored.
    let other = d.join("other.json");
    let mut doc = read_json(&quick);
    doc["hardware_fingerprint"] = "cpu=Imaginary CPU 9000".into();
    std::fs::write(&other, doc.to_string()).unwrap();
    let (html, err) = report(&[&other]);
    let roof = section(&html, "roofline");
    assert_contains(&err, "measures a machine no input comes from");
    assert_contains(roof, "measures a machine no input comes from");
    assert_contains(roof, "The ceilings files given are of other machines");
}

/// Where a dtype has no measured peak (or the bandwidth was not measured), a case's roof is
/// only the other ceiling, an upper bound of its roof: the table says which is missing and
/// gives the share as a lower bound, not as a share of the roof.
#[test]
fn a_roof_missing_a_ceiling_says_which_and_its_share_is_a_lower_bound() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (o, _) = run_tiny_without_gpus(
        d,
        "run.json",
        &["--backend", "candle", "--op", "gemm", "--dtype", "f32,bf16"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // f32 peak only.
    let ceilings = d.join("c.json");
    assert!(quick_ceilings(&ceilings, &[]).status.success());
    let report = |c: &Path| {
        let html = d.join("r.html");
        let o = command()
            .current_dir(d)
            .args([
                "report",
                "--format",
                "html",
                "run.json",
                "--ceilings",
                c.to_str().unwrap(),
                "-o",
                html.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(&html).unwrap()
    };
    let html = report(&ceilings);
    let roof = section(&html, "roofline");
    let row = |id: &str| {
        let at = roof
            .find(id)
            .unwrap_or_else(|| panic!("no row {id}: {roof}"));
        let end = roof[at..].find("</tr>").unwrap();
        roof[at..at + end].to_string()
    };
    let bf16 = row("gemm/infer/m19_n7_k33_nt/bf16/candle/cpu");
    assert_contains(&bf16, "memory only (no bf16 peak measured)");
    assert_contains(&bf16, "≥ ");
    let f32 = row("gemm/infer/m19_n7_k33_nt/f32/candle/cpu");
    assert!(!f32.contains("≥") && !f32.contains("only"), "{f32}");
    // The GEMM table keeps the bf16 GEMMs, saying their dtype has no peak (the old one dropped
    // them), and the page says it above the plot drawn without that roof.
    let gemm = &roof[roof.find("GEMM against the compute roof").unwrap()..];
    let gemm = &gemm[..gemm.find("</table>").unwrap()];
    let bf16 = &gemm[gemm.find("<td>bf16</td>").expect("a bf16 row")..];
    let bf16 = &bf16[..bf16.find("</tr>").unwrap()];
    assert_contains(bf16, "no bf16 peak measured");
    assert!(!bf16.contains('%'), "{bf16}");
    assert_contains(gemm, "<td>f32</td>");
    assert_contains(roof, "No bf16 peak measured in these ceilings");
    // No bandwidth: the f32 roof is the compute roof alone.
    let mut doc = read_json(&ceilings);
    doc["devices"][0]["memory_gbytes_per_s"] = Value::Null;
    doc["devices"][0]["memory"] = Value::Null;
    doc["devices"][0]["memory_reason"] = "not measured here".into();
    std::fs::write(&ceilings, doc.to_string()).unwrap();
    let html = report(&ceilings);
    let roof = section(&html, "roofline");
    let at = roof
        .find("gemm/infer/m19_n7_k33_nt/f32/candle/cpu")
        .unwrap();
    let f32 = &roof[at..at + roof[at..].find("</tr>").unwrap()];
    assert_contains(f32, "compute only (no bandwidth measured)");
    assert_contains(f32, "≥ ");
}

/// Several ceilings files of the machine found beside the results (not given): the page and
/// stderr say which is used and why, as when they are given.
#[test]
fn ceilings_found_beside_the_runs_say_which_is_used_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let runs = d.join("runs");
    let found = d.join("ceilings");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::create_dir_all(&found).unwrap();
    let (o, _) = run_tiny_without_gpus(
        &runs,
        "run.json",
        &["--backend", "reference", "--op", "gemm"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let quick = found.join("quick.json");
    assert!(quick_ceilings(&quick, &[]).status.success());
    let full = found.join("full.json");
    as_full(&quick, &full, "2020-01-01T00:00:00+00:00");
    let html = d.join("r.html");
    let o = command()
        .current_dir(d)
        .args(["report", "--format", "html", "runs/run.json", "-o"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(&html).unwrap();
    let roof = section(&html, "roofline");
    // Found from the input runs/run.json: named as ceilings/ beside its folder.
    let used = "2 ceilings files measure this kind of machine: using ceilings/full.json (full";
    assert_contains(&stderr(&o), used);
    assert_contains(roof, &escaped(used));
    assert_contains(roof, "not ceilings/quick.json (quick: a lower bound");
    assert!(!roof.contains("quick ceilings: a lower bound"), "{roof}");
}

/// `--if-missing` (as `make run` measures once per machine) does not keep a quick
/// measurement, a lower bound, as the machine's ceilings: it measures the full ones.
#[test]
fn if_missing_replaces_a_quick_measurement_with_a_full_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    assert!(quick_ceilings(&path, &[]).status.success());
    let mut small = vec!["ceilings", "--if-missing"];
    small.extend(SMALL_CEILINGS);
    small.extend(["--output", path.to_str().unwrap()]);
    let o = wattbench(&small);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stderr(&o), "holds a quick measurement");
    assert_eq!(read_json(&path)["quick"], false);
    // A full one is kept.
    let before = std::fs::read(&path).unwrap();
    let o = wattbench(&small);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stderr(&o), "run without --if-missing to measure again");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Ceilings measured with other thread settings (or cores) than a run placed under them: the
/// page says that the roofs may not be that run's.
#[test]
fn ceilings_measured_under_other_thread_settings_are_said() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = without_gpus();
    c.env("RAYON_NUM_THREADS", "1");
    let suite = tiny_suite(d);
    let run = d.join("run.json");
    let mut args = vec![
        "run",
        "--suite",
        &suite,
        "--backend",
        "candle",
        "--op",
        "gemm",
        "--mode",
        "infer,train",
        "--output",
        run.to_str().unwrap(),
    ];
    args.extend(FAST);
    let o = c.args(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let ceilings = d.join("c.json");
    assert!(quick_ceilings(&ceilings, &[]).status.success());
    let html = d.join("r.html");
    let report = || {
        let o = wattbench(&[
            "report",
            "--format",
            "html",
            run.to_str().unwrap(),
            "--ceilings",
            ceilings.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(&html).unwrap()
    };
    let page = report();
    let roof = section(&page, "roofline");
    assert_contains(roof, "runs here with RAYON_NUM_THREADS=1");
    assert_contains(roof, "the roofs may not be theirs");
    // The same settings: nothing said.
    let mut doc = read_json(&ceilings);
    doc["environment"]["variables"]["RAYON_NUM_THREADS"] = "1".into();
    std::fs::write(&ceilings, doc.to_string()).unwrap();
    let page = report();
    assert!(
        !section(&page, "roofline").contains("the roofs may not be theirs"),
        "{page}"
    );
    // Measured on another host of the same kind (same CPU model and cores): said.
    doc["environment"]["host"]["hostname"] = "another-host".into();
    std::fs::write(&ceilings, doc.to_string()).unwrap();
    let page = report();
    let roof = section(&page, "roofline");
    assert_contains(roof, "measured with host another-host");
    assert_contains(roof, "the roofs may not be theirs");
    // A peak far under what the cases reached: the roof understates it, and the page says so;
    // the GEMM table keeps inference and training apart.
    doc["devices"][0]["peak_gflops"]["f32"]["gflops_per_s"] = 1e-3.into();
    std::fs::write(&ceilings, doc.to_string()).unwrap();
    let page = report();
    let roof = section(&page, "roofline");
    assert_contains(
        roof,
        "ran more than 10 % above their dtype&#39;s compute roof",
    );
    assert_contains(roof, "the measured f32 peak");
    assert_contains(roof, "<th>mode</th>");
    let table = &roof[roof.find("<th>mode</th>").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_contains(table, "<td>infer</td>");
    assert_contains(table, "<td>train</td>");
}

/// `report --format html ARGS -o dir/name`, which must succeed: the page.
fn html_report(dir: &Path, name: &str, args: &[&str]) -> String {
    let out = dir.join(name);
    let mut a = vec!["report", "--format", "html", "-o", out.to_str().unwrap()];
    a.extend(args);
    ok(&a);
    std::fs::read_to_string(&out).unwrap()
}

/// A history whose commits are not ASCII (they come from the result files, as any text): the
/// trend shortens them by characters (the old code cut at byte 12, inside a character, and
/// panicked). Each trend plot's caption names its case and machine in full (the plot's title
/// is too narrow for them).
#[test]
fn the_trend_names_each_case_in_full_and_takes_any_commit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (o, doc) =
        run_tiny_without_gpus(d, "run.json", &["--backend", "reference", "--op", "gemm"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = doc.unwrap();
    let db = d.join("h.sqlite");
    let mut files = Vec::new();
    // 6 runs at one level, then 6 at twice it: a change point however strictly the history
    // tests (8 runs were at the edge of its false-discovery correction).
    for i in 0..12 {
        let mut r = doc.clone();
        r["created_at"] = format!("2026-02-{:02}T00:00:00+00:00", i + 1).into();
        // 2 bytes per "é": byte 12 falls inside one.
        r["environment"]["git_commit"] = if i < 6 {
            "abcdef0123456789"
        } else {
            "aéééééééé"
        }
        .into();
        scale_times(
            &mut r,
            if i < 6 { 1.0 } else { 2.0 } * (1.0 + 0.002 * i as f64),
        );
        let p = d.join(format!("r{i}.json"));
        std::fs::write(&p, r.to_string()).unwrap();
        files.push(p);
    }
    let mut add = vec!["history", "add", "--db", db.to_str().unwrap()];
    add.extend(files.iter().map(|f| f.to_str().unwrap()));
    ok(&add);
    let html = html_report(
        d,
        "r.html",
        &[
            files[11].to_str().unwrap(),
            "--history",
            db.to_str().unwrap(),
        ],
    );
    let trend = section(&html, "trend");
    assert_contains(trend, "came in abcdef0123..aéééééééé");
    let fp = {
        let env: wattbench_core::result::Environment =
            serde_json::from_value(doc["environment"].clone()).unwrap();
        env.hardware_fingerprint()
    };
    for c in doc["cases"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        assert_contains(
            trend,
            &format!(
                "<figcaption><code>{}</code> on {}: 12 runs",
                escaped(id),
                escaped(&fp)
            ),
        );
    }
}

/// The part of `html` from the first `from` after `at` to the `to` after it.
fn between<'a>(html: &'a str, at: &str, to: &str) -> &'a str {
    let start = html
        .find(at)
        .unwrap_or_else(|| panic!("no {at:?} in {html}"));
    let end = html[start..]
        .find(to)
        .map_or(html.len(), |e| start + e + to.len());
    &html[start..end]
}

/// Time and throughput carry their intervals on the page: the figures table gives the median's
/// interval and the GFLOP/s at its bounds, the throughput bars their whiskers, and the
/// cross-hardware ratio its bootstrap interval. The energy per operation names where the grid
/// intensity comes from and that PUE 1 is the default, and calls its call the mean one.
#[test]
fn time_intervals_and_the_intensity_source_are_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let suite = tiny_suite(d);
    let m1 = d.join("m1.json");
    // Enough samples for a bootstrap interval.
    let o = without_gpus()
        .args([
            "run",
            "--suite",
            &suite,
            "--backend",
            "reference",
            "--op",
            "gemm",
            "--min-time",
            "0",
            "--min-samples",
            "8",
            "--warmup",
            "0",
            "--output",
            m1.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let m2 = d.join("m2.json");
    other_machine(&m1, &m2);
    let mut doc = read_json(&m2);
    scale_times(&mut doc, 2.0);
    std::fs::write(&m2, doc.to_string()).unwrap();
    let html = html_report(d, "r.html", &[m1.to_str().unwrap(), m2.to_str().unwrap()]);

    let backends = section(&html, "backends");
    let figures = between(backends, "<summary>the figures</summary>", "</table>");
    assert_contains(figures, "95% CI ");
    let t = &read_json(&m1)["cases"][0];
    let ci = t["time"]["ci95_median_s"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() < ci[1].as_f64().unwrap(), "{t}");
    // GFLOP/s with its interval, in the table and on the bars.
    let g = t["throughput"]["gflops_per_s"].as_f64().unwrap();
    let gflops = wattbench_core::units::sig(g);
    assert_contains(figures, &format!("{gflops} ["));

    let hw = section(&html, "hardware");
    assert_contains(hw, "M2 / M1 [95 % CI]");
    // The ratio is 2 (times doubled), with an interval around it.
    let row = between(hw, "<td><code>gemm/infer/", "</tr>");
    assert_contains(row, "2.000 [");
    assert!(!row.contains("no interval"), "{row}");
    let caption = between(hw, "<figcaption>", "</figcaption>");
    assert_contains(caption, "(1, the line: as fast; above 1: slower than M1)");
    assert!(!caption.contains("  "), "a run of spaces: {caption}");
    // Energy per operation: the intensity's source and year, the default PUE, the mean call.
    let energy = between(hw, "<h3>Energy per operation</h3>", "</p>");
    assert_contains(energy, "of the mean call");
    assert!(!energy.contains("median call"), "{energy}");
    assert_contains(energy, "source: Ember");
    assert_contains(energy, "PUE 1.000 (the default: IT energy only");
    assert!(
        energy.contains(", 20") || energy.contains("year unknown"),
        "the intensity's year: {energy}"
    );
}

/// Several files of one machine: every case of every file after the first is labelled with
/// its file (the old code labelled only those whose id an earlier file had, so a case only the
/// later file has joined the first file's series).
#[test]
fn every_case_of_a_later_file_of_one_machine_is_its_series() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (o, doc) = run_tiny_without_gpus(d, "b.json", &["--backend", "reference"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut a = doc.unwrap();
    a["cases"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["op"] == "gemm");
    let a_path = d.join("a.json");
    std::fs::write(&a_path, a.to_string()).unwrap();
    let b_path = d.join("b.json");
    let html = html_report(
        d,
        "r.html",
        &[a_path.to_str().unwrap(), b_path.to_str().unwrap()],
    );
    let backends = section(&html, "backends");
    // Only b.json has conv2d: its bars are b.json's series, not a.json's.
    let conv = between(backends, "conv2d infer: throughput", "</svg>");
    assert_contains(conv, "reference/cpu (b.json)");
    let gemm = between(backends, "gemm infer: throughput", "</svg>");
    assert_contains(gemm, "reference/cpu (b.json)");
    // And a.json's series, unnamed.
    assert!(
        gemm.matches("reference/cpu").count() > gemm.matches("reference/cpu (b.json)").count(),
        "{gemm}"
    );
    let conv_plain = conv.matches("reference/cpu").count();
    assert_eq!(
        conv_plain,
        conv.matches("reference/cpu (b.json)").count(),
        "{conv}"
    );
}

/// The row `name` of a key-value table in `html`.
fn row<'a>(html: &'a str, name: &str) -> &'a str {
    between(html, &format!("<tr><th>{name}</th>"), "</tr>")
}

/// Every energy figure of the carbon section, and every one computed from it, says where the
/// energy comes from (the old page said "ESTIMATED" only inside the sources row, and dropped
/// PARTIAL from the cost and the projected CO2e).
#[test]
fn every_carbon_figure_says_where_its_energy_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let measure = d.join("m.json");
    ok(&[
        "measure",
        "--price-per-kwh",
        "0.2",
        "--total-steps",
        "10",
        "--steps-done",
        "1",
        "--output",
        measure.to_str().unwrap(),
        "--",
        "sleep",
        "0.2",
    ]);
    let m = measure.to_str().unwrap();
    let figures = [
        "IT energy",
        "facility energy (× PUE)",
        "emissions",
        "cost",
        "projection",
    ];
    let mut doc = read_json(&measure);
    for k in ["energy_kwh", "cost"] {
        assert!(doc[k].is_object(), "{k}: {doc}");
    }
    // The sources are set here: the report must say what the file says, whatever the meters.
    doc["total"]["sources"] = serde_json::json!(["estimated"]);
    std::fs::write(&measure, doc.to_string()).unwrap();
    let html = html_report(d, "e.html", &[m]);
    let carbon = section(&html, "carbon");
    for f in figures {
        assert_contains(row(carbon, f), "(ESTIMATED: a model, not a measurement)");
    }
    // The projection's energy and its CO2e.
    assert_eq!(row(carbon, "projection").matches("ESTIMATED").count(), 2);
    assert_contains(row(carbon, "energy is"), "ESTIMATED");
    // Counters alone, without a domain: measured, and PARTIAL beside each figure.
    doc["total"]["sources"] = serde_json::json!(["measured"]);
    doc["total"]["missing"] = serde_json::json!(["gpu0"]);
    std::fs::write(&measure, doc.to_string()).unwrap();
    let html = html_report(d, "m.html", &[m]);
    let carbon = section(&html, "carbon");
    for f in figures {
        let r = row(carbon, f);
        assert_contains(r, "(measured); PARTIAL: without gpu0");
        assert!(!r.contains("ESTIMATED"), "{r}");
    }
    assert_eq!(
        row(carbon, "projection")
            .matches("PARTIAL: without gpu0")
            .count(),
        2
    );
}

/// A training run's projection labels each figure, its cost among them, with its source.
#[test]
fn a_training_projection_labels_each_figure_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = d.join("t.json");
    ok(&[
        &common::TRAIN_TINY[..],
        &[
            "--project-steps",
            "100",
            "--price-per-kwh",
            "0.2",
            "--output",
            train.to_str().unwrap(),
        ],
    ]
    .concat());
    let mut doc = read_json(&train);
    let t = &mut doc["trainings"][0];
    assert!(t["projection"]["cost"].is_object(), "{t}");
    t["energy"]["total_sources"] = serde_json::json!(["estimated"]);
    t["projection"]["energy_estimated"] = true.into();
    std::fs::write(&train, doc.to_string()).unwrap();
    let html = html_report(d, "t.html", &[train.to_str().unwrap()]);
    let carbon = section(&html, "carbon");
    for f in ["IT energy", "facility energy (× PUE)", "emissions", "cost"] {
        assert_contains(row(carbon, f), "(ESTIMATED: a model, not a measurement)");
    }
}
