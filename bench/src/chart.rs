//! bench/chart.png: per arm, Envoy CPU per request added over A1 (median of
//! the rounds, whiskers from min to max of the paired per-round
//! differences), and resident memory; `draw_bars` draws one such panel
//! alone (bench/path.png). Text is drawn with the DejaVu Sans shipped in
//! bench/fonts (plotters' ab_glyph backend: no system fonts).

use crate::{paired, Row};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use std::path::Path;

const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

const FEW: RGBColor = RGBColor(70, 120, 180);
const MANY: RGBColor = RGBColor(225, 130, 45);
const WIDTH: u32 = 1400;
const ROW_HEIGHT: u32 = 30;
/// Caption, axis and margins of one panel.
const PANEL_EXTRA: u32 = 120;

/// One horizontal bar.
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) value: f64,
    /// The whisker (min, max), if any.
    pub(crate) spread: Option<(f64, f64)>,
    /// The first series (the base token), else the second (the many-scope
    /// token).
    pub(crate) base_token: bool,
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn bar_label(r: &Row, few: usize) -> String {
    if r.scopes == few {
        format!("{} {}", r.id, r.name)
    } else {
        format!("{} {} · {} scopes", r.id, r.name, r.scopes)
    }
}

/// Draws the chart into `path` (PNG).
pub fn draw(path: &Path, rows: &[Row], few: usize) -> Result<(), String> {
    register_font(FAMILY, FontStyle::Normal, FONT).map_err(|_| "bench/fonts/DejaVuSans.ttf is not a usable font")?;
    let cpu: Vec<Bar> = rows
        .iter()
        .filter(|r| r.id != "A0" && r.id != "A1")
        .filter_map(|r| {
            let s = paired(rows, &r.id, "A1", r.scopes)?;
            Some(Bar {
                label: bar_label(r, few),
                value: s.median,
                spread: Some((s.min, s.max)),
                base_token: r.scopes == few,
            })
        })
        .collect();
    let rss: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: bar_label(r, few),
            value: r.rss_mb,
            spread: None,
            base_token: r.scopes == few,
        })
        .collect();
    let height = |bars: &[Bar]| PANEL_EXTRA + ROW_HEIGHT * u32::try_from(bars.len()).unwrap_or(u32::MAX / 64).max(1);
    let (cpu_height, rss_height) = (height(&cpu), height(&rss));
    let root = BitMapBackend::new(path, (WIDTH, cpu_height + rss_height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(cpu_height);
    let legend = [
        format!("{few}-scope token"),
        rows.iter()
            .map(|r| r.scopes)
            .find(|s| *s != few)
            .map_or_else(String::new, |m| format!("{m}-scope token")),
    ];
    panel(
        &top,
        "Envoy CPU µs per request added over A1 (jwt_authn alone): median of rounds, whiskers min–max",
        &cpu,
        &legend,
    )?;
    panel(&bottom, "Envoy resident memory (RSS), MB", &rss, &legend)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Draws one panel of `bars` into `path` (PNG), the first series named
/// `legend[0]`, the second `legend[1]`.
pub(crate) fn draw_bars(path: &Path, caption: &str, bars: &[Bar], legend: &[String; 2]) -> Result<(), String> {
    register_font(FAMILY, FontStyle::Normal, FONT).map_err(|_| "bench/fonts/DejaVuSans.ttf is not a usable font")?;
    let height = PANEL_EXTRA + ROW_HEIGHT * u32::try_from(bars.len()).unwrap_or(u32::MAX / 64).max(1);
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    panel(&root, caption, bars, legend)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One panel of horizontal bars, the first bar at the top; the two series'
/// names in the legend (an empty name: no legend entry).
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    bars: &[Bar],
    legend: &[String; 2],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let n = i32::try_from(bars.len()).unwrap_or(i32::MAX).max(1);
    let low = bars
        .iter()
        .map(|b| b.spread.map_or(b.value, |(lo, _)| lo.min(b.value)))
        .fold(0.0, f64::min);
    let high = bars
        .iter()
        .map(|b| b.spread.map_or(b.value, |(_, hi)| hi.max(b.value)))
        .fold(0.0, f64::max);
    // Room right of the longest bar for its value and the legend.
    let pad = (high - low).max(1.0) * 0.25;
    let x_range = if low < 0.0 { low - pad } else { 0.0 }..high + pad;
    // Row i (0 = first bar) is segment n-1-i: segments count from the bottom.
    let segment = |i: usize| n - 1 - i32::try_from(i).unwrap_or(0);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 20))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(30)
        .y_label_area_size(330)
        .build_cartesian_2d(x_range, (0..n - 1).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len().max(1))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(s) => usize::try_from(n - 1 - s)
                .ok()
                .and_then(|i| bars.get(i))
                .map(|b| b.label.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .label_style((FAMILY, 15))
        .x_label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    for (base, color, name) in [(true, FEW, legend[0].clone()), (false, MANY, legend[1].clone())] {
        let rects = bars
            .iter()
            .enumerate()
            .filter(|(_, b)| b.base_token == base)
            .map(|(i, b)| {
                let s = segment(i);
                let mut r = Rectangle::new(
                    [(0.0, SegmentValue::Exact(s)), (b.value, SegmentValue::Exact(s + 1))],
                    color.filled(),
                );
                r.set_margin(5, 5, 0, 0);
                r
            });
        let series = chart.draw_series(rects).map_err(err)?;
        if !name.is_empty() && bars.iter().any(|b| b.base_token == base) {
            series
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
        }
    }
    // A whisker (a line from min to max with 12-pixel caps) only where the
    // rounds spread, not with a single round.
    let whisker = BLACK.stroke_width(2);
    let spreads: Vec<(i32, f64, f64)> = bars
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.spread.filter(|(lo, hi)| hi > lo).map(|(lo, hi)| (segment(i), lo, hi)))
        .collect();
    let lines = spreads.iter().map(|&(s, lo, hi)| {
        PathElement::new(
            vec![(lo, SegmentValue::CenterOf(s)), (hi, SegmentValue::CenterOf(s))],
            whisker,
        )
    });
    chart.draw_series(lines).map_err(err)?;
    let caps = spreads.iter().flat_map(|&(s, lo, hi)| {
        [lo, hi].map(|x| {
            EmptyElement::at((x, SegmentValue::CenterOf(s))) + PathElement::new(vec![(0, -6), (0, 6)], whisker)
        })
    });
    chart.draw_series(caps).map_err(err)?;
    // The value, 8 pixels right of the bar (or of its whisker).
    let texts = bars.iter().enumerate().map(|(i, b)| {
        let right = b.spread.map_or(b.value, |(_, hi)| hi.max(b.value)).max(0.0);
        let style = (FAMILY, 14)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        EmptyElement::at((right, SegmentValue::CenterOf(segment(i))))
            + Text::new(format!("{:.1}", b.value), (8, 0), style)
    });
    chart.draw_series(texts).map_err(err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()
        .map_err(err)?;
    Ok(())
}
