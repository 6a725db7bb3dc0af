//! A [`Comparison`] for people: a terminal table, or Markdown for a pull-request comment or a
//! CI job summary. Both lead with what changed (slower, then faster, then ambiguous), list
//! every unmatched and uncompared case, and end with the verdict rule.
use crate::compare::{CaseComparison, Comparison, Method, Metric, NotCompared, Verdict};
use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::Table;
use std::collections::BTreeMap;
use wattbench_core::units;

/// The verdict rule in one paragraph, as `--help` and the outputs state it.
pub fn rule(c: &Comparison) -> String {
    format!(
        "Verdict per case and metric, from NEW/BASE: `slower` when the Mann-Whitney p-value, \
         adjusted for all {tests} tests by Benjamini-Hochberg, is below {alpha} and the whole \
         {conf}% bootstrap interval of the ratio of medians lies above 1 + threshold; `faster` \
         when significant and the whole interval lies below 1 / (1 + threshold); `same` when \
         the interval lies inside [1 / (1 + threshold), 1 + threshold]; `ambiguous` otherwise. \
         Thresholds: time {t}, energy {e}, memory {m}. Energy with a single window per side \
         has no test: its interval is the meters' stated uncertainty, and it is never `same`. \
         Peak memory has no test: its interval is the range of ratios over each side's \
         files, which needs two files a side (with one, `ambiguous`).",
        tests = c.cases.iter().filter(|r| r.p_raw.is_some()).count(),
        alpha = c.alpha,
        conf = percent(c.confidence),
        t = pct(c.threshold.time),
        e = pct(c.threshold.energy),
        m = pct(c.threshold.memory),
    )
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
            r.metric.as_str().to_string(),
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

fn summary_line(c: &Comparison) -> String {
    let s = &c.summary;
    format!(
        "{} slower, {} faster, {} same, {} ambiguous",
        s.slower, s.faster, s.same, s.ambiguous
    )
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
        format!("**{} slower**", s.slower)
    } else {
        "0 slower".into()
    };
    md.push_str(&format!(
        "{slower}, {} faster, {} same, {} ambiguous — {}\n\n",
        s.faster,
        s.same,
        s.ambiguous,
        sides(c)
    ));
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
