//! Transaction keys (RFC 3261 §17.1.3, §17.2.3 with the RFC 2543 fallback) and the ACK a
//! client transaction builds for a non-2xx final response.

use super::{TxKey, MAGIC_COOKIE};
use crate::msg::{Message, Method, StartLine};

/// Key for a received request (RFC 3261 §17.2.3, with the RFC 2543 fallback).
pub fn server_key(msg: &Message) -> Option<TxKey> {
    let method = msg.method()?;
    let via = msg.top_via().ok()?;
    let m = if *method == Method::Ack {
        "INVITE".to_string()
    } else {
        method.as_str().to_string()
    };
    let branch = match via.branch() {
        Some(b) if b.starts_with(MAGIC_COOKIE) => b.to_string(),
        _ => {
            // RFC 2543 peer: build an identifier from the dialog and sequence fields.
            let from_tag = msg
                .from_addr()
                .ok()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default();
            let cseq = msg.cseq().ok()?.seq;
            format!(
                "2543|{}|{from_tag}|{cseq}|{}",
                msg.call_id()?,
                via.branch().unwrap_or("")
            )
        }
    };
    Some(TxKey {
        server: true,
        branch,
        sent_by: via.sent_by(),
        method: m,
    })
}

/// Key for a received response (RFC 3261 §17.1.3).
pub fn client_key(msg: &Message) -> Option<TxKey> {
    let via = msg.top_via().ok()?;
    let cseq = msg.cseq().ok()?;
    let method = if cseq.method == "ACK" {
        "INVITE".to_string()
    } else {
        cseq.method
    };
    Some(TxKey {
        server: false,
        branch: via.branch()?.to_string(),
        sent_by: String::new(),
        method,
    })
}

/// Builds the ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
pub fn ack_for_non_2xx(request: &Message, response: &Message) -> Message {
    let uri = request
        .request_uri()
        .cloned()
        .expect("client transactions hold requests");
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(v) = request.header_values("Via").first() {
        ack.push_header("Via", v.to_string());
    }
    for name in ["Max-Forwards", "From", "Call-ID"] {
        if let Some(v) = request.header(name) {
            ack.push_header(name, v);
        }
    }
    if let Some(to) = response.header("To") {
        ack.push_header("To", to);
    }
    if let Ok(c) = request.cseq() {
        ack.push_header("CSeq", format!("{} ACK", c.seq));
    }
    for r in request.header_lines("Route") {
        ack.push_header("Route", r);
    }
    ack
}

/// Whether a request's start line is a request with this method.
pub fn is_method(msg: &Message, m: &Method) -> bool {
    matches!(&msg.start, StartLine::Request { method, .. } if method == m)
}

/// The key a client transaction for this outgoing request will have.
pub fn client_key_for_request(req: &Message) -> Option<TxKey> {
    Some(TxKey {
        server: false,
        branch: req.top_via().ok()?.branch()?.to_string(),
        sent_by: String::new(),
        method: req.method()?.as_str().to_string(),
    })
}
