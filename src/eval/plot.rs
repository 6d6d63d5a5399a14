//! Line charts as PNG, drawn with plotters into a memory buffer (no system fonts: DejaVu Sans is
//! embedded, see `src/eval/font/LICENSE.txt`) and encoded with the `image` crate. Plain data in,
//! bytes out: what to draw is decided by [`super::figures`].

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("font/DejaVuSans.ttf");

/// Distinct colours for up to 10 series (Tableau 10), then they repeat.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// One chart: lines over a shared x axis.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// (name, points).
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Put the legend in the lower right corner instead of the upper right.
    pub legend_below: bool,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(1e-9);
    (lo - pad * span, hi + pad * span)
}

/// Draws panels side by side into a PNG: `width x height` pixels per panel.
pub fn panels_png(title: &str, panels: &[Panel], width: u32, height: u32) -> Result<Vec<u8>> {
    register_font();
    let total_w = width * panels.len().max(1) as u32;
    let total_h = height + 50;
    let mut buffer = vec![255u8; (total_w * total_h * 3) as usize];
    let draw_err = |e: String| Error::Invalid(format!("plot `{title}`: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (total_w, total_h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
        let root = root
            .titled(title, ("sans-serif", 26).into_font().color(&BLACK))
            .map_err(|e| draw_err(e.to_string()))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(areas) {
            draw_panel(panel, &area).map_err(draw_err)?;
        }
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    let image = ::image::RgbImage::from_raw(total_w, total_h, buffer).expect("buffer size");
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            ::image::ImageFormat::Png,
        )
        .map_err(|e| draw_err(e.to_string()))?;
    Ok(bytes)
}

fn draw_panel<DB: DrawingBackend>(
    panel: &Panel,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> std::result::Result<(), String> {
    let points = || panel.series.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = range(points().map(|p| p.0), 0.02);
    let (y0, y1) = range(points().map(|p| p.1), 0.06);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(235, 235, 235))
        .x_labels(8)
        .y_labels(8)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in panel.series.iter().enumerate() {
        let (r, g, b) = PALETTE[i % PALETTE.len()];
        let color = RGBColor(r, g, b);
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), style))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 22, y)],
                    ShapeStyle::from(&color).stroke_width(3),
                )
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(if panel.legend_below {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        })
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
