//! The sysfs views of a host: the files outside /sys/fs/cgroup and /proc that decide what a
//! library does — `/sys/kernel/mm/hugepages` (which `hugetlb.<size>.*` files cgroups-rs
//! and youki look for) and `/sys/devices/system/cpu/online` — written from
//! `[sysfs]` of `fixtures/kernels/procfs.toml` and bound over the machine's own in each
//! case, so a target sees the simulated machine's page sizes and CPUs, not this one's.

use std::fs;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Path, PathBuf};

use super::data::SysfsData;
use super::HostError;

/// The files of one `hugepages-<size>kB` directory (mm/hugetlb.c, hstate_attrs) and their
/// modes; none reads anything but 0 on a machine with no pages reserved.
const HSTATE_FILES: [(&str, u32); 6] = [
    ("free_hugepages", 0o444),
    ("nr_hugepages", 0o644),
    ("nr_hugepages_mempolicy", 0o644),
    ("nr_overcommit_hugepages", 0o644),
    ("resv_hugepages", 0o444),
    ("surplus_hugepages", 0o444),
];

/// Write the views under `<dir>/sys/`; returns (path the target sees, file or directory on
/// disk) for each.
pub fn write(
    data: &SysfsData,
    dir: &Path,
    owner: (u32, u32),
) -> Result<Vec<(PathBuf, PathBuf)>, HostError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| HostError::Io { path, source }
    };
    let root = dir.join("sys");
    let pages = root.join("hugepages");
    fs::create_dir_all(&pages).map_err(io(&pages))?;
    let mut written = vec![root.clone(), pages.clone()];
    for kb in &data.hugepage_sizes_kb {
        let d = pages.join(format!("hugepages-{kb}kB"));
        fs::create_dir(&d).map_err(io(&d))?;
        written.push(d.clone());
        for (name, mode) in HSTATE_FILES {
            let f = d.join(name);
            fs::write(&f, "0\n").map_err(io(&f))?;
            fs::set_permissions(&f, fs::Permissions::from_mode(mode)).map_err(io(&f))?;
            written.push(f);
        }
    }
    let online = root.join("cpu_online");
    fs::write(&online, format!("{}\n", data.cpu_online.trim())).map_err(io(&online))?;
    fs::set_permissions(&online, fs::Permissions::from_mode(0o444)).map_err(io(&online))?;
    written.push(online.clone());
    for p in &written {
        lchown(p, Some(owner.0), Some(owner.1)).map_err(io(p))?;
    }
    Ok(vec![
        (PathBuf::from("/sys/kernel/mm/hugepages"), pages),
        (PathBuf::from("/sys/devices/system/cpu/online"), online),
    ])
}
