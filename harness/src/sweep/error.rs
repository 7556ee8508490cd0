//! What can stop a sweep, or the writing of one found scenario.

use std::path::PathBuf;

/// A sweep that cannot run, or a found scenario that cannot be written. I/O errors carry
/// the path they concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
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
    #[error("cannot render a scenario document: {0}")]
    Render(#[from] toml::ser::Error),
    #[error(transparent)]
    ErrnoTable(#[from] super::plan::TableError),
    /// A document the sweep wrote did not load as a scenario.
    #[error("{0}")]
    Scenario(Box<crate::scenario::ScenarioError>),
    #[error("the document has no case")]
    NoCase,
    #[error("the baseline run failed to start: {0}")]
    BaselineFailed(String),
    #[error(
        "a sweep needs the cgroupfs model (its op log is the list of fault sites): \
         run as root with /dev/fuse, and without `[host] cgroupfs = \"tree\"`"
    )]
    NeedsModel,
    #[error("the fault alone in a scenario gives `{kind}` ({got}), not `{want}`")]
    NotReproduced {
        kind: String,
        got: String,
        want: String,
    },
}

impl SweepError {
    pub(crate) fn read(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SweepError {
        let path = path.into();
        move |source| SweepError::Read { path, source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SweepError {
        let path = path.into();
        move |source| SweepError::Write { path, source }
    }

    pub(crate) fn toml(path: impl Into<PathBuf>) -> impl FnOnce(toml::de::Error) -> SweepError {
        let path = path.into();
        move |source| SweepError::Toml { path, source }
    }
}
