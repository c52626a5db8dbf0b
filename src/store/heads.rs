//! The trained intent and emotion heads (`nlu::Heads`), one row per head, tagged with the
//! encoder whose embeddings they were trained on.

use super::StoreError;
use crate::nlu::head::LinearHead;
use crate::nlu::Heads;
use rusqlite::{params, Connection, OptionalExtension};

/// Saves the heads in place of the stored ones (the server picks them up at its next check).
pub fn store_heads(
    conn: &Connection,
    heads: &Heads,
    examples: usize,
    encoder: &str,
) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM nlu_heads", [])?;
    for (name, head) in [
        ("intent", &heads.intent),
        ("emotion", &heads.emotion),
        ("intent_zh", &heads.intent_zh),
        ("emotion_zh", &heads.emotion_zh),
    ] {
        if let Some(h) = head {
            let json = serde_json::to_string(h).map_err(|e| StoreError::Corrupt {
                what: format!("{name} head"),
                msg: e.to_string(),
            })?;
            tx.execute(
                "INSERT INTO nlu_heads (name, json, examples, encoder, trained_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, json, examples as i64, encoder, heads.trained_at_ms],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// When the stored heads for `encoder` were trained (0: never).
pub fn heads_version(conn: &Connection, encoder: &str) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT COALESCE(MAX(trained_at_ms), 0) FROM nlu_heads WHERE encoder = ?1",
            [encoder],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// The stored heads, if they were trained on `encoder`'s embeddings (heads trained with
/// another encoder are meaningless for this one: none are returned, so they get retrained).
pub fn load_heads(conn: &Connection, encoder: &str) -> Result<Heads, StoreError> {
    let mut heads = Heads {
        trained_at_ms: heads_version(conn, encoder)?,
        ..Default::default()
    };
    let mut stmt = conn.prepare("SELECT name, json FROM nlu_heads WHERE encoder = ?1")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([encoder], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, json) in rows {
        let h: LinearHead = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
            what: format!("{name} head"),
            msg: e.to_string(),
        })?;
        match name.as_str() {
            "intent" => heads.intent = Some(h),
            "emotion" => heads.emotion = Some(h),
            "intent_zh" => heads.intent_zh = Some(h),
            "emotion_zh" => heads.emotion_zh = Some(h),
            _ => {}
        }
    }
    Ok(heads)
}
