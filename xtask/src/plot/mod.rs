//! Small plotting layer over plotters: panels of line/scatter series with dashed vertical
//! markers, written as PNG and SVG. Text uses the DejaVu Sans file shipped in `assets/`
//! (plotters' `ab_glyph` feature), so no system font library is needed.

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

mod ticks;
pub use ticks::{linear_ticks, log_ticks, Ticks};

static FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Registers the embedded font once.
pub fn init_fonts() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(anyhow!("could not load the embedded font"))
    }
}

/// One curve or point cloud.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: Option<String>,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    pub dashed: bool,
    pub scatter: bool,
}

impl Series {
    pub fn line(points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Self { label: None, points, color, dashed: false, scatter: false }
    }
    pub fn labeled(mut self, l: impl Into<String>) -> Self {
        self.label = Some(l.into());
        self
    }
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
    pub fn scatter(mut self) -> Self {
        self.scatter = true;
        self
    }
}

/// A dashed vertical marker (a theoretical gap position).
#[derive(Clone, Debug)]
pub struct VLine {
    pub x: f64,
    pub color: RGBColor,
    pub label: String,
}

/// One panel. With `log_x`/`log_y` the values are plotted as log10 (ticks at decades).
/// Labelled series and markers go into one legend for the whole figure, below the panels:
/// a legend never covers data and never repeats across panels.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    pub vlines: Vec<VLine>,
}

/// A colour scale shared by every panel of a figure (time `t` or size `N`), drawn as a
/// colour bar to the right of the panels. Series take their colour from [`ColorBar::color`].
#[derive(Clone, Debug)]
pub struct ColorBar {
    pub label: String,
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    /// The part of viridis used (dark at `lo` to `top` at `hi`).
    pub top: f64,
}

impl ColorBar {
    /// A logarithmic scale from `lo` to `hi` over the whole of viridis.
    /// A range of one value (a sweep of one size) is widened to a decade around it.
    pub fn log(label: impl Into<String>, lo: f64, hi: f64) -> Self {
        let (lo, hi) = match (lo > 0.0 && lo.is_finite(), hi > 0.0 && hi.is_finite()) {
            (true, true) if hi > lo => (lo, hi),
            (true, _) => (lo / 10f64.sqrt(), lo * 10f64.sqrt()),
            (false, true) => (hi / 10f64.sqrt(), hi * 10f64.sqrt()),
            (false, false) => (1.0, 10.0),
        };
        Self { label: label.into(), lo, hi, log: true, top: 1.0 }
    }
    /// A logarithmic scale over `values` (their smallest and largest).
    pub fn log_over(label: impl Into<String>, values: impl IntoIterator<Item = f64>) -> Self {
        let (lo, hi) = values.into_iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        Self::log(label, lo, hi)
    }
    /// A linear scale from `lo` to `hi`.
    /// A range of one value is widened by half a unit (or a tenth of the value) each side.
    pub fn linear(label: impl Into<String>, lo: f64, hi: f64) -> Self {
        let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
            (true, true) if hi > lo => (lo, hi),
            (true, _) | (false, true) => {
                let v = if lo.is_finite() { lo } else { hi };
                let half = (0.1 * v.abs()).max(0.5);
                (v - half, v + half)
            }
            (false, false) => (0.0, 1.0),
        };
        Self { label: label.into(), lo, hi, log: false, top: 1.0 }
    }
    /// With only the dark part of viridis, up to `top` (yellow is hard to see on white).
    pub fn up_to(mut self, top: f64) -> Self {
        self.top = top;
        self
    }
    fn unit(&self, v: f64) -> f64 {
        let f = |x: f64| if self.log { x.max(f64::MIN_POSITIVE).log10() } else { x };
        let span = f(self.hi) - f(self.lo);
        if span.abs() < 1e-300 {
            0.0
        } else {
            ((f(v) - f(self.lo)) / span).clamp(0.0, 1.0)
        }
    }
    /// The colour of value `v`.
    pub fn color(&self, v: f64) -> RGBColor {
        viridis(self.top * self.unit(v))
    }
    fn ticks(&self) -> Ticks {
        if self.log {
            log_ticks(self.lo.log10(), self.hi.log10())
        } else {
            linear_ticks(self.lo, self.hi)
        }
    }
}

/// Viridis-like colour map, `u` in [0, 1] (dark to light).
pub fn viridis(u: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] =
        [(68., 1., 84.), (59., 82., 139.), (33., 145., 140.), (94., 201., 98.), (253., 231., 37.)];
    let u = u.clamp(0.0, 1.0) * 4.0;
    let i = (u.floor() as usize).min(3);
    let f = u - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A qualitative palette.
pub fn palette(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    P[i % P.len()]
}

pub const GAP_COLORS: [RGBColor; 3] = [RGBColor(0, 0, 0), RGBColor(0, 150, 0), RGBColor(220, 0, 0)];

fn tr(v: f64, log: bool) -> Option<f64> {
    if log {
        (v > 0.0 && v.is_finite()).then(|| v.log10())
    } else {
        v.is_finite().then_some(v)
    }
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("{e:?}")
}

const LABEL_FONT: u32 = 14;
const TITLE_FONT: u32 = 17;

/// The plotted range of one axis: the data's, padded (y only) and never empty.
fn axis_range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let p = pad * (hi - lo);
    (lo - p, hi + p)
}

fn ticks_for(lo: f64, hi: f64, log: bool) -> Ticks {
    if log {
        log_ticks(lo, hi)
    } else {
        linear_ticks(lo, hi)
    }
}

fn plotted(p: &Panel) -> Vec<(f64, f64)> {
    let series =
        p.series.iter().flat_map(|s| s.points.iter().filter_map(|&(x, y)| Some((tr(x, p.log_x)?, tr(y, p.log_y)?))));
    let lines = p.vlines.iter().filter_map(|v| tr(v.x, p.log_x).map(|x| (x, f64::NAN)));
    series.chain(lines).collect()
}

/// A font size at which `text` fits in `width` pixels (titles are never cut).
fn fitting_font<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, size: u32, width: u32) -> u32 {
    let mut s = size;
    while s > 9 {
        let w = area.estimate_text_size(text, &("sans-serif", s).into_font().into()).map_or(0, |d| d.0);
        if w + 12 <= width {
            break;
        }
        s -= 1;
    }
    s
}

fn text_width<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, size: u32) -> u32 {
    area.estimate_text_size(text, &("sans-serif", size).into_font().into()).map_or(8 * text.len() as u32, |d| d.0)
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let pts = plotted(p);
    let (x0, x1) = axis_range(pts.iter().map(|q| q.0), 0.0);
    let (y0, y1) = axis_range(pts.iter().map(|q| q.1), 0.04);
    let (xt, yt) = (ticks_for(x0, x1, p.log_x), ticks_for(y0, y1, p.log_y));
    let widest_y = yt.major.iter().map(|m| text_width(area, &m.1, LABEL_FONT)).max().unwrap_or(10);
    let width = area.dim_in_pixel().0;
    let title_font = fitting_font(area, &p.title, TITLE_FONT, width);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", title_font))
        .margin(8)
        .margin_right(22)
        .x_label_area_size(44)
        .y_label_area_size(widest_y + 34)
        .build_cartesian_2d(Axis::new(x0, x1, &xt), Axis::new(y0, y1, &yt))
        .map_err(err)?;
    let (fx, fy) = (|v: &f64| xt.label(*v), |v: &f64| yt.label(*v));
    chart
        .configure_mesh()
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .bold_line_style(BLACK.mix(0.07))
        .light_line_style(WHITE.mix(0.0))
        .set_all_tick_mark_size(6)
        .label_style(("sans-serif", LABEL_FONT))
        .axis_desc_style(("sans-serif", LABEL_FONT + 1))
        .draw()
        .map_err(err)?;
    draw_minor_ticks(area, &chart, &xt.minor, &yt.minor, (x0, y0))?;
    for s in &p.series {
        draw_series(&mut chart, s, p)?;
    }
    for v in &p.vlines {
        if let Some(x) = tr(v.x, p.log_x) {
            let style = ShapeStyle::from(&v.color).stroke_width(2);
            chart.draw_series(DashedLineSeries::new(vec![(x, y0), (x, y1)], 5, 5, style)).map_err(err)?;
        }
    }
    Ok(())
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

/// A linear axis on plotted values (log10 for a log axis) with our own key points.
#[derive(Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
}

impl Axis {
    fn new(lo: f64, hi: f64, ticks: &Ticks) -> Self {
        Self { lo, hi, keys: ticks.major.iter().map(|m| m.0).collect() }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Short outward ticks at the minor positions of both axes.
fn draw_minor_ticks<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    minor_x: &[f64],
    minor_y: &[f64],
    (x0, y0): (f64, f64),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (bx, by) = area.get_base_pixel();
    let style = BLACK.stroke_width(1);
    for &x in minor_x {
        let (px, py) = chart.backend_coord(&(x, y0));
        area.draw(&PathElement::new(vec![(px - bx, py - by), (px - bx, py - by + 3)], style)).map_err(err)?;
    }
    for &y in minor_y {
        let (px, py) = chart.backend_coord(&(x0, y));
        area.draw(&PathElement::new(vec![(px - bx - 3, py - by), (px - bx, py - by)], style)).map_err(err)?;
    }
    Ok(())
}

fn draw_series<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, s: &Series, p: &Panel) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let data: Vec<(f64, f64)> =
        s.points.iter().filter_map(|&(x, y)| Some((tr(x, p.log_x)?, tr(y, p.log_y)?))).collect();
    let style = ShapeStyle::from(&s.color).stroke_width(2);
    if s.scatter {
        chart.draw_series(data.iter().map(|&c| Circle::new(c, 2, s.color.mix(0.6).filled()))).map_err(err)?;
    } else if s.dashed {
        chart.draw_series(DashedLineSeries::new(data, 6, 4, style)).map_err(err)?;
    } else {
        chart.draw_series(LineSeries::new(data, style)).map_err(err)?;
    }
    Ok(())
}

/// One entry of the figure's legend: its text and how its glyph is drawn.
#[derive(Clone, Debug, PartialEq)]
struct LegendEntry {
    label: String,
    color: RGBColor,
    dashed: bool,
    scatter: bool,
}

/// The labelled series and markers of all panels, each label once, in order of appearance.
fn legend_entries(panels: &[Panel]) -> Vec<LegendEntry> {
    let mut out: Vec<LegendEntry> = Vec::new();
    let mut push = |e: LegendEntry| {
        if !out.iter().any(|o| o.label == e.label) {
            out.push(e);
        }
    };
    for p in panels {
        for s in p.series.iter().filter(|s| !s.points.is_empty()) {
            if let Some(l) = &s.label {
                push(LegendEntry { label: l.clone(), color: s.color, dashed: s.dashed, scatter: s.scatter });
            }
        }
        for v in &p.vlines {
            push(LegendEntry { label: v.label.clone(), color: v.color, dashed: true, scatter: false });
        }
    }
    out
}

const LEGEND_ROW: u32 = 24;
const GLYPH: i32 = 30;

/// Rows of legend entries that fit in `width` pixels.
fn legend_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    width: u32,
) -> Vec<Vec<(LegendEntry, u32)>> {
    let mut rows: Vec<Vec<(LegendEntry, u32)>> = vec![Vec::new()];
    let mut used = 0;
    for e in entries {
        let w = text_width(area, &e.label, LABEL_FONT) + GLYPH as u32 + 22;
        if used + w > width.saturating_sub(20) && !rows.last().is_some_and(Vec::is_empty) {
            rows.push(Vec::new());
            used = 0;
        }
        rows.last_mut().expect("one row at least").push((e.clone(), w));
        used += w;
    }
    rows
}

fn draw_glyph<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, e: &LegendEntry, (x, y): (i32, i32)) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = ShapeStyle::from(&e.color).stroke_width(2);
    if e.scatter {
        for dx in [6, 15, 24] {
            area.draw(&Circle::new((x + dx, y), 3, e.color.filled())).map_err(err)?;
        }
    } else if e.dashed {
        for (a, b) in [(0, 7), (11, 18), (22, GLYPH - 2)] {
            area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], style)).map_err(err)?;
        }
    } else {
        area.draw(&PathElement::new(vec![(x, y), (x + GLYPH - 2, y)], style)).map_err(err)?;
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, rows: &[Vec<(LegendEntry, u32)>]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let width = area.dim_in_pixel().0 as i32;
    let font = ("sans-serif", LABEL_FONT).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (r, row) in rows.iter().enumerate() {
        let total: u32 = row.iter().map(|e| e.1).sum();
        let mut x = (width - total as i32).max(0) / 2;
        let y = (r as u32 * LEGEND_ROW + LEGEND_ROW / 2 + 4) as i32;
        for (e, w) in row {
            draw_glyph(area, e, (x, y))?;
            area.draw(&Text::new(e.label.clone(), (x + GLYPH + 6, y), font.clone())).map_err(err)?;
            x += *w as i32;
        }
    }
    Ok(())
}

const BAR_WIDTH: u32 = 110;

/// A vertical colour bar with its ticks and label, filling `area`.
fn draw_colorbar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, bar: &ColorBar) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let h = area.dim_in_pixel().1 as i32;
    let (top, bottom, x0, x1) = (46, h - 56, 14, 32);
    let steps = 128;
    for i in 0..steps {
        let u = f64::from(i) / f64::from(steps);
        let ya = bottom - ((bottom - top) as f64 * (u + 1.0 / f64::from(steps))).round() as i32;
        let yb = bottom - ((bottom - top) as f64 * u).round() as i32;
        area.draw(&Rectangle::new([(x0, ya), (x1, yb)], viridis(bar.top * u).filled())).map_err(err)?;
    }
    area.draw(&Rectangle::new([(x0, top), (x1, bottom)], BLACK.stroke_width(1))).map_err(err)?;
    let ticks = bar.ticks();
    let (lo, hi) = if bar.log { (bar.lo.log10(), bar.hi.log10()) } else { (bar.lo, bar.hi) };
    // The bar's constructors keep hi > lo; ticks past the ends are clamped to the bar.
    let y_of = |v: f64| {
        let u = ((v - lo) / (hi - lo).max(1e-300)).clamp(0.0, 1.0);
        bottom - (u * f64::from(bottom - top)).round() as i32
    };
    let font = ("sans-serif", LABEL_FONT).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (v, label) in &ticks.major {
        let y = y_of(*v);
        area.draw(&PathElement::new(vec![(x1, y), (x1 + 5, y)], BLACK.stroke_width(1))).map_err(err)?;
        area.draw(&Text::new(label.clone(), (x1 + 8, y), font.clone())).map_err(err)?;
    }
    for v in &ticks.minor {
        let y = y_of(*v);
        area.draw(&PathElement::new(vec![(x1, y), (x1 + 3, y)], BLACK.stroke_width(1))).map_err(err)?;
    }
    let head = ("sans-serif", LABEL_FONT + 1).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Bottom));
    area.draw(&Text::new(bar.label.clone(), (x0, top - 10), head)).map_err(err)?;
    Ok(())
}

/// How a figure is laid out: its title, columns and optional colour bar.
#[derive(Clone, Debug, Default)]
pub struct Figure {
    pub title: String,
    pub cols: usize,
    pub colorbar: Option<ColorBar>,
}

impl Figure {
    pub fn new(title: impl Into<String>, cols: usize) -> Self {
        Self { title: title.into(), cols, colorbar: None }
    }
    pub fn colorbar(mut self, bar: ColorBar) -> Self {
        self.colorbar = Some(bar);
        self
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, panels: &[Panel], cols: usize) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let (w, _) = root.dim_in_pixel();
        let title_font = fitting_font(&root, &self.title, 20, w);
        let root = root.titled(&self.title, ("sans-serif", title_font)).map_err(err)?;
        let rows = legend_rows(&root, &legend_entries(panels), w);
        let legend_h = if rows.iter().all(Vec::is_empty) { 0 } else { rows.len() as u32 * LEGEND_ROW + 10 };
        let (_, h) = root.dim_in_pixel();
        let (body, legend) = root.split_vertically(h - legend_h);
        let body = match &self.colorbar {
            Some(bar) => {
                let (left, right) = body.split_horizontally(w - BAR_WIDTH);
                draw_colorbar(&right, bar)?;
                left
            }
            None => body,
        };
        let areas = body.split_evenly((panels.len().div_ceil(cols).max(1), cols));
        for (a, p) in areas.iter().zip(panels) {
            draw_panel(a, p)?;
        }
        if legend_h > 0 {
            draw_legend(&legend, &rows)?;
        }
        root.present().map_err(err)?;
        Ok(())
    }

    /// The pixel size of the figure: 480 × 400 a panel, plus the bar and the legend.
    fn size(&self, panels: &[Panel], cols: usize) -> (u32, u32) {
        let rows = panels.len().div_ceil(cols).max(1) as u32;
        let bar = if self.colorbar.is_some() { BAR_WIDTH } else { 0 };
        let entries = legend_entries(panels).len() as u32;
        let width = 480 * cols as u32 + bar;
        // A generous estimate of the legend's rows (about 230 px an entry).
        let legend = if entries == 0 { 0 } else { (entries * 230).div_ceil(width.max(1)) * LEGEND_ROW + 10 };
        (width, 400 * rows + 34 + legend)
    }

    /// Writes `stem.png` and `stem.svg`.
    pub fn save(&self, stem: &Path, panels: &[Panel]) -> Result<()> {
        init_fonts()?;
        let cols = self.cols.max(1).min(panels.len().max(1));
        let size = self.size(panels, cols);
        let png = stem.with_extension("png");
        self.draw(BitMapBackend::new(&png, size).into_drawing_area(), panels, cols)?;
        let svg = stem.with_extension("svg");
        self.draw(SVGBackend::new(&svg, size).into_drawing_area(), panels, cols)?;
        Ok(())
    }
}

/// Writes `stem.png` and `stem.svg` of `panels` in `cols` columns, without a colour bar.
pub fn save_panels(stem: &Path, title: &str, panels: &[Panel], cols: usize) -> Result<()> {
    Figure::new(title, cols).save(stem, panels)
}

/// A heat map of `values[iy][ix]` on `[x0,x1]×[y0,y1]` with arrows, for the vector fields of
/// Fig. 3. Each panel is (title, heat values, arrows as (x, y, dx, dy)) and the points drawn.
pub struct FieldPanel {
    pub title: String,
    /// What the heat map shows (the colour bar's label).
    pub heat_label: String,
    pub heat: Vec<Vec<f64>>,
    pub arrows: Vec<(f64, f64, f64, f64)>,
    pub points: Vec<(f64, f64)>,
}

fn draw_fields<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    range: (f64, f64, f64, f64),
    panels: &[FieldPanel],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(|e| anyhow!("{e:?}"))?;
    let areas = root.split_evenly((1, panels.len()));
    let (x0, x1, y0, y1) = range;
    for (whole, p) in areas.iter().zip(panels) {
        let (lo, hi) =
            p.heat.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let (w, _) = whole.dim_in_pixel();
        let (a, bar_area) = whole.split_horizontally(w - FIELD_BAR);
        draw_colorbar(&bar_area, &ColorBar::linear(p.heat_label.as_str(), lo, hi))?;
        let mut chart = ChartBuilder::on(&a)
            .caption(&p.title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| anyhow!("{e:?}"))?;
        chart.configure_mesh().disable_mesh().label_style(("sans-serif", 12)).draw().map_err(|e| anyhow!("{e:?}"))?;
        let ny = p.heat.len();
        let nx = p.heat.first().map_or(0, Vec::len);
        let dx = (x1 - x0) / nx as f64;
        let dy = (y1 - y0) / ny as f64;
        chart
            .draw_series((0..ny).flat_map(|iy| (0..nx).map(move |ix| (ix, iy))).map(|(ix, iy)| {
                let u = (p.heat[iy][ix] - lo) / (hi - lo).max(1e-300);
                let cx = x0 + ix as f64 * dx;
                let cy = y0 + iy as f64 * dy;
                Rectangle::new([(cx, cy), (cx + dx, cy + dy)], viridis(u).filled())
            }))
            .map_err(|e| anyhow!("{e:?}"))?;
        let red = RGBColor(230, 30, 30);
        for &(x, y, ux, uy) in &p.arrows {
            let (ex, ey) = (x + ux, y + uy);
            let (bx, by) = (-ux * 0.3, -uy * 0.3);
            let (px, py) = (-by * 0.5, bx * 0.5);
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(x, y), (ex, ey)], red.stroke_width(1))))
                .map_err(|e| anyhow!("{e:?}"))?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(ex + bx + px, ey + by + py), (ex, ey), (ex + bx - px, ey + by - py)],
                    red.stroke_width(1),
                )))
                .map_err(|e| anyhow!("{e:?}"))?;
        }
        chart.draw_series(p.points.iter().map(|&c| Circle::new(c, 3, WHITE.filled()))).map_err(|e| anyhow!("{e:?}"))?;
    }
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// Width of the colour bar beside each field panel.
const FIELD_BAR: u32 = 90;

/// Writes `stem.png` and `stem.svg` of vector-field panels.
pub fn save_fields(stem: &Path, title: &str, range: (f64, f64, f64, f64), panels: &[FieldPanel]) -> Result<()> {
    init_fonts()?;
    let size = ((460 + FIELD_BAR) * panels.len() as u32, 460);
    draw_fields(BitMapBackend::new(&stem.with_extension("png"), size).into_drawing_area(), title, range, panels)?;
    draw_fields(SVGBackend::new(&stem.with_extension("svg"), size).into_drawing_area(), title, range, panels)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colour_bar_of_one_value_is_widened_and_drawn() {
        let bar = ColorBar::log("N", 64.0, 64.0);
        assert!(bar.lo < 64.0 && bar.hi > 64.0 && (bar.hi / bar.lo - 10.0).abs() < 1e-9);
        let lin = ColorBar::linear("k", 3.0, 3.0);
        assert!(lin.lo < 3.0 && lin.hi > 3.0);
        let dir = std::env::temp_dir().join(format!("geomem-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let panel = Panel {
            title: "one size".into(),
            log_x: true,
            series: vec![Series::line(vec![(1.0, 1.0), (10.0, 2.0)], bar.color(64.0))],
            ..Panel::default()
        };
        // A one-size sweep drew this bar: before the widening its ticks overflowed i32.
        Figure::new("one value", 1).colorbar(bar).save(&dir.join("one"), &[panel]).unwrap();
        assert!(dir.join("one.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
