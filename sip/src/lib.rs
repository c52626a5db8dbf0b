//! voxdesk-sip: a sans-IO SIP library.
//!
//! No sockets, no async runtime, no clock: callers feed bytes and the current time in and get
//! parsed messages, events and bytes to send back out.

pub mod auth;
pub mod body;
pub mod chars;
pub mod dialog;
pub mod error;
pub mod header;
pub mod msg;
pub mod nonce;
pub mod parse;
pub mod sdes;
pub mod sdp;
pub mod txn;
pub mod uri;
pub mod validate;

pub use error::SyntaxError;
pub use header::{CSeq, MediaType, NameAddr, Via};
pub use msg::{reason_phrase, Header, Message, Method, StartLine};
pub use parse::{frame_stream, frame_stream_limited, parse_datagram, Frame, ParseError};
pub use uri::{Host, Scheme, SipUri, Uri};
