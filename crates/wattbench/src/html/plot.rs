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
                let light = |v: u8| (255.0 - (255.0 - f64::from(v)) * f * 0.6) as u8;
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

/// A bar chart's row label, at most `max` characters: a long one keeps its start and its end
/// (where the shape and dtype are), with "…" between.
fn short_label(name: &str, max: usize) -> String {
    let n = name.chars().count();
    if n <= max {
        return name.to_string();
    }
    let tail = (max * 3) / 5;
    let head = max - 1 - tail;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(n - tail).collect();
    format!("{start}…{end}")
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

/// Marker shape of a backend (five shapes, in the same fixed order as the colours).
pub fn backend_shape(name: &str) -> usize {
    let base = name.split('/').next().unwrap_or(name);
    match base {
        "reference" => 4,
        "candle" => 1,
        "tch" => 0,
        "cuda" => 2,
        "cublas" => 3,
        _ => base.len() % 5,
    }
}

/// The outline of marker `shape` around (0, 0), in pixels: circle (a 12-gon), triangle,
/// square, diamond or inverted triangle.
fn shape_points(shape: usize) -> Vec<(i32, i32)> {
    match shape % 5 {
        0 => (0..12)
            .map(|i| {
                let a = i as f64 * std::f64::consts::PI / 6.0;
                (
                    (5.5 * a.cos()).round() as i32,
                    (5.5 * a.sin()).round() as i32,
                )
            })
            .collect(),
        1 => vec![(0, -6), (6, 5), (-6, 5)],
        2 => vec![(-5, -5), (5, -5), (5, 5), (-5, 5)],
        3 => vec![(0, -7), (6, 0), (0, 7), (-6, 0)],
        _ => vec![(-6, -5), (6, -5), (0, 6)],
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

/// Horizontal bars, one row per group and one colour per series, each bar labelled with its
/// value; a legend row of the series below, and with `legend_fills` one of the three fills
/// (measured, integrated, estimated).
pub fn hbars(title: &str, x_desc: &str, bars: &[Bar], legend_fills: bool) -> String {
    let groups = dedup(bars.iter().map(|b| b.group.as_str()));
    let series = dedup(bars.iter().map(|b| b.series.as_str()));
    let bar_h = 13u32;
    let per_group = bar_h * series.len().max(1) as u32 + 10;
    let label_w = groups
        .iter()
        .map(|g| g.chars().count())
        .max()
        .unwrap_or(8)
        .min(48) as u32
        * 13
        / 2
        + 12;
    let colors = series_colors(&series);
    let layout = legend_layout(&series, 640);
    let legend_rows = layout.last().map_or(1, |(r, _)| r + 1) as u32;
    let legend_h = 24 * (legend_rows + legend_fills as u32);
    let height = (40 + per_group * groups.len().max(1) as u32).max(110) + 60 + legend_h;
    let xmax = bars
        .iter()
        .flat_map(|b| [Some(b.value), b.range.map(|r| r.1)])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Room right of the longest bar for its label (longer with an interval).
    let room = if bars.iter().any(|b| b.range.is_some()) {
        1.5
    } else {
        1.2
    };
    let xmax = if xmax > 0.0 { xmax * room } else { 1.0 };
    let n = groups.len().max(1) as f64;
    let slots = series.len().max(1) as f64;
    figure(640, height, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 15))
            .margin(10)
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
        // Group g occupies [n - g - 1, n - g): the first group on top.
        let band = |g: usize, s: usize| {
            let top = n - g as f64 - 0.08;
            let w = 0.84 / slots;
            (top - (s as f64 + 1.0) * w, top - s as f64 * w)
        };
        let left = |size: u32| {
            TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Left, VPos::Center))
        };
        for (g, name) in groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, n - g as f64 - 0.5));
            let shown = short_label(name, 48);
            root.draw(&Text::new(
                shown,
                (px - 6, py),
                TextStyle::from((FONT, 11).into_font()).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        for (s, name) in series.iter().enumerate() {
            let color = colors[s];
            let mine: Vec<(usize, &Bar)> = bars
                .iter()
                .filter(|b| b.series == *name)
                .map(|b| (groups.iter().position(|g| *g == b.group).unwrap_or(0), b))
                .collect();
            chart.draw_series(mine.iter().map(|(g, b)| {
                let (lo, hi) = band(*g, s);
                let style = match b.fill {
                    Fill::Solid => color.filled(),
                    Fill::Hatched | Fill::Outlined => color.stroke_width(2),
                };
                Rectangle::new([(0.0, lo), (b.value, hi)], style)
            }))?;
            for (g, b) in &mine {
                let (lo, hi) = band(*g, s);
                let (ax, ay) = chart.backend_coord(&(0.0, hi));
                let (bx, by) = chart.backend_coord(&(b.value, lo));
                if b.fill == Fill::Hatched {
                    for [p, q] in hatch(ax, ay, bx, by, 5) {
                        root.draw(&PathElement::new(vec![p, q], color.stroke_width(1)))?;
                    }
                }
                let mut end = bx.max(ax);
                let label = match b.range {
                    Some((lo, hi)) => {
                        // The whisker: the interval, at the bar's middle, with end caps.
                        let y = (ay + by) / 2;
                        let (lx, _) = chart.backend_coord(&(lo.max(0.0), lo));
                        let (hx, _) = chart.backend_coord(&(hi.min(xmax), hi));
                        let ink = RGBColor(40, 40, 40).stroke_width(1);
                        root.draw(&PathElement::new(vec![(lx, y), (hx, y)], ink))?;
                        root.draw(&PathElement::new(vec![(lx, y - 3), (lx, y + 3)], ink))?;
                        if hi.is_finite() {
                            root.draw(&PathElement::new(vec![(hx, y - 3), (hx, y + 3)], ink))?;
                        }
                        end = end.max(hx);
                        let high = if hi.is_finite() {
                            sig(hi)
                        } else {
                            "∞".into()
                        };
                        format!("{} [{} – {high}]", sig(b.value), sig(lo))
                    }
                    None => sig(b.value),
                };
                // Right of the bar (and its whisker), or, where that would run past the plot's
                // right edge (an unbounded interval), inside it above the bar.
                let right = chart.backend_coord(&(xmax, lo)).0;
                let width = 6 * label.chars().count() as i32;
                let at = if end + 4 + width <= right {
                    (end + 4, (ay + by) / 2)
                } else {
                    ((right - width).max(ax), ay.min(by) - 5)
                };
                root.draw(&Text::new(label, at, left(10)))?;
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
        if legend_fills {
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
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
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
        for (i, l) in lines.iter().enumerate() {
            let color = LINE_COLORS[i % LINE_COLORS.len()];
            chart
                .draw_series(LineSeries::new(l.points.clone(), color.stroke_width(2)))?
                .label(l.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            if dots {
                chart.draw_series(l.points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
            }
        }
        if lines.len() > 1 || lines.iter().any(|l| !l.label.is_empty()) {
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
        let (a, b) = (
            short_label(&format!("{long} f32"), 48),
            short_label(&format!("{long} bf16"), 48),
        );
        assert!(
            a.ends_with("tn f32") && b.ends_with("tn bf16") && a != b,
            "{a} / {b}"
        );
        assert_eq!(a.chars().count(), 48);
        assert_eq!(short_label("gemm f32", 48), "gemm f32");
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
        assert!(x + 6 * label.chars().count() as i32 <= 640, "{tag}");
    }
}
