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
use crate::workload::{Case, Cell, ConvParams, DType, GemmParams, Mode, Params, RnnParams};
use serde::Deserialize;

/// Built-in suites: name, description, TOML source.
pub const BUILTIN: [(&str, &str, &str); 3] = [
    (
        "quick",
        "every op at small real-model sizes; about a minute on 2 CPU cores",
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
    /// Cases with their DeepBench set, if any.
    pub cases: Vec<(Case, Option<String>)>,
}

/// Names of the built-in suites.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|b| b.0).collect()
}

/// Load a built-in suite by name, or a TOML file by path.
pub fn load(name_or_path: &str) -> Result<Suite, SuiteError> {
    if let Some((name, _, src)) = BUILTIN.iter().find(|b| b.0 == name_or_path) {
        return parse(src, name);
    }
    let src = std::fs::read_to_string(name_or_path).map_err(|source| SuiteError::Io {
        path: name_or_path.into(),
        source,
        builtins: builtin_names().join(", "),
    })?;
    parse(&src, name_or_path)
}

/// Parse suite TOML; `origin` names it in errors.
pub fn parse(src: &str, origin: &str) -> Result<Suite, SuiteError> {
    let file: SuiteFile = toml::from_str(src).map_err(|e| SuiteError::Parse {
        origin: origin.into(),
        msg: e.to_string(),
    })?;
    let dtypes = file.dtypes.clone().unwrap_or_else(|| vec![DType::F32]);
    let modes = file.modes.clone().unwrap_or_else(|| vec![Mode::Infer]);
    let mut cases = Vec::new();
    let invalid = |entry: String, msg: String| SuiteError::Invalid {
        origin: origin.into(),
        entry,
        msg,
    };
    let mut push = |params: Params,
                    tag: &Option<String>,
                    set: &Option<String>,
                    d: &Option<Vec<DType>>,
                    m: &Option<Vec<Mode>>| {
        for &mode in m.as_ref().unwrap_or(&modes) {
            for &dtype in d.as_ref().unwrap_or(&dtypes) {
                cases.push((
                    Case {
                        params,
                        mode,
                        dtype,
                        tag: tag.clone(),
                    },
                    set.clone(),
                ));
            }
        }
    };
    macro_rules! each {
        ($list:expr, $op:literal, $variant:ident) => {
            for (i, e) in $list.iter().enumerate() {
                let entry = format!("{}[{}]", $op, i);
                let p = Params::$variant(e.fields.params().map_err(|m| invalid(entry.clone(), m))?);
                p.validate()
                    .map_err(|err| invalid(entry.clone(), err.to_string()))?;
                push(p, &e.tag, &e.set, &e.dtypes, &e.modes);
            }
        };
    }
    each!(file.gemm, "gemm", Gemm);
    each!(file.conv2d, "conv2d", Conv2d);
    each!(file.rnn, "rnn", Rnn);
    if cases.is_empty() {
        return Err(invalid(
            "suite".into(),
            "no cases: add [[gemm]], [[conv2d]] or [[rnn]] entries".into(),
        ));
    }
    Ok(Suite {
        name: file.name.unwrap_or_else(|| origin.to_string()),
        description: file.description,
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for name in builtin_names() {
            let s = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!s.cases.is_empty());
        }
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
        assert!(load("/nonexistent/suite.toml")
            .unwrap_err()
            .to_string()
            .contains("quick"));
    }
}
