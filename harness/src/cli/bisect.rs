//! `cgrepro bisect FILE --axis A`: the boundary on an ordered axis (see `crate::bisect`).

use std::path::PathBuf;

use crate::bisect::{self, By};
use crate::engine::Engine;
use crate::report::Report;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The scenario file.
    file: PathBuf,
    /// The ordered matrix axis, e.g. target.version or host.kernel (values in file order,
    /// oldest first).
    #[arg(long)]
    axis: String,
    /// Fix another axis: AXIS=VALUE (repeatable). Unfixed axes take their first value.
    #[arg(long = "cell", value_name = "AXIS=VALUE")]
    cells: Vec<String>,
    /// Compare outcomes by signature without source location (default), whole
    /// signature, or only by class.
    #[arg(long, value_enum, default_value = "frame")]
    by: By,
}

fn key(r: &Report, by: By) -> String {
    match by {
        By::Frame => format!(
            "{}: {}",
            r.outcome.class(),
            bisect::without_location(&r.signature())
        ),
        By::Signature => format!("{}: {}", r.outcome.class(), r.signature()),
        By::Class => r.outcome.class().to_string(),
    }
}

pub fn run(engine: &Engine, args: &Args) -> i32 {
    let scenario = match engine.load(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let along = match bisect::cases_along(&scenario, &args.axis, &args.cells) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // Values whose cell cannot run here are left out, and said so.
    let mut runnable = Vec::new();
    for (v, case) in &along {
        match engine.ignore_reason(case) {
            Some(why) => println!("skipped   {}={v}: {why}", args.axis),
            None => runnable.push((v.clone(), *case)),
        }
    }
    if runnable.len() < 2 {
        eprintln!(
            "error: fewer than two values of {} can run here: nothing to bisect",
            args.axis
        );
        return 3;
    }
    let values: Vec<String> = runnable.iter().map(|(v, _)| v.clone()).collect();
    println!(
        "bisecting {} over {} = [{}] ({} values, at most {} runs)",
        scenario.name,
        args.axis,
        values.join(", "),
        values.len(),
        2 + (usize::BITS - (values.len() - 1).saturating_sub(1).leading_zeros())
    );
    let mut reports: Vec<Option<Report>> = vec![None; values.len()];
    let b = bisect::search(&values, |i| {
        let r = engine.run(runnable[i].1, false);
        let k = key(&r, args.by);
        println!("run       {}={:<10} {k}", args.axis, values[i]);
        reports[i] = Some(r);
        k
    });
    match &b.boundary {
        None => {
            println!(
                "\nno boundary: {}={} and {}={} behave alike ({})",
                args.axis,
                values[0],
                args.axis,
                values[values.len() - 1],
                b.probes[0].key
            );
            0
        }
        Some((lo, hi)) => {
            println!(
                "\nboundary  {}: {} -> {} ({} runs)",
                args.axis,
                lo.value,
                hi.value,
                b.probes.len()
            );
            for p in [lo, hi] {
                let r = reports[p.index].as_ref().expect("probed");
                println!("  {:<10} {}", p.value, r.outcome.class());
                println!("             {}", r.signature());
            }
            0
        }
    }
}
