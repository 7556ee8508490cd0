//! Ctrl-C and SIGTERM for the harness itself.
//!
//! [`install`] registers (with signal-hook) a self-pipe that becomes readable on the first
//! SIGINT or SIGTERM and stays readable: every running case polls it, kills its sandbox
//! and reports what it saw so far; no new case starts ([`interrupted`]). A second signal
//! ends the harness at once (signal-hook's conditional shutdown), which still takes every
//! sandbox down with it: init dies of its parent-death signal and its PID namespace with it.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

struct Interrupt {
    read: UnixStream,
    write: UnixStream,
    flag: Arc<AtomicBool>,
}

static INTERRUPT: OnceLock<Interrupt> = OnceLock::new();

/// Install the handlers (idempotent). Call from a binary's `main`, never from a library user.
pub fn install() -> std::io::Result<()> {
    if INTERRUPT.get().is_some() {
        return Ok(());
    }
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled: exit now.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))?;
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
        signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
    }
    let _ = INTERRUPT.set(Interrupt { read, write, flag });
    Ok(())
}

/// Has the harness been asked to stop?
pub fn interrupted() -> bool {
    INTERRUPT
        .get()
        .is_some_and(|i| i.flag.load(Ordering::SeqCst))
}

/// Stop as a Ctrl-C would (running cases are killed, no new one starts), from the harness
/// itself: the CLI when its output is gone (a closed pipe).
pub fn request() {
    if let Some(i) = INTERRUPT.get() {
        i.flag.store(true, Ordering::SeqCst);
        let _ = std::io::Write::write(&mut &i.write, &[1]);
    }
}

/// The fd to poll (readable once interrupted), if handlers are installed.
pub(crate) fn poll_fd() -> Option<RawFd> {
    INTERRUPT.get().map(|i| i.read.as_raw_fd())
}
