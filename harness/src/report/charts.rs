//! The report's charts as SVG documents (plotters): latency percentile spectrum with the
//! x axis in nines, throughput with the spread across repetitions, latency over time, and
//! latency against offered rate for sweeps.

use plotters::prelude::*;

use super::data::CellData;

const W: u32 = 900;
const H: u32 = 420;

/// Colour of the i-th topology.
pub fn colour(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    P[i % P.len()]
}

fn topologies(cells: &[CellData]) -> Vec<&str> {
    crate::output::unique_in_order(cells.iter().map(|c| c.topology.as_str()))
}

fn topo_index(cells: &[CellData], c: &CellData) -> usize {
    topologies(cells)
        .iter()
        .position(|t| *t == c.topology)
        .unwrap_or(0)
}

pub(super) fn empty(title: &str, why: &str) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, 80)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let _ = root.draw(&Text::new(
            format!("{title}: {why}"),
            (10, 30),
            ("sans-serif", 14).into_font(),
        ));
        let _ = root.present();
    }
    out
}

/// Percentile spectrum: x = nines (-log10(1-q)), y = latency (ms, log scale).
pub fn spectrum(cells: &[CellData]) -> String {
    let series: Vec<(&CellData, Vec<(f64, f64)>)> = cells
        .iter()
        .filter_map(|c| {
            let h = c.latency.as_ref().filter(|h| !h.is_empty())?;
            let pts = (0..=90)
                .map(|i| {
                    let nines = 0.3 + i as f64 * (4.7 / 90.0);
                    let q = 1.0 - 10f64.powf(-nines);
                    (nines, (h.value_at_quantile(q) as f64 / 1000.0).max(0.001))
                })
                .collect();
            Some((c, pts))
        })
        .collect();
    if series.is_empty() {
        return empty("Latency percentile spectrum", "no latency logs in this run");
    }
    let lo = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(f64::MAX, f64::min);
    let hi = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(0.0, f64::max);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .caption(
                "Latency by percentile (merged over repetitions)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            // log10(ms) on a linear axis: labels appear whatever the range's width.
            .build_cartesian_2d(0.3f64..5.0f64, (lo * 0.8).log10()..(hi * 1.25).log10());
        let Ok(mut chart) = chart else {
            return empty("Latency percentile spectrum", "cannot lay out the chart");
        };
        let _ = chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_labels(10)
            .x_label_formatter(&|x| {
                let q = 100.0 * (1.0 - 10f64.powf(-x));
                if (x - x.round()).abs() < 0.05 || (x - 2f64.log10()).abs() < 0.05 {
                    format!("{}%", trim(q))
                } else {
                    String::new()
                }
            })
            .y_labels(8)
            .y_label_formatter(&|y| {
                let ms = 10f64.powf(*y);
                if ms >= 10.0 {
                    format!("{ms:.0}")
                } else {
                    format!("{ms:.2}")
                }
            })
            .draw();
        for (c, pts) in &series {
            let col = colour(topo_index(cells, c));
            if let Ok(s) = chart.draw_series(LineSeries::new(
                pts.iter().map(|&(x, ms)| (x, ms.log10())),
                col.stroke_width(2),
            )) {
                s.label(c.name.clone())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], col));
            }
        }
        let _ = chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 10))
            .draw();
        let _ = root.present();
    }
    out
}

fn trim(q: f64) -> String {
    let s = format!("{q:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Throughput per cell (coloured by topology): bar at the median, whisker min..max.
pub fn throughput(cells: &[CellData]) -> String {
    let with: Vec<&CellData> = cells.iter().filter(|c| !c.reps.is_empty()).collect();
    if with.is_empty() {
        return empty("Throughput", "no cell produced a result");
    }
    let hi = with
        .iter()
        .flat_map(|c| c.reps.iter().map(|r| r.rps))
        .fold(0.0, f64::max)
        .max(1.0);
    let n = with.len();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .caption(
                "Throughput (median, min-max over repetitions)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(10)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n as f64, 0f64..hi * 1.15);
        let Ok(mut chart) = chart else {
            return empty("Throughput", "cannot lay out the chart");
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("requests/s")
            .draw();
        for (i, c) in with.iter().enumerate() {
            let col = colour(topo_index(cells, c));
            let rps: Vec<f64> = c.reps.iter().map(|r| r.rps).collect();
            let (mn, mx) = (
                rps.iter().copied().fold(f64::MAX, f64::min),
                rps.iter().copied().fold(0.0, f64::max),
            );
            let x = i as f64;
            let _ = chart.draw_series([Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.85, c.rps_median())],
                col.mix(0.8).filled(),
            )]);
            let _ = chart.draw_series([PathElement::new(
                [(x + 0.5, mn), (x + 0.5, mx)],
                BLACK.stroke_width(2),
            )]);
            // The name runs up the bar, so any number of cells stays legible.
            let font = ("sans-serif", 12)
                .into_font()
                .transform(FontTransform::Rotate270)
                .color(&BLACK);
            let _ = chart.draw_series([Text::new(c.name.clone(), (x + 0.45, hi * 0.02), font)]);
        }
        let _ = root.present();
    }
    out
}

/// p50 and p99 per second of the first repetition of each cell.
pub fn timeline(cells: &[CellData]) -> String {
    let with: Vec<&CellData> = cells.iter().filter(|c| !c.timeline.is_empty()).collect();
    if with.is_empty() {
        return empty("Latency over time", "no interval logs in this run");
    }
    let tmax = with
        .iter()
        .flat_map(|c| c.timeline.iter().map(|t| t.0))
        .fold(1.0, f64::max);
    let hi = with
        .iter()
        .flat_map(|c| c.timeline.iter().map(|t| t.2))
        .fold(1.0, f64::max)
        / 1000.0;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .caption(
                "Latency over time: p50 (thin) and p99 (thick) per second",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..tmax + 1.0, 0f64..hi * 1.15);
        let Ok(mut chart) = chart else {
            return empty("Latency over time", "cannot lay out the chart");
        };
        let _ = chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("latency (ms)")
            .draw();
        for c in with {
            let col = colour(topo_index(cells, c));
            let p50 = c.timeline.iter().map(|t| (t.0, t.1 / 1000.0));
            let p99 = c.timeline.iter().map(|t| (t.0, t.2 / 1000.0));
            let _ = chart.draw_series(LineSeries::new(p50, col.stroke_width(1)));
            if let Ok(s) = chart.draw_series(LineSeries::new(p99, col.stroke_width(3))) {
                s.label(c.name.clone())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], col));
            }
        }
        let _ = chart
            .configure_series_labels()
            .border_style(BLACK)
            .label_font(("sans-serif", 10))
            .draw();
        let _ = root.present();
    }
    out
}

/// p99 against offered rate, one line per sweep: where a curve bends is capacity.
pub fn sweep(cells: &[CellData]) -> Option<String> {
    // (sweep id, (rate, p99 ms) points, topology index)
    type Sweep = (String, Vec<(f64, f64)>, usize);
    let mut sweeps: Vec<Sweep> = Vec::new();
    for c in cells {
        let (Some((id, rate)), Some(h)) = (&c.sweep, &c.latency) else {
            continue;
        };
        let p99 = h.value_at_quantile(0.99) as f64 / 1000.0;
        match sweeps.iter_mut().find(|s| s.0 == *id) {
            Some(s) => s.1.push((*rate, p99)),
            None => sweeps.push((id.clone(), vec![(*rate, p99)], topo_index(cells, c))),
        }
    }
    if sweeps.is_empty() {
        return None;
    }
    let xmax = sweeps
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ymax = sweeps
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.001, f64::max);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let mut chart = ChartBuilder::on(&root)
            .caption("p99 latency vs offered rate", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax * 1.05, 0f64..ymax * 1.15)
            .ok()?;
        let _ = chart
            .configure_mesh()
            .x_desc("offered requests/s")
            .y_desc("p99 (ms)")
            .draw();
        for (id, mut pts, t) in sweeps {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let col = colour(t);
            if let Ok(s) = chart.draw_series(LineSeries::new(pts.clone(), col.stroke_width(2))) {
                s.label(id)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], col));
            }
            let _ = chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, col.filled())));
        }
        let _ = chart
            .configure_series_labels()
            .border_style(BLACK)
            .label_font(("sans-serif", 10))
            .draw();
        let _ = root.present();
    }
    Some(out)
}
