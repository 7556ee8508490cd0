//! The `cgrepro` command line: `list`, `run`, `replay`, `matrix`, `report`, `sweep` (in
//! `crate::sweep::cli`), `real-kernel` (in `real_kernel`).
//!
//! Exit status: 0 all good; 1 a case failed (unexpected outcome, changed snapshot,
//! harness error) or was killed by an interruption; 2 bad input (scenario errors, unknown
//! cell); 3 selected cases cannot run on this machine (unless `--allow-ignored`);
//! 130 interrupted; 141 stdout was closed (`| head`), quietly.

mod bisect;
mod capture;
mod exec;
mod import;
mod output;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod real_kernel;

use crate::engine::Engine;
use crate::report::{self, Report};
use crate::sandbox::interrupt;
use crate::scenario::{Case, Scenario};
use output::OutputArgs;

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
    /// The real Kata shim (`containerd-shim-kata-v2`) for `[target] shim = "kata"` cases
    /// that name no `version`. Default: $CGREPRO_KATA_SHIM; without either they are ignored.
    #[arg(long, global = true, value_name = "PATH")]
    shim: Option<PathBuf>,
    /// Kata releases for `shim = "kata"` with `target.version`: a directory of
    /// `containerd-shim-kata-v2-<version>` binaries (what `ci/kata-shim.sh` builds).
    /// Default: $CGREPRO_KATA_SHIM_DIR, else /var/cache/cgrepro/kata-shims (root) or
    /// ~/.cache/cgrepro/kata-shims.
    #[arg(long, global = true, value_name = "DIR")]
    shim_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List cases (scenario × matrix cell) whose name contains any FILTER (all without one).
    List { filters: Vec<String> },
    /// Run cases whose name contains any FILTER (all without one); check expectations and
    /// snapshots.
    Run {
        filters: Vec<String>,
        /// Parallel cases (default: number of CPUs).
        #[arg(long, short)]
        jobs: Option<usize>,
        #[command(flatten)]
        out: OutputArgs,
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
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Write the HTML page of a run from its directory's cases.jsonl.
    Report {
        /// A run directory (default: the latest run, target/cgrepro/latest).
        dir: Option<PathBuf>,
        /// Where to write the page (default: index.html in the run directory).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Fail every cgroupfs op of a case with every errno the kernel can give there, and
    /// every call to the host's systemd with the errors systemd gives it; judge
    /// and tabulate what the target does; write minimised scenarios for the bugs.
    Sweep(crate::sweep::cli::Args),
    /// Read this node's host (kernel, cgroup mounts and tree, systemd, devices) into a host
    /// file that `[host] file = "..."` replays. Read-only; writes only FILE.
    Capture(capture::Args),
    /// Turn a bug report (issue text, containerd/kubelet/journal log, kata-collect-data
    /// output, a panic) into a scenario draft, run it, and compare report and replay.
    Import(import::Args),
    /// Find the first value of an ordered axis whose outcome signature differs from the
    /// first value's, in log2 runs.
    Bisect(bisect::Args),
    /// Differential op fuzzing of the cgroupfs model against real kernels booted under QEMU
    /// (kernels from `bash ci/kernel-lane.sh`); prints the agreement per kernel × mode.
    RealKernel(real_kernel::Args),
}

pub fn main() -> i32 {
    output::quiet_broken_pipe();
    let code = std::panic::catch_unwind(main_inner);
    if output::broken_pipe() {
        return 141;
    }
    code.unwrap_or(101)
}

fn main_inner() -> i32 {
    let cli = Cli::parse();
    // A capture runs on the node a report came from: no repository, no sandbox session,
    // nothing written but its output.
    if let Command::Capture(args) = &cli.command {
        return capture::run(args);
    }
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
    for removed in engine.session().map_or(&[][..], |s| s.stale_removed()) {
        eprintln!("note: {removed}");
    }
    if let Some(p) = &cli.shim {
        let p = p.canonicalize().unwrap_or_else(|_| p.clone());
        engine.set_kata_shim(p);
    }
    if let Some(d) = &cli.shim_dir {
        engine.drivers.kata_shim_dir = d.canonicalize().unwrap_or_else(|_| d.clone());
    }
    let code = match cli.command {
        Command::List { filters } => list(&engine, &filters),
        Command::Run { filters, jobs, out } => run(&engine, &filters, jobs, &out),
        Command::Replay { file, cells, keep } => replay(&mut engine, &file, &cells, keep),
        Command::Matrix { file, jobs, out } => matrix(&engine, &file, jobs, &out),
        Command::Report { dir, html } => report_page(&engine, dir, html),
        Command::Sweep(args) => {
            prepare(&engine);
            crate::sweep::cli::main(&engine, &args, jobs(args.jobs))
        }
        Command::RealKernel(args) => real_kernel::run(&engine.root, args),
        Command::Capture(_) => unreachable!("handled before the engine exists"),
        Command::Import(args) => {
            prepare(&engine);
            import::run(&engine, &args, jobs(None))
        }
        Command::Bisect(args) => {
            prepare(&engine);
            bisect::run(&engine, &args)
        }
    };
    if output::broken_pipe() {
        return 141;
    }
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

/// Whether a case is selected: its name contains any of the filters (as libtest's
/// filters), or there are none.
fn selected(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

fn list(engine: &Engine, filters: &[String]) -> i32 {
    let scenarios = match load_all_or_report(engine) {
        Ok(s) => s,
        Err(c) => return c,
    };
    for case in scenarios.iter().flat_map(|s| &s.cases) {
        if !selected(&case.name, filters) {
            continue;
        }
        match engine.ignore_reason(case) {
            Some(why) => output::line(&format!("{}  (ignored: {why})", case.name)),
            None => output::line(&case.name),
        }
        if output::broken_pipe() {
            break;
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

fn run(engine: &Engine, filters: &[String], n: Option<usize>, out: &OutputArgs) -> i32 {
    let scenarios = match load_all_or_report(engine) {
        Ok(s) => s,
        Err(c) => return c,
    };
    prepare(engine);
    let cases: Vec<&Case> = scenarios
        .iter()
        .flat_map(|s| &s.cases)
        .filter(|c| selected(&c.name, filters))
        .collect();
    let run = exec::execute(engine, &cases, jobs(n), out);
    exec::summary(&run, out, |l| say(out, l))
}

/// Closing lines: on stdout, unless stdout is JSON (then stderr).
fn say(out: &OutputArgs, l: &str) {
    match out.format {
        output::Format::Human => output::line(l),
        output::Format::Json => eprintln!("{l}"),
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
    let case = match scenario.select_one(cells) {
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
    if let Some(l) = &report.syscall_layer {
        println!("syscalls  {l}");
    }
    if let Some(shim) = report.shim.as_ref().filter(|s| !s.phases.is_empty()) {
        let phases: Vec<String> = shim
            .phases
            .iter()
            .map(|(n, d)| format!("{n} {d:.1?}"))
            .collect();
        println!("          in the case: {}", phases.join(", "));
    }
    let (problems, snap) = exec::verdict(engine, &case, &report);
    let code = match problems.is_empty() {
        true => {
            let note = if snap == "new" {
                " (no snapshot yet: run `cargo test` to record it)"
            } else {
                ""
            };
            println!("verdict   as expected{note}");
            0
        }
        false => {
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

fn matrix(engine: &Engine, file: &std::path::Path, n: Option<usize>, out: &OutputArgs) -> i32 {
    let scenario = match load_one(engine, file) {
        Ok(s) => s,
        Err(c) => return c,
    };
    prepare(engine);
    let cases: Vec<&Case> = scenario.cases.iter().collect();
    let run = exec::execute(engine, &cases, jobs(n), out);
    if out.format == output::Format::Human && !output::broken_pipe() {
        // Cells that cannot run here are not outcomes: listed apart, by reason.
        let mut reports: Vec<Report> = Vec::new();
        let mut apart: Vec<(String, Vec<String>)> = Vec::new();
        for (case, r) in cases.iter().zip(&run.results) {
            if let Some(rep) = &r.report {
                reports.push(rep.clone());
                continue;
            }
            let why = r.reason.clone().unwrap_or_else(|| "not started".into());
            let cell = case
                .cell
                .iter()
                .map(|(a, v)| format!("{a}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            match apart.iter_mut().find(|(w, _)| *w == why) {
                Some((_, cells)) => cells.push(cell),
                None => apart.push((why, vec![cell])),
            }
        }
        let mut text = format!("\n{}\n", scenario.meta.title);
        if let Some(r) = &scenario.meta.report {
            text.push_str(&format!("{r}\n"));
        }
        text.push('\n');
        if !reports.is_empty() {
            text.push_str(&report::matrix::table(&scenario.axes, &reports));
        }
        for (why, cells) in &apart {
            text.push_str(&format!("\nignored ({} cell(s)): {why}\n", cells.len()));
            for c in cells {
                text.push_str(&format!("  {c}\n"));
            }
        }
        // Which expectation an unexpected cell broke, with its [[expect]] line.
        for r in &reports {
            for f in &r.expectation_failures {
                text.push_str(&format!("\nunexpected {}: {f}", r.case));
            }
        }
        output::line(text.trim_end());
    }
    exec::summary(&run, out, |l| say(out, l))
}

/// `cgrepro report`: the HTML page of a run, from its cases.jsonl.
fn report_page(engine: &Engine, dir: Option<PathBuf>, html: Option<PathBuf>) -> i32 {
    let dir = dir.unwrap_or_else(|| engine.root.join("target/cgrepro/latest"));
    let jsonl = dir.join("cases.jsonl");
    let text = match std::fs::read_to_string(&jsonl) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: cannot read {}: {e} (a run directory is made by `cgrepro run` or `cgrepro matrix`)",
                jsonl.display()
            );
            return 2;
        }
    };
    let mut records = Vec::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => records.push(v),
            Err(e) => {
                eprintln!(
                    "error: {}:{}: not a JSON record: {e}",
                    jsonl.display(),
                    i + 1
                );
                return 2;
            }
        }
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let page = report::html::render(&format!("cgrepro run {name}"), &records);
    let target = html.unwrap_or_else(|| dir.join("index.html"));
    if let Err(e) = std::fs::write(&target, page) {
        eprintln!("error: cannot write {}: {e}", target.display());
        return 2;
    }
    output::line(&target.display().to_string());
    0
}
