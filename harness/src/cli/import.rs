//! `cgrepro import REPORT`: draft a scenario from a report, run it, and show the report's
//! crash beside the replay's (see `crate::import`).

use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::import::{self, ImportError};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The report: issue text, a containerd/kubelet/journal log, kata-collect-data output,
    /// a panic, or a host file from `cgrepro capture`.
    report: PathBuf,
    /// Where to write the draft (default: target/cgrepro/imported/<report name>.toml).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Only write the draft; do not run it.
    #[arg(long)]
    no_run: bool,
}

pub fn run(engine: &Engine, args: &Args, _jobs: usize) -> i32 {
    match run_inner(engine, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn cell(s: &str, w: usize) -> String {
    let mut s = s.replace('\n', " ");
    if s.chars().count() > w {
        s = s.chars().take(w - 1).collect::<String>() + "…";
    }
    format!("{s:<w$}")
}

fn run_inner(engine: &Engine, args: &Args) -> Result<i32, ImportError> {
    let text = import::read_report(&args.report)?;
    let rules = import::host_rules(&engine.root.join("fixtures"))?;
    let name = args
        .report
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    let out = args.output.clone().unwrap_or_else(|| {
        engine
            .root
            .join("target/cgrepro/imported")
            .join(format!("{}.toml", import::draft_stem(&args.report)))
    });
    let host_file = if import::is_host_file(&text) {
        let abs = args.report.canonicalize().map_err(|e| ImportError::Read {
            path: args.report.clone(),
            why: e.to_string(),
        })?;
        Some(abs.to_string_lossy().into_owned())
    } else {
        None
    };
    let facts = import::extract::facts(&text, &rules);
    let versions = |d: &str| engine.drivers.versions(d).unwrap_or_default();
    let draft = import::draft::write(
        &facts,
        &engine.hosts,
        &versions,
        &name,
        host_file.as_deref(),
    );
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ImportError::Write {
            path: out.clone(),
            why: e.to_string(),
        })?;
    }
    std::fs::write(&out, &draft.text).map_err(|e| ImportError::Write {
        path: out.clone(),
        why: e.to_string(),
    })?;
    println!("draft     {}", out.display());
    println!("from the report: {}", draft.from_report.join(", "));
    if !draft.guessed.is_empty() {
        let g: Vec<&str> = draft.guessed.iter().map(|(f, _)| f.as_str()).collect();
        println!("guessed:  {}", g.join(", "));
    }
    if !draft.todo.is_empty() {
        println!("TODO:     {}", draft.todo.join(", "));
    }
    if !draft.runnable {
        return Err(ImportError::NoTarget {
            path: args.report.clone(),
        });
    }
    if args.no_run {
        return Ok(0);
    }
    replay(engine, &out, &facts)
}

fn replay(engine: &Engine, draft: &Path, facts: &import::Facts) -> Result<i32, ImportError> {
    let scenario = match engine.load(draft) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("the draft does not load: edit it (the TODO lines say what is missing)");
            return Ok(2);
        }
    };
    let case = &scenario.cases[0];
    println!("host      {}", case.host.summary());
    println!("target    {}", case.target.summary());
    if let Some(why) = engine.ignore_reason(case) {
        println!("\nnot run: {why}");
        return Ok(3);
    }
    let r = engine.run(case, false);
    let replay_client = r.shim.as_ref().map(|s| s.client.clone());
    let get = |k: &str| facts.get(k).map_or("-".to_owned(), |f| f.value.clone());
    let rows = [
        ("class", get("expect.class"), r.outcome.class().to_string()),
        (
            "signal",
            get("expect.signal"),
            r.outcome.signal().unwrap_or("-").to_owned(),
        ),
        ("message", get("expect.message"), r.signature()),
        (
            "client",
            get("expect.client"),
            replay_client.unwrap_or_else(|| "-".into()),
        ),
        (
            "log",
            get("expect.log"),
            match facts.get("expect.log") {
                Some(_)
                    if r.expectation_failures
                        .iter()
                        .any(|f| f.contains("expected the target to log")) =>
                {
                    "not in the target's log".into()
                }
                Some(_) => "logged (in the shim's log / syslog lines)".into(),
                None => "-".into(),
            },
        ),
    ];
    println!("\n{}{}replay", cell("", 10), cell("report", 48));
    for (k, a, b) in rows {
        println!("{}{}{}", cell(k, 10), cell(&a, 48), b);
    }
    let has_expect = !case.expect.is_empty();
    if has_expect && r.expectation_failures.is_empty() {
        println!(
            "\nreproduced: the replay shows the report's symptom ({:.2?})",
            r.duration
        );
        Ok(0)
    } else {
        println!("\nNOT reproduced ({:.2?}):", r.duration);
        if !has_expect {
            println!("  the draft has no [[expect]]: nothing to compare");
        }
        for f in &r.expectation_failures {
            println!("  {f}");
        }
        Ok(1)
    }
}
