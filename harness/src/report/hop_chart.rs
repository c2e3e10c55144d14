//! Where each topology's latency goes: per cell, for p50 and p99, a stacked bar of the app's
//! own time, each hop's overhead (its Server-Timing entry minus the entry inside it) and
//! the rest (edge TLS, network, generator: the client's latency minus the outermost hop).
//! Each part is a percentile of its own, so the parts are an approximation of the whole.

use plotters::prelude::*;

use super::charts::{colour, empty};
use super::data::CellData;

/// The parts of one bar: (label, ms), app first, the rest last.
fn parts(c: &CellData, q: f64) -> Option<Vec<(String, f64)>> {
    let total = c
        .latency
        .as_ref()
        .filter(|h| !h.is_empty())?
        .value_at_quantile(q) as f64;
    if c.hops.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut inner = 0.0;
    for h in &c.hops {
        let v = if q < 0.9 {
            h.overhead_p50_us
        } else {
            h.overhead_p99_us
        };
        let at = if q < 0.9 { h.p50_us } else { h.p99_us };
        let label = if h.name == "app" {
            "app".to_string()
        } else {
            format!("{} overhead", h.name)
        };
        out.push((label, v / 1000.0));
        inner = f64::max(inner, at);
    }
    out.push((
        "rest (TLS, network, client)".into(),
        (total - inner).max(0.0) / 1000.0,
    ));
    Some(out)
}

/// The stacked chart, or None when no cell reported Server-Timing.
pub fn breakdown(cells: &[CellData]) -> Option<String> {
    let with: Vec<&CellData> = cells.iter().filter(|c| parts(c, 0.5).is_some()).collect();
    if with.is_empty() {
        return None;
    }
    let mut labels: Vec<String> = Vec::new();
    for c in &with {
        for (l, _) in parts(c, 0.99).unwrap_or_default() {
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
    }
    // The rest last, whatever order the hops came in.
    labels.sort_by_key(|l| (l != "app", l.starts_with("rest")));
    let col = |l: &str| {
        if l.starts_with("rest") {
            RGBColor(190, 190, 190)
        } else {
            colour(labels.iter().position(|x| x == l).unwrap_or(0) + 2)
        }
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 440)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (left, right) = root.split_horizontally(450);
        for (area, q, name) in [(&left, 0.5, "p50"), (&right, 0.99, "p99")] {
            let bars: Vec<(&CellData, Vec<(String, f64)>)> = with
                .iter()
                .filter_map(|c| Some((*c, parts(c, q)?)))
                .collect();
            let hi = bars
                .iter()
                .map(|(_, p)| p.iter().map(|x| x.1).sum::<f64>())
                .fold(0.001, f64::max);
            let Ok(mut chart) = ChartBuilder::on(area)
                .caption(format!("{name}: where the time goes"), ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(10)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..bars.len() as f64, 0f64..hi * 1.3)
            else {
                continue;
            };
            let _ = chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_desc("ms")
                .draw();
            for (i, (c, p)) in bars.iter().enumerate() {
                let x = i as f64;
                let mut y = 0.0;
                for (label, v) in p {
                    let _ = chart.draw_series([Rectangle::new(
                        [(x + 0.15, y), (x + 0.85, y + v)],
                        col(label).filled(),
                    )]);
                    y += v;
                }
                let font = ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate270)
                    .color(&BLACK);
                let _ = chart.draw_series([Text::new(c.name.clone(), (x + 0.45, hi * 0.02), font)]);
            }
            if q < 0.9 {
                for l in &labels {
                    let c = col(l);
                    let _ = chart
                        .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
                        .map(|s| {
                            s.label(l.clone()).legend(move |(x, y)| {
                                Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled())
                            });
                        });
                }
                let _ = chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .border_style(BLACK)
                    .background_style(WHITE.mix(0.9))
                    .label_font(("sans-serif", 10))
                    .draw();
            }
        }
        let _ = root.present();
    }
    if out.is_empty() {
        return Some(empty("Where the time goes", "cannot lay out the chart"));
    }
    Some(out)
}
