//! The survival matrix as a heatmap: one row per topology, one column per attack, each
//! square coloured by whether the topology held and how far its legitimate p99 rose, with
//! the ratio and how the attacker was cut off written in it.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::verdict::survival::render::{shade, short_ending};
use crate::verdict::survival::Survival;

const LABEL_W: i32 = 210;
const HEAD_H: i32 = 60;
const CELL_W: i32 = 128;
const CELL_H: i32 = 46;

/// The heatmap as SVG.
pub fn heatmap(s: &Survival) -> String {
    // The title and the legend need about 640 px however few the attacks.
    let width = (LABEL_W + CELL_W * s.attacks.len() as i32 + 10).max(640);
    let height = HEAD_H + CELL_H * s.rows.len() as i32 + 34;
    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (width as u32, height as u32)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let centre = Pos::new(HPos::Center, VPos::Center);
        let left = Pos::new(HPos::Left, VPos::Center);
        let font = |size: i32| ("sans-serif", size).into_font().color(&BLACK);
        let _ = root.draw(&Text::new(
            "Survival: legitimate p99 under attack / calm, and how the attacker was cut off",
            (10, 16),
            font(15).pos(left),
        ));
        for (j, a) in s.attacks.iter().enumerate() {
            let x = LABEL_W + CELL_W * j as i32 + CELL_W / 2;
            let _ = root.draw(&Text::new(
                a.as_str(),
                (x, HEAD_H - 14),
                font(12).pos(centre),
            ));
        }
        for (i, r) in s.rows.iter().enumerate() {
            let y = HEAD_H + CELL_H * i as i32;
            let _ = root.draw(&Text::new(
                r.name.as_str(),
                (10, y + CELL_H / 2),
                font(12).pos(left),
            ));
            for (j, c) in r.cells.iter().enumerate() {
                let x = LABEL_W + CELL_W * j as i32;
                let (red, green, blue) = shade(c.as_ref());
                let _ = root.draw(&Rectangle::new(
                    [(x + 1, y + 1), (x + CELL_W - 1, y + CELL_H - 1)],
                    RGBColor(red, green, blue).filled(),
                ));
                let (first, second) = match c {
                    None => ("-".to_string(), String::new()),
                    Some(c) if c.repetitions == 0 => ("no result".to_string(), String::new()),
                    Some(c) => (
                        format!(
                            "{} {:.1}x",
                            if c.held { "held" } else { "fell" },
                            c.p99_ratio
                        ),
                        c.ending.as_deref().map(short_ending).unwrap_or_default(),
                    ),
                };
                let mid = x + CELL_W / 2;
                let _ = root.draw(&Text::new(first, (mid, y + 16), font(12).pos(centre)));
                let _ = root.draw(&Text::new(second, (mid, y + 32), font(10).pos(centre)));
            }
        }
        let _ = root.draw(&Text::new(
            "green: held · orange to dark red: fell, by p99 ratio (2x to 100x) · grey: no result",
            (10, height - 14),
            font(11).pos(left),
        ));
        let _ = root.present();
    }
    out
}
