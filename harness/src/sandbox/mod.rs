//! (in progress)
pub mod syscall;
