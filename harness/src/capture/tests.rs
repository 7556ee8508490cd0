//! The capture's story on a node it can fully control: a fake root file system (a
//! hybrid v1 node with a kubepods slice), captured, written, read back as a host file,
//! replayed as a tree — and hostile host files refused.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::*;
use crate::host::captured::load_path;
use crate::host::HostData;

fn data() -> HostData {
    HostData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")).unwrap()
}

fn put(root: &Path, path: &str, content: &str, mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A v1 node: cpu,cpuacct co-mounted with its links, memory, name=systemd, and a
/// kubepods slice with two pids in it; hostname and machine id set.
fn fake_node() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    put(
        r,
        "/proc/sys/kernel/osrelease",
        "5.10.230-223.885.amzn2.x86_64\n",
        0o444,
    );
    put(
        r,
        "/proc/sys/kernel/hostname",
        "ip-10-1-2-3.ec2.internal\n",
        0o444,
    );
    put(
        r,
        "/etc/machine-id",
        "0123456789abcdef0123456789abcdef\n",
        0o444,
    );
    put(
        r,
        "/proc/version",
        "Linux version 5.10.230-223.885.amzn2.x86_64 (mockbuild@ip-10-0-39-94) #1 SMP\n",
        0o444,
    );
    put(
        r,
        "/proc/self/mountinfo",
        "22 1 0:20 / /sys rw - sysfs sysfs rw\n\
         30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755\n\
         31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:5 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd\n\
         33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct\n\
         34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,memory\n",
        0o444,
    );
    put(
        r,
        "/proc/cgroups",
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t3\t10\t1\ncpuacct\t3\t10\t1\nmemory\t4\t20\t1\n",
        0o444,
    );
    put(r, "/sys/devices/system/cpu/online", "0-3\n", 0o444);
    put(r, "/sys/devices/system/node/online", "0\n", 0o444);
    fs::create_dir_all(r.join("sys/kernel/mm/hugepages/hugepages-2048kB")).unwrap();
    fs::create_dir_all(r.join("sys/kernel/mm/hugepages/hugepages-1048576kB")).unwrap();
    let cg = "/sys/fs/cgroup";
    put(r, &format!("{cg}/cpu,cpuacct/cpu.shares"), "1024\n", 0o644);
    put(
        r,
        &format!("{cg}/cpu,cpuacct/cgroup.procs"),
        "1\n77\n4242\n",
        0o644,
    );
    put(r, &format!("{cg}/cpu,cpuacct/tasks"), "1\n77\n", 0o644);
    put(
        r,
        &format!("{cg}/memory/memory.limit_in_bytes"),
        "9223372036854771712\n",
        0o644,
    );
    put(
        r,
        &format!("{cg}/memory/memory.memsw.limit_in_bytes"),
        "9223372036854771712\n",
        0o644,
    );
    put(r, &format!("{cg}/memory/memory.force_empty"), "", 0o200);
    put(
        r,
        &format!("{cg}/memory/kubepods.slice/memory.limit_in_bytes"),
        "8589934592\n",
        0o644,
    );
    put(
        r,
        &format!("{cg}/memory/kubepods.slice/kubepods-besteffort.slice/cgroup.procs"),
        "4242\n",
        0o644,
    );
    put(
        r,
        &format!("{cg}/memory/kubepods.slice/kubepods-besteffort.slice/memory.limit_in_bytes"),
        "9223372036854771712\n",
        0o644,
    );
    fs::create_dir_all(r.join("sys/fs/cgroup/memory/kubepods.slice/deep/er")).unwrap();
    put(r, &format!("{cg}/systemd/cgroup.procs"), "1\n", 0o644);
    put(
        r,
        &format!("{cg}/systemd/system.slice/ip-10-1-2-3.ec2.internal.service/cgroup.procs"),
        "900\n",
        0o644,
    );
    symlink("cpu,cpuacct", r.join("sys/fs/cgroup/cpu")).unwrap();
    symlink("cpu,cpuacct", r.join("sys/fs/cgroup/cpuacct")).unwrap();
    d
}

fn capture_fake(paths: &[&str]) -> (tempfile::TempDir, crate::host::data::Preset) {
    let node = fake_node();
    let src = FsSource {
        root: node.path().to_owned(),
    };
    let opts = Options {
        paths: paths.iter().map(|s| s.to_string()).collect(),
        no_children: false,
        how: "test".into(),
    };
    let p = capture(&src, &opts).unwrap();
    (node, p)
}

#[test]
fn a_v1_node_is_captured_with_its_mounts_links_groups_and_devices() {
    let (_node, p) = capture_fake(&["/kubepods.slice/kubepods-besteffort.slice"]);
    assert_eq!(p.kernel, "5.10.230-223.885.amzn2.x86_64");
    assert_eq!(p.cgroup, CgroupMode::V1);
    let c = p.captured.as_ref().unwrap();
    let dirs: Vec<&str> = c.mount.iter().map(|m| m.dir.as_str()).collect();
    assert_eq!(dirs, ["", "systemd", "cpu,cpuacct", "memory"]);
    assert_eq!(
        c.symlinks.get("cpu").map(String::as_str),
        Some("cpu,cpuacct")
    );
    assert_eq!(c.hugepage_sizes_kb, [2048, 1048576]);
    assert_eq!(c.cpus_online, "0-3");
    // The named path and its ancestor were read in every hierarchy that has them; the
    // deeper group that was not asked for is listed as unread.
    let kube = c.find("memory", "/kubepods.slice").unwrap();
    assert_eq!(kube.files["memory.limit_in_bytes"].value(), "8589934592\n");
    assert_eq!(kube.unread, ["deep"]);
    assert!(c
        .find("memory", "/kubepods.slice/kubepods-besteffort.slice")
        .is_some());
    // Swap accounting seen from memory.memsw.*, the v1 knobs from the mounts.
    assert!(p.swap_accounting);
    assert_eq!(p.options.get("memcg_v1"), Some(&true));
    assert_eq!(p.options.get("cpusets_v1"), Some(&false));
    // A write-only file keeps its mode; a read as root may still succeed on a plain fs.
    assert_eq!(
        c.find("memory", "/").unwrap().files["memory.force_empty"].mode,
        "-w-------"
    );
}

#[test]
fn pids_hostname_and_machine_id_are_normalised() {
    let (_node, p) = capture_fake(&[]);
    let c = p.captured.as_ref().unwrap();
    let root = c.find("cpu,cpuacct", "/").unwrap();
    assert_eq!(
        root.files["cgroup.procs"].value(),
        "1\n",
        "only pid 1 is kept"
    );
    assert_eq!(root.files["tasks"].value(), "1\n");
    let text = super::render::host_file(&p);
    assert!(!text.contains("ip-10-1-2-3"), "hostname left in:\n{text}");
    assert!(text.contains("[HOSTNAME].service"));
    assert!(!text.contains("0123456789abcdef0123456789abcdef"));
    assert!(
        c.normalised.iter().any(|n| n.starts_with("pids: 3 pid(s)")),
        "{:?}",
        c.normalised
    );
}

#[test]
fn the_host_file_reads_back_and_replays_as_captured() {
    let (_node, p) = capture_fake(&["/kubepods.slice"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    fs::write(&file, super::render::host_file(&p)).unwrap();
    let back = load_path(&file).unwrap();
    assert_eq!(back.captured, p.captured, "round trip through TOML");
    assert_eq!(back.kernel, p.kernel);

    let data = data();
    let host = data
        .resolve(&crate::host::HostSpec {
            file: Some(file.to_string_lossy().into_owned()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(host.cgroup, CgroupMode::V1);
    let plan = host.plan(&data, &[]).unwrap();
    let file_at = |p: &str| match plan.tree.get(p) {
        Some(crate::host::Node::File { content, .. }) => content.clone(),
        other => panic!("{p}: {other:?}"),
    };
    assert_eq!(
        file_at("memory/kubepods.slice/memory.limit_in_bytes"),
        "8589934592\n"
    );
    assert_eq!(file_at("cpu,cpuacct/cpu.shares"), "1024\n");
    assert!(
        matches!(plan.tree.get("cpu"), Some(crate::host::Node::Symlink { target }) if target == "cpu,cpuacct")
    );
    // The /proc views: the captured mounts (with their options) and /proc/cgroups.
    let mi = &plan.proc["/proc/self/mountinfo"];
    assert!(mi.contains("/sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:"));
    assert!(mi.contains(" - cgroup cgroup rw,cpu,cpuacct\n"));
    assert_eq!(
        plan.proc["/proc/cgroups"],
        p.captured.as_ref().unwrap().proc_cgroups
    );
    let self_cgroup = &plan.proc["/proc/self/cgroup"];
    assert!(self_cgroup.contains(":cpu,cpuacct:/\n"), "{self_cgroup}");
    // Materialized: the captured tree on disk, and the node's page sizes and CPUs.
    let out = tempfile::tempdir().unwrap();
    // SAFETY: getuid/getgid cannot fail.
    let owner = unsafe { (libc::getuid(), libc::getgid()) };
    let layout = host.materialize(&data, &[], out.path(), owner).unwrap();
    assert!(layout
        .tree
        .join("memory/kubepods.slice/memory.limit_in_bytes")
        .is_file());
    let pages = layout
        .sys_views
        .iter()
        .find(|(t, _)| t.ends_with("hugepages"))
        .unwrap();
    assert!(pages.1.join("hugepages-1048576kB").is_dir());
    make_removable(out.path());
}

fn make_removable(p: &Path) {
    for e in walk(p) {
        let _ = fs::set_permissions(&e, fs::Permissions::from_mode(0o755));
    }
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![p.to_owned()];
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

#[test]
fn a_captured_host_refuses_overrides_that_would_contradict_its_tree() {
    let (_node, p) = capture_fake(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    fs::write(&file, super::render::host_file(&p)).unwrap();
    let err = data()
        .resolve(&crate::host::HostSpec {
            file: Some(file.to_string_lossy().into_owned()),
            kernel: Some("6.1.0".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`kernel` cannot be combined with `file`"),
        "{err}"
    );
}

/// Hostile host files: each is refused with an error naming the file and the field, and
/// nothing is written.
#[test]
fn hostile_host_files_are_refused_clearly() {
    let (_node, p) = capture_fake(&[]);
    let good = super::render::host_file(&p);
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal-in-file-name",
            good.replacen("\"cpu.shares\" =", "\"../../../etc/cron.d/x\" =", 1)
                .into_bytes(),
            "one path component",
        ),
        (
            "traversal-in-group-path",
            good.replacen("path      = \"/\"", "path      = \"/../../etc\"", 1)
                .into_bytes(),
            "captured.group[0].path",
        ),
        (
            "traversal-in-mount-dir",
            good.replacen(
                "dir           = \"memory\"",
                "dir           = \"../memory\"",
                1,
            )
            .into_bytes(),
            "captured.mount[3].dir",
        ),
        (
            "link-out",
            good.replacen("\"cpu\" = \"cpu,cpuacct\"", "\"cpu\" = \"/etc\"", 1)
                .into_bytes(),
            "captured.symlinks.cpu",
        ),
        (
            "binary",
            vec![0x7f, b'E', b'L', b'F', 0, 0, 0xff, 0xfe],
            "not UTF-8",
        ),
        ("nul", b"description = \"x\0\"\n".to_vec(), "NUL"),
        (
            "not-toml",
            b"{ \"json\": true }".to_vec(),
            "TOML parse error",
        ),
        (
            "wrong-schema",
            good.replacen("cgrepro-host/1", "cgrepro-host/9", 1)
                .into_bytes(),
            "schema `cgrepro-host/9`",
        ),
        (
            "mode-contradicts-mounts",
            good.replacen("cgroup          = \"v1\"", "cgroup          = \"v2\"", 1)
                .into_bytes(),
            "field `cgroup`",
        ),
    ];
    for (name, bytes, want) in cases {
        let f = dir.path().join(format!("{name}.toml"));
        fs::write(&f, &bytes).unwrap();
        let err = load_path(&f).expect_err(name).to_string();
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            err.contains(&f.display().to_string()),
            "{name}: names the file: {err}"
        );
    }
    // Huge: refused by size before it is read.
    let huge = dir.path().join("huge.toml");
    let f = fs::File::create(&huge).unwrap();
    f.set_len(crate::host::captured::MAX_FILE_BYTES + 1)
        .unwrap();
    let err = load_path(&huge).unwrap_err().to_string();
    assert!(err.contains("larger than the 16 MiB"), "{err}");
    // A relative `[host] file` may not climb out of the repository.
    let err = data()
        .resolve(&crate::host::HostSpec {
            file: Some("../../etc/passwd".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("may not contain `..`"), "{err}");
    // Nothing but the files written here is in the directory.
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(left.len(), 10);
}

#[test]
fn a_node_without_cgroup_mounts_is_an_error_not_an_empty_host() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "/proc/sys/kernel/osrelease", "6.1.0\n", 0o444);
    put(d.path(), "/proc/version", "Linux version 6.1.0\n", 0o444);
    put(
        d.path(),
        "/proc/self/mountinfo",
        "22 1 0:20 / /sys rw - sysfs sysfs rw\n",
        0o444,
    );
    put(
        d.path(),
        "/proc/cgroups",
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\n",
        0o444,
    );
    let err = capture(
        &FsSource {
            root: d.path().to_owned(),
        },
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nothing to capture"), "{err}");
    let err = capture(
        &FsSource {
            root: d.path().to_owned(),
        },
        &Options {
            paths: vec!["/../../etc".into()],
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("--path `/../../etc`"), "{err}");
}

#[test]
fn systemd_version_lines_parse() {
    assert_eq!(
        systemd_from_version_output("systemd 252 (252.22-1~deb12u1)\n+PAM +AUDIT"),
        Some(252)
    );
    assert_eq!(systemd_from_version_output("systemd 219\n"), Some(219));
    assert_eq!(systemd_from_version_output("garbage"), None);
}
