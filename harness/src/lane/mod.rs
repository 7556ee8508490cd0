//! The real-kernel lane: real Debian kernels booted under QEMU (TCG) with a small initramfs
//! whose `/init` (the static `cgrepro-lane-init`, fixtures/lane) mounts cgroupfs in the
//! layout of a simulated host, runs op sequences with raw syscalls and reports each result
//! over the guest's second serial port. What the model is judged against.
//!
//! * [`kernels`]: the kernel cache (`ci/kernel-lane.sh` fills it; nothing is committed) and
//!   the simulated host matching a kernel series × cgroup mode (`fixtures/kernels/lane.toml`).
//! * [`boot`]: the initramfs (newc cpio, the `cpio` crate) and one QEMU boot.
//! * [`command`]: a program run in the guest (the peer suite), with what it needs.

pub mod boot;
pub mod command;
pub mod kernels;

use std::path::PathBuf;

pub use boot::{boot, Boot, CaptureJob, DumpRoot, Job, Layout, Res, Sequence};
pub use kernels::{Kernel, LaneHost};

/// Why the lane could not run.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("no {series} kernel in the lane cache {cache}: run `bash ci/kernel-lane.sh {series}` (cached kernels: {have})")]
    NoKernel {
        series: String,
        cache: PathBuf,
        have: String,
    },
    #[error("{0} not found: install qemu-system-x86 (`bash ci/kernel-lane.sh`)")]
    NoQemu(String),
    #[error("building the lane's /init failed: {0}")]
    Payload(String),
    #[error("{file}: {msg}")]
    Data { file: PathBuf, msg: String },
    #[error("the guest did not finish within {secs} s (serial output in {log})")]
    Timeout { secs: u64, log: PathBuf },
    #[error("the guest reported: {0}")]
    Guest(String),
    #[error("{what}: {err}")]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
    #[error("the simulated host for the lane: {0}")]
    Host(#[from] crate::host::HostError),
}

impl LaneError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaneError {
        let what = what.into();
        move |err| LaneError::Io { what, err }
    }
}
