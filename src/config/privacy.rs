//! `[privacy]`: what of a caller's data the logs may carry, extra redaction patterns, and how
//! long each kind of data is kept.

use super::{invalid, ConfigError};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// The label: a match is replaced by `[name]`.
    pub name: String,
    /// A regular expression (Rust `regex` syntax).
    pub regex: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Info-level logs show what callers said and the bot's replies (redacted). Off: only
    /// their length.
    pub log_transcripts: bool,
    /// Info-level logs show callers' numbers (SIP user parts). Off: `<caller>@host`.
    pub log_caller_numbers: bool,
    /// Patterns redacted besides the built-in ones (card, ID and phone numbers, e-mail).
    pub patterns: Vec<PatternConfig>,
    /// Days each kind of data is kept (0: for ever); a background job deletes older data
    /// every hour. Recordings: the WAV files. Transcripts: turns, summaries, agents' notes.
    /// CDRs: call rows (and with them everything of the call). Tickets: tickets.
    pub recordings_days: u32,
    pub transcripts_days: u32,
    pub cdr_days: u32,
    pub tickets_days: u32,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            log_transcripts: false,
            log_caller_numbers: false,
            patterns: Vec::new(),
            recordings_days: 90,
            transcripts_days: 180,
            cdr_days: 365,
            tickets_days: 365,
        }
    }
}

impl PrivacyConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, p) in self.patterns.iter().enumerate() {
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == ' ')
            {
                return Err(invalid(
                    &format!("privacy.patterns[{i}].name"),
                    "letters, digits, spaces and _ only",
                ));
            }
            regex::Regex::new(&p.regex)
                .map_err(|e| invalid(&format!("privacy.patterns[{i}].regex"), e.to_string()))?;
        }
        let live = [self.recordings_days, self.transcripts_days, self.cdr_days];
        if self.cdr_days != 0 && live.iter().any(|&d| d == 0 || d > self.cdr_days) {
            return Err(invalid(
                "privacy.cdr_days",
                "recordings and transcripts cannot outlive their call rows: keep recordings_days and transcripts_days at most cdr_days (and not 0 unless cdr_days is 0)",
            ));
        }
        Ok(())
    }
}
