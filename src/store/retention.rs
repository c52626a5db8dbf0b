//! Retention: every hour, data older than its kind's limit (`[privacy]` `*_days`) is deleted,
//! recordings from disk too. The SQL is in `privacy.rs` beside this file.

use super::{Cutoffs, Purged, Store, StoreError};
use crate::config::PrivacyConfig;
use std::path::PathBuf;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

/// The instants before which each kind of data goes, at `now_ms`.
pub fn cutoffs(cfg: &PrivacyConfig, now_ms: i64) -> Cutoffs {
    let at = |days: u32| (days > 0).then(|| now_ms - i64::from(days) * DAY_MS);
    Cutoffs {
        recordings: at(cfg.recordings_days),
        transcripts: at(cfg.transcripts_days),
        cdrs: at(cfg.cdr_days),
        tickets: at(cfg.tickets_days),
    }
}

/// Deletes recording files (a missing one is fine: already gone).
pub fn delete_files(paths: &[PathBuf]) -> usize {
    let mut n = 0;
    for p in paths {
        match std::fs::remove_file(p) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(path = %p.display(), error = %e, "cannot delete a recording"),
        }
    }
    n
}

/// One retention pass at `now_ms`.
pub async fn run_once(
    store: &Store,
    cfg: &PrivacyConfig,
    now_ms: i64,
) -> Result<Purged, StoreError> {
    let p = store.purge(cutoffs(cfg, now_ms)).await?;
    delete_files(&p.recordings);
    if p.calls + p.turns + p.tickets + p.summaries + p.recordings.len() > 0 {
        tracing::info!(
            recordings = p.recordings.len(),
            turns = p.turns,
            summaries = p.summaries,
            calls = p.calls,
            tickets = p.tickets,
            "retention: deleted data past its time"
        );
    }
    Ok(p)
}

/// Runs retention at start-up and then every hour, for as long as the runtime lives.
pub fn spawn(store: Store, cfg: PrivacyConfig) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            if let Err(e) = run_once(&store, &cfg, super::now_ms()).await {
                tracing::error!(error = %e, "retention pass failed");
            }
        }
    });
}
