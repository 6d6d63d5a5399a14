//! The report's three figures: which series of a [`Report`] go into which chart, drawn by
//! [`super::plot`].

use std::path::Path;

use super::plot::{Panel, panels_png};
use super::report::Report;
use crate::error::Result;
use crate::io::write_atomic;

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
