#!/usr/bin/env bash
# The main job: replay the flagship scenarios across their matrix, then every scenario.
# Installs what is missing. Extra arguments go to `cgrepro matrix` (e.g. --jobs 4).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh

cargo build --workspace --bins --quiet
status=0
for s in scenarios/cgroups-rs/kata-4687-overhead-path.toml scenarios/kata/10756-sandbox-cgroup-only-fixture.toml; do
    echo
    ./target/debug/cgrepro matrix "$s" "$@" || status=$?
done
echo
./target/debug/cgrepro run || status=$?
exit $status
