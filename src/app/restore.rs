//! The persistence file at start: checked for writing, and what it kept read back.

use std::time::SystemTime;

use super::error::AppError;
use crate::config::ElementsConfig;
use crate::polling::persistence::{self, Loaded, Origin, Persistence, PersistenceError, Saved};

/// Makes sure the persistence file can be written (else a start-up error), and reads what it
/// kept for the API and client of `elements`. A file that cannot be used is moved aside, and
/// one written for another API or client is left for the next write to replace, each with a
/// warning: the exporter then starts as if it had none.
pub(super) async fn restore_state(
    p: &Persistence,
    elements: &ElementsConfig,
) -> Result<Option<Saved>, AppError> {
    let path = p.path.clone();
    let origin = Origin::of(elements);
    let reading = tokio::task::spawn_blocking(move || {
        persistence::prepare(&path)?;
        Ok::<_, PersistenceError>(persistence::load(&path, &origin, SystemTime::now()))
    })
    .await;
    let file = p.path.display().to_string();
    let moved = |to: Option<Result<std::path::PathBuf, String>>| match to {
        Some(Ok(to)) => to.display().to_string(),
        Some(Err(e)) => format!("(cannot move it aside: {e})"),
        None => String::new(),
    };
    let reading = match reading {
        Ok(result) => result?,
        Err(e) => {
            tracing::warn!(file, error = %e, "cannot read the persistence file; starting without it");
            return Ok(None);
        }
    };
    if let Some(to) = reading.interrupted {
        tracing::warn!(
            file,
            moved_to = moved(Some(to)),
            "an earlier start stopped while reading the persistence file (a crash or a kill); \
             that file is not read again"
        );
    }
    match reading.loaded {
        Loaded::Missing => {
            tracing::info!(
                file,
                "no persistence file yet; it is written after the first polls"
            );
            Ok(None)
        }
        Loaded::Restored(saved) => Ok(Some(saved)),
        Loaded::Foreign(differs) => {
            tracing::warn!(
                file,
                differs,
                "the persistence file was written for another API or client; starting without it"
            );
            Ok(None)
        }
        Loaded::Bad(cause) => {
            tracing::warn!(
                file,
                cause,
                moved_to = moved(reading.moved_to),
                "cannot use the persistence file; starting without it"
            );
            Ok(None)
        }
    }
}
