//! Suites: lists of cases in a TOML file. `quick`, `deepbench` and `gpu-check` are built in
//! (the files under `benchmarks/`); users pass their own file.
//!
//! ```toml
//! name = "mine"
//! dtypes = ["f32", "bf16"]        # default for entries without their own
//! modes = ["infer"]
//! gemm = [ { tag = "G1", m = 1760, n = 16, k = 1760, trans_b = true } ]
//! conv2d = [ { n = 1, c = 64, h = 56, w = 56, k = 64, r = 3, s = 3, pad_h = 1, pad_w = 1 } ]
//! rnn = [ { cell = "lstm", hidden = 512, batch = 16, steps = 5 } ]
//! ```
//! Entries may also carry `set` (DeepBench's train/server/device), `dtypes` and `modes`.
//!
//! Duplicates: two entries that give the same case (shape, dtype and mode) measure the same
//! thing, so the case is measured once, with the first entry's tag. The loader merges them and
//! says so in [`Suite::report`]; a case that several sets list stays selectable by each.
use crate::workload::{
    parse_choice, Case, Cell, ConvParams, DType, GemmParams, Mode, Op, Params, RnnParams,
};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// Built-in suites: name, description, TOML source.
pub const BUILTIN: [(&str, &str, &str); 3] = [
    (
        "quick",
        "every op, inference and training, at small real-model sizes; about two minutes on 2 \
         CPU cores",
        include_str!("../../../benchmarks/quick.toml"),
    ),
    (
        "deepbench",
        "DeepBench's GEMM, conv and RNN problem sets (train/server/device)",
        include_str!("../../../benchmarks/deepbench.toml"),
    ),
    (
        "gpu-check",
        "the GPU check: GEMM 4096^3 and 8192^3, ResNet-50 3x3 conv, LSTM/GRU; forward and training",
        include_str!("../../../benchmarks/gpu-check.toml"),
    ),
];

/// The DeepBench sets an entry's `set` may name.
pub const SETS: [&str; 3] = ["train", "server", "device"];

/// A suite that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// Not a built-in name and not a readable file.
    #[error("cannot read suite file {path}: {source}; built-in suites: {builtins}")]
    Io {
        /// The path given.
        path: String,
        /// The OS error.
        source: std::io::Error,
        /// Valid built-in names.
        builtins: String,
    },
    /// TOML syntax or schema error; the message has the line and column.
    #[error("malformed suite {origin}: {msg}")]
    Parse {
        /// File or built-in name.
        origin: String,
        /// The parser's message, with line and column.
        msg: String,
    },
    /// An entry's shape is invalid.
    #[error("suite {origin}: {entry}: {msg}")]
    Invalid {
        /// File or built-in name.
        origin: String,
        /// e.g. `gemm[3]`.
        entry: String,
        /// What is wrong.
        msg: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    dtypes: Option<Vec<DType>>,
    #[serde(default)]
    modes: Option<Vec<Mode>>,
    #[serde(default)]
    gemm: Vec<Entry<GemmFields>>,
    #[serde(default)]
    conv2d: Vec<Entry<ConvFields>>,
    #[serde(default)]
    rnn: Vec<Entry<RnnFields>>,
}

#[derive(Deserialize)]
struct Entry<T> {
    #[serde(flatten)]
    fields: T,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    set: Option<String>,
    #[serde(default)]
    dtypes: Option<Vec<DType>>,
    #[serde(default)]
    modes: Option<Vec<Mode>>,
}

// Field sets mirror the params structs; serde's `deny_unknown_fields` does not combine with
// `flatten`, so unknown keys are caught by the `extra` map instead.
macro_rules! fields {
    ($name:ident => $params:ident { $($f:ident : $t:ty $(= $d:expr)?),* }) => {
        #[derive(Deserialize)]
        struct $name {
            $( $(#[serde(default = $d)])? $f: $t, )*
            #[serde(flatten)]
            extra: std::collections::BTreeMap<String, toml::Value>,
        }
        impl $name {
            fn params(&self) -> Result<$params, String> {
                if let Some(k) = self.extra.keys().next() {
                    return Err(format!(
                        "unknown key `{k}`; valid keys: {}, tag, set, dtypes, modes",
                        [$(stringify!($f)),*].join(", ")
                    ));
                }
                Ok($params { $($f: self.$f.clone()),* })
            }
        }
    };
}

fn zero() -> usize {
    0
}
fn one() -> usize {
    1
}
fn no() -> bool {
    false
}

fields!(GemmFields => GemmParams { m: usize, n: usize, k: usize, trans_a: bool = "no", trans_b: bool = "no" });
fields!(ConvFields => ConvParams {
    n: usize, c: usize, h: usize, w: usize, k: usize, r: usize, s: usize,
    pad_h: usize = "zero", pad_w: usize = "zero", stride_h: usize = "one", stride_w: usize = "one"
});
fields!(RnnFields => RnnParams { cell: Cell, hidden: usize, batch: usize, steps: usize });

/// A parsed suite.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Name (from the file, or the built-in name).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Cases with the DeepBench set of their entry, in file order, each (case, set) pair once.
    /// A case that several sets list appears once per set, so that selecting any of them finds
    /// it; it is still one case: measure it once ([`LoadReport::cases`] counts them).
    pub cases: Vec<(Case, Option<String>)>,
    /// How the entries became cases, duplicates included.
    pub report: LoadReport,
}

impl Suite {
    /// One line for the user: entries read, duplicates merged, cases left, e.g.
    /// `suite deepbench: 590 entries, 32 duplicates merged -> 558 cases (...)`.
    pub fn summary(&self) -> String {
        format!("suite {}: {}", self.name, self.report)
    }
}

/// What a run selects of a suite (`run --op/--set/--dtype/--mode`), applied while loading
/// so that the duplicates merged are those of the cases that run. Empty lists: everything,
/// with each entry's own dtypes and modes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only entries of these ops.
    pub ops: Vec<Op>,
    /// Only entries of these DeepBench sets.
    pub sets: Vec<String>,
    /// These dtypes replace every entry's.
    pub dtypes: Vec<DType>,
    /// These modes replace every entry's.
    pub modes: Vec<Mode>,
}

impl Selection {
    /// The options, as the command line gives them (`--op gemm`, `--dtype f32,bf16`).
    fn options(&self) -> Vec<String> {
        let join = |v: Vec<&str>| v.join(",");
        let mut out = Vec::new();
        if !self.ops.is_empty() {
            out.push(format!(
                "--op {}",
                join(self.ops.iter().map(|o| o.as_str()).collect())
            ));
        }
        if !self.sets.is_empty() {
            out.push(format!(
                "--set {}",
                join(self.sets.iter().map(String::as_str).collect())
            ));
        }
        if !self.dtypes.is_empty() {
            out.push(format!(
                "--dtype {}",
                join(self.dtypes.iter().map(|d| d.as_str()).collect())
            ));
        }
        if !self.modes.is_empty() {
            out.push(format!(
                "--mode {}",
                join(self.modes.iter().map(|m| m.as_str()).collect())
            ));
        }
        out
    }

    /// Whether an entry of `op` in `set` is selected.
    fn includes(&self, op: Op, set: &Option<String>) -> bool {
        (self.ops.is_empty() || self.ops.contains(&op))
            && (self.sets.is_empty() || set.as_ref().is_some_and(|s| self.sets.contains(s)))
    }
}

/// How a suite's entries became cases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// `gemm`, `conv2d` and `rnn` entries in the file (those selected, under a
    /// [`Selection`]).
    pub entries: usize,
    /// The selection applied (`--op gemm`, `--dtype f32`...); empty when none.
    pub selection: Vec<String>,
    /// Cases the entries give (each entry once per dtype and mode), before merging.
    pub expanded: usize,
    /// Each expanded case that repeats an earlier one, in file order.
    pub duplicates: Vec<Duplicate>,
}

impl LoadReport {
    /// Distinct cases: what a run with no filters measures.
    pub fn cases(&self) -> usize {
        self.expanded - self.duplicates.len()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(f, "{}", count(self.entries, "entry", "entries"))?;
        if !self.selection.is_empty() {
            write!(f, " with {}", self.selection.join(" "))?;
        }
        if self.expanded != self.entries {
            let cases = count(self.expanded, "case", "cases");
            write!(f, " ({cases} with their dtypes and modes)")?;
        }
        let merged = self.duplicates.len();
        if merged > 0 {
            write!(f, ", {} merged", count(merged, "duplicate", "duplicates"))?;
        }
        write!(f, " -> {}", count(self.cases(), "case", "cases"))?;
        // Name the entries, once per pair (an entry repeats once per dtype and mode).
        let mut pairs: Vec<String> = Vec::new();
        for d in &self.duplicates {
            let mut s = format!("{} repeats {}", d.entry, d.first);
            if let Some(t) = &d.dropped_tag {
                s.push_str(&format!(", its tag `{t}` dropped"));
            }
            if !pairs.contains(&s) {
                pairs.push(s);
            }
        }
        const SHOWN: usize = 3;
        if !pairs.is_empty() {
            write!(f, " (")?;
            for (i, p) in pairs.iter().take(SHOWN).enumerate() {
                write!(f, "{}{p}", if i == 0 { "" } else { "; " })?;
            }
            if pairs.len() > SHOWN {
                write!(f, "; and {} more", pairs.len() - SHOWN)?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// An expanded case that repeats an earlier entry's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The repeating entry, e.g. `conv2d[12]`.
    pub entry: String,
    /// The first entry that gave the case.
    pub first: String,
    /// The mode of the repeated case.
    pub mode: Mode,
    /// The dtype of the repeated case.
    pub dtype: DType,
    /// Whether the first entry already listed the case under the same set (a plain repeat);
    /// false when the repeat puts it in another set too.
    pub same_set: bool,
    /// The repeat's tag, when it had one that differs from the kept one.
    pub dropped_tag: Option<String>,
}

/// Names of the built-in suites.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|b| b.0).collect()
}

/// Load a built-in suite by name, or a TOML file by path.
pub fn load(name_or_path: &str) -> Result<Suite, SuiteError> {
    load_selected(name_or_path, &Selection::default())
}

/// [`load`] with a [`Selection`] applied: its report says what the selected cases merge
/// (a suite whose selection leaves no case has none, and is no error).
pub fn load_selected(name_or_path: &str, sel: &Selection) -> Result<Suite, SuiteError> {
    if let Some((name, _, src)) = BUILTIN.iter().find(|b| b.0 == name_or_path) {
        return parse_selected(src, name, sel);
    }
    let src = std::fs::read_to_string(name_or_path).map_err(|source| SuiteError::Io {
        path: name_or_path.into(),
        source,
        builtins: builtin_names().join(", "),
    })?;
    parse_selected(&src, name_or_path, sel)
}

/// Parse suite TOML; `origin` names it in errors.
pub fn parse(src: &str, origin: &str) -> Result<Suite, SuiteError> {
    parse_selected(src, origin, &Selection::default())
}

/// [`parse`] with a [`Selection`] applied (every entry is still checked).
pub fn parse_selected(src: &str, origin: &str, sel: &Selection) -> Result<Suite, SuiteError> {
    let file: SuiteFile = toml::from_str(src).map_err(|e| SuiteError::Parse {
        origin: origin.into(),
        msg: e.to_string(),
    })?;
    let invalid = |entry: &str, msg: String| SuiteError::Invalid {
        origin: origin.into(),
        entry: entry.into(),
        msg,
    };
    const TOP: &str = "top level";
    let dtypes = choices(
        &file.dtypes,
        "dtypes",
        &DType::ALL,
        DType::as_str,
        "for f32",
    )
    .map_err(|m| invalid(TOP, m))?
    .unwrap_or_else(|| vec![DType::F32]);
    let modes = choices(&file.modes, "modes", &Mode::ALL, Mode::as_str, "for infer")
        .map_err(|m| invalid(TOP, m))?
        .unwrap_or_else(|| vec![Mode::Infer]);
    let mut merged = Merged::default();
    merged.report.selection = sel.options();
    let mut in_file = 0;
    let pick = |given: &[DType]| {
        if sel.dtypes.is_empty() {
            given.to_vec()
        } else {
            sel.dtypes.clone()
        }
    };
    let pick_modes = |given: &[Mode]| {
        if sel.modes.is_empty() {
            given.to_vec()
        } else {
            sel.modes.clone()
        }
    };
    macro_rules! each {
        ($list:expr, $op:literal, $variant:ident) => {
            for (i, e) in $list.iter().enumerate() {
                let entry = format!("{}[{}]", $op, i);
                let bad = |m: String| invalid(&entry, m);
                let p = Params::$variant(e.fields.params().map_err(bad)?);
                p.validate().map_err(|err| bad(err.to_string()))?;
                if let Some(set) = &e.set {
                    parse_choice("set", set, &SETS, |s| s).map_err(bad)?;
                }
                let own = "to use the suite's";
                let d =
                    choices(&e.dtypes, "dtypes", &DType::ALL, DType::as_str, own).map_err(bad)?;
                let m = choices(&e.modes, "modes", &Mode::ALL, Mode::as_str, own).map_err(bad)?;
                in_file += 1;
                if sel.includes(p.op(), &e.set) {
                    merged.push(
                        &entry,
                        p,
                        &e.tag,
                        &e.set,
                        &pick(d.as_deref().unwrap_or(&dtypes)),
                        &pick_modes(m.as_deref().unwrap_or(&modes)),
                    );
                }
            }
        };
    }
    each!(file.gemm, "gemm", Gemm);
    each!(file.conv2d, "conv2d", Conv2d);
    each!(file.rnn, "rnn", Rnn);
    if in_file == 0 {
        return Err(invalid(
            "suite",
            "no cases: add [[gemm]], [[conv2d]] or [[rnn]] entries".into(),
        ));
    }
    Ok(Suite {
        name: file.name.unwrap_or_else(|| origin.to_string()),
        description: file.description,
        cases: merged.cases,
        report: merged.report,
    })
}

/// A `dtypes` or `modes` list: `None` when absent; an error when empty or repeating a value
/// (`absent` says what leaving it out does).
fn choices<T: Copy + PartialEq>(
    list: &Option<Vec<T>>,
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    absent: &str,
) -> Result<Option<Vec<T>>, String> {
    let Some(list) = list else { return Ok(None) };
    if list.is_empty() {
        let valid: Vec<_> = all.iter().map(|&v| name(v)).collect();
        return Err(format!(
            "{what} is empty: list at least one of {} (or leave it out {absent})",
            valid.join(", ")
        ));
    }
    for (i, &v) in list.iter().enumerate() {
        if list[..i].contains(&v) {
            return Err(format!("{what} lists `{}` twice", name(v)));
        }
    }
    Ok(Some(list.clone()))
}

/// Entries expanded into cases, merging repeats.
#[derive(Default)]
struct Merged {
    cases: Vec<(Case, Option<String>)>,
    /// Each case's first entry and the tag it keeps.
    first: HashMap<(Params, Mode, DType), (String, Option<String>)>,
    /// The (case, set) pairs in `cases`.
    listed: HashSet<(Params, Mode, DType, Option<String>)>,
    report: LoadReport,
}

impl Merged {
    fn push(
        &mut self,
        entry: &str,
        params: Params,
        tag: &Option<String>,
        set: &Option<String>,
        dtypes: &[DType],
        modes: &[Mode],
    ) {
        self.report.entries += 1;
        for &mode in modes {
            for &dtype in dtypes {
                self.report.expanded += 1;
                let key = (params, mode, dtype);
                let is_new = self.listed.insert((params, mode, dtype, set.clone()));
                if let Some((first, kept)) = self.first.get(&key) {
                    self.report.duplicates.push(Duplicate {
                        entry: entry.into(),
                        first: first.clone(),
                        mode,
                        dtype,
                        same_set: !is_new,
                        dropped_tag: tag.clone().filter(|t| Some(t) != kept.as_ref()),
                    });
                } else {
                    self.first.insert(key, (entry.into(), tag.clone()));
                }
                if is_new {
                    let kept = self.first[&key].1.clone();
                    let case = Case {
                        params,
                        mode,
                        dtype,
                        tag: kept,
                    };
                    self.cases.push((case, set.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Op;

    #[test]
    fn builtins_parse() {
        for name in builtin_names() {
            let s = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!s.cases.is_empty());
        }
    }

    /// The suite files the scripts pass by path (evidence, hopper-gemm) parse as well.
    #[test]
    fn every_suite_file_in_benchmarks_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benchmarks");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                let s = load(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.cases.is_empty(), "{}", path.display());
                n += 1;
            }
        }
        assert!(n >= 5, "{n} suite files in {}", dir.display());
    }

    #[test]
    fn defaults_and_overrides_expand() {
        let s = parse(
            "dtypes = ['f32', 'bf16']\ngemm = [{ m = 2, n = 3, k = 4 }, { m = 1, n = 1, k = 1, dtypes = ['f16'], trans_b = true }]\n",
            "t",
        )
        .unwrap();
        assert_eq!(s.cases.len(), 3);
        assert_eq!(s.cases[2].0.dtype, DType::F16);
        assert!(matches!(
            s.cases[2].0.params,
            Params::Gemm(GemmParams { trans_b: true, .. })
        ));
    }

    #[test]
    fn duplicates_are_merged_once_and_said() {
        let s = parse(
            "dtypes = ['f32', 'bf16']\ngemm = [
               { tag = 'a', m = 2, n = 3, k = 4, set = 'train' },
               { m = 5, n = 3, k = 4 },
               { tag = 'b', m = 2, n = 3, k = 4, set = 'train', dtypes = ['bf16'] },
               { m = 2, n = 3, k = 4, set = 'server', dtypes = ['f32'] },
             ]",
            "t",
        )
        .unwrap();
        let r = &s.report;
        assert_eq!((r.entries, r.expanded, r.cases()), (4, 6, 4));
        let dup = |entry: &str, dtype, same_set, dropped: Option<&str>| Duplicate {
            entry: entry.into(),
            first: "gemm[0]".into(),
            mode: Mode::Infer,
            dtype,
            same_set,
            dropped_tag: dropped.map(Into::into),
        };
        assert_eq!(
            r.duplicates,
            [
                dup("gemm[2]", DType::Bf16, true, Some("b")),
                dup("gemm[3]", DType::F32, false, None),
            ]
        );
        // The server row stays (so `--set server` finds the case) with the kept tag.
        let rows: Vec<_> = s
            .cases
            .iter()
            .map(|(c, set)| (c.dtype, c.tag.as_deref(), set.as_deref()))
            .collect();
        assert_eq!(
            rows,
            [
                (DType::F32, Some("a"), Some("train")),
                (DType::Bf16, Some("a"), Some("train")),
                (DType::F32, None, None),
                (DType::Bf16, None, None),
                (DType::F32, Some("a"), Some("server")),
            ]
        );
        assert_eq!(
            s.summary(),
            "suite t: 4 entries (6 cases with their dtypes and modes), 2 duplicates merged -> \
             4 cases (gemm[2] repeats gemm[0], its tag `b` dropped; gemm[3] repeats gemm[0])"
        );
        let one = parse("gemm = [{ m = 1, n = 1, k = 1 }]", "one").unwrap();
        assert_eq!(one.summary(), "suite one: 1 entry -> 1 case");
    }

    /// The counts `deepbench.toml`'s header states (and the README repeats).
    #[test]
    fn deepbench_counts_match_its_header() {
        let s = load("deepbench").unwrap();
        let r = &s.report;
        assert_eq!((r.entries, r.expanded, r.cases()), (590, 590, 558));
        assert!(
            s.summary()
                .starts_with("suite deepbench: 590 entries, 32 duplicates merged -> 558 cases ("),
            "{}",
            s.summary()
        );
        // Repeats within a set: 9, all conv2d (4 train, 4 server, 1 device).
        let same: Vec<_> = r.duplicates.iter().filter(|d| d.same_set).collect();
        assert_eq!(same.len(), 9);
        assert!(same.iter().all(|d| d.entry.starts_with("conv2d[")));
        // Distinct cases per op and set, and per op over all sets.
        let mut per_set: HashMap<(Op, &str), usize> = HashMap::new();
        let mut per_op: HashMap<Op, HashSet<Params>> = HashMap::new();
        for (c, set) in &s.cases {
            *per_set
                .entry((c.op(), set.as_deref().unwrap()))
                .or_default() += 1;
            per_op.entry(c.op()).or_default().insert(c.params);
        }
        for (op, counts, all) in [
            (Op::Gemm, [160, 75, 13], 243),
            (Op::Conv2d, [90, 103, 15], 191),
            (Op::Rnn, [53, 69, 3], 124),
        ] {
            for (set, n) in SETS.iter().zip(counts) {
                assert_eq!(per_set[&(op, *set)], n, "{op:?} {set}");
            }
            assert_eq!(per_op[&op].len(), all, "{op:?}");
        }
    }

    #[test]
    fn errors_name_line_entry_and_valid_choices() {
        let e = parse("gemm = [{ m = 2, n = 3,\n k = -4 }]", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") || e.contains("line 2"), "{e}");
        let e = parse("gemm = [{ m = 0, n = 3, k = 4 }]", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gemm[0]") && e.contains("m is 0"), "{e}");
        let e = parse("gemm = [{ m = 1, n = 3, k = 4, q = 1 }]", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `q`"), "{e}");
        let e = parse(
            "dtypes = ['f64']\ngemm = [{ m = 1, n = 3, k = 4 }]",
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("f64") && e.contains("line 1"), "{e}");
        let e = parse(
            "rnn = [{ cell = 'elman', hidden = 1, batch = 1, steps = 1 }]",
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("vanilla"), "{e}");
        let e = parse("gemm = [{ m = 1, n = 3, k = 4, set = 'bogus' }]", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gemm[0]")
                && e.contains("unknown set `bogus`; valid: train, server, device"),
            "{e}"
        );
        let e = parse("dtypes = []\ngemm = [{ m = 1, n = 3, k = 4 }]", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("top level: dtypes is empty: list at least one of f32, f16, bf16"),
            "{e}"
        );
        let e = parse(
            "rnn = [{ cell = 'gru', hidden = 1, batch = 1, steps = 1, modes = [] }]",
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("rnn[0]: modes is empty: list at least one of infer, train"),
            "{e}"
        );
        let e = parse(
            "gemm = [{ m = 1, n = 3, k = 4, dtypes = ['f16', 'f16'] }]",
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gemm[0]: dtypes lists `f16` twice"), "{e}");
        assert!(load("/nonexistent/suite.toml")
            .unwrap_err()
            .to_string()
            .contains("quick"));
    }
}
