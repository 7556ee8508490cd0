//! JUnit XML of a run (quick-junit, nextest's writer): a test suite per scenario, a test
//! case per cell. A failed case is a `<failure>` whose message is what failed (each
//! failing `[[expect]]` with its line); ignored and never-started cases are `<skipped>`
//! with the reason; a case killed by an interrupted run is an `<error>`.

use std::collections::BTreeMap;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::results::{CaseResult, Status};

/// The JUnit XML document of a run.
pub fn render(run: &str, results: &[CaseResult]) -> String {
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for r in results {
        let suite = suites
            .entry(r.scenario.as_str())
            .or_insert_with(|| TestSuite::new(r.scenario.clone()));
        let mut status = match r.status {
            Status::Passed => TestCaseStatus::success(),
            Status::Failed => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(r.problems.join("\n"));
                s.set_type(r.signature());
                s
            }
            Status::Interrupted => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message("interrupted: the case was killed when the run was stopped");
                s
            }
            Status::Ignored => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!(
                    "cannot run here: {}",
                    r.reason.as_deref().unwrap_or("")
                ));
                s
            }
            Status::NotStarted => {
                let mut s = TestCaseStatus::skipped();
                s.set_message("not started: the run was interrupted first");
                s
            }
        };
        if r.status == Status::Failed {
            if let Some(rep) = &r.report {
                status.set_description(rep.snapshot());
            }
        }
        let name = if r.cell.is_empty() {
            r.name.clone()
        } else {
            r.name
                .split_once("::")
                .map_or(r.name.clone(), |(_, c)| c.to_owned())
        };
        let mut tc = TestCase::new(name, status);
        tc.set_classname(r.scenario.clone());
        if let Some(rep) = &r.report {
            tc.set_time(rep.duration);
            if r.status == Status::Passed {
                tc.set_system_out(rep.snapshot());
            }
            if let Some(dir) = &rep.artifacts {
                tc.add_property(quick_junit::Property::new(
                    "artifacts",
                    dir.display().to_string(),
                ));
            }
        }
        suite.add_test_case(tc);
    }
    let mut report = quick_junit::Report::new(format!("cgrepro {run}"));
    report.add_test_suites(suites.into_values());
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->\n"))
}
