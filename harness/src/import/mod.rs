//! `cgrepro import REPORT`: a bug report's text (an issue body, a containerd / kubelet /
//! journal log, kata-collect-data output, a Go or Rust panic, or a host file `cgrepro
//! capture` wrote) becomes a scenario draft.
//!
//! * [`extract`]: what the text says, each value with the line that says it (host preset
//!   rules are data: `fixtures/import/hosts.toml`).
//! * [`draft`]: the scenario TOML. Every value is marked: `# report: "<quoted line>"`
//!   (read from the report), `# GUESSED: why` (chosen by the importer so the draft runs),
//!   or left as a commented `# TODO:` line (the report does not say; nothing is filled in
//!   silently).
//!
//! The CLI (`cli/import.rs`) then runs the draft and prints the report's crash beside the
//! replay's. Input is read defensively ([`read_report`]): size-capped, text only.

pub mod draft;
pub mod extract;

use std::path::{Path, PathBuf};

pub use draft::Draft;
pub use extract::{Fact, Facts};

/// A report larger than this is refused (issue bodies and logs are far smaller; cut the
/// log to the failing minute).
pub const MAX_REPORT_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read the report: {why}")]
    Read { path: PathBuf, why: String },
    #[error("{path}: {bytes} bytes is more than the 4 MiB a report may have: cut the log to the lines around the failure")]
    TooBig { path: PathBuf, bytes: u64 },
    #[error("{path}: not text ({why}): import reads issue bodies, logs and panics as UTF-8 text")]
    Binary { path: PathBuf, why: String },
    #[error("{path}: the report names no code under test (no Kata shim, cgroups-rs or youki): the draft has a TODO [target] and cannot run")]
    NoTarget { path: PathBuf },
    #[error("fixtures/import/hosts.toml: {0}")]
    Rules(String),
    #[error("cannot write the draft to {path}: {why}")]
    Write { path: PathBuf, why: String },
}

/// Read a report: a regular file, at most [`MAX_REPORT_BYTES`], UTF-8 without NUL bytes.
pub fn read_report(path: &Path) -> Result<String, ImportError> {
    let meta = std::fs::metadata(path).map_err(|e| ImportError::Read {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(ImportError::Read {
            path: path.to_owned(),
            why: "not a regular file".into(),
        });
    }
    if meta.len() > MAX_REPORT_BYTES {
        return Err(ImportError::TooBig {
            path: path.to_owned(),
            bytes: meta.len(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| ImportError::Read {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        return Err(ImportError::Binary {
            path: path.to_owned(),
            why: format!("a NUL byte at offset {i}"),
        });
    }
    String::from_utf8(bytes).map_err(|e| ImportError::Binary {
        path: path.to_owned(),
        why: format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })
}

/// The host rules of `fixtures/import/hosts.toml`.
pub fn host_rules(fixtures: &Path) -> Result<Vec<extract::HostRule>, ImportError> {
    let path = fixtures.join("import/hosts.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| ImportError::Rules(e.to_string()))?;
    let rules: extract::HostRules =
        toml::from_str(&text).map_err(|e| ImportError::Rules(e.to_string()))?;
    for r in &rules.rule {
        regex::Regex::new(&format!("(?i){}", r.regex))
            .map_err(|e| ImportError::Rules(format!("rule for {}: {e}", r.preset)))?;
    }
    Ok(rules.rule)
}

/// Whether the text is a host file (`cgrepro capture` output) rather than a report.
pub fn is_host_file(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("schema") && l.contains(crate::host::captured::SCHEMA))
}

/// A safe file stem for the draft: the report file's stem, letters, digits, `-`, `_`, `.`.
pub fn draft_stem(report: &Path) -> String {
    let stem = report
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches(['.', '-']).to_owned();
    if s.is_empty() {
        "report".into()
    } else {
        s
    }
}
