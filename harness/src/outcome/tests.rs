//! `classify` on synthetic observations: one row per way a case can end.
//!
//! Each row is what the sandbox would have observed (exit, output, the driver channel,
//! timeout, setup error) and the one outcome the user must see for it.

use rstest::rstest;

use super::normalize::Normalizer;
use super::parse::tests::GO_NIL_DEREF;
use super::{classify, Outcome, Runtime};
use crate::evidence::{Exit, Observed};

/// The target exited with this status.
fn exited(code: i32) -> Observed {
    Observed {
        exit: Some(Exit::Code(code)),
        ..Observed::default()
    }
}

/// The target was killed by this signal.
fn killed(signal: i32) -> Observed {
    Observed {
        exit: Some(Exit::Signal {
            signal,
            core_dumped: false,
        }),
        ..Observed::default()
    }
}

fn stderr(mut o: Observed, text: &str) -> Observed {
    o.stderr.push(text.as_bytes());
    o
}

fn channel(mut o: Observed, lines: &[&str]) -> Observed {
    o.channel = lines.iter().map(|l| l.to_string()).collect();
    o
}

fn timed_out(mut o: Observed) -> Observed {
    o.timed_out = true;
    o
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const OP_START_CREATE: &str = r#"{"event":"op_start","op":"create"}"#;
const OP_CREATE_OK: &str = r#"{"event":"op","op":"create","status":"ok"}"#;
const OP_START_APPLY: &str = r#"{"event":"op_start","op":"apply"}"#;
const DRIVER_PANIC: &str = r#"{"event":"panic","message":"path should be valid: \"/kata_overhead/x\"","location":"/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cgroups-rs-0.2.9/src/lib.rs:300:33","thread":"main","frames":["<T as cgroups_rs::Controller>::create::{{closure}}","cgroups_rs::cgroup::Cgroup::create::h0123456789abcdef"]}"#;
const PANIC_LOCATION: &str = "[REGISTRY]/cgroups-rs-0.2.9/src/lib.rs:300:33";

fn panic_frames() -> Vec<String> {
    strings(&[
        "<T as cgroups_rs::Controller>::create::{{closure}}",
        "cgroups_rs::cgroup::Cgroup::create",
    ])
}

const GO_EXPLICIT_PANIC: &str = "panic: cgroups: cgroup mountpoint does not exist\n\ngoroutine 1 [running]:\nruntime.gopanic(...)\n\t/usr/lib/go/src/runtime/panic.go:1 +0x1\nmain.load(...)\n\t/src/main.go:12 +0x1d\nmain.main()\n\t/src/main.go:5 +0x1\n";

fn go_nil_deref_crash(signal: &str) -> Outcome {
    Outcome::Crash {
        signal: signal.into(),
        runtime: Some(Runtime::Go),
        op: None,
        message: Some("runtime error: invalid memory address or nil pointer dereference".into()),
        location: Some("src/runtime/pkg/resourcecontrol/cgroups.go:189".into()),
        frames: strings(&[
            "github.com/kata-containers/kata-containers/src/runtime/pkg/resourcecontrol.NewSandboxResourceController (src/runtime/pkg/resourcecontrol/cgroups.go:189)",
            "github.com/kata-containers/kata-containers/src/runtime/virtcontainers.(*Sandbox).createResourceController (src/runtime/virtcontainers/sandbox_linux.go:46)",
        ]),
    }
}

#[rstest]
#[case::every_op_succeeded(
    channel(exited(0), &[OP_START_CREATE, OP_CREATE_OK]),
    Outcome::Ok
)]
#[case::a_plain_command_exits_0(exited(0), Outcome::Ok)]
#[case::an_op_returned_an_error(
    channel(exited(1), &[
        OP_START_CREATE,
        OP_CREATE_OK,
        OP_START_APPLY,
        r#"{"event":"op","op":"apply","status":"error","error":"mkdir /sys/fs/cgroup/x: permission denied"}"#,
    ]),
    Outcome::Error {
        op: Some("apply".into()),
        message: "mkdir /sys/fs/cgroup/x: permission denied".into(),
        exit_code: 1,
    }
)]
#[case::a_command_fails_with_its_last_stderr_line(
    stderr(exited(3), "starting\nfatal: no cgroup mount\n\n"),
    Outcome::Error { op: None, message: "fatal: no cgroup mount".into(), exit_code: 3 }
)]
#[case::a_silent_failure(
    exited(1),
    Outcome::Error { op: None, message: String::new(), exit_code: 1 }
)]
#[case::an_error_message_is_normalised(
    channel(exited(1), &[r#"{"event":"op","op":"stats","status":"error","error":"bad read at 0x7ffd1234abcd after 15ms"}"#]),
    Outcome::Error { op: Some("stats".into()), message: "bad read at [ADDR] after [DURATION]".into(), exit_code: 1 }
)]
#[case::a_rust_panic_on_stderr(
    stderr(exited(101), "thread 'main' panicked at src/lib.rs:300:33:\npath should be valid\nnote: run with `RUST_BACKTRACE=1`\n"),
    Outcome::Panic {
        runtime: Runtime::Rust,
        op: None,
        message: "path should be valid".into(),
        location: Some("src/lib.rs:300:33".into()),
        frames: vec![],
    }
)]
#[case::a_rust_panic_in_the_old_format(
    stderr(exited(101), "thread 'main' panicked at 'index out of bounds', src/main.rs:2:5\n"),
    Outcome::Panic {
        runtime: Runtime::Rust,
        op: None,
        message: "index out of bounds".into(),
        location: Some("src/main.rs:2:5".into()),
        frames: vec![],
    }
)]
#[case::panic_text_without_status_101_is_an_error(
    stderr(exited(1), "thread 'main' panicked at src/lib.rs:1:1:\nboom\nerror: gave up\n"),
    Outcome::Error { op: None, message: "error: gave up".into(), exit_code: 1 }
)]
#[case::a_driver_panic_names_its_op_and_frames(
    stderr(channel(exited(101), &[OP_START_CREATE, DRIVER_PANIC]), "thread 'main' panicked at x.rs:1:1:\nignored: the channel wins\n"),
    Outcome::Panic {
        runtime: Runtime::Rust,
        op: Some("create".into()),
        message: "path should be valid: \"/kata_overhead/x\"".into(),
        location: Some(PANIC_LOCATION.into()),
        frames: panic_frames(),
    }
)]
#[case::a_panic_on_another_thread_counts_though_the_process_exits_0(
    channel(exited(0), &[DRIVER_PANIC]),
    Outcome::Panic {
        runtime: Runtime::Rust,
        op: None,
        message: "path should be valid: \"/kata_overhead/x\"".into(),
        location: Some(PANIC_LOCATION.into()),
        frames: panic_frames(),
    }
)]
#[case::a_panic_with_panic_abort_is_a_crash(
    channel(killed(libc::SIGABRT), &[OP_START_CREATE, DRIVER_PANIC]),
    Outcome::Crash {
        signal: "SIGABRT".into(),
        runtime: Some(Runtime::Rust),
        op: Some("create".into()),
        message: Some("path should be valid: \"/kata_overhead/x\"".into()),
        location: Some(PANIC_LOCATION.into()),
        frames: panic_frames(),
    }
)]
#[case::a_segfault_reported_by_the_signal_handler(
    channel(killed(libc::SIGSEGV), &[
        OP_START_APPLY,
        r#"{"event":"signal","signal":"SIGSEGV","addr":"0x8","stack_overflow":false,"thread":"main","frames":["write_through_null","crasher_null_write::main"]}"#,
    ]),
    Outcome::Crash {
        signal: "SIGSEGV".into(),
        runtime: Some(Runtime::Rust),
        op: Some("apply".into()),
        message: None,
        location: None,
        frames: strings(&["write_through_null", "crasher_null_write::main"]),
    }
)]
#[case::a_stack_overflow_seen_by_the_signal_handler(
    channel(killed(libc::SIGSEGV), &[r#"{"event":"signal","signal":"SIGSEGV","addr":"0x7ffd0000","stack_overflow":true,"thread":"main","frames":["recurse","recurse","recurse"]}"#]),
    Outcome::Crash {
        signal: "SIGSEGV".into(),
        runtime: Some(Runtime::Rust),
        op: None,
        message: Some("stack overflow".into()),
        location: None,
        frames: strings(&["recurse (×3)"]),
    }
)]
#[case::a_stack_overflow_seen_by_std(
    stderr(killed(libc::SIGABRT), "\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n"),
    Outcome::Crash {
        signal: "SIGABRT".into(),
        runtime: Some(Runtime::Rust),
        op: None,
        message: Some("stack overflow".into()),
        location: None,
        frames: vec![],
    }
)]
#[case::a_bare_segfault(
    Observed { exit: Some(Exit::Signal { signal: libc::SIGSEGV, core_dumped: true }), ..Observed::default() },
    Outcome::Crash { signal: "SIGSEGV".into(), runtime: None, op: None, message: None, location: None, frames: vec![] }
)]
#[case::a_bus_error_during_an_op(
    channel(killed(libc::SIGBUS), &[OP_START_CREATE]),
    Outcome::Crash { signal: "SIGBUS".into(), runtime: None, op: Some("create".into()), message: None, location: None, frames: vec![] }
)]
#[case::a_go_nil_dereference_exits_2_with_a_signal_in_its_trace(
    stderr(exited(2), GO_NIL_DEREF),
    go_nil_deref_crash("SIGSEGV")
)]
#[case::a_go_trace_with_gotraceback_crash_dies_of_the_signal(
    stderr(killed(libc::SIGABRT), GO_NIL_DEREF),
    go_nil_deref_crash("SIGABRT")
)]
#[case::an_explicit_go_panic(
    stderr(exited(2), GO_EXPLICIT_PANIC),
    Outcome::Panic {
        runtime: Runtime::Go,
        op: None,
        message: "cgroups: cgroup mountpoint does not exist".into(),
        location: Some("main.go:12".into()),
        frames: strings(&["main.load (main.go:12)", "main.main (main.go:5)"]),
    }
)]
#[case::a_go_trace_with_another_status_is_not_a_panic(
    stderr(exited(1), GO_EXPLICIT_PANIC),
    Outcome::Error { op: None, message: "/src/main.go:5 +[ADDR]".into(), exit_code: 1 }
)]
#[case::a_timeout_in_the_middle_of_an_op(
    timed_out(channel(killed(libc::SIGKILL), &[OP_START_CREATE, OP_CREATE_OK, OP_START_APPLY])),
    Outcome::Timeout { op: Some("apply".into()) }
)]
#[case::a_timeout_before_any_op(timed_out(Observed::default()), Outcome::Timeout { op: None })]
#[case::killed_from_outside(killed(libc::SIGKILL), Outcome::Killed { signal: "SIGKILL".into() })]
#[case::terminated(killed(libc::SIGTERM), Outcome::Killed { signal: "SIGTERM".into() })]
#[case::a_setup_error_is_the_harness_s(
    Observed { setup_error: Some("cannot mount the cgroupfs: EPERM".into()), ..exited(0) },
    Outcome::HarnessError { message: "cannot mount the cgroupfs: EPERM".into() }
)]
#[case::a_setup_error_wins_over_a_timeout(
    timed_out(Observed { setup_error: Some("fork failed after 2s".into()), ..Observed::default() }),
    Outcome::HarnessError { message: "fork failed after [DURATION]".into() }
)]
#[case::interrupted_by_the_user(
    timed_out(Observed { interrupted: true, ..killed(libc::SIGKILL) }),
    Outcome::HarnessError { message: "interrupted (the harness received SIGINT or SIGTERM)".into() }
)]
#[case::no_exit_reported(
    Observed::default(),
    Outcome::HarnessError { message: "the sandbox ended without reporting the target's exit".into() }
)]
fn classify_table(#[case] observed: Observed, #[case] want: Outcome) {
    let got = classify(&observed, &Normalizer::new(None, None)).outcome;
    assert_eq!(got, want);
}
