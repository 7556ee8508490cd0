//! A case's cgroupfs effects: what the target changed under /sys/fs/cgroup.
//!
//! The sandbox fills it (from the overlay upper layer with the plain tree, see
//! `sandbox::effects`; from the model's final state with the cgroupfs model). Paths are
//! relative to /sys/fs/cgroup, sorted, so the list is stable.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Effects {
    /// Directories that did not exist on the host (cgroups created).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// Files written, with their content afterwards (trimmed of one trailing newline).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub written: BTreeMap<String, String>,
    /// Files and directories removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.written.is_empty() && self.removed.is_empty()
    }
}
