#!/usr/bin/env bash
# The main job: replay the flagship scenarios across their matrix, then every scenario.
# Installs what is missing. Extra arguments go to `cgrepro matrix` (e.g. --jobs 4).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh

cargo build --workspace --bins --quiet
status=0
# The flagship: kata-containers#10756 across hosts x sandbox_cgroup_only x cgroups path
# style — against the real Kata shim (3.13.0, and across every release built) when the
# shim directory holds it (ci/kata-shim.sh builds it from Kata's source; --shim-dir or
# CGREPRO_KATA_SHIM_DIR point elsewhere), and against the fixture shim (a real cgroups-rs
# inside a real ttrpc shim) always. Then kata#4687 across cgroups-rs versions.
shim_dir=${CGREPRO_KATA_SHIM_DIR:-}
if [ -z "$shim_dir" ]; then
    if [ "$(id -u)" -eq 0 ]; then shim_dir=/var/cache/cgrepro/kata-shims; else
        shim_dir=${XDG_CACHE_HOME:-$HOME/.cache}/cgrepro/kata-shims; fi
fi
flagship=(scenarios/kata/10756-sandbox-cgroup-only-fixture.toml scenarios/cgroups-rs/kata-4687-overhead-path.toml)
if [ -x "$shim_dir/containerd-shim-kata-v2-3.13.0" ]; then
    flagship=(scenarios/kata/10756-sandbox-cgroup-only.toml scenarios/kata/10756-across-releases.toml "${flagship[@]}")
else
    echo "cgrepro: no real Kata shim in $shim_dir: the real-shim matrices are skipped (build one: ci/kata-shim.sh KATA_GIT_DIR 3.13.0)" >&2
fi
# The real-shim matrices run under a release build of the harness and of the shim client
# (containerd's side of the ttrpc conversation): the debug build's own overhead is most of
# what is ours in a real-shim case (BENCHMARKS.md, "The real Kata shim"). The code under
# test is the same binary either way; the fixture drivers and shims stay debug builds, as
# their snapshots were recorded.
release_bins=()
if [ ${#flagship[@]} -gt 2 ]; then
    cargo build --release -p cgrepro --bin cgrepro --bin cgrepro-shim-client --quiet
    release_bins=(scenarios/kata/10756-sandbox-cgroup-only.toml scenarios/kata/10756-across-releases.toml)
fi
for s in "${flagship[@]}"; do
    echo
    bin=./target/debug/cgrepro
    for r in "${release_bins[@]}"; do [ "$r" = "$s" ] && bin=./target/release/cgrepro; done
    $bin matrix "$s" "$@" || status=$?
done
echo
# Kata releases missing from the shim directory make their cases unrunnable here: accept
# that (they are listed as ignored, with the command that builds them); with every
# release the scenarios name at hand, anything that cannot run fails the run (exit 3).
allow=()
for v in $(grep -rhoE 'containerd-shim-kata-v2|"3\.[0-9]+\.[0-9]+"' scenarios/kata scenarios/sweep scenarios/found 2>/dev/null | grep -oE '3\.[0-9]+\.[0-9]+' | sort -u); do
    [ -x "$shim_dir/containerd-shim-kata-v2-$v" ] || allow=(--allow-ignored)
done
./target/debug/cgrepro run "${allow[@]}" || status=$?
exit $status
