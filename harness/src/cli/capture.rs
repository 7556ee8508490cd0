//! `cgrepro capture`: the node's host as a host file (see `crate::capture`); with
//! `--lane SERIES`, a real Debian kernel's under QEMU; with `--compare PRESET`, the
//! captured tree held against the tree cgrepro generates for a preset.

use std::path::{Path, PathBuf};

use crate::capture::{self, CaptureError, FsSource, Options};
use crate::engine::{Engine, EngineError};
use crate::host::{HostData, HostError, HostSpec};

/// Why `cgrepro capture` failed (printed as `error: ...`, exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureCmdError {
    #[error(transparent)]
    Root(#[from] EngineError),
    /// The repository's host data, or a host the capture builds from it.
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("--like {preset}: {source}")]
    Like {
        preset: String,
        #[source]
        source: HostError,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the capture does not resolve as a host: {0}")]
    Resolve(#[source] HostError),
    #[error("--compare {preset}: {source}")]
    Compare {
        preset: String,
        #[source]
        source: HostError,
    },
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the host file (`-`: stdout).
    #[arg(long, short, default_value = "-", value_name = "FILE")]
    output: PathBuf,
    /// A cgroup path to read in every hierarchy, with its ancestors (repeatable), e.g.
    /// `--path /kubepods.slice/kubepods-besteffort.slice`.
    #[arg(long = "path", value_name = "CGROUP_PATH")]
    paths: Vec<String>,
    /// Read only the hierarchy roots (and --path), not their direct children.
    #[arg(long)]
    no_children: bool,
    /// Capture a real Debian kernel of the lane cache (`bash ci/kernel-lane.sh`) booted
    /// under QEMU instead of this node, e.g. `--lane 6.1`.
    #[arg(long, value_name = "SERIES")]
    lane: Option<String>,
    /// With --lane: the preset whose layout and systemd boot effects the guest stages.
    #[arg(long, value_name = "PRESET", default_value = "debian-12")]
    like: String,
    /// Compare the captured tree with the tree cgrepro generates for PRESET; print every
    /// difference (exit 1 if any).
    #[arg(long, value_name = "PRESET")]
    compare: Option<String>,
    /// Read the node's files under this directory instead of `/` (tests, or a node's root
    /// file system mounted elsewhere).
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    fs_root: PathBuf,
}

fn repo_data() -> Result<(PathBuf, HostData), CaptureCmdError> {
    let root = Engine::find_root(&std::env::current_dir().unwrap_or_default())?;
    let data = HostData::load(&root.join("fixtures"))?;
    Ok((root, data))
}

pub fn run(args: &Args) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn run_inner(args: &Args) -> Result<i32, CaptureCmdError> {
    let started = std::time::Instant::now();
    let preset = match &args.lane {
        Some(series) => {
            let (root, data) = repo_data()?;
            let like = data
                .resolve(&HostSpec {
                    preset: Some(args.like.clone()),
                    ..HostSpec::default()
                })
                .map_err(|source| CaptureCmdError::Like {
                    preset: args.like.clone(),
                    source,
                })?;
            let work = root.join("target/cgrepro/lane-capture");
            let (rec, kernel) = capture::lane::record(&root, &data, series, &like, &work)?;
            let mut opts = capture::lane::options(series, &kernel, &like);
            opts.paths.clone_from(&args.paths);
            capture::capture(&rec, &opts)?
        }
        None => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let uid = unsafe { libc::geteuid() };
            let opts = Options {
                paths: args.paths.clone(),
                no_children: args.no_children,
                how: format!(
                    "cgrepro capture {} (uid {uid}{})",
                    env!("CARGO_PKG_VERSION"),
                    if uid == 0 {
                        ""
                    } else {
                        ", unprivileged: unreadable files keep their errno"
                    }
                ),
            };
            let src = FsSource {
                root: args.fs_root.clone(),
            };
            capture::capture(&src, &opts)?
        }
    };
    let text = capture::render::host_file(&preset);
    capture::write_output(&args.output, &text).map_err(|source| CaptureCmdError::Write {
        path: args.output.clone(),
        source,
    })?;
    let c = preset.captured.as_ref().expect("a capture has [captured]");
    let files: usize = c.group.iter().map(|g| g.files.len()).sum();
    eprintln!(
        "{} in {:.2?}: {} groups, {files} files{}",
        preset.description,
        started.elapsed(),
        c.group.len(),
        if args.output == Path::new("-") {
            String::new()
        } else {
            format!(" -> {}", args.output.display())
        }
    );
    let Some(name) = &args.compare else {
        return Ok(0);
    };
    let (_, data) = repo_data()?;
    let captured = data
        .resolve_preset("capture", &preset)
        .map_err(CaptureCmdError::Resolve)?;
    let model = data
        .resolve(&HostSpec {
            preset: Some(name.clone()),
            ..HostSpec::default()
        })
        .map_err(|source| CaptureCmdError::Compare {
            preset: name.clone(),
            source,
        })?;
    let a = captured.plan(&data, &[])?;
    let b = model.plan(&data, &[])?;
    let diffs = crate::host::compare::trees(&a, &b);
    eprintln!(
        "compared with {name} ({}): {} nodes captured, {} generated, {} difference(s){}",
        model.kernel,
        a.tree.len(),
        b.tree.len(),
        diffs.len(),
        if diffs.is_empty() { "" } else { ":" }
    );
    for d in &diffs {
        eprintln!("  {}: {}", d.path, d.what);
    }
    Ok(if diffs.is_empty() { 0 } else { 1 })
}
