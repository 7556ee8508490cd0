//! How the kernel parses and stores the values written to interface files.
//!
//! [`RULES`] is the table: one row per file name (or name pattern) with the parser the
//! kernel uses for it. The parsers return the content the file reads back afterwards, or
//! the errno of the write. Facts come from the captured errno results of Debian 6.1 / 6.12
//! (`shared/data/cgroupfs/errno.json`) and the kernel sources named in each row; files
//! without a row accept any value and read it back as written.

use libc::{EINVAL, ERANGE};

/// Page size of the simulated machine.
pub const PAGE: u64 = 4096;
/// `PAGE_COUNTER_MAX` (64-bit): LONG_MAX / PAGE_SIZE pages.
const PAGE_COUNTER_MAX: u64 = i64::MAX as u64 / PAGE;
/// v1 "unlimited" as the kernel prints it: `PAGE_COUNTER_MAX * PAGE_SIZE`.
pub const V1_UNLIMITED: u64 = 9_223_372_036_854_771_712;
/// CPUs and memory nodes of the simulated machine (like the captures: 0-1, node 0).
pub const NR_CPUS: u32 = 2;
pub const NR_NODES: u32 = 1;

/// A parser: what the kernel does with a written value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// v2 page_counter: `max` or a memparse size, rounded down to pages.
    V2Bytes,
    /// v1 res_counter: `-1` (unlimited) or a memparse size, rounded down to pages.
    V1Bytes,
    /// `max` or an integer 0..=i32::MAX (pids.max).
    MaxOrInt,
    /// v2 `cpu.max`: `$MAX [$PERIOD]`.
    CpuMax,
    /// An integer within a range; out of range → the given errno.
    IntRange(i64, i64, i32),
    /// An integer clamped to a range (v1 cpu.shares).
    IntClamp(i64, i64),
    /// One of the words.
    Word(&'static [&'static str]),
    /// `cpu.cfs_quota_us`: -1 or >= 1000.
    CfsQuota,
    /// CPU list (`0-1,3`); CPUs beyond the machine → ERANGE.
    CpuList,
    /// Memory node list; nodes beyond the machine → EINVAL.
    NodeList,
    /// A u64 flag read back as 0/1 (cgroup core `write_u64` flags).
    Bool,
    /// cgroup core `write_u64` stored as a u32 (`net_cls.classid`): `kstrtoull(buf, 0)`
    /// takes decimal, `0x` hex and `0` octal; beyond u64 `ERANGE`; read back in decimal.
    U32FromU64,
    /// `max` or a `kstrtoint` (base 0) integer >= 0; INT_MAX reads back as `max`
    /// (kernel/cgroup/cgroup.c, cgroup_max_{depth,descendants}_write: kstrtoint's
    /// EINVAL/ERANGE, then ERANGE below 0).
    CgroupLimit,
    /// A PSI trigger (`some|full <threshold us> <window us>`, kernel/sched/psi.c
    /// psi_trigger_create): bound to the open file, so reads are unchanged.
    PsiTrigger,
    /// `MAJ:MIN ...` of a block device (blkg_conf_prep): the simulated machine has no block
    /// devices, so a well-formed one is ENODEV, anything else EINVAL.
    BlockDevice,
    /// `rdma.max`: `<device> [hca_handle=N|max] [hca_object=N|max]` (rdmacg_resource_set_max
    /// parses the limits, then looks the device up): no RDMA devices here, so ENODEV.
    RdmaMax,
    /// `misc.max`: `<resource> <N|max>`; the simulated machine has no misc resource (no
    /// SEV/TDX), so every name is unknown: EINVAL (misc_cg_max_write).
    NoMiscResource,
    /// `net_prio.ifpriomap`: `<ifname> <prio>` (`sscanf "%s %u"` → EINVAL), an unknown
    /// interface ENODEV; the machine has `lo` only.
    IfPrioMap,
    /// A size to act on, not stored (`memory.reclaim`: page_counter_memparse).
    SizeAction,
    /// `cgroup.event_control`: `<event fd> <fd> [args]` or EINVAL; what a well-formed one
    /// does with the fds is not modelled (accepted, not stored).
    EventControl,
    /// An unsigned integer (kstrtoull: a sign or a word is EINVAL) within a range; out of
    /// range → the given errno.
    UintRange(u64, u64, i32),
    /// `io.weight` (blk-iocost ioc_weight_write): `[default ]N` with N in 1..=10000, else
    /// EINVAL; `MAJ:MIN N` names a device, and there are none: ENODEV.
    IoWeight,
    /// A hugetlb limit: like [`Parse::V2Bytes`] (`true`) or [`Parse::V1Bytes`], rounded
    /// down to whole 2 MB huge pages.
    HugeBytes(bool),
    /// Accepted, stored as written (no validation modelled).
    Any,
    /// Accepted and ignored: reads keep the old value (memory.kmem.limit_in_bytes on 6.1).
    Ignored,
}

/// (file name, parser). A name ending in `*` is a prefix.
pub const RULES: &[(&str, Parse)] = &[
    // v2 memory (mm/memcontrol.c, page_counter_memparse)
    ("memory.max", Parse::V2Bytes),
    ("memory.high", Parse::V2Bytes),
    ("memory.low", Parse::V2Bytes),
    ("memory.min", Parse::V2Bytes),
    ("memory.swap.max", Parse::V2Bytes),
    ("memory.swap.high", Parse::V2Bytes),
    ("memory.zswap.max", Parse::V2Bytes),
    ("memory.oom.group", Parse::IntRange(0, 1, EINVAL)),
    ("pids.max", Parse::MaxOrInt),
    ("cpu.max", Parse::CpuMax),
    // kernel/sched/core.c: cpu_weight_write_u64 → ERANGE outside [1, 10000]
    ("cpu.weight", Parse::UintRange(1, 10_000, ERANGE)),
    // cpu_cfs_burst_write_u64 (kstrtoull: `-1` and words are EINVAL)
    (
        "cpu.max.burst",
        Parse::UintRange(0, i64::MAX as u64, EINVAL),
    ),
    ("cpu.weight.nice", Parse::IntRange(-20, 19, ERANGE)),
    ("cpu.idle", Parse::IntRange(0, 1, EINVAL)),
    ("io.weight", Parse::IoWeight),
    ("cgroup.max.depth", Parse::CgroupLimit),
    ("cgroup.max.descendants", Parse::CgroupLimit),
    // kernel/cgroup/cgroup.c, cgroup_pressure_write: kstrtoint, then ERANGE outside [0, 1]
    ("cgroup.pressure", Parse::IntRange(0, 1, ERANGE)),
    ("cpu.pressure", Parse::PsiTrigger),
    ("io.pressure", Parse::PsiTrigger),
    ("memory.pressure", Parse::PsiTrigger),
    ("irq.pressure", Parse::PsiTrigger),
    ("io.max", Parse::BlockDevice),
    ("blkio.throttle.*_device", Parse::BlockDevice),
    ("cpuset.cpus", Parse::CpuList),
    ("cpuset.mems", Parse::NodeList),
    ("cpuset.cpus.exclusive", Parse::CpuList),
    (
        "cpuset.cpus.partition",
        Parse::Word(&["member", "root", "isolated"]),
    ),
    // v1 memory (mm/memcontrol-v1.c, mem_cgroup_write)
    ("memory.limit_in_bytes", Parse::V1Bytes),
    ("memory.soft_limit_in_bytes", Parse::V1Bytes),
    ("memory.memsw.limit_in_bytes", Parse::V1Bytes),
    ("memory.kmem.tcp.limit_in_bytes", Parse::V1Bytes),
    ("memory.swappiness", Parse::IntRange(0, 200, EINVAL)),
    (
        "memory.move_charge_at_immigrate",
        Parse::IntRange(0, 3, EINVAL),
    ),
    ("memory.force_empty", Parse::Any),
    ("memory.oom_control", Parse::IntRange(0, 1, EINVAL)),
    // v1 cpu (kernel/sched/core.c): shares clamped to [2, 262144]
    ("cpu.shares", Parse::IntClamp(2, 262_144)),
    ("cpu.cfs_quota_us", Parse::CfsQuota),
    (
        "cpu.cfs_period_us",
        Parse::IntRange(1000, 1_000_000, EINVAL),
    ),
    ("cpu.cfs_burst_us", Parse::IntRange(0, i64::MAX, EINVAL)),
    ("cpu.rt_runtime_us", Parse::Any),
    ("cpu.rt_period_us", Parse::Any),
    ("freezer.state", Parse::Word(&["FROZEN", "THAWED"])),
    ("cgroup.clone_children", Parse::Bool),
    ("notify_on_release", Parse::Bool),
    // kernel/cgroup/cpuset.c, cpuset_write_u64: any u64 is a flag (`2` sets it; the lane
    // saw `2` accepted on 6.1 v1), `-1` fails kstrtoull
    ("cpuset.cpu_exclusive", Parse::Bool),
    ("cpuset.mem_exclusive", Parse::Bool),
    ("cpuset.mem_hardwall", Parse::Bool),
    ("cpuset.memory_migrate", Parse::Bool),
    ("cpuset.sched_load_balance", Parse::Bool),
    ("cpuset.memory_spread_page", Parse::Bool),
    ("cpuset.memory_spread_slab", Parse::Bool),
    // block/blk-cgroup.c, blkcg_reset_stats: write_u64 (kstrtoull)
    ("blkio.reset_stats", Parse::IntRange(0, i64::MAX, EINVAL)),
    ("rdma.max", Parse::RdmaMax),
    ("misc.max", Parse::NoMiscResource),
    ("net_prio.ifpriomap", Parse::IfPrioMap),
    ("memory.reclaim", Parse::SizeAction),
    ("memory.zswap.writeback", Parse::IntRange(0, 1, EINVAL)),
    // kernel/sched/cpuacct.c, cpuacct_usage_write: only 0 (a reset) is accepted
    ("cpuacct.usage", Parse::IntRange(0, 0, EINVAL)),
    // mm/memcontrol-v1.c, memcg_write_event_control: `<event fd> <fd> [args]`
    ("cgroup.event_control", Parse::EventControl),
    (
        "cpuset.sched_relax_domain_level",
        Parse::IntRange(-1, 5, EINVAL),
    ),
    // mm/hugetlb_cgroup.c, hugetlb_cgroup_write: rounded down to whole huge pages (2 MB,
    // the simulated machine's only size; the lane saw 4096 read back as 0)
    ("hugetlb.*.limit_in_bytes", Parse::HugeBytes(false)),
    ("hugetlb.*.max", Parse::HugeBytes(true)),
    // net/core/netclassid_cgroup.c: write_classid stores `(u32)value` of kstrtoull(.., 0).
    ("net_cls.classid", Parse::U32FromU64),
];

/// The parser for a file name.
/// kernel/sched/core.c, sched_prio_to_weight: the load weight of nice -20 … 19.
const PRIO_TO_WEIGHT: [u64; 40] = [
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904,
    3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87,
    70, 56, 45, 36, 29, 23, 18, 15,
];

/// The shares of an idle task group (WEIGHT_IDLEPRIO).
pub const WEIGHT_IDLEPRIO: u64 = 3;

/// sched_weight_from_cgroup: `cpu.weight` (1..=10000) → shares.
pub fn shares_from_cgroup_weight(w: u64) -> u64 {
    (w * 1024 + 50) / 100
}

/// sched_weight_to_cgroup: shares → `cpu.weight`, clamped to 1..=10000.
pub fn cgroup_weight_from_shares(shares: u64) -> u64 {
    ((shares * 100 + 512) / 1024).clamp(1, 10_000)
}

/// cpu_weight_nice_write_s64: `cpu.weight.nice` (-20..=19) → shares.
pub fn shares_from_nice(nice: i64) -> u64 {
    PRIO_TO_WEIGHT[(nice.clamp(-20, 19) + 20) as usize]
}

/// cpu_weight_nice_read_s64: the nice value whose weight is closest to the shares (the
/// first of a tie).
pub fn nice_from_shares(shares: u64) -> i64 {
    let mut last = u64::MAX;
    let mut prio = 0;
    while prio < PRIO_TO_WEIGHT.len() {
        let delta = PRIO_TO_WEIGHT[prio].abs_diff(shares);
        if delta >= last {
            break;
        }
        last = delta;
        prio += 1;
    }
    prio as i64 - 1 - 20
}

pub fn rule(name: &str) -> Parse {
    for (pat, p) in RULES {
        if let Some((pre, post)) = pat.split_once('*') {
            if name.starts_with(pre) && name.ends_with(post) && name.len() >= pat.len() - 1 {
                return *p;
            }
        } else if *pat == name {
            return *p;
        }
    }
    Parse::Any
}

/// The kernel's `kstrtoull(s, 0)`: an unsigned integer in base 10, `0x` 16 or `0` 8, a
/// leading `+` allowed; nothing else (`EINVAL`), overflow `ERANGE`.
pub fn kstrtoull(s: &str) -> Result<u64, i32> {
    let s = s.strip_prefix('+').unwrap_or(s);
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(EINVAL);
    }
    u64::from_str_radix(digits, radix).map_err(|_| ERANGE)
}

/// The kernel's `kstrtoint(s, 0)`: optional sign, `0x` hex / leading-0 octal / decimal,
/// one trailing newline at most; EINVAL when malformed, ERANGE when it does not fit.
pub fn kstrtoint(s: &str) -> Result<i64, i32> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, h)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(EINVAL);
    }
    let n = u64::from_str_radix(digits, radix).map_err(|_| ERANGE)?;
    let n = if neg { -(n as i128) } else { n as i128 };
    if n < i32::MIN as i128 || n > i32::MAX as i128 {
        return Err(ERANGE);
    }
    Ok(n as i64)
}

/// The kernel's `memparse`: a number with an optional K/M/G/T/P/E suffix. `None` when
/// anything but whitespace follows.
pub fn memparse(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let mut i = 0;
    let (radix, start) = if b.len() > 1 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        (16, 2)
    } else if b.len() > 1 && b[0] == b'0' {
        (8, 1)
    } else {
        (10, 0)
    };
    i += start;
    let mut v: u64 = 0;
    let digits_start = i;
    while i < b.len() {
        let d = match (b[i] as char).to_digit(radix) {
            Some(d) => d as u64,
            None => break,
        };
        v = v.wrapping_mul(radix as u64).wrapping_add(d);
        i += 1;
    }
    if i == digits_start && start == 0 && !b.is_empty() {
        return None;
    }
    let shift = match b.get(i).map(|c| c.to_ascii_lowercase()) {
        Some(b'k') => 10,
        Some(b'm') => 20,
        Some(b'g') => 30,
        Some(b't') => 40,
        Some(b'p') => 50,
        Some(b'e') => 60,
        _ => 0,
    };
    if shift > 0 {
        i += 1;
        v = v.wrapping_shl(shift);
    }
    (i == b.len()).then_some(v)
}

/// A list like `0-1,3`: the set, or the errno (`EINVAL` malformed, `ERANGE` >= `nbits`).
pub fn parse_list(s: &str, nbits: u32) -> Result<Vec<u32>, i32> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.parse().map_err(|_| EINVAL)?;
        let b: u32 = b.parse().map_err(|_| EINVAL)?;
        if a > b {
            return Err(EINVAL);
        }
        if b >= nbits {
            return Err(ERANGE);
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `[0, 1, 3]` → `0-1,3`.
pub fn format_list(v: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// Apply a parser to the written bytes (already stripped of surrounding whitespace, as
/// cgroup_file_write does). `Ok(new content)` (with its trailing newline), `Ok(None)` to
/// keep the current content, or the errno.
pub fn parse(p: Parse, v: &str) -> Result<Option<String>, i32> {
    let line = |s: String| Ok(Some(format!("{s}\n")));
    match p {
        Parse::V2Bytes => {
            if v == "max" {
                return line("max".into());
            }
            // page_counter_memparse: pages, at most PAGE_COUNTER_MAX, which reads `max`.
            let n = memparse(v).ok_or(EINVAL)?;
            let pages = (n / PAGE).min(PAGE_COUNTER_MAX);
            if pages == PAGE_COUNTER_MAX {
                return line("max".into());
            }
            line((pages * PAGE).to_string())
        }
        Parse::V1Bytes => {
            if v == "-1" {
                return line(V1_UNLIMITED.to_string());
            }
            let n = memparse(v).ok_or(EINVAL)?;
            line((n.min(V1_UNLIMITED) / PAGE * PAGE).to_string())
        }
        Parse::HugeBytes(v2) => {
            let n = match parse(if v2 { Parse::V2Bytes } else { Parse::V1Bytes }, v)? {
                Some(c) if c.trim() == "max" => return Ok(Some(c)),
                Some(c) => c.trim().parse::<u64>().unwrap_or(0),
                None => return Ok(None),
            };
            if !v2 && n >= V1_UNLIMITED {
                return line(V1_UNLIMITED.to_string());
            }
            const HUGE: u64 = 2 << 20;
            line((n / HUGE * HUGE).to_string())
        }
        Parse::MaxOrInt => {
            if v == "max" {
                return line("max".into());
            }
            let n: i64 = v.parse().map_err(|_| EINVAL)?;
            if !(0..=i32::MAX as i64).contains(&n) {
                return Err(EINVAL);
            }
            line(n.to_string())
        }
        Parse::CgroupLimit => {
            if v == "max" {
                return line("max".into());
            }
            let n = kstrtoint(v)?;
            if n < 0 {
                return Err(ERANGE);
            }
            line(if n == i32::MAX as i64 {
                "max".into()
            } else {
                n.to_string()
            })
        }
        Parse::PsiTrigger => {
            let mut it = v.split_whitespace();
            let kind = it.next().unwrap_or("");
            let thr: u64 = it.next().and_then(|x| x.parse().ok()).ok_or(EINVAL)?;
            let win: u64 = it.next().and_then(|x| x.parse().ok()).ok_or(EINVAL)?;
            if !matches!(kind, "some" | "full")
                || !(500_000..=10_000_000).contains(&win)
                || thr == 0
                || thr > win
            {
                return Err(EINVAL);
            }
            Ok(None)
        }
        Parse::BlockDevice => {
            let dev = v.split_whitespace().next().unwrap_or("");
            let ok = dev
                .split_once(':')
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
            Err(if ok { libc::ENODEV } else { EINVAL })
        }
        Parse::RdmaMax => {
            let mut it = v.split(' ');
            let _device = it.next();
            for opt in it.filter(|o| !o.is_empty()) {
                let ok = opt.split_once('=').is_some_and(|(k, n)| {
                    matches!(k, "hca_handle" | "hca_object")
                        && (n == "max" || n.parse::<u32>().is_ok())
                });
                if !ok {
                    return Err(EINVAL);
                }
            }
            Err(libc::ENODEV)
        }
        Parse::NoMiscResource => Err(EINVAL),
        Parse::UintRange(lo, hi, e) => {
            let n: u64 = v.parse().map_err(|_| EINVAL)?;
            if n < lo || n > hi {
                return Err(e);
            }
            line(n.to_string())
        }
        Parse::IoWeight => {
            let (dflt, n) = match v.strip_prefix("default ") {
                Some(n) => (true, n.trim()),
                None => (false, v),
            };
            if !dflt && n.split_whitespace().next().is_some_and(|d| d.contains(':')) {
                return Err(libc::ENODEV);
            }
            let w: u64 = n.parse().map_err(|_| EINVAL)?;
            if !(1..=10_000).contains(&w) {
                return Err(EINVAL);
            }
            line(format!("default {w}"))
        }
        Parse::EventControl => {
            let mut it = v.splitn(3, ' ');
            let fd = |x: Option<&str>| x.is_some_and(|x| x.parse::<u32>().is_ok());
            if fd(it.next()) && fd(it.next()) {
                Ok(None)
            } else {
                Err(EINVAL)
            }
        }
        Parse::IfPrioMap => {
            let mut it = v.split_whitespace();
            let dev = it.next().ok_or(EINVAL)?;
            it.next()
                .and_then(|p| p.parse::<u32>().ok())
                .ok_or(EINVAL)?;
            if dev != "lo" {
                return Err(libc::ENODEV);
            }
            Ok(None)
        }
        // memory_reclaim: nothing is charged to a simulated group, so asking for a page or
        // more ends in EAGAIN, as the lane's kernels answer for an empty group.
        Parse::SizeAction => match memparse(v).ok_or(EINVAL)? / PAGE {
            0 => Ok(None),
            _ => Err(libc::EAGAIN),
        },
        Parse::CpuMax => {
            let mut it = v.split_whitespace();
            let quota = it.next().unwrap_or("");
            let period = match it.next() {
                Some(p) => p.parse::<u64>().map_err(|_| EINVAL)?,
                None => 100_000,
            };
            if it.next().is_some() || !(1000..=1_000_000).contains(&period) {
                return Err(EINVAL);
            }
            let quota = if quota == "max" {
                "max".to_owned()
            } else {
                let q: u64 = quota.parse().map_err(|_| EINVAL)?;
                if q < 1000 {
                    return Err(EINVAL);
                }
                q.to_string()
            };
            line(format!("{quota} {period}"))
        }
        Parse::IntRange(lo, hi, e) => {
            let n: i64 = v.parse().map_err(|_| EINVAL)?;
            if n < lo || n > hi {
                return Err(e);
            }
            line(n.to_string())
        }
        Parse::U32FromU64 => line((kstrtoull(v)? as u32).to_string()),
        Parse::IntClamp(lo, hi) => {
            let n: i64 = v.parse().map_err(|_| EINVAL)?;
            line(n.clamp(lo, hi).to_string())
        }
        Parse::Word(words) => {
            if words.contains(&v) {
                line(v.to_owned())
            } else {
                Err(EINVAL)
            }
        }
        Parse::CfsQuota => {
            let n: i64 = v.parse().map_err(|_| EINVAL)?;
            if n != -1 && n < 1000 {
                return Err(EINVAL);
            }
            line(n.to_string())
        }
        Parse::CpuList => line(format_list(&parse_list(v, NR_CPUS)?)),
        Parse::NodeList => {
            let nodes = parse_list(v, 64)?;
            if nodes.iter().any(|&n| n >= NR_NODES) {
                return Err(EINVAL);
            }
            line(format_list(&nodes))
        }
        Parse::Bool => {
            let n: u64 = v.parse().map_err(|_| EINVAL)?;
            line(u8::from(n != 0).to_string())
        }
        Parse::Any => line(v.to_owned()),
        Parse::Ignored => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_weight_nice_and_shares_convert_like_the_scheduler() {
        // Default group: shares 1024, weight 100, nice 0.
        assert_eq!(cgroup_weight_from_shares(1024), 100);
        assert_eq!(nice_from_shares(1024), 0);
        // An idle group (cpu.idle 1) reads weight 1, nice 19 (seen on 6.12).
        assert_eq!(cgroup_weight_from_shares(WEIGHT_IDLEPRIO), 1);
        assert_eq!(nice_from_shares(WEIGHT_IDLEPRIO), 19);
        // Weights round-trip; nice values map through the weight table.
        assert_eq!(cgroup_weight_from_shares(shares_from_cgroup_weight(1)), 1);
        assert_eq!(
            cgroup_weight_from_shares(shares_from_cgroup_weight(10_000)),
            10_000
        );
        assert_eq!(nice_from_shares(shares_from_nice(-20)), -20);
        assert_eq!(nice_from_shares(shares_from_nice(5)), 5);
        assert_eq!(cgroup_weight_from_shares(shares_from_nice(19)), 1);
    }

    #[test]
    fn net_cls_classid_takes_hex_octal_and_decimal_like_kstrtoull() {
        let classid = |v| parse(rule("net_cls.classid"), v);
        assert_eq!(classid("0x100001"), Ok(Some("1048577\n".into())));
        assert_eq!(classid("010"), Ok(Some("8\n".into())));
        assert_eq!(classid("42"), Ok(Some("42\n".into())));
        // (u32)value: the kernel truncates, it does not refuse.
        assert_eq!(classid("0x100000001"), Ok(Some("1\n".into())));
        assert_eq!(classid("-1"), Err(EINVAL));
        assert_eq!(classid("0x"), Err(EINVAL));
        assert_eq!(classid("99999999999999999999"), Err(ERANGE));
    }

    #[test]
    fn memparse_like_the_kernel() {
        assert_eq!(memparse("100k"), Some(102_400));
        assert_eq!(memparse("1M"), Some(1 << 20));
        assert_eq!(memparse(""), Some(0));
        assert_eq!(memparse("abc"), None);
        assert_eq!(memparse("-1"), None);
        assert_eq!(memparse("4097"), Some(4097));
    }

    #[test]
    fn v2_memory_max_matches_errno_json() {
        let p = |v| parse(Parse::V2Bytes, v);
        assert_eq!(p("1000000"), Ok(Some("999424\n".into())));
        assert_eq!(p("4097"), Ok(Some("4096\n".into())));
        assert_eq!(p("100k"), Ok(Some("102400\n".into())));
        assert_eq!(p("-1"), Err(EINVAL));
        assert_eq!(p("abc"), Err(EINVAL));
        assert_eq!(p(""), Ok(Some("0\n".into())));
        assert_eq!(p("max"), Ok(Some("max\n".into())));
    }

    #[test]
    fn v1_limit_matches_errno_json() {
        let p = |v| parse(Parse::V1Bytes, v);
        assert_eq!(p("-1"), Ok(Some("9223372036854771712\n".into())));
        assert_eq!(p("4095"), Ok(Some("0\n".into())));
        assert_eq!(p("1M"), Ok(Some("1048576\n".into())));
        assert_eq!(p("abc"), Err(EINVAL));
    }

    #[test]
    fn lists() {
        assert_eq!(parse(Parse::CpuList, "99"), Err(ERANGE));
        assert_eq!(parse(Parse::CpuList, "0"), Ok(Some("0\n".into())));
        assert_eq!(parse(Parse::CpuList, "1,0"), Ok(Some("0-1\n".into())));
        assert_eq!(parse(Parse::NodeList, "5"), Err(EINVAL));
        assert_eq!(
            parse(Parse::CpuMax, "50000"),
            Ok(Some("50000 100000\n".into()))
        );
        assert_eq!(parse(Parse::CpuMax, "abc"), Err(EINVAL));
        assert_eq!(rule("hugetlb.2MB.limit_in_bytes"), Parse::HugeBytes(false));
    }
}
