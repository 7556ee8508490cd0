//! `cgrepro capture --lane SERIES`: the same capture, of a real Debian kernel booted under
//! QEMU by the real-kernel lane (`crate::lane`). The guest's `/init` mounts cgroupfs in the
//! layout of a preset, stages what that preset's systemd does at boot (the controllers it
//! enables at the v2 root, its top-level units, pid 1 in init.scope), then records /proc,
//! /sys and /sys/fs/cgroup; [`super::capture`] reads that recording as it reads a node.
//!
//! The staging comes from the preset's generated tree (the model's claim about systemd);
//! every file, mode and value the kernel then shows is the kernel's own — which is what
//! `--compare PRESET` holds the preset's tree against.

use std::path::Path;
use std::time::Duration;

use super::{CaptureError, Options, Recorded};
use crate::fuzz::Op;
use crate::host::tree::{topology, Layer};
use crate::host::{Host, HostData};
use crate::lane::{self, CaptureJob, DumpRoot, Job, Layout};

/// Boot `series` (from the lane cache) in the layout of `like`, staged as its systemd
/// would, and record what the capture reads. Returns the recording and the kernel's
/// package line.
pub fn record(
    root: &Path,
    data: &HostData,
    series: &str,
    like: &Host,
    work: &Path,
) -> Result<(Recorded, String), CaptureError> {
    let lane_err =
        |e: lane::LaneError| CaptureError::NoCgroup(format!("the real-kernel lane: {e}"));
    let kernel = lane::kernels::find(&lane::kernels::cache_dir(), series).map_err(lane_err)?;
    let topo = topology(like, data);
    let mut prologue = Vec::new();
    // Controllers systemd enables at the v2 root, one write each as it does.
    for g in topo.groups.iter().filter(|g| g.path.is_empty()) {
        if g.layer == Layer::V2 {
            for c in &g.subtree {
                prologue.push(Op::new(
                    "write",
                    join(&g.hierarchy, "cgroup.subtree_control"),
                    Some(format!("+{c}")),
                ));
            }
        }
    }
    // Its units, and pid 1 (the guest's /init, as systemd is on a node) in init.scope.
    for g in topo.groups.iter().filter(|g| !g.path.is_empty()) {
        prologue.push(Op::new("mkdir", join(&g.hierarchy, &g.path), None));
    }
    for g in topo.groups.iter().filter(|g| !g.path.is_empty()) {
        if g.procs.lines().any(|l| l.trim() == "1") {
            prologue.push(Op::new(
                "write",
                join(&g.hierarchy, &format!("{}/cgroup.procs", g.path)),
                Some("1".into()),
            ));
        }
    }
    let job = CaptureJob {
        job: Job {
            layout: Layout::of(&topo),
            prologue,
            sequences: Vec::new(),
            command: None,
            files: Vec::new(),
        },
        dump: [
            ("/proc/sys/kernel/osrelease", 0),
            ("/proc/sys/kernel/hostname", 0),
            ("/proc/version", 0),
            ("/proc/self/mountinfo", 0),
            ("/proc/cgroups", 0),
            // The listing of /sys/fs gives /sys/fs/cgroup's own mode.
            ("/sys/fs", 0),
            ("/sys/fs/cgroup", 2),
            ("/sys/kernel/mm/hugepages", 0),
            ("/sys/devices/system/cpu/online", 0),
            ("/sys/devices/system/node/online", 0),
            ("/dev", 0),
        ]
        .into_iter()
        .map(|(p, depth)| DumpRoot {
            path: p.into(),
            depth,
        })
        .collect(),
    };
    let init = lane::boot::payload(root).map_err(lane_err)?;
    let boot =
        lane::boot(&kernel, &init, &job, work, Duration::from_secs(300)).map_err(lane_err)?;
    if let Some(bad) = boot.prologue.iter().find(|r| !r.starts_with("ok")) {
        return Err(CaptureError::NoCgroup(format!(
            "staging the preset's systemd on {} failed: {bad} (prologue: {:?})",
            kernel.release, boot.prologue
        )));
    }
    let rec = boot.dump.ok_or_else(|| {
        CaptureError::NoCgroup(format!("the guest ({}) recorded nothing", kernel.release))
    })?;
    Ok((rec, format!("{} ({})", kernel.release, kernel.source)))
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a}/{b}")
    }
}

/// Options for a lane capture: its `source` line says what was booted and staged.
pub fn options(series: &str, kernel: &str, like: &Host) -> Options {
    Options {
        paths: Vec::new(),
        no_children: false,
        how: format!(
            "cgrepro capture --lane {series}: Debian kernel {kernel} booted under QEMU (TCG) by the real-kernel lane, no systemd; the boot effects of {}'s systemd staged by the guest's /init (root subtree_control, top-level units, pid 1 in init.scope)",
            like.preset.as_deref().unwrap_or("the host")
        ),
    }
}
