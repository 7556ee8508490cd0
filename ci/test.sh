#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test
# (unit tests, the scenario matrix, containment and error tests), checks formatting and
# lints. CI runs this through .ci/run with CI=true (snapshots are then never written).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh

# A fresh clone gains nothing from incremental compilation, and its caches are the largest
# part of target/ (about 7 of 19 GB for the test build plus clippy): off under CI.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
# The build and tests need about 12 GB of disk; say so plainly rather than fail mid-build.
avail_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${avail_kb:-0}" -lt $((12 * 1024 * 1024)) ]; then
    echo "cgrepro: only $((avail_kb / 1024)) MB free under $(pwd); the build and tests need about 12 GB" >&2
fi

# The real-kernel lane's QEMU and Debian 6.1 kernel (cached in ~/.cache/cgrepro/lane); the
# lane's test says it is skipped, and why, when they cannot be had.
bash ci/kernel-lane.sh 6.1 || echo "cgrepro: kernel lane unavailable (see above); its test will be skipped" >&2

echo "== build" >&2
cargo build --workspace --all-targets --quiet
echo "== peer suite (cgroups-rs 0.3.4's own tests, for harness/tests/peer_suite.rs)" >&2
ci/peer-suite.sh
echo "== test" >&2
# Drivers were just built: the scenario runner need not rebuild them.
CGREPRO_SKIP_BUILD=1 cargo test --workspace --quiet --no-fail-fast -- --test-threads="$(nproc)"
echo "== fmt, clippy" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== done" >&2
