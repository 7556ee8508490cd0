//! A peer's test suite as the measure of fidelity: cgroups-rs 0.3.4's own integration
//! tests (the crates.io package, unmodified, built by `ci/peer-suite.sh`) run as a
//! `command` target on simulated hosts served by the cgroupfs model, and compared test by
//! test with the same suite on a real kernel.
//!
//! Lanes:
//! * `this-machine`: the suite on this machine's real kernel (`ci/peer-suite-real.sh`,
//!   confined to throwaway cgroups in a cgroup namespace; root and cgroup v1 hierarchies
//!   needed) against the model configured as this machine (its release, its hybrid
//!   layout, the controllers it has mounted). Every verdict must agree.
//! * `6.1-v1`, `6.1-v2`, `6.12-v2`: the simulated host that stands for a real-kernel lane
//!   kernel × mode (as `cgrepro real-kernel` builds it: the release booted, no systemd,
//!   the series' knobs), held to the verdicts the suite gave in that lane's QEMU guest,
//!   recorded in `fixtures/peer/cgroups-rs-0.3.4.toml`; a lane with none recorded is
//!   reported ignored, with its verdicts printed.
//!
//! `cargo test -p cgrepro --test peer_suite -- --nocapture` prints each lane's table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cgrepro::engine::Engine;
use cgrepro::report::Report;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

const SUITE: &str = "cgroups-rs-0.3.4";

type Verdicts = BTreeMap<String, String>;

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let engine = match Engine::new(&root) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(101);
        }
    };
    let run = root.join("target/peer-suite").join(SUITE).join("run");
    let recorded = recorded_lanes(&root);
    let mut trials = Vec::new();

    {
        let (engine, run, root) = (Arc::clone(&engine), run.clone(), root.clone());
        trials.push(Trial::ignorable_test(
            "this-machine::model_agrees_with_the_real_kernel",
            move || {
                if let Some(why) = not_here(&engine, &run).or_else(real_not_here) {
                    return Ok(Completion::ignored_with(why));
                }
                let real = run_real(&root, &run)?;
                let host = this_machine_host(&root);
                let model = run_model(&engine, &root, &run, "this-machine", &host)?;
                compare("this-machine", &real, &model)
            },
        ));
    }
    for lane in ["6.1-v1", "6.1-v2", "6.12-v2"] {
        let (engine, run, root) = (Arc::clone(&engine), run.clone(), root.clone());
        let real = recorded.get(lane).cloned();
        trials.push(Trial::ignorable_test(
            format!("{lane}::model_agrees_with_the_real_kernel"),
            move || {
                if let Some(why) = not_here(&engine, &run) {
                    return Ok(Completion::ignored_with(why));
                }
                let Some(real) = real else {
                    let host = lane_host(&root, lane, None)?;
                    let model = run_model(&engine, &root, &run, lane, &host)?;
                    println!("{lane} (simulated; no real-kernel verdicts recorded):");
                    for (t, v) in &model {
                        println!("  {t:<55} {v}");
                    }
                    return Ok(Completion::ignored_with(format!(
                        "no real-kernel verdicts for {lane} in fixtures/peer/{SUITE}.toml \
                         (record them: cgrepro real-kernel --command target/peer-suite/{SUITE}/run)"
                    )));
                };
                let host = lane_host(&root, lane, Some(&real.release))?;
                let model = run_model(&engine, &root, &run, lane, &host)?;
                compare(lane, &real.verdicts, &model)
            },
        ));
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Why the suite cannot run on the model here, if it cannot.
fn not_here(engine: &Engine, run: &Path) -> Option<String> {
    if !run.is_file() {
        return Some(format!(
            "{} is not built (run ci/peer-suite.sh)",
            run.display()
        ));
    }
    let session = match engine.session() {
        Some(s) => s,
        None => return Some("no sandbox on this machine".into()),
    };
    session.model_unavailable().map(str::to_owned)
}

/// Why the suite cannot run on this machine's real kernel, if it cannot.
fn real_not_here() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the real-kernel run needs root (it creates throwaway cgroups)".into());
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mi.lines().any(|l| l.contains(" - cgroup cgroup ")) {
        return Some("the real-kernel run needs cgroup v1 hierarchies mounted".into());
    }
    None
}

fn run_real(root: &Path, run: &Path) -> Result<Verdicts, Failed> {
    let out = std::process::Command::new(root.join("ci/peer-suite-real.sh"))
        .arg(run)
        .env_remove("RUST_BACKTRACE")
        .output()
        .map_err(|e| format!("ci/peer-suite-real.sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Exit 1 = some test failed (a verdict like any other); anything else is the runner's.
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(format!(
            "ci/peer-suite-real.sh failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let v = cgrepro::report::libtest::verdicts(&stdout);
    if v.is_empty() {
        return Err(format!("no libtest verdicts in the real run's output:\n{stdout}").into());
    }
    Ok(v)
}

/// The model configured as this machine: its release, hybrid, and only the controllers
/// this machine has mounted as v1 hierarchies (cgroups-rs finds the others nowhere).
fn this_machine_host(root: &Path) -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let known: Vec<String> =
        std::fs::read_to_string(root.join("fixtures/kernels/controllers.toml"))
            .ok()
            .and_then(|s| s.parse::<toml::Table>().ok())
            .and_then(|t| t.get("controller").and_then(|c| c.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_owned))
            .collect();
    let mut off = Vec::new();
    for line in std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .skip(1)
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [name, hier, ..] = f[..] {
            if hier == "0" && known.iter().any(|k| k == name) {
                off.push(format!("{name} = false"));
            }
        }
    }
    for name in &known {
        let listed = std::fs::read_to_string("/proc/cgroups")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name));
        if !listed && name != "io" && !off.iter().any(|o| o.starts_with(&format!("{name} "))) {
            off.push(format!("{name} = false"));
        }
    }
    let memsw = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    format!(
        "kernel = \"{}\"\ncgroup = \"hybrid\"\nsystemd = 252\nswap_accounting = {memsw}\noptions = {{ {} }}",
        release.trim(),
        off.join(", ")
    )
}

/// The suite as a `command` target on the model with `[host]` = `host`.
fn run_model(
    engine: &Engine,
    root: &Path,
    run: &Path,
    lane: &str,
    host: &str,
) -> Result<Verdicts, Failed> {
    let dir = root.join("target/peer-suite/scenarios");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file: PathBuf = dir.join(format!("{SUITE}-{lane}.toml"));
    let toml = format!(
        "[scenario]\ntitle = \"{SUITE}'s integration tests on the {lane} lane\"\n\n\
         [host]\n{host}\n\n[target]\ncommand = [\"{}\"]\ntimeout = \"300s\"\n",
        run.display()
    );
    std::fs::write(&file, toml).map_err(|e| format!("{}: {e}", file.display()))?;
    let scenario = engine.load(&file).map_err(|e| e.to_string())?;
    let case = scenario
        .cases
        .into_iter()
        .next()
        .ok_or("the generated scenario has no case")?;
    let report: Report = engine.run(&case, false);
    if report.tests.is_empty() {
        return Err(format!(
            "no libtest verdicts from the model run:\n{}",
            report.snapshot()
        )
        .into());
    }
    Ok(report.tests)
}

/// What the real-kernel lane recorded for one kernel × mode.
#[derive(Clone)]
struct Recorded {
    /// `uname -r` of the kernel booted.
    release: String,
    verdicts: Verdicts,
}

/// Real-kernel verdicts recorded per lane (`[lane.<name>]` with `release` and a
/// `[lane.<name>.verdicts]` table).
fn recorded_lanes(root: &Path) -> BTreeMap<String, Recorded> {
    let path = root.join("fixtures/peer").join(format!("{SUITE}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let mut out = BTreeMap::new();
    if let Some(lanes) = table.get("lane").and_then(|l| l.as_table()) {
        for (name, lane) in lanes {
            let release = lane
                .get("release")
                .and_then(|r| r.as_str())
                .unwrap_or_else(|| {
                    panic!(
                        "{}: [lane.\"{name}\"] has no release (the kernel's uname -r)",
                        path.display()
                    )
                })
                .to_owned();
            let verdicts = lane
                .get("verdicts")
                .and_then(|v| v.as_table())
                .map(|t| {
                    t.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(name.clone(), Recorded { release, verdicts });
        }
    }
    out
}

/// The simulated host that stands for a lane's kernel × mode, as the real-kernel lane
/// builds it (`fixtures/kernels/lane.toml`: no systemd, the series' config knobs): the
/// recorded release, or that of the series in this machine's lane cache.
fn lane_host(root: &Path, lane: &str, release: Option<&str>) -> Result<String, Failed> {
    let (series, mode) = lane.split_once('-').ok_or("lane name SERIES-MODE")?;
    let file = root.join("fixtures/kernels/lane.toml");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let t: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let entry = t
        .get("series")
        .and_then(|s| s.get(series))
        .ok_or_else(|| format!("{}: no [series.\"{series}\"]", file.display()))?;
    let options: Vec<String> = entry
        .get("options")
        .and_then(|o| o.as_table())
        .map(|o| o.iter().map(|(k, v)| format!("{k} = {v}")).collect())
        .unwrap_or_default();
    let swap = entry
        .get("swap_accounting")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let release = match release {
        Some(r) => r.to_owned(),
        None => cgrepro::lane::kernels::find(&cgrepro::lane::kernels::cache_dir(), series)
            .map(|k| k.release)
            .unwrap_or_else(|_| format!("{series}.0")),
    };
    Ok(format!(
        "kernel = \"{release}\"\ncgroup = \"{mode}\"\nsystemd = false\nswap_accounting = {swap}\noptions = {{ {} }}",
        options.join(", ")
    ))
}

/// Every test's verdict on the model must be the real kernel's.
fn compare(lane: &str, real: &Verdicts, model: &Verdicts) -> Result<Completion, Failed> {
    let mut names: Vec<&String> = real.keys().chain(model.keys()).collect();
    names.sort();
    names.dedup();
    let none = "-".to_string();
    let mut differ = Vec::new();
    println!("{lane}: {:<55} {:<8} model", "test", "real");
    for t in &names {
        let (r, m) = (
            real.get(*t).unwrap_or(&none),
            model.get(*t).unwrap_or(&none),
        );
        println!("  {t:<55} {r:<8} {m}");
        if r != m {
            differ.push(format!("{t}: real {r}, model {m}"));
        }
    }
    let agree = names.len() - differ.len();
    println!("{lane}: {agree}/{} tests agree", names.len());
    if differ.is_empty() {
        Ok(Completion::Completed)
    } else {
        Err(format!(
            "{lane}: {} of {} tests differ from the real kernel:\n  {}",
            differ.len(),
            names.len(),
            differ.join("\n  ")
        )
        .into())
    }
}
