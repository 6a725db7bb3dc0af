//! The result table of `run` and `report`, in one place: for a terminal it fits the width
//! (100 columns when the output is not a terminal), dropping the least needed columns first
//! (GB/s, the interval, net energy, the error, GFLOP/J: the drop ranks of `COLUMNS`) and wrapping
//! the case and energy cells; where even the needed columns cannot be shown without cutting
//! their words, one block of lines per case instead. Reasons and case notes are never cut: the
//! status says `skipped [n]` (`ok [n]` for a note) and the full text `[n]` follows the table
//! (each distinct text once). In Markdown every column is kept. The error column shows the
//! relative L2 error, or the max error marked `max` for a case that failed on it alone.
use crate::energy;
use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width};
use std::io::IsTerminal;
use wattbench_core::result::{CaseResult, Status};
use wattbench_core::units;

/// Where the table goes.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// A terminal (or a pipe) of this many columns.
    Terminal(u16),
    /// A Markdown document: every column.
    Markdown,
}

impl Target {
    /// Standard output's terminal width, or 100 columns when it is not a terminal.
    pub fn stdout() -> Target {
        let width = if std::io::stdout().is_terminal() {
            Table::new().width().unwrap_or(100)
        } else {
            100
        };
        Target::Terminal(width)
    }

    /// Columns of text: unlimited for Markdown.
    pub fn width(self) -> usize {
        match self {
            Target::Terminal(w) => w.into(),
            Target::Markdown => usize::MAX,
        }
    }
}

/// One column: its title, how much it is needed (columns with a higher rank are dropped
/// first on a narrow terminal) and its cell for a case.
struct Column {
    title: &'static str,
    drop_rank: u8,
    right: bool,
    cell: fn(&CaseResult, &str) -> String,
}

fn time_stats(c: &CaseResult) -> Option<&wattbench_core::stats::TimeStats> {
    c.time.as_ref()
}

const COLUMNS: [Column; 12] = [
    Column {
        title: "case",
        drop_rank: 0,
        right: false,
        cell: |c, _| format!("{} {} {}", c.op.as_str(), c.mode.as_str(), c.params.label()),
    },
    Column {
        title: "dtype",
        drop_rank: 0,
        right: false,
        cell: |c, _| c.dtype.as_str().to_string(),
    },
    Column {
        title: "backend",
        drop_rank: 0,
        right: false,
        cell: |c, _| format!("{}/{}", c.backend, c.device),
    },
    Column {
        title: "status",
        drop_rank: 0,
        right: false,
        cell: |_, status| status.to_string(),
    },
    Column {
        title: "median",
        drop_rank: 0,
        right: true,
        cell: |c, _| time_stats(c).map_or(String::new(), |t| units::seconds(t.median_s)),
    },
    Column {
        title: "95% CI of median",
        drop_rank: 3,
        right: false,
        cell: |c, _| {
            // One sample has no interval (its note says so): never a zero-width one.
            time_stats(c).map_or(String::new(), |t| match t.ci95_known() {
                Some([low, high]) => {
                    format!("{} – {}", units::seconds(low), units::seconds(high))
                }
                None => "none".into(),
            })
        },
    },
    Column {
        title: "GFLOP/s",
        drop_rank: 0,
        right: true,
        cell: |c, _| {
            c.throughput
                .as_ref()
                .map_or(String::new(), |t| units::sig(t.gflops_per_s))
        },
    },
    Column {
        title: "GB/s",
        drop_rank: 4,
        right: true,
        cell: |c, _| {
            c.throughput
                .as_ref()
                .map_or(String::new(), |t| units::sig(t.gbytes_per_s))
        },
    },
    Column {
        title: "rel. L2 err",
        drop_rank: 2,
        right: true,
        cell: |c, _| c.verification.as_ref().map_or(String::new(), error_cell),
    },
    Column {
        title: "J/call gross",
        drop_rank: 0,
        right: false,
        cell: |c, _| c.energy.as_ref().map_or(String::new(), energy::summary),
    },
    Column {
        title: "J/call net",
        drop_rank: 2,
        right: false,
        cell: |c, _| c.energy.as_ref().map_or(String::new(), energy::net),
    },
    Column {
        title: "GFLOP/J",
        drop_rank: 1,
        right: true,
        cell: |c, _| {
            c.energy
                .as_ref()
                .and_then(|e| e.whole_gflops_per_joule_interval())
                .map_or(String::new(), |g| {
                    format!("{} {}", units::sig(g.value), units::relative(&g))
                })
        },
    },
];

/// A case's error: its relative L2 error, or, when it failed on its max error alone (one
/// wrong row, which L2 dilutes), that error marked `max`: a FAILED case never shows an error
/// within its tolerance as its only figure. Both fit the column's title width.
fn error_cell(v: &wattbench_core::result::Verification) -> String {
    match v.rel_max_error {
        Some(m) if m > v.tolerance && v.rel_l2_error <= v.tolerance => format!("{m:.1e} max"),
        _ => format!("{:.1e}", v.rel_l2_error),
    }
}

/// The case column of a terminal: its shape and dtype.
const CASE_AND_DTYPE: Column = Column {
    title: "case",
    drop_rank: 0,
    right: false,
    cell: |c, _| {
        format!(
            "{} {} {} {}",
            c.op.as_str(),
            c.mode.as_str(),
            c.params.label(),
            c.dtype.as_str()
        )
    },
};

/// Whether a column's cells wrap on a terminal (the others keep their width).
fn wraps(col: &Column) -> bool {
    matches!(
        col.title,
        "case" | "J/call gross" | "J/call net" | "95% CI of median"
    )
}

/// The narrowest a wrapping column is let be: its longest word, and at least this.
const MIN_WRAP: usize = 10;

/// The narrowest a column's content may be without cutting a word: a non-wrapping column's
/// content width, a wrapping one's longest word (at least [`MIN_WRAP`], at most its content).
fn col_min(col: &Column, cases: &[CaseResult], statuses: &[String]) -> usize {
    let chars = |s: &str| s.chars().count();
    let longest_word = |s: &str| s.split_whitespace().map(chars).max().unwrap_or(0);
    let cells: Vec<String> = cases
        .iter()
        .zip(statuses)
        .map(|(c, st)| (col.cell)(c, st))
        .collect();
    let content = cells.iter().map(|c| chars(c)).max().unwrap_or(0);
    if wraps(col) {
        let word = cells.iter().map(|c| longest_word(c)).max().unwrap_or(0);
        content.min(word.max(MIN_WRAP)).max(longest_word(col.title))
    } else {
        content.max(chars(col.title))
    }
}

/// The narrowest width at which the table of `keep` shows every cell without cutting a word
/// (see [`col_min`]), padding and borders included.
fn min_width(keep: &[&Column], cases: &[CaseResult], statuses: &[String]) -> usize {
    keep.iter()
        .map(|col| col_min(col, cases, statuses) + 3)
        .sum::<usize>()
        + 1
}

/// One block of lines per case, for a terminal too narrow for the table: the case, backend
/// and status on a line, then every figure as `title value`, wrapped to `width` and indented.
fn blocks(cases: &[CaseResult], statuses: &[String], width: usize) -> String {
    let mut out: Vec<String> = Vec::new();
    for (c, status) in cases.iter().zip(statuses) {
        let head = format!(
            "{}, {}/{}: {status}",
            (CASE_AND_DTYPE.cell)(c, status),
            c.backend,
            c.device
        );
        out.extend(wrap(&head, width));
        let figures: Vec<String> = COLUMNS
            .iter()
            .filter(|col| !matches!(col.title, "case" | "dtype" | "backend" | "status"))
            .filter_map(|col| {
                let v = (col.cell)(c, status);
                (!v.is_empty()).then(|| format!("{} {v}", col.title))
            })
            .collect();
        if !figures.is_empty() {
            let body = figures.join("; ");
            out.extend(
                wrap(&body, width.saturating_sub(2))
                    .into_iter()
                    .map(|l| format!("  {l}")),
            );
        }
    }
    out.join("\n")
}

/// The table of `cases` for `target` (or, on a terminal too narrow for it, one block per
/// case), and the lines that follow it: the full reasons and case notes (`[n] text`) and,
/// on a narrow terminal, which columns were left out.
pub fn cases(cases: &[CaseResult], target: Target) -> (String, Vec<String>) {
    // Each distinct reason or case note once, numbered in order of first appearance.
    let mut reasons: Vec<&str> = Vec::new();
    let mut statuses: Vec<String> = Vec::with_capacity(cases.len());
    fn number<'a>(reasons: &mut Vec<&'a str>, r: &'a str) -> String {
        let n = reasons.iter().position(|x| *x == r).unwrap_or_else(|| {
            reasons.push(r);
            reasons.len() - 1
        });
        (n + 1).to_string()
    }
    for c in cases {
        let mut marks = Vec::new();
        let word = match c.status {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Failed => "FAILED",
        };
        if c.status != Status::Ok {
            let r = c.reason.as_deref().unwrap_or("no reason recorded");
            marks.push(number(&mut reasons, r));
        }
        for n in &c.notes {
            marks.push(number(&mut reasons, n));
        }
        statuses.push(if marks.is_empty() {
            word.to_string()
        } else {
            format!("{word} [{}]", marks.join(", "))
        });
    }
    let mut t = Table::new();
    let mut after: Vec<String> = reasons
        .iter()
        .enumerate()
        .map(|(i, r)| format!("[{}] {r}", i + 1))
        .collect();
    let keep: Vec<&Column> = match target {
        Target::Markdown => {
            t.load_preset(ASCII_MARKDOWN);
            COLUMNS.iter().collect()
        }
        Target::Terminal(width) => {
            t.load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(width);
            // Wider terminals keep more columns: 100 columns keep rank 0-1, 120 rank 0-2, …
            let max_rank = match width {
                0..=119 => 1,
                120..=159 => 2,
                160..=199 => 3,
                _ => 4,
            };
            // The dtype goes with the case's shape, a column saved.
            let mut keep: Vec<&Column> =
                std::iter::once(&CASE_AND_DTYPE)
                    .chain(COLUMNS.iter().filter(|c| {
                        c.drop_rank <= max_rank && !matches!(c.title, "case" | "dtype")
                    }))
                    .collect();
            // Then, while the cells would be cut, the least needed column left (the later
            // of equal rank first).
            while min_width(&keep, cases, &statuses) > usize::from(width) {
                let Some(i) = (0..keep.len())
                    .filter(|&i| keep[i].drop_rank > 0)
                    .max_by_key(|&i| (keep[i].drop_rank, i))
                else {
                    break;
                };
                keep.remove(i);
            }
            if min_width(&keep, cases, &statuses) > usize::from(width) && !cases.is_empty() {
                // Even the needed columns would cut words: a block per case, every figure.
                let after = after.iter().flat_map(|l| wrap(l, width.into())).collect();
                return (blocks(cases, &statuses, width.into()), after);
            }
            let dropped: Vec<&str> = COLUMNS
                .iter()
                .filter(|c| {
                    !matches!(c.title, "case" | "dtype") && !keep.iter().any(|k| k.title == c.title)
                })
                .map(|c| c.title)
                .collect();
            if !dropped.is_empty() && !cases.is_empty() {
                after.push(format!(
                    "(left out for a {width}-column terminal: {}; every figure is in the result \
                     file and `wattbench report`)",
                    dropped.join(", ")
                ));
            }
            keep
        }
    };
    if let Target::Terminal(width) = target {
        after = after.iter().flat_map(|l| wrap(l, width.into())).collect();
    }
    t.set_header(keep.iter().map(|c| c.title));
    for (c, status) in cases.iter().zip(&statuses) {
        t.add_row(keep.iter().map(|col| {
            let cell = Cell::new((col.cell)(c, status));
            if col.right {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
    }
    if matches!(target, Target::Terminal(_)) {
        // Short cells are never wrapped: the width left goes to the case and the energy.
        // A wrapping column is never narrower than its longest word (the table fits: see the
        // columns dropped above).
        for (i, col) in keep.iter().enumerate() {
            let constraint = if wraps(col) {
                let min = col_min(col, cases, &statuses) + 2;
                ColumnConstraint::LowerBoundary(Width::Fixed(min.try_into().unwrap_or(u16::MAX)))
            } else {
                ColumnConstraint::ContentWidth
            };
            if let Some(column) = t.column_mut(i) {
                column.set_constraint(constraint);
            }
        }
    }
    (t.to_string(), after)
}

/// `line` broken at spaces into lines of at most `width` characters, the later ones indented
/// under the text after a leading `[n] ` (a word longer than a line is cut where it must be).
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let indent = match line.find("] ") {
        Some(i) if line.starts_with('[') => i + 2,
        _ => 0,
    };
    let width = width.max(indent + 20);
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut len = 0;
    // No word on the current line yet (only the indent).
    let mut fresh = true;
    for word in line.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let sep = usize::from(!fresh);
            if len + sep + word.len() <= width {
                if !fresh {
                    cur.push(' ');
                }
                cur.extend(&word);
                len += sep + word.len();
                fresh = false;
                break;
            }
            if fresh || word.len() > width - indent {
                // Too long for any line: cut it.
                let room = width.saturating_sub(len + sep);
                if room > 0 {
                    if !fresh {
                        cur.push(' ');
                    }
                    cur.extend(&word[..room]);
                    word.drain(..room);
                }
            }
            out.push(std::mem::replace(&mut cur, " ".repeat(indent)));
            len = indent;
            fresh = true;
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_spaces_with_a_hanging_indent_and_cuts_only_overlong_words() {
        let text = format!("[12] {} {}", "word ".repeat(30).trim_end(), "x".repeat(70));
        let lines = wrap(&text, 40);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:#?}");
        assert!(
            lines[1..].iter().all(|l| l.starts_with("     ")),
            "{lines:#?}"
        );
        let joined: String = lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
        assert_eq!(joined.replace(' ', ""), text.replace(' ', ""));
        assert_eq!(wrap("short", 40), vec!["short".to_string()]);
    }
}

#[cfg(test)]
mod narrow {
    use super::{cases, Target};
    use wattbench_core::energy::Source;
    use wattbench_core::result::CaseResult;
    use wattbench_core::testing::{case_energy, timed_case};
    use wattbench_core::workload::{GemmParams, Params};

    /// Two GEMM cases of a real size on two backends, with estimated energy.
    fn two_cases() -> Vec<CaseResult> {
        ["reference", "cuda-wgmma-c2"]
            .iter()
            .map(|b| {
                let mut c = timed_case("x", vec![1.2e-3, 1.3e-3, 1.25e-3]);
                c.params = Params::Gemm(GemmParams::new(35, 8457, 2560));
                c.backend = b.to_string();
                c.throughput = Some(wattbench_core::result::Throughput {
                    flops: 1_515_847_680,
                    gflops_per_s: 1212.7,
                    bytes: 87_600_000,
                    gbytes_per_s: 70.08,
                    intensity: 17.3,
                });
                let mut e = case_energy(0.21, 0.1, Source::Estimated);
                e.net_joules_per_iter = Some(0.2);
                e.net_uncertainty_j = Some(0.12);
                c.energy = Some(e);
                c
            })
            .collect()
    }

    #[test]
    fn a_narrow_terminal_never_cuts_the_words_of_a_case_or_its_energy() {
        let cases_ = two_cases();
        for width in 40..=220u16 {
            let (text, after) = cases(&cases_, Target::Terminal(width));
            for line in text.lines().chain(after.iter().map(String::as_str)) {
                assert!(
                    line.chars().count() <= usize::from(width),
                    "{width} columns: {line:?}\n{text}"
                );
            }
            // Every word of the case and of its energy is whole somewhere.
            for word in [
                "gemm",
                "infer",
                "m35_n8457_k2560_nn",
                "f32",
                "(estimated)",
                "reference/cpu",
                "cuda-wgmma-c2/cpu",
            ] {
                assert!(text.contains(word), "{width} columns: {word} cut\n{text}");
            }
            // What is left out is said; in blocks, nothing is.
            let left_out = after.iter().any(|l| l.contains("left out"));
            let block = !text.contains('┆');
            assert!(block || left_out || width >= 200, "{width}\n{text}");
            if block {
                assert!(!left_out && text.contains("GB/s"), "{width}\n{text}");
            }
        }
        // 100 columns (no terminal) keep the table.
        let (text, _) = cases(&cases_, Target::Terminal(100));
        assert!(text.contains('┆'), "{text}");
    }

    #[test]
    fn a_case_note_is_marked_and_printed_under_the_table() {
        let mut cases_ = two_cases();
        cases_[1].notes = vec!["529 samples, fewer than --min-samples 1000".into()];
        for target in [
            Target::Terminal(100),
            Target::Terminal(50),
            Target::Markdown,
        ] {
            let (text, after) = cases(&cases_, target);
            assert!(text.contains("ok [1]"), "{text}");
            assert!(
                after
                    .join(" ")
                    .contains("[1] 529 samples, fewer than --min-samples 1000"),
                "{after:?}"
            );
        }
    }

    /// A case that failed on its max error alone shows that error, not the L2 error within
    /// the tolerance beside FAILED; one sample has no interval, not a zero-width one.
    #[test]
    fn the_error_that_failed_is_shown_and_one_sample_has_no_interval() {
        use wattbench_core::result::{Status, Verification, VerifyMethod};
        let mut cases_ = two_cases();
        let v = |l2: f64, max: f64| Verification {
            rel_l2_error: l2,
            rel_max_error: Some(max),
            tolerance: 4e-2,
            tolerance_note: None,
            passed: l2 <= 4e-2 && max <= 4e-2,
            method: VerifyMethod::Full,
            checked_values: 4096,
            per_output: Default::default(),
            unchecked_updates: Vec::new(),
            defects: Vec::new(),
        };
        cases_[0].verification = Some(v(3.1e-2, 2.1e-1));
        cases_[0].status = Status::Failed;
        cases_[0].reason = Some("verification failed".into());
        cases_[1].verification = Some(v(1.6e-3, 1.4e-3));
        cases_[1].time = Some(wattbench_core::stats::TimeStats::from_samples(
            vec![1.2e-3],
            1,
            100,
            1,
        ));
        let (text, _) = cases(&cases_, Target::Markdown);
        let row = |b: &str| {
            text.lines()
                .find(|l| l.contains(b))
                .unwrap_or_default()
                .to_string()
        };
        let failed = row("reference/cpu");
        assert!(
            failed.contains("2.1e-1 max") && !failed.contains("3.1e-2"),
            "{text}"
        );
        let ok = row("cuda-wgmma-c2/cpu");
        assert!(ok.contains("1.6e-3") && !ok.contains(" max"), "{text}");
        assert!(
            ok.contains("| none ") && !ok.contains("1.200 ms – 1.200 ms"),
            "{text}"
        );
    }

    #[test]
    fn columns_are_dropped_in_the_documented_order() {
        // README ("Reading the output"): "GB/s, then the interval, then net energy and the error, then GFLOP/J".
        let cases_ = two_cases();
        let shown = |w: u16| {
            let (text, _) = cases(&cases_, Target::Terminal(w));
            let header = text.lines().nth(1).unwrap_or_default().to_string();
            ["95% CI", "GB/s", "rel. L2", "J/call net", "GFLOP/J"].map(|t| header.contains(t))
        };
        assert_eq!(shown(220), [true, true, true, true, true]);
        assert_eq!(shown(180), [true, false, true, true, true]);
        assert_eq!(shown(140), [false, false, true, true, true]);
        assert_eq!(shown(100), [false, false, false, false, true]);
    }
}
