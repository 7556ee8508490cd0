//! Cases start from the session's prepared mount namespace, and it follows the machine.
//!
//! The story: a long matrix runs while someone mounts a file system on the machine. As
//! root, a session prepares the read-only view of the machine once (the template) and
//! every case copies it; the template must not go stale: the next case sees the new mount,
//! read-only like every other mount of the machine.
//!
//! This test mounts nothing on the machine: it moves itself into a mount namespace of its
//! own first (while it still has one thread), and "the machine" is that namespace.

use std::path::Path;

use cgrepro::engine::Engine;
use cgrepro::outcome::Class;

mod support;

use support::{need_root, need_sandbox, root, Suite};

fn main() {
    // SAFETY: unshare and mount with valid, NUL-terminated arguments; the test process is
    // still single-threaded (unshare(CLONE_NEWNS) also unshares the fs struct).
    let private = unsafe {
        libc::unshare(libc::CLONE_NEWNS) == 0
            && libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) == 0
    };
    let mut suite = Suite::new();
    suite.test_needing(
        "a_mount_made_during_a_session_is_seen_read_only_by_the_next_case",
        need_root("a mount namespace of the test's own")
            .and_then(|()| need_visible_repository())
            .and_then(|()| need_sandbox())
            .and_then(|()| {
                if private {
                    Ok(())
                } else {
                    Err(support::Unmet::ci_provides(format!(
                        "a mount namespace of the test's own: {}",
                        std::io::Error::last_os_error()
                    )))
                }
            }),
        a_mount_made_during_a_session_is_seen_read_only_by_the_next_case,
    );
    suite.run()
}

/// The case's private places (its own /tmp, /run, /var/tmp, /dev/shm).
const PRIVATE: [&str; 4] = ["/dev/shm", "/tmp", "/run", "/var/tmp"];

/// The test mounts below the repository's `target/`: a case must see that place, so the
/// repository must not be below one of the case's private places (a clone in /tmp is).
fn need_visible_repository() -> support::Need {
    let root = root();
    match PRIVATE.iter().find(|d| root.starts_with(d)) {
        None => Ok(()),
        Some(d) => Err(support::Unmet {
            why: format!(
                "the repository ({}) is below {d}, which every case sees as its own empty \
                 {d}: clone it elsewhere to run this test",
                root.display()
            ),
            ci_provides: false,
        }),
    }
}

fn a_mount_made_during_a_session_is_seen_read_only_by_the_next_case() {
    let root = root();
    let scratch = tempfile::Builder::new()
        .prefix("cgrepro-template-test-")
        .tempdir_in(root.join("target"))
        .unwrap();
    let mnt = scratch.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let scenario = scratch.path().join("probe.toml");
    // Exit 0 only if the marker (on the tmpfs mounted below) is visible and the case
    // cannot write next to it.
    let script = format!(
        "test -e {0}/marker && ! touch {0}/written 2>/dev/null",
        mnt.display()
    );
    std::fs::write(
        &scenario,
        format!(
            "[scenario]\ntitle = \"does the case see the machine's new mount?\"\n\n\
             [host]\npreset = \"ubuntu-20.04\"\ncgroupfs = \"tree\"\n\n\
             [target]\ncommand = [\"/bin/sh\", \"-c\", {script:?}]\n"
        ),
    )
    .unwrap();
    let engine = Engine::new(&root).unwrap();
    let case = engine.load(&scenario).unwrap().cases.remove(0);
    let session = engine.session().expect("sandbox available");
    if !PRIVATE.iter().any(|d| session.path().starts_with(d)) {
        eprintln!(
            "the session directory {} is not below a private place: no template to test",
            session.path().display()
        );
        return;
    }

    let before = engine.run(&case, false);
    assert_eq!(
        before.outcome.class(),
        Class::Error,
        "{}",
        before.snapshot()
    );
    assert_eq!(session.mount_template_error(), None);

    let target = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mount with valid, NUL-terminated arguments, in the test's own namespace.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "mount: {}", std::io::Error::last_os_error());
    std::fs::write(mnt.join("marker"), "").unwrap();

    let after = engine.run(&case, false);
    let written = mnt.join("written").exists();
    // SAFETY: as above.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    assert_eq!(after.outcome.class(), Class::Ok, "{}", after.snapshot());
    assert_eq!(session.mount_template_error(), None);
    assert!(!written, "the case wrote on the machine's new mount");
    assert!(!Path::new(&mnt).join("marker").exists());
}
