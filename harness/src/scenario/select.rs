//! `--cell AXIS=GLOB` selections: which cells of a scenario's matrix a command runs
//! (`cgrepro replay`, `cgrepro sweep`).

use super::{Case, Scenario};

/// A `--cell` selection that names nothing runnable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CellError {
    #[error("--cell `{0}`: expected AXIS=VALUE, e.g. --cell target.version=0.2.9")]
    NotAxisValue(String),
    #[error("--cell `{spec}`: the scenario has no axis `{axis}` (axes: {})", axes.join(", "))]
    NoSuchAxis {
        spec: String,
        axis: String,
        axes: Vec<String>,
    },
    #[error("--cell `{spec}`: {source}")]
    BadGlob {
        spec: String,
        #[source]
        source: globset::Error,
    },
    #[error("no cell of the matrix matches the --cell selection")]
    NoMatch,
    #[error(
        "{} cells match; choose one with --cell AXIS=VALUE:\n{}",
        .0.len(),
        .0.iter().map(|n| format!("  {n}")).collect::<Vec<_>>().join("\n")
    )]
    Several(Vec<String>),
}

impl Scenario {
    /// The cells matching every `AXIS=GLOB` of `cells` (all cells when it is empty).
    pub fn select(&self, cells: &[String]) -> Result<Vec<&Case>, CellError> {
        let mut wanted = Vec::new();
        for c in cells {
            let (k, v) = c
                .split_once('=')
                .ok_or_else(|| CellError::NotAxisValue(c.clone()))?;
            if !self.axes.iter().any(|(a, _)| a == k) {
                return Err(CellError::NoSuchAxis {
                    spec: c.clone(),
                    axis: k.to_owned(),
                    axes: self.axes.iter().map(|(a, _)| a.clone()).collect(),
                });
            }
            let glob = globset::Glob::new(v)
                .map_err(|source| CellError::BadGlob {
                    spec: c.clone(),
                    source,
                })?
                .compile_matcher();
            wanted.push((k.to_owned(), glob));
        }
        let matching: Vec<&Case> = self
            .cases
            .iter()
            .filter(|case| {
                wanted
                    .iter()
                    .all(|(k, g)| case.cell.iter().any(|(a, v)| a == k && g.is_match(v)))
            })
            .collect();
        if matching.is_empty() {
            return Err(CellError::NoMatch);
        }
        Ok(matching)
    }

    /// The one cell `cells` selects.
    pub fn select_one(&self, cells: &[String]) -> Result<&Case, CellError> {
        match self.select(cells)?.as_slice() {
            [one] => Ok(one),
            many => Err(CellError::Several(
                many.iter().map(|c| c.name.clone()).collect(),
            )),
        }
    }
}
