//! Live progress on a TTY (indicatif); nothing animated otherwise or with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::load::Progress;

/// A progress line, or nothing.
pub struct Live(Option<ProgressBar>);

impl Live {
    /// Shows progress when stderr is a terminal and `quiet` is off.
    pub fn new(quiet: bool) -> Live {
        if quiet || !std::io::stderr().is_terminal() {
            return Live(None);
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        Live(Some(bar))
    }

    /// Updates the line.
    pub fn update(&self, p: &Progress) {
        if let Some(bar) = &self.0 {
            let phase = if p.elapsed < 0.0 {
                format!("warmup {:.0}s left", -p.elapsed)
            } else {
                format!("{:.1}s", p.elapsed)
            };
            bar.set_message(format!(
                "{phase}  requests {}  last second {} req/s  errors {}",
                p.requests, p.last_second, p.errors
            ));
            bar.tick();
        }
    }

    /// Removes the line.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
