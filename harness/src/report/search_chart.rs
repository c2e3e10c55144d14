//! The capacity searches: latency (the SLO's percentile) against offered rate, one line
//! per searched cell, passing steps filled and failing ones hollow, the SLO as a
//! horizontal line, the knee and the capacity marked.

use plotters::prelude::*;

use super::charts::colour;
use super::data::CellData;

/// The chart, or None when no cell was a search.
pub fn curve(cells: &[CellData]) -> Option<String> {
    let with: Vec<&CellData> = cells
        .iter()
        .filter(|c| {
            c.search
                .as_ref()
                .is_some_and(|s| s.searches.iter().any(|r| !r.is_empty()))
        })
        .collect();
    if with.is_empty() {
        return None;
    }
    let curves: Vec<_> = with.iter().filter_map(|c| c.search.as_ref()).collect();
    let xmax = curves
        .iter()
        .flat_map(|s| s.searches.iter().flatten().map(|p| p.0))
        .fold(1.0, f64::max);
    let slo = curves.iter().find_map(|s| s.slo_us).map(|v| v / 1000.0);
    // Far above the SLO the queue only grows: clip there so the knee stays visible.
    let ymax = curves
        .iter()
        .flat_map(|s| s.searches.iter().flatten().map(|p| p.1 / 1000.0))
        .fold(0.001, f64::max)
        .min(slo.map_or(f64::MAX, |s| s * 4.0));
    let metric = curves[0].metric.clone();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 420)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{metric} vs offered rate (capacity searches; hollow = step failed)"),
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax * 1.05, 0f64..ymax * 1.15)
            .ok()?;
        let _ = chart
            .configure_mesh()
            .x_desc("offered requests/s")
            .y_desc(format!("{metric} (ms)"))
            .draw();
        if let Some(s) = slo {
            let _ = chart
                .draw_series([PathElement::new(
                    [(0.0, s), (xmax * 1.05, s)],
                    RED.stroke_width(2),
                )])
                .map(|e| {
                    e.label(format!("SLO {metric} < {s} ms"))
                        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
                });
        }
        // One colour per searched cell (two cells of one topology must not look alike),
        // one line per search: repetitions are not mixed into one zigzag.
        for (i, c) in with.iter().enumerate() {
            let Some(s) = &c.search else { continue };
            let col = colour(i);
            let capacity = s
                .capacity
                .map(|c| format!(", capacity {c:.0}/s"))
                .unwrap_or_default();
            for (k, run) in s.searches.iter().enumerate() {
                let mut pts: Vec<(f64, f64, bool)> = run
                    .iter()
                    .map(|p| (p.0, (p.1 / 1000.0).min(ymax * 1.1), p.2))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                if let Ok(e) = chart.draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    col.stroke_width(2),
                )) {
                    if k == 0 {
                        e.label(format!("{}{capacity}", c.name))
                            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], col));
                    }
                }
                let _ = chart.draw_series(pts.iter().map(|p| {
                    let style = if p.2 {
                        col.filled()
                    } else {
                        col.stroke_width(2)
                    };
                    Circle::new((p.0, p.1), 4, style)
                }));
            }
            for (x, dash) in [(s.knee, 0.5), (s.capacity, 1.0)] {
                if let Some(x) = x {
                    let _ = chart.draw_series([PathElement::new(
                        [(x, 0.0), (x, ymax * 1.15)],
                        col.mix(dash).stroke_width(1),
                    )]);
                }
            }
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .label_font(("sans-serif", 10))
            .draw();
        let _ = root.present();
    }
    Some(out)
}
