//! A config on a mount whose reads hang (a hung NFS server, a stuck FUSE daemon): start-up
//! gives up with a message, a reload answers and fails after the read timeout while the last
//! config keeps serving, and SIGTERM ends the process whatever a read is stuck on.
//!
//! The mount is `tests/support/hangfs.py` (FUSE, Debian's python3-fusepy). Where FUSE cannot
//! be mounted the tests say so and pass, unless `EXPORTER_TESTS_REQUIRE_FUSE` is set, as
//! `.ci/run` sets it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A FUSE mount serving `backing`; reads hang while [`HungMount::hang`] is on.
struct HungMount {
    _dir: tempfile::TempDir,
    backing: PathBuf,
    flag: PathBuf,
    mountpoint: PathBuf,
    daemon: Child,
}

impl HungMount {
    /// Mounts, or `None` (with the reason on stderr) where FUSE is not available here.
    fn mount() -> Option<HungMount> {
        let unavailable = |why: String| {
            assert!(
                std::env::var_os("EXPORTER_TESTS_REQUIRE_FUSE").is_none(),
                "EXPORTER_TESTS_REQUIRE_FUSE is set but {why}"
            );
            eprintln!("skipped: {why}");
            None
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/hangfs.py");
        let dir = tempfile::tempdir().unwrap();
        let (backing, mountpoint) = (dir.path().join("backing"), dir.path().join("mnt"));
        std::fs::create_dir(&backing).unwrap();
        std::fs::create_dir(&mountpoint).unwrap();
        let flag = dir.path().join("hang");
        let daemon = match Command::new("/usr/bin/python3")
            .arg(&script)
            .args([&backing, &flag, &mountpoint])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return unavailable(format!("cannot run /usr/bin/python3: {e}")),
        };
        let mut mount = HungMount {
            _dir: dir,
            backing,
            flag,
            mountpoint,
            daemon,
        };
        let start = Instant::now();
        loop {
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
            if mounts.contains(mount.mountpoint.to_str().unwrap()) {
                return Some(mount);
            }
            if let Ok(Some(status)) = mount.daemon.try_wait() {
                return unavailable(format!(
                    "hangfs.py could not mount ({status}; needs python3-fusepy and /dev/fuse)"
                ));
            }
            if start.elapsed() > DEADLINE {
                return unavailable("hangfs.py did not mount within the deadline".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes `name` into the mount (through its backing directory); returns its mounted path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        std::fs::write(self.backing.join(name), text).unwrap();
        self.mountpoint.join(name)
    }

    /// From now on every read through the mount waits.
    fn hang(&self) {
        std::fs::write(&self.flag, "").unwrap();
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.flag);
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .status();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// The main config, as `write_config` writes it, moved onto the mount.
fn config_on(mount: &HungMount, api: &FakeApi) -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let written = write_config(&dir, api, &one_target("1h"));
    mount.file("config.yaml", &std::fs::read_to_string(written).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_from_a_hung_mount_fails_after_the_read_timeout_and_sigterm_still_ends_it() {
    let Some(mount) = HungMount::mount() else {
        return;
    };
    let api =
        FakeApi::with_tokens(|_| Reply::json(envelope(&[record("t", "T", 5, 1)], 1, 100, 1))).await;
    let config = config_on(&mount, &api);
    let mut exporter = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    exporter.first_cycle().await;

    mount.hang();
    // The reload answers once the read is given up (10 s), with the cause.
    let asked = Instant::now();
    let (code, body) = tokio::time::timeout(Duration::from_secs(25), exporter.post("/-/reload"))
        .await
        .expect("the reload answers although the read never returns");
    assert_eq!(code, 500, "{body}");
    assert!(
        body.contains("took longer than 10s (a hung network mount?)"),
        "{body}"
    );
    assert!(
        asked.elapsed() >= Duration::from_secs(9),
        "{:?}",
        asked.elapsed()
    );
    // Meanwhile and after, the last config keeps serving.
    let (code, text) = exporter.get("/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(
        value(&text, "available_user_seats", &["customer_id=\"c\""]),
        Some(5.0),
        "{text}"
    );
    assert!(
        text.contains("avepoint_exporter_config_last_reload_successful 0"),
        "{text}"
    );

    // A reload stuck on a read (SIGHUP, then SIGTERM while it waits): the process still ends.
    let _ = Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status();
    exporter.log_line("reloading").await;
    let status = exporter.signal_and_wait("TERM", Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_on_a_hung_mount_fails_start_up_with_the_cause() {
    let Some(mount) = HungMount::mount() else {
        return;
    };
    let api = FakeApi::with_tokens(|_| Reply::json(envelope(&[], 1, 100, 0))).await;
    let config = config_on(&mount, &api);
    mount.hang();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .args(["--config.file", config.to_str().unwrap()])
            .args(["--web.listen-address", "127.0.0.1:0"])
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(25), out)
        .await
        .expect("start-up gives up on the read")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("config.yaml") && err.contains("took longer than 10s"),
        "{err}"
    );
}
