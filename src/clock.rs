//! Wall-clock time as stored and logged: milliseconds since the Unix epoch. The bottom of
//! the module floors: every layer may read it, it reads nothing of the crate.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
