//! The seccomp syscall layer against real programs (coreutils, sh, python3, a static C
//! binary). Needs root (or CAP_SYS_ADMIN) and seccomp user notification, some tests
//! python3 or a static C toolchain; where those are missing the tests are reported ignored
//! with the reason, and fail under `CI=true` (see `tests/support`).
//!
//! Nothing here touches the real /sys/fs/cgroup: statfs is only observed, the cgroup2
//! mount attempt happens in a private mount namespace on a temp dir and is refused (and
//! would be detached at once if it were not).

use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::{need_program, need_root, Suite, Unmet};

use cgrepro::fault::{Effect, Fault};

use cgrepro::sandbox::syscall::{
    self, install_and_send, magic, parse_errno, Op, SimKernel, Supervisor, SupervisorOptions,
    SupervisorStats, SyscallPlan, When,
};

const PY: &str = "/usr/bin/python3";

fn seccomp_notif() -> support::Need {
    match std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail") {
        Ok(s) if s.split_whitespace().any(|a| a == "user_notif") => Ok(()),
        Ok(s) => Err(Unmet::ci_provides(format!(
            "kernel lacks seccomp user_notif (actions_avail: {})",
            s.trim()
        ))),
        Err(e) => Err(Unmet::ci_provides(format!(
            "cannot read seccomp actions_avail: {e}"
        ))),
    }
}

/// Root and seccomp user notification.
fn layer() -> support::Need {
    need_root("seccomp filter without no_new_privs, mounts").and_then(|()| seccomp_notif())
}

fn python() -> support::Need {
    layer().and_then(|()| need_program(PY))
}

/// A C compiler that links static (and threaded) programs.
fn static_c() -> support::Need {
    let dir = tempfile::tempdir().map_err(|e| Unmet::ci_provides(e.to_string()))?;
    gcc_or_why(
        dir.path(),
        "probe",
        "int main(void) { return 0; }",
        &["-static", "-pthread"],
    )
    .map(drop)
    .map_err(Unmet::ci_provides)
}

fn main() {
    let mut suite = Suite::new();
    let with_c = || layer().and_then(|()| static_c());
    suite
        .test_needing(
            "uname_reports_the_simulated_release",
            layer(),
            uname_reports_the_simulated_release,
        )
        .test_needing(
            "proc_files_are_redirected_for_processes_threads_and_relative_opens",
            python(),
            proc_files_are_redirected_for_processes_threads_and_relative_opens,
        )
        .test_needing(
            "statfs_reports_the_simulated_filesystem_magic",
            python(),
            statfs_reports_the_simulated_filesystem_magic,
        )
        .test_needing(
            "proc_files_are_redirected_in_a_procfs_mounted_elsewhere_or_detached",
            python(),
            proc_files_are_redirected_in_a_procfs_mounted_elsewhere_or_detached,
        )
        .test_needing(
            "a_target_in_its_own_user_and_pid_namespace_is_supervised",
            python(),
            a_target_in_its_own_user_and_pid_namespace_is_supervised,
        )
        .test_needing(
            "a_static_binary_sees_the_simulated_host",
            with_c(),
            a_static_binary_sees_the_simulated_host,
        )
        .test_needing(
            "trapped_syscalls_survive_a_signal_storm",
            with_c(),
            trapped_syscalls_survive_a_signal_storm,
        )
        .test_needing(
            "many_concurrent_processes_are_served",
            layer(),
            many_concurrent_processes_are_served,
        )
        .test_needing(
            "syscalls_newer_than_the_simulated_kernel_fail_with_enosys",
            python(),
            syscalls_newer_than_the_simulated_kernel_fail_with_enosys,
        )
        .test_needing(
            "a_write_fault_fires_on_exactly_the_nth_matching_call",
            python(),
            a_write_fault_fires_on_exactly_the_nth_matching_call,
        )
        .test_needing(
            "mounting_a_real_cgroup_filesystem_is_refused_even_for_root",
            python(),
            mounting_a_real_cgroup_filesystem_is_refused_even_for_root,
        )
        .test(
            "the_supervisor_reports_a_child_that_never_sends_the_listener",
            the_supervisor_reports_a_child_that_never_sends_the_listener,
        )
        .test(
            "bad_plans_are_rejected_with_a_reason",
            bad_plans_are_rejected_with_a_reason,
        )
        // A micro-benchmark: run with `--ignored --nocapture bench`.
        .opt_in("bench", with_c(), bench);
    suite.run()
}

struct Run {
    out: Output,
    stats: SupervisorStats,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn assert_ok(&self) -> &Self {
        assert!(
            self.out.status.success(),
            "status {:?}\nstdout:\n{}\nstderr:\n{}\nstats: {:#?}",
            self.out.status,
            self.stdout(),
            String::from_utf8_lossy(&self.out.stderr),
            self.stats
        );
        self
    }
}

type PreHook = Box<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// Run `argv` under the plan's filter and return its output and the supervisor's stats.
fn run_with(
    plan: &Arc<SyscallPlan>,
    argv: &[&str],
    opts: SupervisorOptions,
    pre: Option<PreHook>,
) -> Run {
    let (parent, child) = UnixStream::pair().expect("socketpair");
    let sup = Supervisor::start_with(OwnedFd::from(parent), plan.clone(), opts);
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    let p = plan.clone();
    let sock = child.as_raw_fd();
    // SAFETY: the hook only makes async-signal-safe syscalls (install_and_send; the
    // test's own hooks call unshare/mount/sched_setaffinity).
    unsafe {
        cmd.pre_exec(move || {
            if let Some(pre) = &pre {
                pre()?;
            }
            install_and_send(p.filter(), sock).map_err(std::io::Error::from_raw_os_error)
        });
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let spawned = cmd.spawn().expect("spawn");
    drop(child);
    let out = spawned.wait_with_output().expect("wait");
    let ended = sup.wait_hangup(Duration::from_secs(5));
    let stats = sup.stop();
    assert!(
        ended,
        "supervisor did not see the listener hang up: {stats:#?}"
    );
    Run { out, stats }
}

fn run(plan: &Arc<SyscallPlan>, argv: &[&str]) -> Run {
    run_with(plan, argv, SupervisorOptions::default(), None)
}

fn plan(sim: &SimKernel, faults: &[Fault]) -> Arc<SyscallPlan> {
    Arc::new(SyscallPlan::new(sim, faults).expect("plan"))
}

fn kernel(release: &str) -> SimKernel {
    SimKernel {
        release: release.into(),
        version: format!("#1 SMP simulated {release}"),
        ..SimKernel::default()
    }
}

/// A kernel with simulated /proc files in `dir`.
fn with_proc(dir: &Path, release: &str) -> SimKernel {
    let files = [
        (
            "/proc/self/mountinfo",
            "mountinfo",
            "SIMULATED-MOUNTINFO 1 0 0:1 / / rw - sim sim rw\n".to_string(),
        ),
        ("/proc/self/cgroup", "cgroup", "0::/simulated\n".to_string()),
        (
            "/proc/cgroups",
            "cgroups",
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\n".to_string(),
        ),
        (
            "/proc/sys/kernel/osrelease",
            "osrelease",
            format!("{release}\n"),
        ),
        (
            "/proc/version",
            "version",
            format!("Linux version {release} (simulated)\n"),
        ),
    ];
    let mut k = kernel(release);
    for (template, name, content) in files {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        k.proc_files.push((template.into(), p));
    }
    k
}

fn uname_reports_the_simulated_release() {
    for release in [
        "3.10.0-1160.el7.x86_64",
        "4.19.0-27-amd64",
        "5.10.0-28-amd64",
        "6.1.0-18-amd64",
    ] {
        let k = kernel(release);
        let p = plan(&k, &[]);
        let r = run(&p, &["uname", "-r"]);
        r.assert_ok();
        assert_eq!(r.stdout().trim(), release);
        assert!(
            r.stats.per_syscall.get("uname").copied().unwrap_or(0) >= 1,
            "{:#?}",
            r.stats
        );
        assert!(r.stats.target_pid.is_some(), "sender pid via SO_PASSCRED");
        let r = run(&p, &["uname", "-v"]);
        assert_eq!(r.assert_ok().stdout().trim(), k.version);
    }
    // A target with its own UTS namespace and hostname keeps its hostname.
    let r = run_with(
        &plan(&kernel("5.4.0-182-generic"), &[]),
        &["uname", "-n", "-r"],
        SupervisorOptions::default(),
        Some(Box::new(|| {
            // SAFETY: async-signal-safe syscalls in the forked child.
            unsafe {
                if libc::unshare(libc::CLONE_NEWUTS) != 0
                    || libc::sethostname(c"inner-host".as_ptr(), 10) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })),
    );
    assert_eq!(
        r.assert_ok().stdout().trim(),
        "inner-host 5.4.0-182-generic"
    );
    let mut k = kernel("5.4.0-182-generic");
    k.nodename = Some("sim-node".into());
    let r = run(&plan(&k, &[]), &["uname", "-n"]);
    assert_eq!(r.assert_ok().stdout().trim(), "sim-node");
}

fn proc_files_are_redirected_for_processes_threads_and_relative_opens() {
    let dir = tempfile::tempdir().unwrap();
    let k = with_proc(dir.path(), "5.10.0-28-amd64");
    let p = plan(&k, &[]);
    let sim = "SIMULATED-MOUNTINFO";

    let r = run(&p, &["cat", "/proc/self/mountinfo"]);
    assert!(r.assert_ok().stdout().starts_with(sim), "{}", r.stdout());
    assert!(r.stats.redirected >= 1);

    let r = run(
        &p,
        &[
            "cat",
            "/proc/sys/kernel/osrelease",
            "/proc/version",
            "/proc/cgroups",
            "/proc/self/cgroup",
        ],
    );
    assert_eq!(
        r.assert_ok().stdout(),
        "5.10.0-28-amd64\nLinux version 5.10.0-28-amd64 (simulated)\n\
         #subsys_name\thierarchy\tnum_cgroups\tenabled\n0::/simulated\n"
    );

    // A child process naming itself by pid, and a grandchild.
    let r = run(
        &p,
        &[
            "sh",
            "-c",
            "cat /proc/$$/mountinfo; sh -c 'cat /proc/$$/cgroup'",
        ],
    );
    assert_eq!(
        r.assert_ok().stdout(),
        format!(
            "{}0::/simulated\n",
            std::fs::read_to_string(dir.path().join("mountinfo")).unwrap()
        )
    );

    // Relative to the cwd and to directory fds; /proc/<pid>/task/<tid>; thread-self from
    // a thread.
    let script = r#"
import os, threading
def rd(path, **kw):
    fd = os.open(path, os.O_RDONLY, **kw)
    try:
        return os.read(fd, 4096).decode().split(" ")[0].strip()
    finally:
        os.close(fd)
out = []
os.chdir("/proc")
out.append(rd("self/mountinfo"))
out.append(rd("mountinfo", dir_fd=os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)))
out.append(rd("self/mountinfo", dir_fd=os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)))
out.append(rd("proc/sys/kernel/osrelease", dir_fd=os.open("/", os.O_RDONLY | os.O_DIRECTORY)))
out.append(rd("/proc/%d/task/%d/mountinfo" % (os.getpid(), os.getpid())))
def t():
    out.append(rd("/proc/thread-self/mountinfo"))
    out.append(rd("/proc/self/task/%d/mountinfo" % threading.get_native_id()))
th = threading.Thread(target=t); th.start(); th.join()
out.append(rd("/proc/1/mountinfo"))  # not a process of the target: real file
print("\n".join(out))
"#;
    let r = run(&p, &[PY, "-c", script]);
    let lines: Vec<String> = r.assert_ok().stdout().lines().map(String::from).collect();
    assert_eq!(
        lines,
        [
            sim,
            sim,
            sim,
            "5.10.0-28-amd64",
            sim,
            sim,
            sim,
            lines.last().unwrap().as_str()
        ],
        "{:#?}",
        r.stats
    );
    assert_ne!(
        lines.last().unwrap(),
        sim,
        "pid 1 is not the target's: /proc/1/mountinfo stays real"
    );

    // Writes (uid_map-style) and non-simulated files go to the kernel.
    let r = run(&p, &["cat", "/proc/self/status"]);
    assert!(r.assert_ok().stdout().contains("Seccomp:"));
}

fn statfs_reports_the_simulated_filesystem_magic() {
    type Case<'a> = (&'a [(&'a str, i64)], &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            &[("/sys/fs/cgroup", magic::CGROUP2)],
            "/sys/fs/cgroup",
            "63677270",
        ),
        (
            &[("/sys/fs/cgroup", magic::TMPFS)],
            "/sys/fs/cgroup",
            "1021994",
        ),
        (
            &[
                ("/sys/fs/cgroup", magic::TMPFS),
                ("/sys/fs/cgroup/unified", magic::CGROUP2),
                ("/sys/fs/cgroup/memory", magic::CGROUP1),
            ],
            "/sys/fs/cgroup/memory",
            "27e0eb",
        ),
        (
            &[("/sys/fs/cgroup", magic::CGROUP2)],
            "/sys/fs/cgroup/.",
            "63677270",
        ),
    ];
    for (table, path, want) in cases {
        if !Path::new(path).exists() {
            eprintln!("(skipping {path}: not on this host)");
            continue;
        }
        let mut k = kernel("6.1.0");
        k.statfs_magic = table.iter().map(|(p, m)| (PathBuf::from(p), *m)).collect();
        let p = plan(&k, &[]);
        let r = run(&p, &["stat", "-f", "-c", "%t", path]);
        assert_eq!(
            r.assert_ok().stdout().trim(),
            want,
            "{path} with {table:x?}"
        );
        assert!(r.stats.spoofed >= 1);
    }
    // Outside the configured prefixes: the real answer.
    let mut k = kernel("6.1.0");
    k.statfs_magic = vec![("/sys/fs/cgroup".into(), magic::CGROUP2)];
    let p = plan(&k, &[]);
    let real = Command::new("stat")
        .args(["-f", "-c", "%t", "/"])
        .output()
        .unwrap();
    let r = run(&p, &["stat", "-f", "-c", "%t", "/"]);
    assert_eq!(
        r.assert_ok().stdout(),
        String::from_utf8_lossy(&real.stdout)
    );

    // fstatfs on an fd, and statfs relative to the cwd.
    let script = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(120)
fd = os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY)
assert libc.fstatfs(fd, buf) == 0
print(hex(int.from_bytes(buf.raw[:8], "little")))
os.chdir("/sys/fs")
assert libc.statfs(b"cgroup", buf) == 0
print(hex(int.from_bytes(buf.raw[:8], "little")))
"#;
    let r = run(&p, &[PY, "-c", script]);
    assert_eq!(r.assert_ok().stdout(), "0x63677270\n0x63677270\n");
}

/// Compile `src` with gcc (`extra` flags); the binary, or why not.
fn gcc_or_why(dir: &Path, name: &str, src: &str, extra: &[&str]) -> Result<PathBuf, String> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).map_err(|e| format!("{}: {e}", c.display()))?;
    let bin = dir.join(name);
    let out = Command::new("gcc")
        .args(extra)
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(&c)
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(bin),
        Ok(o) => Err(format!(
            "gcc {extra:?} failed (static libc missing? apt-get install libc6-dev):\n{}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("gcc not runnable: {e}")),
    }
}

/// Compile `src` (the test declared its need of a C toolchain: a failure is the test's).
fn gcc(dir: &Path, name: &str, src: &str, extra: &[&str]) -> PathBuf {
    gcc_or_why(dir, name, src, extra).unwrap_or_else(|why| panic!("{why}"))
}

fn proc_files_are_redirected_in_a_procfs_mounted_elsewhere_or_detached() {
    let dir = tempfile::tempdir().unwrap();
    let k = with_proc(dir.path(), "5.10.0-28-amd64");
    let mnt = dir.path().join("myproc");
    std::fs::create_dir(&mnt).unwrap();
    let script = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def rd(path, **kw):
    fd = os.open(path, os.O_RDONLY, **kw)
    try:
        return os.read(fd, 4096).decode().split(" ")[0].strip()
    finally:
        os.close(fd)
def check(r):
    if r < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return r
out = []
d = sys.argv[1]
check(libc.mount(b"proc", d.encode(), b"proc", 0, None))
out.append(rd(d + "/self/mountinfo"))
out.append(rd(d + "/sys/kernel/osrelease"))
out.append(rd("cgroup", dir_fd=os.open(d + "/self", os.O_RDONLY | os.O_DIRECTORY)))
libc.umount2(d.encode(), 2)
# A detached procfs, as libpathrs makes one: fsopen + fsconfig(CREATE) + fsmount.
fs = check(libc.syscall(430, b"proc", 1))
check(libc.syscall(431, fs, 6, None, None, 0))
m = check(libc.syscall(432, fs, 1, 0))
out.append(rd("self/mountinfo", dir_fd=m))
out.append(rd("thread-self/mountinfo", dir_fd=m))
selfdir = os.open("self", os.O_RDONLY | os.O_DIRECTORY, dir_fd=m)
out.append(rd("mountinfo", dir_fd=selfdir))
# fstatfs of a redirected file says procfs (libpathrs checks that).
buf = ctypes.create_string_buffer(120)
fd = os.open("/proc/self/mountinfo", os.O_RDONLY)
check(libc.fstatfs(fd, buf))
out.append(hex(int.from_bytes(buf.raw[:8], "little")))
print("\n".join(out))
"#;
    let r = run_with(
        &plan(&k, &[]),
        &[PY, "-c", script, mnt.to_str().unwrap()],
        SupervisorOptions::default(),
        Some(Box::new(private_mount_ns)),
    );
    let sim = "SIMULATED-MOUNTINFO";
    assert_eq!(
        r.assert_ok().stdout().lines().collect::<Vec<_>>(),
        [
            sim,
            "5.10.0-28-amd64",
            "0::/simulated",
            sim,
            sim,
            sim,
            "0x9fa0"
        ],
        "{:#?}",
        r.stats
    );
}

/// The sandbox's arrangement: the target is root in its own user namespace (no
/// no_new_privs needed), runs in a child pid namespace with its own /proc, and the
/// supervisor uses the notification's pids from the parent namespace.
fn user_mount_pid_ns() -> std::io::Result<()> {
    fn write(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
        // SAFETY: async-signal-safe syscalls with valid buffers.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, data.as_ptr() as *const libc::c_void, data.len());
            libc::close(fd);
            if n != data.len() as isize {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
    // SAFETY: async-signal-safe syscalls in the forked child.
    unsafe {
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    write(c"/proc/self/setgroups", b"deny")?;
    write(c"/proc/self/uid_map", b"0 0 1\n")?;
    write(c"/proc/self/gid_map", b"0 0 1\n")?;
    // SAFETY: as above.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn a_target_in_its_own_user_and_pid_namespace_is_supervised() {
    let dir = tempfile::tempdir().unwrap();
    let mut k = with_proc(dir.path(), "4.19.0-27-amd64");
    k.statfs_magic = vec![("/sys/fs/cgroup".into(), magic::CGROUP2)];
    // The outer sh stays in the harness's pid namespace; the inner sh is pid 1 of the new
    // one and mounts its own /proc (python, not mount(8): libmount would read the
    // simulated mountinfo).
    let inner = format!(
        "{PY} -c 'import ctypes; assert ctypes.CDLL(None).mount(b\"proc\", b\"/proc\", b\"proc\", 0, None) == 0' && \
         echo pid=$$ && head -c 19 /proc/$$/mountinfo && echo && cat /proc/self/cgroup /proc/1/cgroup && uname -r && \
         stat -f -c %t /sys/fs/cgroup && (cat /proc/4242/mountinfo 2>/dev/null || echo no-such-pid)"
    );
    let r = run_with(
        &plan(&k, &[]),
        &[
            "sh",
            "-c",
            &format!("sh -c '{}'", inner.replace('\'', "'\\''")),
        ],
        SupervisorOptions::default(),
        Some(Box::new(user_mount_pid_ns)),
    );
    assert_eq!(
        r.assert_ok().stdout(),
        "pid=1\nSIMULATED-MOUNTINFO\n0::/simulated\n0::/simulated\n4.19.0-27-amd64\n63677270\nno-such-pid\n",
        "{:#?}",
        r.stats
    );
    assert!(r.stats.errors.is_empty(), "{:?}", r.stats.errors);
}

fn a_static_binary_sees_the_simulated_host() {
    let dir = tempfile::tempdir().unwrap();
    let src = r#"
#include <stdio.h>
#include <sys/utsname.h>
int main(void) {
    struct utsname u;
    if (uname(&u) != 0) return 2;
    printf("%s\n", u.release);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    if (!f || !fgets(line, sizeof line, f)) return 3;
    fputs(line, stdout);
    return 0;
}
"#;
    let bin = gcc(dir.path(), "static_probe", src, &["-static"]);
    let file = Command::new("file")
        .arg(&bin)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Ok(f) = &file {
        assert!(f.contains("statically linked"), "{f}");
    }
    let k = with_proc(dir.path(), "4.19.0-27-amd64");
    let r = run(&plan(&k, &[]), &[bin.to_str().unwrap()]);
    let out = r.assert_ok().stdout();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("4.19.0-27-amd64"));
    assert!(
        lines.next().unwrap().starts_with("SIMULATED-MOUNTINFO"),
        "{out}"
    );
}

/// Go's runtime preempts goroutines with SIGURG (handlers with SA_RESTART) all the time;
/// trapped syscalls must come back with the right answer regardless.
const SIGNAL_STORM_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
static volatile int done;
static pthread_t main_thread;
static volatile long handled;
static void on_urg(int sig) { (void)sig; handled++; }
static void *storm(void *arg) { (void)arg; while (!done) { pthread_kill(main_thread, SIGURG); usleep(20); } return 0; }
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_urg; sa.sa_flags = SA_RESTART; sigaction(SIGURG, &sa, 0);
    main_thread = pthread_self();
    pthread_t t; pthread_create(&t, 0, storm, 0);
    int bad = 0;
    for (int i = 0; i < 3000; i++) {
        struct utsname u;
        if (uname(&u) != 0 || strcmp(u.release, "5.10.0-28-amd64") != 0) bad++;
        int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
        char buf[32] = {0};
        if (fd < 0 || read(fd, buf, 19) != 19 || strcmp(buf, "SIMULATED-MOUNTINFO") != 0) bad++;
        if (fd >= 0) close(fd);
    }
    done = 1; pthread_join(t, 0);
    printf("bad=%d signals=%s\n", bad, handled > 100 ? "many" : "few");
    return 0;
}
"#;

fn trapped_syscalls_survive_a_signal_storm() {
    let dir = tempfile::tempdir().unwrap();
    let bin = gcc(
        dir.path(),
        "storm",
        SIGNAL_STORM_C,
        &["-static", "-pthread"],
    );
    let k = with_proc(dir.path(), "5.10.0-28-amd64");
    let r = run(&plan(&k, &[]), &[bin.to_str().unwrap()]);
    assert_eq!(
        r.assert_ok().stdout(),
        "bad=0 signals=many\n",
        "{:#?}",
        r.stats
    );
}

fn many_concurrent_processes_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let k = with_proc(dir.path(), "5.10.0-28-amd64");
    let r = run(
        &plan(&k, &[]),
        &[
            "sh",
            "-c",
            "for i in $(seq 100); do cat /proc/self/cgroup & done; wait",
        ],
    );
    let out = r.assert_ok().stdout();
    assert_eq!(out.lines().count(), 100);
    assert!(out.lines().all(|l| l == "0::/simulated"), "{out}");
    assert_eq!(r.stats.redirected, 100);
}

const OPENAT2_PY: &str = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
how = (ctypes.c_uint64 * 3)(os.O_RDONLY | os.O_CLOEXEC, 0, 0)
r = libc.syscall(437, -100, b"/", ctypes.byref(how), 24)
print("fd" if r >= 0 else os.strerror(ctypes.get_errno()))
r = libc.syscall(430, b"tmpfs", 0)  # fsopen
print("fd" if r >= 0 else os.strerror(ctypes.get_errno()))
"#;

/// The ENOSYS list of a kernel release, from the host data (fixtures/kernels/syscalls.toml).
fn enosys_for(release: &str) -> Vec<String> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let data = cgrepro::host::HostData::load(&fixtures).expect("host data");
    let spec = cgrepro::host::HostSpec {
        kernel: Some(release.to_owned()),
        cgroup: Some(cgrepro::host::CgroupMode::V1),
        ..Default::default()
    };
    data.syscalls_newer_than(&data.resolve(&spec).expect("host"))
}

fn syscalls_newer_than_the_simulated_kernel_fail_with_enosys() {
    let mut k = kernel("5.4.0-182-generic");
    k.enosys = enosys_for(&k.release);
    let p = plan(&k, &[]);
    assert!(
        !p.notified_syscalls().contains(&"openat2"),
        "ENOSYS in BPF, not notified"
    );
    let r = run(&p, &[PY, "-c", OPENAT2_PY]);
    assert_eq!(r.assert_ok().stdout(), "Function not implemented\nfd\n");
    assert_eq!(r.stats.per_syscall.get("openat2"), None);

    let mut k = kernel("6.1.0-18-amd64");
    k.enosys = enosys_for(&k.release);
    let r = run(&plan(&k, &[]), &[PY, "-c", OPENAT2_PY]);
    assert_eq!(r.assert_ok().stdout(), "fd\nfd\n");

    let mut k = kernel("4.19.0");
    k.enosys = enosys_for(&k.release);
    let r = run(&plan(&k, &[]), &[PY, "-c", OPENAT2_PY]);
    assert_eq!(
        r.assert_ok().stdout(),
        "Function not implemented\nFunction not implemented\n"
    );
}

const WRITES_PY: &str = r#"
import os, sys
d = sys.argv[1]
res = []
fd = os.open(os.path.join(d, "memory.max.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
other = os.open(os.path.join(d, "other.log"), os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(6):
    for f in (fd, other):
        try:
            os.write(f, b"x")
            res.append("ok")
        except OSError as e:
            res.append(os.strerror(e.errno) if f == other else "E%d" % e.errno)
print(" ".join(res[0::2]))
print(" ".join(res[1::2]))
"#;

fn a_write_fault_fires_on_exactly_the_nth_matching_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    let fault = Fault {
        id: 1,
        op: Op::Write,
        path: format!("{}/*.txt", d.display()),
        effect: Some(Effect::Errno(parse_errno("EINVAL").unwrap())),
        when: When::Nth(3),
        delay: None,
    };
    let p = plan(&kernel("5.10.0"), std::slice::from_ref(&fault));
    assert!(
        p.notified_syscalls().contains(&"write") && p.notified_syscalls().contains(&"pwritev2")
    );
    let r = run(&p, &[PY, "-c", WRITES_PY, d.to_str().unwrap()]);
    assert_eq!(
        r.assert_ok().stdout(),
        "ok ok E22 ok ok ok\nok ok ok ok ok ok\n"
    );
    assert_eq!(r.stats.faults_fired.len(), 1, "{:#?}", r.stats.faults_fired);
    let hit = &r.stats.faults_fired[0];
    assert_eq!(
        (hit.fault, hit.op, hit.syscall, hit.call, hit.effect.clone()),
        (1, Op::Write, "write", 3, Some(Effect::Errno(libc::EINVAL)))
    );
    assert_eq!(hit.path, format!("{}/memory.max.txt", d.display()));

    // After(n) and a seeded probability: deterministic across runs.
    let after = Fault {
        when: When::After(4),
        effect: Some(Effect::Errno(libc::ENOSPC)),
        ..fault.clone()
    };
    let r = run(
        &plan(&kernel("5.10.0"), &[after]),
        &[PY, "-c", WRITES_PY, d.to_str().unwrap()],
    );
    assert_eq!(
        r.assert_ok().stdout().lines().next(),
        Some("ok ok ok ok E28 E28")
    );
    let prob = Fault {
        when: When::Probability { p: 0.5, seed: 7 },
        ..fault.clone()
    };
    let pp = plan(&kernel("5.10.0"), &[prob]);
    let a = run(&pp, &[PY, "-c", WRITES_PY, d.to_str().unwrap()]);
    let b = run(&pp, &[PY, "-c", WRITES_PY, d.to_str().unwrap()]);
    assert_eq!(a.assert_ok().stdout(), b.assert_ok().stdout());
    let calls = |s: &SupervisorStats| s.faults_fired.iter().map(|h| h.call).collect::<Vec<_>>();
    assert_eq!(calls(&a.stats), calls(&b.stats));

    // A pure delay on open: the call succeeds, later.
    let delay = Fault {
        id: 1,
        op: Op::Open,
        path: format!("{}/slow", d.display()),
        effect: None,
        when: When::Always,
        delay: Some(Duration::from_millis(300)),
    };
    std::fs::write(d.join("slow"), "s").unwrap();
    let t = Instant::now();
    let r = run(
        &plan(&kernel("5.10.0"), &[delay]),
        &["cat", d.join("slow").to_str().unwrap()],
    );
    assert_eq!(r.assert_ok().stdout(), "s");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.stats.faults_fired.len(), 1);
}

fn private_mount_ns() -> std::io::Result<()> {
    // SAFETY: async-signal-safe syscalls in the forked child.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn mounting_a_real_cgroup_filesystem_is_refused_even_for_root() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1].encode()
def mount(fstype):
    r = libc.mount(b"none", d, fstype, 0, None)
    if r == 0:
        libc.umount2(d, 2)  # MNT_DETACH, at once: never look inside
        return "MOUNTED"
    return os.strerror(ctypes.get_errno())
def fsopen(fstype):
    r = libc.syscall(430, fstype, 0)
    if r >= 0:
        os.close(r)
        return "OPENED"
    return os.strerror(ctypes.get_errno())
print(mount(b"cgroup2"), mount(b"cgroup"), mount(b"cpuset"), fsopen(b"cgroup2"), fsopen(b"cgroup"), mount(b"tmpfs"), fsopen(b"tmpfs"), sep=",")
"#;
    let p = plan(&kernel("6.1.0"), &[]);
    let r = run_with(
        &p,
        &[PY, "-c", script, dir.path().to_str().unwrap()],
        SupervisorOptions::default(),
        Some(Box::new(private_mount_ns)),
    );
    assert_eq!(
        r.assert_ok().stdout().trim(),
        "Operation not permitted,Operation not permitted,Operation not permitted,Operation not permitted,Operation not permitted,MOUNTED,OPENED"
    );
    assert_eq!(r.stats.denied.len(), 5, "{:?}", r.stats.denied);
    assert!(
        r.stats.denied[0].starts_with("mount cgroup2 on /"),
        "{:?}",
        r.stats.denied
    );

    // A delay fault on mount only delays: the refusal still applies.
    let delay = Fault {
        id: 1,
        op: Op::Mount,
        path: "/**".into(),
        effect: None,
        when: When::Always,
        delay: Some(Duration::from_millis(20)),
    };
    let r = run_with(
        &plan(&kernel("6.1.0"), &[delay]),
        &[PY, "-c", script, dir.path().to_str().unwrap()],
        SupervisorOptions::default(),
        Some(Box::new(private_mount_ns)),
    );
    assert!(
        r.assert_ok().stdout().starts_with(
            "Operation not permitted,Operation not permitted,Operation not permitted,"
        ),
        "{}",
        r.stdout()
    );
    assert_eq!(r.stats.faults_fired.len(), 4, "{:#?}", r.stats.faults_fired);
}

fn the_supervisor_reports_a_child_that_never_sends_the_listener() {
    let k = kernel("5.10.0");
    let p = plan(&k, &[]);
    let (parent, child) = UnixStream::pair().unwrap();
    let sup = Supervisor::start_with(
        OwnedFd::from(parent),
        p,
        SupervisorOptions {
            recv_timeout: Duration::from_secs(10),
            ..SupervisorOptions::default()
        },
    );
    drop(child);
    assert!(sup.wait_hangup(Duration::from_secs(5)));
    let s = sup.stop();
    assert_eq!(s.ended, syscall::EndReason::NoListener);
    assert!(s.errors[0].contains("without sending"), "{:?}", s.errors);

    let (parent, _child) = UnixStream::pair().unwrap();
    let sup = Supervisor::start(OwnedFd::from(parent), plan(&k, &[]));
    let t = Instant::now();
    let s = sup.stop();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(s.ended, syscall::EndReason::NoListener);
}

fn bad_plans_are_rejected_with_a_reason() {
    let k = SimKernel {
        enosys: vec!["no_such_call".into()],
        ..kernel("5.4")
    };
    assert!(SyscallPlan::new(&k, &[])
        .unwrap_err()
        .to_string()
        .contains("no_such_call"));
    let k = SimKernel {
        proc_files: vec![("/etc/os-release".into(), "/dev/null".into())],
        ..kernel("5.4")
    };
    assert!(SyscallPlan::new(&k, &[])
        .unwrap_err()
        .to_string()
        .contains("below /proc"));
    let f = Fault {
        id: 1,
        op: Op::Write,
        path: "[".into(),
        effect: Some(Effect::Errno(5)),
        when: When::Always,
        delay: None,
    };
    assert!(SyscallPlan::new(&kernel("5.4"), &[f])
        .unwrap_err()
        .to_string()
        .contains("glob"));
    assert!(parse_errno("ENOPE").is_err());
    assert_eq!("rmdir".parse::<Op>().unwrap(), Op::Rmdir);
}

// ---------------------------------------------------------------------------------------
// Micro-benchmark: cargo test -p cgrepro --release --test syscall_layer -- --ignored --nocapture bench

const BENCH_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    const char *path = argv[2];
    struct utsname u;
    for (int i = 0; i < 200; i++) syscall(SYS_uname, &u);
    double t0 = now();
    for (int i = 0; i < n; i++) syscall(SYS_uname, &u);
    double t1 = now();
    for (int i = 0; i < n; i++) { int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC); if (fd < 0) return 3; close(fd); }
    double t2 = now();
    for (int i = 0; i < n; i++) { int fd = openat(AT_FDCWD, argv[3], O_RDONLY | O_CLOEXEC); if (fd < 0) return 4; close(fd); }
    double t3 = now();
    printf("%8.3f %8.3f %8.3f   %s", (t1 - t0) / n / 1000, (t2 - t1) / n / 1000, (t3 - t2) / n / 1000, u.release);
    return 0;
}
"#;

fn pin_cpu0() -> std::io::Result<()> {
    // SAFETY: plain syscall on the calling (child) process.
    unsafe {
        let mut cs: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut cs);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&cs), &cs) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let bin = gcc(dir.path(), "bench", BENCH_C, &[]);
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20000);
    let k = with_proc(dir.path(), "5.10.0-28-amd64");
    let p = plan(&k, &[]);
    let osrel = "/proc/sys/kernel/osrelease";
    let args = [
        bin.to_str().unwrap(),
        &n.to_string(),
        osrel,
        "/etc/hostname",
    ];
    let mut report = Vec::new();
    let native = Command::new(&bin).args(&args[1..]).output().unwrap();
    report.push((
        "native (no filter)",
        String::from_utf8_lossy(&native.stdout).into_owned(),
    ));
    let variants: [(&str, bool, bool); 4] = [
        ("trapped, sync wake-up (default)", true, false),
        ("trapped, no sync wake-up", false, false),
        (
            "trapped, no sync wake-up, both pinned to CPU 0",
            false,
            true,
        ),
        ("trapped, sync wake-up, both pinned to CPU 0", true, true),
    ];
    for (name, sync, pin) in variants {
        let opts = SupervisorOptions {
            sync_wakeup: sync,
            pin_cpu: pin.then_some(0),
            ..SupervisorOptions::default()
        };
        let pre: Option<PreHook> = if pin { Some(Box::new(pin_cpu0)) } else { None };
        let r = run_with(&p, &args, opts, pre);
        r.assert_ok();
        assert!(r.stats.redirected as usize >= n);
        report.push((
            name,
            format!(
                "{} (sync flag in effect: {})",
                r.stdout().trim(),
                r.stats.sync_wakeup
            ),
        ));
    }
    let mut e = std::io::stderr().lock();
    writeln!(
        e,
        "per call, µs: uname | openat {osrel} (redirected when trapped) | openat /etc/hostname (let through); n = {n}"
    )
    .unwrap();
    for (name, line) in report {
        writeln!(e, "  {name:50} {}", line.trim()).unwrap();
    }
}
