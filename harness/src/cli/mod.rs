//! The `cgrepro` command line: `list`, `run`, `replay`, `matrix`, `real-kernel`.
//!
//! Exit status: 0 all good; 1 a case failed (unexpected outcome, changed snapshot,
//! harness error); 2 bad input (scenario errors, unknown cell); 130 interrupted.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod real_kernel;

use crate::engine::Engine;
use crate::pool;
use crate::report::{self, snapshot::Comparison, Report};
use crate::sandbox::interrupt;
use crate::scenario::{Case, Scenario};

#[derive(Parser, Debug)]
#[command(
    name = "cgrepro",
    version,
    about = "Reproduce crashes of container resource-controller code on simulated hosts"
)]
struct Cli {
    /// Repository root (holds scenarios/ and fixtures/). Default: found from the current directory.
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// The real Kata shim (`containerd-shim-kata-v2`) for `[target] shim = "kata"`
    /// scenarios. Default: $CGREPRO_KATA_SHIM; without either those cases are ignored.
    #[arg(long, global = true, value_name = "PATH")]
    shim: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List cases (scenario × matrix cell) whose name contains FILTER.
    List { filter: Option<String> },
    /// Run cases whose name contains FILTER; check expectations and snapshots.
    Run {
        filter: Option<String>,
        /// Parallel cases (default: number of CPUs).
        #[arg(long, short)]
        jobs: Option<usize>,
    },
    /// Replay one case of a scenario file, verbosely.
    Replay {
        file: PathBuf,
        /// Select the matrix cell: axis=value (repeatable). Values may be globs.
        #[arg(long = "cell", value_name = "AXIS=VALUE")]
        cells: Vec<String>,
        /// Leave the simulated host and the case's layer on disk, and print where.
        #[arg(long)]
        keep: bool,
    },
    /// Run a scenario across its matrix and print the outcome table.
    Matrix {
        file: PathBuf,
        #[arg(long, short)]
        jobs: Option<usize>,
    },
    /// Differential op fuzzing of the cgroupfs model against real kernels booted under QEMU
    /// (kernels from `bash ci/kernel-lane.sh`); prints the agreement per kernel × mode.
    RealKernel {
        /// Kernel series from the lane cache (repeatable).
        #[arg(long = "kernel", default_values_t = ["6.1".to_string()])]
        kernels: Vec<String>,
        /// cgroup mode: v1, hybrid, v2 (repeatable).
        #[arg(long = "mode", default_values_t = ["v2".to_string()])]
        modes: Vec<String>,
        /// Generated ops per kernel × mode (at least).
        #[arg(long, default_value_t = 2000)]
        ops: usize,
        /// Ops per sequence.
        #[arg(long, default_value_t = 40)]
        seq_len: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Minimise up to N distinct disagreements (delta debugging, extra boots).
        #[arg(long, default_value_t = 0)]
        minimise: usize,
        /// At most this many minimisation boots.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Write the minimised disagreements to fixtures/kernels/disagreements/.
        #[arg(long)]
        write_fixtures: bool,
        /// Where initramfs, serial logs and ops.txt go (default: a temp dir).
        #[arg(long)]
        work: Option<PathBuf>,
        /// Seconds before a boot is abandoned.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    if let Err(e) = interrupt::install() {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    let root = match &cli.root {
        Some(r) => Ok(r.clone()),
        None => Engine::find_root(&std::env::current_dir().unwrap_or_default()),
    };
    let engine = root.and_then(|r| Engine::new(&r));
    let mut engine = match engine {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Some(p) = &cli.shim {
        let p = p.canonicalize().unwrap_or_else(|_| p.clone());
        engine.set_kata_shim(p);
    }
    let code = match cli.command {
        Command::List { filter } => list(&engine, filter.as_deref()),
        Command::Run { filter, jobs } => run(&engine, filter.as_deref(), jobs),
        Command::Replay { file, cells, keep } => replay(&mut engine, &file, &cells, keep),
        Command::Matrix { file, jobs } => matrix(&engine, &file, jobs),
        Command::RealKernel {
            kernels,
            modes,
            ops,
            seq_len,
            seed,
            minimise,
            rounds,
            write_fixtures,
            work,
            timeout,
        } => real_kernel::run(
            &engine.root,
            real_kernel::Args {
                kernels,
                modes,
                ops,
                seq_len,
                seed,
                minimise,
                rounds,
                write_fixtures,
                work,
                timeout,
            },
        ),
    };
    if interrupt::interrupted() {
        eprintln!("interrupted: running cases were killed, partial results above");
        return 130;
    }
    code
}

fn load_all_or_report(engine: &Engine) -> Result<Vec<Scenario>, i32> {
    let (scenarios, errors) = engine.load_all();
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}\n");
        }
        eprintln!("{} scenario file(s) have errors", errors.len());
        return Err(2);
    }
    Ok(scenarios)
}

fn list(engine: &Engine, filter: Option<&str>) -> i32 {
    let scenarios = match load_all_or_report(engine) {
        Ok(s) => s,
        Err(c) => return c,
    };
    for case in scenarios.iter().flat_map(|s| &s.cases) {
        if filter.is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        match engine.ignore_reason(case) {
            Some(why) => println!("{}  (ignored: {why})", case.name),
            None => println!("{}", case.name),
        }
    }
    0
}

fn prepare(engine: &Engine) {
    if let Err(e) = engine.build_drivers() {
        eprintln!("warning: {e}");
    }
}

fn jobs(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1)
}

/// Verdict of one case for `run`.
fn verdict(engine: &Engine, case: &Case, report: &Report) -> Result<&'static str, Vec<String>> {
    let mut problems = report.expectation_failures.clone();
    if let crate::outcome::Outcome::HarnessError { message } = &report.outcome {
        if case
            .expect
            .iter()
            .all(|e| e.class != Some(crate::outcome::Class::HarnessError))
        {
            problems.push(format!("harness error: {message}"));
        }
    }
    let note = match report::snapshot::compare(&engine.scenarios_root, case, &report.snapshot()) {
        Comparison::Same => "",
        Comparison::New => " (no snapshot yet: run `cargo test` to record it)",
        Comparison::Changed(_) => {
            problems.push(format!(
                "outcome differs from the snapshot {} (see the diff with `cargo test -p cgrepro --test scenarios -- '{}'`)",
                report::snapshot::file(&engine.scenarios_root, case).display(),
                case.name
            ));
            ""
        }
    };
    if problems.is_empty() {
        Ok(note)
    } else {
        Err(problems)
    }
}

fn run(engine: &Engine, filter: Option<&str>, n: Option<usize>) -> i32 {
    let scenarios = match load_all_or_report(engine) {
        Ok(s) => s,
        Err(c) => return c,
    };
    prepare(engine);
    let cases: Vec<&Case> = scenarios
        .iter()
        .flat_map(|s| &s.cases)
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    let start = std::time::Instant::now();
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let results = pool::map(&cases, jobs(n), |case| match engine.ignore_reason(case) {
        Some(why) => Err(why),
        None => Ok(engine.run(case, false)),
    });
    for (case, result) in cases.iter().zip(results) {
        match result {
            None => {}
            Some(Err(why)) => {
                ignored += 1;
                println!("ignored  {}  ({why})", case.name);
            }
            Some(Ok(report)) => match verdict(engine, case, &report) {
                Ok(note) => {
                    passed += 1;
                    println!(
                        "ok       {}  {}  [{:.0?}]{note}",
                        case.name,
                        report.signature(),
                        report.duration
                    );
                }
                Err(problems) => {
                    failed += 1;
                    println!("FAILED   {}  {}", case.name, report.signature());
                    for p in problems {
                        println!("           {p}");
                    }
                    for line in report.snapshot().lines() {
                        println!("           | {line}");
                    }
                }
            },
        }
    }
    println!(
        "\n{passed} passed, {failed} failed, {ignored} ignored ({} cases in {:.2?})",
        cases.len(),
        start.elapsed()
    );
    if failed > 0 {
        1
    } else {
        0
    }
}

fn select<'a>(scenario: &'a Scenario, cells: &[String]) -> Result<&'a Case, String> {
    let mut wanted = Vec::new();
    for c in cells {
        let Some((k, v)) = c.split_once('=') else {
            return Err(format!(
                "--cell `{c}`: expected AXIS=VALUE, e.g. --cell target.version=0.2.9"
            ));
        };
        if !scenario.axes.iter().any(|(a, _)| a == k) {
            let axes: Vec<&str> = scenario.axes.iter().map(|(a, _)| a.as_str()).collect();
            return Err(format!(
                "--cell `{c}`: the scenario has no axis `{k}` (axes: {})",
                axes.join(", ")
            ));
        }
        let glob = globset::Glob::new(v)
            .map_err(|e| format!("--cell `{c}`: {e}"))?
            .compile_matcher();
        wanted.push((k.to_owned(), glob));
    }
    let matching: Vec<&Case> = scenario
        .cases
        .iter()
        .filter(|case| {
            wanted
                .iter()
                .all(|(k, g)| case.cell.iter().any(|(a, v)| a == k && g.is_match(v)))
        })
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err("no cell of the matrix matches the --cell selection".into()),
        many => {
            let mut msg = format!(
                "{} cells match; choose one with --cell AXIS=VALUE:\n",
                many.len()
            );
            for c in many {
                msg.push_str(&format!("  {}\n", c.name));
            }
            Err(msg.trim_end().to_owned())
        }
    }
}

fn load_one(engine: &Engine, file: &std::path::Path) -> Result<Scenario, i32> {
    engine.load(file).map_err(|e| {
        eprintln!("{e}");
        2
    })
}

fn replay(engine: &mut Engine, file: &std::path::Path, cells: &[String], keep: bool) -> i32 {
    let scenario = match load_one(engine, file) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let case = match select(&scenario, cells) {
        Ok(c) => c.clone(),
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    prepare(engine);
    println!("case      {}", case.name);
    println!("title     {}", case.scenario.meta.title);
    if let Some(r) = &case.scenario.meta.report {
        println!("report    {r}");
    }
    println!("host      {}", case.host.summary());
    println!("target    {}", case.target.summary());
    if let Some(why) = engine.ignore_reason(&case) {
        println!("\nignored: {why}");
        return 0;
    }
    let report = engine.run(&case, keep);
    println!("\n{}", report.snapshot());
    println!("duration  {:.2?}", report.duration);
    let code = match verdict(engine, &case, &report) {
        Ok(note) => {
            println!("verdict   as expected{note}");
            0
        }
        Err(problems) => {
            println!("verdict   FAILED");
            for p in problems {
                println!("          {p}");
            }
            1
        }
    };
    if keep {
        if let Some(dir) = engine.keep_session() {
            println!("\nkept      {}", dir.display());
            println!("          hosts/<key>/tree is the simulated /sys/fs/cgroup, hosts/<key>/proc the /proc views,");
            if let Some(k) = &report.kept {
                println!(
                    "          {}/upper is this case's layer (its cgroupfs effects)",
                    k.display()
                );
            }
            println!("          remove it with: rm -rf {}", dir.display());
        }
    }
    code
}

fn matrix(engine: &Engine, file: &std::path::Path, n: Option<usize>) -> i32 {
    let scenario = match load_one(engine, file) {
        Ok(s) => s,
        Err(c) => return c,
    };
    prepare(engine);
    let cases: Vec<&Case> = scenario.cases.iter().collect();
    let results = pool::map(&cases, jobs(n), |case| match engine.ignore_reason(case) {
        Some(why) => Report::harness_error(case, format!("ignored: {why}")),
        None => engine.run(case, false),
    });
    let reports: Vec<Report> = results.into_iter().flatten().collect();
    println!("{}", scenario.meta.title);
    if let Some(r) = &scenario.meta.report {
        println!("{r}");
    }
    println!();
    print!("{}", report::matrix::table(&scenario.axes, &reports));
    let unexpected = reports
        .iter()
        .filter(|r| !r.expectation_failures.is_empty())
        .count();
    if unexpected > 0 {
        println!("\n{unexpected} cell(s) differ from the scenario's [[expect]]");
        1
    } else {
        0
    }
}
