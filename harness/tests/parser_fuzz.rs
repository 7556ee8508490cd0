//! The scenario parser never panics, whatever the file says.
//!
//! A mutation fuzzer over the shipped scenarios and the malformed fixtures: each input
//! is a seed file with 1–6 random edits (byte flips, cuts, duplications, splices of two
//! seeds, and insertions from a dictionary of the format's tokens and of the values that
//! once slipped through: `nth:0`, `"0s"`, `-5`, `../`, NUL, `[[[[`, huge strings, large
//! matrices). Every input must come back as a scenario or a located error (line and
//! column ≥ 1), never a panic. `CGREPRO_FUZZ_INPUTS` sets the count (default 100,000;
//! CI runs the default) and `CGREPRO_FUZZ_SEED` the seed (default: a fixed one, so a CI
//! failure replays; the failing input is written to target/parser-fuzz-failure.toml).
//!
//! Hand-written on fastrand rather than cargo-fuzz (needs nightly, not CI's stable
//! toolchain) or proptest (its value is shrinking structured values; a parser wants
//! byte-level mutation of real files, which is these 100 lines).

// ScenarioError is large by design (it carries the source line); as in `scenario`.
#![allow(clippy::result_large_err)]

use std::path::Path;

use cgrepro::engine::Engine;
use cgrepro::scenario;

mod support;

use support::root;

fn seeds(root: &Path) -> Vec<String> {
    let mut files = scenario::discover(&root.join("scenarios"));
    files.extend(scenario::discover(&root.join("fixtures/bad-scenarios")));
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

const DICTIONARY: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\n",
    "#",
    "\\",
    "\\u0000",
    "\\u001b",
    "\"\"\"",
    "[[fault]]\n",
    "[[expect]]\n",
    "[matrix]\n",
    "[host]\n",
    "[pod]\n",
    "[target]\n",
    "[scenario]\n",
    "[runtime]\n",
    "title = ",
    "timeout = ",
    "grace = ",
    "delay = ",
    "call_timeout = ",
    "path = ",
    "file = ",
    "when = ",
    "op = ",
    "errno = ",
    "short = ",
    "corrupt = ",
    "devices = ",
    "writable = ",
    "pids_limit = ",
    "cpu_quota = ",
    "cpu_period = ",
    "id = ",
    "max_cells = ",
    "preset = ",
    "kernel = ",
    "\"nth:0\"",
    "\"nth:1\"",
    "\"after:0\"",
    "\"p=2\"",
    "\"p=0.5\"",
    "\"0s\"",
    "\"99999h\"",
    "\"1ms\"",
    "-5",
    "-1",
    "0",
    "18446744073709551615",
    "-9223372036854775808",
    "1e308",
    "nan",
    "\"../\"",
    "\"/etc/passwd\"",
    "\"/sys/fs/cgroup/../../etc\"",
    "\"[[[[\"",
    "\"**\"",
    "\"{id}\"",
    "[\"kvm\", \"../x\"]",
    "\"\\u0000\"",
    "true",
    "false",
    "1979-05-27",
    "\"host.preset\" = [\"debian-12\", \"rhel-8\", \"ubuntu-20.04\"]\n",
    "\"pod.pids_limit\" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]\n",
    "\"target.timeout\" = [\"1s\", \"0s\"]\n",
    "\"host.devices\" = [[\"kvm\"], [\"/dev/sda\"]]\n",
];

/// `bytes` inserted at `at` (memcpy, not an element-wise splice: a debug build fuzzes too).
fn insert(b: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let tail = b.split_off(at);
    b.extend_from_slice(bytes);
    b.extend_from_slice(&tail);
}

fn mutate(rng: &mut fastrand::Rng, seeds: &[String]) -> Vec<u8> {
    let mut b = seeds[rng.usize(..seeds.len())].as_bytes().to_vec();
    for _ in 0..rng.usize(1..=6) {
        let at = rng.usize(..=b.len());
        match rng.u8(..7) {
            0 if !b.is_empty() => {
                let i = rng.usize(..b.len());
                b[i] ^= 1 << rng.u8(..8);
            }
            1 if !b.is_empty() => {
                let end = (at + rng.usize(..64)).min(b.len());
                b.drain(at..end);
            }
            2 => {
                let end = (at + rng.usize(..128)).min(b.len());
                let dup = b[at..end].to_vec();
                insert(&mut b, at, &dup);
            }
            3 => {
                let other = seeds[rng.usize(..seeds.len())].as_bytes();
                let from = rng.usize(..=other.len());
                let end = (from + rng.usize(..256)).min(other.len());
                insert(&mut b, at, &other[from..end]);
            }
            4 => {
                // A long string: the bounds, not the allocator, must stop it.
                let n = if rng.u8(..50) == 0 {
                    2 << 20
                } else {
                    rng.usize(..300)
                };
                let mut s = vec![b'x'; n + 2];
                (s[0], s[n + 1]) = (b'"', b'"');
                insert(&mut b, at, &s);
            }
            _ => {
                let t = DICTIONARY[rng.usize(..DICTIONARY.len())];
                insert(&mut b, at, t.as_bytes());
            }
        }
    }
    b
}

#[test]
fn the_parser_never_panics_on_mutated_scenarios() {
    let root = root();
    let engine = Engine::new(&root).unwrap();
    let ctx = engine.context();
    let seeds = seeds(&root);
    assert!(seeds.len() > 20, "seed corpus: {} files", seeds.len());
    let inputs: usize = std::env::var("CGREPRO_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("CGREPRO_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_c6e9);
    let file = root.join("scenarios/fuzz/input.toml");
    let start = std::time::Instant::now();
    // Panics are caught and reported with their input, not printed once per input.
    std::panic::set_hook(Box::new(|_| {}));
    // One stream of inputs per core (seed + thread number), to fit CI time.
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let counts: Vec<Result<(usize, usize), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (seeds, ctx, file, root) = (&seeds, &ctx, &file, &root);
                let share = inputs / threads + usize::from(t < inputs % threads);
                s.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(t as u64));
                    let (mut loaded, mut refused) = (0usize, 0usize);
                    for n in 0..share {
                        let bytes = mutate(&mut rng, seeds);
                        // The loader reads files as UTF-8 (others are refused before
                        // parsing).
                        let src = String::from_utf8_lossy(&bytes).into_owned();
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            scenario::parse_str(file, "fuzz/input", &src, ctx)
                        }));
                        match result {
                            Ok(Ok(_)) => loaded += 1,
                            Ok(Err(e)) if e.line >= 1 && e.col >= 1 => refused += 1,
                            Ok(Err(e)) => {
                                return Err(format!(
                                    "input {n} of thread {t}: error without a position: {e}"
                                ))
                            }
                            Err(panic) => {
                                let out = root.join(format!("target/parser-fuzz-failure-{t}.toml"));
                                let _ = std::fs::write(&out, &src);
                                let why = panic
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_default();
                                return Err(format!(
                                    "input {n} of thread {t} (seed {seed}) panicked the parser: \
                                     {why}; input in {}",
                                    out.display()
                                ));
                            }
                        }
                    }
                    Ok((loaded, refused))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("fuzz thread died".into())))
            .collect()
    });
    let _ = std::panic::take_hook();
    let mut loaded = 0;
    let mut refused = 0;
    for c in counts {
        let (l, r) = c.unwrap_or_else(|e| panic!("{e}"));
        loaded += l;
        refused += r;
    }
    eprintln!(
        "{inputs} inputs in {:.1?}: {loaded} loaded, {refused} refused with a located error",
        start.elapsed()
    );
    assert_eq!(loaded + refused, inputs);
}
