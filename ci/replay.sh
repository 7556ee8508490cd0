#!/usr/bin/env bash
# The main job: replay the flagship scenarios across their matrix, then every scenario.
# Installs what is missing. Extra arguments go to `cgrepro matrix` (e.g. --jobs 4).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh

cargo build --workspace --bins --quiet
status=0
# The flagship: kata-containers#10756 across hosts x sandbox_cgroup_only x cgroups path
# style — against the real Kata shim when CGREPRO_KATA_SHIM names one, and against the
# fixture shim (a real cgroups-rs inside a real ttrpc shim) always. Then kata#4687 across
# cgroups-rs versions.
flagship=(scenarios/kata/10756-sandbox-cgroup-only-fixture.toml scenarios/cgroups-rs/kata-4687-overhead-path.toml)
if [ -n "${CGREPRO_KATA_SHIM:-}" ]; then
    flagship=(scenarios/kata/10756-sandbox-cgroup-only.toml "${flagship[@]}")
fi
for s in "${flagship[@]}"; do
    echo
    ./target/debug/cgrepro matrix "$s" "$@" || status=$?
done
echo
# Without the real Kata shim its cases cannot run here: accept that (they are listed as
# ignored, with the reason); anything else that cannot run still fails the run (exit 3).
allow=()
[ -n "${CGREPRO_KATA_SHIM:-}" ] || allow=(--allow-ignored)
./target/debug/cgrepro run "${allow[@]}" || status=$?
exit $status
