#!/usr/bin/env bash
# Build cgroups-rs 0.3.4's own integration tests from the crates.io package, unmodified,
# into target/peer-suite/cgroups-rs-0.3.4/ (run by harness/tests/peer_suite.rs; the source
# and its build stay in ~/.cache/cgrepro-peer-suite, or $CGREPRO_PEER_CACHE):
#   bin/<test>   one libtest binary per tests/<test>.rs of the package
#   run          runs them all, one test at a time, `Running tests/<test>.rs` before each
# The package is unpacked from cargo's download (`cargo fetch`), after checking its sha256
# against the workspace's Cargo.lock; nothing in it is changed. Idempotent: a built suite
# is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
name=cgroups-rs
version=0.3.4
out=target/peer-suite/$name-$version
if [[ -x $out/run && -z ${CGREPRO_PEER_REBUILD:-} ]]; then
    echo "peer suite: $out is built" >&2
    exit 0
fi
cargo fetch --quiet
want=$(awk -v n="$name" -v v="$version" '
    $0 == "name = \"" n "\"" { hit = 1; next }
    hit && $0 == "version = \"" v "\"" { ok = 1; next }
    hit && ok && /^checksum/ { gsub(/"/, "", $3); print $3; exit }
    /^\[\[package\]\]/ { hit = 0; ok = 0 }' Cargo.lock)
crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$name-$version.crate" | head -1)
have=$(sha256sum "$crate" | cut -d' ' -f1)
if [[ -z $want || $have != "$want" ]]; then
    echo "peer suite: $crate has sha256 $have, Cargo.lock says '$want'" >&2
    exit 1
fi
# Unpacked and built outside the workspace (cargo would take it for a member).
cache=${CGREPRO_PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cgrepro-peer-suite}
rm -rf "$out" "$cache/$name-$version"
mkdir -p "$out/bin" "$cache"
tar -xzf "$crate" -C "$cache"
src=$cache/$name-$version
# The package's own build, offline (its dependencies are in cargo's cache through the
# workspace), in its own target dir.
CARGO_TARGET_DIR=$cache/target cargo test --offline --quiet --no-run \
    --manifest-path "$src/Cargo.toml" --message-format=json |
    python3 -c '
import json, shutil, sys
out = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], out + "/bin/" + m["target"]["name"])
' "$out"
tests=$(cd "$out/bin" && ls | sort | tr '\n' ' ')
cat > "$out/run" <<RUN
#!/bin/sh
# cgroups-rs $version's integration tests, one binary after the other, one test at a time.
cd "\$(dirname "\$0")/bin" || exit 1
status=0
for t in $tests; do
    echo "     Running tests/\$t.rs"
    ./\$t --test-threads=1 || status=1
done
exit \$status
RUN
chmod +x "$out/run"
echo "peer suite: built $out ($tests)" >&2
