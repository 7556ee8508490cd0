//! Running `cgrepro` as a non-root user: `nobody`, through `setpriv`, in a mount namespace
//! of its own whose `/dev/fuse` has a mode the test chooses.
//!
//! Distributions ship `/dev/fuse` mode 0666 (unprivileged FUSE mounts need it); some
//! machines (this one's VM image) have 0600. The tests want both worlds whatever the
//! machine's own node is, and must not change it: `unshare --mount` gives the run a private
//! copy of the mount table, where a tmpfs holds a fresh node (same device numbers, the
//! chosen mode) bound over `/dev/fuse`. Nothing of it is visible outside, and the mount
//! namespace dies with the run.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// What a run printed.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `cgrepro ARGS` in `repo` as nobody, its /dev/fuse of mode `fuse_mode`, with `env`.
pub fn cgrepro_as_nobody(repo: &Path, fuse_mode: u32, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let bin = Path::new(env!("CARGO_BIN_EXE_cgrepro"));
    let rdev = std::fs::metadata("/dev/fuse")
        .expect("/dev/fuse (the cgroupfs model needs FUSE)")
        .rdev();
    let dev = tempfile::tempdir().unwrap();
    // $1 the node's directory, $2 its mode, $3 $4 the device numbers, then the command.
    let script = r#"set -e
mount -t tmpfs -o mode=755 cgrepro-test-dev "$1"
mknod -m "$2" "$1/fuse" c "$3" "$4"
mount --bind "$1/fuse" /dev/fuse
shift 4
exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@""#;
    let o = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(dev.path())
        .arg(format!("{fuse_mode:o}"))
        .arg(libc::major(rdev).to_string())
        .arg(libc::minor(rdev).to_string())
        .arg(bin)
        .args(args)
        .current_dir(repo)
        .env("CGREPRO_SKIP_BUILD", "1")
        .env("CGREPRO_BIN_DIR", bin.parent().unwrap())
        .env_remove("CGREPRO_STRATEGY")
        .env_remove("CGREPRO_KATA_SHIM")
        .envs(env.iter().copied())
        .output()
        .expect("unshare and setpriv (util-linux)");
    Ran {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}
