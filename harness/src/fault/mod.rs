//! The fault vocabulary: what a scenario can ask the simulated kernel to get wrong, and
//! the errno names every layer prints.
//!
//! Scenario parsing produces these values, the sweep generates them, the sandbox
//! realises them (the syscall layer in `sandbox::syscall`, the cgroupfs model in
//! `sandbox::cgroupfs`) and the report prints them. This module depends on nothing else in
//! the crate, so the flow scenario → host → sandbox → outcome → report stays one-way.
//!
//! * [`syscall`]: [`SyscallFault`] (errno and/or delay by [`Op`], path glob and [`When`])
//!   and the [`FaultHit`]s the syscall layer reports.
//! * [`model`]: [`ModelFault`], the cgroupfs model's faults (short writes, corrupted reads
//!   besides errno and delay).
//! * [`errno`]: the errno table ([`parse_errno`], [`errno_name`], [`errno_label`]).

pub mod errno;
pub mod model;
pub mod syscall;

pub use errno::{errno_label, errno_name, parse_errno};
pub use model::{FaultAction, FaultOp, FaultWhen, ModelFault};
pub use syscall::{FaultHit, Op, SyscallFault, When};

/// A fault that cannot be stated: an unknown op or errno, a bad glob or `when`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    #[error("unknown errno `{0}`: expected a name like EINVAL or ENOSPC, or a number")]
    UnknownErrno(String),
    #[error("fault: {0}")]
    Bad(String),
}
