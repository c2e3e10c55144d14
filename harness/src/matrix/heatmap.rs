//! SVG heatmap of the negotiated protocol per cell (plotters): rows are server
//! configurations, columns client profile x offer; a cell that disagrees with its
//! expectation is outlined.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{CellResult, MatrixResult};
use crate::output::unique_in_order;

const CELL: i32 = 16;
const LEFT: i32 = 330;
const TOP: i32 = 190;

/// Colour of a verdict.
fn colour(edge: &str) -> RGBColor {
    match edge {
        "HTTP/2" => RGBColor(46, 160, 67),
        "HTTP/1.1" => RGBColor(240, 190, 50),
        "inadequate_security" => RGBColor(230, 120, 40),
        "alpn_ignored" | "h2c_upgrade_declined" | "h2c_prior_knowledge_rejected" => {
            RGBColor(150, 150, 200)
        }
        e if e.starts_with("alert:") => RGBColor(200, 60, 60),
        _ => RGBColor(60, 60, 60),
    }
}

fn row_key(c: &CellResult) -> String {
    format!("{} {} {} {}", c.topology, c.server_tls, c.profile, c.cert)
}

fn col_key(c: &CellResult) -> String {
    format!("{} / {}", c.client_profile, c.offer)
}

/// Renders the heatmap as an SVG document.
pub fn svg(r: &MatrixResult) -> String {
    let rows = unique_in_order(r.cells.iter().map(row_key));
    let cols = unique_in_order(r.cells.iter().map(col_key));
    let legend = [
        ("HTTP/2", "HTTP/2"),
        ("HTTP/1.1", "HTTP/1.1"),
        ("inadequate_security", "INADEQUATE_SECURITY"),
        ("alert:x", "TLS alert"),
        ("alpn_ignored", "ALPN ignored / h2c refused"),
        ("server_failed", "other failure"),
    ];
    let width = (LEFT + cols.len() as i32 * CELL + 40).max(700);
    let height = TOP + rows.len() as i32 * CELL + 60;
    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (width as u32, height as u32)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let title = format!(
            "{}: negotiated protocol per cell ({} cells, {} not as expected, outlined)",
            r.name, r.summary.cells, r.summary.disagree
        );
        let _ = root.draw(&Text::new(title, (10, 18), ("sans-serif", 15).into_font()));
        for (i, (key, label)) in legend.iter().enumerate() {
            let x = 10 + i as i32 * 115;
            let _ = root.draw(&Rectangle::new(
                [(x, 30), (x + 12, 42)],
                colour(key).filled(),
            ));
            let _ = root.draw(&Text::new(
                *label,
                (x + 16, 32),
                ("sans-serif", 11).into_font(),
            ));
        }
        let vertical = TextStyle::from(
            ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate270),
        )
        .pos(Pos::new(HPos::Left, VPos::Center));
        for (j, c) in cols.iter().enumerate() {
            let x = LEFT + j as i32 * CELL + CELL / 2;
            let _ = root.draw(&Text::new(c.clone(), (x, TOP - 6), vertical.clone()));
        }
        let label = TextStyle::from(("sans-serif", 11).into_font())
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (i, row) in rows.iter().enumerate() {
            let y = TOP + i as i32 * CELL;
            let _ = root.draw(&Text::new(
                row.clone(),
                (LEFT - 6, y + CELL / 2),
                label.clone(),
            ));
        }
        for c in &r.cells {
            let i = rows.iter().position(|k| *k == row_key(c)).unwrap_or(0) as i32;
            let j = cols.iter().position(|k| *k == col_key(c)).unwrap_or(0) as i32;
            let (x, y) = (LEFT + j * CELL, TOP + i * CELL);
            let rect = [(x + 1, y + 1), (x + CELL - 1, y + CELL - 1)];
            let _ = root.draw(&Rectangle::new(rect, colour(&c.observed.edge).filled()));
            if !c.agrees {
                let _ = root.draw(&Rectangle::new(rect, BLACK.stroke_width(2)));
            }
        }
        let _ = root.present();
    }
    out
}
