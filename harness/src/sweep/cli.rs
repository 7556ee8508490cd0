//! `cgrepro sweep FILE [--cell AXIS=GLOB ...] [--jobs N] [--cap N] [--state FILE] [--no-write]`:
//! sweep every selected cell of a scenario (each cell is one target), print a table per
//! target, write minimised scenarios for the bugs under `scenarios/found/`.
//!
//! Exit status: 0 no bug found; 1 bugs found; 2 bad input or a sweep that could not run;
//! 130 interrupted (the state file keeps what was done: run the same command again).

use std::path::PathBuf;

use super::{render, sweep_case, Options, Tables};
use crate::engine::Engine;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The scenario to sweep.
    pub file: PathBuf,
    /// Restrict to matrix cells: AXIS=VALUE (repeatable; values may be globs). Default: every cell.
    #[arg(long = "cell", value_name = "AXIS=VALUE")]
    pub cells: Vec<String>,
    /// Parallel runs (default: number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// At most this many distinct op × path sites per target.
    #[arg(long, default_value_t = 200)]
    pub cap: usize,
    /// State file to resume from (one cell only). Default: target/sweep/<case>.jsonl.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Where the minimised scenarios of bugs go.
    #[arg(long, value_name = "DIR", default_value = "scenarios/found")]
    pub found: PathBuf,
    /// Do not write scenarios (table only; no minimisation runs).
    #[arg(long)]
    pub no_write: bool,
}

pub fn main(engine: &Engine, args: &Args, jobs: usize) -> i32 {
    let scenario = match engine.load(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let cases = match scenario.select(&args.cells) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if args.state.is_some() && cases.len() > 1 {
        eprintln!(
            "error: --state names one file, and {} cells are selected: choose one with --cell",
            cases.len()
        );
        return 2;
    }
    let tables = match Tables::load(&engine.root) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let found_dir = if args.found.is_absolute() {
        args.found.clone()
    } else {
        engine.root.join(&args.found)
    };
    let opts = Options {
        jobs,
        cap: args.cap,
        state: args.state.clone(),
        found_dir: (!args.no_write).then_some(found_dir),
    };
    let mut bugs = 0;
    let mut failed = 0;
    for case in cases {
        if let Some(why) = engine.ignore_reason(case) {
            println!("sweep     {}\nignored   {why}\n", case.name);
            continue;
        }
        let mut out = std::io::stdout();
        match sweep_case(engine, &tables, case, &opts, &mut out) {
            Ok(t) => {
                bugs += t.rows.iter().filter(|r| r.verdict.kind.is_bug()).count();
                println!("{}", render(&t, &engine.root));
            }
            Err(e) => {
                failed += 1;
                println!("error     {e}\n");
            }
        }
        if crate::sandbox::interrupt::interrupted() {
            break;
        }
    }
    if failed > 0 {
        2
    } else if bugs > 0 {
        1
    } else {
        0
    }
}
