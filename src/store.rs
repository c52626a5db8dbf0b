//! SQLite storage (WAL, migrations in code, a schema version table). One writer thread owns
//! the connection; callers send closures to it, so async tasks never block on disk.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database thread has stopped")]
    Gone,
    /// A stored value that does not read back (JSON written by another version, edited by
    /// hand).
    #[error("stored {what}: {msg}")]
    Corrupt { what: String, msg: String },
}

pub mod heads;
pub mod kb;
mod privacy;
pub mod retention;
mod schema;
pub mod users;
mod views;
pub use privacy::{CallerData, Cutoffs, Erased, Purged};
pub use schema::{open_connection, schema_version};
pub use users::{token_hash, UserRow};
pub use views::{recent_calls, CallLine, View, Wrapup};

/// One row of the `turns` table. Offsets are milliseconds from the call's answer (the
/// turn-taking timeline); latencies are in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct TurnRow {
    pub call_id: String,
    pub seq: u32,
    /// "caller" or "bot".
    pub speaker: &'static str,
    pub text: String,
    pub language: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub confidence: Option<f64>,
    pub no_speech: Option<f64>,
    pub kind: Option<String>,
    pub stt_ms: Option<i64>,
    pub stt_passes: Option<i64>,
    pub intent: Option<String>,
    pub intent_confidence: Option<f64>,
    pub emotion: Option<String>,
    pub anger: Option<f64>,
    pub kb_key: Option<String>,
    pub nlu_ms: Option<i64>,
}

/// Latency split of a bot reply, filled in when its first packet goes out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyTiming {
    pub vad_ms: i64,
    pub stt_ms: i64,
    pub policy_ms: i64,
    pub tts_first_ms: i64,
    pub reply_latency_ms: i64,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the database thread.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
    pub path: PathBuf,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = open_connection(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("voxdesk-store".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
                let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
            })
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidParameterName(e.to_string()),
            })?;
        Ok(Store {
            tx,
            path: path.to_path_buf(),
        })
    }

    /// Queues a write; failures are logged (the call goes on). A time a row records is
    /// taken by the caller, when the event happened (`let at = now_ms()` before the
    /// write): the writer thread may get to it later under load, and a wait measured
    /// between two of its clock readings would come out short.
    pub fn write(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<usize> + Send + 'static,
    ) {
        let job: Job = Box::new(move |c| {
            if let Err(e) = f(c) {
                tracing::error!(error = %e, what, "database write failed");
            }
        });
        if self.tx.send(job).is_err() {
            tracing::error!(what, "database thread has stopped; write lost");
        }
    }

    /// Runs a query (or a write whose outcome the caller needs) on the database thread, in
    /// order with the queued writes, and waits for its result.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.tx.send(job).map_err(|_| StoreError::Gone)?;
        Ok(rx.await.map_err(|_| StoreError::Gone)??)
    }

    /// Waits until every queued write has been applied.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(())).await
    }

    pub fn call_started(&self, c: &NewCall) {
        let c = c.clone();
        self.write("call start", move |db| {
            db.execute(
                "INSERT INTO calls (id, sip_call_id, direction, from_uri, from_display, to_uri, remote_addr, transport, started_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![c.id, c.sip_call_id, c.direction, c.from_uri, c.from_display, c.to_uri, c.remote_addr, c.transport, c.started_at_ms],
            )
        });
    }

    pub fn call_answered(&self, id: &str, at_ms: i64, codec: &str, recording: Option<&Path>) {
        let (id, codec, rec) = (
            id.to_string(),
            codec.to_string(),
            recording.map(|p| p.display().to_string()),
        );
        self.write("call answer", move |db| {
            db.execute("UPDATE calls SET answered_at_ms = ?2, codec = ?3, recording_path = ?4 WHERE id = ?1", params![id, at_ms, codec, rec])
        });
    }

    pub fn call_dtmf(&self, id: &str, digit: char) {
        let (id, d) = (id.to_string(), digit.to_string());
        self.write("call dtmf", move |db| {
            db.execute(
                "UPDATE calls SET dtmf = dtmf || ?2 WHERE id = ?1",
                params![id, d],
            )
        });
    }

    pub fn call_ended(&self, id: &str, at_ms: i64, reason: &str, media: Option<MediaSummary>) {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.write("call end", move |db| {
            let m = media.unwrap_or_default();
            db.execute(
                "UPDATE calls SET ended_at_ms = ?2, end_reason = ?3, rtp_packets_in = ?4, rtp_packets_out = ?5, rtp_lost = ?6, jitter_ms = ?7
                 WHERE id = ?1 AND ended_at_ms IS NULL",
                params![id, at_ms, reason, m.packets_in as i64, m.packets_out as i64, m.lost, m.jitter_ms],
            )
        });
    }

    /// Stores a turn, its text redacted (callers' numbers, e-mail addresses...).
    pub fn turn(&self, mut t: TurnRow) {
        if let std::borrow::Cow::Owned(r) = crate::privacy::redact(&t.text) {
            t.text = r;
        }
        let at = now_ms();
        self.write("turn", move |db| {
            db.execute(
                "INSERT INTO turns (call_id, seq, speaker, text, language, start_ms, end_ms, confidence, no_speech, kind, stt_ms, stt_passes,
                    intent, intent_confidence, emotion, anger, kb_key, nlu_ms, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                params![t.call_id, t.seq, t.speaker, t.text, t.language, t.start_ms, t.end_ms, t.confidence, t.no_speech, t.kind, t.stt_ms, t.stt_passes,
                    t.intent, t.intent_confidence, t.emotion, t.anger, t.kb_key, t.nlu_ms, at],
            )
        });
    }

    /// Records how long the bot took to start answering turn `seq`.
    pub fn turn_timing(&self, call_id: &str, seq: u32, r: ReplyTiming) {
        let id = call_id.to_string();
        self.write("turn timing", move |db| {
            db.execute(
                "UPDATE turns SET vad_ms = ?3, stt_ms = ?4, policy_ms = ?5, tts_first_ms = ?6, reply_latency_ms = ?7
                 WHERE call_id = ?1 AND seq = ?2 AND speaker = 'bot'",
                params![id, seq, r.vad_ms, r.stt_ms, r.policy_ms, r.tts_first_ms, r.reply_latency_ms],
            )
        });
    }

    /// The caller interrupted the bot's reply to turn `seq`.
    pub fn turn_interrupted(&self, call_id: &str, seq: u32) {
        let id = call_id.to_string();
        self.write("turn interrupted", move |db| {
            db.execute(
                "UPDATE turns SET interrupted = 1 WHERE call_id = ?1 AND seq = ?2 AND speaker = 'bot'",
                params![id, seq],
            )
        });
    }

    /// A call handed to a person: the trigger and the handoff summary.
    pub fn escalation(&self, call_id: &str, e: &crate::dialog::Escalation, outcome: &str) {
        let (id, trigger, outcome) = (call_id.to_string(), e.trigger.as_str(), outcome.to_string());
        let h = e.handoff.clone();
        let at = now_ms();
        self.write("escalation", move |db| {
            db.execute(
                "INSERT INTO escalations (call_id, trigger, reason, intent, summary_json, summary_line, outcome, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, trigger, h.reason, h.intent, serde_json::to_string(&h).unwrap_or_default(), h.line(), outcome, at],
            )
        });
    }

    /// Sets the outcome of the call's latest escalation ("callback", "abandoned", ...),
    /// with the time waited when it was queued.
    pub fn escalation_outcome(&self, call_id: &str, outcome: &str) {
        let (id, outcome) = (call_id.to_string(), outcome.to_string());
        let at = now_ms();
        self.write("escalation outcome", move |db| {
            db.execute(
                "UPDATE escalations SET outcome = ?2,
                    wait_ms = CASE WHEN queued_at_ms IS NULL THEN wait_ms ELSE ?3 - queued_at_ms END
                 WHERE id = (SELECT MAX(id) FROM escalations WHERE call_id = ?1)",
                params![id, outcome, at],
            )
        });
    }

    /// The call's latest escalation entered `queue`; `at` is when the call asked to join it
    /// (the queue's timers run from then).
    pub fn escalation_queued(&self, call_id: &str, queue: &str, at: i64) {
        let (id, queue) = (call_id.to_string(), queue.to_string());
        self.write("escalation queued", move |db| {
            db.execute(
                "UPDATE escalations SET queue = ?2, queued_at_ms = ?3, outcome = 'waiting'
                 WHERE id = (SELECT MAX(id) FROM escalations WHERE call_id = ?1)",
                params![id, queue, at],
            )
        });
    }

    /// An agent handed the call on: their escalation ends `transferred`, and a new one
    /// (trigger `transfer`, the same summary, `how` as its reason) waits in `queue`.
    pub fn escalation_transferred(&self, call_id: &str, how: &str, queue: &str) {
        let (id, how, queue) = (call_id.to_string(), how.to_string(), queue.to_string());
        let at = now_ms();
        self.write("escalation transferred", move |db| {
            let tx = db.unchecked_transaction()?;
            tx.execute(
                "UPDATE escalations SET outcome = 'transferred'
                 WHERE id = (SELECT MAX(id) FROM escalations WHERE call_id = ?1)",
                params![id],
            )?;
            let n = tx.execute(
                "INSERT INTO escalations (call_id, trigger, reason, intent, summary_json, summary_line, queue, outcome, queued_at_ms, created_at_ms)
                 SELECT call_id, 'transfer', ?2, intent, summary_json, summary_line, ?3, 'waiting', ?4, ?4
                 FROM escalations WHERE id = (SELECT MAX(id) FROM escalations WHERE call_id = ?1)",
                params![id, how, queue, at],
            )?;
            if n == 0 {
                // A direct call to an agent's extension had no escalation yet.
                tx.execute(
                    "INSERT INTO escalations (call_id, trigger, reason, summary_json, summary_line, queue, outcome, queued_at_ms, created_at_ms)
                     VALUES (?1, 'transfer', ?2, '{}', ?2, ?3, 'waiting', ?4, ?4)",
                    params![id, how, queue, at],
                )?;
            }
            tx.commit()?;
            Ok(n)
        });
    }

    /// The call's latest escalation moved to `queue` (its queue's overflow).
    pub fn escalation_overflow(&self, call_id: &str, queue: &str) {
        let (id, queue) = (call_id.to_string(), queue.to_string());
        self.write("escalation overflow", move |db| {
            db.execute(
                "UPDATE escalations SET overflow_from = queue, queue = ?2
                 WHERE id = (SELECT MAX(id) FROM escalations WHERE call_id = ?1)",
                params![id, queue],
            )
        });
    }

    /// A person took the call's latest escalation.
    pub fn escalation_answered(&self, call_id: &str, agent: &str) {
        let (id, agent) = (call_id.to_string(), agent.to_string());
        let at = now_ms();
        self.write("escalation answered", move |db| {
            db.execute(
                "UPDATE escalations SET agent = ?2, answered_at_ms = ?3, outcome = 'answered',
                    wait_ms = ?3 - COALESCE(queued_at_ms, created_at_ms)
                 WHERE id = (SELECT MAX(id) FROM escalations WHERE call_id = ?1)",
                params![id, agent, at],
            )
        });
    }

    /// Stores a ticket; its subject is redacted (its details were, where the dialog made
    /// them: the handoff summary, masked sensitive slots).
    pub fn ticket(&self, call_id: &str, caller: &str, t: &crate::dialog::TicketRequest) {
        let (id, caller, mut t) = (call_id.to_string(), caller.to_string(), t.clone());
        t.subject = crate::privacy::redact(&t.subject).into_owned();
        let at = now_ms();
        self.write("ticket", move |db| {
            db.execute(
                "INSERT INTO tickets (call_id, reference, kind, intent, caller, subject, details_json, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, t.reference, t.kind, t.intent, caller, t.subject, t.details.to_string(), at],
            )
        });
    }

    /// Marks calls left open by a crash as ended (run at start-up).
    pub fn close_orphans(&self, now_ms: i64) {
        self.write("orphan calls", move |db| {
            db.execute("UPDATE calls SET ended_at_ms = ?1, end_reason = 'server-restart' WHERE ended_at_ms IS NULL", [now_ms])
        });
    }

    pub fn registration_set(&self, r: RegistrationRow) {
        self.write("registration", move |db| {
            db.execute(
                "INSERT INTO registrations (aor, contact, expires_at_ms, source, transport, user_agent, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(aor, contact) DO UPDATE SET expires_at_ms = excluded.expires_at_ms, source = excluded.source,
                   transport = excluded.transport, user_agent = excluded.user_agent, updated_at_ms = excluded.updated_at_ms",
                params![r.aor, r.contact, r.expires_at_ms, r.source, r.transport, r.user_agent, r.updated_at_ms],
            )
        });
    }

    pub fn registration_remove(&self, aor: &str, contact: Option<&str>) {
        let (aor, contact) = (aor.to_string(), contact.map(str::to_string));
        self.write("unregister", move |db| match contact {
            Some(c) => db.execute(
                "DELETE FROM registrations WHERE aor = ?1 AND contact = ?2",
                params![aor, c],
            ),
            None => db.execute("DELETE FROM registrations WHERE aor = ?1", params![aor]),
        });
    }

    pub async fn registrations(&self) -> Result<Vec<RegistrationRow>, StoreError> {
        self.read(|db| {
            let mut st = db.prepare("SELECT aor, contact, expires_at_ms, source, transport, user_agent, updated_at_ms FROM registrations")?;
            let rows = st.query_map([], |r| {
                Ok(RegistrationRow {
                    aor: r.get(0)?,
                    contact: r.get(1)?,
                    expires_at_ms: r.get(2)?,
                    source: r.get(3)?,
                    transport: r.get(4)?,
                    user_agent: r.get(5)?,
                    updated_at_ms: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn call_row(&self, id: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        let id = id.to_string();
        self.read(move |db| {
            db.query_row(
                "SELECT id, end_reason FROM calls WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .await
    }
}

#[derive(Debug, Clone)]
pub struct NewCall {
    pub id: String,
    pub sip_call_id: String,
    pub direction: String,
    pub from_uri: String,
    pub from_display: Option<String>,
    pub to_uri: String,
    pub remote_addr: String,
    pub transport: String,
    pub started_at_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct MediaSummary {
    pub packets_in: u64,
    pub packets_out: u64,
    pub lost: i64,
    pub jitter_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationRow {
    pub aor: String,
    pub contact: String,
    pub expires_at_ms: i64,
    pub source: String,
    pub transport: String,
    pub user_agent: Option<String>,
    pub updated_at_ms: i64,
}

pub use crate::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_and_cdr_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let s = Store::open(&path).unwrap();
        s.call_started(&NewCall {
            id: "c1".into(),
            sip_call_id: "x@y".into(),
            direction: "inbound".into(),
            from_uri: "sip:a@b".into(),
            from_display: None,
            to_uri: "sip:bot@vd".into(),
            remote_addr: "127.0.0.1:5062".into(),
            transport: "udp".into(),
            started_at_ms: 1,
        });
        s.call_dtmf("c1", '1');
        s.call_dtmf("c1", '#');
        s.call_ended("c1", 5, "caller-bye", None);
        s.call_ended("c1", 9, "late", None);
        s.flush().await.unwrap();
        assert_eq!(
            s.call_row("c1").await.unwrap(),
            Some(("c1".into(), Some("caller-bye".into())))
        );
        drop(s);
        // Re-opening applies no migration twice.
        let c = open_connection(&path).unwrap();
        assert_eq!(schema_version(&c).unwrap(), schema::MIGRATIONS.len() as i64);
        let dtmf: String = c
            .query_row("SELECT dtmf FROM calls", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dtmf, "1#");
    }
}
