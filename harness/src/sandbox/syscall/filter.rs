//! The BPF program, its installation in the child (async-signal-safe), and passing the
//! listener fd over a unix socket.

use std::os::fd::RawFd;

use super::SyscallError;

#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "cgrepro's syscall layer (seccomp user notification) supports x86_64 only: the BPF \
     filter checks AUDIT_ARCH_X86_64 and uses x86_64 syscall numbers"
);

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// `AUDIT_ARCH_X86_64` = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// Syscalls of the x32 ABI carry this bit in `nr`.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const BPF_MAXINSNS: usize = 4096;

const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA);

/// A compiled filter program. Building allocates; [`install`] does not.
pub struct PreparedFilter {
    prog: Vec<libc::sock_filter>,
}

impl std::fmt::Debug for PreparedFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreparedFilter({} instructions)", self.prog.len())
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

impl PreparedFilter {
    /// `enosys`: numbers answered `ENOSYS` in BPF; `notified`: numbers sent to the
    /// supervisor; everything else is allowed. Any ABI other than x86_64 (i386 via
    /// `int 0x80`, x32) gets `ENOSYS` for every syscall, so it cannot bypass the
    /// supervisor (e.g. to mount a real cgroupfs).
    pub fn build(enosys: &[u32], notified: &[u32]) -> Result<PreparedFilter, SyscallError> {
        let mut p = vec![
            stmt(BPF_LD_W_ABS, OFF_ARCH),
            jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
            stmt(BPF_RET_K, RET_ENOSYS),
            stmt(BPF_LD_W_ABS, OFF_NR),
            jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
            stmt(BPF_RET_K, RET_ENOSYS),
        ];
        // Each comparison is followed by its own return: no jump is ever longer than one
        // instruction, however long the lists are.
        for &nr in enosys {
            p.push(jump(BPF_JEQ_K, nr, 0, 1));
            p.push(stmt(BPF_RET_K, RET_ENOSYS));
        }
        for &nr in notified {
            p.push(jump(BPF_JEQ_K, nr, 0, 1));
            p.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
        }
        p.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
        if p.len() > BPF_MAXINSNS {
            return Err(SyscallError::FilterTooLong(p.len()));
        }
        Ok(PreparedFilter { prog: p })
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }

    /// Interpret the program for `(arch, nr)` and return the seccomp action (for tests and
    /// diagnostics; the kernel runs the real thing).
    pub fn evaluate(&self, arch: u32, nr: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        while pc < self.prog.len() {
            let i = &self.prog[pc];
            match i.code {
                BPF_LD_W_ABS => acc = if i.k == OFF_ARCH { arch } else { nr },
                BPF_JEQ_K => {
                    pc += if acc == i.k { i.jt } else { i.jf } as usize;
                }
                BPF_JGE_K => {
                    pc += if acc >= i.k { i.jt } else { i.jf } as usize;
                }
                BPF_RET_K => return i.k,
                _ => unreachable!("instruction not emitted by build()"),
            }
            pc += 1;
        }
        libc::SECCOMP_RET_KILL_PROCESS
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid thread-local pointer.
    unsafe { *libc::__errno_location() }
}

/// Install `filter` on the calling thread with a notification listener and return the
/// listener fd (close-on-exec).
///
/// Async-signal-safe: only `seccomp(2)` (and `prctl(2)` on the fallback), no allocation,
/// no locks — call it in the child between fork and exec. Tries
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (5.19+: once the supervisor has received a
/// notification, only a fatal signal interrupts the target's wait, which keeps Go's
/// preemption signals from restarting trapped syscalls) and falls back without it. Does
/// not set `no_new_privs` (which would break setuid helpers) unless `seccomp` fails with
/// `EACCES` (caller lacks `CAP_SYS_ADMIN` in its user namespace).
///
/// # Safety
/// Installs a seccomp filter on the calling thread: every syscall the filter notifies
/// blocks until the listener is serviced (or closed).
pub unsafe fn install(filter: &PreparedFilter) -> Result<RawFd, i32> {
    // SAFETY: the program outlives the calls that read it; prctl and seccomp get valid arguments; the caller accepts the filter on this thread (# Safety).
    unsafe {
        let prog = libc::sock_fprog {
            len: filter.prog.len() as u16,
            filter: filter.prog.as_ptr() as *mut libc::sock_filter,
        };
        let mut flags =
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        let mut set_nnp = false;
        loop {
            let r = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                flags,
                &prog as *const libc::sock_fprog,
            );
            if r >= 0 {
                return Ok(r as RawFd);
            }
            let e = errno();
            if e == libc::EINVAL && flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
                flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
                continue;
            }
            if e == libc::EACCES && !set_nnp {
                set_nnp = true;
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(errno());
                }
                continue;
            }
            return Err(e);
        }
    }
}

/// Send `fd` over the unix socket `sock` (`SCM_RIGHTS`, plus `SCM_CREDENTIALS` so the
/// supervisor learns the sender's pid in its own pid namespace), then close `fd`.
///
/// Async-signal-safe (`getpid`/`getuid`/`getgid`, `sendmsg`, `close`; buffers on the
/// stack).
///
/// # Safety
/// `sock` and `fd` must be open file descriptors owned by the caller; `fd` is closed.
pub unsafe fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), i32> {
    // SAFETY: the message points to buffers on this stack that outlive sendmsg; `sock` and `fd` are the caller's (# Safety).
    unsafe {
        let mut byte = [b'L'];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr() as *mut libc::c_void,
            iov_len: 1,
        };
        // CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred)) = 24 + 32 on x86_64;
        // u64s keep the buffer aligned.
        let mut cbuf = [0u64; 8];
        let rights = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let creds = libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = rights + creds;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
        let cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_CREDENTIALS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::ucred>() as u32) as usize;
        let cred = libc::ucred {
            pid: libc::getpid(),
            uid: libc::getuid(),
            gid: libc::getgid(),
        };
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::ucred, cred);
        let mut result = Err(libc::EIO);
        for attempt in 0..2 {
            if attempt == 1 {
                // Credentials refused (EPERM: unmapped ids?): send the fd alone.
                msg.msg_controllen = rights;
            }
            result = loop {
                let r = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
                if r >= 0 {
                    break Ok(());
                }
                let e = errno();
                if e != libc::EINTR {
                    break Err(e);
                }
            };
            if result != Err(libc::EPERM) {
                break;
            }
        }
        libc::close(fd);
        result
    }
}

/// [`install`] then [`send_fd`]: what a `pre_exec` hook calls.
///
/// # Safety
/// See [`install`] and [`send_fd`].
pub unsafe fn install_and_send(filter: &PreparedFilter, sock: RawFd) -> Result<(), i32> {
    // SAFETY: the caller upholds both functions' contracts (# Safety).
    unsafe {
        let fd = install(filter)?;
        send_fd(sock, fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_decisions() {
        let f = PreparedFilter::build(&[437, 435], &[63, 257]).unwrap();
        let a = AUDIT_ARCH_X86_64;
        assert_eq!(f.evaluate(a, 437), RET_ENOSYS);
        assert_eq!(f.evaluate(a, 435), RET_ENOSYS);
        assert_eq!(f.evaluate(a, 63), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(f.evaluate(a, 257), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(f.evaluate(a, 0), libc::SECCOMP_RET_ALLOW);
        assert_eq!(f.evaluate(a, 1 | X32_SYSCALL_BIT), RET_ENOSYS);
        // i386
        assert_eq!(f.evaluate(3 | 0x4000_0000, 0), RET_ENOSYS);
    }
}
