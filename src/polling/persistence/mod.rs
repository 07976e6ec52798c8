//! What the exporter knows, kept across restarts in one file (`--persistence.file`), the way
//! the Pushgateway keeps its metrics: every target's series, last results and next due time,
//! and the last good customer list, so that a restart serves everything at once and polls
//! nothing early.
//!
//! - Writing ([`write`]) streams the state a line at a time ([`format`]) into a temporary file
//!   in the same directory, syncs it, renames it over the old one and syncs the directory: a
//!   crash at any moment leaves the old file or the new one, never a torn one. Mode 0600. No
//!   secret, token or credential is part of the state.
//! - Reading ([`load`]) opens without blocking (a FIFO cannot hang start-up), accepts only a
//!   regular file under [`MAX_STATE_BYTES`], and refuses a file that is not whole.
//! - [`revival`] decides, without clocks, what a saved target becomes at start: the time the
//!   exporter was not running counts as failing time.
//!
//! The poller owns the live state; it hands [`Saved`] views (series shared, not copied) to a
//! blocking task that writes them, and takes [`Saved`] back at start.

mod format;

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::domain::TenantType;
use crate::elements::client::DiscoveredCustomer;
use crate::metrics::SeatSeries;

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

/// Everything kept across a restart.
#[derive(Debug, Clone)]
pub struct Saved {
    /// When the state was taken.
    pub written_at: SystemTime,
    /// Every target of the plan that has been polled, in plan order.
    pub targets: Vec<SavedTarget>,
    /// The last good customer list (discovery on and a list fetched).
    pub customers: Option<Arc<Vec<DiscoveredCustomer>>>,
}

/// What is kept of one target.
#[derive(Debug, Clone)]
pub struct SavedTarget {
    /// Customer id (canonical).
    pub customer_id: Arc<str>,
    /// Tenant type.
    pub tenant_type: TenantType,
    /// The series of the last successful poll.
    pub seats: Arc<SeatSeries>,
    /// Tenants returned by the last successful poll (`target_tenants`).
    pub tenants: Option<usize>,
    /// When the last poll ended.
    pub last_poll: Option<SystemTime>,
    /// When the last successful poll ended.
    pub last_success: Option<SystemTime>,
    /// When the first failed poll after the last success ended, while failing.
    pub failing_since: Option<SystemTime>,
    /// The cause of the last poll's failure, if it failed.
    pub error: Option<String>,
    /// Requests (pages) the last poll needed.
    pub pages: Option<u32>,
    /// When the target was next due.
    pub next_due: Option<SystemTime>,
}

/// What reading the state file at start found.
#[derive(Debug)]
pub enum Loaded {
    /// No file: a first start.
    Missing,
    /// A whole, readable state.
    Restored(Saved),
    /// A file that cannot be used, and why.
    Bad(String),
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

/// Reads the state file. Blocking.
pub fn load(path: &Path) -> Loaded {
    // Non-blocking open: a FIFO at the path answers at once instead of waiting for a writer.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return Loaded::Bad(format!("cannot open it: {e}")),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Loaded::Bad(format!("cannot stat it: {e}")),
    };
    if !meta.is_file() {
        return Loaded::Bad("not a regular file (a directory, FIFO or device)".into());
    }
    if meta.len() > MAX_STATE_BYTES {
        return Loaded::Bad(format!(
            "{} bytes, more than the {MAX_STATE_BYTES} bytes a state file may have",
            meta.len()
        ));
    }
    let mut reader = BufReader::with_capacity(256 * 1024, file.take(MAX_STATE_BYTES));
    match format::decode(&mut reader) {
        Ok(saved) => Loaded::Restored(saved),
        Err(why) => Loaded::Bad(why),
    }
}

/// Moves a bad state file aside to `PATH.bad` (replacing an older bad file, never a
/// directory's contents), so that it is kept for a look but never read again. Blocking.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let mut bad = path.as_os_str().to_owned();
    bad.push(".bad");
    let bad = PathBuf::from(bad);
    std::fs::rename(path, &bad)?;
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
