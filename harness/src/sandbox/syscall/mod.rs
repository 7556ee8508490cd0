//! The syscall layer: a seccomp user-notification supervisor that makes the target see the
//! simulated host where bind mounts cannot (static binaries included: nothing here relies on
//! the dynamic loader).
//!
//! Lifecycle (prepare, install, pass, supervise):
//!
//! 1. In the harness, before fork: [`SyscallPlan::new`] validates the [`SimKernel`] and the
//!    faults routed to this layer ([`crate::fault::Fault`]) and compiles the BPF program ([`PreparedFilter`]). This
//!    is the only step that allocates.
//! 2. In the child, after fork and mount setup, immediately before `execve`: [`install`]
//!    (one `seccomp(2)` call; async-signal-safe) returns the listener fd, and [`send_fd`]
//!    passes it to the harness over a unix socket (`SCM_RIGHTS`) and closes it.
//!    [`install_and_send`] does both.
//! 3. In the harness: [`Supervisor::start`] receives the listener on a thread and answers
//!    notifications until every process holding the filter is gone or
//!    [`Supervisor::stop`] is called, which returns [`SupervisorStats`].
//!
//! What the filter does (x86_64 only; other syscall ABIs get `ENOSYS`):
//!
//! * `ENOSYS` straight from BPF for the syscalls the simulated kernel does not have
//!   ([`SimKernel::enosys`], from the host data's syscall table); no notification, no cost.
//! * A notification for `uname`, `statfs`, `fstatfs`, `open`, `openat`, `openat2`, `mount`,
//!   `fsopen`, plus the syscalls the faults need. The supervisor then:
//!   * `uname`: real uname with the simulated release/version/nodename;
//!   * `statfs`/`fstatfs`: the real result with `f_type` replaced when the target's path
//!     lies under a [`SimKernel::statfs_magic`] prefix (longest wins);
//!   * `open*`: read-only opens of simulated /proc files (any spelling: `/proc/self`,
//!     `/proc/thread-self`, `/proc/<pid>`, `/proc/<pid>/task/<tid>`, relative to a
//!     directory fd, a procfs mounted elsewhere or detached) get an fd of the simulated
//!     file (`SECCOMP_IOCTL_NOTIF_ADDFD`);
//!   * `mount`/`fsopen` of `cgroup`/`cgroup2`: `EPERM` (containment);
//!   * faults: errno and/or delay by operation, path glob and call count or seeded chance.
//!   * everything else continues in the kernel unchanged.
//!
//! # Integration (what the sandbox does)
//!
//! ```text
//! let plan = Arc::new(SyscallPlan::new(&sim, &faults)?);        // before fork
//! let (parent, child) = UnixStream::pair()?;
//! let sup = Supervisor::start(parent.into(), plan.clone());      // before or after spawn
//! // child, last thing before execve:  install_and_send(plan.filter(), child_fd)
//! drop(child);                       // in the harness, right after fork: else a child that
//!                                    // dies early is only noticed at recv_timeout
//! child.wait(); sup.wait_hangup(..); let stats = sup.stop();
//! ```
//!
//! The filter survives `fork`, `clone`, threads and `execve`, so every descendant of the
//! target (daemons that double-fork or re-exec themselves included) is supervised until
//! it exits; [`Supervisor::stop`] closes the listener, after which the calls the filter
//! traps fail with `ENOSYS` in any process still alive (the sandbox kills its pid
//! namespace first).
//!
//! # /proc redirection: what is covered
//!
//! * Every process and thread of the target: `/proc/self/X`, `/proc/thread-self/X`,
//!   `/proc/<pid>/X`, `/proc/<pid>/task/<tid>/X`, `/proc/self/task/<tid>/X`. A `<pid>`
//!   counts as the target's if the target has its own pid namespace (and the pid exists
//!   in its /proc), or else if the pid or an ancestor has trapped a syscall (or sent the
//!   listener). Other pids get the real file.
//! * Relative opens: against the cwd or any directory fd (`openat(dirfd_of("/proc/self"),
//!   "mountinfo")`), `openat2` with `RESOLVE_IN_ROOT`.
//! * A procfs mounted anywhere (found in the target's mountinfo) and a detached procfs
//!   (`fsopen`/`fsmount`, as libpathrs makes one; found by the dirfd's `mnt_id`).
//! * `/proc/mounts` (a symlink to `self/mounts`) when `/proc/self/mounts` is simulated.
//! * Read-only opens only (`O_RDONLY` without `O_CREAT`/`O_TRUNC`/`O_DIRECTORY`);
//!   writes (`uid_map`!) reach the real file. `O_CLOEXEC`, `O_NONBLOCK`, `O_PATH` are kept.
//! * `fstatfs` of a redirected fd reports procfs (`PROC_SUPER_MAGIC`).
//!
//! # Known gaps
//!
//! * TOCTOU: the path and fstype strings are read from the target's memory and the call
//!   then continues in the kernel, which reads them again; a *second thread* of the target
//!   could change them in between. Fine for buggy code, not a security boundary against
//!   hostile code (the sandbox's detached real cgroup mounts are).
//! * A redirected fd is a regular file on disk: `readlink /proc/self/fd/N` shows the disk
//!   path, `fstat` shows its size and inode, `statx(STATX_MNT_ID)` its mount (libpathrs'
//!   mount-id check on procfs files would notice).
//! * Symlinks are not followed when matching /proc paths or fault globs (lexical `..`);
//!   statfs prefixes are matched on the canonical path (symlinks followed).
//! * The target cannot create a seccomp listener of its own (`EBUSY`: one listener per
//!   filter chain), e.g. runc's seccomp-notify feature for containers.
//! * `uname` reports the target's own nodename/domainname by entering its UTS namespace
//!   per call when it differs from the supervisor's (unless [`SimKernel::nodename`] is
//!   set), which costs one `stat` of `/proc/<pid>/ns/uts` per `uname`.
//! * Faults on `read`/`write` trap every read/write of the target (about 8-10 µs each on
//!   the project's VM); the fd's path comes from `/proc/<pid>/fd/<n>`.

mod filter;
mod joined;
pub mod nr;
mod procpath;
mod remote;
mod supervisor;

use std::path::PathBuf;

/// The faults routed to the syscall layer (`crate::fault::route`); the name stays for the
/// sandbox's session code until its rewrite (issue 12) says `Fault`.
pub use crate::fault::Fault as SyscallFault;
pub use crate::fault::{errno_name, parse_errno, FaultHit, Op, When};

use crate::fault::engine::Rules;
use crate::fault::Fault;
pub use filter::{install, install_and_send, send_fd, PreparedFilter};
pub use supervisor::{
    CgroupViewOf, EndReason, ForkGate, ProcCgroup, Supervisor, SupervisorOptions, SupervisorStats,
};

use procpath::ProcTemplates;

/// statfs magic numbers the host model uses.
pub mod magic {
    pub const CGROUP2: i64 = 0x6367_7270;
    pub const CGROUP1: i64 = 0x0027_e0eb;
    pub const TMPFS: i64 = 0x0102_1994;
    pub const PROC: i64 = 0x9fa0;
    pub const FUSE: i64 = 0x6573_5546;
}

/// What the simulated kernel looks like at the syscall level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimKernel {
    /// `uname -r`, e.g. "5.10.0-28-amd64".
    pub release: String,
    /// `uname -v`, e.g. "#1 SMP Debian 5.10.209-2 (2024-01-31)".
    pub version: String,
    /// `uname -n`; the real one when `None`.
    pub nodename: Option<String>,
    /// statfs `f_type` by path prefix as the target sees it (after symlinks); the longest
    /// matching prefix wins. E.g. `("/sys/fs/cgroup", 0x63677270)` on v2.
    pub statfs_magic: Vec<(PathBuf, i64)>,
    /// /proc files served from disk: (path template, file). Templates are `/proc/...`
    /// paths; `/proc/self/X` (or `/proc/thread-self/X`) stands for X of any process or
    /// thread of the target, anything else is a global file (`/proc/cgroups`).
    pub proc_files: Vec<(String, PathBuf)>,
    /// Syscall names that fail with ENOSYS (newer than the simulated kernel).
    pub enosys: Vec<String>,
    /// Trap fork, vfork, clone and clone3 for a [`ForkGate`] (the cgroupfs model's
    /// `pids.max`); each then costs a round trip to the supervisor.
    pub gate_forks: bool,
}

/// Errors preparing the syscall layer.
#[derive(Debug, thiserror::Error)]
pub enum SyscallError {
    #[error("unknown syscall `{0}` (x86_64)")]
    UnknownSyscall(String),
    #[error("bad /proc template `{template}`: {why}")]
    BadProcTemplate { template: String, why: String },
    #[error("simulated file for {template}: {path}: {source}")]
    ProcFile {
        template: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fault(#[from] crate::fault::FaultError),
    #[error("the filter has {0} instructions, more than BPF allows (4096)")]
    FilterTooLong(usize),
    #[error("the syscall layer supports x86_64 only")]
    UnsupportedArch,
}

/// Everything the supervisor needs, prepared before fork.
#[derive(Debug)]
pub struct SyscallPlan {
    pub(crate) kernel: SimKernel,
    /// The faults routed to this layer, compiled (each supervisor counts on a copy).
    pub(crate) faults: Rules,
    pub(crate) templates: ProcTemplates,
    pub(crate) filter: PreparedFilter,
    /// Syscall numbers the filter sends to the supervisor.
    pub(crate) notified: Vec<u32>,
}

/// Syscalls the supervisor handles itself (when the plan gives it something to do; the
/// cgroupfs mount refusal is always on).
pub const HANDLED: &[&str] = &[
    "uname", "statfs", "fstatfs", "open", "openat", "openat2", "mount", "fsopen",
];

impl SyscallPlan {
    /// Validate the kernel model and faults and build the filter.
    pub fn new(sim: &SimKernel, faults: &[Fault]) -> Result<SyscallPlan, SyscallError> {
        let templates = ProcTemplates::new(&sim.proc_files)?;
        for (template, path) in &sim.proc_files {
            std::fs::metadata(path).map_err(|source| SyscallError::ProcFile {
                template: template.clone(),
                path: path.clone(),
                source,
            })?;
        }
        let mut enosys = Vec::new();
        for name in &sim.enosys {
            let nr = nr::number(name).ok_or_else(|| SyscallError::UnknownSyscall(name.clone()))?;
            if !enosys.contains(&nr) {
                enosys.push(nr);
            }
        }
        let compiled = Rules::new(faults, None)?;
        // Only trap what the plan needs: every trapped call costs a round trip.
        let mut wanted: Vec<&str> = vec!["mount", "fsopen"];
        if !sim.release.is_empty() || !sim.version.is_empty() || sim.nodename.is_some() {
            wanted.push("uname");
        }
        if !sim.statfs_magic.is_empty() {
            wanted.extend(["statfs", "fstatfs"]);
        }
        if !sim.proc_files.is_empty() {
            // fstatfs: a redirected /proc file says it is on procfs.
            wanted.extend(["open", "openat", "openat2", "fstatfs"]);
        }
        if sim.gate_forks {
            wanted.extend(["fork", "vfork", "clone", "clone3"]);
        }
        let mut notified: Vec<u32> = Vec::new();
        for name in wanted {
            let nr = nr::number(name).expect("known syscall");
            if !notified.contains(&nr) {
                notified.push(nr);
            }
        }
        for f in compiled.faults() {
            for name in f.op.syscalls() {
                let nr = nr::number(name).expect("known syscall");
                if !notified.contains(&nr) {
                    notified.push(nr);
                }
            }
        }
        // A syscall that does not exist on the simulated kernel never reaches the
        // supervisor: BPF answers ENOSYS first.
        notified.retain(|nr| !enosys.contains(nr));
        let filter = PreparedFilter::build(&enosys, &notified)?;
        Ok(SyscallPlan {
            kernel: sim.clone(),
            faults: compiled,
            templates,
            filter,
            notified,
        })
    }

    /// The prepared filter program, ready to [`install`] without allocating.
    pub fn filter(&self) -> &PreparedFilter {
        &self.filter
    }

    /// Names of the syscalls that are sent to the supervisor.
    pub fn notified_syscalls(&self) -> Vec<&'static str> {
        self.notified.iter().filter_map(|&n| nr::name(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syscall_of_the_kernel_table_has_an_x86_64_number() {
        // The ENOSYS list comes from data (fixtures/kernels/syscalls.toml, via
        // HostData::syscalls_newer_than); the filter needs each name's number.
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let data = crate::host::HostData::load(&fixtures).expect("host data");
        let host = data
            .resolve(&crate::host::HostSpec {
                preset: Some("centos-7".into()),
                ..Default::default()
            })
            .unwrap();
        let newer = data.syscalls_newer_than(&host);
        assert!(newer.iter().any(|n| n == "openat2") && newer.iter().any(|n| n == "getrandom"));
        for name in &newer {
            assert!(nr::number(name).is_some(), "{name}");
        }
    }
}
