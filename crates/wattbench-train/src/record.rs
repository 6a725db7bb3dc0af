//! A training report as a case of the run-file format: `op` e2e, `mode` train, the model's
//! FLOPs in [`E2eParams`], time and throughput per step, energy per step in the same shape as
//! `wattbench run` writes per call, and the full report under `e2e`.
use serde_json::json;
use wattbench_core::result::{CaseResult, Memory, Throughput};
use wattbench_core::workload::{E2eParams, Params};
use wattbench_core::{DType, Mode, Op};

use crate::run::TrainReport;

impl TrainReport {
    /// The model, batch, steps and FLOPs as core's shape parameters.
    pub fn params(&self) -> Params {
        Params::E2e(E2eParams {
            model: self.model.kind(),
            batch: self.batch_size,
            steps: self.steps as usize,
            forward_flops: self.flops.forward,
            step_flops: self.flops.step,
        })
    }

    /// `energy` of the case: per-step figures under the names `wattbench run` uses per call
    /// (`total_joules_per_iter`...), so reports and comparisons read them unchanged.
    pub fn case_energy(&self) -> serde_json::Value {
        let e = &self.energy;
        let rows: Vec<_> = e
            .domains
            .iter()
            .map(|d| {
                json!({
                    "name": d.name,
                    "source": d.source,
                    "reason": d.reason,
                    "scope": d.scope,
                    "in_total": d.in_total,
                    "joules_per_iter": d.joules_per_step,
                    "uncertainty_j": d.uncertainty_j.filter(|_| e.steps > 0).map(|u| u / e.steps as f64),
                    "window_s": e.window_s,
                    "avg_watts": d.avg_watts,
                    "idle_watts": d.idle_watts,
                    "net_joules_per_iter": d.net_joules_per_step,
                    "note": d.note,
                    "assumptions": d.assumptions,
                })
            })
            .collect();
        let gflops_per_joule = e
            .per_step_j
            .filter(|j| j.value > 0.0)
            .map(|j| self.flops.step as f64 / 1e9 / j.value);
        json!({
            "calls": e.steps,
            "unit": "training step",
            "domains": rows,
            "total_joules_per_iter": e.per_step_j,
            "total_joules_per_sample": e.per_sample_j,
            "total_includes": e.includes,
            "total_excludes": e.excludes,
            "total_sources": e.sources,
            "total_mixes_sources": e.mixed,
            "gflops_per_joule": gflops_per_joule,
            "notes": e.notes,
        })
    }

    /// The run as one case: id `e2e/train/<model>_b<batch>_s<steps>/f32/<backend>/<device>`.
    pub fn to_case_result(&self) -> CaseResult {
        let params = self.params();
        let ok = self.time.median_s.is_finite();
        CaseResult {
            id: format!(
                "{}/{}/{}/{}/{}/{}",
                Op::E2e.as_str(),
                Mode::Train.as_str(),
                params.label(),
                DType::F32.as_str(),
                self.backend,
                self.device
            ),
            tag: None,
            op: Op::E2e,
            mode: Mode::Train,
            backend: self.backend.clone(),
            device: self.device.clone(),
            dtype: DType::F32,
            params,
            status: self.status,
            reason: self.reason.clone(),
            verification: None,
            time: ok.then(|| self.time.clone()),
            // A whole model has no "minimum bytes": bytes, GB/s and intensity are null.
            throughput: ok.then_some(Throughput {
                flops: self.flops.step,
                gflops_per_s: self.gflops_per_s,
                bytes: None,
                gbytes_per_s: None,
                intensity: None,
            }),
            memory: Memory {
                host_peak_rss_bytes: self.memory.host_peak_rss_bytes,
                host_peak_reset: self.memory.host_peak_reset,
                device_peak_bytes: self.memory.device_peak_bytes,
            },
            energy: Some(self.case_energy()),
            e2e: Some(serde_json::to_value(self).expect("the report serialises")),
        }
    }
}
