//! Bounded reads of the files an operator points the exporter at: the config file, secret
//! and certificate files, the web config and its TLS files. A regular file only, of at most
//! a given size, read within [`READ_TIMEOUT`]: a FIFO, a device or a hung network mount
//! gets an error that says so, never a blocked reload or shutdown.

use std::path::Path;
use std::time::Duration;

use crate::domain::duration::format_duration;

/// Largest config, secret, certificate or web config file read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Longest a config, secret or certificate file may take to read (a hung network or FUSE
/// mount must not hang a reload, or the shutdown waiting behind it).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a regular file of at most `limit` bytes. Anything else (a FIFO that would block until
/// someone writes to it, `/dev/zero` that never ends, a directory) is an error that says so.
/// The check is made on the opened handle (opened without blocking), so a path swapped for
/// a FIFO after a check cannot block; and the read runs on a thread of its own, given up
/// after [`READ_TIMEOUT`].
pub fn read_regular_file(path: &Path, limit: u64) -> std::io::Result<String> {
    let owned = path.to_owned();
    within(READ_TIMEOUT, move || read_now(&owned, limit))
}

/// Runs `work` on a thread of its own and gives up on it after `limit` (the thread is left
/// to finish or hang on its own): a blocking read that never returns costs a thread, never
/// the caller.
fn within<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("read-file".into())
        .spawn(move || {
            let _ = tx.send(work());
        })?;
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "reading it took longer than {} (a hung network mount?)",
                format_duration(limit)
            ),
        )),
    }
}

fn read_now(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory)",
        ));
    }
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_read_that_never_returns_is_given_up_after_its_bound() {
        // A read blocked for good (a hung NFS or FUSE mount): the caller gets an error when the
        // bound has passed, however long the read would take.
        let (hold, blocked) = std::sync::mpsc::channel::<()>();
        let e = within(std::time::Duration::from_millis(50), move || {
            let _ = blocked.recv();
            Ok(String::new())
        })
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("hung network mount"), "{e}");
        drop(hold);
        // A read that returns in time is passed through.
        let text = within(std::time::Duration::from_secs(10), || Ok("ok".to_owned()));
        assert_eq!(text.unwrap(), "ok");
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read_regular_file(&fifo, 100).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let e = read_regular_file(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "x".repeat(101)).unwrap();
        let e = read_regular_file(&big, 100).unwrap_err();
        assert!(e.to_string().contains("larger than 100 bytes"), "{e}");
        std::fs::write(&big, "x".repeat(100)).unwrap();
        assert_eq!(read_regular_file(&big, 100).unwrap().len(), 100);
    }
}
