//! The pipeline in one place: scenario → host → sandbox → outcome → report.
//!
//! An [`Engine`] is what the CLI and the test runner share: the repository's data
//! (host presets, kernel table, drivers), one sandbox [`Session`], and the normaliser.
//! [`Engine::run`] runs one case end to end; [`Engine::ignore_reason`] says why a case
//! cannot run on this machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::{HostData, HostError};
use crate::outcome::{self, normalize::Normalizer};
use crate::report::Report;
use crate::sandbox::{Session, SessionError, Strategy};
use crate::scenario::{self, Case, Context, Scenario, ScenarioError, TargetKind};
use crate::subject::{self, Drivers};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no cgrepro repository here: looked for `scenarios/` and `fixtures/` in {0} and its parents (pass --root)")]
    NoRoot(PathBuf),
    #[error("the host data under fixtures/ is broken: {0}")]
    HostData(#[from] HostError),
}

pub struct Engine {
    pub root: PathBuf,
    pub scenarios_root: PathBuf,
    pub hosts: Arc<HostData>,
    pub drivers: Drivers,
    session: Result<Session, SessionError>,
    norm: Normalizer,
}

impl Engine {
    /// The repository root: the first of `start` and its parents holding `scenarios/`
    /// and `fixtures/`.
    pub fn find_root(start: &Path) -> Result<PathBuf, EngineError> {
        start
            .ancestors()
            .find(|d| d.join("scenarios").is_dir() && d.join("fixtures").is_dir())
            .map(Path::to_path_buf)
            .ok_or_else(|| EngineError::NoRoot(start.to_path_buf()))
    }

    pub fn new(root: &Path) -> Result<Engine, EngineError> {
        Engine::with_strategy(root, None)
    }

    /// An engine whose sandbox uses `strategy` instead of the probed one.
    pub fn with_strategy(root: &Path, strategy: Option<Strategy>) -> Result<Engine, EngineError> {
        let hosts = Arc::new(HostData::load(&root.join("fixtures"))?);
        let mut drivers = Drivers::discover(root, Drivers::default_bin_dir());
        let session = match strategy {
            Some(s) => Session::with_strategy(Arc::clone(&hosts), s),
            None => Session::new(Arc::clone(&hosts)),
        };
        if let Ok(s) = &session {
            // Made in the session directory; a case sees it under SANDBOX_DEVICES.
            drivers.kvm_node = subject::shim::make_kvm_node(s.path())
                .map(|_| PathBuf::from(crate::sandbox::SANDBOX_DEVICES).join("kvm"));
        }
        let norm = Normalizer::new(session.as_ref().ok().map(Session::path), Some(root));
        Ok(Engine {
            root: root.to_path_buf(),
            scenarios_root: root.join("scenarios"),
            hosts,
            drivers,
            session,
            norm,
        })
    }

    /// Use this binary for `[target] shim = "kata"` (the CLI's `--shim`).
    pub fn set_kata_shim(&mut self, path: std::path::PathBuf) {
        self.drivers.kata_shim = Some(path);
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref().ok()
    }

    /// Keep the session directory after exit (for `--keep`); returns it.
    pub fn keep_session(&mut self) -> Option<PathBuf> {
        self.session.as_mut().ok().map(Session::keep)
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            hosts: &self.hosts,
            drivers: &self.drivers,
        }
    }

    /// Load one scenario file.
    #[allow(clippy::result_large_err)]
    pub fn load(&self, path: &Path) -> Result<Scenario, ScenarioError> {
        scenario::load(path, &self.scenarios_root, &self.context())
    }

    /// Load every scenario; files that fail come back as errors, the rest as scenarios.
    pub fn load_all(&self) -> (Vec<Scenario>, Vec<ScenarioError>) {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for path in scenario::discover(&self.scenarios_root) {
            match self.load(&path) {
                Ok(s) => ok.push(s),
                Err(e) => errors.push(e),
            }
        }
        (ok, errors)
    }

    /// Why this case cannot run here, if it cannot.
    pub fn ignore_reason(&self, case: &Case) -> Option<String> {
        let session = match &self.session {
            Ok(s) => s,
            Err(e) => return Some(no_sandbox(e)),
        };
        // A case whose snapshot was recorded on the cgroupfs model must not silently run on
        // the plain tree (its outcome would differ for a reason that is not the code's).
        if case.host.cgroupfs == crate::evidence::CgroupfsKind::Model {
            if let Some(why) = session.model_unavailable() {
                return Some(why.to_owned());
            }
        }
        subject::unavailable(case, &self.drivers)
    }

    /// Run one case end to end.
    pub fn run(&self, case: &Case, keep: bool) -> Report {
        self.run_keeping(case, keep, None)
    }

    /// Run one case, keeping its artifacts (whole output, logs, report) in `artifacts`
    /// (see [`crate::report::artifacts`]).
    pub fn run_keeping(&self, case: &Case, keep: bool, artifacts: Option<&Path>) -> Report {
        let mut report = self.run_inner(case, keep, artifacts);
        if let Some(dir) = artifacts {
            match crate::report::artifacts::write(dir, &report) {
                Ok(()) => report.artifacts = Some(dir.to_path_buf()),
                Err(e) => eprintln!("warning: cannot write artifacts to {}: {e}", dir.display()),
            }
        }
        report
    }

    fn run_inner(&self, case: &Case, keep: bool, artifacts: Option<&Path>) -> Report {
        let session = match &self.session {
            Ok(s) => s,
            Err(e) => return Report::harness_error(case, no_sandbox(e)),
        };
        let Some(mut launch) = subject::launch(case, &self.drivers, keep) else {
            let why = subject::unavailable(case, &self.drivers)
                .unwrap_or_else(|| "target unavailable".into());
            return Report::harness_error(case, why);
        };
        launch.capture = artifacts.map(Path::to_path_buf);
        let observed = session.run(&case.host, &case.faults, &launch);
        if let TargetKind::Shim { .. } = case.target.kind {
            let (classified, shim) = subject::shim::interpret(&observed, &self.norm);
            return Report::new(
                case,
                &observed,
                classified.outcome,
                classified.ops,
                &self.norm,
            )
            .with_shim(case, shim);
        }
        let classified = outcome::classify(&observed, &self.norm);
        Report::new(
            case,
            &observed,
            classified.outcome,
            classified.ops,
            &self.norm,
        )
    }

    /// Build the workspace's drivers unless told not to (`CGREPRO_SKIP_BUILD`) or not
    /// running under cargo.
    pub fn build_drivers(&self) -> Result<(), subject::BuildError> {
        if std::env::var_os("CGREPRO_SKIP_BUILD").is_some() || std::env::var_os("CARGO").is_none() {
            return Ok(());
        }
        subject::ensure_built(&self.root, self.drivers.bin_dir())
    }
}

/// Why no case runs on this machine, as ignored cases and harness errors say it.
fn no_sandbox(e: &SessionError) -> String {
    match e {
        SessionError::Unsupported(why) => why.clone(),
        other => other.to_string(),
    }
}
