//! The schema (migrations in code, applied in order; a `schema_version` table says how far a
//! database has come) and opening a connection with the settings every user of the file
//! needs (WAL, foreign keys, a busy timeout).

use super::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// Schema migrations, applied in order; the index + 1 is the schema version.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: call detail records and registrations
    "CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        sip_call_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        from_uri TEXT NOT NULL,
        from_display TEXT,
        to_uri TEXT NOT NULL,
        remote_addr TEXT,
        transport TEXT,
        started_at_ms INTEGER NOT NULL,
        answered_at_ms INTEGER,
        ended_at_ms INTEGER,
        end_reason TEXT,
        codec TEXT,
        recording_path TEXT,
        dtmf TEXT NOT NULL DEFAULT '',
        rtp_packets_in INTEGER,
        rtp_packets_out INTEGER,
        rtp_lost INTEGER,
        jitter_ms REAL
    );
    CREATE INDEX calls_started ON calls(started_at_ms);
    CREATE TABLE registrations (
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        source TEXT NOT NULL,
        transport TEXT NOT NULL,
        user_agent TEXT,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (aor, contact)
    );",
    // 2: the conversation, turn by turn (caller transcripts and bot replies)
    "CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id),
        seq INTEGER NOT NULL,
        speaker TEXT NOT NULL,
        text TEXT NOT NULL,
        language TEXT,
        start_ms INTEGER,
        end_ms INTEGER,
        confidence REAL,
        no_speech REAL,
        kind TEXT,
        stt_ms INTEGER,
        stt_passes INTEGER,
        vad_ms INTEGER,
        policy_ms INTEGER,
        tts_first_ms INTEGER,
        reply_latency_ms INTEGER,
        interrupted INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX turns_call ON turns(call_id, seq);",
    // 3: knowledge base, trained NLU heads, understanding per turn, escalations, tickets
    "CREATE TABLE kb_entries (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        intent TEXT,
        tags TEXT NOT NULL DEFAULT '',
        needs_person INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        version INTEGER NOT NULL DEFAULT 1,
        updated_by TEXT,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE kb_questions (
        id INTEGER PRIMARY KEY,
        entry_id INTEGER NOT NULL REFERENCES kb_entries(id) ON DELETE CASCADE,
        lang TEXT NOT NULL,
        text TEXT NOT NULL,
        embedding BLOB
    );
    CREATE INDEX kb_questions_entry ON kb_questions(entry_id);
    CREATE TABLE kb_answers (
        entry_id INTEGER NOT NULL REFERENCES kb_entries(id) ON DELETE CASCADE,
        lang TEXT NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (entry_id, lang)
    );
    CREATE VIRTUAL TABLE kb_fts USING fts5(terms, entry_id UNINDEXED, lang UNINDEXED,
        tokenize = 'porter unicode61');
    CREATE TABLE nlu_heads (
        name TEXT PRIMARY KEY,
        json TEXT NOT NULL,
        examples INTEGER NOT NULL,
        encoder TEXT NOT NULL,
        trained_at_ms INTEGER NOT NULL
    );
    ALTER TABLE turns ADD COLUMN intent TEXT;
    ALTER TABLE turns ADD COLUMN intent_confidence REAL;
    ALTER TABLE turns ADD COLUMN emotion TEXT;
    ALTER TABLE turns ADD COLUMN anger REAL;
    ALTER TABLE turns ADD COLUMN kb_key TEXT;
    ALTER TABLE turns ADD COLUMN nlu_ms INTEGER;
    CREATE TABLE escalations (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id),
        trigger TEXT NOT NULL,
        reason TEXT NOT NULL,
        intent TEXT,
        summary_json TEXT NOT NULL,
        summary_line TEXT NOT NULL,
        queue TEXT,
        outcome TEXT,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX escalations_call ON escalations(call_id);
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        call_id TEXT REFERENCES calls(id),
        reference TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        intent TEXT,
        caller TEXT,
        subject TEXT NOT NULL,
        details_json TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        created_at_ms INTEGER NOT NULL
    );",
    // 4: routing of escalations to people
    "ALTER TABLE escalations ADD COLUMN agent TEXT;
    ALTER TABLE escalations ADD COLUMN queued_at_ms INTEGER;
    ALTER TABLE escalations ADD COLUMN wait_ms INTEGER;
    ALTER TABLE escalations ADD COLUMN answered_at_ms INTEGER;",
    // 5: agents' wrap-up, and what they say the bot should have answered
    "CREATE TABLE wrapups (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id),
        agent TEXT,
        disposition TEXT NOT NULL,
        notes TEXT NOT NULL DEFAULT '',
        correction TEXT,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE kb_suggestions (
        id INTEGER PRIMARY KEY,
        call_id TEXT REFERENCES calls(id),
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        intent TEXT,
        suggested_by TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        created_at_ms INTEGER NOT NULL
    );",
    // 6: a call that waited too long in one queue and moved to its overflow queue
    "ALTER TABLE escalations ADD COLUMN overflow_from TEXT;",
    // 7: which encoder made a question's embedding (another encoder's vectors are recomputed)
    "ALTER TABLE kb_questions ADD COLUMN embedded_by TEXT;",
    // 8: who did what (admin and supervisor actions, erasures), without callers' data
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_at ON audit(at_ms);
    CREATE INDEX tickets_created ON tickets(created_at_ms);
    CREATE INDEX escalations_created ON escalations(created_at_ms);",
    // 9: users of the HTTP API (the console) with roles; only a hash of each token is kept
    "CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
        token_hash TEXT NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL
    );",
];

/// Opens (creating if needed) the database and applies migrations.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let oerr = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(oerr)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(oerr)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(oerr)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(oerr)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(oerr)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(())
}

pub fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?)
}
