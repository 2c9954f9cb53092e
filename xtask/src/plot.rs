//! Small plotting layer over plotters: panels of line/scatter series with dashed vertical
//! markers, written as PNG and SVG. Text uses the DejaVu Sans file shipped in `assets/`
//! (plotters' `ab_glyph` feature), so no system font library is needed.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

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

/// Where a panel's legend goes (lower left unless a figure says otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LegendAt {
    #[default]
    LowerLeft,
    LowerRight,
    MiddleRight,
}

/// One panel. With `log_x`/`log_y` the values are plotted as log10 (ticks show the value).
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    pub vlines: Vec<VLine>,
    pub legend: LegendAt,
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

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let pts: Vec<(f64, f64)> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|&(x, y)| Some((tr(x, p.log_x)?, tr(y, p.log_y)?))))
        .chain(p.vlines.iter().filter_map(|v| tr(v.x, p.log_x).map(|x| (x, f64::NAN))))
        .collect();
    let fold = |f: fn(f64, f64) -> f64, init: f64, sel: fn(&(f64, f64)) -> f64| {
        pts.iter().map(sel).filter(|v| v.is_finite()).fold(init, f)
    };
    let (mut x0, mut x1) = (fold(f64::min, f64::INFINITY, |p| p.0), fold(f64::max, f64::NEG_INFINITY, |p| p.0));
    let (mut y0, mut y1) = (fold(f64::min, f64::INFINITY, |p| p.1), fold(f64::max, f64::NEG_INFINITY, |p| p.1));
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let pad = 0.04 * (y1 - y0);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| anyhow!("{e:?}"))?;
    let fx = |v: &f64| {
        if p.log_x {
            format!("{:.2e}", 10f64.powf(*v))
        } else {
            format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    let fy = |v: &f64| {
        if p.log_y {
            format!("{:.2e}", 10f64.powf(*v))
        } else {
            format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    chart
        .configure_mesh()
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        // Six x ticks at most: wider log-axis labels ran into one another in narrow panels.
        .x_labels(6)
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    for s in &p.series {
        let data: Vec<(f64, f64)> =
            s.points.iter().filter_map(|&(x, y)| Some((tr(x, p.log_x)?, tr(y, p.log_y)?))).collect();
        let style = ShapeStyle::from(&s.color).stroke_width(2);
        let anno = if s.scatter {
            chart
                .draw_series(data.iter().map(|&c| Circle::new(c, 2, s.color.mix(0.6).filled())))
                .map_err(|e| anyhow!("{e:?}"))?
        } else if s.dashed {
            chart.draw_series(DashedLineSeries::new(data, 6, 4, style)).map_err(|e| anyhow!("{e:?}"))?
        } else {
            chart.draw_series(LineSeries::new(data, style)).map_err(|e| anyhow!("{e:?}"))?
        };
        if let Some(l) = &s.label {
            let c = s.color;
            anno.label(l.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], ShapeStyle::from(&c).stroke_width(2))
            });
        }
    }
    for v in &p.vlines {
        if let Some(x) = tr(v.x, p.log_x) {
            let c = v.color;
            chart
                .draw_series(DashedLineSeries::new(vec![(x, y0), (x, y1)], 5, 5, ShapeStyle::from(&c).stroke_width(2)))
                .map_err(|e| anyhow!("{e:?}"))?
                .label(v.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], ShapeStyle::from(&c).stroke_width(2))
                });
        }
    }
    if p.series.iter().any(|s| s.label.is_some()) || !p.vlines.is_empty() {
        chart
            .configure_series_labels()
            .position(match p.legend {
                LegendAt::LowerLeft => SeriesLabelPosition::LowerLeft,
                LegendAt::LowerRight => SeriesLabelPosition::LowerRight,
                LegendAt::MiddleRight => SeriesLabelPosition::MiddleRight,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(())
}

fn draw_all<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, panels: &[Panel], cols: usize) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(|e| anyhow!("{e:?}"))?;
    let rows = panels.len().div_ceil(cols);
    let areas = root.split_evenly((rows, cols));
    for (a, p) in areas.iter().zip(panels) {
        draw_panel(a, p)?;
    }
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// Writes `stem.png` and `stem.svg`.
pub fn save_panels(stem: &Path, title: &str, panels: &[Panel], cols: usize) -> Result<()> {
    init_fonts()?;
    let cols = cols.max(1).min(panels.len().max(1));
    let rows = panels.len().div_ceil(cols).max(1);
    let size = (480 * cols as u32, 400 * rows as u32 + 30);
    let png = stem.with_extension("png");
    draw_all(BitMapBackend::new(&png, size).into_drawing_area(), title, panels, cols)?;
    let svg = stem.with_extension("svg");
    draw_all(SVGBackend::new(&svg, size).into_drawing_area(), title, panels, cols)?;
    Ok(())
}

/// A heat map of `values[iy][ix]` on `[x0,x1]×[y0,y1]` with arrows, for the vector fields of
/// Fig. 3. Each panel is (title, heat values, arrows as (x, y, dx, dy)) and the points drawn.
pub struct FieldPanel {
    pub title: String,
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
    for (a, p) in areas.iter().zip(panels) {
        let mut chart = ChartBuilder::on(a)
            .caption(&p.title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| anyhow!("{e:?}"))?;
        chart.configure_mesh().disable_mesh().label_style(("sans-serif", 12)).draw().map_err(|e| anyhow!("{e:?}"))?;
        let ny = p.heat.len();
        let nx = p.heat.first().map_or(0, Vec::len);
        let (lo, hi) =
            p.heat.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
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

/// Writes `stem.png` and `stem.svg` of vector-field panels.
pub fn save_fields(stem: &Path, title: &str, range: (f64, f64, f64, f64), panels: &[FieldPanel]) -> Result<()> {
    init_fonts()?;
    let size = (460 * panels.len() as u32, 460);
    draw_fields(BitMapBackend::new(&stem.with_extension("png"), size).into_drawing_area(), title, range, panels)?;
    draw_fields(SVGBackend::new(&stem.with_extension("svg"), size).into_drawing_area(), title, range, panels)?;
    Ok(())
}
