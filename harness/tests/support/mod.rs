//! What the integration tests share: the repository root, and a test suite (on
//! libtest-mimic) in which a test that needs something this machine may lack — root,
//! seccomp user notification, python3, a static C toolchain, real cgroup v1 hierarchies —
//! is reported **ignored, with the reason**, instead of returning early and counting as
//! passed.
//!
//! Under `CI=true` a test whose need CI provides (root, seccomp user notification, the
//! programs `ci/setup.sh` installs) is not ignored but run, and fails with the reason: CI
//! runs as root on a machine set up for these tests, so one that cannot run there is a
//! broken CI machine, not a skip. Needs that CI machines may lack (cgroup v1 hierarchies
//! on a v2-only runner: [`available_only`]) stay ignored there too. Run anyway with
//! `--ignored` or `--include-ignored`, an ignored test fails with the reason.
//!
//! ```ignore
//! let mut suite = Suite::new();
//! suite.test("corpus_is_big_enough", corpus_is_big_enough);
//! suite.test_needing("model_agrees_with_the_kernel", need_root("mkdir in real cgroups"), model_agrees);
//! suite.run()
//! ```

#![allow(dead_code)] // each test binary uses its own part

pub mod nobody;

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

/// The repository root (the workspace).
pub fn root() -> PathBuf {
    let r = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    r.canonicalize().unwrap_or(r)
}

/// Whether this run is CI's (`CI=true`, as GitHub Actions, GitLab and our `.ci/run` set).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `Ok` when this machine has what a test needs, else why not.
pub type Need = Result<(), Unmet>;

/// What a test needs and this machine lacks.
#[derive(Debug, Clone)]
pub struct Unmet {
    pub why: String,
    /// CI machines provide it: missing under `CI=true`, the test fails instead of being
    /// ignored.
    pub ci_provides: bool,
}

impl Unmet {
    /// Something CI machines have (root, a program `ci/setup.sh` installs).
    pub fn ci_provides(why: impl Into<String>) -> Unmet {
        Unmet {
            why: why.into(),
            ci_provides: true,
        }
    }
}

/// `need`, but missing it is a reason to ignore even under `CI=true` (a machine feature
/// hosted CI runners may lack, such as cgroup v1 hierarchies).
pub fn available_only(need: Result<(), String>) -> Need {
    need.map_err(|why| Unmet {
        why,
        ci_provides: false,
    })
}

/// Root (effective uid 0).
pub fn need_root(what: &str) -> Need {
    // SAFETY: geteuid has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(Unmet::ci_provides(format!("needs root ({what})")))
    }
}

/// A sandbox for cases on this machine (root or user namespaces, seccomp user
/// notification): what running any case needs. CI machines have it.
pub fn need_sandbox() -> Need {
    let data = cgrepro::host::HostData::load(&root().join("fixtures"))
        .map_err(|e| Unmet::ci_provides(format!("the repository's host data: {e}")))?;
    match cgrepro::sandbox::Session::new(std::sync::Arc::new(data)) {
        Ok(_) => Ok(()),
        Err(e) => Err(Unmet::ci_provides(format!("cases cannot run here: {e}"))),
    }
}

/// The real-kernel lane can boot `series` here: `qemu-system-x86_64` on `PATH` and the
/// series' kernel in the lane cache (`bash ci/kernel-lane.sh SERIES`); else why not. For
/// [`available_only`]: CI may lack the lane.
pub fn lane(series: &str) -> Result<(), String> {
    let on_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join("qemu-system-x86_64").is_file());
    if !on_path {
        return Err("qemu-system-x86_64 is not installed (bash ci/kernel-lane.sh)".into());
    }
    use cgrepro::lane::kernels;
    kernels::find(&kernels::cache_dir(), series).map_err(|e| e.to_string())?;
    Ok(())
}

/// A program on `PATH` or at an absolute path.
pub fn need_program(p: &str) -> Need {
    let found = if p.starts_with('/') {
        Path::new(p).is_file()
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|d| d.join(p).is_file())
    };
    if found {
        Ok(())
    } else {
        Err(Unmet::ci_provides(format!("{p} not found")))
    }
}

/// A test suite whose tests may need what this machine lacks.
pub struct Suite {
    trials: Vec<Trial>,
    /// Tests ignored for a reason this machine has (not `#[ignore]`-style opt-ins).
    unmet: Vec<(String, String)>,
}

impl Default for Suite {
    fn default() -> Self {
        Self::new()
    }
}

impl Suite {
    pub fn new() -> Suite {
        Suite {
            trials: Vec::new(),
            unmet: Vec::new(),
        }
    }

    /// A test that runs anywhere; it fails by panicking, as a `#[test]` does.
    pub fn test(&mut self, name: &str, f: impl FnOnce() + Send + 'static) -> &mut Suite {
        self.trials.push(Trial::test(name, move || {
            f();
            Ok(())
        }));
        self
    }

    /// A test that runs when `need` is met; otherwise ignored with the reason (a
    /// failure under `CI=true`).
    pub fn test_needing(
        &mut self,
        name: &str,
        need: Need,
        f: impl FnOnce() + Send + 'static,
    ) -> &mut Suite {
        let trial = match need {
            Ok(()) => Trial::test(name, move || {
                f();
                Ok(())
            }),
            Err(unmet) if unmet.ci_provides && ci() => Trial::test(name, move || {
                Err(Failed::from(format!(
                    "CI=true, and this test cannot run here: {}",
                    unmet.why
                )))
            }),
            Err(Unmet { why, .. }) => {
                self.unmet.push((name.to_owned(), why.clone()));
                Trial::test(name, move || {
                    Err(Failed::from(format!("cannot run here: {why}")))
                })
                .with_ignored_flag(true)
            }
        };
        self.trials.push(trial);
        self
    }

    /// A test run only on request (`--ignored`), like `#[ignore = "..."]` (the caller
    /// says why in a comment); run without its need met, it fails with the reason.
    pub fn opt_in(
        &mut self,
        name: &str,
        need: Need,
        f: impl FnOnce() + Send + 'static,
    ) -> &mut Suite {
        let trial = Trial::test(name, move || match need {
            Ok(()) => {
                f();
                Ok(())
            }
            Err(unmet) => Err(Failed::from(format!("cannot run here: {}", unmet.why))),
        });
        self.trials.push(trial.with_ignored_flag(true));
        self
    }

    /// Run the selected tests as libtest would, saying first which are ignored and why.
    pub fn run(self) -> ! {
        let args = Arguments::from_args();
        if !args.list {
            for (name, why) in &self.unmet {
                let selected = self
                    .trials
                    .iter()
                    .any(|t| t.name() == name && !args.is_filtered_out(t) && args.is_ignored(t));
                if selected {
                    eprintln!("ignored: {name}: {why}");
                }
            }
        }
        libtest_mimic::run(&args, self.trials).exit()
    }
}

/// What every bench starts with: `None` when cargo only lists benches (`--list`);
/// otherwise the repository root and an engine with the drivers built. Ctrl-C kills the
/// running cases (and unwinding drops the engine, which removes its session directory).
pub fn bench_engine() -> Option<(PathBuf, cgrepro::engine::Engine)> {
    if std::env::args().any(|a| a == "--list") {
        return None;
    }
    let root = root();
    let _ = cgrepro::sandbox::interrupt::install();
    let engine = cgrepro::engine::Engine::new(&root).expect("engine");
    engine.build_drivers().expect("drivers build");
    Some((root, engine))
}

/// A count from the environment (`CGREPRO_BENCH_N`, ...), else `default`.
pub fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Make this test process the reaper of its orphaned descendants
/// (`PR_SET_CHILD_SUBREAPER`): a process a case starts then stays this process's
/// descendant even after its parent dies, so [`ours`] tells this run's processes from a
/// concurrent run's (another `cargo test` on the same machine).
pub fn adopt_orphans() {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
}

/// Whether process `pid` descends from this test process (see [`adopt_orphans`]).
pub fn ours(pid: u32) -> bool {
    let me = std::process::id();
    let mut p = pid;
    // Bounded: a pid namespace nests at most 32 deep, a process tree is not a cycle.
    for _ in 0..4096 {
        let Some(parent) = parent_of(p) else {
            return false;
        };
        if parent == me {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        p = parent;
    }
    false
}

/// The parent pid from `/proc/<pid>/stat` (the field after the state, after `comm`'s
/// closing parenthesis: `comm` may itself hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
