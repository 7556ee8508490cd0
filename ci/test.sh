#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test
# (unit tests, the scenario matrix, containment and error tests), checks formatting and
# lints. CI runs this through .ci/run with CI=true (snapshots are then never written).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh

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
