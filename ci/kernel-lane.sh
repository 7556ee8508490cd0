#!/usr/bin/env bash
# The real-kernel lane's prerequisites, idempotent: QEMU (TCG) and real Debian kernels.
#
# Kernels are never installed on this machine: the image packages are downloaded with
# `apt-get download` and only `boot/vmlinuz-*` is taken out with `dpkg-deb -x`, into the
# cache dir ($CGREPRO_LANE_CACHE, default ~/.cache/cgrepro/lane; never committed):
#   <cache>/kernels/<series>/vmlinuz   <cache>/kernels/<series>/release
# Series: 6.1 (Debian 12, the machine's own apt sources) and 6.12 (bookworm-backports, read
# through a private apt list under <cache>/apt so the machine's apt config is not touched).
# Usage: bash ci/kernel-lane.sh [6.1] [6.12]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh
apt_install qemu-system-x86

CACHE="${CGREPRO_LANE_CACHE:-$HOME/.cache/cgrepro/lane}"
mkdir -p "$CACHE/kernels" "$CACHE/debs"
series=("$@")
[ ${#series[@]} -eq 0 ] && series=(6.1 6.12)

# The versioned image package the meta-package points at, e.g. linux-image-6.1.0-47-amd64.
image_of() { # apt-cache args...
    apt-cache "$@" depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1
}

fetch_kernel() { # series, apt-get/apt-cache extra args...
    local s="$1"; shift
    local dir="$CACHE/kernels/$s"
    [ -s "$dir/vmlinuz" ] && return 0
    local pkg
    pkg="$(image_of "$@")"
    [ -n "$pkg" ] || { echo "cgrepro lane: no linux-image-amd64 for $s in apt" >&2; return 1; }
    # The unsigned package holds the same kernel without the Secure Boot signature.
    echo "cgrepro lane: downloading ${pkg}-unsigned for $s" >&2
    (cd "$CACHE/debs" && apt-get "$@" download -qq "${pkg}-unsigned" >/dev/null)
    local deb
    deb="$(ls -t "$CACHE/debs/${pkg}-unsigned_"*.deb | head -1)"
    local tmp
    tmp="$(mktemp -d)"
    dpkg-deb -x "$deb" "$tmp"
    mkdir -p "$dir"
    cp "$tmp"/boot/vmlinuz-* "$dir/vmlinuz"
    basename "$tmp"/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$dir/release"
    echo "$(basename "$deb") sha256 $(sha256sum "$deb" | cut -d' ' -f1)" >"$dir/source"
    rm -rf "$tmp"
    echo "cgrepro lane: $s = $(cat "$dir/release")" >&2
}

for s in "${series[@]}"; do
    case "$s" in
    6.1) fetch_kernel 6.1 ;;
    6.12)
        A="$CACHE/apt"
        mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
        echo "deb http://deb.debian.org/debian bookworm-backports main" >"$A/sources.list"
        opts=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root)
        if [ ! -s "$CACHE/kernels/6.12/vmlinuz" ]; then
            apt-get "${opts[@]}" update -qq >/dev/null 2>&1 ||
                { echo "cgrepro lane: bookworm-backports unreachable: no 6.12 kernel" >&2; continue; }
            fetch_kernel 6.12 "${opts[@]}" || true
        fi
        ;;
    *) echo "cgrepro lane: unknown series $s (known: 6.1 6.12)" >&2; exit 2 ;;
    esac
done
