//! `check_expectations` on synthetic outcomes: one row per way an `[[expect]]` block
//! can pass or fail, with the exact message the user reads.

use rstest::rstest;

use super::check_expectations;
use crate::outcome::{Class, Outcome, Runtime};
use crate::scenario::Expect;

const AT: &str = "scenarios/x.toml:7";

/// An `[[expect]]` block at `AT` checking nothing yet.
fn block() -> Expect {
    Expect {
        class: None,
        signal: None,
        message: None,
        stdout: None,
        client: None,
        log: None,
        at: AT.into(),
    }
}

fn class(c: Class) -> Expect {
    Expect {
        class: Some(c),
        ..block()
    }
}

fn signal(s: &str) -> Expect {
    Expect {
        signal: Some(s.into()),
        ..block()
    }
}

fn message(m: &str) -> Expect {
    Expect {
        message: Some(m.into()),
        ..block()
    }
}

fn stdout(s: &str) -> Expect {
    Expect {
        stdout: Some(s.into()),
        ..block()
    }
}

fn client(s: &str) -> Expect {
    Expect {
        client: Some(s.into()),
        ..block()
    }
}

fn panic() -> Outcome {
    Outcome::Panic {
        runtime: Runtime::Rust,
        op: Some("create".into()),
        message: "path should be valid: \"/kata_overhead/x\"".into(),
        location: Some("[REGISTRY]/cgroups-rs-0.2.9/src/lib.rs:300:33".into()),
        frames: vec!["cgroups_rs::cgroup::Cgroup::create".into()],
    }
}

fn crash(signal: &str) -> Outcome {
    Outcome::Crash {
        signal: signal.into(),
        runtime: Some(Runtime::Go),
        op: None,
        message: None,
        location: None,
        frames: vec!["github.com/k/resourcecontrol.NewSandboxResourceController".into()],
    }
}

fn error(m: &str) -> Outcome {
    Outcome::Error {
        op: Some("apply".into()),
        message: m.into(),
        exit_code: 1,
    }
}

fn failures(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[rstest]
#[case::no_blocks_no_failures(vec![], Outcome::Ok, None, "", failures(&[]))]
#[case::a_block_checking_nothing_passes(vec![block()], Outcome::Ok, None, "", failures(&[]))]
#[case::the_right_class(vec![class(Class::Ok)], Outcome::Ok, None, "", failures(&[]))]
#[case::a_crash_expected_and_none_came(
    vec![class(Class::Crash)], Outcome::Ok, None, "",
    failures(&["expected class `crash`, got `ok` (ok) — scenarios/x.toml:7"])
)]
#[case::the_right_panic(vec![class(Class::Panic)], panic(), None, "", failures(&[]))]
#[case::an_error_expected_and_a_panic_came(
    vec![class(Class::Error)], panic(), None, "",
    failures(&["expected class `error`, got `panic` (panic in cgroups_rs::cgroup::Cgroup::create: path should be valid) — scenarios/x.toml:7"])
)]
#[case::a_harness_error_can_be_expected(
    vec![class(Class::HarnessError)],
    Outcome::HarnessError { message: "no /dev/fuse".into() }, None, "", failures(&[])
)]
#[case::the_right_signal(vec![signal("SIGSEGV")], crash("SIGSEGV"), None, "", failures(&[]))]
#[case::the_wrong_signal(
    vec![signal("SIGSEGV")], crash("SIGABRT"), None, "",
    failures(&["expected signal SIGSEGV, got SIGABRT (SIGABRT in resourcecontrol.NewSandboxResourceController) — scenarios/x.toml:7"])
)]
#[case::a_signal_expected_and_the_target_exited(
    vec![signal("SIGSEGV")], Outcome::Ok, None, "",
    failures(&["expected signal SIGSEGV, got no signal (ok) — scenarios/x.toml:7"])
)]
#[case::a_kill_has_a_signal_too(
    vec![signal("SIGKILL")], Outcome::Killed { signal: "SIGKILL".into() }, None, "", failures(&[])
)]
#[case::class_and_signal_together(
    vec![Expect { class: Some(Class::Crash), signal: Some("SIGSEGV".into()), ..block() }],
    crash("SIGSEGV"), None, "", failures(&[])
)]
#[case::a_word_of_the_message(vec![message("should be valid")], panic(), None, "", failures(&[]))]
#[case::a_word_of_the_signature_only(
    vec![message("NewSandboxResourceController")], crash("SIGSEGV"), None, "", failures(&[])
)]
#[case::a_message_that_is_not_there(
    vec![message("EBUSY")], error("device or resource busy"), None, "",
    failures(&["expected a message containing `EBUSY`, got \"device or resource busy\" — scenarios/x.toml:7"])
)]
#[case::a_timeout_has_no_message(
    vec![message("deadline")], Outcome::Timeout { op: Some("apply".into()) }, None, "",
    failures(&["expected a message containing `deadline`, got \"\" — scenarios/x.toml:7"])
)]
#[case::a_harness_error_s_message(
    vec![message("/dev/fuse")], Outcome::HarnessError { message: "no /dev/fuse".into() }, None, "",
    failures(&[])
)]
#[case::stdout_as_expected(
    vec![stdout("test result: ok")], Outcome::Ok, None, "running 3 tests\ntest result: ok. 3 passed\n",
    failures(&[])
)]
#[case::stdout_without_it(
    vec![stdout("test result: ok")], Outcome::Ok, None, "test result: FAILED. 1 failed\n",
    failures(&["expected stdout containing `test result: ok` — scenarios/x.toml:7"])
)]
#[case::the_client_saw_it(
    vec![client("closed")], Outcome::Ok, Some("ttrpc: closed"), "", failures(&[])
)]
#[case::the_client_saw_something_else(
    vec![client("ok")], Outcome::Ok, Some("ttrpc: closed"), "",
    failures(&["expected the client to see `ok`, it saw `ttrpc: closed` — scenarios/x.toml:7"])
)]
#[case::a_shim_that_never_answered(
    vec![client("ok")], Outcome::Ok, Some(""), "",
    failures(&["expected the client to see `ok`, it saw `` — scenarios/x.toml:7"])
)]
#[case::a_client_expectation_on_a_driver(
    vec![client("ok")], Outcome::Ok, None, "",
    failures(&["expected the client to see `ok`, but this target has no client — scenarios/x.toml:7"])
)]
#[case::every_check_of_a_block_fails_in_order(
    vec![Expect {
        class: Some(Class::Crash),
        signal: Some("SIGSEGV".into()),
        message: Some("nil pointer".into()),
        stdout: Some("ready".into()),
        client: Some("ok".into()),
        log: None,
        at: AT.into(),
    }],
    error("no such file or directory"), Some("rpc error"), "",
    failures(&[
        "expected stdout containing `ready` — scenarios/x.toml:7",
        "expected class `crash`, got `error` (error in apply: no such file or directory) — scenarios/x.toml:7",
        "expected signal SIGSEGV, got no signal (error in apply: no such file or directory) — scenarios/x.toml:7",
        "expected a message containing `nil pointer`, got \"no such file or directory\" — scenarios/x.toml:7",
        "expected the client to see `ok`, it saw `rpc error` — scenarios/x.toml:7",
    ])
)]
#[case::each_block_names_its_own_place(
    vec![
        Expect { at: "a.toml:3".into(), ..class(Class::Panic) },
        Expect { at: "a.toml:9".into(), ..signal("SIGBUS") },
    ],
    panic(), None, "",
    failures(&["expected signal SIGBUS, got no signal (panic in cgroups_rs::cgroup::Cgroup::create: path should be valid) — a.toml:9"])
)]
fn check_expectations_table(
    #[case] expect: Vec<Expect>,
    #[case] outcome: Outcome,
    #[case] client: Option<&str>,
    #[case] stdout: &str,
    #[case] want: Vec<String>,
) {
    assert_eq!(check_expectations(&expect, &outcome, client, stdout), want);
}
