//! Series and trends: one series per case, metric and hardware fingerprint (machines of
//! different kinds are never mixed), ordered by run start time; its known breaks (software
//! fingerprint changes), change points and current level.
use crate::changepoint::{self, Detected};
use crate::db::{History, Metric};
use crate::HistoryError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One run's figure in a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The run's id in the database.
    pub run_id: i64,
    /// The run's start time (RFC 3339).
    pub created_at: String,
    /// The commit the binary was built from.
    pub git_commit: Option<String>,
    /// The run's software fingerprint.
    pub software_fp: String,
    /// The run's environment variables that change what is measured (`K=V; ...`); null
    /// when its file predates them.
    #[serde(default)]
    pub variables_fp: Option<String>,
    /// The run's conditions that move figures with no change of code (usable cores, GPU
    /// power limits: `K=V; ...`); null when its file predates them.
    #[serde(default)]
    pub conditions_fp: Option<String>,
    /// The figure.
    pub value: f64,
    /// Lower end of its interval, when known.
    pub low: Option<f64>,
    /// Upper end of its interval, when known.
    pub high: Option<f64>,
    /// How many values it summarises.
    pub n_samples: Option<u64>,
    /// Where the figure comes from: `median` (time), the energy's basis (sources, meters
    /// added, an estimate's inputs: `estimated [cpu-estimate (estimated); ...]`), the memory
    /// counter.
    #[serde(default)]
    pub source: Option<String>,
}

/// The figures of one case and metric on one kind of machine, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The case (or training run) id.
    pub case_id: String,
    /// The metric.
    pub metric: Metric,
    /// The hardware fingerprint every point shares.
    pub hardware_fp: String,
    /// The points, by run start time (then recording order).
    pub points: Vec<Point>,
}

/// Which series to read. Empty fields select everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesFilter {
    /// A case id, or a part of one: an exact match wins, else every id containing it.
    pub case: Option<String>,
    /// Only this metric.
    pub metric: Option<Metric>,
    /// Only hardware fingerprints containing this.
    pub hardware: Option<String>,
}

/// A software change between two consecutive points of a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnownBreak {
    /// Index of the first point with the new software.
    pub index: usize,
    /// Its run.
    pub run_id: i64,
    /// What changed: `name old → new`, `name added (v)`, `name removed (v)`.
    pub changed: Vec<String>,
    /// Whether the figure's source changed here (an estimate became a measurement, a meter
    /// was added): the figures before it are another quantity, and the current level and
    /// range start after the last such break.
    #[serde(default)]
    pub source_changed: bool,
    /// Whether the runs around it are enough for its test to find a change of level at the
    /// detector's `alpha` (see [`changepoint::break_testable`]); when not, the absence of a
    /// change point here says nothing. Always true at a reported change.
    #[serde(default)]
    pub testable: bool,
}

/// A change of level in a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// Index of the first point at the new level.
    pub index: usize,
    /// Its run.
    pub run_id: i64,
    /// Its run's start time.
    pub created_at: String,
    /// Its run's commit: the change came with a commit in `previous_commit..git_commit`.
    pub git_commit: Option<String>,
    /// The commit of the run before it of the same source (the runs of another source in
    /// between cannot tell where the change came); at a change of source, of the run
    /// before it.
    pub previous_commit: Option<String>,
    /// Median of the segment before: the points of its source since the previous change
    /// point of that source; at a change of source, the other source's points before it.
    pub before_median: f64,
    /// Median of the segment after (until the next change point), of the same source.
    pub after_median: f64,
    /// `after_median / before_median`: above 1 the figure grew (slower, more energy, more
    /// memory).
    pub ratio: f64,
    /// The permutation test's p-value.
    pub p_value: f64,
    /// The E-Divisive statistic of the split.
    pub statistic: f64,
    /// Whether it is at a known break: the software changed there (see `software_change`).
    pub known_break: bool,
    /// What changed in the software, at a known break; `[]` otherwise.
    pub software_change: Vec<String>,
    /// Found among the last runs, with no more runs after it than the detector needs on a
    /// side (`min_size`): a step that came one or two runs later is found here too, so the
    /// change may lie anywhere up to the latest run (`until_commit`). More runs settle it.
    #[serde(default)]
    pub provisional: bool,
    /// When provisional: the commit of the latest run, the other end of the commits that may
    /// hold the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_commit: Option<String>,
    /// Where the figures after it come from (the points' `source`: `median`, an energy
    /// basis such as `estimated [...]`, a memory counter); null when not recorded.
    #[serde(default)]
    pub source: Option<String>,
    /// Whether it is at a change of the figure's source (also a known break): `before_median`
    /// and `after_median` are then figures of two quantities (an estimate and a measurement,
    /// two sets of meters), not a change of level of one.
    #[serde(default)]
    pub source_changed: bool,
}

/// Where a series stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Points in the series.
    pub runs: usize,
    /// The latest figure.
    pub last: f64,
    /// The one before it of the same quantity (its figure's source).
    pub previous: Option<f64>,
    /// Smallest figure of the latest figure's quantity (its source).
    pub min: f64,
    /// Largest figure of the latest figure's quantity.
    pub max: f64,
    /// Index where the current level starts: the first point of the latest figure's source
    /// (another quantity before it, whatever the test says), or the last change point after
    /// it that is not at a change of source, moved to the next point of that source.
    pub level_start: usize,
    /// Median since then, of the latest figure's quantity.
    pub level_median: f64,
    /// Theil–Sen slope since then, relative to the level's median: the drift per run (0.01
    /// is +1% a run); null under 3 points.
    pub drift_per_run: Option<f64>,
}

/// A series with what the history says about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The series.
    #[serde(flatten)]
    pub series: Series,
    /// Where it stands.
    pub trend: Trend,
    /// Software changes along it.
    pub known_breaks: Vec<KnownBreak>,
    /// Changes of level, oldest first, at known breaks or of at least the detector's
    /// `min_change`.
    pub change_points: Vec<ChangePoint>,
    /// Significant changes of level smaller than `min_change` (not reported as changes: over
    /// many series, noise alone makes a few significant).
    #[serde(default)]
    pub minor_changes: Vec<ChangePoint>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    wattbench_core::stats::quantile_sorted(&s, 0.5)
}

/// `name → version` of a software fingerprint (`name=version; ...`).
fn software_parts(fp: &str) -> BTreeMap<&str, &str> {
    fp.split("; ")
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// What changed from fingerprint `a` to `b`, in words.
pub fn software_diff(a: &str, b: &str) -> Vec<String> {
    let (pa, pb) = (software_parts(a), software_parts(b));
    let mut out = Vec::new();
    for (k, va) in &pa {
        match pb.get(k) {
            Some(vb) if vb != va => out.push(format!("{k} {va} → {vb}")),
            None => out.push(format!("{k} removed ({va})")),
            _ => {}
        }
    }
    for (k, vb) in &pb {
        if !pa.contains_key(k) {
            out.push(format!("{k} added ({vb})"));
        }
    }
    out
}

/// The last known value of each condition (`name=value; ...`) along a series.
#[derive(Default)]
struct KnownConditions(BTreeMap<String, String>);

impl KnownConditions {
    /// Take a run's conditions (`None`: not recorded); returns each known one that differs
    /// from its last known value, `name old → new`. `unknown` and absent names change nothing.
    fn update(&mut self, fp: Option<&str>) -> Vec<String> {
        let mut changed = Vec::new();
        for (k, v) in software_parts(fp.unwrap_or("")) {
            if v == "unknown" {
                continue;
            }
            match self.0.insert(k.to_string(), v.to_string()) {
                Some(old) if old != v => changed.push(format!("{k} {old} → {v}")),
                _ => {}
            }
        }
        changed
    }
}

impl Series {
    /// The figures, in order.
    pub fn values(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.value).collect()
    }

    /// Where the software fingerprint, the recorded environment variables or conditions (each
    /// against its last recorded value along the series) or the figure's source changed (an
    /// energy estimate that became a counter's measurement is another quantity, not a
    /// regression; a thread count, a CPU limit or a GPU power limit is not a change of code).
    pub fn known_breaks(&self) -> Vec<KnownBreak> {
        // The last recorded variables along the series: a run whose file predates them (null)
        // neither breaks the series nor hides a change between the runs on either side of it.
        // Unlike a condition, a variable absent from a recorded set was unset: a change.
        let mut variables: Option<&str> =
            self.points.first().and_then(|p| p.variables_fp.as_deref());
        // Each condition's last known value along the series: a run that could not read one
        // (`unknown`, absent, or no conditions at all) neither breaks the series nor hides a
        // change between the runs on either side of it.
        let mut conditions = KnownConditions::default();
        if let Some(first) = self.points.first() {
            conditions.update(first.conditions_fp.as_deref());
        }
        let mut out = Vec::new();
        for (i, w) in self.points.windows(2).enumerate() {
            let mut changed = software_diff(&w[0].software_fp, &w[1].software_fp);
            if let Some(now) = w[1].variables_fp.as_deref() {
                if let Some(before) = variables.filter(|&b| b != now) {
                    changed.extend(
                        software_diff(before, now)
                            .into_iter()
                            .map(|v| format!("environment {v}")),
                    );
                }
                variables = Some(now);
            }
            changed.extend(
                conditions
                    .update(w[1].conditions_fp.as_deref())
                    .into_iter()
                    .map(|v| format!("condition {v}")),
            );
            let source_changed = w[0].source != w[1].source;
            if source_changed {
                let name = |s: &Option<String>| s.clone().unwrap_or_else(|| "unknown".into());
                changed.push(format!(
                    "source {} → {}",
                    name(&w[0].source),
                    name(&w[1].source)
                ));
            }
            if !changed.is_empty() {
                out.push(KnownBreak {
                    index: i + 1,
                    run_id: w[1].run_id,
                    changed,
                    source_changed,
                    testable: true,
                });
            }
        }
        out
    }

    /// Known breaks, change points (E-Divisive means with `cfg`) and the trend.
    ///
    /// Levels are compared only between figures of one quantity: the points of each source
    /// are searched on their own (their known breaks the software, variable and condition
    /// changes between them), so a few nights of another source (an estimate while the
    /// counter was unreadable) neither cut the measured history nor hide a step of it beside
    /// them. Each change of source is tested on its own, as a known break of the whole series
    /// between its neighbouring boundaries, and reported with `source_changed`.
    pub fn analyse(self, cfg: &changepoint::Config) -> Analysis {
        let values = self.values();
        let mut known_breaks = self.known_breaks();
        let min_size = cfg.min_size.max(2);
        let mut all = Vec::new();
        // The changes of source, on the whole series cut at every known break; the search's
        // other findings there would compare runs across the excursions, and are left to
        // the searches of each source.
        let at: Vec<usize> = known_breaks.iter().map(|b| b.index).collect();
        let whole = if known_breaks.iter().any(|b| b.source_changed) {
            changepoint::detect(&values, &at, cfg)
        } else {
            Vec::new()
        };
        for b in known_breaks.iter_mut().filter(|b| b.source_changed) {
            b.testable = whole.iter().any(|d| d.index == b.index)
                || changepoint::break_testable(values.len(), &at, &whole, b.index, cfg);
        }
        for d in (whole.iter()).filter(|d| d.known_break) {
            let Some(b) = (known_breaks.iter()).find(|b| b.index == d.index && b.source_changed)
            else {
                continue;
            };
            // The window its test compared: between the neighbouring boundaries, each side of
            // one source (every change of source is a boundary).
            let bounds = at.iter().chain(whole.iter().map(|w| &w.index));
            let lo = bounds.clone().copied().filter(|&x| x < d.index).max();
            let hi = bounds.copied().filter(|&x| x > d.index).min();
            let before_median = median(&values[lo.unwrap_or(0)..d.index]);
            let after_median = median(&values[d.index..hi.unwrap_or(values.len())]);
            let p = &self.points[d.index];
            all.push(ChangePoint {
                index: d.index,
                run_id: p.run_id,
                created_at: p.created_at.clone(),
                git_commit: p.git_commit.clone(),
                previous_commit: self.points[d.index - 1].git_commit.clone(),
                before_median,
                after_median,
                ratio: after_median / before_median,
                p_value: d.p_value,
                statistic: d.statistic,
                known_break: true,
                software_change: b.changed.clone(),
                provisional: false,
                until_commit: None,
                source: p.source.clone(),
                source_changed: true,
            });
        }
        // Each source's points on their own, oldest source first.
        let mut sources: Vec<(&Option<String>, Vec<usize>)> = Vec::new();
        for (i, p) in self.points.iter().enumerate() {
            match sources.iter_mut().find(|(s, _)| *s == &p.source) {
                Some((_, idx)) => idx.push(i),
                None => sources.push((&p.source, vec![i])),
            }
        }
        for (_, idx) in &sources {
            let own = Series {
                case_id: self.case_id.clone(),
                metric: self.metric,
                hardware_fp: self.hardware_fp.clone(),
                points: idx.iter().map(|&i| self.points[i].clone()).collect(),
            };
            let own_values = own.values();
            let own_breaks = own.known_breaks();
            let own_at: Vec<usize> = own_breaks.iter().map(|b| b.index).collect();
            let found = changepoint::detect(&own_values, &own_at, cfg);
            // A break of the whole series between two runs of this source is tested here;
            // one that is no change between this source's runs (a variable compared across
            // a run of another source) was not tested.
            for b in known_breaks.iter_mut().filter(|b| !b.source_changed) {
                if let Some(k) = idx.iter().position(|&i| i == b.index) {
                    b.testable = own_at.contains(&k)
                        && (found.iter().any(|d| d.index == k)
                            || changepoint::break_testable(
                                own_values.len(),
                                &own_at,
                                &found,
                                k,
                                cfg,
                            ));
                }
            }
            all.extend(self.describe(idx, &own_values, &found, &own_breaks, min_size));
        }
        // By index; at one index, the change of source before the change of level after it.
        all.sort_by_key(|c| (c.index, !c.source_changed));
        // The current quantity: the points whose figure has the latest point's source, from
        // its first appearance (another source in between, a night without a counter, keeps
        // the history). Its level starts at its last change of level.
        let last_source = &self.points[self.points.len() - 1].source;
        let same: Vec<bool> = self
            .points
            .iter()
            .map(|p| &p.source == last_source)
            .collect();
        let quantity_start = same.iter().position(|&s| s).unwrap_or(0);
        let level_start = (all.iter().rev())
            .find(|c| !c.source_changed && same[c.index])
            .map_or(quantity_start, |c| c.index);
        let trend = trend(&values, level_start, &same);
        let floor = (1.0 + cfg.min_change.max(0.0)).ln();
        let (change_points, minor_changes) = all
            .into_iter()
            .partition(|c| c.known_break || c.ratio.ln().abs() >= floor || !c.ratio.is_finite());
        Analysis {
            series: self,
            trend,
            known_breaks,
            change_points,
            minor_changes,
        }
    }

    /// The change points `found` among the points `idx` of one source (`values` their
    /// figures, `breaks` the known breaks between them, both indexed along `idx`), with the
    /// indices of the whole series.
    fn describe(
        &self,
        idx: &[usize],
        values: &[f64],
        found: &[Detected],
        breaks: &[KnownBreak],
        min_size: usize,
    ) -> Vec<ChangePoint> {
        let mut bounds: Vec<usize> = found.iter().map(|d| d.index).collect();
        bounds.insert(0, 0);
        bounds.push(values.len());
        let latest = &self.points[idx[idx.len() - 1]];
        found
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let (lo, at, hi) = (bounds[k], bounds[k + 1], bounds[k + 2]);
                let before_median = median(&values[lo..at]);
                let after_median = median(&values[at..hi]);
                let p = &self.points[idx[d.index]];
                let provisional = !d.known_break && hi == values.len() && hi - at <= min_size;
                ChangePoint {
                    index: idx[d.index],
                    run_id: p.run_id,
                    created_at: p.created_at.clone(),
                    git_commit: p.git_commit.clone(),
                    previous_commit: self.points[idx[d.index - 1]].git_commit.clone(),
                    before_median,
                    after_median,
                    ratio: after_median / before_median,
                    p_value: d.p_value,
                    statistic: d.statistic,
                    known_break: d.known_break,
                    software_change: breaks
                        .iter()
                        .find(|b| d.known_break && b.index == d.index)
                        .map_or_else(Vec::new, |b| b.changed.clone()),
                    provisional,
                    until_commit: provisional.then(|| latest.git_commit.clone()).flatten(),
                    source: p.source.clone(),
                    source_changed: false,
                }
            })
            .collect()
    }
}

/// The trend of `values` (non-empty) whose current level starts at `level_start`; `same[i]`:
/// point `i` is of the latest point's quantity (its figure's source), the only points the
/// level, drift, range and previous figure are taken over.
fn trend(values: &[f64], level_start: usize, same: &[bool]) -> Trend {
    let quantity: Vec<(usize, f64)> = (values.iter().copied().enumerate())
        .filter(|&(i, _)| same[i])
        .collect();
    let level: Vec<(usize, f64)> = (quantity.iter().copied())
        .filter(|&(i, _)| i >= level_start)
        .collect();
    let level_median = median(&level.iter().map(|&(_, v)| v).collect::<Vec<_>>());
    let drift_per_run = (level.len() >= 3 && level_median != 0.0).then(|| {
        let mut slopes = Vec::with_capacity(level.len() * (level.len() - 1) / 2);
        for (a, &(i, x)) in level.iter().enumerate() {
            for &(j, y) in &level[a + 1..] {
                slopes.push((y - x) / (j - i) as f64);
            }
        }
        median(&slopes) / level_median
    });
    let figures = quantity.iter().map(|&(_, v)| v);
    Trend {
        runs: values.len(),
        last: values[values.len() - 1],
        previous: quantity.len().checked_sub(2).map(|i| quantity[i].1),
        min: figures.clone().fold(f64::INFINITY, f64::min),
        max: figures.fold(f64::NEG_INFINITY, f64::max),
        level_start,
        level_median,
        drift_per_run,
    }
}

/// The series of `history` that `filter` selects, by hardware fingerprint, case id and
/// metric.
pub fn series(history: &History, filter: &SeriesFilter) -> Result<Vec<Series>, HistoryError> {
    let sql = |source| HistoryError::Sqlite {
        path: history.path().to_path_buf(),
        source,
    };
    // Columns added by later migrations are null in a database of an older wattbench.
    let variables = history.column_or_null("runs", "variables_fp")?;
    let conditions = history.column_or_null("runs", "conditions_fp")?;
    let mut st = history
        .conn()
        .prepare(&format!(
            "SELECT m.case_id, m.metric, runs.hardware_fp, runs.id, runs.created_at,
                    runs.git_commit, runs.software_fp, m.value, m.low, m.high, m.n_samples,
                    m.source, {variables}, {conditions}
             FROM measurements m JOIN runs ON runs.id = m.run_id
             ORDER BY runs.hardware_fp, m.case_id, m.metric,
                      julianday(runs.created_at), runs.created_at, runs.id"
        ))
        .map_err(sql)?;
    let rows = st
        .query_map([], |r| {
            let metric: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                metric,
                r.get::<_, String>(2)?,
                Point {
                    run_id: r.get(3)?,
                    created_at: r.get(4)?,
                    git_commit: r.get(5)?,
                    software_fp: r.get(6)?,
                    value: r.get(7)?,
                    low: r.get(8)?,
                    high: r.get(9)?,
                    n_samples: r.get::<_, Option<i64>>(10)?.map(|n| n as u64),
                    source: r.get(11)?,
                    variables_fp: r.get(12)?,
                    conditions_fp: r.get(13)?,
                },
            ))
        })
        .map_err(sql)?;
    let mut out: Vec<Series> = Vec::new();
    for row in rows {
        let (case_id, metric, hardware_fp, point) = row.map_err(sql)?;
        // The schema's CHECK admits only known metric names.
        let Some(metric) = Metric::parse(&metric) else {
            continue;
        };
        match out.last_mut() {
            Some(s)
                if s.case_id == case_id && s.metric == metric && s.hardware_fp == hardware_fp =>
            {
                s.points.push(point)
            }
            _ => out.push(Series {
                case_id,
                metric,
                hardware_fp,
                points: vec![point],
            }),
        }
    }
    let exact = filter
        .case
        .as_deref()
        .is_some_and(|c| out.iter().any(|s| s.case_id == c));
    out.retain(|s| {
        let case_ok = match filter.case.as_deref() {
            None => true,
            Some(c) if exact => s.case_id == c,
            Some(c) => s.case_id.contains(c),
        };
        case_ok
            && filter.metric.is_none_or(|m| s.metric == m)
            && filter
                .hardware
                .as_deref()
                .is_none_or(|h| s.hardware_fp.contains(h))
    });
    Ok(out)
}

/// Every selected series, analysed.
pub fn analyse(
    history: &History,
    filter: &SeriesFilter,
    cfg: &changepoint::Config,
) -> Result<Vec<Analysis>, HistoryError> {
    Ok(series(history, filter)?
        .into_iter()
        .map(|s| s.analyse(cfg))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{case, run_file, run_file_on};
    use wattbench_core::energy::Source;

    fn add(h: &mut History, run: &wattbench_core::result::RunFile) {
        h.add(&serde_json::to_vec(run).unwrap(), None).unwrap();
    }

    #[test]
    fn series_never_mix_machines_and_follow_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        // Recorded out of order, one time in another UTC offset (23:00 UTC, before the
        // third though its text sorts after it): the series follows the start times.
        for (at, v) in [
            ("2026-01-02T00:30:00+00:00", 3.0),
            ("2026-01-01T00:00:00+00:00", 1.0),
            ("2026-01-02T01:00:00+02:00", 2.0),
        ] {
            add(&mut h, &run_file(at, &[], vec![case("gemm/x", v)]));
        }
        add(
            &mut h,
            &run_file_on(
                "other cpu",
                "2026-01-02T00:00:00+00:00",
                vec![case("gemm/x", 9.0)],
            ),
        );
        let f = SeriesFilter {
            metric: Some(Metric::TimeS),
            ..SeriesFilter::default()
        };
        let s = series(&h, &f).unwrap();
        assert_eq!(s.len(), 2, "one series per machine: {s:?}");
        let mine = s.iter().find(|s| s.points.len() == 3).unwrap();
        assert_eq!(mine.values(), vec![1.0, 2.0, 3.0]);
        let other = s.iter().find(|s| s.points.len() == 1).unwrap();
        assert!(other.hardware_fp.contains("other cpu"));
        assert_eq!(other.values(), vec![9.0]);
    }

    #[test]
    fn case_filter_prefers_an_exact_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        let cases = vec![
            case("gemm/a", 1.0),
            case("gemm/a2", 1.0),
            case("conv/b", 1.0),
        ];
        add(&mut h, &run_file("2026-01-01T00:00:00+00:00", &[], cases));
        let ids = |c: &str| {
            let f = SeriesFilter {
                case: Some(c.into()),
                metric: Some(Metric::TimeS),
                ..SeriesFilter::default()
            };
            series(&h, &f)
                .unwrap()
                .into_iter()
                .map(|s| s.case_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("gemm/a"), vec!["gemm/a"]);
        assert_eq!(ids("gemm"), vec!["gemm/a", "gemm/a2"]);
        assert!(ids("nothing").is_empty());
    }

    #[test]
    fn a_library_upgrade_is_a_known_break_with_its_versions() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        for i in 0..16 {
            let (lib, v) = if i < 8 {
                ("2.10.0", 1.0)
            } else {
                ("2.11.0", 1.2)
            };
            let noise = 1.0 + 0.01 * ((i * 7 % 5) as f64 - 2.0);
            let at = format!("2026-01-{:02}T00:00:00+00:00", i + 1);
            let mut run = run_file(&at, &[("libtorch", lib)], vec![case("c", v * noise)]);
            run.environment.git_commit = Some(format!("c{i}"));
            add(&mut h, &run);
        }
        let f = SeriesFilter {
            metric: Some(Metric::TimeS),
            ..SeriesFilter::default()
        };
        let a = analyse(&h, &f, &changepoint::Config::default()).unwrap();
        assert_eq!(a.len(), 1);
        let a = &a[0];
        assert_eq!(a.known_breaks.len(), 1);
        assert_eq!(a.known_breaks[0].changed, vec!["libtorch 2.10.0 → 2.11.0"]);
        assert_eq!(a.change_points.len(), 1, "{:?}", a.change_points);
        let cp = &a.change_points[0];
        assert!(cp.known_break && cp.index == 8 && cp.p_value < 0.05);
        assert_eq!(cp.software_change, vec!["libtorch 2.10.0 → 2.11.0"]);
        assert!((cp.ratio - 1.2).abs() < 0.03, "{cp:?}");
        assert_eq!(cp.git_commit.as_deref(), Some("c8"));
        assert_eq!(cp.previous_commit.as_deref(), Some("c7"));
        assert_eq!(a.trend.level_start, 8);
        assert!((a.trend.level_median - 1.2).abs() < 0.03);
    }

    /// A series of `values`, one run each on consecutive days with commits `c0`, `c1`, ...,
    /// analysed with the default detector; `env(i)` the run's recorded variables.
    fn analysed(
        values: &[f64],
        env: impl Fn(usize) -> Option<Vec<(&'static str, String)>>,
    ) -> Analysis {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        for (i, v) in values.iter().enumerate() {
            let at = format!("2026-01-{:02}T00:00:00+00:00", i + 1);
            let mut r = run_file(&at, &[], vec![case("c", *v)]);
            r.environment.git_commit = Some(format!("c{i}"));
            r.environment.variables =
                env(i).map(|v| v.into_iter().map(|(k, x)| (k.to_string(), x)).collect());
            add(&mut h, &r);
        }
        let f = SeriesFilter {
            metric: Some(Metric::TimeS),
            ..SeriesFilter::default()
        };
        analyse(&h, &f, &changepoint::Config::default())
            .unwrap()
            .remove(0)
    }

    /// The energy series of `n` runs of one case (10 J a call, measured), run `i`'s energy
    /// first changed by `each(i, energy)`, analysed with the default detector.
    fn energy_analysed(
        n: usize,
        each: impl Fn(usize, &mut wattbench_core::energy::CaseEnergy),
    ) -> Analysis {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        for i in 0..n {
            let at = format!("2026-01-{:02}T00:00:00+00:00", i + 1);
            let mut c = case("c", 1.0);
            each(i, c.energy.as_mut().unwrap());
            add(&mut h, &run_file(&at, &[], vec![c]));
        }
        let f = SeriesFilter {
            metric: Some(Metric::EnergyJ),
            ..SeriesFilter::default()
        };
        analyse(&h, &f, &changepoint::Config::default())
            .unwrap()
            .remove(0)
    }

    /// 3 % noise that repeats every seven runs.
    fn noise(i: usize) -> f64 {
        1.0 + 0.03 * ((i * 5 % 7) as f64 / 3.0 - 1.0)
    }

    #[test]
    fn a_thread_count_change_is_a_known_break_not_a_regression() {
        // Four threads, then one (RAYON_NUM_THREADS=1): six times slower, not by any commit.
        let values: Vec<f64> = (0..12)
            .map(|i| if i < 6 { 1.0 } else { 6.0 } * noise(i))
            .collect();
        let a = analysed(&values, |i| {
            Some(if i < 6 {
                vec![]
            } else {
                vec![("RAYON_NUM_THREADS", "1".into())]
            })
        });
        assert_eq!(a.known_breaks.len(), 1, "{:?}", a.known_breaks);
        assert_eq!(a.known_breaks[0].index, 6);
        assert_eq!(
            a.known_breaks[0].changed,
            ["environment RAYON_NUM_THREADS added (1)"]
        );
        assert!(
            !a.change_points.is_empty() && a.change_points.iter().all(|c| c.known_break),
            "{:?}",
            a.change_points
        );
        // Files that predate the variables (null) say nothing: no break from unknown to known.
        let a = analysed(&values[..6], |i| (i >= 3).then(Vec::new));
        assert!(a.known_breaks.is_empty(), "{:?}", a.known_breaks);
    }

    #[test]
    fn a_step_in_the_last_runs_is_provisional_and_its_range_reaches_the_latest_run() {
        // A 10 % step at c11 with three runs after it, as few as the detector needs on a side:
        // found at c11, but a step at c12 or c13 (one or two runs after it) is found here too
        // when noise helps (the audit saw it blamed on the commit before the step), so the
        // change is provisional, its commits reaching the latest run.
        let step = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| if i < 11 { 1.0 } else { 1.1 } * (1.0 + 0.003 * noise(i)))
                .collect()
        };
        let a = analysed(&step(14), |_| None);
        let c = a.change_points.last().unwrap_or_else(|| panic!("{a:?}"));
        assert_eq!((c.index, c.provisional), (11, true), "{c:?}");
        assert_eq!(c.until_commit.as_deref(), Some("c13"));
        // Five runs after the step: settled, not provisional.
        let a = analysed(&step(16), |_| None);
        let c = &a.change_points[0];
        assert_eq!(
            (c.index, c.provisional, c.until_commit.as_deref()),
            (11, false, None)
        );
    }

    #[test]
    fn changes_smaller_than_the_threshold_are_minor_not_reported() {
        // A real but 2 % step on a quiet series: significant, below the 5 % default.
        let values: Vec<f64> = (0..16)
            .map(|i| if i < 8 { 1.0 } else { 1.02 } * (1.0 + 0.001 * noise(i)))
            .collect();
        let a = analysed(&values, |_| None);
        assert!(a.change_points.is_empty(), "{:?}", a.change_points);
        assert_eq!(a.minor_changes.len(), 1, "{:?}", a.minor_changes);
        assert!((a.minor_changes[0].ratio - 1.02).abs() < 0.005);
    }

    #[test]
    fn an_estimate_with_another_tdp_is_a_known_break_not_a_regression() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        // The same code estimated with a TDP of 7 W, then of 70 W (a table entry changed):
        // ten times the energy, by the model alone.
        for i in 0..12 {
            let at = format!("2026-01-{:02}T00:00:00+00:00", i + 1);
            let mut c = case("c", 1.0);
            let tdp = if i < 6 { 7.0 } else { 70.0 };
            c.energy = Some(wattbench_core::testing::estimated_energy(tdp / 7.0, tdp));
            add(&mut h, &run_file(&at, &[], vec![c]));
        }
        let f = SeriesFilter {
            metric: Some(Metric::EnergyJ),
            ..SeriesFilter::default()
        };
        let a = analyse(&h, &f, &changepoint::Config::default()).unwrap();
        assert_eq!(a[0].known_breaks.len(), 1, "{:?}", a[0].known_breaks);
        assert_eq!(a[0].known_breaks[0].index, 6);
        let changed = &a[0].known_breaks[0].changed[0];
        assert!(
            changed.contains("7 W TDP") && changed.contains("70 W TDP"),
            "{changed}"
        );
        let cp = &a[0].change_points;
        assert!(!cp.is_empty() && cp.iter().all(|c| c.known_break), "{cp:?}");
    }

    #[test]
    fn an_energy_source_change_is_a_known_break_not_a_regression() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        // Eight estimates, then eight counter readings twice as high (RAPL became readable):
        // one series, broken where the source changed, not blamed on the commit.
        for i in 0..16 {
            let at = format!("2026-01-{:02}T00:00:00+00:00", i + 1);
            let mut c = case("c", 1.0);
            let e = c.energy.as_mut().unwrap();
            if i < 8 {
                e.total_sources = vec![Source::Estimated];
            } else {
                e.total_sources = vec![Source::Measured];
                e.total_joules_per_iter = e.total_joules_per_iter.map(|j| j.scale(2.0));
            }
            add(&mut h, &run_file(&at, &[], vec![c]));
        }
        let f = SeriesFilter {
            metric: Some(Metric::EnergyJ),
            ..SeriesFilter::default()
        };
        let a = analyse(&h, &f, &changepoint::Config::default()).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].known_breaks.len(), 1, "{:?}", a[0].known_breaks);
        assert_eq!(a[0].known_breaks[0].index, 8);
        assert_eq!(
            a[0].known_breaks[0].changed,
            vec!["source estimated → measured"]
        );
        let cp = &a[0].change_points;
        assert!(!cp.is_empty() && cp.iter().all(|c| c.known_break), "{cp:?}");
        // The time series of the same runs has one source throughout: no break.
        let t = SeriesFilter {
            metric: Some(Metric::TimeS),
            ..SeriesFilter::default()
        };
        assert!(analyse(&h, &t, &changepoint::Config::default()).unwrap()[0]
            .known_breaks
            .is_empty());
    }

    #[test]
    fn a_new_source_starts_the_level_and_an_untestable_break_says_so() {
        // Ten estimates at 10 J, then one measurement at 20 J: too few runs after the break
        // for any test (p ≥ 1/11), so no change point; but the figure is another quantity,
        // so its level, min and max start at the break.
        let a = energy_analysed(11, |i, e| {
            e.total_sources = vec![if i < 10 {
                Source::Estimated
            } else {
                Source::Measured
            }];
            let scale = if i < 10 { 1.0 } else { 2.0 } * noise(i);
            e.total_joules_per_iter = e.total_joules_per_iter.map(|j| j.scale(scale));
        });
        assert!(a.change_points.is_empty(), "{:?}", a.change_points);
        let b = &a.known_breaks[0];
        assert_eq!((b.index, b.source_changed, b.testable), (10, true, false));
        let t = &a.trend;
        assert_eq!(t.level_start, 10);
        assert_eq!((t.level_median, t.min, t.max), (t.last, t.last, t.last));
        // Five runs on each side of a software change are enough to test it.
        let values: Vec<f64> = (0..10).map(noise).collect();
        let a = analysed(&values, |i| {
            Some(if i < 5 {
                vec![]
            } else {
                vec![("OMP_NUM_THREADS", "2".into())]
            })
        });
        let b = &a.known_breaks[0];
        assert_eq!((b.index, b.source_changed, b.testable), (5, false, true));
        assert_eq!(a.trend.level_start, 0, "no change of level, same quantity");
    }

    #[test]
    fn one_run_of_another_source_does_not_cut_the_history() {
        // Measured energy for eleven runs, one night estimated in the middle (the counter
        // unreadable), then measured again: the estimate is left out of the range and level,
        // and the measured history before it still counts.
        let a = energy_analysed(12, |i, e| {
            if i == 6 {
                e.total_sources = vec![Source::Estimated];
                e.total_joules_per_iter = e.total_joules_per_iter.map(|j| j.scale(0.2));
            }
        });
        let t = &a.trend;
        assert_eq!(t.level_start, 0, "{t:?}");
        assert_eq!((t.min, t.max, t.level_median), (10.0, 10.0, 10.0), "{t:?}");
        assert_eq!(t.previous, Some(10.0));
        // Three nights of estimates: testable breaks, found as changes there, but the
        // measured history before them is still the level's.
        let a = energy_analysed(12, |i, e| {
            if (5..8).contains(&i) {
                e.total_sources = vec![Source::Estimated];
                e.total_joules_per_iter = e.total_joules_per_iter.map(|j| j.scale(0.2));
            }
        });
        assert!(a
            .known_breaks
            .iter()
            .all(|b| b.source_changed && b.testable));
        let t = &a.trend;
        assert_eq!(t.level_start, 0, "{t:?} {:?}", a.change_points);
        assert_eq!((t.min, t.max, t.level_median), (10.0, 10.0, 10.0), "{t:?}");
    }

    #[test]
    fn a_measured_step_beside_an_excursion_to_another_source_is_found_on_the_measured_runs() {
        // Measured at 10 J, three nights estimated at a fifth of it, then measured again, 20 %
        // higher from `step` on: the measured runs alone show the step, a change of ours
        // (not a known break), compared with the measured runs before it, not with estimates.
        for step in [8, 10] {
            let a = energy_analysed(20, |i, e| {
                if (5..8).contains(&i) {
                    e.total_sources = vec![Source::Estimated];
                    e.total_joules_per_iter = e.total_joules_per_iter.map(|j| j.scale(0.2));
                } else if i >= step {
                    e.total_joules_per_iter = e.total_joules_per_iter.map(|j| j.scale(1.2));
                }
            });
            let found: Vec<&ChangePoint> = (a.change_points.iter())
                .filter(|c| !c.known_break && (c.ratio - 1.2).abs() < 0.01)
                .collect();
            assert_eq!(found.len(), 1, "step {step}: {:?}", a.change_points);
            let c = found[0];
            assert_eq!(c.index, step, "{c:?}");
            assert_eq!((c.before_median, c.after_median), (10.0, 12.0), "{c:?}");
            assert_eq!(c.source.as_deref(), Some("measured"), "{c:?}");
            assert!(!c.source_changed, "{c:?}");
            // The level is the measured one since the step.
            let t = &a.trend;
            assert_eq!((t.level_start, t.level_median), (step, 12.0), "{t:?}");
        }
    }

    #[test]
    fn the_changes_of_source_are_still_tested_and_reported_as_known_breaks() {
        // The same excursion with no step: each change of source is a known break, found
        // as a change there (another quantity), with the source it changed to; the
        // measured runs have no change of their own.
        let a = energy_analysed(20, |i, e| {
            if (5..8).contains(&i) {
                e.total_sources = vec![Source::Estimated];
                e.total_joules_per_iter = e.total_joules_per_iter.map(|j| j.scale(0.2));
            }
        });
        let at: Vec<(usize, bool, bool, Option<&str>)> = (a.change_points.iter())
            .map(|c| {
                (
                    c.index,
                    c.known_break,
                    c.source_changed,
                    c.source.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            at,
            [
                (5, true, true, Some("estimated")),
                (8, true, true, Some("measured"))
            ],
            "{:?}",
            a.change_points
        );
        assert_eq!(
            a.change_points[0].software_change,
            ["source measured → estimated"]
        );
        assert_eq!(
            (
                a.change_points[0].before_median,
                a.change_points[0].after_median
            ),
            (10.0, 2.0)
        );
        assert_eq!(a.trend.level_start, 0);
    }

    #[test]
    fn nights_with_a_partial_total_are_another_source_not_a_drop() {
        // Three nights the GPU's counter failed: their totals (the package's alone) are 40 %
        // lower, marked partial, so another quantity: known breaks, out of the level.
        let a = energy_analysed(12, |i, e| {
            if (5..8).contains(&i) {
                e.domains = vec![
                    wattbench_core::testing::domain_row(
                        "package",
                        Source::Measured,
                        true,
                        Some(6.0),
                    ),
                    wattbench_core::testing::domain_row("gpu0", Source::Measured, true, None),
                ];
                e.total_includes = vec!["package (measured)".into()];
                e.total_joules_per_iter = e.total_joules_per_iter.map(|j| j.scale(0.6));
            }
        });
        let b: Vec<(usize, bool)> = (a.known_breaks.iter())
            .map(|b| (b.index, b.source_changed))
            .collect();
        assert_eq!(b, [(5, true), (8, true)], "{:?}", a.known_breaks);
        assert_eq!(
            a.known_breaks[0].changed,
            ["source measured → measured [package (measured)]; PARTIAL: without gpu0"]
        );
        assert!(
            a.change_points.iter().all(|c| c.source_changed),
            "{:?}",
            a.change_points
        );
        let t = &a.trend;
        assert_eq!((t.level_start, t.min, t.max), (0, 10.0, 10.0), "{t:?}");
    }

    #[test]
    fn a_change_of_variables_across_a_run_that_did_not_record_them_is_a_known_break() {
        // Four threads, one run by an older binary (no variables recorded), then one thread:
        // the change is known from the last run that recorded them.
        let values: Vec<f64> = (0..12)
            .map(|i| if i < 6 { 1.0 } else { 6.0 } * noise(i))
            .collect();
        let a = analysed(&values, |i| match i {
            5 => None,
            _ if i < 5 => Some(vec![]),
            _ => Some(vec![("RAYON_NUM_THREADS", "1".into())]),
        });
        assert_eq!(a.known_breaks.len(), 1, "{:?}", a.known_breaks);
        assert_eq!(a.known_breaks[0].index, 6);
        assert_eq!(
            a.known_breaks[0].changed,
            ["environment RAYON_NUM_THREADS added (1)"]
        );
        let cp = &a.change_points;
        assert!(
            !cp.is_empty() && cp.iter().all(|c| c.known_break && c.index == 6),
            "{cp:?}"
        );
        // Back to the first value across two such runs: a change again.
        let a = analysed(&values[..8], |i| match i {
            0..=2 => Some(vec![("RAYON_NUM_THREADS", "1".into())]),
            3 | 4 => None,
            _ => Some(vec![]),
        });
        let b: Vec<(usize, &[String])> = (a.known_breaks.iter())
            .map(|b| (b.index, b.changed.as_slice()))
            .collect();
        assert_eq!(
            b,
            [(
                5,
                &["environment RAYON_NUM_THREADS removed (1)".to_string()][..]
            )]
        );
    }

    #[test]
    fn a_database_of_an_older_wattbench_is_read_without_migrating_it() {
        // Schema 1 (before `variables_fp` and `conditions_fp`), as a released wattbench wrote
        // it: readers take the missing columns as unknown, and leave the file as it is.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.sqlite");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(crate::db::MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.pragma_update(None, "application_id", crate::db::APPLICATION_ID)
            .unwrap();
        c.execute_batch(
            "INSERT INTO runs (id, sha256, created_at, command, hardware_fp, software_fp,
                               interrupted, recorded_at)
             VALUES (1, 'x', '2026-01-01T00:00:00+00:00', 'run', 'cpu=a x2', '', 0, 'now');
             INSERT INTO measurements (run_id, case_id, metric, value)
             VALUES (1, 'c', 'time_s', 0.5);",
        )
        .unwrap();
        drop(c);
        let h = History::open_existing(&db).unwrap();
        let s = series(&h, &SeriesFilter::default()).unwrap();
        assert_eq!(s.len(), 1);
        let p = &s[0].points[0];
        assert_eq!(
            (p.value, &p.variables_fp, &p.conditions_fp),
            (0.5, &None, &None)
        );
        assert_eq!(h.user_version().unwrap(), 1, "a reader does not migrate");
    }

    #[test]
    fn a_cpu_limit_or_gpu_power_limit_change_is_a_known_break_not_a_regression() {
        // The same machine kind, its container's CPU limit cut from 2 cores to 1: twice the
        // time, not from any commit.
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        for i in 0..12 {
            let at = format!("2026-01-{:02}T00:00:00+00:00", i + 1);
            let t = if i < 6 { 1.0 } else { 2.0 } * noise(i);
            let mut r = run_file(&at, &[], vec![case("c", t)]);
            r.environment.host.usable_cores = Some(if i < 6 { 2 } else { 1 });
            add(&mut h, &r);
        }
        let f = SeriesFilter {
            metric: Some(Metric::TimeS),
            ..SeriesFilter::default()
        };
        let a = analyse(&h, &f, &changepoint::Config::default())
            .unwrap()
            .remove(0);
        assert_eq!(a.known_breaks.len(), 1, "{:?}", a.known_breaks);
        assert_eq!(a.known_breaks[0].changed, ["condition usable_cores 2 → 1"]);
        assert!(!a.change_points.is_empty() && a.change_points.iter().all(|c| c.known_break));
        // A GPU's power limit (of a metered GPU) is a condition too.
        let mut env = run_file("2026-01-01T00:00:00+00:00", &[], vec![]).environment;
        env.host.usable_cores = Some(2);
        assert_eq!(
            env.conditions_fingerprint().as_deref(),
            Some("usable_cores=2")
        );
        env.gpus.push(wattbench_core::result::GpuRecord {
            uuid: None,
            power_limit_watts: Some(700.0),
            ..wattbench_core::testing::gpu_record(0, "")
        });
        assert_eq!(
            env.conditions_fingerprint().as_deref(),
            Some("usable_cores=2; gpu0_power_limit=700 W")
        );
        // A limit not read is unknown, and no change from or to a known one.
        env.gpus[0].power_limit_watts = None;
        assert_eq!(
            env.conditions_fingerprint().as_deref(),
            Some("usable_cores=2; gpu0_power_limit=unknown")
        );
        // Along a series: a run that could not read the limit (unknown, absent, or no
        // conditions) is no change, and does not hide the change across it.
        let mut known = KnownConditions::default();
        assert!(known
            .update(Some("usable_cores=2; gpu0_power_limit=700 W"))
            .is_empty());
        assert!(known
            .update(Some("usable_cores=2; gpu0_power_limit=unknown"))
            .is_empty());
        assert!(known.update(Some("usable_cores=2")).is_empty());
        assert!(known.update(None).is_empty());
        assert_eq!(
            known.update(Some("usable_cores=2; gpu0_power_limit=500 W")),
            ["gpu0_power_limit 700 W → 500 W"]
        );
        env.host.usable_cores = None;
        assert_eq!(
            env.conditions_fingerprint(),
            None,
            "a file that predates them"
        );
    }

    #[test]
    fn trend_of_a_steady_drift() {
        let v: Vec<f64> = (0..10).map(|i| 100.0 + i as f64).collect();
        let t = trend(&v, 0, &[true; 10]);
        assert_eq!(
            (t.runs, t.last, t.previous, t.min, t.max),
            (10, 109.0, Some(108.0), 100.0, 109.0)
        );
        assert!((t.drift_per_run.unwrap() - 1.0 / 104.5).abs() < 1e-12);
        assert_eq!(trend(&[1.0, 2.0], 0, &[true; 2]).drift_per_run, None);
    }

    #[test]
    fn software_diff_names_each_change() {
        assert_eq!(
            software_diff("a=1; b=2; c=3", "a=1; b=3; d=4"),
            vec!["b 2 → 3", "c removed (3)", "d added (4)"]
        );
        assert!(software_diff("a=1", "a=1").is_empty());
    }
}
