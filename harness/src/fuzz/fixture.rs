//! Disagreement fixtures (`fixtures/kernels/disagreements/*.toml`): a minimised sequence on
//! which the model and a real kernel gave different results, with both results, the kernel
//! it was seen on and the command that found it. `status = "open"` while the model still
//! differs (the test checks it still does, so a fix is noticed and recorded), `"fixed"`
//! once the model gives the kernel's result (the test then keeps it so).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Op;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disagreement {
    /// What it shows, one line.
    pub title: String,
    /// `open` or `fixed`.
    pub status: String,
    /// Lane series (`6.1`, `6.12`) and the release booted.
    pub series: String,
    pub release: String,
    /// `v1`, `hybrid`, `v2`.
    pub mode: String,
    /// How it was found.
    pub found_by: String,
    /// Result of the last op on the real kernel, and on the model when found (normalised).
    pub kernel: String,
    pub model: String,
    pub op: Vec<Op>,
}

/// A disagreement fixture that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

impl Disagreement {
    pub fn load_all(dir: &Path) -> Result<Vec<(PathBuf, Disagreement)>, FixtureError> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(_) => return Ok(Vec::new()),
        };
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let text = match std::fs::read_to_string(&p) {
                    Ok(t) => t,
                    Err(source) => return Err(FixtureError::Read { path: p, source }),
                };
                let d: Disagreement = match toml::from_str(&text) {
                    Ok(d) => d,
                    Err(source) => return Err(FixtureError::Toml { path: p, source }),
                };
                Ok((p, d))
            })
            .collect()
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a disagreement serialises")
    }
}
