//! The report's PNG plots, drawn with plotters into a memory buffer (no system fonts: DejaVu
//! Sans is embedded, see `src/eval/font/LICENSE.txt`) and encoded with the `image` crate.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::report::Report;
use crate::error::{Error, Result};
use crate::io::write_atomic;

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

/// `localization_threshold.png`, `deletion_insertion.png` and `road.png`.
pub fn write_plots(dir: &Path, report: &Report) -> Result<()> {
    let s = &report.settings;
    let methods: Vec<_> = report.methods.iter().filter(|m| m.images > 0).collect();
    if methods.is_empty() {
        return Ok(());
    }
    let threshold_series = |top1: bool| {
        methods
            .iter()
            .map(|m| {
                let pts = s
                    .thresholds
                    .iter()
                    .zip(&m.localization)
                    .map(|(&t, e)| (t as f64, if top1 { e.top1 } else { e.top5 }))
                    .collect();
                (m.method.clone(), pts)
            })
            .collect()
    };
    let n = methods[0].images;
    let png = panels_png(
        &format!("Localization error vs. threshold ({}, {n} images)", s.model),
        &[
            Panel {
                title: "Top-1 localization error".into(),
                x_label: "threshold (fraction of the map's maximum)".into(),
                y_label: "error (%)".into(),
                series: threshold_series(true),
                legend_below: false,
            },
            Panel {
                title: "Top-5 localization error".into(),
                x_label: "threshold (fraction of the map's maximum)".into(),
                y_label: "error (%)".into(),
                series: threshold_series(false),
                legend_below: false,
            },
        ],
        640,
        480,
    )?;
    write_atomic(&dir.join("localization_threshold.png"), &png)?;

    let faith: Vec<_> = methods
        .iter()
        .filter(|m| m.faithfulness_images > 0)
        .collect();
    if faith.is_empty() {
        return Ok(());
    }
    let nf = faith[0].faithfulness_images;
    let curve = |deletion: bool| {
        faith
            .iter()
            .map(|m| {
                let c = if deletion { &m.deletion } else { &m.insertion };
                let pts = c.xs.iter().copied().zip(c.mean.iter().copied()).collect();
                (format!("{} (AUC {:.3})", m.method, c.auc), pts)
            })
            .collect()
    };
    let png = panels_png(
        &format!("Deletion and Insertion, mean over {nf} images (top-1 class)"),
        &[
            Panel {
                title: "Deletion (lower is better)".into(),
                x_label: "fraction of pixels set to the baseline, most relevant first".into(),
                y_label: "probability of the class".into(),
                series: curve(true),
                legend_below: false,
            },
            Panel {
                title: "Insertion (higher is better)".into(),
                x_label: "fraction of pixels inserted into the blurred image".into(),
                y_label: "probability of the class".into(),
                series: curve(false),
                legend_below: true,
            },
        ],
        640,
        480,
    )?;
    write_atomic(&dir.join("deletion_insertion.png"), &png)?;

    let road = |morf: bool| {
        faith
            .iter()
            .map(|m| {
                let (v, mean) = if morf {
                    (&m.road.morf, m.road.morf_mean)
                } else {
                    (&m.road.lerf, m.road.lerf_mean)
                };
                let pts = m
                    .road
                    .removed
                    .iter()
                    .copied()
                    .zip(v.iter().copied())
                    .collect();
                (format!("{} ({mean:+.3})", m.method), pts)
            })
            .collect()
    };
    let png = panels_png(
        &format!("ROAD (noisy linear imputation), mean over {nf} images"),
        &[
            Panel {
                title: "Most relevant first (lower is better)".into(),
                x_label: "pixels removed (%)".into(),
                y_label: "change of the class probability".into(),
                series: road(true),
                legend_below: false,
            },
            Panel {
                title: "Least relevant first (higher is better)".into(),
                x_label: "pixels removed (%)".into(),
                y_label: "change of the class probability".into(),
                series: road(false),
                legend_below: false,
            },
        ],
        640,
        480,
    )?;
    write_atomic(&dir.join("road.png"), &png)
}
