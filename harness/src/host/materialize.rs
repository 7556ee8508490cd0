//! Writing a [`Plan`] to disk: `<dir>/tree/` (the cgroupfs as the target sees it at
//! /sys/fs/cgroup) and `<dir>/proc/` (the /proc views), with the kernel's modes and the
//! sandbox root as owner. Only ever writes below `dir`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{lchown, symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::procfs::VIEWS;
use super::tree::{Node, Plan};
use super::{HostError, Layout};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |source| HostError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<(), HostError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(content.as_bytes()).map_err(io(path))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(path))
}

pub fn write(plan: &Plan, dir: &Path, owner: (u32, u32)) -> Result<Layout, HostError> {
    let tree = dir.join("tree");
    let proc_dir = dir.join("proc");
    fs::create_dir(&tree).map_err(io(&tree))?;
    fs::create_dir(&proc_dir).map_err(io(&proc_dir))?;
    let mut dirs: Vec<(PathBuf, u32)> = vec![(tree.clone(), plan.root_mode)];
    let mut written: Vec<PathBuf> = Vec::with_capacity(plan.tree.len() + VIEWS.len() + 2);
    for (rel, node) in &plan.tree {
        let path = tree.join(rel);
        match node {
            Node::Dir { mode } => {
                fs::create_dir(&path).map_err(io(&path))?;
                dirs.push((path.clone(), *mode));
            }
            Node::File { mode, content } => write_file(&path, content, *mode)?,
            Node::Symlink { target } => symlink(target, &path).map_err(io(&path))?,
        }
        written.push(path);
    }
    let mut proc_views = Vec::new();
    for (target, name) in VIEWS {
        if let Some(content) = plan.proc.get(target) {
            let path = proc_dir.join(name);
            write_file(&path, content, 0o444)?;
            proc_views.push((PathBuf::from(target), path.clone()));
            written.push(path);
        }
    }

    let meta = fs::metadata(&tree).map_err(io(&tree))?;
    if (meta.uid(), meta.gid()) != owner {
        written.push(tree.clone());
        written.push(proc_dir.clone());
        for path in &written {
            lchown(path, Some(owner.0), Some(owner.1)).map_err(io(path))?;
        }
    }
    // Directory modes last (deepest first): cgroupfs roots are r-x only.
    for (path, mode) in dirs.iter().rev() {
        fs::set_permissions(path, fs::Permissions::from_mode(*mode)).map_err(io(path))?;
    }
    Ok(Layout {
        tree,
        proc_views,
        sys_views: Vec::new(),
    })
}
