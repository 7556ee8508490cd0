#!/usr/bin/env bash
# Run a built peer suite (ci/peer-suite.sh) on this machine's real kernel, confined to
# throwaway cgroups. Usage: ci/peer-suite-real.sh PATH/TO/run  (as root; v1 hierarchies).
#
# SAFETY: the only groups written are `cgrepro-peer-<pid>` (and what the suite creates
# below them), made under this script's own group in each v1 hierarchy. A child moves
# itself into them, enters a new cgroup and mount namespace, and mounts each hierarchy
# afresh over a private tmpfs at /sys/fs/cgroup: in a cgroup namespace the new mounts'
# root is the throwaway group, so the suite sees nothing above it. This script never
# writes a file of a pre-existing group (it stays in its own groups). Afterwards it kills
# whatever the suite left in the throwaway groups and removes them, deepest first; one
# that cannot be removed is reported and fails the run (exit 3).
set -euo pipefail
run=$(realpath "$1")
[[ $(id -u) == 0 ]] || { echo "peer-suite-real: needs root" >&2; exit 2; }
name=cgrepro-peer-$$
declare -a mnts opts bases
while read -r _ _ _ _ mnt _ rest; do
    fstype=${rest#*- }; fstype=${fstype%% *}
    [[ $fstype == cgroup && $mnt == /sys/fs/cgroup/* ]] || continue
    super=${rest##* }
    mnts+=("$mnt"); opts+=("$super")
done < /proc/self/mountinfo
[[ ${#mnts[@]} -gt 0 ]] || { echo "peer-suite-real: no cgroup v1 hierarchy mounted" >&2; exit 2; }
for i in "${!mnts[@]}"; do
    # This process's group in the hierarchy: the /proc/self/cgroup line naming its options.
    key=$(tr ',' '\n' <<<"${opts[$i]}" | grep -v -E '^(rw|ro|clone_children|noprefix|xattr)$|^[a-z_]+=/' | head -1)
    own=$(awk -F: -v k="$key" '{ n = split($2, c, ","); for (j = 1; j <= n; j++) if (c[j] == k) print $3 }' /proc/self/cgroup)
    bases+=("${mnts[$i]}${own%/}/$name")
done
cleanup() {
    local b left=0
    for b in "${bases[@]}"; do
        [[ -d $b && $b == */$name ]] || continue
        find "$b" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
    sleep 0.2
    for b in "${bases[@]}"; do
        [[ -d $b && $b == */$name ]] || continue
        find "$b" -depth -type d -exec rmdir {} + 2>/dev/null || true
        if [[ -d $b ]]; then echo "peer-suite-real: could not remove $b" >&2; left=1; fi
    done
    return $left
}
trap 'cleanup || exit 3' EXIT
for b in "${bases[@]}"; do
    mkdir "$b"
    if [[ -f $b/cpuset.cpus ]]; then
        cat "$(dirname "$b")/cpuset.cpus" > "$b/cpuset.cpus"
        cat "$(dirname "$b")/cpuset.mems" > "$b/cpuset.mems"
    fi
done
mounts=""
for i in "${!mnts[@]}"; do
    mounts+="mkdir -p '${mnts[$i]}' && mount -t cgroup -o '${opts[$i]#rw,}' cgroup '${mnts[$i]}' && "
done
status=0
(
    for b in "${bases[@]}"; do echo "$BASHPID" > "$b/cgroup.procs"; done
    exec unshare --cgroup --mount --propagation private -- sh -c \
        "mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup && $mounts exec '$run'"
) || status=$?
exit $status
