//! A case's cgroupfs effects ([`Effects`]), read from its overlay upper layer.
//!
//! Everything the target changed under /sys/fs/cgroup is in the upper layer: new
//! directories (groups created), files written (copied up, with their final content),
//! whiteouts (files or groups removed), opaque directories (removed and created again).
//! Paths are relative to /sys/fs/cgroup, sorted, so the list is stable.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

pub use crate::evidence::Effects;

const CONTENT_LIMIT: usize = 512;

impl Effects {
    /// Compare `upper` with `lower` (the host's tree).
    pub fn diff(lower: &Path, upper: &Path) -> Effects {
        let mut e = Effects::default();
        walk(lower, upper, "", &mut e);
        e
    }
}

fn walk(lower: &Path, upper: &Path, rel: &str, e: &mut Effects) {
    let Ok(rd) = fs::read_dir(upper) else { return };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|d| d.file_name());
    for ent in entries {
        let name = ent.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let Ok(ft) = ent.file_type() else { continue };
        let lower_path = lower.join(&name);
        if ft.is_char_device() {
            // overlayfs whiteout: 0/0 character device.
            e.removed.push(path);
        } else if ft.is_dir() {
            if !lower_path.is_dir() {
                e.created.push(path.clone());
            }
            walk(&lower_path, &ent.path(), &path, e);
        } else if ft.is_file() {
            let content = fs::read(ent.path()).unwrap_or_default();
            let mut text =
                String::from_utf8_lossy(&content[..content.len().min(CONTENT_LIMIT)]).into_owned();
            if content.len() > CONTENT_LIMIT {
                text.push_str(&format!("… ({} bytes)", content.len()));
            }
            if text.ends_with('\n') {
                text.pop();
            }
            e.written.insert(path, text);
        } else if ft.is_symlink() && fs::symlink_metadata(&lower_path).is_err() {
            e.created.push(path);
        }
    }
}
