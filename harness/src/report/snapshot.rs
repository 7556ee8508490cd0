//! Where a case's snapshot lives, and comparing with it outside of insta's assertions
//! (the CLI), through insta's own snapshot API.
//!
//! Snapshots are insta `.snap` files under `scenarios/snapshots/<group>/`, one per case,
//! named by [`crate::scenario::Case::snapshot_name`]. Tests write and compare them through
//! insta (so `cargo insta review` and `INSTA_UPDATE` work as usual); `cgrepro run` only
//! reads them.

use std::path::{Path, PathBuf};

use insta::internals::TextSnapshotContents;
use insta::TextSnapshotKind;

use crate::scenario::Case;

/// The directory holding a case's snapshot.
pub fn dir(scenarios_root: &Path, case: &Case) -> PathBuf {
    scenarios_root.join("snapshots").join(case.snapshot_dir())
}

/// The `.snap` file of a case.
pub fn file(scenarios_root: &Path, case: &Case) -> PathBuf {
    dir(scenarios_root, case).join(format!("{}.snap", case.snapshot_name()))
}

/// How a rendered snapshot compares with the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    Same,
    /// No stored snapshot yet.
    New,
    /// Stored content differs; holds the stored content.
    Changed(String),
}

/// The content of a stored `.snap` file, read by insta.
pub fn stored(path: &Path) -> Option<TextSnapshotContents> {
    let snap = insta::Snapshot::from_file(path).ok()?;
    snap.contents().as_text().cloned()
}

/// Compare a rendered report with the case's stored snapshot, as insta compares them.
pub fn compare(scenarios_root: &Path, case: &Case, rendered: &str) -> Comparison {
    let Some(stored) = stored(&file(scenarios_root, case)) else {
        return Comparison::New;
    };
    let new = TextSnapshotContents::new(rendered.to_owned(), TextSnapshotKind::File);
    if stored.matches_latest(&new) {
        Comparison::Same
    } else {
        Comparison::Changed(stored.to_string())
    }
}

/// Assert the snapshot through insta (for test runners). Panics on a mismatch, as insta
/// does; honours `INSTA_UPDATE`, `CI` and `cargo insta review`.
pub fn assert(scenarios_root: &Path, case: &Case, rendered: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir(scenarios_root, case));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(&case.scenario.path);
    settings.set_omit_expression(true);
    settings.set_description(case.name.clone());
    settings.bind(|| {
        insta::assert_snapshot!(case.snapshot_name(), rendered);
    });
}
