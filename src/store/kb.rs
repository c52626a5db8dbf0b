//! The knowledge base's SQL: entries, their questions (with embeddings) and answers, the
//! full-text index beside them, and the index a call searches (`open_index`).

use crate::kb::search::{KbIndex, Lexical};
use crate::kb::{self, ImportReport, KbEntry, KbError};
use crate::nlu::encoder::Encoder;
use crate::nlu::text::index_terms;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

fn f32s_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn blob_to_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Inserts or updates entries by key (the version goes up when anything changed), with an
/// embedding per question when an encoder is given.
pub fn import(
    conn: &mut Connection,
    entries: &[KbEntry],
    encoder: Option<&dyn Encoder>,
    who: &str,
) -> Result<ImportReport, KbError> {
    let existing: BTreeMap<String, KbEntry> = load(conn, true)?
        .into_iter()
        .map(|e| (e.key.clone(), e))
        .collect();
    // Embeddings first: a failing encoder leaves the database as it was.
    let mut vectors: BTreeMap<(String, usize), Vec<f32>> = BTreeMap::new();
    if let Some(enc) = encoder {
        for e in entries {
            if existing.get(&e.key) == Some(e) {
                continue;
            }
            for (i, (_, q)) in e.questions.iter().enumerate() {
                vectors.insert((e.key.clone(), i), enc.embed(q)?);
            }
        }
    }
    let now = crate::clock::now_ms();
    let tx = conn.transaction()?;
    let mut report = ImportReport::default();
    for e in entries {
        let id: i64 = match existing.get(&e.key) {
            Some(old) if old == e => {
                report.unchanged += 1;
                continue;
            }
            Some(_) => {
                report.updated += 1;
                tx.execute(
                    "UPDATE kb_entries SET intent = ?2, tags = ?3, needs_person = ?4, enabled = ?5,
                     version = version + 1, updated_by = ?6, updated_at_ms = ?7 WHERE key = ?1",
                    params![
                        e.key,
                        e.intent,
                        e.tags.join(","),
                        e.needs_person,
                        e.enabled,
                        who,
                        now
                    ],
                )?;
                let id: i64 =
                    tx.query_row("SELECT id FROM kb_entries WHERE key = ?1", [&e.key], |r| {
                        r.get(0)
                    })?;
                tx.execute("DELETE FROM kb_questions WHERE entry_id = ?1", [id])?;
                tx.execute("DELETE FROM kb_answers WHERE entry_id = ?1", [id])?;
                tx.execute("DELETE FROM kb_fts WHERE entry_id = ?1", [id])?;
                id
            }
            None => {
                report.added += 1;
                tx.execute(
                    "INSERT INTO kb_entries (key, intent, tags, needs_person, enabled, updated_by, updated_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![e.key, e.intent, e.tags.join(","), e.needs_person, e.enabled, who, now],
                )?;
                tx.last_insert_rowid()
            }
        };
        for (i, (lang, q)) in e.questions.iter().enumerate() {
            let blob = vectors.get(&(e.key.clone(), i)).map(|v| f32s_to_blob(v));
            tx.execute(
                "INSERT INTO kb_questions (entry_id, lang, text, embedding, embedded_by)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, lang, q, blob, encoder.map(|e| e.name())],
            )?;
            tx.execute(
                "INSERT INTO kb_fts (terms, entry_id, lang) VALUES (?1, ?2, ?3)",
                params![index_terms(q).join(" "), id, lang],
            )?;
        }
        for (lang, a) in &e.answers {
            tx.execute(
                "INSERT INTO kb_answers (entry_id, lang, text) VALUES (?1, ?2, ?3)",
                params![id, lang, a],
            )?;
        }
    }
    tx.commit()?;
    Ok(report)
}

/// Computes the embeddings missing from questions (imported without an encoder, or
/// embedded by another encoder than this one); returns how many it filled in.
pub fn fill_embeddings(conn: &Connection, encoder: &dyn Encoder) -> Result<usize, KbError> {
    let missing: Vec<(i64, String)> = conn
        .prepare(
            "SELECT id, text FROM kb_questions
             WHERE embedding IS NULL OR length(embedding) != ?1 OR embedded_by IS NOT ?2",
        )?
        .query_map(params![encoder.dim() as i64 * 4, encoder.name()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for (id, text) in &missing {
        let v = encoder.embed(text)?;
        conn.execute(
            "UPDATE kb_questions SET embedding = ?2, embedded_by = ?3 WHERE id = ?1",
            params![id, f32s_to_blob(&v), encoder.name()],
        )?;
    }
    Ok(missing.len())
}

/// Every entry (disabled ones too when `all`), in key order.
pub fn load(conn: &Connection, all: bool) -> Result<Vec<KbEntry>, KbError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT id, key, intent, tags, needs_person, enabled FROM kb_entries
         WHERE enabled = 1 OR ?1 ORDER BY key",
    )?;
    let rows: Vec<(i64, KbEntry)> = stmt
        .query_map([all], |r| {
            let mut e = KbEntry::new(&r.get::<_, String>(1)?);
            e.intent = r.get(2)?;
            e.tags = r
                .get::<_, String>(3)?
                .split(',')
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            e.needs_person = r.get(4)?;
            e.enabled = r.get(5)?;
            Ok((r.get(0)?, e))
        })?
        .collect::<Result<_, _>>()?;
    let mut q =
        conn.prepare("SELECT lang, text FROM kb_questions WHERE entry_id = ?1 ORDER BY id")?;
    let mut a = conn.prepare("SELECT lang, text FROM kb_answers WHERE entry_id = ?1")?;
    for (id, mut e) in rows {
        e.questions = q
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        e.answers = a
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        out.push(e);
    }
    Ok(out)
}

/// Removes the entry `key` (and its questions, answers and index rows); false if absent.
pub fn delete(conn: &mut Connection, key: &str) -> Result<bool, KbError> {
    let tx = conn.transaction()?;
    let Some(id): Option<i64> = tx
        .query_row("SELECT id FROM kb_entries WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?
    else {
        return Ok(false);
    };
    tx.execute("DELETE FROM kb_fts WHERE entry_id = ?1", [id])?;
    tx.execute("DELETE FROM kb_entries WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok(true)
}

/// A number that changes whenever the knowledge base does (for reloading).
pub fn version(conn: &Connection) -> Result<(i64, i64, i64), KbError> {
    Ok(conn
        .query_row(
            "SELECT COUNT(*), COALESCE(MAX(updated_at_ms), 0), COALESCE(SUM(version), 0) FROM kb_entries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .unwrap_or((0, 0, 0)))
}

/// Imports the bundled sample when the knowledge base is empty; true when it did.
pub fn seed_sample(conn: &mut Connection, encoder: Option<&dyn Encoder>) -> Result<bool, KbError> {
    if version(conn)?.0 > 0 {
        return Ok(false);
    }
    let entries = kb::format::parse_markdown(kb::SAMPLE_KB)?;
    import(conn, &entries, encoder, "sample")?;
    Ok(true)
}

/// Loads the enabled entries and their vectors from the database at `path`, with its own
/// read connection for the full-text queries.
pub fn open_index(path: &Path) -> Result<KbIndex, KbError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let entries = load(&conn, false)?;
    let mut questions = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT e.id, e.key, q.embedding FROM kb_questions q JOIN kb_entries e ON e.id = q.entry_id
             WHERE e.enabled = 1",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let blob: Option<Vec<u8>> = r.get(2)?;
            questions.push((r.get(0)?, r.get(1)?, blob.map(|b| blob_to_f32s(&b))));
        }
    }
    let version = version(&conn)?;
    Ok(KbIndex::new(
        entries,
        questions,
        version,
        Box::new(Fts(Mutex::new(conn))),
    ))
}

/// BM25 from the FTS5 index, on the index's own read connection.
struct Fts(Mutex<Connection>);

impl Lexical for Fts {
    fn bm25(&self, query: &str) -> Result<Vec<(i64, f64)>, KbError> {
        let conn = self
            .0
            .lock()
            .map_err(|_| KbError::Format("knowledge-base index lock poisoned".into()))?;
        let mut s =
            conn.prepare_cached("SELECT entry_id, bm25(kb_fts) FROM kb_fts WHERE kb_fts MATCH ?1")?;
        let rows = s.query_map([query], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
