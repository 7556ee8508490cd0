//! cgrepro: reproduce crashes of container resource-controller code on simulated hosts.
//!
//! The pipeline, one module per stage:
//!
//! * [`scenario`] — scenario files: parse, validate (file:line:col errors), expand the
//!   matrix into [`scenario::Case`]s.
//! * [`host`] — the host model: kernel feature table, cgroup layouts, distro presets, and
//!   the generated cgroupfs tree and /proc views of a host.
//! * [`sandbox`] — making a subprocess see that host: namespaces, mounts, process
//!   supervision, cleanup.
//! * [`subject`] — how the code under test is driven: the driver protocol and plain commands.
//! * [`outcome`] — classification of what happened (the closed [`outcome::Outcome`] type),
//!   signatures and normalisation.
//! * [`report`] — snapshots, matrix tables and expectation checks, all rendered from a
//!   [`report::Report`].
//! * [`systemd`] — the simulated systemd of a host: its D-Bus manager, versioned, making
//!   its units' cgroups in the case's cgroupfs.
//! * [`engine`] — the stages tied together: what the CLI and the test runner share.
//! * [`sweep`] — fault sweeps: every plausible kernel failure at every cgroupfs op of a
//!   case, judged, with minimised scenarios for the bugs.
//! * [`cli`] — the `cgrepro` subcommands.
//! * [`lane`] and [`fuzz`] — the real-kernel lane (real kernels under QEMU) and the
//!   differential op fuzzing that judges the cgroupfs model against it.

pub mod cli;
pub mod engine;
pub mod fuzz;
pub mod host;
pub mod lane;
pub mod outcome;
pub mod pool;
pub mod report;
pub mod sandbox;
pub mod scenario;
pub mod subject;
pub mod sweep;
pub mod systemd;
