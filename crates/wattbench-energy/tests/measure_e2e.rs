//! `measure` end to end on real child processes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::measure::{measure, MeasureOptions, MeasureOutcome, ProjectionSpec};
use wattbench_energy::{EnergyError, MeterConfig, Source};

fn opts(cmd: &[&str]) -> MeasureOptions {
    MeasureOptions {
        command: cmd.iter().map(OsString::from).collect(),
        meter: MeterConfig {
            // Deterministic on any machine, GPU machines included: no RAPL, so the CPU is
            // estimated, and no NVML.
            powercap_root: Some(PathBuf::from("/nonexistent/powercap")),
            sample_interval: Duration::from_millis(20),
            nvml: false,
            ..MeterConfig::default()
        },
        carbon: CarbonParams::resolve(Some("FR"), None, Some(1.2), Some(0.25)).unwrap(),
        projection: None,
        cgroup: true,
        idle: None,
    }
}

fn run(cmd: &[&str]) -> MeasureOutcome {
    measure(&opts(cmd)).unwrap()
}

#[test]
fn exit_code_is_propagated_and_report_has_required_keys() {
    let out = run(&["sh", "-c", "exit 7"]);
    assert_eq!(out.exit_code, 7);
    assert_eq!(out.report.exit_code, 7);
    assert_eq!(out.report.signal, None);
    let v = serde_json::to_value(&out.report).unwrap();
    for k in [
        "command",
        "exit_code",
        "duration_s",
        "domains",
        "peak_memory_bytes",
        "energy_kwh",
        "co2e_kg",
        "assumptions",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    for k in [
        "name",
        "source",
        "joules",
        "reason",
        "avg_watts",
        "peak_watts",
    ] {
        assert!(v["domains"][0].get(k).is_some(), "missing domains[].{k}");
    }
    for k in [
        "intensity_g_per_kwh",
        "intensity_range_g_per_kwh",
        "region",
        "pue",
    ] {
        assert!(
            v["assumptions"]["carbon"].get(k).is_some(),
            "missing assumptions.carbon.{k}"
        );
    }
    assert!(v["assumptions"]["sources"].is_array());
    for k in ["value", "low", "high"] {
        assert!(v["energy_kwh"][k].is_number() && v["co2e_kg"][k].is_number());
    }
    assert_eq!(v["command"], serde_json::json!(["sh", "-c", "exit 7"]));
    assert_eq!(v["assumptions"]["carbon"]["region"], "FR");
    assert_eq!(run(&["true"]).exit_code, 0);
}

#[test]
fn busy_child_is_estimated_and_carbon_follows_the_energy() {
    // The sleep keeps the command alive for 15 sampling intervals on any machine, so that
    // the memory and trace assertions below do not depend on how fast the loop runs.
    let out = run(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 0.3",
    ]);
    assert_eq!(out.exit_code, 0);
    let r = &out.report;
    let d = r.domains.iter().find(|d| d.name == "cpu-estimate").unwrap();
    assert_eq!(d.source, Source::Estimated);
    assert!(
        matches!(d.scope.as_str(), "cgroup" | "process-tree"),
        "{}",
        d.scope
    );
    let a = d.assumptions.as_ref().unwrap();
    let cpu_s = a.cpu_seconds;
    assert!(cpu_s > 0.0, "the child's CPU time was not counted");
    // The kernel's count at exit is the one used.
    assert!(
        (cpu_s - r.cpu_seconds.unwrap()).abs() < 0.05,
        "{cpu_s} {:?}",
        r.cpu_seconds
    );
    let j = d.joules.unwrap();
    assert!((j - cpu_s * a.watts_per_busy_thread).abs() < 1e-9);

    // kWh = J / 3.6e6; kg = kWh x PUE 1.2 x FR's g/kWh / 1000 (low and high energy times the
    // low and high ends of FR's daily range); cost = kWh x 1.2 x 0.25.
    let kwh = r.energy_kwh.unwrap();
    assert!((kwh.value - j / 3.6e6).abs() < 1e-15);
    assert!(kwh.low < kwh.value && kwh.value < kwh.high);
    let co2 = r.co2e_kg.unwrap();
    let fr = &r.assumptions.carbon;
    let [g_low, g_high] = fr.intensity_range_g_per_kwh;
    assert!(g_low < fr.intensity_g_per_kwh && fr.intensity_g_per_kwh < g_high);
    assert!((co2.value - kwh.value * 1.2 * fr.intensity_g_per_kwh / 1000.0).abs() < 1e-15);
    assert!((co2.low - kwh.low * 1.2 * g_low / 1000.0).abs() < 1e-15);
    assert!((co2.high - kwh.high * 1.2 * g_high / 1000.0).abs() < 1e-15);
    assert!((r.cost.unwrap().value - kwh.value * 1.2 * 0.25).abs() < 1e-15);
    assert_eq!(r.total.sources, [Source::Estimated]);
    assert!(r.assumptions.sources.iter().any(|s| s.contains("Ember")));
    // The summary says what the estimate is and assumes, and that the PUE (given, 1.2) makes
    // the carbon and the cost figures of facility energy, which it shows.
    let rows = r.summary_rows();
    let note = &rows.iter().find(|row| row[0] == "cpu-estimate").unwrap()[6];
    assert!(
        note.contains("model, not a measurement") && note.contains("W TDP"),
        "{note}"
    );
    let lines = r.summary_lines().join("\n");
    for want in [
        "facility energy: ",
        "CO2e of the facility energy",
        "(facility energy x the price per kWh)",
    ] {
        assert!(lines.contains(want), "`{want}` missing from:\n{lines}");
    }

    assert!(r.peak_memory_bytes.unwrap() > 0);
    assert!(r.samples >= 2);
    let csv = out.trace.to_csv();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "t_s,cpu-estimate_watts,rss_bytes,cpu_cores"
    );
    assert!(lines.count() >= 2);
}

#[test]
fn child_shorter_than_the_sampling_interval_is_still_counted() {
    // No sample falls inside the run: the kernel's CPU time at exit must carry the estimate.
    let mut o = opts(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done",
    ]);
    o.meter.sample_interval = Duration::from_secs(600);
    // This process holds 64 MiB more than the command ever does, so its memory (or a
    // `ru_maxrss` of ours) reported as the command's fails the check below.
    let ballast = vec![1u8; 64 << 20];
    std::hint::black_box(&ballast);
    let out = measure(&o).unwrap();
    drop(ballast);
    let d = &out.report.domains[0];
    let cpu_s = d.assumptions.as_ref().unwrap().cpu_seconds;
    assert!(cpu_s > 0.0);
    assert_eq!(Some(cpu_s), out.report.cpu_seconds);
    assert!(d.joules.unwrap() > 0.0);
    // No sample saw it: unknown and said so, never this process's memory.
    let r = &out.report;
    assert!(
        r.peak_memory_bytes.is_some_and(|b| b < 32 << 20)
            || r.peak_memory_source.starts_with("not observed"),
        "{:?} {}",
        r.peak_memory_bytes,
        r.peak_memory_source
    );
}

#[test]
fn missing_command_still_yields_a_report() {
    let out = run(&["wattbench-no-such-command-3f9a", "--flag"]);
    assert_eq!(out.exit_code, 127);
    let r = &out.report;
    assert_eq!(r.exit_code, 127);
    assert!(r.error.as_deref().unwrap().contains("command not found"));
    assert!(r
        .domains
        .iter()
        .all(|d| d.joules.is_none() && d.source == Source::Unsupported));
    assert_eq!(r.energy_kwh, None);
    assert_eq!(r.co2e_kg, None);
    assert!(serde_json::to_string(r)
        .unwrap()
        .contains("\"joules\":null"));
}

#[test]
fn child_killed_by_a_signal_gives_128_plus_signal() {
    let out = run(&["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.exit_code, 137);
    assert_eq!(out.report.signal.as_deref(), Some("SIGKILL"));
    assert!(out.report.error.as_deref().unwrap().contains("SIGKILL"));
    // Energy is still reported for the time it ran.
    assert!(out.report.energy_kwh.is_some());
}

/// Sends `sig` to this (the measuring) process once `ready` exists.
fn signal_self_when(ready: &Path, sig: libc::c_int) -> std::thread::JoinHandle<bool> {
    let ready = ready.to_path_buf();
    std::thread::spawn(move || {
        for _ in 0..2000 {
            if ready.exists() {
                // SAFETY: kill(2) on our own pid; measure's handler is installed by now.
                unsafe { libc::kill(libc::getpid(), sig) };
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    })
}

#[test]
fn sigterm_to_the_measuring_process_is_forwarded_to_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let seen = dir.path().join("seen");
    // The child records the signal and exits 42; unforwarded, it gives up after ~20 s with 3.
    let script = r#"trap 'echo TERM > "$2"; exit 42' TERM
touch "$1"
i=0; while [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; exit 3"#;
    let sender = signal_self_when(&ready, libc::SIGTERM);
    let out = run(&[
        "sh",
        "-c",
        script,
        "sh",
        ready.to_str().unwrap(),
        seen.to_str().unwrap(),
    ]);
    assert!(sender.join().unwrap(), "the child never became ready");
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "TERM");
    assert_eq!(out.exit_code, 42);
    assert_eq!(
        out.report.signals_received,
        ["SIGTERM: forwarded to the command"]
    );
}

#[test]
fn sigint_forwarded_to_a_child_without_handler_kills_it() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let sender = signal_self_when(&ready, libc::SIGINT);
    let out = run(&[
        "sh",
        "-c",
        "touch \"$1\"; exec sleep 20",
        "sh",
        ready.to_str().unwrap(),
    ]);
    assert!(sender.join().unwrap());
    assert_eq!(out.exit_code, 128 + libc::SIGINT);
    assert_eq!(out.report.signal.as_deref(), Some("SIGINT"));
}

#[test]
fn projection_and_bad_usage() {
    let mut o = opts(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
    ]);
    o.projection = Some(ProjectionSpec {
        steps_done: 5,
        total_steps: 50,
    });
    let out = measure(&o).unwrap();
    let p = out.report.projection.as_ref().unwrap();
    let e = out.report.energy_kwh.unwrap();
    assert!((p.energy_kwh.unwrap().value - 10.0 * e.value).abs() < 1e-15);
    assert!((p.energy_kwh.unwrap().high - 10.0 * e.high).abs() < 1e-15);
    assert!((p.duration_s - 10.0 * out.report.duration_s).abs() < 1e-9);

    let empty = MeasureOptions {
        command: vec![],
        ..opts(&[])
    };
    assert!(matches!(measure(&empty), Err(EnergyError::Usage(_))));
}

/// A fake powercap tree under `root` with one RAPL package counter at 1000 µJ; its folder.
fn fake_package(root: &Path) -> PathBuf {
    let z = root.join("intel-rapl:0");
    std::fs::create_dir_all(&z).unwrap();
    std::fs::write(z.join("name"), "package-0\n").unwrap();
    std::fs::write(z.join("energy_uj"), "1000\n").unwrap();
    std::fs::write(z.join("max_energy_range_uj"), "262143328850\n").unwrap();
    z
}

#[test]
fn with_a_rapl_package_the_cpu_is_measured_not_estimated() {
    let dir = tempfile::tempdir().unwrap();
    fake_package(dir.path());
    let mut o = opts(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
    ]);
    o.meter.powercap_root = Some(dir.path().to_path_buf());
    let out = measure(&o).unwrap();
    let r = &out.report;
    assert_eq!(r.domains.len(), 1);
    let d = &r.domains[0];
    assert_eq!(
        (d.name.as_str(), d.source),
        ("cpu-package-0", Source::Measured)
    );
    // The fake counter did not move, but not long enough to tell (the probe, a 1 s idle
    // baseline and a short command): 0 J, said to be unconfirmed.
    assert_eq!(d.joules, Some(0.0));
    assert!(
        (d.warnings.iter()).any(|w| w.contains("has not changed at all since it was first read")),
        "{d:?}"
    );
    assert_eq!(r.total.includes, ["cpu-package-0 (measured)"]);
    assert!(r
        .assumptions
        .notes
        .iter()
        .any(|n| n.contains("other processes")));
    assert!(r.cpu_seconds.unwrap() > 0.0);
    assert!(out
        .trace
        .to_csv()
        .starts_with("t_s,cpu-package-0_watts,rss_bytes"));
}

/// A counter that never moved (a constant `energy_uj`) over the probe, the idle baseline (1 s)
/// and a 2 s command, 3.3 s in all, has no reading: not a measured 0 J (the window alone, under
/// 3 s, once passed for one), and the total says so.
#[test]
fn a_counter_still_since_it_was_found_has_no_reading_even_in_a_short_window() {
    let dir = tempfile::tempdir().unwrap();
    fake_package(dir.path());
    let mut o = opts(&["sleep", "2"]);
    o.meter.powercap_root = Some(dir.path().to_path_buf());
    o.idle = Some(Duration::from_secs(1));
    let out = measure(&o).unwrap();
    let d = &out.report.domains[0];
    assert_eq!((d.source, d.joules), (Source::Unsupported, None), "{d:?}");
    assert!(
        d.reason
            .as_deref()
            .unwrap()
            .contains("the counter did not move in"),
        "{d:?}"
    );
    assert_eq!(out.report.energy_kwh, None);
    // The idle baseline (1.3 s unchanged) keeps its 0 W, but says nothing confirms it.
    let w = out.report.warnings.join("\n");
    assert!(
        w.contains("idle baseline, cpu-package-0: the counter has not changed at all"),
        "{w}"
    );
}

/// Followed by its process tree (`--no-cgroup`), a background job still running when the
/// command exits is said as a cgroup says it: counted until then, left running.
#[test]
fn a_background_job_left_running_is_said_without_a_cgroup_too() {
    let mut o = opts(&["sh", "-c", "sleep 2 & exit 0"]);
    o.cgroup = false;
    let out = measure(&o).unwrap();
    let w = out.report.warnings.join("\n");
    assert!(
        w.contains("1 process(es) the command started were still running when it exited")
            && w.contains("They were left running"),
        "{w}"
    );
}

/// `--idle-baseline` with no counter to take it of is said, not silently dropped.
#[test]
fn an_idle_baseline_without_a_counter_is_said() {
    let mut o = opts(&["true"]);
    o.idle = Some(Duration::from_millis(200));
    let out = measure(&o).unwrap();
    assert!(out.report.idle_baseline.is_empty());
    assert!(
        (out.report.assumptions.notes.iter())
            .any(|n| n.contains("--idle-baseline was not used: there is no energy counter")),
        "{:?}",
        out.report.assumptions.notes
    );
}

/// The CPU seconds the estimate used, from its assumptions.
fn estimate_cpu_seconds(o: &MeasureOutcome) -> f64 {
    o.report
        .domains
        .iter()
        .find(|d| d.name == "cpu-estimate")
        .and_then(|d| d.assumptions.as_ref())
        .map(|a| a.cpu_seconds)
        .unwrap()
}

/// User + system seconds of the shell itself: the first line of `times`, e.g.
/// `0m0.680000s 0m0.010000s`.
fn shell_cpu_seconds(times: &str) -> f64 {
    let first = times.lines().next().unwrap_or_default();
    first
        .split_whitespace()
        .map(|t| {
            let (m, s) = t
                .trim_end_matches('s')
                .split_once('m')
                .unwrap_or_else(|| panic!("unexpected `times` output: {times:?}"));
            m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
        })
        .sum()
}

/// A grandchild that double-forks out of the tree and burns a CPU second was counted as
/// 0.009 J with no warning. In its own cgroup it is counted; followed by the tree (no
/// cgroup), it is adopted, counted and reported. Either way the top-level and the estimate's
/// CPU seconds agree. The grandchild does a fixed amount of work (a million shell loop
/// iterations: about 0.7 CPU s on the 2-core CI VM), writes the CPU time the kernel charged it
/// (the shell's `times`), and the command waits for it to end: the measurement must include
/// what the grandchild itself says it used, on a machine of any speed.
#[test]
fn a_grandchild_that_leaves_the_tree_is_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    for cgroup in [true, false] {
        let done = dir.path().join(format!("done-{cgroup}"));
        let times = dir.path().join(format!("times-{cgroup}"));
        let script = format!(
            "(sh -c 'i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); done; times > {1}; touch {0}' &); \
             n=0; while [ ! -e {0} ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done; \
             sleep 0.2",
            done.display(),
            times.display()
        );
        let o = measure(&MeasureOptions {
            cgroup,
            ..opts(&["sh", "-c", &script])
        })
        .unwrap();
        assert!(
            done.exists(),
            "the grandchild did not finish within a minute"
        );
        let r = &o.report;
        let cpu = r.cpu_seconds.unwrap();
        let own = shell_cpu_seconds(&std::fs::read_to_string(&times).unwrap());
        assert!(own >= 0.05, "the grandchild's loop took only {own} CPU s");
        // `times` counts in clock ticks (10 ms); allow one tick each for user and system.
        assert!(
            cpu >= own - 0.02,
            "cgroup {cgroup}: {cpu} CPU s measured, the grandchild alone used {own} ({})",
            r.accounting
        );
        assert!(
            (cpu - estimate_cpu_seconds(&o)).abs() < 1e-9,
            "{cpu} vs {}",
            estimate_cpu_seconds(&o)
        );
        if r.accounting.starts_with("its process tree") {
            assert!(
                r.warnings
                    .iter()
                    .any(|w| w.contains("left the command's process tree")),
                "{:?}",
                r.warnings
            );
        }
        if !cgroup {
            assert!(r.accounting.contains("--no-cgroup"), "{}", r.accounting);
        }
    }
}

/// `sleep 1` was reported with wattbench's own memory (114 MiB, from wait4's ru_maxrss,
/// which counts the parent's pages copied at fork). The peak must be the command's.
#[test]
fn peak_memory_is_the_commands_not_ours() {
    // Hold 64 MiB in this (test) process so that a leak of our own RSS would show.
    let ballast = vec![1u8; 64 << 20];
    std::hint::black_box(&ballast);
    let o = run(&["sleep", "0.5"]);
    let peak = o.report.peak_memory_bytes.unwrap();
    assert!(
        peak < 32 << 20,
        "{peak} bytes for sleep ({})",
        o.report.peak_memory_source
    );
    // A command that holds memory is seen: a shell holding 60 MB in a variable.
    let o = run(&[
        "sh",
        "-c",
        "x=$(head -c 60000000 /dev/zero | tr '\\0' a); sleep 0.3; test ${#x} -gt 0",
    ]);
    let peak = o.report.peak_memory_bytes.unwrap();
    assert!(
        peak > 50 << 20,
        "{peak} bytes ({})",
        o.report.peak_memory_source
    );
}

/// A counter whose readings stop midway (here its file goes away after 0.6 s of a 1.5 s
/// command) is completed to the whole run at its mean power, with a warning, as in `run`'s
/// cases: before, `measure` counted 3 J as if the package had stopped drawing power.
#[test]
fn a_counter_lost_midway_is_completed_to_the_run_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let z = fake_package(dir.path());
    let f = z.join("energy_uj");
    // The new value is put in place by a rename, as the kernel's file changes at once: a
    // reading between `>`'s truncation and its write would see an empty file, a counter
    // lost already at 0.3 s with 0 J read.
    let script = format!(
        "sleep 0.3; echo 3001000 > {f}.new; mv {f}.new {f}; sleep 0.3; rm {f}; sleep 0.9",
        f = f.display()
    );
    let mut o = opts(&["sh", "-c", &script]);
    o.meter.powercap_root = Some(dir.path().to_path_buf());
    o.idle = Some(Duration::ZERO);
    let r = measure(&o).unwrap().report;
    let d = &r.domains[0];
    assert_eq!(d.name, "cpu-package-0");
    // 3 J over the readings' span, then that mean power for the rest of the run.
    let j = d.joules.unwrap();
    assert!(j > 5.0, "{j} J: the lost part of the run is not counted");
    assert!((d.window_s - r.duration_s).abs() < 1e-9, "{d:?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("cpu-package-0") && w.contains("counted at the mean power")),
        "{:?}",
        r.warnings
    );
}
