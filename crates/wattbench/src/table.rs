//! The result table of `run` and `report`, in one place: for a terminal it fits the width
//! (100 columns when the output is not a terminal), dropping the least needed columns first
//! and wrapping the rest; reasons are never cut: the status says `skipped [n]` and the full
//! reason `[n]` follows the table (each distinct reason once). In Markdown every column is
//! kept.
use crate::energy;
use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table};
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
            time_stats(c).map_or(String::new(), |t| {
                format!(
                    "{} – {}",
                    units::seconds(t.ci95_median_s[0]),
                    units::seconds(t.ci95_median_s[1])
                )
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
                .map_or(String::new(), |t| format!("{:.2}", t.gbytes_per_s))
        },
    },
    Column {
        title: "rel. L2 err",
        drop_rank: 2,
        right: true,
        cell: |c, _| {
            c.verification
                .as_ref()
                .map_or(String::new(), |v| format!("{:.1e}", v.rel_l2_error))
        },
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
                .and_then(|e| e.gflops_per_joule)
                .map_or(String::new(), units::sig)
        },
    },
];

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

/// The table of `cases` for `target`, and the lines that follow it: the full reasons
/// (`[n] reason`) and, on a narrow terminal, which columns were left out.
pub fn cases(cases: &[CaseResult], target: Target) -> (Table, Vec<String>) {
    // Each distinct reason once, numbered in order of first appearance.
    let mut reasons: Vec<&str> = Vec::new();
    let statuses: Vec<String> = cases
        .iter()
        .map(|c| {
            let word = match c.status {
                Status::Ok => return "ok".to_string(),
                Status::Skipped => "skipped",
                Status::Failed => "FAILED",
            };
            let r = c.reason.as_deref().unwrap_or("no reason recorded");
            let n = reasons.iter().position(|x| *x == r).unwrap_or_else(|| {
                reasons.push(r);
                reasons.len() - 1
            });
            format!("{word} [{}]", n + 1)
        })
        .collect();
    let mut t = Table::new();
    let mut after: Vec<String> = reasons
        .iter()
        .enumerate()
        .map(|(i, r)| format!("[{}] {r}", i + 1))
        .collect();
    let keep: Vec<&Column> =
        match target {
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
                let dropped: Vec<&str> = COLUMNS
                    .iter()
                    .filter(|c| c.drop_rank > max_rank)
                    .map(|c| c.title)
                    .collect();
                if !dropped.is_empty() && !cases.is_empty() {
                    after.push(format!(
                    "(left out for a {width}-column terminal: {}; every figure is in the result \
                     file and `wattbench report`)",
                    dropped.join(", ")
                ));
                }
                // The dtype goes with the case's shape, a column saved.
                std::iter::once(&CASE_AND_DTYPE)
                    .chain(COLUMNS.iter().filter(|c| {
                        c.drop_rank <= max_rank && !matches!(c.title, "case" | "dtype")
                    }))
                    .collect()
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
        for (i, col) in keep.iter().enumerate() {
            let wraps = matches!(
                col.title,
                "case" | "J/call gross" | "J/call net" | "95% CI of median"
            );
            if let (false, Some(column)) = (wraps, t.column_mut(i)) {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
    }
    (t, after)
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
