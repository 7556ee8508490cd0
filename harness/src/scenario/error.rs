//! Errors in scenario files, rendered like rustc's: the file, line and column, the
//! offending line with a caret, the field, and a hint.
//!
//! The renderer is hand-written (30 lines) rather than annotate-snippets or miette: one
//! snippet with one label is all cgrepro needs, and the output must be byte-stable for
//! the tests that snapshot it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A problem in a scenario file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// The dotted field at fault (`host.preset`), when known.
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The source line, for the caret display: at most [`SHOWN_LINE_CHARS`] characters
    /// around the column, control characters shown as `?`.
    source_line: String,
    /// Where the caret starts in `source_line` (in characters).
    caret_at: usize,
    caret_len: usize,
}

/// How much of a long source line an error shows.
const SHOWN_LINE_CHARS: usize = 120;

impl ScenarioError {
    pub fn new(
        file: &Path,
        src: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let span = span.unwrap_or(0..0);
        let start = span.start.min(src.len());
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        let line = src[..start].matches('\n').count() + 1;
        let col = src[line_start..start].chars().count() + 1;
        let full: Vec<char> = src[line_start..line_end]
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        let caret_len = src[start..span.end.clamp(start, line_end)]
            .chars()
            .count()
            .max(1);
        // A long line (a 10 MB title): a window around the column, marked with `…`.
        let from = if full.len() <= SHOWN_LINE_CHARS || col <= SHOWN_LINE_CHARS / 2 {
            0
        } else {
            (col - 1 - SHOWN_LINE_CHARS / 4).min(full.len().saturating_sub(SHOWN_LINE_CHARS))
        };
        let to = (from + SHOWN_LINE_CHARS).min(full.len());
        let mut source_line: String = full[from..to].iter().collect();
        let mut caret_at = col - 1 - from;
        if from > 0 {
            source_line.insert(0, '…');
            caret_at += 1;
        }
        if to < full.len() {
            source_line.push('…');
        }
        let caret_len = caret_len.min(source_line.chars().count().saturating_sub(caret_at).max(1));
        ScenarioError {
            file: file.to_owned(),
            line,
            col,
            field: None,
            message: message.into(),
            hint: None,
            source_line,
            caret_at,
            caret_len,
        }
    }

    /// An error about a whole file (unreadable, empty).
    pub fn file(file: &Path, message: impl Into<String>) -> ScenarioError {
        ScenarioError::new(file, "", None, message)
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        write!(
            f,
            "  --> {}:{}:{}",
            self.file.display(),
            self.line,
            self.col
        )?;
        if !self.source_line.is_empty() {
            let n = self.line.to_string();
            let pad = " ".repeat(n.len());
            write!(f, "\n {pad} |\n {n} | {}\n {pad} | ", self.source_line)?;
            let lead: String = self
                .source_line
                .chars()
                .take(self.caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "{lead}{}", "^".repeat(self.caret_len))?;
        }
        if let Some(field) = &self.field {
            write!(f, "\n  = field: {field}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  = help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// "did you mean `x`?" from a list of candidates, when one is close enough.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A hint naming the closest candidate, or listing them all.
pub fn suggest<'a>(input: &str, what: &str, candidates: &'a [impl AsRef<str> + 'a]) -> String {
    let names: Vec<&str> = candidates.iter().map(AsRef::as_ref).collect();
    match did_you_mean(input, names.iter().copied()) {
        Some(c) => format!("did you mean `{c}`? {what}: {}", names.join(", ")),
        None => format!("{what}: {}", names.join(", ")),
    }
}
