//! The fault engine and routing, as a scenario's faults meet them.

use std::time::Duration;

use super::engine::Rules;
use super::*;

fn fault(id: FaultId, op: Op, path: &str, effect: Option<Effect>, when: When) -> Fault {
    Fault {
        id,
        op,
        path: path.into(),
        effect,
        delay: None,
        when,
    }
}

fn eio(when: When) -> Fault {
    fault(1, Op::Write, "/x", Some(Effect::Errno(libc::EIO)), when)
}

/// Which of `n` matching calls the fault fires on.
fn hits(f: Fault, n: usize) -> Vec<bool> {
    let mut r = Rules::new(&[f], None).unwrap();
    (0..n)
        .map(|_| r.next_hit(Op::Write, &["/x"], 0).is_some())
        .collect()
}

#[test]
fn calls_are_counted_per_fault_from_1() {
    assert_eq!(
        hits(eio(When::Nth(3)), 6),
        [false, false, true, false, false, false]
    );
    assert_eq!(
        hits(eio(When::After(4)), 6),
        [false, false, false, false, true, true]
    );
    assert_eq!(hits(eio(When::Always), 6), [true; 6]);
}

#[test]
fn probability_dice_are_seeded() {
    let p = |seed| When::Probability { p: 0.5, seed };
    assert_eq!(
        hits(eio(p(42)), 64),
        hits(eio(p(42)), 64),
        "same seed, same hits"
    );
    assert_ne!(hits(eio(p(42)), 64), hits(eio(p(43)), 64));
    let n = hits(eio(p(42)), 64).iter().filter(|b| **b).count();
    assert!((16..48).contains(&n), "{n}");
}

#[test]
fn globs_match_as_documented() {
    let mut r = Rules::new(
        &[fault(
            1,
            Op::Write,
            "/sys/fs/cgroup/**/memory.max",
            Some(Effect::Errno(libc::EINVAL)),
            When::Always,
        )],
        None,
    )
    .unwrap();
    for (p, hit) in [
        ("/sys/fs/cgroup/a/b/memory.max", true),
        ("/sys/fs/cgroup/memory.max", true),
        ("/sys/fs/cgroup/a/memory.high", false),
    ] {
        assert_eq!(r.next_hit(Op::Write, &[p], 0).is_some(), hit, "{p}");
    }
    let mut r = Rules::new(
        &[fault(
            1,
            Op::Write,
            "/tmp/*.txt",
            Some(Effect::Errno(1)),
            When::Always,
        )],
        None,
    )
    .unwrap();
    assert!(
        r.next_hit(Op::Write, &["/tmp/a/b.txt"], 0).is_none(),
        "* does not cross /"
    );
    assert!(r.next_hit(Op::Write, &["/tmp/b.txt"], 0).is_some());
    assert!(
        r.next_hit(Op::Read, &["/tmp/b.txt"], 0).is_none(),
        "another op"
    );
}

#[test]
fn the_model_matches_paths_relative_to_its_root() {
    let f = fault(
        1,
        Op::Write,
        "/sys/fs/cgroup/**/memory.max",
        Some(Effect::Short(3)),
        When::Always,
    );
    let mut r = Rules::new(&[f], Some("/sys/fs/cgroup")).unwrap();
    let hit = r
        .next_hit(Op::Write, &["kubepods/x/memory.max"], 0)
        .unwrap();
    assert_eq!(
        (hit.fault.id, hit.path, hit.call),
        (1, "kubepods/x/memory.max", 1)
    );
}

#[test]
fn the_search_goes_on_from_a_fired_fault() {
    // A delay and an errno on the same file: the model holds the call and fails it.
    let mut delay = fault(1, Op::Write, "/x", None, When::Always);
    delay.delay = Some(Duration::from_millis(10));
    let errno = fault(
        2,
        Op::Write,
        "/x",
        Some(Effect::Errno(libc::EBUSY)),
        When::Nth(2),
    );
    let mut r = Rules::new(&[delay, errno], None).unwrap();
    let first = r.next_hit(Op::Write, &["/x"], 0).unwrap();
    assert_eq!(first.fault.id, 1);
    let next = first.index + 1;
    assert!(
        r.next_hit(Op::Write, &["/x"], next).is_none(),
        "call 1 of #2"
    );
    assert_eq!(r.next_hit(Op::Write, &["/x"], next).unwrap().fault.id, 2);
}

#[test]
fn faults_that_cannot_fire_are_refused() {
    assert!(Rules::new(&[eio(When::Nth(0))], None).is_err());
    assert!(Rules::new(&[eio(When::Probability { p: 1.5, seed: 0 })], None).is_err());
    assert!(Rules::new(&[fault(1, Op::Write, "/x", None, When::Always)], None).is_err());
    let bad = fault(1, Op::Write, "/x/[", Some(Effect::Errno(1)), When::Always);
    assert!(Rules::new(std::slice::from_ref(&bad), None).is_err());
    let mut lenient = Rules::lenient(&[bad], None);
    assert!(lenient.next_hit(Op::Write, &["/x/["], 0).is_none());
}

#[test]
fn faults_are_routed_to_the_layer_that_can_apply_them() {
    let cg = "/sys/fs/cgroup/x/memory.max";
    let errno = fault(
        1,
        Op::Write,
        cg,
        Some(Effect::Errno(libc::EINVAL)),
        When::Always,
    );
    let short = fault(2, Op::Write, cg, Some(Effect::Short(3)), When::Always);
    let outside = fault(
        3,
        Op::Write,
        "/etc/x",
        Some(Effect::Errno(libc::EIO)),
        When::Always,
    );
    let dice = fault(
        4,
        Op::Write,
        cg,
        Some(Effect::Errno(libc::EIO)),
        When::Probability { p: 0.5, seed: 1 },
    );
    let statfs = fault(
        5,
        Op::Statfs,
        cg,
        Some(Effect::Errno(libc::EIO)),
        When::Always,
    );
    let mut both = fault(
        6,
        Op::Write,
        cg,
        Some(Effect::Errno(libc::EIO)),
        When::Always,
    );
    both.delay = Some(Duration::from_millis(5));
    let all = [errno, short, outside, dice, statfs, both];
    let ids = |v: &[Fault]| v.iter().map(|f| f.id).collect::<Vec<_>>();
    let r = route(&all, true).unwrap();
    assert_eq!(
        (ids(&r.model), ids(&r.syscall)),
        (vec![1, 2], vec![3, 4, 5, 6])
    );
    assert!(matches!(route(&all, false), Err(FaultError::NeedsModel)));
    let r = route(&[all[0].clone(), all[2].clone()], false).unwrap();
    assert_eq!((ids(&r.model), ids(&r.syscall)), (vec![], vec![1, 3]));
}

#[test]
fn every_fault_and_hit_is_printed_the_same_way() {
    let mut f = fault(
        2,
        Op::Write,
        "/sys/fs/cgroup/**/memory.max",
        Some(Effect::Errno(libc::EINVAL)),
        When::Probability { p: 0.5, seed: 7 },
    );
    f.delay = Some(Duration::from_millis(10));
    assert_eq!(
        f.describe(),
        "#2 write /sys/fs/cgroup/**/memory.max -> EINVAL, with probability 0.5 (seed 7), delay 10ms"
    );
    let short = fault(
        3,
        Op::Write,
        "/sys/fs/cgroup/x/cpu.max",
        Some(Effect::Short(3)),
        When::Nth(1),
    );
    assert_eq!(
        short.describe(),
        "#3 write /sys/fs/cgroup/x/cpu.max -> short write of 3 bytes, call 1 only"
    );
    assert_eq!(Effect::Short(1).describe(), "short write of 1 byte");
    let corrupt = fault(
        4,
        Op::Read,
        "/sys/fs/cgroup/x/cpu.max",
        Some(Effect::Corrupt("max\n".into())),
        When::After(2),
    );
    assert_eq!(
        corrupt.describe(),
        "#4 read /sys/fs/cgroup/x/cpu.max -> corrupted read \"max\\n\", every call after 2"
    );
    let hit = FaultHit {
        fault: 3,
        layer: Layer::Model,
        op: Op::Write,
        syscall: "write",
        path: "x/cpu.max".into(),
        effect: Some(Effect::Short(3)),
        call: 1,
        pid: 0,
    };
    assert_eq!(
        hit.describe(),
        "#3 write x/cpu.max -> short write of 3 bytes (call 1, cgroupfs model)"
    );
}

/// A retry loop meeting the same fault reads as one line per run of calls; a different
/// site, effect or a gap in the calls starts a new line.
#[test]
fn consecutive_hits_of_one_fault_at_one_site_read_as_one_line() {
    let hit = |fault: u32, path: &str, call: u64| FaultHit {
        fault,
        layer: Layer::Model,
        op: Op::Rmdir,
        syscall: "rmdir",
        path: path.into(),
        effect: Some(Effect::Errno(libc::EBUSY)),
        call,
        pid: 0,
    };
    let hits = [
        hit(1, "x", 1),
        hit(1, "x", 2),
        hit(1, "x", 3),
        hit(1, "y", 4),
        hit(1, "y", 6),
        hit(2, "y", 1),
    ];
    assert_eq!(
        describe_hits(&hits),
        [
            "#1 rmdir x -> EBUSY (calls 1–3, cgroupfs model)",
            "#1 rmdir y -> EBUSY (call 4, cgroupfs model)",
            "#1 rmdir y -> EBUSY (call 6, cgroupfs model)",
            "#2 rmdir y -> EBUSY (call 1, cgroupfs model)",
        ]
    );
    assert!(describe_hits(&[]).is_empty());
}
