//! Fidelity check: the op corpus (`fixtures/fidelity/*.toml`) on this machine's real cgroup
//! hierarchies versus the cgroupfs model configured as this machine's host; every op must
//! give the same result (errno, or the content read).
//!
//! SAFETY. This is the only code of the project that touches real cgroups, and only:
//! * inside one throwaway group per hierarchy, `cgrepro-fidelity-<pid>`, created under the
//!   test process's own cgroup in that hierarchy; every path written, created or removed
//!   is checked to lie inside it before the syscall (a violation aborts the check);
//! * from a thread in its own cgroup namespace (`unshare(CLONE_NEWCGROUP)`);
//! * no file of a pre-existing group is ever written (the helper process is only moved
//!   between the throwaway groups), nothing is mounted;
//! * afterwards the helper is killed and every group created is removed, deepest first; a
//!   group that cannot be removed fails the test loudly, naming it.
//!
//! Run: `cargo test -p cgrepro --test fidelity -- --nocapture` (as root, on a
//! machine with cgroup v1 hierarchies mounted under /sys/fs/cgroup). Prints the agreement
//! per op and the figure.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use cgrepro::host::{CgroupMode, HostData, HostSpec};
use cgrepro::sandbox::cgroupfs::corpus::{fill, on_model, Corpus};
use cgrepro::sandbox::cgroupfs::{errno_name, Model, Pids};

mod support;

use support::{available_only, need_root, root, Suite};

fn main() {
    let mut suite = Suite::new();
    suite
        .test("corpus_has_at_least_100_ops", corpus_has_at_least_100_ops)
        .test_needing(
            "model_agrees_with_the_real_kernel",
            need_root("creates groups in the real cgroup hierarchies")
                .and_then(|()| available_only(v1_hierarchies())),
            model_agrees_with_the_real_kernel,
        );
    suite.run()
}

fn load_corpus() -> Vec<Corpus> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/fidelity"))
        .expect("fixtures/fidelity")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            toml::from_str(&std::fs::read_to_string(p).expect("read corpus"))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

fn corpus_has_at_least_100_ops() {
    let n: usize = load_corpus().iter().map(|c| c.op.len()).sum();
    assert!(n >= 100, "{n} ops");
}

/// This machine's cgroup hierarchies: key (`memory`, `systemd`, `unified`) → mount dir.
fn real_hierarchies() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mi.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (mnt, fstype, opts) = (f[4], f[dash + 1], f.get(dash + 3).unwrap_or(&""));
        if fstype == "cgroup2" && mnt.starts_with("/sys/fs/cgroup") {
            out.insert("unified".into(), PathBuf::from(mnt));
        } else if fstype == "cgroup" {
            for o in opts.split(',') {
                let key = o.strip_prefix("name=").unwrap_or(o);
                if key != "rw" && key != "ro" && !key.contains('=') {
                    out.insert(key.to_owned(), PathBuf::from(mnt));
                }
            }
        }
    }
    out
}

/// The test process's group in each hierarchy (from /proc/self/cgroup).
fn own_groups() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
    {
        let mut p = line.splitn(3, ':');
        let (_, ctl, path) = (p.next(), p.next().unwrap_or(""), p.next().unwrap_or(""));
        if ctl.is_empty() {
            out.insert("unified".into(), path.to_owned());
        }
        for c in ctl.split(',') {
            out.insert(
                c.strip_prefix("name=").unwrap_or(c).to_owned(),
                path.to_owned(),
            );
        }
    }
    out
}

fn v1_hierarchies() -> Result<(), String> {
    let h = real_hierarchies();
    if !h.contains_key("memory") || !h.contains_key("cpuset") {
        return Err("needs cgroup v1 hierarchies (memory, cpuset) mounted".into());
    }
    Ok(())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The real-kernel side, confined to `base` (the throwaway group).
struct Real {
    base: PathBuf,
    created: Vec<PathBuf>,
}

impl Real {
    fn guard(&self, p: &Path) {
        assert!(
            p == self.base || p.starts_with(&self.base),
            "SAFETY: {} is outside the throwaway group {}",
            p.display(),
            self.base.display()
        );
    }

    fn run(&mut self, op: &str, path: &Path, value: Option<&str>, pid: u32) -> String {
        self.guard(path);
        let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        let res = |r: i32| {
            if r == 0 {
                "ok".to_owned()
            } else {
                errno_name(errno())
            }
        };
        match op {
            "mkdir" => {
                // SAFETY: `c` is a NUL-terminated path that outlives the call (checked by `guard`).
                let r = unsafe { libc::mkdir(c.as_ptr(), 0o755) };
                if r == 0 {
                    self.created.push(path.to_owned());
                }
                res(r)
            }
            "rmdir" => {
                // SAFETY: as for mkdir.
                let r = unsafe { libc::rmdir(c.as_ptr()) };
                if r == 0 {
                    self.created.retain(|p| p != path);
                }
                res(r)
            }
            // SAFETY: as for mkdir.
            "unlink" => res(unsafe { libc::unlink(c.as_ptr()) }),
            "read" => {
                // SAFETY: as for mkdir; the fd is closed below.
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return format!("open {}", errno_name(errno()));
                }
                let mut buf = vec![0u8; 65536];
                // SAFETY: reads into `buf`, live and `buf.len()` bytes long, from our open fd.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                let e = errno();
                // SAFETY: closes the fd opened above, used by nothing else.
                unsafe { libc::close(fd) };
                if n < 0 {
                    return errno_name(e);
                }
                format!("ok {}", String::from_utf8_lossy(&buf[..n as usize]))
            }
            "write" | "shellwrite" | "attach" => {
                let (path, value) = if op == "attach" {
                    (path.join("cgroup.procs"), pid.to_string())
                } else {
                    (path.to_owned(), value.unwrap_or("").to_owned())
                };
                self.guard(&path);
                let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
                let flags = if op == "shellwrite" {
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
                } else {
                    libc::O_WRONLY
                } | libc::O_CLOEXEC;
                // SAFETY: as for mkdir; the fd is closed below.
                let fd = unsafe { libc::open(c.as_ptr(), flags, 0o666) };
                if fd < 0 {
                    return format!("open {}", errno_name(errno()));
                }
                // SAFETY: writes `value`, live and `value.len()` bytes long, to our open fd.
                let n = unsafe { libc::write(fd, value.as_ptr().cast(), value.len()) };
                let e = errno();
                // SAFETY: closes the fd opened above, used by nothing else.
                unsafe { libc::close(fd) };
                if n < 0 {
                    errno_name(e)
                } else {
                    "ok".into()
                }
            }
            other => format!("unknown op {other}"),
        }
    }

    /// Remove every group created, deepest first; the names of those that would not go.
    fn cleanup(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        let mut all = self.created.clone();
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in all {
            self.guard(&p);
            let c = CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
            let mut ok = false;
            for _ in 0..50 {
                // SAFETY: `c` is a NUL-terminated path that outlives the call.
                if unsafe { libc::rmdir(c.as_ptr()) } == 0 || errno() == libc::ENOENT {
                    ok = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if !ok {
                left.push(format!("{}: {}", p.display(), errno_name(errno())));
            }
        }
        left
    }
}

struct OnePid(u32);
impl Pids for OnePid {
    fn exists(&self, pid: u32) -> bool {
        pid == self.0
    }
}

/// The model as this machine's host: its kernel release, hybrid, name=systemd mounted
/// (systemd), swap accounting as the memory hierarchy shows it, RT group scheduling.
fn model_for_this_machine(data: &HostData, helper: u32) -> Model {
    // SAFETY: utsname is plain old data (arrays of c_char): all zeroes is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills `uts`, a live utsname.
    unsafe { libc::uname(&mut uts) };
    // SAFETY: uname NUL-terminates `release` (zeroed before, so even a failed call does).
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let mut options = BTreeMap::new();
    options.insert(
        "rt_group_sched".to_owned(),
        Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists(),
    );
    let spec = HostSpec {
        kernel: Some(release),
        cgroup: Some(CgroupMode::Hybrid),
        systemd: Some(252),
        swap_accounting: Some(
            Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
        ),
        options: Some(options),
        ..HostSpec::default()
    };
    let host = data.resolve(&spec).expect("this machine as a host");
    Model::new(&host, data, &[], Vec::new(), Box::new(OnePid(helper))).expect("model")
}

/// Directory of a hierarchy key in the model (`cpu` → `cpu,cpuacct`).
fn model_dir(m: &Model, key: &str) -> String {
    if m.resolve(key).is_some() {
        // Follows the co-mount symlink, so `cpu` works as it is.
        return key.to_owned();
    }
    panic!("the model has no hierarchy `{key}`");
}

/// Runs where it can (root, real v1 hierarchies mounted); ignored with the reason
/// elsewhere. It touches the real hierarchies only inside its throwaway child groups.
fn model_agrees_with_the_real_kernel() {
    let data = HostData::load(&root().join("fixtures")).expect("host data");
    let hier = real_hierarchies();
    let own = own_groups();
    let mut helper = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn the helper");
    let pid = helper.id();
    let name = format!("cgrepro-fidelity-{}", std::process::id());
    let corpus = load_corpus();

    let real_time: std::sync::Mutex<BTreeMap<String, Vec<std::time::Duration>>> =
        Default::default();
    let mut model_time: BTreeMap<String, Vec<std::time::Duration>> = BTreeMap::new();
    // The real side runs in a thread with its own cgroup namespace.
    let (results, leftovers) = std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                // SAFETY: unshare touches no memory; this thread alone gets the new namespace.
                unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
                0,
                "unshare(CLONE_NEWCGROUP)"
            );
            let mut results = Vec::new();
            let mut leftovers = Vec::new();
            let mut reals = Vec::new();
            for c in &corpus {
                let (Some(mnt), Some(own)) = (hier.get(&c.hierarchy), own.get(&c.hierarchy)) else {
                    results.push((c.hierarchy.clone(), None));
                    continue;
                };
                let base = mnt.join(own.trim_start_matches('/')).join(&name);
                let mut real = Real {
                    base: base.clone(),
                    created: Vec::new(),
                };
                let mut got = Vec::new();
                for op in &c.op {
                    let rel = fill(&op.path, "", pid);
                    let path = base.join(rel.trim_start_matches('/'));
                    let value = op.value.as_deref().map(|v| fill(v, "", pid));
                    let t = std::time::Instant::now();
                    got.push(real.run(&op.op, &path, value.as_deref(), pid));
                    real_time
                        .lock()
                        .unwrap()
                        .entry(op.op.clone())
                        .or_default()
                        .push(t.elapsed());
                }
                reals.push(real);
                results.push((c.hierarchy.clone(), Some(got)));
            }
            let _ = helper.kill();
            let _ = helper.wait();
            for mut r in reals {
                leftovers.extend(r.cleanup());
            }
            (results, leftovers)
        })
        .join()
        .expect("real side")
    });
    assert!(
        leftovers.is_empty(),
        "FIDELITY CHECK LEFT REAL CGROUPS BEHIND (remove them by hand): {leftovers:#?}"
    );

    // The model side.
    let mut total = 0;
    let mut agree = 0;
    let mut report = String::new();
    for (c, (key, real)) in corpus.iter().zip(results) {
        let Some(real) = real else {
            report += &format!("{key}: not mounted here, skipped\n");
            continue;
        };
        let mut m = model_for_this_machine(&data, pid);
        let dir = model_dir(&m, &c.hierarchy);
        for (op, want) in c.op.iter().zip(real) {
            let rel = fill(&op.path, &name, pid);
            let path = format!("{dir}/{rel}");
            let value = op.value.as_deref().map(|v| fill(v, &name, pid));
            let t = std::time::Instant::now();
            let got = on_model(&mut m, &op.op, &path, value.as_deref(), pid);
            model_time
                .entry(op.op.clone())
                .or_default()
                .push(t.elapsed());
            total += 1;
            let same = got == want;
            agree += usize::from(same);
            report += &format!(
                "{} {key}: {} {}{} -> kernel {want:?}{}\n",
                if same { "=" } else { "≠" },
                op.op,
                op.path,
                op.value
                    .as_deref()
                    .map(|v| format!(" {v:?}"))
                    .unwrap_or_default(),
                if same {
                    String::new()
                } else {
                    format!(", model {got:?}")
                }
            );
        }
    }
    println!("{report}");
    let mean =
        |v: &[std::time::Duration]| v.iter().sum::<std::time::Duration>() / v.len().max(1) as u32;
    println!("latency per op (mean; real = syscalls on this kernel's cgroupfs, model = the model's core, no FUSE):");
    for (op, v) in real_time.lock().unwrap().iter() {
        let m = model_time.get(op).map(|m| mean(m)).unwrap_or_default();
        println!(
            "  {op:<10} n={:<3} real {:>9.1?}  model {:>9.1?}",
            v.len(),
            mean(v),
            m
        );
    }
    println!("fidelity: {agree}/{total} ops agree");
    assert_eq!(agree, total, "model and kernel differ:\n{report}");
}
