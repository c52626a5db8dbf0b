//! Callers' personal data: redaction before anything is written or logged, and what the logs
//! may carry. (Retention, export and erasure are in `store`, with the SQL.)

pub mod redact;

pub use redact::Redactor;
use std::borrow::Cow;
use std::sync::OnceLock;

static REDACTOR: OnceLock<Redactor> = OnceLock::new();
static LOG_TRANSCRIPTS: OnceLock<bool> = OnceLock::new();
static LOG_NUMBERS: OnceLock<bool> = OnceLock::new();

/// Sets the process's redaction rules and log policy from the config (once, at start-up;
/// later calls keep the first). Without it the built-in patterns apply and nothing
/// personal is logged at info level.
pub fn init(cfg: &crate::config::PrivacyConfig) -> Result<(), regex::Error> {
    let custom: Vec<(String, String)> = cfg
        .patterns
        .iter()
        .map(|p| (p.name.clone(), p.regex.clone()))
        .collect();
    let _ = REDACTOR.set(Redactor::new(&custom)?);
    let _ = LOG_TRANSCRIPTS.set(cfg.log_transcripts);
    let _ = LOG_NUMBERS.set(cfg.log_caller_numbers);
    Ok(())
}

fn redactor() -> &'static Redactor {
    REDACTOR.get_or_init(Redactor::default)
}

/// `text` with callers' personal data replaced by labels.
pub fn redact(text: &str) -> Cow<'_, str> {
    redactor().redact(text)
}

/// What an info-level log line may show of a transcript or reply: the redacted text when
/// the operator turned `privacy.log_transcripts` on, else only its length.
pub fn loggable(text: &str) -> String {
    if LOG_TRANSCRIPTS.get().copied().unwrap_or(false) {
        redact(text).into_owned()
    } else {
        format!("<{} chars>", text.chars().count())
    }
}

/// What an info-level log line may show of a caller's number or SIP URI.
pub fn loggable_number(uri: &str) -> String {
    if LOG_NUMBERS.get().copied().unwrap_or(false) {
        uri.to_string()
    } else {
        // Keep the host (which trunk or phone), hide the user part.
        match uri.split_once('@') {
            Some((_, host)) => format!("<caller>@{host}"),
            None => "<caller>".into(),
        }
    }
}
