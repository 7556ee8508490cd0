#!/usr/bin/env bash
# Install what cgrepro needs on a fresh Debian machine, if it is missing. Idempotent.
# Sourced by ci/test.sh and ci/replay.sh; safe to run on its own.
set -euo pipefail

need_cmd() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        if need_cmd sudo; then SUDO=sudo; else
            echo "cgrepro setup: missing packages ${missing[*]} and not root: install them and rerun" >&2
            exit 1
        fi
    else
        SUDO=
    fi
    echo "cgrepro setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if ! need_cmd cargo; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "cgrepro setup: installing the Rust toolchain (rustup)" >&2
        apt_install curl ca-certificates
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt >/dev/null
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi

# gcc + libc6-dev: the static C test target of the syscall-layer tests; busybox-static:
# the statically linked target of scenarios/syscall/static-binary; python3: command
# targets that make raw syscalls (scenarios/syscall/openat2-enosys).
apt_install gcc libc6-dev busybox-static python3
apt_install systemd dbus-bin
# busctl (package systemd: only the client is used, nothing is started) and dbus-send
# (dbus-bin): the D-Bus clients of scenarios/systemd/busctl-transient-scope.

# chromium: the HTML report is checked in a real (headless) browser; util-linux: `script`
# (a terminal for the progress-bar test) and `setpriv` (the non-root test).
apt_install chromium util-linux

# cargo-nextest (the scenario runner under nextest, partitions) and cargo-insta (the
# snapshot review flow), both tested. From crates.io, built here: prebuilt downloads are
# not reachable from every machine. Measured on 2 cores: see BENCHMARKS.md.
cargo_tool() {
    local sub=$1 crate=$2 version=$3
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        echo "cgrepro setup: installing $crate $version (cargo install, a few minutes)" >&2
        cargo install --quiet --locked "$crate" --version "$version"
    fi
}
cargo_tool nextest cargo-nextest 0.9.143
cargo_tool insta cargo-insta 1.49.0
