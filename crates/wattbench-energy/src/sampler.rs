//! The background sampler: one thread that reads every domain and the measured process
//! tree's memory at a fixed interval, accumulating energy (so RAPL wraps are seen and
//! power-only GPUs get integrated), recording a power/memory trace, and reading the driver's
//! power beside each GPU's energy counter for the cross-check ([`crate::crosscheck`]).

use std::fmt::Write as _;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::crosscheck::CheckSamples;
use crate::integrate::Accumulator;
use crate::meters::{CpuScope, Domain, Meters, ReadContext, Reading};
use crate::EnergyError;

/// One row of the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// Seconds since the start.
    pub t_s: f64,
    /// Mean power of each domain since the previous row, W (empty on the first row). For an
    /// energy counter, the mean over the counter's update that covers the row (see
    /// [`spread_counter_updates`]); empty where no update covers it yet.
    pub watts: Vec<Option<f64>>,
    /// Host RSS of the measured process (tree), bytes.
    pub rss_bytes: Option<u64>,
    /// CPU cores busy in the measured process (tree) since the previous row.
    pub cpu_cores: Option<f64>,
    /// Device memory used per GPU, bytes.
    pub device_memory_bytes: Vec<Option<u64>>,
}

/// A power/memory trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Domain names, one per `watts` column.
    pub domains: Vec<String>,
    /// GPU names, one per `device_memory_bytes` column.
    pub gpus: Vec<String>,
    /// Rows in time order.
    pub rows: Vec<TraceRow>,
}

impl Trace {
    /// The trace as CSV: `t_s, <domain>_watts..., rss_bytes, cpu_cores, <gpu>_memory_bytes...`.
    /// Missing values are empty cells.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("t_s");
        for d in &self.domains {
            let _ = write!(s, ",{d}_watts");
        }
        s.push_str(",rss_bytes,cpu_cores");
        for g in &self.gpus {
            let _ = write!(s, ",{g}_memory_bytes");
        }
        s.push('\n');
        let cell = |s: &mut String, v: Option<String>| {
            s.push(',');
            if let Some(v) = v {
                s.push_str(&v);
            }
        };
        for r in &self.rows {
            let _ = write!(s, "{:.4}", r.t_s);
            for w in &r.watts {
                cell(&mut s, w.map(|w| format!("{w:.3}")));
            }
            cell(&mut s, r.rss_bytes.map(|b| b.to_string()));
            cell(&mut s, r.cpu_cores.map(|c| format!("{c:.4}")));
            for m in &r.device_memory_bytes {
                cell(&mut s, m.map(|b| b.to_string()));
            }
            s.push('\n');
        }
        s
    }
}

/// What the sampler leaves behind.
#[derive(Debug, Clone, Default)]
pub struct SamplerOutput {
    /// Per-domain accumulated energy, in the order of the meters' domains.
    pub accs: Vec<Accumulator>,
    /// The trace (empty when not recorded).
    pub trace: Trace,
    /// Highest sampled host RSS of the measured process (tree), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Highest sampled device memory per GPU, bytes.
    pub peak_device_memory_bytes: Vec<Option<u64>>,
    /// Ticks taken (including the first reading).
    pub ticks: usize,
    /// When sampling started (time zero of the trace and the accumulators).
    pub t0: Option<Instant>,
    /// Per domain, in the meters' order: the counter and the driver's power reading at each
    /// tick, for the domains that offer both ([`Domain::power_reading`]); `None` for others.
    pub checks: Vec<Option<CheckSamples>>,
}

struct State {
    t0: Instant,
    accs: Arc<Mutex<Vec<Accumulator>>>,
    trace: Trace,
    record: bool,
    peak_rss: Option<u64>,
    peak_dev: Vec<Option<u64>>,
    prev_cpu: Option<(f64, f64)>,
    ticks: usize,
    checks: Vec<Option<CheckSamples>>,
    /// Per domain: whether its readings are an energy counter (whose trace rows are spread
    /// over its updates when the sampler finishes).
    counter: Vec<bool>,
    /// Per domain: the longest span a counter's silence can be a missed update rather than no
    /// energy, s (twice its update period, probed or nominal, plus a tick); `None` where the
    /// counter updates faster than the sampler ticks (RAPL: ~1 ms), whose rows are left as
    /// read, or for other domains.
    spread_span_s: Vec<Option<f64>>,
}

/// The longest silence of a counter updating every `update_s` that can be a missed update
/// under ticks every `tick_s` (twice the update period plus a tick), or `None` where the
/// counter updates faster than half a tick (RAPL's ~1 ms under 50 ms ticks): its rows always
/// change and are left as read.
pub fn spread_span_s(update_s: f64, tick_s: f64) -> Option<f64> {
    (update_s * 2.0 > tick_s).then_some(2.0 * update_s + tick_s)
}

/// Spreads an energy counter's updates over the trace rows they cover, in column `col`.
///
/// A counter that updates more slowly than the sampler ticks (NVML's every ~100 ms against
/// 50 ms ticks) shows no change over some rows and a double step on the next: read row by row
/// that is 0 W then twice the power (on an H200 capped at 700 W the trace alternated 0 and
/// 1.2–1.5 kW). A row without a change, within `max_span_s` (twice the update period plus a
/// tick) of the previous change, is no update, not 0 W: each update's energy is spread over
/// the rows since the previous one, at its mean power. A silence longer than `max_span_s` is
/// no energy drawn, and its rows stay 0 W. Rows after the last update, or cut off by a failed
/// reading (an empty cell, which also ends the span), stay empty (unknown) when within
/// `max_span_s`.
pub fn spread_counter_updates(rows: &mut [TraceRow], col: usize, max_span_s: f64) {
    // Within the span a zero is an update not yet seen; beyond it, a true zero.
    let unknown = |rows: &mut [TraceRow], pending: &[usize], pending_s: f64| {
        if pending_s <= max_span_s {
            for &j in pending {
                rows[j].watts[col] = None;
            }
        }
    };
    let mut pending: Vec<usize> = Vec::new();
    let mut pending_s = 0.0;
    for i in 0..rows.len() {
        let dt = if i == 0 {
            0.0
        } else {
            rows[i].t_s - rows[i - 1].t_s
        };
        match rows[i].watts.get(col).copied().flatten() {
            None => {
                unknown(rows, &pending, pending_s);
                pending.clear();
                pending_s = 0.0;
            }
            Some(w) if w == 0.0 && i > 0 => {
                pending.push(i);
                pending_s += dt;
            }
            Some(w) => {
                let span = pending_s + dt;
                if span > 0.0 && span <= max_span_s {
                    let mean = w * dt / span;
                    for &j in &pending {
                        rows[j].watts[col] = Some(mean);
                    }
                    rows[i].watts[col] = Some(mean);
                }
                pending.clear();
                pending_s = 0.0;
            }
        }
    }
    unknown(rows, &pending, pending_s);
}

/// A running sampler thread.
pub struct Sampler {
    stop: mpsc::Sender<()>,
    handle: Option<JoinHandle<State>>,
}

struct Ctx {
    domains: Vec<Arc<dyn Domain>>,
    gpu_idx: Vec<usize>,
    scope: CpuScope,
}

impl Ctx {
    fn tick(&self, st: &mut State, t: f64) {
        let snap = self.scope.snapshot().ok();
        let rc = ReadContext { tree: snap };
        let readings: Vec<_> = self.domains.iter().map(|d| d.read(&rc)).collect();
        for (c, r) in st.counter.iter_mut().zip(&readings) {
            if let Ok(r) = r {
                *c = matches!(r, Reading::Counter { .. });
            }
        }
        for ((d, r), check) in self.domains.iter().zip(&readings).zip(&mut st.checks) {
            if let (Some(check), Ok(r)) = (check.as_mut(), r) {
                if let Ok(w) = d.reported_power() {
                    check.push(t, r, w);
                }
            }
        }
        let mut watts = Vec::with_capacity(readings.len());
        {
            let mut accs = st.accs.lock().unwrap_or_else(|p| p.into_inner());
            for (acc, r) in accs.iter_mut().zip(readings) {
                watts.push(match r {
                    Ok(r) => acc.push(t, r),
                    Err(e) => {
                        acc.fail(e);
                        None
                    }
                });
            }
        }
        let dev: Vec<Option<u64>> = self
            .gpu_idx
            .iter()
            .map(|&i| self.domains[i].memory_used_bytes())
            .collect();
        for (p, m) in st.peak_dev.iter_mut().zip(&dev) {
            if let Some(m) = m {
                *p = Some(p.map_or(*m, |q| q.max(*m)));
            }
        }
        let rss = snap
            .map(|s| s.rss_bytes)
            .filter(|_| snap.is_some_and(|s| s.processes > 0));
        if let Some(r) = rss {
            st.peak_rss = Some(st.peak_rss.map_or(r, |q| q.max(r)));
        }
        let cpu_cores = match (snap, st.prev_cpu) {
            (Some(s), Some((t0, c0))) if t > t0 => Some(((s.cpu_seconds - c0) / (t - t0)).max(0.0)),
            _ => None,
        };
        if let Some(s) = snap {
            st.prev_cpu = Some((t, s.cpu_seconds));
        }
        st.ticks += 1;
        if st.record {
            st.trace.rows.push(TraceRow {
                t_s: t,
                watts,
                rss_bytes: rss,
                cpu_cores,
                device_memory_bytes: dev,
            });
        }
    }
}

impl Sampler {
    /// Starts sampling `meters` every `interval`, taking the first reading now. Pass an
    /// interval from [`Meters::sampling_interval`], which sees every counter wrap. Fails when
    /// the thread cannot be started.
    pub fn start(
        meters: &Meters,
        interval: Duration,
        record_trace: bool,
    ) -> Result<Sampler, EnergyError> {
        let accs = Arc::new(Mutex::new(meters.accumulators(Some(interval))));
        Sampler::spawn(meters, accs, Instant::now(), interval, record_trace, None)
    }

    /// Samples into accumulators that already hold a first reading (an energy window), and
    /// into the cross-check samples that already hold that reading's.
    pub(crate) fn start_shared(
        meters: &Meters,
        accs: Arc<Mutex<Vec<Accumulator>>>,
        checks: Vec<Option<CheckSamples>>,
        t0: Instant,
        interval: Duration,
    ) -> Result<Sampler, EnergyError> {
        Sampler::spawn(meters, accs, t0, interval, false, Some(checks))
    }

    fn spawn(
        meters: &Meters,
        accs: Arc<Mutex<Vec<Accumulator>>>,
        t0: Instant,
        interval: Duration,
        record: bool,
        checks: Option<Vec<Option<CheckSamples>>>,
    ) -> Result<Sampler, EnergyError> {
        // Without first readings given, the first tick is taken now.
        let first_now = checks.is_none();
        let interval = interval.max(Duration::from_millis(1));
        let ctx = Ctx {
            gpu_idx: (0..meters.domains.len())
                .filter(|&i| meters.domains[i].kind() == "nvml")
                .collect(),
            domains: meters.domains.clone(),
            scope: meters.cfg.cpu_scope.clone(),
        };
        let mut st = State {
            t0,
            accs,
            trace: Trace {
                domains: ctx.domains.iter().map(|d| d.name().to_string()).collect(),
                gpus: ctx
                    .gpu_idx
                    .iter()
                    .map(|&i| ctx.domains[i].name().to_string())
                    .collect(),
                rows: Vec::new(),
            },
            record,
            peak_rss: None,
            peak_dev: vec![None; ctx.gpu_idx.len()],
            prev_cpu: None,
            ticks: 0,
            checks: checks.unwrap_or_else(|| {
                ctx.domains
                    .iter()
                    .map(|d| d.power_reading().map(|_| CheckSamples::default()))
                    .collect()
            }),
            counter: vec![false; ctx.domains.len()],
            spread_span_s: {
                let tick = interval.as_secs_f64();
                let probes = meters.probes();
                ctx.domains
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let c = d.counter()?;
                        let probed = probes
                            .get(i)
                            .and_then(|p| p.as_ref())
                            .and_then(|p| p.update);
                        spread_span_s(probed.unwrap_or(c.nominal_update).as_secs_f64(), tick)
                    })
                    .collect()
            },
        };
        if first_now {
            ctx.tick(&mut st, t0.elapsed().as_secs_f64());
        }
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("wattbench-sampler".into())
            .spawn(move || {
                let mut k: u32 = 1;
                loop {
                    let due = t0 + interval * k;
                    let wait = due.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                    ctx.tick(&mut st, t0.elapsed().as_secs_f64());
                    // Skip ticks missed while the machine was busy instead of bursting.
                    let behind = t0.elapsed().as_secs_f64() / interval.as_secs_f64();
                    k = (k + 1).max(behind.ceil() as u32);
                }
                st
            })
            .map_err(|source| EnergyError::Os {
                call: "spawning the sampler thread",
                source,
            })?;
        Ok(Sampler {
            stop: tx,
            handle: Some(handle),
        })
    }

    /// Stops the thread and returns what it recorded; an error when the thread panicked (a
    /// meter's read did), its readings then lost but for those already in accumulators
    /// shared with an energy window.
    pub fn finish(mut self) -> Result<SamplerOutput, EnergyError> {
        let _ = self.stop.send(());
        let st = match self.handle.take().map(JoinHandle::join) {
            Some(Ok(st)) => st,
            Some(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                return Err(EnergyError::Sampler(format!(
                    "the background sampler stopped: a meter's read panicked ({what})"
                )));
            }
            None => return Err(EnergyError::Sampler("already finished".into())),
        };
        let accs = st.accs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut trace = st.trace;
        for (col, span) in st.spread_span_s.iter().enumerate() {
            if let (Some(span), true) = (span, st.counter[col]) {
                spread_counter_updates(&mut trace.rows, col, *span);
            }
        }
        Ok(SamplerOutput {
            accs,
            trace,
            peak_rss_bytes: st.peak_rss,
            peak_device_memory_bytes: st.peak_dev,
            ticks: st.ticks,
            t0: Some(st.t0),
            checks: st.checks,
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{spread_counter_updates, spread_span_s, TraceRow};

    /// NVML's ~100 ms counter under 50 ms ticks is spread; RAPL's ~1 ms one is left as read.
    #[test]
    fn only_counters_slower_than_the_ticks_are_spread() {
        assert_eq!(spread_span_s(0.1, 0.05), Some(0.25));
        assert_eq!(spread_span_s(0.001, 0.05), None);
    }

    fn rows(watts: &[Option<f64>]) -> Vec<TraceRow> {
        watts
            .iter()
            .enumerate()
            .map(|(i, w)| TraceRow {
                t_s: i as f64 * 0.05,
                watts: vec![*w],
                rss_bytes: None,
                cpu_cores: None,
                device_memory_bytes: Vec::new(),
            })
            .collect()
    }

    fn col(rows: &[TraceRow]) -> Vec<Option<f64>> {
        rows.iter()
            .map(|r| r.watts[0].map(|w| (w * 1e6).round() / 1e6))
            .collect()
    }

    /// A counter updating every 100 ms under 50 ms ticks: the H200's 0 W / 1.4 kW rows become
    /// the 700 W it drew, and energy is kept (Σ W·dt unchanged).
    #[test]
    fn a_slow_counter_is_spread_over_the_rows_of_each_update() {
        let mut r = rows(&[
            None,
            Some(0.0),
            Some(1400.0),
            Some(0.0),
            Some(1400.0),
            Some(0.0),
        ]);
        let energy = |r: &[TraceRow]| -> f64 {
            r.windows(2)
                .map(|p| p[1].watts[0].unwrap_or(0.0) * (p[1].t_s - p[0].t_s))
                .sum()
        };
        let before = energy(&r[..5]);
        spread_counter_updates(&mut r, 0, 0.25);
        assert_eq!(
            col(&r),
            [
                None,
                Some(700.0),
                Some(700.0),
                Some(700.0),
                Some(700.0),
                None
            ]
        );
        assert!((energy(&r[..5]) - before).abs() < 1e-9);
    }

    /// A failed reading (an empty cell) ends the span: the rows before it are unknown, not
    /// 0 W, and the next update covers only its own row.
    #[test]
    fn a_failed_reading_leaves_the_rows_before_it_unknown() {
        let mut r = rows(&[None, Some(0.0), None, Some(0.0), Some(500.0), Some(300.0)]);
        spread_counter_updates(&mut r, 0, 0.25);
        assert_eq!(
            col(&r),
            [None, None, None, Some(250.0), Some(250.0), Some(300.0)]
        );
    }

    /// A counter silent for longer than a missed update can explain drew no energy: its
    /// zeros stay 0 W, before a later step and at the end, and the step keeps its own row.
    #[test]
    fn a_long_silence_stays_zero() {
        let mut r = rows(&[
            None,
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(40.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
        ]);
        spread_counter_updates(&mut r, 0, 0.25);
        let mut want = vec![None];
        want.extend([Some(0.0); 6]);
        want.push(Some(40.0));
        want.extend([Some(0.0); 6]);
        assert_eq!(col(&r), want);
    }
}
