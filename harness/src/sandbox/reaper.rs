//! Deferred teardown. When a case's init exits, the kernel still has to take down its
//! namespaces (mounts, the PID namespace) before init can be reaped — about 0.2 ms that
//! nobody needs to wait for. The reaper thread does the `waitpid` and then removes the
//! case directory (its overlay layers are only free once the mount namespace is gone).
//! [`Reaper::finish`] (called when the session ends) waits for all of it, so nothing is
//! left behind.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use super::session::remove_tree;

struct Job {
    pid: libc::pid_t,
    dir: Option<PathBuf>,
}

#[derive(Default)]
pub(crate) struct Reaper {
    state: Mutex<Option<(Sender<Job>, JoinHandle<()>)>>,
}

fn reap(pid: libc::pid_t) {
    let mut st = 0;
    loop {
        // SAFETY: waitpid writes the status into `st`, a live i32.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
}

impl Reaper {
    /// Reap `pid`, then remove `dir` (if any).
    pub fn submit(&self, pid: libc::pid_t, dir: Option<PathBuf>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name("cgrepro-reaper".into())
                .spawn(move || {
                    for job in rx {
                        reap(job.pid);
                        if let Some(d) = job.dir {
                            remove_tree(&d);
                        }
                    }
                });
            match spawned {
                Ok(handle) => *state = Some((tx, handle)),
                Err(_) => {
                    // No thread: do it now.
                    drop(state);
                    reap(pid);
                    if let Some(d) = dir {
                        remove_tree(&d);
                    }
                    return;
                }
            }
        }
        if let Some((tx, _)) = state.as_ref() {
            if let Err(e) = tx.send(Job { pid, dir }) {
                reap(e.0.pid);
                if let Some(d) = e.0.dir {
                    remove_tree(&d);
                }
            }
        }
    }

    /// Wait until every submitted process is reaped and directory removed.
    pub fn finish(&self) {
        let taken = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((tx, handle)) = taken {
            drop(tx);
            let _ = handle.join();
        }
    }
}
