//! Property tests of the result-file reader: any text is read or refused with a reason, never
//! a panic; a file of another schema version is refused as such, whatever else it holds; a
//! written file reads back equal.
mod common;

use common::cfg;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;
use std::collections::BTreeMap;
use wattbench_core::energy::{CaseEnergy, DomainRecord, Interval, Source};
use wattbench_core::harness::HarnessConfig;
use wattbench_core::result::{
    CaseResult, Config, CpuId, Environment, Filters, GpuRecord, GpuState, Host, Memory, MeterInfo,
    ReadError, RunConfig, RunEnergy, RunFile, Status, Throughput, TrainConfig, TrainSettings,
    Verification, VerifyMethod, SCHEMA_VERSION,
};
use wattbench_core::stats::TimeStats;
use wattbench_core::workload::{Cell, ConvParams, GemmParams, Params, RnnParams};
use wattbench_core::{DType, Mode, ModelConfig, ModelKind, Op};

/// Finite floats of every magnitude and sign (JSON has no NaN or infinity).
fn num() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO
}

/// Text with escapes, control characters and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,8}",
        prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
}

fn params() -> impl Strategy<Value = Params> {
    let n = || any::<u64>().prop_map(|v| v as usize);
    prop_oneof![
        (n(), n(), n(), any::<bool>(), any::<bool>()).prop_map(|(m, nn, k, a, b)| {
            Params::Gemm(GemmParams::new(m, nn, k).transposed(a, b))
        }),
        (prop::array::uniform7(n()), prop::array::uniform4(n())).prop_map(|(d, e)| {
            Params::Conv2d(
                ConvParams::new(d[0], d[1], d[2], d[3], d[4], d[5], d[6])
                    .padded(e[0], e[1])
                    .strided(e[2], e[3]),
            )
        }),
        (
            select(&[Cell::Vanilla, Cell::Lstm, Cell::Gru][..]),
            n(),
            n(),
            n()
        )
            .prop_map(|(c, h, b, t)| Params::Rnn(RnnParams::new(c, h, b, t))),
    ]
}

/// An error of a verification: finite, or infinite (an output missing, missized or not
/// finite), which files hold as null.
fn error() -> impl Strategy<Value = f64> {
    prop_oneof![4 => num(), 1 => Just(f64::INFINITY)]
}

/// Finite non-negative floats of every magnitude: times and rates (the reader refuses
/// negative ones).
fn non_negative() -> impl Strategy<Value = f64> {
    num().prop_map(f64::abs)
}

fn time_stats() -> impl Strategy<Value = TimeStats> {
    (
        prop::collection::vec(non_negative(), 1..5),
        1..=u64::MAX,
        prop::array::uniform6(non_negative()),
        // A median's interval, or none (one sample: null bounds).
        prop_oneof![
            3 => prop::array::uniform2(non_negative()),
            1 => Just([f64::NEG_INFINITY, f64::INFINITY]),
        ],
    )
        .prop_map(
            |(samples_s, iters_per_sample, f, ci95_median_s)| TimeStats {
                samples_s,
                iters_per_sample,
                median_s: f[0],
                mean_s: f[1],
                min_s: f[2],
                max_s: f[3],
                p95_s: f[4],
                mad_s: f[5],
                ci95_median_s,
            },
        )
}

fn interval() -> impl Strategy<Value = Interval> {
    (num(), num(), num()).prop_map(|(value, low, high)| Interval { value, low, high })
}

const SOURCES: [Source; 4] = [
    Source::Measured,
    Source::Integrated,
    Source::Estimated,
    Source::Unsupported,
];

fn domain() -> impl Strategy<Value = DomainRecord> {
    (
        (
            text(),
            select(&SOURCES[..]),
            prop::option::of(text()),
            text(),
        ),
        (
            any::<bool>(),
            prop::array::uniform6(prop::option::of(num())),
            num(),
        ),
        (
            prop::option::of(text()),
            prop::collection::vec(text(), 0..2),
        ),
    )
        .prop_map(
            |((name, source, reason, scope), (in_total, o, window_s), (note, warnings))| {
                DomainRecord {
                    name,
                    source,
                    reason,
                    scope,
                    in_total,
                    joules_per_iter: o[0],
                    uncertainty_j: o[1],
                    window_s,
                    avg_watts: o[2],
                    idle_watts: o[3],
                    net_joules_per_iter: o[4],
                    net_uncertainty_j: o[5],
                    note,
                    assumptions: None,
                    warnings,
                    power_check: None,
                }
            },
        )
}

fn case_energy() -> impl Strategy<Value = CaseEnergy> {
    (
        (
            any::<u64>(),
            text(),
            num(),
            prop::collection::vec(domain(), 0..3),
        ),
        (
            prop::option::of(interval()),
            prop::option::of(num()),
            prop::option::of(num()),
        ),
        (
            prop::collection::vec(text(), 0..2),
            prop::collection::vec(select(&SOURCES[..]), 0..3),
            any::<bool>(),
            prop::option::of(num()),
        ),
    )
        .prop_map(
            |(
                (calls, unit, window_s, domains),
                (total, net, net_u),
                (notes, sources, mixed, g),
            )| {
                CaseEnergy {
                    calls,
                    unit,
                    window_s,
                    domains,
                    total_joules_per_iter: total,
                    net_joules_per_iter: net,
                    net_uncertainty_j: net_u,
                    total_includes: notes.clone(),
                    total_excludes: notes.clone(),
                    total_sources: sources,
                    total_mixes_sources: mixed,
                    gflops_per_joule: g,
                    notes,
                    gpu_state: vec![GpuState::default()],
                }
            },
        )
}

fn case_result() -> impl Strategy<Value = CaseResult> {
    let verification = (
        error(),
        num(),
        prop::option::of(text()),
        any::<bool>(),
        any::<u64>(),
        prop::collection::vec(text(), 0..2),
    )
        .prop_map(|(e, tol, note, passed, checked, defects)| Verification {
            rel_l2_error: e,
            rel_max_error: Some(e),
            tolerance: tol,
            tolerance_note: note,
            passed,
            method: if passed {
                VerifyMethod::Full
            } else {
                VerifyMethod::Sampled
            },
            checked_values: checked,
            per_output: BTreeMap::from([("y".to_string(), e), ("dw".to_string(), tol)]),
            unchecked_updates: Vec::new(),
            defects,
        });
    let throughput = (
        any::<u64>(),
        any::<u64>(),
        prop::array::uniform3(non_negative()),
    )
        .prop_map(|(flops, bytes, f)| Throughput {
            flops,
            gflops_per_s: f[0],
            bytes,
            gbytes_per_s: f[1],
            intensity: f[2],
        });
    (
        (
            text(),
            prop::option::of(text()),
            select(&Op::ALL[..]),
            select(&Mode::ALL[..]),
        ),
        (text(), text(), select(&DType::ALL[..]), params()),
        (
            select(&[Status::Ok, Status::Skipped, Status::Failed][..]),
            text(),
            verification,
            time_stats(),
        ),
        (
            prop::option::of(throughput),
            (prop::option::of(any::<u64>()), any::<bool>()),
            prop::option::of(case_energy()),
            prop::option::of(text()),
        ),
    )
        .prop_map(
            |(
                (id, tag, op, mode),
                (backend, device, dtype, params),
                (status, reason, mut v, time),
                (tp, (rss, reset), energy, implementation),
            )| {
                // What each status requires (`CaseResult::check_status`): an ok case verified,
                // passed and timed, a skipped one a reason only, a failed one a reason and
                // perhaps the verification it failed.
                v.passed = status == Status::Ok;
                let (reason, v, time) = match status {
                    Status::Ok => (None, Some(v), Some(time)),
                    Status::Skipped => (Some(reason), None, None),
                    Status::Failed => (Some(reason), Some(v), None),
                };
                CaseResult {
                    id,
                    tag,
                    op,
                    mode,
                    backend,
                    device,
                    dtype,
                    params,
                    status,
                    reason,
                    verification: v,
                    time,
                    throughput: tp,
                    memory: Memory {
                        host_peak_rss_bytes: rss,
                        host_peak_reset: reset,
                        device_peak_bytes: rss,
                    },
                    energy,
                    implementation,
                    notes: Vec::new(),
                }
            },
        )
}

fn environment() -> impl Strategy<Value = Environment> {
    let gpu = (
        any::<u32>(),
        prop::option::of(text()),
        prop::option::of(num()),
        any::<bool>(),
    )
        .prop_map(|(index, name, watts, metered)| GpuRecord {
            index,
            name: name.clone(),
            uuid: name.clone(),
            pci_bus_id: name.clone(),
            driver_version: name,
            power_limit_watts: watts,
            memory_total_bytes: Some(u64::MAX),
            energy_counter: metered,
            metered,
            selection: "visible".into(),
            power_reading: "1 s average".into(),
            state: GpuState {
                index,
                power_watts: watts,
                throttle_reasons: Some(vec!["gpu_idle".into()]),
                ..GpuState::default()
            },
        });
    (
        (
            prop::option::of(text()),
            any::<u32>(),
            prop::option::of(any::<u64>()),
        ),
        prop::collection::vec(gpu, 0..2),
        prop::collection::btree_map(text(), text(), 0..3),
        prop::option::of(text()),
        (
            text(),
            prop::option::of(text()),
            prop::collection::vec(text(), 0..2),
            prop::option::of(prop::collection::btree_map(text(), text(), 0..3)),
        ),
    )
        .prop_map(
            |((host, cores, mem), gpus, software, git_commit, (meter, why, notes, variables))| {
                Environment {
                    host: Host {
                        hostname: host.clone(),
                        container_hostname: software.keys().next().cloned(),
                        cpu_model: host,
                        cpu_id: mem.map(|m| CpuId {
                            vendor: "AuthenticAMD".into(),
                            family: (m % 40) as u32,
                            model: cores,
                            stepping: (m % 2 == 0).then_some(1),
                        }),
                        logical_cores: cores as usize,
                        usable_cores: mem.map(|_| cores as usize),
                        memory_bytes: mem,
                        os: None,
                        kernel: None,
                    },
                    gpus,
                    software,
                    git_commit,
                    meters: vec![MeterInfo::unavailable(
                        meter,
                        "rapl",
                        why.unwrap_or_default(),
                    )],
                    meter_warnings: notes.clone(),
                    libraries: notes,
                    variables,
                }
            },
        )
}

fn config() -> impl Strategy<Value = Config> {
    let run = (
        prop::collection::vec(text(), 0..3),
        text(),
        prop::collection::vec(select(&Op::ALL[..]), 0..3),
        prop::collection::vec(text(), 0..2),
        (
            prop::array::uniform3(num()),
            any::<u64>(),
            prop::option::of(num()),
        ),
    )
        .prop_map(|(argv, suite, op, set, (f, seed, tolerance))| {
            Config::Run(RunConfig {
                argv,
                suite,
                filters: Filters {
                    op,
                    backend: set.clone(),
                    device: set.clone(),
                    dtype: DType::ALL.to_vec(),
                    mode: vec![Mode::Train],
                    set,
                },
                harness: HarnessConfig {
                    warmup_s: f[0],
                    min_time_s: f[1],
                    max_time_s: f[2],
                    seed,
                    tolerance,
                    ..HarnessConfig::default()
                },
            })
        });
    let train = (
        prop::collection::vec(text(), 0..3),
        text(),
        select(&ModelKind::ALL[..]),
        any::<u64>(),
        num(),
    )
        .prop_map(|(argv, backend, kind, steps, lr)| {
            let mut settings = TrainSettings::new(
                ModelConfig::new(kind, wattbench_core::model::Size::Tiny),
                steps,
            );
            settings.lr = lr;
            Config::Train(TrainConfig {
                argv,
                backend,
                settings,
            })
        });
    prop_oneof![run, train]
}

fn run_file() -> impl Strategy<Value = RunFile> {
    let energy = (prop::collection::vec(text(), 0..2), num(), num(), text()).prop_map(
        |(idle_notes, cooldown_s, min_window_s, note)| RunEnergy {
            idle_baseline: Vec::new(),
            idle_after: Vec::new(),
            idle_notes,
            cooldown_s,
            min_window_s,
            note,
        },
    );
    (
        (text(), non_negative(), any::<bool>()),
        environment(),
        config(),
        prop::option::of(energy),
        prop::collection::vec(case_result(), 0..4),
    )
        .prop_map(
            |((created_at, duration_s, interrupted), environment, config, energy, cases)| RunFile {
                energy,
                cases,
                ..RunFile::new(created_at, duration_s, interrupted, environment, config)
            },
        )
}

/// Any JSON, with the keys of a result file among others.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        select(
            &[
                "schema_version",
                "created_at",
                "cases",
                "environment",
                "config",
                "command",
                "params",
                "energy",
            ][..]
        )
        .prop_map(String::from),
        text(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        num().prop_map(Value::from),
        (0u32..4).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A refusal that names its reason.
fn refused(r: Result<RunFile, ReadError>) -> Result<ReadError, TestCaseError> {
    match r {
        Ok(doc) => Err(TestCaseError::fail(format!("read as a result: {doc:?}"))),
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(
                msg.starts_with("not a wattbench result file: ")
                    || msg.starts_with("schema version "),
                "{msg}"
            );
            Ok(e)
        }
    }
}

/// The version error for `v`, with advice in the right direction.
fn check_version_refusal(e: &ReadError, v: u32) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(e, ReadError::Version { found, .. } if *found == v),
        "{e:?}"
    );
    let msg = e.to_string();
    prop_assert!(msg.contains(&format!("schema version {v},")), "{msg}");
    let direction = if v < SCHEMA_VERSION { "older" } else { "newer" };
    prop_assert!(msg.contains(direction), "{msg}");
    Ok(())
}

proptest! {
    #![proptest_config(cfg(128))]

    #[test]
    fn any_bytes_are_refused_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        refused(RunFile::from_json(&String::from_utf8_lossy(&bytes)))?;
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow(depth in 1usize..20_000, obj in any::<bool>()) {
        let (open, close) = if obj { ("{\"a\":", "}") } else { ("[", "]") };
        let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        refused(RunFile::from_json(&text))?;
    }

    #[test]
    fn any_json_is_refused_and_other_versions_say_so(v in json()) {
        let e = refused(RunFile::from_json(&v.to_string()))?;
        match v.get("schema_version").and_then(Value::as_u64) {
            Some(n) if n != u64::from(SCHEMA_VERSION) && n <= u64::from(u32::MAX) => {
                check_version_refusal(&e, n as u32)?;
            }
            _ => prop_assert!(matches!(e, ReadError::NotAResult(_)), "{e:?}"),
        }
    }

    #[test]
    fn written_files_read_back_equal(doc in run_file(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&doc)
        } else {
            serde_json::to_string(&doc)
        }
        .unwrap();
        let back = RunFile::from_json(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, doc);
    }

    #[test]
    fn another_version_is_refused_whatever_the_file_holds(
        doc in run_file(),
        v in any::<u32>().prop_filter("another version", |v| *v != SCHEMA_VERSION),
    ) {
        let mut json = serde_json::to_value(&doc).unwrap();
        json["schema_version"] = v.into();
        let e = refused(RunFile::from_json(&json.to_string()))?;
        check_version_refusal(&e, v)?;
    }

    #[test]
    fn damaged_files_are_read_or_refused(
        doc in run_file(),
        damage in (any::<prop::sample::Index>(), json(), 0u8..3),
    ) {
        let (at, junk, how) = damage;
        let text = serde_json::to_string(&doc).unwrap();
        let damaged = match how {
            // Cut short anywhere (on a character boundary): never a whole document.
            0 => {
                let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
                let cut = cuts[at.index(cuts.len())];
                refused(RunFile::from_json(&text[..cut]))?;
                return Ok(());
            }
            // One value anywhere replaced by any JSON, or one key removed.
            _ => {
                let mut v = serde_json::to_value(&doc).unwrap();
                let mut nodes = Vec::new();
                collect_paths(&v, &mut Vec::new(), &mut nodes);
                let path = &nodes[at.index(nodes.len())];
                if how == 1 {
                    *v.pointer_mut(path).unwrap() = junk;
                } else if let Some((parent, key)) = path.rsplit_once('/') {
                    if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                        m.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                }
                v.to_string()
            }
        };
        if let Err(e) = RunFile::from_json(&damaged) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

/// serde reads a missing `Option` as `None`: an ok case whose `time` or `verification` was
/// removed was read, and shown as a verified, timed case with blank figures. Refused now, as
/// are a failed verification under status ok and a skipped or failed case without a reason.
#[test]
fn a_case_missing_what_its_status_requires_is_refused() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut doc = run_file().new_tree(&mut runner).unwrap().current();
    while !doc.cases.iter().any(|c| c.status == Status::Ok)
        || !doc.cases.iter().any(|c| c.status != Status::Ok)
    {
        doc = run_file().new_tree(&mut runner).unwrap().current();
    }
    let text = serde_json::to_string(&doc).unwrap();
    RunFile::from_json(&text).expect("the generated file is whole");
    let ok = doc
        .cases
        .iter()
        .position(|c| c.status == Status::Ok)
        .unwrap();
    let other = doc
        .cases
        .iter()
        .position(|c| c.status != Status::Ok)
        .unwrap();
    let damaged = |i: usize, edit: &dyn Fn(&mut Value)| {
        let mut v = serde_json::to_value(&doc).unwrap();
        edit(&mut v["cases"][i]);
        RunFile::from_json(&v.to_string())
    };
    let remove = |key: &'static str| {
        move |c: &mut Value| {
            c.as_object_mut().unwrap().remove(key);
        }
    };
    for (i, edit, says) in [
        (ok, &remove("time") as &dyn Fn(&mut Value), "without `time`"),
        (ok, &remove("verification"), "without `verification`"),
        (
            ok,
            &|c: &mut Value| c["verification"]["passed"] = false.into(),
            "did not pass",
        ),
        (other, &remove("reason"), "without a `reason`"),
    ] {
        let e = damaged(i, edit).expect_err(says).to_string();
        assert!(e.contains(says) && e.contains(&doc.cases[i].id), "{e}");
    }
}

/// Found by `any_json_is_refused_and_other_versions_say_so`: serde reads a struct from a JSON
/// array too, so `[1]` was taken as "schema version 1, written by an older wattbench" instead
/// of "not a wattbench result file".
#[test]
fn a_json_array_is_not_read_as_a_version() {
    for text in ["[1]", "[0, 1]", "[3]"] {
        let e = RunFile::from_json(text).unwrap_err();
        assert!(matches!(e, ReadError::NotAResult(_)), "{text}: {e}");
    }
}

/// JSON pointers of every node of `v` (the root as ``).
fn collect_paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<String>) {
    out.push(at.iter().map(|k| format!("/{k}")).collect());
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, c)| (k.replace('~', "~0").replace('/', "~1"), c))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (i.to_string(), c))
            .collect(),
        _ => return,
    };
    for (k, c) in children {
        at.push(k);
        collect_paths(c, at, out);
        at.pop();
    }
}
