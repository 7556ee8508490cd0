//! How `run` and `matrix` show a run: the options (`--format`, `--junit`, `--html`,
//! `--artifacts`, `--allow-ignored`), a progress display on a terminal (indicatif: cases
//! done / total, the running ones, elapsed, ETA; nothing when stderr is not a terminal),
//! and a line per case as it finishes. Also: a closed stdout (`cgrepro list | head`)
//! ends the command quietly instead of panicking.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::results::{CaseResult, Status};
use crate::sandbox::interrupt;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// A line per case as it finishes, then a summary.
    #[default]
    Human,
    /// One JSON object per case as it finishes (schema in the README).
    Json,
}

/// Output options shared by `run` and `matrix`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the run's HTML page to FILE (default: index.html in the run directory).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Where runs keep their artifacts (default: <root>/target/cgrepro).
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Exit 0 even when selected cases cannot run here (they are still listed as ignored).
    #[arg(long)]
    pub allow_ignored: bool,
}

static BROKEN_PIPE: AtomicBool = AtomicBool::new(false);

/// Did stdout go away (a closed pipe)?
pub fn broken_pipe() -> bool {
    BROKEN_PIPE.load(Ordering::SeqCst)
}

/// Print a line to stdout; when stdout is a closed pipe, stop the run quietly.
pub fn line(s: &str) {
    if broken_pipe() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{s}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            BROKEN_PIPE.store(true, Ordering::SeqCst);
            interrupt::request();
        }
    }
}

/// `println!` panics on a closed pipe: turn that panic (anywhere in the CLI, including a
/// subcommand that prints with `println!`) into a quiet stop. The caller catches the
/// unwind ([`std::panic::catch_unwind`]) and checks [`broken_pipe`].
pub fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            BROKEN_PIPE.store(true, Ordering::SeqCst);
            interrupt::request();
            return;
        }
        default(info);
    }));
}

/// Progress of a run and its per-case lines.
pub struct Progress {
    bar: Option<ProgressBar>,
    running: Mutex<Vec<String>>,
    format: Format,
}

impl Progress {
    /// A bar on stderr when it is a terminal; none otherwise.
    pub fn new(total: usize, format: Format) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} done  [{elapsed_precise}, ETA {eta}]  {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        Progress {
            bar,
            running: Mutex::new(Vec::new()),
            format,
        }
    }

    fn show_running(&self) {
        if let Some(b) = &self.bar {
            let r = self.running.lock().unwrap_or_else(|e| e.into_inner());
            b.set_message(format!("running: {}", r.join(", ")));
        }
    }

    pub fn started(&self, name: &str) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.to_owned());
        self.show_running();
    }

    /// A case finished: its line (or JSON record) on stdout, the bar moved on.
    pub fn done(&self, result: &CaseResult) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n != &result.name);
        let text = match self.format {
            Format::Json => result.json().to_string(),
            Format::Human => human(result),
        };
        match &self.bar {
            Some(b) => {
                b.suspend(|| line(&text));
                b.inc(1);
            }
            None => line(&text),
        }
        self.show_running();
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The human line(s) of one case.
pub fn human(r: &CaseResult) -> String {
    match r.status {
        Status::Passed => {
            let note = if r.snapshot == Some("new") {
                " (no snapshot yet: run `cargo test` to record it)"
            } else {
                ""
            };
            format!(
                "ok       {}  {}  [{:.0?}]{note}",
                r.name,
                r.signature(),
                r.report.as_ref().map(|x| x.duration).unwrap_or_default()
            )
        }
        Status::Ignored => format!(
            "ignored  {}  ({})",
            r.name,
            r.reason.as_deref().unwrap_or("")
        ),
        Status::Interrupted => format!("INTERRUPTED {}  (killed when the run was stopped)", r.name),
        Status::NotStarted => format!("not started {}", r.name),
        Status::Failed => {
            let mut s = format!("FAILED   {}  {}", r.name, r.signature());
            for p in &r.problems {
                s.push_str(&format!("\n           {p}"));
            }
            if let Some(rep) = &r.report {
                for l in rep.snapshot().lines() {
                    s.push_str(&format!("\n           | {l}"));
                }
                if let Some(a) = &rep.artifacts {
                    s.push_str(&format!("\n           artifacts: {}", a.display()));
                }
            }
            s
        }
    }
}
