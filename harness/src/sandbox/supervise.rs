//! Watching one running case from the harness: a single poll loop over the target's
//! stdout, stderr and driver channel, init's status pipe and the interrupt pipe, with the
//! timeout as the poll deadline. On timeout: SIGTERM to init (which forwards it to every
//! process of the case), `grace`, then SIGKILL (the PID namespace dies with init).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

use super::spawn::Record;
use super::{interrupt, Exit, Observed};

pub(crate) struct Pipes {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub channel: OwnedFd,
    pub status: OwnedFd,
}

/// Errors recorded by init or the target before exec, described by the caller.
pub(crate) enum SetupFailure {
    Init { step: i32, errno: i32 },
    Target { step: i32, errno: i32 },
    Exec { errno: i32 },
}

pub(crate) struct Watched {
    pub observed: Observed,
    pub setup_failure: Option<SetupFailure>,
}

const CHANNEL_LIMIT: usize = 4 * 1024 * 1024;

pub(crate) fn watch(
    init: libc::pid_t,
    pipes: Pipes,
    timeout: Duration,
    grace: Duration,
    capture: Option<&std::path::Path>,
) -> Watched {
    // Full copies of stdout and stderr (best effort: a full disk costs the copy, not the run).
    let mut copies = capture.map(|dir| {
        let _ = std::fs::create_dir_all(dir);
        [
            std::fs::File::create(dir.join("stdout.log")).ok(),
            std::fs::File::create(dir.join("stderr.log")).ok(),
        ]
    });
    let start = Instant::now();
    let mut obs = Observed::default();
    let mut setup_failure = None;
    let mut channel_buf: Vec<u8> = Vec::new();
    let mut channel_bytes = 0usize;
    let mut status_buf: Vec<u8> = Vec::new();

    // fds: 0 stdout, 1 stderr, 2 channel, 3 status, 4 interrupt (optional)
    let fds = [
        pipes.stdout.as_raw_fd(),
        pipes.stderr.as_raw_fd(),
        pipes.channel.as_raw_fd(),
        pipes.status.as_raw_fd(),
    ];
    let mut open = [true; 4];
    let intr = interrupt::poll_fd();
    let mut deadline = start + timeout;
    let mut term_sent = false;
    let mut kill_sent = false;
    let mut buf = vec![0u8; 64 * 1024];

    while open.iter().any(|o| *o) {
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(5);
        let mut which: Vec<usize> = Vec::with_capacity(5);
        for (i, fd) in fds.iter().enumerate() {
            if open[i] {
                pfds.push(libc::pollfd {
                    fd: *fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if let (Some(fd), false) = (intr, kill_sent) {
            pfds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            which.push(4);
        }
        let now = Instant::now();
        let wait_ms = if kill_sent {
            // After SIGKILL the pipes close promptly; bound the wait anyway.
            1000
        } else {
            deadline
                .saturating_duration_since(now)
                .as_millis()
                .min(i32::MAX as u128) as i32
        };
        // SAFETY: `pfds` is a live, initialised array of `pfds.len()` pollfds whose fds
        // this function owns (the pipes) or borrows for its duration (the interrupt pipe).
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as _, wait_ms) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        if n == 0 {
            if kill_sent {
                break;
            }
            // Deadline: escalate.
            if !term_sent {
                obs.timed_out = true;
                term_sent = true;
                // Init is the caller's unreaped child: its pid cannot be reused yet.
                let _ = kill(Pid::from_raw(init), Signal::SIGTERM);
                deadline = Instant::now() + grace;
            } else {
                kill_sent = true;
                let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
            }
            continue;
        }
        for (p, &i) in pfds.iter().zip(&which) {
            if p.revents == 0 {
                continue;
            }
            if i == 4 {
                obs.interrupted = true;
                kill_sent = true;
                let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
                continue;
            }
            // SAFETY: `fds[i]` is an open pipe end owned by `pipes`, and `buf` is a live
            // buffer of `buf.len()` writable bytes.
            let r = unsafe { libc::read(fds[i], buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                open[i] = false;
                continue;
            }
            let data = &buf[..r as usize];
            if let Some(Some(f)) = copies.as_mut().and_then(|c| c.get_mut(i)) {
                let _ = std::io::Write::write_all(f, data);
            }
            match i {
                0 => obs.stdout.push(data),
                1 => obs.stderr.push(data),
                2 => {
                    channel_bytes += data.len();
                    if channel_bytes <= CHANNEL_LIMIT {
                        channel_buf.extend_from_slice(data);
                    }
                }
                _ => status_buf.extend_from_slice(data),
            }
        }
    }

    for chunk in status_buf.chunks_exact(12) {
        let rec: &[u8; 12] = chunk.try_into().expect("12-byte chunk");
        match Record::decode(rec) {
            Some(Record::TargetExited { status }) => obs.exit = Some(Exit::from_raw(status)),
            Some(Record::Leftovers { count }) => obs.leftovers = count.max(0) as u32,
            Some(Record::InitStepFailed { step, errno }) => {
                setup_failure.get_or_insert(SetupFailure::Init { step, errno });
            }
            Some(Record::TargetStepFailed { step, errno }) => {
                setup_failure.get_or_insert(SetupFailure::Target { step, errno });
            }
            Some(Record::ExecFailed { errno }) => {
                setup_failure.get_or_insert(SetupFailure::Exec { errno });
            }
            None => {}
        }
    }
    // Init is reaped by the session's reaper (its namespaces may still be going down).
    obs.channel = String::from_utf8_lossy(&channel_buf)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    obs.duration = start.elapsed();
    Watched {
        observed: obs,
        setup_failure,
    }
}
