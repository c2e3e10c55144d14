//! Scenario files (`scenarios/*.toml`) -> a validated [`Plan`]. Every problem is a
//! [`Diagnostic`] naming file, line and column, with a hint; nothing downstream re-reads
//! the file. Three steps, a file each: `file` (the TOML as written, with spans),
//! `validate` (and `app` for `[app]` and `[target]`: each value checked where it is
//! written) and `expand` (rules, cross product, impossible combinations, cells).

pub mod app;
mod beside_load;
mod expand;
pub mod file;
pub mod negotiation;
mod search;
mod validate;

use std::ops::Range;
use std::path::{Path, PathBuf};

use h2lab_common::launch::ProxyKind;

use crate::model::plan::{Plan, ServerTls};
use file::File;

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in a file (at least one).
#[derive(Debug, thiserror::Error)]
pub struct ScenarioError(pub Vec<Diagnostic>);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Where diagnostics go while a file is checked.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&self, span: Range<usize>) -> (usize, usize) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
            + 1;
        (line, column)
    }

    fn err(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<&str>) {
        let (line, column) = self.at(span);
        self.diags.push(Diagnostic {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }
}

/// Reads a scenario file; failure is a diagnostic at 1:1.
fn read_text(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|e| {
        ScenarioError(vec![Diagnostic {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {e}"),
            hint: None,
        }])
    })
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Plan, ScenarioError> {
    parse(path, &read_text(path)?)
}

/// Validates scenario `text` (as read from `path`).
pub fn parse(path: &Path, text: &str) -> Result<Plan, ScenarioError> {
    let mut ctx = Ctx {
        path,
        text,
        diags: Vec::new(),
    };
    let file: File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_string();
            let hint = if msg.contains("unknown field") {
                Some("check the spelling; README.md and scenarios/quick.toml list every key")
            } else if msg.contains("missing field") {
                Some("add the key; see scenarios/quick.toml for a complete example")
            } else {
                None
            };
            ctx.err(span, msg, hint);
            return Err(ScenarioError(ctx.diags));
        }
    };
    let sections = validate::sections(&mut ctx, &file, path);
    let plan = if ctx.diags.is_empty() {
        expand::plan(&mut ctx, &file, sections)
    } else {
        None
    };
    if ctx.diags.is_empty() {
        Ok(plan.expect("a plan when there is no diagnostic"))
    } else {
        Err(ScenarioError(ctx.diags))
    }
}

/// The scenario-file name of a server TLS stack (`rustls`, `openssl`, `none`).
pub fn server_tls_name(t: ServerTls) -> &'static str {
    validate::SERVER_TLS
        .iter()
        .find(|(_, v)| *v == t)
        .map(|(n, _)| *n)
        .expect("every stack is in the table")
}

/// Where a real proxy named in the file is missing, as diagnostics (for `validate`).
pub fn missing_proxy_diagnostics(path: &Path, text: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for kind in ProxyKind::ALL {
        let needle = format!("reverse-proxy:{}", kind.name());
        if kind.find().is_some() {
            continue;
        }
        if let Some(pos) = text.find(&needle) {
            let ctx = Ctx {
                path,
                text,
                diags: Vec::new(),
            };
            let (line, column) = ctx.at(pos..pos);
            out.push(Diagnostic {
                path: path.to_path_buf(),
                line,
                column,
                message: format!("{} is not installed on this machine", kind.name()),
                hint: Some(format!(
                    "{}; `h2lab run` skips these cells",
                    kind.install_hint()
                )),
            });
        }
    }
    out
}
