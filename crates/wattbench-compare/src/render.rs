//! A [`Comparison`] for people: a terminal table, or Markdown for a pull-request comment or a
//! CI job summary. Both lead with what changed (slower, then faster, then ambiguous), list
//! every unmatched and uncompared case, and end with the verdict rule.
use crate::compare::{Broken, CaseComparison, Comparison, Method, Metric, NotCompared, Verdict};
use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::Table;
use std::collections::BTreeMap;
use wattbench_core::units;

/// The verdict rule in one paragraph, as `--help` and the outputs state it.
pub fn rule(c: &Comparison) -> String {
    format!(
        "Verdict per case and metric, from NEW/BASE: `slower` when the test's p-value, \
         adjusted by Benjamini-Hochberg over the tests of its metric ({time_tests} of time, \
         {energy_tests} of energy), is below {alpha} and the whole {conf}% interval of the \
         ratio lies above 1 + threshold; `faster` when significant and the whole interval lies \
         below 1 / (1 + threshold); `same` when the interval lies inside [1 / (1 + threshold), \
         1 + threshold]; `ambiguous` otherwise. Time: Mann-Whitney, bootstrap interval of the \
         ratio of medians. Energy with several windows a side: Welch's t-test and interval on \
         the logarithms (ratio of geometric means); with a single window on a side no test: \
         its interval is the meters' stated uncertainty, and it is never `same`. Thresholds: \
         time {t}, energy {e}, memory {m}. Peak memory has no test: its interval is the range \
         of ratios over each side's files, which needs two files a side (with one, \
         `ambiguous`). Single-window energy and peak memory are reported but never fail the \
         gate. A case ok on base that failed on new fails the gate as `slower` does.",
        time_tests = tests(c, Metric::Time),
        energy_tests = tests(c, Metric::Energy),
        alpha = c.alpha,
        conf = percent(c.confidence),
        t = pct(c.threshold.time),
        e = pct(c.threshold.energy),
        m = pct(c.threshold.memory),
    )
}

fn tests(c: &Comparison, metric: Metric) -> usize {
    (c.cases.iter())
        .filter(|r| r.metric == metric && r.p_raw.is_some())
        .count()
}

/// A fraction as a percentage without float noise: 0.07 → `7`, 0.125 → `12.5`.
fn percent(f: f64) -> String {
    let s = format!("{:.6}", f * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn pct(t: f64) -> String {
    format!("{}%", percent(t))
}

/// A value of `unit` for a table.
fn value(v: f64, unit: &str) -> String {
    match unit {
        "s" => units::seconds(v),
        "J" => units::joules(v),
        "B" => units::mib(v.round() as u64),
        _ => units::sig(v),
    }
}

fn ratio(r: f64) -> String {
    format!("{r:.3}")
}

fn interval(r: &CaseComparison) -> String {
    match (r.ci, r.method) {
        (Some([lo, hi]), _) => format!("{lo:.3} – {hi:.3}"),
        (None, Method::Threshold) => "no interval".into(),
        (None, _) => "none".into(),
    }
}

fn p_value(r: &CaseComparison) -> String {
    match (r.p_value, r.method) {
        (Some(p), _) if p < 1e-3 => format!("{p:.1e}"),
        (Some(p), _) => format!("{p:.3}"),
        (None, Method::MeterInterval) => "no test (1 window)".into(),
        (None, _) => "no test".into(),
    }
}

fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Slower => 0,
        Verdict::Faster => 1,
        Verdict::Ambiguous => 2,
        Verdict::Same => 3,
    }
}

/// Rows in reading order: slower, faster, ambiguous, same; in document order within each.
fn ordered(c: &Comparison) -> Vec<&CaseComparison> {
    let mut rows: Vec<&CaseComparison> = c.cases.iter().collect();
    rows.sort_by_key(|r| severity(r.verdict));
    rows
}

fn table_of<'a>(rows: impl IntoIterator<Item = &'a CaseComparison>, preset: &str) -> Table {
    let mut t = Table::new();
    t.load_preset(preset);
    t.set_header([
        "case", "metric", "base", "new", "ratio", "interval", "p (BH)", "verdict",
    ]);
    for r in rows {
        t.add_row([
            r.id.clone(),
            match &r.source {
                Some(src) => format!("{} ({src})", r.metric.as_str()),
                None => r.metric.as_str().to_string(),
            },
            value(r.base, &r.unit),
            value(r.new, &r.unit),
            ratio(r.ratio),
            interval(r),
            p_value(r),
            r.verdict.as_str().to_string(),
        ]);
    }
    t
}

/// What the `slower` rows are, for the summary: ` (energy, estimated)` when they are of one
/// metric and source, ` (2 time; 1 host_memory, not gating)` otherwise; empty when there are
/// none. A CI log that shows the summary line alone then says what failed, and whether it
/// was an estimate or a row that never gates ([`CaseComparison::gates`]).
fn slower_kinds(c: &Comparison) -> String {
    let mut kinds: BTreeMap<(Metric, String), usize> = BTreeMap::new();
    for r in c.cases.iter().filter(|r| r.verdict == Verdict::Slower) {
        let mut label = r.metric_label();
        if !r.gates() {
            label.push_str(", not gating");
        }
        *kinds.entry((r.metric, label)).or_default() += 1;
    }
    match kinds.len() {
        0 => String::new(),
        1 => format!(
            " ({})",
            kinds.into_keys().map(|(_, l)| l).collect::<String>()
        ),
        _ => {
            let each: Vec<String> = (kinds.into_iter())
                .map(|((_, label), n)| format!("{n} {label}"))
                .collect();
            format!(" ({})", each.join("; "))
        }
    }
}

/// `3 slower (2 time; 1 energy, estimated), 1 faster, 40 same, 2 ambiguous`, then the cases
/// new failed or lost when any.
pub fn summary_line(c: &Comparison) -> String {
    let s = &c.summary;
    let mut line = format!(
        "{} slower{}, {} faster, {} same, {} ambiguous",
        s.slower,
        slower_kinds(c),
        s.faster,
        s.same,
        s.ambiguous
    );
    if s.failed > 0 {
        line.push_str(&format!(", {} FAILED on new (ok on base)", s.failed));
    }
    if s.lost > 0 {
        line.push_str(&format!(
            ", {} lost (ok on base, skipped or absent on new)",
            s.lost
        ));
    }
    line
}

/// The cases new broke, a line per kind: failed first (a gate fails on them), then lost.
fn regressed(c: &Comparison, markdown: bool) -> String {
    let (item, limit) = if markdown { ("- ", 50) } else { ("", 20) };
    let mut out = String::new();
    for (how, label) in [
        (Broken::Failed, "FAILED on new, ok on base"),
        (Broken::Skipped, "skipped on new, ok on base"),
        (Broken::Missing, "absent from new, ok on base"),
    ] {
        let these: Vec<&crate::compare::Regressed> =
            c.regressed.iter().filter(|r| r.how == how).collect();
        if these.is_empty() {
            continue;
        }
        let ids: Vec<&str> = these.iter().map(|r| r.id.as_str()).collect();
        out.push_str(&format!(
            "{item}{label} ({}): {}\n",
            these.len(),
            id_list(&ids, markdown, limit)
        ));
        if how == Broken::Failed {
            for r in these.iter().take(limit) {
                out.push_str(&format!("{item}  {}: {}\n", r.id, r.reason));
            }
        }
    }
    out
}

/// Not-compared entries grouped by metric and reason, each with its ids.
fn grouped(items: &[NotCompared]) -> Vec<(String, Vec<&str>)> {
    let mut g: BTreeMap<(Option<Metric>, &str), Vec<&str>> = BTreeMap::new();
    for n in items {
        g.entry((n.metric, n.reason.as_str()))
            .or_default()
            .push(n.id.as_str());
    }
    g.into_iter()
        .map(|((m, reason), ids)| {
            let what = m.map_or("case".to_string(), |m| m.as_str().to_string());
            (format!("{what}: {reason}"), ids)
        })
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn id_list(ids: &[&str], quote: bool, limit: usize) -> String {
    let q = |s: &str| {
        if quote {
            format!("`{s}`")
        } else {
            s.to_string()
        }
    };
    let mut out: Vec<String> = ids.iter().take(limit).map(|s| q(s)).collect();
    if ids.len() > limit {
        out.push(format!(
            "and {} more (all in --format json)",
            ids.len() - limit
        ));
    }
    out.join(", ")
}

fn sides(c: &Comparison) -> String {
    let side = |s: &crate::compare::Side| {
        let commits = if s.git_commits.is_empty() {
            "commit unknown".to_string()
        } else {
            format!("commit {}", s.git_commits.join(", "))
        };
        let files = if s.files.len() == 1 {
            s.files[0].clone()
        } else {
            format!("{} files", s.files.len())
        };
        format!("{files} ({commits})")
    };
    format!("base: {}; new: {}", side(&c.base), side(&c.new))
}

/// What the table leaves out, a line each: the cases of one side only, those not compared
/// (grouped by reason), and the notes. As a Markdown list (ids quoted, longer lists) or text.
fn left_out(c: &Comparison, markdown: bool) -> String {
    let (item, one_side, not_compared) = if markdown {
        ("- ", 50, 20)
    } else {
        ("", 20, 10)
    };
    let mut out = String::new();
    for (side, ids) in [
        ("base", &c.unmatched.base_only),
        ("new", &c.unmatched.new_only),
    ] {
        if !ids.is_empty() {
            out.push_str(&format!(
                "{item}only in {side} ({}): {}\n",
                ids.len(),
                id_list(&strs(ids), markdown, one_side)
            ));
        }
    }
    for (what, ids) in grouped(&c.not_compared) {
        out.push_str(&format!(
            "{item}not compared, {what} ({}): {}\n",
            ids.len(),
            id_list(&ids, markdown, not_compared)
        ));
    }
    for n in &c.notes {
        out.push_str(&format!("{item}note: {n}\n"));
    }
    out
}

/// The comparison as terminal text: a table, then what was not compared, notes and the rule.
pub fn table(c: &Comparison) -> String {
    let mut out = String::new();
    out.push_str(&format!("{}\n", sides(c)));
    out.push_str(&table_of(ordered(c), UTF8_FULL_CONDENSED).to_string());
    out.push('\n');
    out.push_str(&format!("summary: {}\n", summary_line(c)));
    out.push_str(&regressed(c, false));
    out.push_str(&left_out(c, false));
    out.push_str(&format!("rule: {}\n", rule(c)));
    out
}

/// The comparison as Markdown for a pull-request comment or a job summary: slower and faster
/// rows in a table, ambiguous and same rows folded away, then what was not compared.
pub fn markdown(c: &Comparison) -> String {
    let s = &c.summary;
    let mut md = String::from("## wattbench compare\n\n");
    let slower = if s.slower > 0 {
        format!("**{} slower**{}", s.slower, slower_kinds(c))
    } else {
        "0 slower".into()
    };
    let mut broken = String::new();
    if s.failed > 0 {
        broken.push_str(&format!(", **{} FAILED on new**", s.failed));
    }
    if s.lost > 0 {
        broken.push_str(&format!(", {} lost", s.lost));
    }
    md.push_str(&format!(
        "{slower}, {} faster, {} same, {} ambiguous{broken} — {}\n\n",
        s.faster,
        s.same,
        s.ambiguous,
        sides(c)
    ));
    md.push_str(&regressed(c, true));
    if !c.regressed.is_empty() {
        md.push('\n');
    }
    let rows = ordered(c);
    let pick = |want: &[Verdict]| -> Vec<&CaseComparison> {
        rows.iter()
            .copied()
            .filter(|r| want.contains(&r.verdict))
            .collect()
    };
    let changed = pick(&[Verdict::Slower, Verdict::Faster]);
    if !changed.is_empty() {
        md.push_str(&table_of(changed, ASCII_MARKDOWN).to_string());
        md.push_str("\n\n");
    }
    // Folded away: what did not change, and what the data cannot decide.
    for (verdict, label) in [(Verdict::Ambiguous, "ambiguous"), (Verdict::Same, "same")] {
        let these = pick(&[verdict]);
        if !these.is_empty() {
            md.push_str(&format!(
                "<details><summary>{} {label}</summary>\n\n{}\n\n</details>\n\n",
                these.len(),
                table_of(these, ASCII_MARKDOWN)
            ));
        }
    }
    md.push_str(&left_out(c, true));
    md.push_str(&format!("\n<sub>{}</sub>\n", rule(c)));
    md
}
