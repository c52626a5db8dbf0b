//! Error types of the SIP library.

use thiserror::Error;

/// A syntax error found while parsing a SIP message, URI or header value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct SyntaxError(pub String);

impl SyntaxError {
    pub fn new(msg: impl Into<String>) -> Self {
        SyntaxError(msg.into())
    }
}

/// Shorthand for building a syntax error result.
pub(crate) fn bad<T>(msg: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError(msg.into()))
}
