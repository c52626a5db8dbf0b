//! The read views the HTTP API serves, as JSON rows keyed by column name (a column named
//! `..._json` holds JSON as text and goes out as JSON under the name without the suffix),
//! and the agent's wrap-up of a call. The SQL of the console's reads lives here, not in
//! `api/`.

use super::{now_ms, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

/// What the API can read.
#[derive(Debug, Clone)]
pub enum View {
    /// The latest 100 calls.
    Calls,
    /// One call (no row: no such call).
    Call(String),
    CallTurns(String),
    CallEscalations(String),
    CallTickets(String),
    /// The latest 100 escalations.
    Escalations,
    /// The latest 100 tickets.
    Tickets,
    /// The pending knowledge-base suggestions (the latest 100).
    Suggestions,
}

impl View {
    fn sql(&self) -> (&'static str, Option<&str>) {
        match self {
            View::Calls => (
                "SELECT * FROM calls ORDER BY started_at_ms DESC LIMIT 100",
                None,
            ),
            View::Call(id) => ("SELECT * FROM calls WHERE id = ?1", Some(id)),
            View::CallTurns(id) => (
                "SELECT * FROM turns WHERE call_id = ?1 ORDER BY seq, speaker DESC",
                Some(id),
            ),
            View::CallEscalations(id) => (
                "SELECT * FROM escalations WHERE call_id = ?1 ORDER BY id",
                Some(id),
            ),
            View::CallTickets(id) => (
                "SELECT * FROM tickets WHERE call_id = ?1 ORDER BY id",
                Some(id),
            ),
            View::Escalations => ("SELECT * FROM escalations ORDER BY id DESC LIMIT 100", None),
            View::Tickets => ("SELECT * FROM tickets ORDER BY id DESC LIMIT 100", None),
            View::Suggestions => (
                "SELECT * FROM kb_suggestions WHERE status = 'pending' ORDER BY id DESC LIMIT 100",
                None,
            ),
        }
    }
}

fn json_rows(c: &Connection, view: &View) -> rusqlite::Result<Vec<Value>> {
    let (sql, param) = view.sql();
    let mut st = c.prepare_cached(sql)?;
    let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let map = |r: &rusqlite::Row| {
        let mut o = serde_json::Map::new();
        for (i, n) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(i) => json!(i),
                rusqlite::types::ValueRef::Real(f) => json!(f),
                rusqlite::types::ValueRef::Text(t) => {
                    let s = String::from_utf8_lossy(t).into_owned();
                    // JSON stored as text (summaries, details) goes out as JSON.
                    if n.ends_with("_json") {
                        serde_json::from_str(&s).unwrap_or(Value::String(s))
                    } else {
                        Value::String(s)
                    }
                }
                rusqlite::types::ValueRef::Blob(_) => Value::Null,
            };
            o.insert(n.trim_end_matches("_json").to_string(), v);
        }
        Ok(Value::Object(o))
    };
    let out: rusqlite::Result<Vec<Value>> = match param {
        Some(p) => st.query_map([p], map)?.collect(),
        None => st.query_map([], map)?.collect(),
    };
    out
}

/// An agent's wrap-up of a call; `notes` and `correction` already redacted.
#[derive(Debug, Clone, Default)]
pub struct Wrapup {
    /// None: the agent the call was last escalated to.
    pub agent: Option<String>,
    pub disposition: String,
    pub notes: String,
    /// "The bot should have answered X": joins the suggestion queue with the caller's
    /// last question.
    pub correction: Option<String>,
}

/// What a caller says that is no question for the knowledge base.
const NOT_A_QUESTION: &str =
    "('agent_request', 'goodbye', 'thanks', 'affirm', 'deny', 'greeting', 'smalltalk')";

impl Store {
    pub async fn view(&self, view: View) -> Result<Vec<Value>, StoreError> {
        self.read(move |c| json_rows(c, &view)).await
    }

    /// Stores a wrap-up and, with a correction, a knowledge-base suggestion, together or
    /// not at all. False when there is no such call.
    pub async fn wrapup(&self, call_id: &str, w: Wrapup) -> Result<bool, StoreError> {
        let id = call_id.to_string();
        self.read(move |c| {
            let exists: bool = c.query_row(
                "SELECT COUNT(*) > 0 FROM calls WHERE id = ?1",
                [&id],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(false);
            }
            let c = c.unchecked_transaction()?;
            let now = now_ms();
            let agent = match w.agent {
                Some(a) => Some(a),
                None => c
                    .query_row(
                        "SELECT agent FROM escalations WHERE call_id = ?1 ORDER BY id DESC LIMIT 1",
                        [&id],
                        |r| r.get::<_, Option<String>>(0),
                    )
                    .optional()?
                    .flatten(),
            };
            c.execute(
                "INSERT INTO wrapups (call_id, agent, disposition, notes, correction, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, agent, w.disposition, w.notes, w.correction, now],
            )?;
            let answer = w.correction.as_deref().map(str::trim);
            if let Some(answer) = answer.filter(|a| !a.is_empty()) {
                // The question: the caller's last words to the bot.
                let (question, intent): (String, Option<String>) = c
                    .query_row(
                        &format!(
                            "SELECT text, intent FROM turns WHERE call_id = ?1 AND speaker = 'caller'
                             AND text != '' AND (intent IS NULL OR intent NOT IN {NOT_A_QUESTION})
                             ORDER BY seq DESC LIMIT 1"
                        ),
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?
                    .unwrap_or_default();
                c.execute(
                    "INSERT INTO kb_suggestions (call_id, question, answer, intent, suggested_by, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, question, answer, intent, agent, now],
                )?;
            }
            c.commit()?;
            Ok(true)
        })
        .await
    }
}

/// A call as `voxdesk calls` lists it.
#[derive(Debug, Clone)]
pub struct CallLine {
    pub id: String,
    /// UTC, "YYYY-MM-DD HH:MM:SS".
    pub started: String,
    pub from: String,
    pub to: String,
    pub codec: Option<String>,
    /// From the answer to the end (or to now for a live call); None if never answered.
    pub talk_secs: Option<f64>,
    /// The end reason, or "active".
    pub end: String,
    pub dtmf: String,
    pub recording: String,
}

/// The latest `limit` calls, newest first (for the command line, on its own connection).
pub fn recent_calls(c: &Connection, limit: u32) -> rusqlite::Result<Vec<CallLine>> {
    let mut st = c.prepare(
        "SELECT id, datetime(started_at_ms / 1000, 'unixepoch'), from_uri, to_uri, codec,
                CASE WHEN answered_at_ms IS NULL THEN NULL ELSE (COALESCE(ended_at_ms, answered_at_ms) - answered_at_ms) / 1000.0 END,
                COALESCE(end_reason, 'active'), dtmf, COALESCE(recording_path, '')
         FROM calls ORDER BY started_at_ms DESC LIMIT ?1",
    )?;
    let rows = st.query_map([limit], |r| {
        Ok(CallLine {
            id: r.get(0)?,
            started: r.get(1)?,
            from: r.get(2)?,
            to: r.get(3)?,
            codec: r.get(4)?,
            talk_secs: r.get(5)?,
            end: r.get(6)?,
            dtmf: r.get(7)?,
            recording: r.get(8)?,
        })
    })?;
    rows.collect()
}
