//! The report's plots, drawn with plotters into SVG text (no font files: the browser lays out
//! the labels) and inlined into the page: the roofline, horizontal bar charts with the energy
//! source drawn into each bar, and line charts with vertical marks.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use wattbench_core::units::sig;
use wattbench_core::workload::DType;

type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

const FONT: &str = "sans-serif";

/// An SVG of `width` × `height` drawn by `draw`, or a paragraph saying why it could not be
/// drawn (never a panic: a report with one plot missing is still a report).
fn figure(width: u32, height: u32, draw: impl FnOnce(&Root<'_>) -> Drawn) -> String {
    let mut buf = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into))
    };
    match result {
        Ok(()) => buf,
        Err(e) => format!(
            "<p class=\"warn\">plot not drawn: {}</p>",
            super::esc(&e.to_string())
        ),
    }
}

/// Colour of a series `backend` or `backend/device`: fixed for the known backends, so that a
/// backend looks the same in every plot and every report, and darker on a GPU than on the CPU
/// (tch/cpu and tch/cuda:0 side by side are told apart).
pub fn backend_color(name: &str) -> RGBColor {
    let (base, device) = name.split_once('/').unwrap_or((name, ""));
    let c = base_color(base);
    // The backends that run on both: a GPU-only backend keeps its one colour.
    if device.starts_with("cuda") && matches!(base, "candle" | "tch") {
        let dark = |v: u8| (f64::from(v) * 0.55) as u8;
        RGBColor(dark(c.0), dark(c.1), dark(c.2))
    } else {
        c
    }
}

/// The colours of `series` in one chart: each its backend's ([`backend_color`]), and a series
/// whose colour an earlier one already has (two files of one machine, `tch/cpu` and `tch/cpu
/// (b.json)`; two GPUs of one kind) a darker, then lighter, shade of it, so that no two
/// series of a chart look alike.
pub fn series_colors(series: &[&str]) -> Vec<RGBColor> {
    let mut out: Vec<RGBColor> = Vec::new();
    for name in series {
        let base = backend_color(name);
        let mut c = base;
        let mut k: i32 = 0;
        while out.contains(&c) {
            k += 1;
            let f = 0.8f64.powi((k + 1) / 2);
            c = if k % 2 == 1 {
                let dark = |v: u8| (f64::from(v) * f * 0.75) as u8;
                RGBColor(dark(base.0), dark(base.1), dark(base.2))
            } else {
                let light = |v: u8| (255.0 - (255.0 - f64::from(v)) * f * 0.8) as u8;
                RGBColor(light(base.0), light(base.1), light(base.2))
            };
            if k > 12 {
                break;
            }
        }
        out.push(c);
    }
    out
}

/// `name` cut to at most `head` + 1 + `tail` characters: its start and its end with "…"
/// between (whole when it fits).
fn cut(name: &str, head: usize, tail: usize) -> String {
    let n = name.chars().count();
    if n <= head + 1 + tail {
        return name.to_string();
    }
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// The row labels of one chart, each at most `max` characters and no two alike. A long one
/// keeps its start and its end (where the shape and dtype are) with "…" between; where two
/// would read the same (cases that differ only in the middle, `…_h56_w56…` and
/// `…_h112_w112…`), the cut moves until every label of the chart differs, and a label that
/// no cut tells apart is given whole.
fn short_labels(names: &[&str], max: usize) -> Vec<String> {
    let max = max.max(2);
    let distinct = |v: &[String]| {
        let mut seen = std::collections::HashSet::new();
        v.iter().all(|l| seen.insert(l.as_str()))
    };
    // The tail kept: three fifths first, then ever further from it, both ways.
    let first = (max * 3) / 5;
    let tails = (0..max).flat_map(|d| [first.checked_add(d), first.checked_sub(d)]);
    let mut tried = Vec::new();
    for tail in tails.flatten().filter(|t| *t < max) {
        if tried.contains(&tail) {
            continue;
        }
        tried.push(tail);
        let v: Vec<String> = names.iter().map(|n| cut(n, max - 1 - tail, tail)).collect();
        if distinct(&v) {
            return v;
        }
    }
    // No one cut tells them all apart: those alike in full, the others cut.
    let cut_all: Vec<String> = names
        .iter()
        .map(|n| cut(n, max - 1 - first, first))
        .collect();
    let v: Vec<String> = names
        .iter()
        .zip(&cut_all)
        .map(|(n, c)| {
            if cut_all.iter().filter(|x| *x == c).count() > 1 {
                n.to_string()
            } else {
                c.clone()
            }
        })
        .collect();
    if distinct(&v) {
        v
    } else {
        names.iter().map(|n| n.to_string()).collect()
    }
}

/// `label` on one line when it has at most `line` characters, else on two, broken where the
/// longer line is shortest: after a space, `/`, `_`, `-` or `,`, or before `(` (in the middle
/// when no such break keeps both lines within `line`).
fn wrap2(label: &str, line: usize) -> Vec<String> {
    let chars: Vec<char> = label.chars().collect();
    let n = chars.len();
    if n <= line {
        return vec![label.to_string()];
    }
    let longer = |k: usize| k.max(n - k);
    let best = (1..n)
        .filter(|&k| matches!(chars[k - 1], ' ' | '/' | '_' | '-' | ',') || chars[k] == '(')
        .min_by_key(|&k| longer(k))
        .filter(|&k| longer(k) <= line)
        .unwrap_or(n.div_ceil(2));
    let first: String = chars[..best].iter().collect();
    let second: String = chars[best..].iter().collect();
    vec![
        first.trim_end().to_string(),
        second.trim_start().to_string(),
    ]
}

/// The legend entries of `names` laid out in rows within `width` pixels: (row, x) of each.
fn legend_layout(names: &[&str], width: i32) -> Vec<(usize, i32)> {
    let (mut row, mut x) = (0, 12);
    let mut out = Vec::new();
    for name in names {
        let w = 34 + 7 * name.chars().count() as i32;
        if x > 12 && x + w > width - 8 {
            row += 1;
            x = 12;
        }
        out.push((row, x));
        x += w;
    }
    out
}

fn base_color(base: &str) -> RGBColor {
    match base {
        "reference" => RGBColor(110, 110, 110),
        "candle" => RGBColor(230, 120, 20),
        "tch" => RGBColor(31, 100, 180),
        "cuda" => RGBColor(40, 150, 60),
        "cuda-naive" => RGBColor(150, 200, 80),
        "cuda-wgmma" => RGBColor(0, 110, 110),
        "cuda-wgmma-c2" => RGBColor(0, 170, 150),
        "cublas" => RGBColor(140, 70, 170),
        "cudnn" => RGBColor(170, 60, 90),
        _ => {
            const MORE: [RGBColor; 4] = [
                RGBColor(20, 160, 170),
                RGBColor(200, 170, 30),
                RGBColor(90, 90, 200),
                RGBColor(200, 80, 160),
            ];
            MORE[base.bytes().map(usize::from).sum::<usize>() % MORE.len()]
        }
    }
}

/// The number of marker shapes ([`shape_points`]).
const SHAPES: usize = 10;

/// Marker shape of a backend: each known backend its own (the roofline's legend says "one
/// shape and colour per backend", and the GPU backends' colours are alike), another backend
/// one picked from its name.
pub fn backend_shape(name: &str) -> usize {
    let base = name.split('/').next().unwrap_or(name);
    match base {
        "tch" => 0,
        "candle" => 1,
        "cuda" => 2,
        "cublas" => 3,
        "reference" => 4,
        "cuda-wgmma" => 5,
        "cuda-wgmma-c2" => 6,
        "cuda-naive" => 7,
        "cudnn" => 8,
        _ => base.bytes().map(usize::from).sum::<usize>() % SHAPES,
    }
}

/// The outline of marker `shape` around (0, 0), in pixels: circle (a 12-gon), triangle,
/// square, diamond, inverted triangle, star, plus, right-pointing triangle, cross (×) or
/// left-pointing triangle.
fn shape_points(shape: usize) -> Vec<(i32, i32)> {
    // A regular polygon of `n` corners alternating between radii `r` and `r2`, first corner
    // at angle `a0`.
    let star = |n: usize, r: f64, r2: f64, a0: f64| -> Vec<(i32, i32)> {
        (0..n)
            .map(|i| {
                let a = a0 + i as f64 * 2.0 * std::f64::consts::PI / n as f64;
                let r = if i % 2 == 0 { r } else { r2 };
                ((r * a.cos()).round() as i32, (r * a.sin()).round() as i32)
            })
            .collect()
    };
    match shape % SHAPES {
        0 => star(12, 5.5, 5.5, 0.0),
        1 => vec![(0, -6), (6, 5), (-6, 5)],
        2 => vec![(-5, -5), (5, -5), (5, 5), (-5, 5)],
        3 => vec![(0, -7), (6, 0), (0, 7), (-6, 0)],
        4 => vec![(-6, -5), (6, -5), (0, 6)],
        5 => star(10, 7.0, 3.0, -std::f64::consts::FRAC_PI_2),
        6 => vec![
            (-2, -6),
            (2, -6),
            (2, -2),
            (6, -2),
            (6, 2),
            (2, 2),
            (2, 6),
            (-2, 6),
            (-2, 2),
            (-6, 2),
            (-6, -2),
            (-2, -2),
        ],
        7 => vec![(-5, -6), (6, 0), (-5, 6)],
        8 => vec![
            (-5, -6),
            (0, -2),
            (5, -6),
            (6, -5),
            (2, 0),
            (6, 5),
            (5, 6),
            (0, 2),
            (-5, 6),
            (-6, 5),
            (-2, 0),
            (-6, -5),
        ],
        _ => vec![(5, -6), (5, 6), (-6, 0)],
    }
}

/// `shape` closed, for an outlined marker.
fn closed(shape: usize) -> Vec<(i32, i32)> {
    let mut v = shape_points(shape);
    v.push(v[0]);
    v
}

/// One case on the roofline.
pub struct RoofPoint {
    /// Backend (the marker).
    pub backend: String,
    /// Its dtype: f32 filled, f16 outlined, bf16 outlined with a dot in the middle.
    pub dtype: DType,
    /// FLOP per minimum byte.
    pub intensity: f64,
    /// Achieved GFLOP/s.
    pub gflops: f64,
}

/// The measured ceilings of one device.
pub struct Roofs {
    /// Memory bandwidth, GB/s.
    pub bandwidth: Option<f64>,
    /// Compute roofs: dtype, GFLOP/s, the backend that reached it.
    pub peaks: Vec<(String, f64, String)>,
}

const ROOF_COLORS: [RGBColor; 3] = [
    RGBColor(0, 0, 0),
    RGBColor(150, 30, 30),
    RGBColor(30, 60, 150),
];

fn span(values: impl Iterator<Item = f64>, default: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        (lo, hi)
    } else {
        default
    }
}

/// Where the memory slope y = `b`·x is inside the plot `x`×`y`: the intensities it enters
/// and leaves it at (a line must end inside the plot: plotters moves each point outside it
/// onto the edge on its own, which would bend the slope).
fn slope_span(b: f64, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> (f64, f64) {
    (x0.max(y0 / b), x1.min(y1 / b))
}

/// Log-log roofline: each point's GFLOP/s against its intensity, one marker per backend, and
/// (when measured) the memory slope and one compute roof per dtype.
pub fn roofline(title: &str, points: &[RoofPoint], roofs: Option<&Roofs>) -> String {
    let bw = roofs.and_then(|r| r.bandwidth);
    let peaks: &[(String, f64, String)] = roofs.map_or(&[], |r| &r.peaks);
    let ridges = peaks.iter().filter_map(|(_, p, _)| bw.map(|b| p / b));
    let (x0, x1) = span(
        points.iter().map(|p| p.intensity).chain(ridges),
        (0.1, 100.0),
    );
    let (x0, x1) = ((x0 / 3.0).max(1e-3), (x1 * 3.0).max(x0 * 10.0));
    let (y0, y1) = span(
        points
            .iter()
            .map(|p| p.gflops)
            .chain(peaks.iter().map(|(_, p, _)| *p)),
        (0.1, 100.0),
    );
    let (y0, y1) = ((y0 / 4.0).max(1e-4), (y1 * 3.0).max(y0 * 10.0));
    let mut backends: Vec<&str> = Vec::new();
    for p in points {
        if !backends.contains(&p.backend.as_str()) {
            backends.push(&p.backend);
        }
    }
    figure(900, 560, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity, FLOP per byte (minimum bytes)")
            .y_desc("GFLOP/s")
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        // (A slope wholly above or below the plot is not drawn.)
        let slope = bw
            .map(|b| (b, slope_span(b, (x0, x1), (y0, y1))))
            .filter(|(_, (f, t))| f < t);
        if let Some((b, (from, to))) = slope {
            chart
                .draw_series(DashedLineSeries::new(
                    [(from, b * from), (to, b * to)],
                    6,
                    4,
                    RGBColor(120, 120, 120).stroke_width(1),
                ))?
                .label(format!("memory {} GB/s (slope)", sig(b)))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(120, 120, 120))
                });
        }
        for (i, (dtype, peak, backend)) in peaks.iter().enumerate() {
            let color = ROOF_COLORS[i % ROOF_COLORS.len()];
            let line: Vec<(f64, f64)> = match bw {
                Some(b) => {
                    let (from, to) = slope_span(b, (x0, x1), (y0, y1));
                    let ridge = peak / b;
                    if ridge <= from {
                        vec![(x0, *peak), (x1, *peak)]
                    } else if ridge >= to {
                        vec![(from, b * from), (to, b * to)]
                    } else {
                        vec![(from, b * from), (ridge, *peak), (x1, *peak)]
                    }
                }
                None => vec![(x0, *peak), (x1, *peak)],
            };
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))?
                .label(format!("{dtype} roof {} GFLOP/s ({backend})", sig(*peak)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        for b in &backends {
            let color = backend_color(b);
            let shape = backend_shape(b);
            let mine = || points.iter().filter(move |p| p.backend == *b);
            chart.draw_series(mine().filter(|p| p.dtype == DType::F16).map(|p| {
                EmptyElement::at((p.intensity, p.gflops))
                    + PathElement::new(closed(shape), color.stroke_width(2))
            }))?;
            chart.draw_series(mine().filter(|p| p.dtype == DType::Bf16).map(|p| {
                EmptyElement::at((p.intensity, p.gflops))
                    + PathElement::new(closed(shape), color.stroke_width(2))
                    + Circle::new((0, 0), 2, color.filled())
            }))?;
            chart
                .draw_series(mine().filter(|p| p.dtype == DType::F32).map(|p| {
                    EmptyElement::at((p.intensity, p.gflops))
                        + Polygon::new(shape_points(shape), color.filled())
                }))?
                .label(b.to_string())
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 9, y)) + Polygon::new(shape_points(shape), color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()?;
        Ok(())
    })
}

/// How a bar is drawn: what kind of figure it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Solid: a measurement (hardware counter), or a throughput.
    Solid,
    /// Hatched: power samples integrated over time.
    Hatched,
    /// Outlined: a model estimate.
    Outlined,
}

/// One bar: a series (colour) within a group (row of bars).
pub struct Bar {
    /// The row label.
    pub group: String,
    /// The series (backend/device): its colour.
    pub series: String,
    /// The value.
    pub value: f64,
    /// Its interval (low, high), drawn as a whisker and written in the label; the high end may
    /// be infinite (drawn to the chart's edge).
    pub range: Option<(f64, f64)>,
    /// How it is drawn.
    pub fill: Fill,
}

fn dedup<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = Vec::new();
    for s in it {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

/// 45° hatch lines inside the pixel rectangle `(x0, y0)–(x1, y1)`, every `step` pixels.
fn hatch(x0: i32, y0: i32, x1: i32, y1: i32, step: i32) -> Vec<[(i32, i32); 2]> {
    let (x0, x1) = (x0.min(x1), x0.max(x1));
    let (y0, y1) = (y0.min(y1), y0.max(y1));
    let h = y1 - y0;
    let mut out = Vec::new();
    // Line k: x = c + (y1 - y), from (c, y1) up to (c + h, y0); clipped to [x0, x1].
    let mut c = x0 - h;
    while c < x1 {
        let (mut ax, mut ay, mut bx, mut by) = (c, y1, c + h, y0);
        if ax < x0 {
            ay -= x0 - ax;
            ax = x0;
        }
        if bx > x1 {
            by += bx - x1;
            bx = x1;
        }
        if ax < bx {
            out.push([(ax, ay), (bx, by)]);
        }
        c += step;
    }
    out
}

/// A short axis label: at most three significant digits, no trailing zeros.
fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.*}", (2 - mag).max(0) as usize);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// What a bar chart shows besides its bars.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BarOptions {
    /// A legend of the three fills (measured, integrated, estimated) under the series'.
    pub legend_fills: bool,
    /// A vertical reference line at this value, the x axis drawn to include it (1 on a chart
    /// of ratios: left of it faster, right of it slower).
    pub reference: Option<f64>,
}

/// Row labels: at most this many characters ([`short_labels`]) ...
const ROW_MAX: usize = 2 * ROW_LINE;
/// ... on at most two lines of this many ([`wrap2`]).
const ROW_LINE: usize = 34;
/// Pixels per character of a row label (size 11, drawn at 8.9 px) and of a value label (size
/// 10, 8.1 px): more than DejaVu Sans, the widest of the usual sans-serifs, takes on such
/// text, so that the room kept for a label holds it in any browser.
const ROW_CHAR: u32 = 6;
const VALUE_CHAR: i32 = 5;
/// The least width of the bars' area, pixels.
const MIN_PLOT: u32 = 280;

/// A bar's label: its value, and its interval when it has one.
fn value_label(b: &Bar) -> String {
    match b.range {
        Some((lo, hi)) => {
            let high = if hi.is_finite() {
                sig(hi)
            } else {
                "∞".into()
            };
            format!("{} [{} – {high}]", sig(b.value), sig(lo))
        }
        None => sig(b.value),
    }
}

/// Horizontal bars, one row per group and one colour per series, each bar labelled with its
/// value; a legend row of the series below, and with `legend_fills` one of the three fills
/// (measured, integrated, estimated).
pub fn hbars(title: &str, x_desc: &str, bars: &[Bar], legend_fills: bool) -> String {
    hbars_with(
        title,
        x_desc,
        bars,
        BarOptions {
            legend_fills,
            reference: None,
        },
    )
}

/// [`hbars`] with `opts`. Each value label sits in its own bar's row, right of the bar and of
/// its whisker: the chart keeps room right of the bars for the longest label (a label moved
/// elsewhere lands in a neighbour's row and reads as its value), and the picture widens
/// rather than squeeze the bars below [`MIN_PLOT`] pixels.
pub fn hbars_with(title: &str, x_desc: &str, bars: &[Bar], opts: BarOptions) -> String {
    let groups = dedup(bars.iter().map(|b| b.group.as_str()));
    let series = dedup(bars.iter().map(|b| b.series.as_str()));
    let rows: Vec<Vec<String>> = short_labels(&groups, ROW_MAX)
        .iter()
        .map(|l| wrap2(l, ROW_LINE))
        .collect();
    let label_w = rows
        .iter()
        .flatten()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(8) as u32
        * ROW_CHAR
        + 12;
    let labels: Vec<String> = bars.iter().map(value_label).collect();
    let value_w = labels
        .iter()
        .map(|l| VALUE_CHAR * l.chars().count() as i32)
        .max()
        .unwrap_or(0)
        + 8;
    let width = (10 + label_w + MIN_PLOT + value_w as u32 + 10).max(640);
    let bar_h = 13u32;
    let two_lines = rows.iter().any(|r| r.len() > 1);
    let per_group = (bar_h * series.len().max(1) as u32 + 10).max(if two_lines { 32 } else { 0 });
    let colors = series_colors(&series);
    let layout = legend_layout(&series, width as i32);
    let legend_rows = layout.last().map_or(1, |(r, _)| r + 1) as u32;
    let legend_h = 24 * (legend_rows + opts.legend_fills as u32);
    let height = (40 + per_group * groups.len().max(1) as u32).max(110) + 60 + legend_h;
    let xmax = bars
        .iter()
        .flat_map(|b| [Some(b.value), b.range.map(|r| r.1)])
        .chain([opts.reference])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let xmax = if xmax > 0.0 { xmax * 1.05 } else { 1.0 };
    let n = groups.len().max(1) as f64;
    let slots = series.len().max(1) as f64;
    figure(width, height, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 15))
            .margin(10)
            .margin_right(10 + value_w)
            .margin_bottom(10 + legend_h)
            .x_label_area_size(40)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0.0..xmax, 0.0..n)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(x_desc)
            .x_label_formatter(&|v| tick(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .max_light_lines(1)
            .draw()?;
        if let Some(r) = opts.reference {
            chart.draw_series(DashedLineSeries::new(
                [(r, 0.0), (r, n)],
                5,
                3,
                RGBColor(90, 90, 90).stroke_width(1),
            ))?;
        }
        // Group g occupies [n - g - 1, n - g): the first group on top.
        let band = |g: usize, s: usize| {
            let top = n - g as f64 - 0.08;
            let w = 0.84 / slots;
            (top - (s as f64 + 1.0) * w, top - s as f64 * w)
        };
        let left = |size: u32| {
            TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Left, VPos::Center))
        };
        for (g, lines) in rows.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, n - g as f64 - 0.5));
            let top = py - 6 * (lines.len() as i32 - 1);
            for (i, line) in lines.iter().enumerate() {
                root.draw(&Text::new(
                    line.clone(),
                    (px - 6, top + 12 * i as i32),
                    TextStyle::from((FONT, 11).into_font())
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                ))?;
            }
        }
        for (s, name) in series.iter().enumerate() {
            let color = colors[s];
            let mine: Vec<(usize, &Bar, &String)> = bars
                .iter()
                .zip(&labels)
                .filter(|(b, _)| b.series == *name)
                .map(|(b, l)| (groups.iter().position(|g| *g == b.group).unwrap_or(0), b, l))
                .collect();
            chart.draw_series(mine.iter().map(|(g, b, _)| {
                let (lo, hi) = band(*g, s);
                let style = match b.fill {
                    Fill::Solid => color.filled(),
                    Fill::Hatched | Fill::Outlined => color.stroke_width(2),
                };
                Rectangle::new([(0.0, lo), (b.value, hi)], style)
            }))?;
            for (g, b, label) in &mine {
                let (lo, hi) = band(*g, s);
                let (ax, ay) = chart.backend_coord(&(0.0, hi));
                let (bx, by) = chart.backend_coord(&(b.value, lo));
                if b.fill == Fill::Hatched {
                    for [p, q] in hatch(ax, ay, bx, by, 5) {
                        root.draw(&PathElement::new(vec![p, q], color.stroke_width(1)))?;
                    }
                }
                let y = (ay + by) / 2;
                let mut end = bx.max(ax);
                if let Some((lo, hi)) = b.range {
                    // The whisker: the interval, at the bar's middle, with end caps.
                    let (lx, _) = chart.backend_coord(&(lo.max(0.0), lo));
                    let (hx, _) = chart.backend_coord(&(hi.min(xmax), hi));
                    let ink = RGBColor(40, 40, 40).stroke_width(1);
                    root.draw(&PathElement::new(vec![(lx, y), (hx, y)], ink))?;
                    root.draw(&PathElement::new(vec![(lx, y - 3), (lx, y + 3)], ink))?;
                    if hi.is_finite() {
                        root.draw(&PathElement::new(vec![(hx, y - 3), (hx, y + 3)], ink))?;
                    }
                    end = end.max(hx);
                }
                // Right of the bar and its whisker, in its own row: the room kept right of
                // the bars' area holds it.
                root.draw(&Text::new(label.to_string(), (end + 4, y), left(10)))?;
            }
        }
        // Legend rows under the x axis: the series, then the fills.
        let ink = RGBColor(60, 60, 60);
        let top = height as i32 - legend_h as i32 + 8;
        for ((name, color), (row, x)) in series.iter().zip(&colors).zip(&layout) {
            let (x, y) = (*x, top + 24 * *row as i32);
            root.draw(&Rectangle::new(
                [(x, y - 5), (x + 14, y + 5)],
                color.filled(),
            ))?;
            root.draw(&Text::new(name.to_string(), (x + 19, y), left(12)))?;
        }
        if opts.legend_fills {
            let y = top + 24 * legend_rows as i32;
            let mut x = 12;
            for (fill, label) in [
                (Fill::Solid, "measured energy: solid"),
                (Fill::Hatched, "integrated: hatched"),
                (Fill::Outlined, "estimated: outlined"),
            ] {
                let style = if fill == Fill::Solid {
                    ink.filled()
                } else {
                    ink.stroke_width(2)
                };
                root.draw(&Rectangle::new([(x, y - 6), (x + 22, y + 6)], style))?;
                if fill == Fill::Hatched {
                    for [p, q] in hatch(x, y - 6, x + 22, y + 6, 5) {
                        root.draw(&PathElement::new(vec![p, q], ink.stroke_width(1)))?;
                    }
                }
                root.draw(&Text::new(label, (x + 28, y), left(12)))?;
                x += 200;
            }
        }
        Ok(())
    })
}

/// A line of a line chart.
pub struct Line {
    /// Legend label.
    pub label: String,
    /// Points, x ascending. A point whose y is not finite (NaN) is a sample without a reading:
    /// the line breaks there rather than join the readings either side, and the legend says
    /// how many there are.
    pub points: Vec<(f64, f64)>,
}

/// The runs of readings of `points`: the line's segments, split at each point without a
/// reading (a y that is not finite).
fn segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points
        .split(|p| !p.1.is_finite())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A line's legend label, with the number of its samples without a reading when there are.
fn line_label(l: &Line) -> String {
    let missing = l.points.iter().filter(|p| !p.1.is_finite()).count();
    match (missing, l.label.is_empty()) {
        (0, _) => l.label.clone(),
        (1, true) => "1 sample without a reading".into(),
        (m, true) => format!("{m} samples without a reading"),
        (1, false) => format!("{}: 1 sample without a reading", l.label),
        (m, false) => format!("{}: {m} samples without a reading", l.label),
    }
}

/// A vertical mark on a line chart (a change point, a software change).
pub struct Mark {
    /// Where.
    pub x: f64,
    /// Text beside it.
    pub label: String,
    /// Change point (red, solid) or known software change (grey, dashed).
    pub change: bool,
}

const LINE_COLORS: [RGBColor; 6] = [
    RGBColor(31, 100, 180),
    RGBColor(230, 120, 20),
    RGBColor(40, 150, 60),
    RGBColor(170, 60, 90),
    RGBColor(140, 70, 170),
    RGBColor(110, 110, 110),
];

/// Line chart of `lines` (with dots when `dots`), vertical `marks`, linear axes from zero.
#[allow(clippy::too_many_arguments)]
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    marks: &[Mark],
    dots: bool,
    size: (u32, u32),
) -> String {
    let (x0, x1) = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .chain(marks.iter().map(|m| m.x))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    let (x0, x1) = if x0.is_finite() && x1 > x0 {
        (x0, x1)
    } else if x0.is_finite() {
        (x0 - 1.0, x0 + 1.0)
    } else {
        (0.0, 1.0)
    };
    let ymax = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };
    let pad = (x1 - x0) * 0.02;
    // Runs and steps are counted: no tick between two of them.
    let counted = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .all(|p| p.0.fract() == 0.0);
    let x_ticks = if counted {
        ((x1 - x0) as usize + 1).min(10)
    } else {
        10
    };
    let x_tick = |v: &f64| {
        if counted && v.fract().abs() > 1e-9 {
            String::new()
        } else {
            tick(*v)
        }
    };
    figure(size.0, size.1, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 14))
            .margin(10)
            .x_label_area_size(38)
            .y_label_area_size(62)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(x_ticks)
            .x_label_formatter(&x_tick)
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .max_light_lines(1)
            .draw()?;
        for m in marks {
            let style = if m.change {
                RGBColor(200, 30, 30).stroke_width(2)
            } else {
                RGBColor(140, 140, 140).stroke_width(1)
            };
            if m.change {
                chart.draw_series(LineSeries::new([(m.x, 0.0), (m.x, ymax)], style))?;
            } else {
                chart.draw_series(DashedLineSeries::new(
                    [(m.x, 0.0), (m.x, ymax)],
                    5,
                    4,
                    style,
                ))?;
            }
            let (px, py) = chart.backend_coord(&(m.x, ymax));
            root.draw(&Text::new(
                m.label.clone(),
                (px + 4, py + 4),
                (FONT, 11)
                    .into_font()
                    .color(&style.color)
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            ))?;
        }
        let labels: Vec<String> = lines.iter().map(line_label).collect();
        for (i, (l, label)) in lines.iter().zip(&labels).enumerate() {
            let color = LINE_COLORS[i % LINE_COLORS.len()];
            // One polyline per run of readings; the legend entry on the first.
            let segs = segments(&l.points);
            for (k, seg) in segs.iter().enumerate() {
                let drawn =
                    chart.draw_series(LineSeries::new(seg.to_vec(), color.stroke_width(2)))?;
                if k == 0 {
                    drawn.label(label.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                }
            }
            // A reading alone between two gaps is no line: a dot shows it.
            let lone = segs.iter().filter(|s| s.len() == 1).map(|s| s[0]);
            let dotted: Vec<(f64, f64)> = if dots {
                l.points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite())
                    .collect()
            } else {
                lone.collect()
            };
            chart.draw_series(
                dotted
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        if lines.len() > 1 || labels.iter().any(|l| !l.is_empty()) {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .draw()?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_backend_on_a_gpu_is_told_apart_from_it_on_the_cpu() {
        assert_ne!(backend_color("tch/cpu"), backend_color("tch/cuda:0"));
        assert_eq!(backend_color("tch/cpu"), backend_color("tch"));
        // GPU-only backends keep their own colour.
        assert_eq!(backend_color("cublas/cuda:0"), backend_color("cublas"));
        assert_ne!(
            backend_color("cuda-wgmma/cuda:0"),
            backend_color("cuda-wgmma-c2/cuda:0")
        );
    }

    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(1000.0), "1000");
        assert_eq!(tick(0.1), "0.1");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(1.4), "1.4");
        assert_eq!(tick(12.345), "12.3");
        assert_eq!(tick(0.0), "0");
    }

    #[test]
    fn hatch_lines_stay_inside_their_bar() {
        let lines = hatch(10, 20, 60, 32, 5);
        assert!(!lines.is_empty());
        for [(ax, ay), (bx, by)] in lines {
            for (x, y) in [(ax, ay), (bx, by)] {
                assert!((10..=60).contains(&x) && (20..=32).contains(&y), "{x},{y}");
            }
            // 45°: as far across as up.
            assert_eq!(bx - ax, ay - by);
        }
    }

    #[test]
    fn bar_charts_keep_series_and_rows_apart() {
        // Row labels keep their end (shape and dtype).
        let long = "G4 scaled (M 3072 -> 1024) m1024_n128_k1024_tn";
        let (f32, bf16) = (format!("{long} f32"), format!("{long} bf16"));
        let v = short_labels(&[&f32, &bf16, "gemm f32"], 48);
        let (a, b) = (&v[0], &v[1]);
        assert!(
            a.ends_with("tn f32") && b.ends_with("tn bf16") && a != b,
            "{a} / {b}"
        );
        assert_eq!(a.chars().count(), 48);
        assert_eq!(v[2], "gemm f32");
        // No two series of a chart share a colour.
        let names = [
            "tch/cpu",
            "tch/cpu (b.json)",
            "tch/cpu (c.json)",
            "cublas/cuda:0",
            "cublas/cuda:1",
            "cuda/cuda:0",
        ];
        let colors = series_colors(&names);
        for (i, c) in colors.iter().enumerate() {
            assert!(!colors[..i].contains(c), "{} shares a colour", names[i]);
        }
        assert_eq!(colors[0], backend_color("tch/cpu"));
        // Many series: the legend wraps inside the picture.
        let gpu = [
            "cublas/cuda:0",
            "cuda/cuda:0",
            "cuda-naive/cuda:0",
            "cuda-wgmma/cuda:0",
            "cuda-wgmma-c2/cuda:0",
            "candle/cuda:0",
            "tch/cuda:0",
        ];
        let layout = legend_layout(&gpu, 640);
        for (name, (_, x)) in gpu.iter().zip(&layout) {
            assert!(x + 19 + 7 * name.len() as i32 <= 640, "{name} at {x}");
        }
        assert!(layout.last().unwrap().0 >= 1);
    }

    #[test]
    fn the_memory_slope_ends_inside_the_plot() {
        // A point far right of the ridge: the slope leaves the plot through its top.
        let (b, x, y) = (10.0, (0.1, 3000.0), (0.25, 300.0));
        let (from, to) = slope_span(b, x, y);
        for end in [from, to] {
            assert!((x.0..=x.1).contains(&end), "{end}");
            assert!(
                (y.0 * 0.999..=y.1 * 1.001).contains(&(b * end)),
                "{}",
                b * end
            );
        }
        assert!((to - 30.0).abs() < 1e-9, "{to}");
    }

    #[test]
    fn each_dtype_has_its_own_marker() {
        let svg = |dtype| {
            roofline(
                "t",
                &[RoofPoint {
                    backend: "candle".into(),
                    dtype,
                    intensity: 10.0,
                    gflops: 50.0,
                }],
                None,
            )
        };
        let (f32, f16, bf16) = (svg(DType::F32), svg(DType::F16), svg(DType::Bf16));
        // f32 filled; f16 outlined; bf16 outlined with a dot (the only circle element).
        assert!(!f16.contains("<circle") && !f32.contains("<circle"));
        assert!(bf16.contains("<circle"), "{bf16}");
        assert_ne!(f32, f16);
        assert_eq!(
            f16.matches("<polyline").count(),
            bf16.matches("<polyline").count()
        );
    }

    #[test]
    fn plots_are_inline_svg_with_escaped_text() {
        let svg = roofline(
            "cpu <&>",
            &[RoofPoint {
                backend: "candle".into(),
                dtype: DType::F32,
                intensity: 10.0,
                gflops: 50.0,
            }],
            Some(&Roofs {
                bandwidth: Some(10.0),
                peaks: vec![("f32".into(), 100.0, "tch".into())],
            }),
        );
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.contains("cpu &lt;&amp;&gt;") && svg.contains("f32 roof 100.0 GFLOP/s"));
        let bars = hbars(
            "t",
            "GFLOP/J",
            &[Bar {
                group: "g".into(),
                series: "candle/cpu".into(),
                value: 2.0,
                range: Some((1.5, f64::INFINITY)),
                fill: Fill::Hatched,
            }],
            true,
        );
        assert!(bars.starts_with("<svg") && bars.contains("integrated: hatched"));
        // The interval is drawn (to the chart's edge when unbounded) and said in the label.
        let label = "2.000 [1.500 – ∞]";
        assert!(bars.contains(label), "{bars}");
        // ... and stays inside the picture (640 pixels wide).
        let at = bars.find(label).unwrap();
        let tag = &bars[bars[..at].rfind("<text").unwrap()..at];
        let x: i32 = tag
            .split("x=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            x + VALUE_CHAR * label.chars().count() as i32 <= 640,
            "{tag}"
        );
    }

    /// An SVG element: its name, attributes, and a text's content.
    type Element = (String, Vec<(String, String)>, String);

    /// The elements of `svg` in drawing order.
    fn elements(svg: &str) -> Vec<Element> {
        let mut out = Vec::new();
        let mut rest = svg;
        while let Some(at) = rest.find('<') {
            rest = &rest[at + 1..];
            let end = rest.find('>').unwrap();
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('/') {
                continue;
            }
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            let attrs = tag
                .split('"')
                .collect::<Vec<_>>()
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| {
                    let key = c[0].trim().trim_end_matches('=');
                    let key = key.rsplit(' ').next().unwrap_or(key);
                    (key.to_string(), c[1].to_string())
                })
                .collect();
            let text = if name == "text" {
                rest[..rest.find("</text>").unwrap()].trim().to_string()
            } else {
                String::new()
            };
            out.push((name, attrs, text));
        }
        out
    }

    fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> &'a str {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    fn num(attrs: &[(String, String)], key: &str) -> f64 {
        attr(attrs, key).parse().unwrap()
    }

    /// A polyline's points.
    fn points(attrs: &[(String, String)]) -> Vec<(f64, f64)> {
        attr(attrs, "points")
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_gap_in_a_trace_breaks_the_line_and_is_counted() {
        // 300 W for 0-1.9 s, no reading for 2.0-4.4 s (25 samples), then 100 W.
        let mut csv = String::from("t_s,gpu0_watts\n0.0,\n");
        for i in 1..60 {
            let t = f64::from(i) / 10.0;
            let w = match i {
                0..=19 => "300",
                20..=44 => "",
                _ => "100",
            };
            csv.push_str(&format!("{t:.1},{w}\n"));
        }
        let trace =
            super::super::inputs::TraceInput::parse(std::path::Path::new("t.csv"), &csv).unwrap();
        let svg = lines(
            "t",
            "time, s",
            "W",
            &[Line {
                label: "gpu0".into(),
                points: trace.series("gpu0_watts"),
            }],
            &[],
            false,
            (620, 300),
        );
        // The line's polylines (its colour, more than the legend's two points): one per run
        // of readings, the first ending before the gap and the second starting after it.
        let segs: Vec<Vec<(f64, f64)>> = elements(&svg)
            .iter()
            .filter(|(n, a, _)| n == "polyline" && attr(a, "stroke") == "#1F64B4")
            .map(|(_, a, _)| points(a))
            .filter(|p| p.len() > 2)
            .collect();
        assert_eq!(segs.len(), 2, "{svg}");
        assert_eq!((segs[0].len(), segs[1].len()), (19, 15));
        let last_before = segs[0].iter().map(|p| p.0).fold(f64::MIN, f64::max);
        let first_after = segs[1].iter().map(|p| p.0).fold(f64::MAX, f64::min);
        // 1.9 s to 4.5 s: more than 2.5 s of the 5.9 s across about 540 pixels.
        assert!(first_after - last_before > 200.0, "{segs:?}");
        // The legend says how many samples had no reading (the first row's empty power is no
        // missing sample: power is a mean since the previous row).
        assert!(svg.contains("gpu0: 25 samples without a reading"), "{svg}");
        // A column without any reading has no series.
        let empty = "t_s,a_watts\n0.0,\n0.1,\n";
        let trace =
            super::super::inputs::TraceInput::parse(std::path::Path::new("t.csv"), empty).unwrap();
        assert!(trace.series("a_watts").is_empty());
    }

    /// Bars like the committed CPU report's "gemm infer: energy efficiency": three series,
    /// long row names, intervals of about 21 characters, one reaching far right.
    fn crowded_bars() -> Vec<Bar> {
        let rows = [
            "G4 scaled (M 3072 -> 1024) m1024_n128_k1024_tn f32",
            "G1 m1760_n16_k1760_nn f32",
            "G6 (as a Linear: T x out x in) m128_n3072_k768_nt f32",
        ];
        let mut bars = Vec::new();
        for (g, row) in rows.iter().enumerate() {
            for (s, (series, v, lo, hi)) in [
                ("reference/cpu", 1.14, 0.745, 2.423),
                ("candle/cpu", 11.84, 7.780, 24.74),
                ("tch/cpu", 12.28, 8.087, 25.53),
            ]
            .into_iter()
            .enumerate()
            {
                let k = 1.0 + 0.05 * (g + s) as f64;
                bars.push(Bar {
                    group: row.to_string(),
                    series: series.into(),
                    value: v * k,
                    range: Some((lo * k, hi * k)),
                    fill: Fill::Outlined,
                });
            }
        }
        bars
    }

    #[test]
    fn value_labels_sit_in_their_own_row_right_of_their_whisker() {
        let svg = hbars("t", "GFLOP/J", &crowded_bars(), true);
        let els = elements(&svg);
        let width = num(&els[0].1, "width");
        // Each value label follows its bar's whisker (a horizontal line; end caps between).
        let mut whiskers: Vec<(f64, f64, f64)> = Vec::new();
        let mut labels: Vec<(f64, f64, f64, String)> = Vec::new();
        for (name, a, text) in &els {
            if name == "polyline" && attr(a, "stroke") == "#282828" {
                let p = points(a);
                if p.len() == 2 && p[0].1 == p[1].1 {
                    whiskers.push((p[0].0.min(p[1].0), p[0].0.max(p[1].0), p[0].1));
                }
            }
            if name == "text" && text.contains(" [") {
                let (x, y) = (num(a, "x"), num(a, "y"));
                let own = *whiskers.last().unwrap();
                // In its own row: at the height of its whisker, the middle of its bar ...
                assert_eq!(y, own.2, "{text} is not in its bar's row");
                // ... and right of the whisker's end.
                assert!(
                    x > own.1,
                    "{text} at {x} starts left of its whisker's end {}",
                    own.1
                );
                // Inside the picture.
                let w = f64::from(VALUE_CHAR) * text.chars().count() as f64;
                assert!(x + w <= width, "{text} runs out of the picture");
                labels.push((x, x + w, y, text.clone()));
            }
        }
        assert_eq!(labels.len(), 9);
        // No label crosses another or another bar's whisker (text about 8 pixels high).
        for (i, (x0, x1, y, text)) in labels.iter().enumerate() {
            for (j, (a0, a1, b, other)) in labels.iter().enumerate() {
                let apart = (y - b).abs() >= 9.0 || x1 <= a0 || a1 <= x0;
                assert!(i == j || apart, "{text} overlaps {other}");
            }
            for (w0, w1, wy) in &whiskers {
                let apart = (y - wy).abs() >= 5.0 || x1 <= w0 || w1 <= x0 || wy == y;
                assert!(apart, "{text} crosses the whisker at y = {wy}");
            }
        }
    }

    #[test]
    fn row_labels_stay_unique_when_shortened() {
        // Told apart only in the middle: one label for both under a fixed cut (first 19 and
        // last 28 characters).
        let a = "conv2d/infer/n1_c64_h56_w56_k64_r3_s3_p1x1_s1x1/f32/tch/cpu";
        let b = "conv2d/infer/n1_c64_h112_w112_k64_r3_s3_p1x1_s1x1/f32/tch/cpu";
        let v = short_labels(&[a, b], 48);
        assert_ne!(v[0], v[1]);
        assert!(v.iter().all(|l| l.chars().count() <= 48), "{v:?}");
        // Longer ids from DeepBench's list: many alike at both ends.
        let ids: Vec<String> = [7, 10, 14, 28, 56]
            .iter()
            .flat_map(|h| {
                [42, 7, 14].iter().map(move |w| {
                    format!(
                        "conv2d/train/n16_c512_h{h}_w{w}_k512_r3_s3_p1x1_s1x1/bf16/cuda-wgmma-c2/\
                         cuda:0"
                    )
                })
            })
            .collect();
        let names: Vec<&str> = ids.iter().map(String::as_str).collect();
        let v = short_labels(&names, ROW_MAX);
        for (i, l) in v.iter().enumerate() {
            assert!(!v[..i].contains(l), "{l} stands for two cases");
        }
        // The chart: its rows read differently.
        let bar = |group: &str| Bar {
            group: group.into(),
            series: "M2 / M1".into(),
            value: 0.5,
            range: None,
            fill: Fill::Solid,
        };
        let svg = hbars("t", "x", &[bar(a), bar(b)], false);
        let mut rows: Vec<(f64, String)> = Vec::new();
        for (_, at, text) in elements(&svg)
            .iter()
            .filter(|(n, at, _)| n == "text" && attr(at, "text-anchor") == "end")
        {
            let y = num(at, "y");
            match rows.last_mut() {
                // The second line of a row's label.
                Some((py, t)) if y - *py < 14.0 => {
                    t.push_str(text);
                    *py = y;
                }
                _ => rows.push((y, text.clone())),
            }
        }
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_ne!(rows[0].1, rows[1].1);
    }

    #[test]
    fn every_backend_has_its_own_marker() {
        let mut names: Vec<&str> = crate::backends::all().iter().map(|b| b.name()).collect();
        for known in [
            "reference",
            "candle",
            "tch",
            "cuda",
            "cuda-naive",
            "cuda-wgmma",
            "cuda-wgmma-c2",
            "cublas",
            "cudnn",
        ] {
            if !names.contains(&known) {
                names.push(known);
            }
        }
        let shapes: Vec<usize> = names
            .iter()
            .map(|n| backend_shape(&format!("{n}/cuda:0")))
            .collect();
        for (i, s) in shapes.iter().enumerate() {
            assert!(
                !shapes[..i].contains(s),
                "{} has the marker of {}",
                names[i],
                names[shapes.iter().position(|x| x == s).unwrap()]
            );
        }
        // ... and the shapes look different.
        let outlines: Vec<Vec<(i32, i32)>> = (0..SHAPES).map(shape_points).collect();
        for (i, o) in outlines.iter().enumerate() {
            assert!(!outlines[..i].contains(o), "shape {i} repeats one");
        }
    }

    #[test]
    fn a_ratio_chart_has_its_reference_line_at_one() {
        let bars = [Bar {
            group: "g".into(),
            series: "M2 / M1".into(),
            value: 0.5,
            range: None,
            fill: Fill::Solid,
        }];
        let with = |reference| {
            hbars_with(
                "t",
                "x",
                &bars,
                BarOptions {
                    legend_fills: false,
                    reference,
                },
            )
        };
        let svg = with(Some(1.0));
        assert!(!with(None).contains("#5A5A5A"));
        let els = elements(&svg);
        // The bar spans 0 to 0.5; the line stands at twice its length from the axis.
        let bar = els
            .iter()
            .find(|(n, a, _)| n == "rect" && attr(a, "fill") != "#FFFFFF")
            .unwrap();
        let (x0, w) = (num(&bar.1, "x"), num(&bar.1, "width"));
        let line: Vec<f64> = els
            .iter()
            .filter(|(n, a, _)| n == "polyline" && attr(a, "stroke") == "#5A5A5A")
            .flat_map(|(_, a, _)| points(a))
            .map(|p| p.0)
            .collect();
        assert!(!line.is_empty(), "{svg}");
        for x in line {
            assert!(
                (x - (x0 + 2.0 * w)).abs() <= 2.0,
                "line at {x}, bar {x0} + {w}"
            );
        }
    }
}
