//! What the commands read, made safe (the CLI audit, items 1, 5, 7, 12, 13 and its nits): an
//! output that is also an input is refused before anything is written; wattbench's other
//! documents (ceilings, comparisons, measure reports), empty, truncated files and folders are
//! named with what to do; the same run given twice is refused; options that would be
//! silently ignored are refused.
mod common;

use common::{assert_contains, run_tiny, stderr, stdout, usage_error, wattbench};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Two result files in `dir`: `a.json`, a quick reference run of the tiny suite's GEMM, and
/// `b.json`, the same run as if made later on another host (another run, same machine kind).
fn two_runs(dir: &Path) -> (PathBuf, PathBuf) {
    let (o, doc) = run_tiny(dir, "a.json", &["--backend", "reference", "--op", "gemm"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut doc: Value = doc.unwrap();
    doc["created_at"] = "2030-01-01T00:00:00+00:00".into();
    doc["environment"]["host"]["hostname"] = "elsewhere".into();
    let b = dir.join("b.json");
    std::fs::write(&b, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    (dir.join("a.json"), b)
}

/// `run -o` naming its own suite file, or the history database `--record` adds to, replaced
/// it with the result (exit 0; the history was lost with a warning): refused, both kept.
#[test]
fn a_run_never_writes_over_its_suite_or_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let suite = common::tiny_suite(d);
    let before = std::fs::read(&suite).unwrap();
    let mut args = vec![
        "run",
        "--suite",
        &suite,
        "--backend",
        "reference",
        "-o",
        &suite,
    ];
    args.extend(common::FAST);
    let o = wattbench(&args);
    usage_error(&o, "is also an input");
    assert_eq!(std::fs::read(&suite).unwrap(), before);
    let db = d.join("h.sqlite");
    std::fs::write(&db, b"not yet a database, but the history's path").unwrap();
    let mut args = vec!["run", "--suite", &suite, "--backend", "reference"];
    args.extend(["--record", s(&db), "-o", s(&db)]);
    args.extend(common::FAST);
    let o = wattbench(&args);
    usage_error(&o, "is also an input");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        b"not yet a database, but the history's path"
    );
    // Both new, at one path; a record from a stream it cannot read back; the document mixed
    // with the table on standard output.
    let new = d.join("new.sqlite");
    for (extra, said) in [
        (
            vec!["--record", s(&new), "-o", s(&new)],
            "is the history database --record adds the run to",
        ),
        (
            vec!["--record", s(&new), "-o", "/dev/null"],
            "--record reads the result file back",
        ),
        (
            vec!["--json", "-o", "/dev/stdout"],
            "would mix with the document",
        ),
    ] {
        let mut args = vec!["run", "--suite", &suite, "--backend", "reference"];
        args.extend(extra);
        args.extend(common::FAST);
        usage_error(&wattbench(&args), said);
        assert!(!new.exists());
    }
}

/// A file name that is not UTF-8 (clap takes it for a path) made the recording of the command
/// line panic (exit 101): the file is written, its name recorded with U+FFFD.
#[test]
fn a_file_name_that_is_not_utf8_is_written_and_recorded() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = two_runs(d);
    let out = d.join(std::ffi::OsStr::from_bytes(b"merged-\xff.json"));
    let o = common::command()
        .arg("merge")
        .args([&a, &b])
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(
        doc["merged"]["argv"]
            .to_string()
            .contains("merged-\u{FFFD}.json"),
        "{}",
        doc["merged"]["argv"]
    );
}

/// `-o /dev/stdout` in a pipe failed (the link's target, `pipe:[N]`, is no path), and where
/// standard output was a file opened to append to, the file was replaced: the document goes
/// through the process's own standard output.
#[test]
fn an_output_to_standard_output_goes_through_the_pipe_or_the_appended_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, _) = two_runs(d);
    let export = || {
        let mut c = common::command();
        c.args(["export", s(&a), "--format", "csv", "-o", "/dev/stdout"]);
        c
    };
    let o = export().output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stdout(&o), "case,");
    let log = d.join("log.csv");
    std::fs::write(&log, "PREVIOUS\n").unwrap();
    let appended = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let o = export().stdout(appended).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("PREVIOUS\n") && text.contains("case,"),
        "{text}"
    );
}

/// Lists that said less than they seemed: `check --op none,gemm` checked nothing of gemm, and
/// `--gpus 0,,1` was taken; both are refused.
#[test]
fn list_options_with_an_item_that_cannot_be_are_refused() {
    usage_error(
        &wattbench(&["check", "--backend", "reference", "--op", "none,gemm"]),
        "--op none goes alone",
    );
    let dir = tempfile::tempdir().unwrap();
    let suite = common::tiny_suite(dir.path());
    let out = dir.path().join("r.json");
    let mut args = vec!["run", "--suite", &suite, "--backend", "reference"];
    args.extend(["--gpus", "0,,1", "-o", s(&out)]);
    usage_error(&wattbench(&args), "--gpus 0,,1: an empty item");
    assert!(!out.exists());
}

/// (Audit item 1.) `merge a b -o a`, `merge DIR -o DIR/a.json`, `export X -o X`, `report X -o
/// X`, `compare A B -o A` destroyed their input. Each is refused with exit 2, through a link
/// too, and every input is left byte for byte as it was.
#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = two_runs(d);
    let folder = d.join("tasks");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&a, folder.join("a.json")).unwrap();
    std::fs::copy(&b, folder.join("b.json")).unwrap();
    let link = d.join("link.json");
    std::os::unix::fs::symlink("a.json", &link).unwrap();
    let in_folder = folder.join("a.json");
    let before: Vec<(PathBuf, Vec<u8>)> = [&a, &b, &in_folder]
        .iter()
        .map(|p| (p.to_path_buf(), std::fs::read(p).unwrap()))
        .collect();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["merge", s(&a), s(&b), "-o", s(&a)], "also an input"),
        (vec!["merge", s(&a), "-o", s(&a)], "also an input"),
        (
            vec!["merge", s(&folder), "-o", s(&in_folder)],
            "a file of the input folder",
        ),
        (
            vec!["export", s(&a), "--format", "csv", "-o", s(&a)],
            "also an input",
        ),
        (
            vec!["export", s(&a), "--format", "csv", "-o", s(&link)],
            "also an input",
        ),
        (vec!["report", s(&a), "-o", s(&a)], "also an input"),
        (
            vec![
                "report",
                s(&folder),
                "--format",
                "html",
                "-o",
                s(&in_folder),
            ],
            "a file of the input folder",
        ),
        (vec!["compare", s(&a), s(&b), "-o", s(&a)], "also an input"),
        (
            vec!["compare", "--across-hardware", s(&a), s(&b), "-o", s(&b)],
            "also an input",
        ),
    ];
    for (args, want) in cases {
        let o = wattbench(&args);
        usage_error(&o, want);
        assert_contains(&stderr(&o), "nothing was written");
        for (p, bytes) in &before {
            assert!(
                std::fs::read(p).unwrap() == *bytes,
                "`wattbench {}` changed {}",
                args.join(" "),
                p.display()
            );
        }
    }
    // A new result file in an input folder is refused too (the folder would hold its runs
    // twice), and one beside it is written.
    let inside = folder.join("merged.json");
    usage_error(
        &wattbench(&["merge", s(&folder), "-o", s(&inside)]),
        "outside the folder",
    );
    assert!(!inside.exists());
    let beside = folder.with_extension("merged.json");
    let o = wattbench(&["merge", s(&folder), "-o", s(&beside)]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A ceilings file of this wattbench's schema (its keys as results/README.md lists them).
fn ceilings_doc() -> Value {
    serde_json::json!({
        "schema_version": 1,
        "created_at": "2030-01-01T00:00:00+00:00",
        "duration_s": 1.0,
        "argv": ["wattbench", "ceilings"],
        "hardware_fingerprint": "cpu=Imaginary x2",
        "environment": {},
        "devices": [],
        "not_measured": []
    })
}

/// (Audit item 5 and the nits.) Wattbench's own ceilings files, `compare --format json`
/// documents and `measure` reports were "schema version 1 ... written by an older wattbench:
/// re-run it"; empty and truncated files gave a parser's message; a folder "Is a directory".
/// Each now says what the file is and what to do.
#[test]
fn other_documents_empty_files_and_folders_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = two_runs(d);
    let ceil = d.join("ceil.json");
    std::fs::write(&ceil, ceilings_doc().to_string()).unwrap();
    let cmp = d.join("cmp.json");
    let o = wattbench(&["compare", s(&a), s(&b), "--format", "json", "-o", s(&cmp)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = d.join("m.json");
    let o = wattbench(&["measure", "--output", s(&m), "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let empty = d.join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let text = std::fs::read_to_string(&a).unwrap();
    let cut = d.join("cut.json");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let db = d.join("h.sqlite");
    let x = d.join("x.json");
    for (file, want, reader) in [
        (&ceil, "a ceilings file", "report --format html"),
        (&cmp, "a comparison", "base.files"),
        (&m, "`wattbench measure` report", "report --format html"),
        (&empty, "the file is empty", "write it again"),
        (&cut, "truncated", "write it again"),
    ] {
        for args in [
            vec!["report", s(file)],
            vec!["export", s(file), "--format", "csv"],
            vec!["merge", s(file), "-o", s(&x)],
            vec!["compare", s(&a), s(file)],
            vec!["history", "add", s(file), "--db", s(&db)],
        ] {
            let o = wattbench(&args);
            usage_error(&o, want);
            assert_contains(&stderr(&o), reader);
            assert!(
                !stderr(&o).contains("older wattbench"),
                "{args:?}: {}",
                stderr(&o)
            );
        }
    }
    assert!(!x.exists());
    // A folder where one result file is read says so, and what takes folders.
    for args in [
        vec!["report", s(d)],
        vec!["export", s(d), "--format", "csv"],
    ] {
        let o = wattbench(&args);
        usage_error(&o, "is a folder");
        assert_contains(&stderr(&o), "`report --format html`");
    }
    // In a folder of runs, a ceilings file kept beside them is left out, and said so.
    let runs = d.join("runs");
    std::fs::create_dir(&runs).unwrap();
    std::fs::copy(&a, runs.join("a.json")).unwrap();
    std::fs::copy(&ceil, runs.join("ceilings.json")).unwrap();
    let o = wattbench(&["compare", s(&runs), s(&b), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stdout(&o), "left out of its folder");
    assert_contains(&stdout(&o), "a ceilings file");
}

/// (Audit item 13.) Byte-identical inputs were pooled as independent runs (an interval too
/// narrow), and `compare X X` compared a file with itself. The same file twice, or two
/// copies of one run, are refused, naming them; nothing is written.
#[test]
fn the_same_run_given_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = two_runs(d);
    let copies = d.join("copies");
    std::fs::create_dir(&copies).unwrap();
    std::fs::copy(&a, copies.join("1.json")).unwrap();
    std::fs::copy(&a, copies.join("2.json")).unwrap();
    let out = d.join("out");
    let dot_a = format!("{}/./a.json", s(d));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["compare", s(&a), s(&a)],
            "BASE and NEW are the same file",
        ),
        (
            vec!["compare", s(&a), &dot_a],
            "BASE and NEW are the same file",
        ),
        (vec!["compare", s(&copies), s(&b)], "hold the same run"),
        (
            vec!["merge", s(&a), s(&a), "--allow-duplicates", "-o", s(&out)],
            "given twice",
        ),
        (
            vec!["merge", s(&copies), "--allow-duplicates", "-o", s(&out)],
            "hold the same run",
        ),
        (
            vec!["report", s(&a), s(&a), "--format", "html", "-o", s(&out)],
            "given twice",
        ),
        (
            vec!["report", s(&copies), "--format", "html", "-o", s(&out)],
            "hold the same run",
        ),
        (
            vec!["compare", "--across-hardware", s(&copies), s(&b)],
            "hold the same run",
        ),
    ];
    for (args, want) in cases {
        usage_error(&wattbench(&args), want);
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
    // Two different runs are fine.
    let o = wattbench(&["compare", s(&a), s(&b)]);
    assert!(o.status.code() != Some(2), "{}", stderr(&o));
}

/// (Audit item 12.) Options accepted and silently ignored: the carbon options of `train`
/// without a projection and of `compare` without --across-hardware, and empty items in a
/// comma-separated list. Each is refused, saying what it needs.
#[test]
fn options_that_would_be_ignored_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = two_runs(d);
    let t = d.join("t.json");
    for (flag, value) in [
        ("--region", "FR"),
        ("--pue", "1.5"),
        ("--intensity", "100"),
        ("--price-per-kwh", "0.2"),
    ] {
        let mut args = common::TRAIN_TINY.to_vec();
        args.extend([flag, value, "--output", s(&t)]);
        let o = wattbench(&args);
        usage_error(&o, flag);
        assert_contains(&stderr(&o), "--project-steps");
        let o = wattbench(&["compare", s(&a), s(&b), flag, value]);
        usage_error(&o, flag);
        assert_contains(&stderr(&o), "--across-hardware");
    }
    assert!(!t.exists());
    // With a projection they are used.
    let mut args = common::TRAIN_TINY.to_vec();
    args.extend([
        "--project-steps",
        "100",
        "--region",
        "FR",
        "--output",
        s(&t),
    ]);
    let o = wattbench(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = common::read_json(&t);
    assert_eq!(
        doc["trainings"][0]["projection"]["carbon"]["region"], "FR",
        "{}",
        doc["trainings"][0]["projection"]
    );
    // Empty list items.
    let suite = common::tiny_suite(d);
    let r = d.join("r.json");
    let o = wattbench(&[
        "run",
        "--suite",
        &suite,
        "--backend",
        "reference,,",
        "-o",
        s(&r),
    ]);
    usage_error(&o, "empty item");
    assert!(!r.exists());
    let o = wattbench(&["check", "--backend", "reference", "--op", "gemm,"]);
    usage_error(&o, "empty item");
}

/// (Audit nit.) `measure -- /nonexistent/cmd` said "command exited with 127 after 0.000 s" of
/// a command that never started.
#[test]
fn a_command_that_did_not_start_is_not_said_to_have_exited() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.json");
    let o = wattbench(&[
        "measure",
        "--output",
        s(&m),
        "--",
        "/nonexistent/wattbench-test-command",
    ]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_contains(&all, "did not start");
    assert!(!all.contains("exited with 127"), "{all}");
}

/// The HTML report also reads files it finds rather than is given: the trace beside a
/// `measure` report and the ceilings file of the results' machine (in `ceilings/` beside the
/// results' folder). Neither may be the report's output: refused, and left as it was.
#[test]
fn the_html_report_keeps_the_files_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = d.join("m.json");
    let o = wattbench(&["measure", "--output", s(&m), "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trace = d.join("m.trace.csv");
    let trace_before = std::fs::read(&trace).unwrap();
    let o = wattbench(&["report", "--format", "html", s(&m), "-o", s(&trace)]);
    usage_error(&o, "also an input");
    assert_eq!(std::fs::read(&trace).unwrap(), trace_before);

    let runs = d.join("runs");
    std::fs::create_dir(&runs).unwrap();
    let (a, _) = two_runs(&runs);
    // The run's machine (this one), as `info --json` gives its hardware fingerprint.
    let info = wattbench(&["info", "--json"]);
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    let fp = info["hardware_fingerprint"].as_str().unwrap().to_string();
    // A real ceilings file (the one recorded on the project's VM), moved to this machine.
    let recorded =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/cpu/20261129-vm/ceilings.json");
    let mut ceil: Value =
        serde_json::from_str(&std::fs::read_to_string(recorded).unwrap()).unwrap();
    ceil["hardware_fingerprint"] = fp.into();
    std::fs::create_dir(d.join("ceilings")).unwrap();
    let found = d.join("ceilings").join("this.json");
    let text = ceil.to_string();
    std::fs::write(&found, &text).unwrap();
    // The report finds it (so this is the path being guarded) ...
    let html = d.join("r.html");
    let o = wattbench(&["report", "--format", "html", s(&a), "-o", s(&html)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&std::fs::read_to_string(&html).unwrap(), "this.json");
    // ... and refuses to write over it.
    let o = wattbench(&["report", "--format", "html", s(&a), "-o", s(&found)]);
    usage_error(&o, "also an input");
    assert_eq!(std::fs::read_to_string(&found).unwrap(), text);
}
