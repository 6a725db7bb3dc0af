//! Harness overhead: the per-call time `wattbench run` reports for a backend call, against a
//! bare loop over the same call, measured side by side in alternating rounds.
//!
//! `make bench-overhead` (or `cargo bench -p wattbench --bench harness_overhead`). Prints a
//! table and writes `results/harness-overhead.json`. The target is a ratio within 5% of 1.
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use wattbench_core::harness::{CaseInputs, Harness, HarnessConfig};
use wattbench_core::workload::{GemmParams, RnnParams};
use wattbench_core::{Backend, Case, Cell, DType, Mode, Params};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let window = 0.3;
    let rounds = 9;
    let cases = [
        Params::Gemm(GemmParams {
            m: 64,
            n: 64,
            k: 64,
            trans_a: false,
            trans_b: false,
        }),
        Params::Gemm(GemmParams {
            m: 512,
            n: 512,
            k: 512,
            trans_a: false,
            trans_b: false,
        }),
        Params::Rnn(RnnParams {
            cell: Cell::Lstm,
            hidden: 256,
            batch: 4,
            steps: 5,
        }),
    ];
    let backend = wattbench_candle::CandleBackend;
    let flag = AtomicBool::new(false);
    let cfg = HarnessConfig {
        min_time_s: window,
        min_samples: 10,
        bootstrap_resamples: 100,
        ..Default::default()
    };
    let harness = Harness {
        cfg: cfg.clone(),
        interrupt: &flag,
    };
    let mut rows = Vec::new();
    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "case (candle/cpu f32)", "harness median", "bare loop", "ratio"
    );
    for params in cases {
        let case = Case {
            params,
            mode: Mode::Infer,
            dtype: DType::F32,
            tag: None,
        };
        let inputs = CaseInputs::new(case.clone(), &cfg);
        let mut bare_prep = backend
            .prepare(&case, "cpu", inputs.tensors())
            .expect("prepare");
        let (mut h, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let r = harness
                .run_case(&inputs, &backend, "cpu", None)
                .expect("not interrupted");
            h.push(r.time.expect("timed").median_s);
            let t0 = Instant::now();
            let mut n = 0u64;
            while t0.elapsed().as_secs_f64() < window {
                bare_prep.execute().expect("execute");
                n += 1;
            }
            b.push(t0.elapsed().as_secs_f64() / n as f64);
        }
        let (hm, bm) = (median(h), median(b));
        let ratio = hm / bm;
        println!(
            "{:<28} {:>11.2} µs {:>11.2} µs {:>8.3}",
            params.label(),
            hm * 1e6,
            bm * 1e6,
            ratio
        );
        rows.push(serde_json::json!({
            "case": params.label(), "harness_median_s": hm, "bare_loop_s": bm, "ratio": ratio, "rounds": rounds,
        }));
    }
    let doc = serde_json::json!({
        "what": "per-call median reported by the harness / per-call time of a bare loop over execute(), candle cpu f32, medians over alternating rounds",
        "created_at": chrono::Utc::now().to_rfc3339(),
        "rows": rows,
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../results/harness-overhead.json");
    // Whole or not at all: an interrupted write keeps the recorded file.
    wattbench_core::output::write_atomically(
        &path,
        serde_json::to_string_pretty(&doc).expect("json").as_bytes(),
    )
    .expect("write results/harness-overhead.json");
    println!("wrote {}", path.display());
}
