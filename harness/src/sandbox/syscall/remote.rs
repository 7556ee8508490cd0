//! Reading and writing the target's memory, and small /proc helpers.
//!
//! `process_vm_readv`/`process_vm_writev` first (no fd to open per call), then
//! `/proc/<pid>/mem` (pread/pwrite) if those are refused.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

const PAGE: usize = 4096;
pub const PATH_MAX: usize = 4096;

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Read up to `buf.len()` bytes at `addr`, stopping at the first unreadable page. Returns
/// the number of bytes read.
pub fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> Result<usize, i32> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: both iovecs describe valid memory of the stated length (the remote one is
    // checked by the kernel).
    let r = unsafe { libc::process_vm_readv(pid as i32, &local, 1, &remote, 1, 0) };
    if r >= 0 {
        return Ok(r as usize);
    }
    let e = errno();
    if e == libc::ESRCH {
        return Err(e);
    }
    proc_mem(pid, |fd| {
        // SAFETY: buf is valid for buf.len() bytes.
        unsafe {
            libc::pread(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                addr as i64,
            )
        }
    })
}

/// Write `data` at `addr` in the target.
pub fn write_mem(pid: u32, addr: u64, data: &[u8]) -> Result<(), i32> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: as in read_mem; the local buffer is only read.
    let r = unsafe { libc::process_vm_writev(pid as i32, &local, 1, &remote, 1, 0) };
    if r as usize == data.len() {
        return Ok(());
    }
    if r < 0 && errno() == libc::ESRCH {
        return Err(libc::ESRCH);
    }
    let n = proc_mem(pid, |fd| {
        // SAFETY: data is valid for data.len() bytes.
        unsafe {
            libc::pwrite(
                fd,
                data.as_ptr() as *const libc::c_void,
                data.len(),
                addr as i64,
            )
        }
    })?;
    if n == data.len() {
        Ok(())
    } else {
        Err(libc::EFAULT)
    }
}

fn proc_mem(pid: u32, f: impl FnOnce(i32) -> isize) -> Result<usize, i32> {
    let path = CString::new(format!("/proc/{pid}/mem")).expect("no NUL");
    // SAFETY: path is a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    let r = f(fd);
    let e = errno();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if r < 0 {
        Err(e)
    } else {
        Ok(r as usize)
    }
}

/// Read a NUL-terminated string of at most [`PATH_MAX`] bytes at `addr` (page by page,
/// so a string that ends just before an unmapped page is still read). `Err(EFAULT)` for
/// a null pointer or an unreadable start, `Err(ENAMETOOLONG)` without a NUL.
pub fn read_cstr(pid: u32, addr: u64, out: &mut Vec<u8>) -> Result<(), i32> {
    out.clear();
    if addr == 0 {
        return Err(libc::EFAULT);
    }
    let mut buf = [0u8; PAGE];
    let mut at = addr;
    while out.len() < PATH_MAX {
        let chunk = (PAGE - (at as usize % PAGE)).min(PATH_MAX - out.len());
        let n = read_mem(pid, at, &mut buf[..chunk])?;
        if n == 0 {
            return Err(libc::EFAULT);
        }
        if let Some(i) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..i]);
            return Ok(());
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Err(libc::ENAMETOOLONG)
}

/// `readlink` into a Vec.
pub fn readlink(path: &[u8]) -> Option<Vec<u8>> {
    let c = CString::new(path).ok()?;
    let mut buf = vec![0u8; PATH_MAX + 1];
    // SAFETY: c is a valid C string, buf has the stated length.
    let n = unsafe { libc::readlink(c.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if n < 0 || n as usize > PATH_MAX {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// `statfs` of a path (following symlinks, magic links included).
pub fn statfs(path: &[u8]) -> Result<libc::statfs, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: st is plain old data; c is a valid C string.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::statfs(c.as_ptr(), &mut st) == 0 {
            Ok(st)
        } else {
            Err(errno())
        }
    }
}

/// `fstatfs` of an fd.
pub fn fstatfs(fd: i32) -> Result<libc::statfs, i32> {
    // SAFETY: st is plain old data.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::fstatfs(fd, &mut st) == 0 {
            Ok(st)
        } else {
            Err(errno())
        }
    }
}

/// Read a whole (small) file.
pub fn read_file(path: &[u8]) -> Option<Vec<u8>> {
    std::fs::read(std::ffi::OsStr::from_bytes(path)).ok()
}

/// The fields `Tgid:` and `PPid:` of `/proc/<pid>/status`.
pub fn tgid_ppid(pid: u32) -> Option<(u32, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u32> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("Tgid:")?, field("PPid:")?))
}

/// Inode of a namespace link like `/proc/<pid>/ns/pid`.
pub fn ns_inode(path: &str) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// The `mnt_id:` of `/proc/<pid>/fdinfo/<fd>`.
pub fn fd_mnt_id(pid: u32, fd: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}
