//! Property tests of the suite parser: any input gives a suite or an error that names the
//! origin, never a panic; generated valid suites give exactly their cases, each measured once.
mod common;

use common::cfg;
use proptest::prelude::*;
use proptest::sample::select;
use std::collections::HashSet;
use wattbench_core::suite::{parse, Suite, SETS};
use wattbench_core::workload::{Cell, ConvParams, GemmParams, Params, RnnParams};
use wattbench_core::{DType, Mode};

const ORIGIN: &str = "prop.toml";

/// What every parse must satisfy: an error names the origin; a suite has cases that validate
/// and counts that add up.
fn check_outcome(src: &str) -> Result<(), TestCaseError> {
    match parse(src, ORIGIN) {
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains(ORIGIN), "error without its origin: {msg}");
            prop_assert!(msg.len() > ORIGIN.len() + 10, "terse error: {msg}");
        }
        Ok(s) => {
            let r = &s.report;
            prop_assert!(!s.cases.is_empty());
            prop_assert!(r.cases() <= s.cases.len() && s.cases.len() <= r.expanded);
            prop_assert!(r.entries <= r.expanded);
            for (c, set) in &s.cases {
                prop_assert!(c.params.validate().is_ok(), "{:?}", c.params);
                prop_assert!(set.as_deref().is_none_or(|s| SETS.contains(&s)), "{set:?}");
            }
        }
    }
    Ok(())
}

/// Tokens that make random text look like a suite, so it gets past the first line.
const TOKENS: [&str; 40] = [
    "gemm",
    "conv2d",
    "rnn",
    "dtypes",
    "modes",
    "set",
    "tag",
    "name",
    "m",
    "n",
    "k",
    "c",
    "h",
    "w",
    "r",
    "s",
    "pad_h",
    "stride_w",
    "cell",
    "hidden",
    "batch",
    "steps",
    "trans_a",
    " = ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "\n",
    "1",
    "0",
    "-3",
    "18446744073709551615",
    "9223372036854775807",
    "'f32'",
    "\"bf16\"",
    "'lstm'",
    "'train'",
    "'bogus'",
];

/// A TOML value of any kind, nested a little; strings and keys drawn from the suite's words.
fn toml_value() -> impl Strategy<Value = toml::Value> {
    let words = select(&TOKENS[..]).prop_map(|t| t.trim_matches(['\'', '"', ' ']).to_string());
    let leaf = prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        (0i64..70).prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        words.clone().prop_map(toml::Value::String),
        "\\PC{0,6}".prop_map(toml::Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(toml::Value::Array),
            prop::collection::btree_map(words.clone(), inner, 0..8)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

/// A value for suite key `key`: mostly of the right type, often out of range or not one of
/// the choices, sometimes anything.
fn value_for(key: &'static str) -> BoxedStrategy<toml::Value> {
    use toml::Value::{Array, Boolean, Integer, String as Str};
    let word = |w: &'static [&'static str]| select(w).prop_map(|s| Str(s.into()));
    let right = match key {
        "trans_a" | "trans_b" => any::<bool>().prop_map(Boolean).boxed(),
        "cell" => word(&["vanilla", "lstm", "gru", "elman"]).boxed(),
        "set" => word(&["train", "server", "device", "bogus", ""]).boxed(),
        "tag" | "name" | "description" => "\\PC{0,6}".prop_map(Str).boxed(),
        "dtypes" => prop::collection::vec(word(&["f32", "f16", "bf16", "f64"]), 0..4)
            .prop_map(Array)
            .boxed(),
        "modes" => prop::collection::vec(word(&["infer", "train", "eval"]), 0..3)
            .prop_map(Array)
            .boxed(),
        _ => prop_oneof![
            40 => (1i64..6).prop_map(Integer),
            1 => Just(Integer(0)),
            1 => Just(Integer(i64::MAX)),
            1 => (-3i64..0).prop_map(Integer),
            1 => (1i64 << 20..1 << 31).prop_map(Integer),
        ]
        .boxed(),
    };
    prop_oneof![40 => right, 1 => toml_value()].boxed()
}

/// An entry of `op`: most of its keys, with values from [`value_for`], now and then a key
/// of another op or an unknown one.
fn entry_for(op: &str) -> impl Strategy<Value = toml::Value> {
    let own: &'static [&'static str] = match op {
        "gemm" => &["m", "n", "k", "trans_a", "trans_b"],
        "conv2d" => &[
            "n", "c", "h", "w", "k", "r", "s", "pad_h", "pad_w", "stride_h", "stride_w",
        ],
        _ => &["cell", "hidden", "batch", "steps"],
    };
    let meta: &'static [&'static str] = &["tag", "set", "dtypes", "modes", "hidden", "m", "q"];
    let own_fields: Vec<_> = own
        .iter()
        .map(|&k| prop::option::weighted(0.97, value_for(k).prop_map(move |v| (k, v))))
        .collect();
    let extra = prop::collection::vec(
        select(meta).prop_flat_map(|k| value_for(k).prop_map(move |v| (k, v))),
        0..2,
    );
    (own_fields, prop::option::weighted(0.2, extra)).prop_map(|(own, extra)| {
        let table: toml::Table = own
            .into_iter()
            .flatten()
            .chain(extra.into_iter().flatten())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        toml::Value::Table(table)
    })
}

/// A suite-shaped document with wrong parts: the real top-level keys (and an unknown one)
/// with values of the right type or any, and entries from [`entry_for`].
fn wrong_suite() -> impl Strategy<Value = String> {
    let entries = |op: &'static str| {
        prop_oneof![
            20 => prop::collection::vec(entry_for(op), 0..4).prop_map(toml::Value::Array),
            1 => toml_value(),
        ]
        .prop_map(move |v| (op, v))
    };
    let top = prop::collection::vec(
        prop_oneof![
            10 => select(&["name", "description", "dtypes", "modes"][..])
                .prop_flat_map(|k| value_for(k).prop_map(move |v| (k, v))),
            1 => toml_value().prop_map(|v| ("x", v)),
        ],
        0..3,
    );
    let ops = (
        prop::option::weighted(0.7, entries("gemm")),
        prop::option::weighted(0.5, entries("conv2d")),
        prop::option::weighted(0.5, entries("rnn")),
    );
    (top, ops).prop_map(|(top, (g, c, r))| {
        let table: toml::Table = top
            .into_iter()
            .chain([g, c, r].into_iter().flatten())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        toml::to_string(&table).expect("a table serializes")
    })
}

/// A valid shape, from small ranges so that entries often repeat one another.
fn shape() -> impl Strategy<Value = Params> {
    let gemm = (
        1usize..4,
        1usize..4,
        1usize..3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(m, n, k, ta, tb)| Params::Gemm(GemmParams::new(m, n, k).transposed(ta, tb)));
    let conv = (
        1usize..3,
        1usize..3,
        1usize..6,
        1usize..6,
        1usize..3,
        0usize..2,
        0usize..2,
    )
        .prop_flat_map(|(n, c, h, w, k, ph, pw)| {
            (1..=h + 2 * ph, 1..=w + 2 * pw, 1usize..3, 1usize..3).prop_map(
                move |(r, s, sh, sw)| {
                    Params::Conv2d(
                        ConvParams::new(n, c, h, w, k, r, s)
                            .padded(ph, pw)
                            .strided(sh, sw),
                    )
                },
            )
        });
    let cell = select(&[Cell::Vanilla, Cell::Lstm, Cell::Gru][..]);
    let rnn = (cell, 1usize..3, 1usize..3, 1usize..3)
        .prop_map(|(c, h, b, t)| Params::Rnn(RnnParams::new(c, h, b, t)));
    prop_oneof![gemm, conv, rnn]
}

/// A non-empty list of distinct values of `all`, in any order.
fn some_of<T: Copy + std::fmt::Debug + 'static>(
    all: &'static [T],
) -> impl Strategy<Value = Vec<T>> {
    Just(all.to_vec())
        .prop_shuffle()
        .prop_flat_map(|v| (1..=v.len()).prop_map(move |n| v[..n].to_vec()))
}

#[derive(Clone, Debug)]
struct GenEntry {
    params: Params,
    tag: Option<String>,
    set: Option<&'static str>,
    dtypes: Option<Vec<DType>>,
    modes: Option<Vec<Mode>>,
    /// Write fields at their defaults too.
    explicit: bool,
}

#[derive(Clone, Debug)]
struct GenSuite {
    dtypes: Option<Vec<DType>>,
    modes: Option<Vec<Mode>>,
    entries: Vec<GenEntry>,
}

fn gen_suite() -> impl Strategy<Value = GenSuite> {
    let entry = |pool: Vec<Params>| {
        (
            select(pool),
            prop::option::of(
                select(&["a", "b", "x y", "quote\"d", "ü"][..]).prop_map(String::from),
            ),
            prop::option::of(select(&SETS[..])),
            prop::option::of(some_of(&DType::ALL)),
            prop::option::of(some_of(&Mode::ALL)),
            any::<bool>(),
        )
            .prop_map(|(params, tag, set, dtypes, modes, explicit)| GenEntry {
                params,
                tag,
                set,
                dtypes,
                modes,
                explicit,
            })
    };
    (
        prop::option::of(some_of(&DType::ALL)),
        prop::option::of(some_of(&Mode::ALL)),
        prop::collection::vec(shape(), 1..5)
            .prop_flat_map(move |pool| prop::collection::vec(entry(pool), 1..10)),
    )
        .prop_map(|(dtypes, modes, entries)| GenSuite {
            dtypes,
            modes,
            entries,
        })
}

fn list<T: Copy>(v: &[T], name: fn(T) -> &'static str) -> String {
    let items: Vec<_> = v.iter().map(|&x| format!("'{}'", name(x))).collect();
    format!("[{}]", items.join(", "))
}

/// The suite as TOML, written independently of the parser.
fn to_toml(g: &GenSuite) -> String {
    let mut out = String::from("name = 'gen'\n");
    if let Some(d) = &g.dtypes {
        out += &format!("dtypes = {}\n", list(d, DType::as_str));
    }
    if let Some(m) = &g.modes {
        out += &format!("modes = {}\n", list(m, Mode::as_str));
    }
    for op in ["gemm", "conv2d", "rnn"] {
        for e in g.entries.iter().filter(|e| e.params.op().as_str() == op) {
            // (key, value, default): a field at its default is written only when explicit.
            let fields: Vec<(&str, String, Option<&str>)> = match e.params {
                Params::Gemm(p) => vec![
                    ("m", p.m.to_string(), None),
                    ("n", p.n.to_string(), None),
                    ("k", p.k.to_string(), None),
                    ("trans_a", p.trans_a.to_string(), Some("false")),
                    ("trans_b", p.trans_b.to_string(), Some("false")),
                ],
                Params::Conv2d(p) => vec![
                    ("n", p.n.to_string(), None),
                    ("c", p.c.to_string(), None),
                    ("h", p.h.to_string(), None),
                    ("w", p.w.to_string(), None),
                    ("k", p.k.to_string(), None),
                    ("r", p.r.to_string(), None),
                    ("s", p.s.to_string(), None),
                    ("pad_h", p.pad_h.to_string(), Some("0")),
                    ("pad_w", p.pad_w.to_string(), Some("0")),
                    ("stride_h", p.stride_h.to_string(), Some("1")),
                    ("stride_w", p.stride_w.to_string(), Some("1")),
                ],
                Params::Rnn(p) => vec![
                    ("cell", format!("'{}'", p.cell.as_str()), None),
                    ("hidden", p.hidden.to_string(), None),
                    ("batch", p.batch.to_string(), None),
                    ("steps", p.steps.to_string(), None),
                ],
            };
            let mut f: Vec<String> = fields
                .into_iter()
                .filter(|(_, v, default)| e.explicit || Some(v.as_str()) != *default)
                .map(|(k, v, _)| format!("{k} = {v}"))
                .collect();
            if let Some(t) = &e.tag {
                f.push(format!("tag = {}", toml::Value::String(t.clone())));
            }
            if let Some(s) = e.set {
                f.push(format!("set = '{s}'"));
            }
            if let Some(d) = &e.dtypes {
                f.push(format!("dtypes = {}", list(d, DType::as_str)));
            }
            if let Some(m) = &e.modes {
                f.push(format!("modes = {}", list(m, Mode::as_str)));
            }
            out += &format!("[[{op}]]\n{}\n", f.join("\n"));
        }
    }
    out
}

/// A case as the suite lists it: shape, mode, dtype, tag, set.
type Row = (Params, Mode, DType, Option<String>, Option<String>);

/// Every (shape, mode, dtype, tag, set) the entries give, in the parser's order (by op, then
/// file order; modes outer, dtypes inner).
fn expand(g: &GenSuite) -> Vec<Row> {
    let mut v = Vec::new();
    for op in ["gemm", "conv2d", "rnn"] {
        for e in g.entries.iter().filter(|e| e.params.op().as_str() == op) {
            let modes = e
                .modes
                .clone()
                .or(g.modes.clone())
                .unwrap_or(vec![Mode::Infer]);
            let dtypes = e
                .dtypes
                .clone()
                .or(g.dtypes.clone())
                .unwrap_or(vec![DType::F32]);
            for &m in &modes {
                for &d in &dtypes {
                    v.push((e.params, m, d, e.tag.clone(), e.set.map(String::from)));
                }
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn any_text_gives_a_suite_or_an_error(src in any::<String>()) {
        check_outcome(&src)?;
    }

    #[test]
    fn suite_like_text_gives_a_suite_or_an_error(
        tokens in prop::collection::vec(select(&TOKENS[..]), 0..60)
    ) {
        check_outcome(&tokens.concat())?;
    }

    #[test]
    fn wrong_values_in_suite_keys_give_a_suite_or_an_error(src in wrong_suite()) {
        check_outcome(&src)?;
    }

    #[test]
    fn generated_suites_give_their_cases_each_once(g in gen_suite()) {
        let src = to_toml(&g);
        let s: Suite = parse(&src, ORIGIN).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        let all = expand(&g);
        let distinct: HashSet<_> = all.iter().map(|c| (c.0, c.1, c.2)).collect();
        let r = &s.report;
        prop_assert_eq!(r.entries, g.entries.len());
        prop_assert_eq!(r.expanded, all.len());
        prop_assert_eq!(r.cases(), distinct.len());
        prop_assert_eq!(r.duplicates.len(), all.len() - distinct.len());
        // Rows: each (case, set) the entries give, once, in order of first appearance, with
        // the tag of the first entry that gave the case.
        let mut want = Vec::new();
        let mut seen_rows = HashSet::new();
        for (p, m, d, _, set) in &all {
            if seen_rows.insert((*p, *m, *d, set.clone())) {
                let first_tag = all.iter().find(|c| (c.0, c.1, c.2) == (*p, *m, *d)).unwrap().3.clone();
                want.push((*p, *m, *d, first_tag, set.clone()));
            }
        }
        let got: Vec<_> = s
            .cases
            .iter()
            .map(|(c, set)| (c.params, c.mode, c.dtype, c.tag.clone(), set.clone()))
            .collect();
        prop_assert_eq!(got, want, "{}", src);
        let said = s.summary();
        prop_assert_eq!(r.duplicates.is_empty(), !said.contains("merged"), "{}", said);
    }
}
