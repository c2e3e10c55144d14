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

/// Progress of a scenario run on a TTY: one bar for the matrix, one line for the running
/// cell; plain lines on stderr otherwise (nothing with `--quiet`).
pub struct RunProgress {
    bars: Option<(indicatif::MultiProgress, ProgressBar, ProgressBar)>,
    quiet: bool,
}

impl RunProgress {
    /// Progress for `total` cell runs.
    pub fn new(total: usize, quiet: bool) -> RunProgress {
        if quiet || !std::io::stderr().is_terminal() {
            return RunProgress { bars: None, quiet };
        }
        let multi = indicatif::MultiProgress::new();
        let matrix = multi.add(ProgressBar::new(total as u64));
        matrix.set_style(
            ProgressStyle::with_template("matrix [{bar:30}] {pos}/{len} cells  {elapsed_precise}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let cell = multi.add(ProgressBar::new_spinner());
        cell.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        RunProgress {
            bars: Some((multi, matrix, cell)),
            quiet,
        }
    }

    /// A cell starts.
    pub fn cell_started(&self, label: &str) {
        if let Some((_, _, cell)) = &self.bars {
            cell.set_message(format!("{label}: starting"));
        }
    }

    /// Live numbers of the running cell.
    pub fn cell_load(&self, label: &str, p: &Progress) {
        if let Some((_, _, cell)) = &self.bars {
            let phase = if p.elapsed < 0.0 {
                "warmup".to_string()
            } else {
                format!("{:.1}s", p.elapsed)
            };
            cell.set_message(format!(
                "{label}: {phase}  {} requests  {} req/s  {} errors",
                p.requests, p.last_second, p.errors
            ));
            cell.tick();
        }
    }

    /// A cell finished with this one-line outcome.
    pub fn cell_done(&self, line: &str) {
        match &self.bars {
            Some((multi, matrix, _)) => {
                let _ = multi.println(line);
                matrix.inc(1);
            }
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Some((_, matrix, cell)) = &self.bars {
            cell.finish_and_clear();
            matrix.finish_and_clear();
        }
    }
}
