//! Per-test verdicts of a Rust test suite run as a `command` target: the lines libtest
//! prints (`test NAME ... ok|FAILED|ignored`), each named after the test binary that ran
//! it (`Running tests/NAME.rs`, as cargo and the peer-suite runner print before each
//! binary), so a report can say which test passed where.

use std::collections::BTreeMap;

/// `binary::test` → `ok`, `FAILED` or `ignored`, from libtest's output. Names without a
/// preceding `Running` line stay bare. Lines that are not libtest's are skipped.
pub fn verdicts(stdout: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut binary: Option<String> = None;
    for line in stdout.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.trim_start().strip_prefix("Running ") {
            // `tests/cgroup.rs (target/debug/deps/cgroup-…)` or `tests/cgroup.rs`.
            let file = rest.split_whitespace().next().unwrap_or(rest);
            binary = std::path::Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            continue;
        }
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        let Some((name, verdict)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        // `ignored, reason` (libtest with a reason) counts as ignored.
        let verdict = verdict.split(',').next().unwrap_or(verdict).trim();
        if !matches!(verdict, "ok" | "FAILED" | "ignored") || name.contains(' ') {
            continue;
        }
        let key = match &binary {
            Some(b) => format!("{b}::{name}"),
            None => name.to_owned(),
        };
        out.insert(key, verdict.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::verdicts;

    #[test]
    fn verdicts_are_named_after_their_binary() {
        let out = "     Running tests/builder.rs\n\nrunning 2 tests\n\
                   test test_blkio_res_build ... ignored\n\
                   test test_network_res_build ... FAILED\n\
                   \nfailures:\n\n---- test_network_res_build stdout ----\n\
                   thread 'x' panicked at tests/builder.rs:124:55:\n\
                   test result: FAILED. 0 passed; 1 failed; 1 ignored\n\
                   \x20    Running tests/cgroup.rs (target/debug/deps/cgroup-4258)\n\
                   test test_kill_cgroup ... ok\n\
                   test other ... ignored, needs a v2 host\n";
        let v = verdicts(out);
        assert_eq!(v["builder::test_blkio_res_build"], "ignored");
        assert_eq!(v["builder::test_network_res_build"], "FAILED");
        assert_eq!(v["cgroup::test_kill_cgroup"], "ok");
        assert_eq!(v["cgroup::other"], "ignored");
        assert_eq!(v.len(), 4, "{v:?}");
    }
}
