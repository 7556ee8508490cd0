//! `cgrepro real-kernel`: the differential run of the cgroupfs model against real kernels
//! booted under QEMU, per kernel × mode (see `crate::lane` and `crate::fuzz`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fuzz::differential::{self, mode_name, parse_mode, Config};
use crate::host::HostData;
use crate::lane::kernels;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kernel series from the lane cache (repeatable).
    #[arg(long = "kernel", default_values_t = ["6.1".to_string()])]
    pub kernels: Vec<String>,
    /// cgroup mode: v1, hybrid, v2 (repeatable).
    #[arg(long = "mode", default_values_t = ["v2".to_string()])]
    pub modes: Vec<String>,
    /// Generated ops per kernel × mode (at least).
    #[arg(long, default_value_t = 2000)]
    pub ops: usize,
    /// Ops per sequence.
    #[arg(long, default_value_t = 40)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Minimise up to N distinct disagreements (delta debugging, extra boots).
    #[arg(long, default_value_t = 0)]
    pub minimise: usize,
    /// At most this many minimisation boots.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Write the minimised disagreements to fixtures/kernels/disagreements/.
    #[arg(long)]
    pub write_fixtures: bool,
    /// Where initramfs, serial logs and ops.txt go (default: a temp dir).
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Seconds before a boot is abandoned.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Run this program in each kernel × mode instead of op sequences (its directory goes
    /// along, with the libraries it loads): e.g. the peer suite's runner,
    /// target/peer-suite/cgroups-rs-0.3.4/run. Prints its libtest verdicts as a
    /// `[lane."<series>-<mode>"]` table for fixtures/peer/.
    #[arg(long)]
    pub command: Option<PathBuf>,
    /// Replay fixtures/kernels/disagreements/ of each kernel × mode on the kernel and
    /// check it still answers what each records.
    #[arg(long)]
    pub check_fixtures: bool,
}

/// Call `f` for each cached kernel of `--kernel` × each mode; `f` says whether that lane
/// went well. Exit code: 2 when a kernel is not cached, 1 when a lane failed.
fn each_lane(
    a: &Args,
    modes: &[crate::host::CgroupMode],
    mut f: impl FnMut(&kernels::Kernel, crate::host::CgroupMode) -> bool,
) -> i32 {
    let cache = kernels::cache_dir();
    let mut failed = false;
    for series in &a.kernels {
        let kernel = match kernels::find(&cache, series) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        for &mode in modes {
            failed |= !f(&kernel, mode);
        }
    }
    i32::from(failed)
}

/// `--check-fixtures`.
fn check_fixtures(
    root: &Path,
    data: &HostData,
    a: &Args,
    modes: &[crate::host::CgroupMode],
    work: &Path,
) -> i32 {
    each_lane(a, modes, |kernel, mode| {
        let (series, m) = (&kernel.series, mode_name(mode));
        let dir = work.join(format!("{series}-{m}-fixtures"));
        let timeout = Duration::from_secs(a.timeout);
        let (release, checks) =
            match differential::check_fixtures(root, data, kernel, mode, &dir, timeout) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {series} {m}: {e}");
                    return false;
                }
            };
        let held = checks.iter().filter(|c| c.holds()).count();
        println!(
            "{series} {m} ({release}): {held}/{} fixtures get the kernel result they record",
            checks.len()
        );
        for c in &checks {
            let name = c.path.file_name().unwrap_or_default().to_string_lossy();
            if c.holds() {
                println!("  = {name}");
            } else {
                println!(
                    "  ≠ {name}: recorded {:?}, kernel now {:?}",
                    c.recorded, c.kernel
                );
            }
        }
        held == checks.len()
    })
}

/// `--command`: the program's output and libtest verdicts per kernel × mode. A program
/// that prints no libtest verdicts (not a test suite) passes when it exits 0 in the guest;
/// its stdout is printed as it is.
fn run_commands(
    root: &Path,
    data: &HostData,
    a: &Args,
    program: &Path,
    modes: &[crate::host::CgroupMode],
    work: &Path,
) -> i32 {
    each_lane(a, modes, |kernel, mode| {
        let (series, m) = (&kernel.series, mode_name(mode));
        eprintln!(
            "== {series} ({}) {m}: booting with {}",
            kernel.release,
            program.display()
        );
        let dir = work.join(format!("{series}-{m}-command"));
        let r = match differential::run_command(
            root,
            data,
            kernel,
            mode,
            program,
            &dir,
            Duration::from_secs(a.timeout),
        ) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {series} {m}: {e}");
                return false;
            }
        };
        let _ = std::fs::write(dir.join("stdout.txt"), &r.out.stdout);
        let _ = std::fs::write(dir.join("stderr.txt"), &r.out.stderr);
        let verdicts = crate::report::libtest::verdicts(&r.out.stdout);
        eprintln!(
            "{series} {m} ({}): exit {}{}, {} verdicts, boot {:.1} s, VM total {:.1} s, prologue {}; output in {}",
            r.release,
            r.out.status,
            if r.out.timed_out { " (timed out)" } else { "" },
            verdicts.len(),
            r.boot_time.as_secs_f64(),
            r.vm_total.as_secs_f64(),
            if r.prologue_agrees { "agrees" } else { "DIFFERS" },
            dir.display()
        );
        if verdicts.is_empty() {
            // Not a test suite: its output is the result, and its exit status the verdict.
            print!("{}", r.out.stdout);
            eprint!("{}", r.out.stderr);
            return r.out.status == 0 && !r.out.timed_out;
        }
        println!("[lane.\"{series}-{m}\"]");
        println!(
            "source = \"{} under QEMU (TCG), cgroup {m}: cgrepro real-kernel --kernel {series} --mode {m} --command {}\"",
            r.release,
            program.display()
        );
        println!("release = \"{}\"", r.release);
        println!("\n[lane.\"{series}-{m}\".verdicts]");
        for (t, v) in &verdicts {
            println!("\"{t}\" = \"{v}\"");
        }
        println!();
        true
    })
}

pub fn run(root: &Path, a: Args) -> i32 {
    let data = match HostData::load(&root.join("fixtures")) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: host data: {e}");
            return 2;
        }
    };
    let mut modes = Vec::new();
    for m in &a.modes {
        match parse_mode(m) {
            Some(x) => modes.push(x),
            None => {
                eprintln!("error: --mode {m}: expected v1, hybrid or v2");
                return 2;
            }
        }
    }
    let work = a.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cgrepro-lane-{}", std::process::id()))
    });
    if a.check_fixtures {
        return check_fixtures(root, &data, &a, &modes, &work);
    }
    if let Some(program) = &a.command {
        return run_commands(root, &data, &a, program, &modes, &work);
    }
    let mut rows = Vec::new();
    let code = each_lane(&a, &modes, |kernel, mode| {
        let series = &kernel.series;
        let mut ok = true;
        let cfg = Config {
            seed: a.seed,
            ops: a.ops,
            seq_len: a.seq_len,
            minimise: a.minimise,
            rounds: a.rounds,
            timeout: Duration::from_secs(a.timeout),
        };
        let found_by = format!(
            "cgrepro real-kernel --kernel {series} --mode {} --seed {} --ops {}",
            mode_name(mode),
            a.seed,
            a.ops
        );
        let dir = work.join(format!("{series}-{}", mode_name(mode)));
        eprintln!(
            "== {series} ({}) {}: booting",
            kernel.release,
            mode_name(mode)
        );
        let o = match differential::run(root, &data, kernel, mode, &cfg, &dir, &found_by) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {series} {}: {e}", mode_name(mode));
                return false;
            }
        };
        let log = dir.join("ops.txt");
        let text: String = o.verdicts.iter().map(|v| v.line() + "\n").collect();
        let _ = std::fs::write(&log, text);
        println!(
            "{} {} ({}): {}/{} ops agree ({:.1} %), prologue {}; boot {:.1} s, VM total {:.1} s, kernel ops {:.0} ops/s (guest clock), model {:.0} ops/s; op by op: {}",
            o.series,
            mode_name(o.mode),
            o.release,
            o.agree(),
            o.verdicts.len(),
            o.percent(),
            if o.prologue_agrees { "agrees" } else { "DIFFERS" },
            o.boot_time.as_secs_f64(),
            o.vm_total.as_secs_f64(),
            o.verdicts.len() as f64 / o.kernel_ops_time.as_secs_f64().max(1e-9),
            o.verdicts.len() as f64 / o.model_ops_time.as_secs_f64().max(1e-9),
            log.display()
        );
        for v in o.verdicts.iter().filter(|v| !v.agrees()).take(30) {
            println!("  {}", v.line());
        }
        let n = o.verdicts.len() - o.agree();
        if n > 30 {
            println!("  … {} more in {}", n - 30, log.display());
        }
        if !o.minimised.is_empty() {
            println!("  minimised ({} boots in all):", o.boots);
            for d in &o.minimised {
                println!("  - {} ({} ops)", d.title, d.op.len());
                for op in &d.op {
                    println!("      {}", op.line());
                }
            }
        }
        if a.write_fixtures {
            let dir = root.join("fixtures/kernels/disagreements");
            let _ = std::fs::create_dir_all(&dir);
            let existing = crate::fuzz::fixture::Disagreement::load_all(&dir).unwrap_or_default();
            let mut k = existing.len();
            for d in &o.minimised {
                if existing
                    .iter()
                    .any(|(_, e)| e.op == d.op && e.mode == d.mode && e.series == d.series)
                {
                    continue;
                }
                // The next number whose file does not exist: a count of the fixtures
                // alone would overwrite one after another was deleted.
                let p = loop {
                    k += 1;
                    let p = dir.join(format!("{}-{}-{k:03}.toml", d.series, d.mode));
                    if !p.exists() {
                        break p;
                    }
                };
                if let Err(e) = std::fs::write(&p, d.to_toml()) {
                    eprintln!("error: {}: {e}", p.display());
                    ok = false;
                }
            }
        }
        rows.push(o);
        ok
    });
    if rows.len() > 1 {
        println!("\nkernel  mode    ops   agree");
        for o in &rows {
            println!(
                "{:<7} {:<6} {:>5} {:>6.1} %",
                o.series,
                mode_name(o.mode),
                o.verdicts.len(),
                o.percent()
            );
        }
    }
    code
}
