//! The SQL of callers' data rights: retention (delete what is older than its kind's limit),
//! a caller's data exported or erased, and the audit trail of such actions.

use super::{now_ms, Store, StoreError};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::PathBuf;

/// Delete data older than these Unix-millisecond instants (None: keep that kind).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cutoffs {
    pub recordings: Option<i64>,
    pub transcripts: Option<i64>,
    pub cdrs: Option<i64>,
    pub tickets: Option<i64>,
}

/// What a purge removed; the recording files are for the caller to delete.
#[derive(Debug, Default)]
pub struct Purged {
    pub recordings: Vec<PathBuf>,
    pub turns: usize,
    pub summaries: usize,
    pub calls: usize,
    pub tickets: usize,
}

/// Everything stored about one caller (by their number).
#[derive(Debug, Default, Serialize)]
pub struct CallerData {
    pub number: String,
    pub calls: Vec<serde_json::Value>,
    pub turns: Vec<serde_json::Value>,
    pub escalations: Vec<serde_json::Value>,
    pub tickets: Vec<serde_json::Value>,
    pub recordings: Vec<String>,
}

/// What an erasure removed.
#[derive(Debug, Default, Serialize)]
pub struct Erased {
    pub calls: usize,
    pub turns: usize,
    pub escalations: usize,
    pub tickets: usize,
    #[serde(skip)]
    pub recordings: Vec<PathBuf>,
}

/// The calls of a caller: the user part of `from_uri` is the number (sip:, sips:, tel:).
/// Exact prefixes, not LIKE: a number holding `%` or `_` must not match other callers.
const CALLER_CALLS: &str = "SELECT id FROM calls WHERE ?1 != '' AND (
    substr(from_uri, 1, length(?1) + 5) = 'sip:' || ?1 || '@'
    OR substr(from_uri, 1, length(?1) + 6) = 'sips:' || ?1 || '@'
    OR from_uri = 'tel:' || ?1)";

fn rows_json(db: &Connection, sql: &str, number: &str) -> rusqlite::Result<Vec<serde_json::Value>> {
    let mut st = db.prepare(sql)?;
    let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let rows = st.query_map([number], |r| {
        let mut m = serde_json::Map::new();
        for (i, n) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => serde_json::Value::Null,
                rusqlite::types::ValueRef::Integer(x) => x.into(),
                rusqlite::types::ValueRef::Real(x) => x.into(),
                rusqlite::types::ValueRef::Text(t) => {
                    String::from_utf8_lossy(t).into_owned().into()
                }
                rusqlite::types::ValueRef::Blob(_) => serde_json::Value::Null,
            };
            m.insert(n.clone(), v);
        }
        Ok(serde_json::Value::Object(m))
    })?;
    rows.collect()
}

fn paths(db: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<Vec<PathBuf>> {
    let mut st = db.prepare(sql)?;
    let v = st.query_map(p, |r| r.get::<_, String>(0))?;
    v.map(|x| x.map(PathBuf::from)).collect()
}

fn audit(db: &Connection, actor: &str, action: &str, detail: &str) -> rusqlite::Result<usize> {
    db.execute(
        "INSERT INTO audit (at_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now_ms(), actor, action, detail],
    )
}

impl Store {
    /// Deletes what is older than the cutoffs, in one transaction.
    pub async fn purge(&self, c: Cutoffs) -> Result<Purged, StoreError> {
        self.read(move |db| {
            let tx = db.unchecked_transaction()?;
            let mut p = Purged::default();
            if let Some(t) = c.recordings {
                p.recordings = paths(
                    &tx,
                    "SELECT recording_path FROM calls WHERE recording_path IS NOT NULL AND started_at_ms < ?1",
                    [t],
                )?;
                tx.execute(
                    "UPDATE calls SET recording_path = NULL WHERE recording_path IS NOT NULL AND started_at_ms < ?1",
                    [t],
                )?;
            }
            if let Some(t) = c.transcripts {
                p.turns = tx.execute(
                    "DELETE FROM turns WHERE call_id IN (SELECT id FROM calls WHERE started_at_ms < ?1)",
                    [t],
                )?;
                p.summaries = tx.execute(
                    "UPDATE escalations SET reason = '', summary_json = '{}', summary_line = ''
                     WHERE created_at_ms < ?1 AND summary_json != '{}'",
                    [t],
                )?;
                tx.execute("DELETE FROM wrapups WHERE created_at_ms < ?1", [t])?;
            }
            if let Some(t) = c.tickets {
                p.tickets = tx.execute("DELETE FROM tickets WHERE created_at_ms < ?1", [t])?;
            }
            if let Some(t) = c.cdrs {
                let old = "SELECT id FROM calls WHERE started_at_ms < ?1";
                p.recordings.extend(paths(
                    &tx,
                    "SELECT recording_path FROM calls WHERE recording_path IS NOT NULL AND started_at_ms < ?1",
                    [t],
                )?);
                p.turns += tx.execute(&format!("DELETE FROM turns WHERE call_id IN ({old})"), [t])?;
                tx.execute(&format!("DELETE FROM escalations WHERE call_id IN ({old})"), [t])?;
                tx.execute(&format!("DELETE FROM wrapups WHERE call_id IN ({old})"), [t])?;
                tx.execute(
                    &format!("UPDATE kb_suggestions SET call_id = NULL WHERE call_id IN ({old})"),
                    [t],
                )?;
                tx.execute(
                    &format!("UPDATE tickets SET call_id = NULL WHERE call_id IN ({old})"),
                    [t],
                )?;
                p.calls = tx.execute("DELETE FROM calls WHERE started_at_ms < ?1", [t])?;
            }
            let n = p.recordings.len() + p.turns + p.summaries + p.calls + p.tickets;
            if n > 0 {
                let detail = format!(
                    "recordings {}, turns {}, summaries {}, calls {}, tickets {}",
                    p.recordings.len(),
                    p.turns,
                    p.summaries,
                    p.calls,
                    p.tickets
                );
                audit(&tx, "retention", "purge", &detail)?;
            }
            tx.commit()?;
            Ok(p)
        })
        .await
    }

    /// Everything stored about the caller with this number.
    pub async fn caller_export(&self, number: &str) -> Result<CallerData, StoreError> {
        let number = number.to_string();
        self.read(move |db| {
            let mut d = CallerData {
                number: number.clone(),
                ..Default::default()
            };
            d.calls = rows_json(db, &format!("SELECT * FROM calls WHERE id IN ({CALLER_CALLS}) ORDER BY started_at_ms"), &number)?;
            d.turns = rows_json(
                db,
                &format!("SELECT call_id, seq, speaker, text, language, intent, emotion, created_at_ms FROM turns WHERE call_id IN ({CALLER_CALLS}) ORDER BY call_id, seq"),
                &number,
            )?;
            d.escalations = rows_json(
                db,
                &format!("SELECT call_id, trigger, reason, summary_line, queue, agent, outcome, created_at_ms FROM escalations WHERE call_id IN ({CALLER_CALLS})"),
                &number,
            )?;
            d.tickets = rows_json(
                db,
                &format!("SELECT reference, kind, intent, subject, details_json, status, created_at_ms FROM tickets WHERE (?1 != '' AND caller = ?1) OR call_id IN ({CALLER_CALLS})"),
                &number,
            )?;
            d.recordings = paths(
                db,
                &format!("SELECT recording_path FROM calls WHERE recording_path IS NOT NULL AND id IN ({CALLER_CALLS})"),
                [&number],
            )?
            .into_iter()
            .map(|p| p.display().to_string())
            .collect();
            Ok(d)
        })
        .await
    }

    /// Erases everything stored about the caller with this number (calls, turns, summaries,
    /// tickets; the recording files are returned for deletion), leaving one audit row that
    /// names `actor` and the counts, not the number.
    pub async fn caller_erase(&self, number: &str, actor: &str) -> Result<Erased, StoreError> {
        let (number, actor) = (number.to_string(), actor.to_string());
        self.read(move |db| {
            let tx = db.unchecked_transaction()?;
            let mut e = Erased {
                recordings: paths(
                    &tx,
                    &format!("SELECT recording_path FROM calls WHERE recording_path IS NOT NULL AND id IN ({CALLER_CALLS})"),
                    [&number],
                )?,
                ..Default::default()
            };
            e.turns = tx.execute(&format!("DELETE FROM turns WHERE call_id IN ({CALLER_CALLS})"), [&number])?;
            e.escalations = tx.execute(&format!("DELETE FROM escalations WHERE call_id IN ({CALLER_CALLS})"), [&number])?;
            tx.execute(&format!("DELETE FROM wrapups WHERE call_id IN ({CALLER_CALLS})"), [&number])?;
            tx.execute(&format!("DELETE FROM kb_suggestions WHERE call_id IN ({CALLER_CALLS})"), [&number])?;
            e.tickets = tx.execute(
                &format!("DELETE FROM tickets WHERE (?1 != '' AND caller = ?1) OR call_id IN ({CALLER_CALLS})"),
                [&number],
            )?;
            e.calls = tx.execute(&format!("DELETE FROM calls WHERE id IN ({CALLER_CALLS})"), [&number])?;
            let detail = format!(
                "calls {}, turns {}, escalations {}, tickets {}, recordings {}",
                e.calls,
                e.turns,
                e.escalations,
                e.tickets,
                e.recordings.len()
            );
            audit(&tx, &actor, "caller-erase", &detail)?;
            tx.commit()?;
            Ok(e)
        })
        .await
    }

    /// Records an admin or supervisor action (no callers' data in `detail`).
    pub fn audit(&self, actor: &str, action: &str, detail: &str) {
        let (a, b, c) = (actor.to_string(), action.to_string(), detail.to_string());
        self.write("audit", move |db| audit(db, &a, &b, &c));
    }
}
