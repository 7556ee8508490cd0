//! cgrepro: reproduce crashes of container resource-controller code on simulated hosts.
//!
//! The pipeline, one module per stage; each imports only the stages before it and the
//! shared vocabulary below them all:
//!
//! * [`fault`] and [`evidence`] — the vocabulary: what a scenario can ask the simulated
//!   kernel to get wrong (faults, errno names), and what a case produces (exit, output,
//!   cgroupfs effects, what the syscall layer did). They depend on nothing else here.
//! * [`scenario`] — scenario files: parse, validate (file:line:col errors), expand the
//!   matrix into [`scenario::Case`]s, select cells.
//! * [`host`] — the host model: kernel feature table, cgroup layouts, distro presets, and
//!   the generated cgroupfs tree and /proc views of a host.
//! * [`sandbox`] — making a subprocess see that host: namespaces, mounts, the cgroupfs
//!   model over FUSE, the seccomp syscall layer, process supervision, cleanup.
//! * [`subject`] — how the code under test is driven: drivers (the driver protocol),
//!   plain commands, and containerd shims (`subject::shim`: the shim client, Kata).
//! * [`outcome`] — classification of what happened (the closed [`outcome::Outcome`] type),
//!   signatures and normalisation.
//! * [`report`] — snapshots, matrix tables and expectation checks, all rendered from a
//!   [`report::Report`].
//! * [`systemd`] — the simulated systemd of a host: its D-Bus manager, versioned, making
//!   its units' cgroups in the case's cgroupfs.
//! * [`engine`] — the stages tied together: what the CLI and the test runner share;
//!   [`pool`] runs cases on worker threads.
//! * [`sweep`] — fault sweeps: every plausible kernel failure at every cgroupfs op of a
//!   case, judged, with minimised scenarios for the bugs.
//! * [`cli`] — the `cgrepro` subcommands.
//! * [`capture`], [`import`], [`bisect`] — from a bug report to a replayable case: a real
//!   node's host file, a scenario draft from a report's text, the boundary on an axis.
//! * [`lane`] and [`fuzz`] — the real-kernel lane (real kernels under QEMU) and the
//!   differential op fuzzing that judges the cgroupfs model against it.

pub mod bisect;
pub mod capture;
pub mod cli;
pub mod engine;
pub mod evidence;
pub mod fault;
pub mod fuzz;
pub mod host;
pub mod import;
pub mod lane;
pub mod outcome;
pub mod pool;
pub mod report;
pub mod sandbox;
pub mod scenario;
pub mod subject;
pub mod sweep;
pub mod systemd;
