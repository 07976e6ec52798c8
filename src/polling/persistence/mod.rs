//! What the exporter knows, kept across restarts in one file (`--persistence.file`), the way
//! the Pushgateway keeps its metrics: every target's series, last results and next due time,
//! and the last good customer list, so that a restart serves everything at once and polls
//! nothing early.
//!
//! - Writing ([`write()`]) streams the state a line at a time ([`mod@format`]) into a
//!   temporary file in the same directory, syncs it, renames it over the old one and syncs
//!   the directory: a crash at any moment leaves the old file or the new one, never a torn
//!   one. Mode 0600. No secret, token or credential is part of the state.
//! - Reading ([`load`]) opens without blocking (a FIFO cannot hang start-up), accepts only a
//!   regular file under [`MAX_STATE_BYTES`], reads it a bounded line at a time (the header
//!   within [`format::MAX_HEADER_BYTES`], any line within [`format::MAX_LINE_BYTES`]), and
//!   refuses a file that is not whole, was written for another API or client ([`Origin`]), or
//!   was written in the future (beyond [`format::MAX_CLOCK_AHEAD`]); times of targets later
//!   than the write are clamped.
//! - The file is moved aside to `PATH.reading` before it is parsed and put back only once it
//!   has been read: a start that crashes or is killed while reading leaves `PATH.reading`,
//!   which the next start moves to `PATH.bad` unread, so no file can make start-up loop. A
//!   file that was read (used or written for another API) is back at `PATH` until the next
//!   write replaces it; a bad one goes to `PATH.bad`.
//! - [`revival`] decides, without clocks, what a saved target becomes at start: the time the
//!   exporter was not running counts as failing time.
//!
//! The poller owns the live state; it hands [`Saved`] views (series shared, not copied) to a
//! blocking task that writes them, and takes [`Saved`] back at start. What is kept is
//! `saved` ([`Saved`], [`Origin`]); how it is written and read line by line is `format`.

mod format;
mod saved;

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use format::Refused;
pub use saved::{Origin, Saved, SavedTarget};

/// The largest state file read at start (about 40 times a 20 000-target fleet's file).
pub const MAX_STATE_BYTES: u64 = 1 << 30;

/// Where and how often the state is written (`--persistence.file`, `--persistence.interval`).
#[derive(Debug, Clone)]
pub struct Persistence {
    /// The state file.
    pub path: PathBuf,
    /// Longest time between two writes while something changed.
    pub interval: Duration,
}

/// Why persistence cannot work at all (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// The file's directory does not exist and cannot be made.
    #[error("--persistence.file {path}: cannot create its directory {dir}")]
    CreateDir {
        /// The state file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Nothing can be written in the file's directory.
    #[error("--persistence.file {path}: cannot write in its directory {dir}")]
    NotWritable {
        /// The state file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What reading the state file at start found.
#[derive(Debug)]
pub enum Loaded {
    /// No file: a first start.
    Missing,
    /// A whole, readable state.
    Restored(Saved),
    /// A file written for another API or client: what differs. It is left at its path (the
    /// next write replaces it).
    Foreign(String),
    /// A file that cannot be used, and why. It is moved aside ([`Reading::moved_to`]).
    Bad(String),
}

/// What [`load`] found and did.
#[derive(Debug)]
pub struct Reading {
    /// What the file held.
    pub loaded: Loaded,
    /// Where a bad file was moved (`PATH.bad`), or why it could not be.
    pub moved_to: Option<Result<PathBuf, String>>,
    /// A `PATH.reading` left by a start that stopped while reading it (a crash or a kill),
    /// moved to `PATH.bad` unread: where, or why it could not be.
    pub interrupted: Option<Result<PathBuf, String>>,
}

/// The directory of `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A sibling of `path` named `.{name}{suffix}`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    dir_of(path).join(format!(".{name}{suffix}"))
}

/// Makes sure the state can be written: creates the file's directory and writes (and
/// removes) a probe file in it. Blocking.
pub fn prepare(path: &Path) -> Result<(), PersistenceError> {
    let dir = dir_of(path);
    std::fs::create_dir_all(&dir).map_err(|source| PersistenceError::CreateDir {
        path: path.to_owned(),
        dir: dir.clone(),
        source,
    })?;
    let probe = sibling(path, &format!(".probe-{:016x}", fastrand::u64(..)));
    let made = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"probe"));
    let _ = std::fs::remove_file(&probe);
    made.map_err(|source| PersistenceError::NotWritable {
        path: path.to_owned(),
        dir: dir.clone(),
        source,
    })?;
    remove_leftovers(path, &dir);
    Ok(())
}

/// Removes temporary files of writes that a crash cut short (older than a minute, so that a
/// write of another process in flight is left alone).
fn remove_leftovers(path: &Path, dir: &Path) {
    let Some(prefix) = sibling(path, ".tmp-")
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60));
        if old && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `PATH` with `suffix` appended (`PATH.bad`, `PATH.reading`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads the state file at start, for a poller of `origin` at `now` (see the module
/// documentation for how the file is moved while it is read). Blocking.
pub fn load(path: &Path, origin: &Origin, now: SystemTime) -> Reading {
    let reading = with_suffix(path, ".reading");
    // Left by a start that crashed or was killed while reading it: never read again.
    let interrupted = std::fs::symlink_metadata(&reading)
        .is_ok()
        .then(|| move_aside_from(&reading, path));
    let (loaded, moved_to) = match read(path, &reading, origin, now) {
        Ok(Some(saved)) => (Loaded::Restored(saved), None),
        Ok(None) => (Loaded::Missing, None),
        Err(Refused::Foreign(differs)) => (Loaded::Foreign(differs), None),
        Err(Refused::Bad { why, at }) => {
            let moved = at.map(|from| move_aside_from(&from, path));
            (Loaded::Bad(why), moved)
        }
    };
    Reading {
        loaded,
        moved_to,
        interrupted,
    }
}

/// Opens, checks and parses the file, moved to `reading` while it is parsed; `None` when
/// there is none.
fn read(
    path: &Path,
    reading: &Path,
    origin: &Origin,
    now: SystemTime,
) -> Result<Option<Saved>, Refused> {
    // Non-blocking open: a FIFO at the path answers at once instead of waiting for a writer.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Refused::bad(format!("cannot open it: {e}"), path)),
    };
    let meta = file
        .metadata()
        .map_err(|e| Refused::bad(format!("cannot stat it: {e}"), path))?;
    if !meta.is_file() {
        return Err(Refused::bad(
            "not a regular file (a directory, FIFO or device)",
            path,
        ));
    }
    if meta.len() > MAX_STATE_BYTES {
        return Err(Refused::bad(
            format!(
                "{} bytes, more than the {MAX_STATE_BYTES} bytes a state file may have",
                meta.len()
            ),
            path,
        ));
    }
    // Out of the way before parsing: should parsing never end (a crash, a kill), the next
    // start does not read it again. Reading goes on through the open file.
    std::fs::rename(path, reading).map_err(|e| Refused::Bad {
        why: format!("cannot move it aside to read it: {e}"),
        at: None,
    })?;
    let mut reader = BufReader::with_capacity(256 * 1024, file.take(MAX_STATE_BYTES));
    match format::decode(&mut reader, origin, now) {
        Ok(saved) => {
            put_back(reading, path);
            Ok(Some(saved))
        }
        Err(Refused::Foreign(differs)) => {
            put_back(reading, path);
            Err(Refused::Foreign(differs))
        }
        Err(Refused::Bad { why, .. }) => Err(Refused::bad(why, reading)),
    }
}

/// Puts a file that was read back at `path`, unless a newer one has taken its place
/// meanwhile (another process's write): a hard link never replaces a file. Where links are
/// not supported, a rename.
fn put_back(reading: &Path, path: &Path) {
    match std::fs::hard_link(reading, path) {
        Ok(()) => {
            let _ = std::fs::remove_file(reading);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(reading);
        }
        Err(_) => {
            let _ = std::fs::rename(reading, path);
        }
    }
}

/// Moves a bad state file (`from`: the state file or its `.reading` name) aside to
/// `PATH.bad`, replacing an older bad file (never a directory's contents), so that it is
/// kept for a look but never read again.
fn move_aside_from(from: &Path, path: &Path) -> Result<PathBuf, String> {
    let bad = with_suffix(path, ".bad");
    std::fs::rename(from, &bad).map_err(|e| e.to_string())?;
    Ok(bad)
}

/// What one write did.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Size of the new file.
    pub bytes: u64,
    /// Time the write took, sync and rename included.
    pub took: Duration,
}

/// Replaces the state file with `saved`, atomically (see the module documentation).
/// Blocking: run it off the async runtime.
pub fn write(path: &Path, saved: &Saved) -> std::io::Result<Written> {
    let started = std::time::Instant::now();
    // A name of its own: two writers (an old and a new pod on one volume during a rollout)
    // never write into the same temporary file.
    let tmp = sibling(path, &format!(".tmp-{:016x}", fastrand::u64(..)));
    let result = write_new(&tmp, saved).and_then(|bytes| {
        std::fs::rename(&tmp, path)?;
        File::open(dir_of(path))?.sync_all()?;
        Ok(bytes)
    });
    match result {
        Ok(bytes) => Ok(Written {
            bytes,
            took: started.elapsed(),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes `saved` into a fresh file at `tmp` and syncs it; its size.
fn write_new(tmp: &Path, saved: &Saved) -> std::io::Result<u64> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    // The umask may have taken bits away; none may be added.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    format::encode(&mut out, saved)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// What a saved target becomes at start, relative to now (see [`revival`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revival {
    /// Whether its series are served again (false: too old; the target comes back with its
    /// results and times but no series, and is due at once).
    pub series: bool,
    /// How long it has been failing (`None` unless it was failing when saved).
    pub failing_for: Option<Duration>,
    /// For a target that was up when saved: how long nobody has polled it (the downtime). A
    /// first failure after the restart counts as failing from then.
    pub unpolled_for: Option<Duration>,
    /// How long until it is due (zero: due at once, oldest data first).
    pub due_in: Duration,
    /// How long ago its last poll ended.
    pub polled_ago: Option<Duration>,
}

/// Decides what a target saved at `written_at` becomes at `now`.
///
/// Its series are too old to serve when the time it was failing before the stop plus the time
/// the exporter was not running exceeds `stale_after` (the downtime counts as failing, since
/// nobody polled); it then comes back without them, with its results and times, and is due
/// at once. A target that never succeeded has no series to lose. A revived target that was
/// failing goes on failing from when it started to; one that was up is up, and waits for its
/// turn like any other.
///
/// It is due where it would have been had the process kept running: at its saved due time,
/// at once if that has passed (overdue targets go oldest data first), and never more than one
/// `cadence` away (its interval, or the empty interval for a target found empty; either may
/// have been shortened since).
pub fn revival(
    saved: &SavedTarget,
    written_at: SystemTime,
    now: SystemTime,
    stale_after: Duration,
    cadence: Duration,
) -> Revival {
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let failing_for = saved.failing_since.map(since);
    let unpolled_for = match (saved.last_success, failing_for) {
        (Some(_), None) => Some(since(written_at)),
        _ => None,
    };
    let stale = saved.last_success.is_some()
        && failing_for
            .or(unpolled_for)
            .is_some_and(|f| f > stale_after);
    let due_in = if stale {
        Duration::ZERO
    } else {
        saved
            .next_due
            .and_then(|due| due.duration_since(now).ok())
            .unwrap_or_default()
            .min(cadence)
    };
    Revival {
        series: !stale,
        failing_for,
        unpolled_for,
        due_in,
        polled_ago: saved.last_poll.map(since),
    }
}

#[cfg(test)]
mod tests;
