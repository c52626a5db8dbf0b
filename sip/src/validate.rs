//! Semantic checks of a parsed message before a UAS acts on it (RFC 3261 §8.2, RFC 4475).

use crate::header::{check_sip_date, param, parse_u32, split_list, MediaType, NameAddr};
use crate::msg::{Message, Method, StartLine};
use crate::uri::Uri;

/// A request the UAS must refuse, with the response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    pub reason: String,
    /// Extra headers for the response (Unsupported, Accept, ...).
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Rejection {
            code,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    fn bad(detail: impl AsRef<str>) -> Self {
        Rejection::new(
            400,
            format!(
                "Bad Request ({})",
                crate::parse::sanitize_reason(detail.as_ref())
            ),
        )
    }

    /// Builds the response to `req` for this rejection.
    pub fn response_to(&self, req: &Message, to_tag: Option<&str>) -> Message {
        let mut r = req.response(self.code, &self.reason, to_tag);
        for (n, v) in &self.headers {
            r.push_header(n, v.clone());
        }
        r
    }
}

/// What this UAS understands.
#[derive(Debug, Clone)]
pub struct Capabilities<'a> {
    /// Option tags we support (Require/Proxy-Require).
    pub extensions: &'a [&'a str],
    /// Body types we accept.
    pub body_types: &'a [(&'a str, &'a str)],
}

impl Default for Capabilities<'static> {
    fn default() -> Self {
        Capabilities {
            extensions: &["timer", "replaces", "norefersub", "path", "outbound"],
            body_types: &[
                ("application", "sdp"),
                ("application", "dtmf-relay"),
                ("multipart", "mixed"),
                ("multipart", "alternative"),
            ],
        }
    }
}

const SINGLE: &[&str] = &[
    "To",
    "From",
    "CSeq",
    "Call-ID",
    "Max-Forwards",
    "Content-Type",
    "Content-Length",
    "Expires",
    "Session-Expires",
    "Min-SE",
];

/// Checks the headers every message needs and that their values are well formed.
fn check_common(m: &Message) -> Result<(), Rejection> {
    // A control character (a bare CR or LF, NUL, ...) in a header value would split or
    // truncate any header it is copied into: refuse it, unless it is escaped inside a
    // quoted string (a quoted-pair, RFC 3261 §25.1, which excludes CR and LF; RFC 4475
    // "intmeth" has them). HTAB is LWS and allowed.
    if let Some(h) = m.headers.iter().find(|h| has_bare_control(&h.value)) {
        return Err(Rejection::bad(format!(
            "control character in {}",
            crate::parse::sanitize_reason(&h.name)
        )));
    }
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if m.header(name).is_none() {
            return Err(Rejection::bad(format!("missing {name}")));
        }
    }
    for name in SINGLE {
        let n = m.header_lines(name).flat_map(split_list).count();
        if n > 1 {
            return Err(Rejection::bad(format!("more than one {name}")));
        }
    }
    m.vias().map_err(|e| Rejection::bad(format!("Via: {e}")))?;
    m.from_addr()
        .map_err(|e| Rejection::bad(format!("From: {e}")))?;
    m.to_addr()
        .map_err(|e| Rejection::bad(format!("To: {e}")))?;
    m.cseq().map_err(|e| Rejection::bad(format!("CSeq: {e}")))?;
    let cid = m.call_id().unwrap_or("");
    if cid.is_empty() || cid.contains(char::is_whitespace) {
        return Err(Rejection::bad("Call-ID"));
    }
    Ok(())
}

/// Whether a header value holds a control character outside a quoted-pair, or any CR/LF.
fn has_bare_control(v: &str) -> bool {
    let (mut in_q, mut escaped) = (false, false);
    for b in v.bytes() {
        let control = (b < 0x20 && b != b'\t') || b == 0x7f;
        if b == b'\r' || b == b'\n' || (control && !escaped) {
            return true;
        }
        if escaped {
            escaped = false;
        } else if in_q && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_q = !in_q;
        }
    }
    false
}

/// Validates a request. `Err` carries the response to send (400, 416, 420, 415, 406, 505).
pub fn validate_request(m: &Message, caps: &Capabilities) -> Result<(), Rejection> {
    let StartLine::Request {
        method,
        uri,
        version,
    } = &m.start
    else {
        return Err(Rejection::bad("not a request"));
    };
    if version != "SIP/2.0" {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    check_common(m)?;
    // Max-Forwards may be absent in RFC 2543 requests (RFC 4475 §3.1.5): tolerated.
    if let Some(mf) = m.header("Max-Forwards") {
        parse_u32(mf, "Max-Forwards", 255).map_err(|e| Rejection::bad(e.to_string()))?;
    }
    let cseq = m.cseq().map_err(|e| Rejection::bad(e.to_string()))?;
    if cseq.method != method.as_str() {
        return Err(Rejection::bad(
            "CSeq method does not match the request method",
        ));
    }
    if let Some(e) = m.header("Expires") {
        parse_u32(e, "Expires", u32::MAX as u64).map_err(|e| Rejection::bad(e.to_string()))?;
    }
    for v in m.header_values("Contact") {
        if v == "*" {
            continue;
        }
        let c = NameAddr::parse(v).map_err(|e| Rejection::bad(format!("Contact: {e}")))?;
        if let Some(Some(exp)) = param(&c.params, "expires") {
            parse_u32(exp, "Contact expires", u32::MAX as u64)
                .map_err(|e| Rejection::bad(e.to_string()))?;
        }
    }
    for name in ["Route", "Record-Route"] {
        for v in m.header_values(name) {
            NameAddr::parse(v).map_err(|e| Rejection::bad(format!("{name}: {e}")))?;
        }
    }
    if let Some(d) = m.header("Date") {
        check_sip_date(d).map_err(|e| Rejection::bad(e.to_string()))?;
    }
    match uri {
        Uri::Sip(u) => {
            if !u.headers.is_empty() {
                return Err(Rejection::bad("Request-URI must not contain headers"));
            }
        }
        Uri::Tel(_) => {}
        Uri::Other { .. } => return Err(Rejection::new(416, "Unsupported URI Scheme")),
    }
    if *method != Method::Ack && *method != Method::Cancel {
        let mut unsupported = Vec::new();
        for name in ["Require", "Proxy-Require"] {
            for tag in m.header_values(name) {
                if !caps.extensions.iter().any(|e| e.eq_ignore_ascii_case(tag)) {
                    unsupported.push(tag.to_string());
                }
            }
        }
        if !unsupported.is_empty() {
            let mut r = Rejection::new(420, "Bad Extension");
            r.headers
                .push(("Unsupported".into(), unsupported.join(", ")));
            return Err(r);
        }
    }
    let accept_list = || {
        caps.body_types
            .iter()
            .map(|(t, s)| format!("{t}/{s}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !m.body.is_empty() {
        let Some(ct) = m.content_type() else {
            return Err(Rejection::bad("body without Content-Type"));
        };
        let ct = ct.map_err(|e| Rejection::bad(format!("Content-Type: {e}")))?;
        if !caps.body_types.iter().any(|(t, s)| ct.is(t, s)) {
            let mut r = Rejection::new(415, "Unsupported Media Type");
            r.headers.push(("Accept".into(), accept_list()));
            return Err(r);
        }
        if let Some(enc) = m.header("Content-Encoding") {
            if !enc.trim().eq_ignore_ascii_case("identity") {
                let mut r = Rejection::new(415, "Unsupported Media Type");
                r.headers
                    .push(("Accept-Encoding".into(), "identity".into()));
                return Err(r);
            }
        }
    }
    if matches!(method, Method::Invite | Method::Options) {
        let accepts: Vec<&str> = m.header_values("Accept");
        if !accepts.is_empty() {
            let mut ok = false;
            for a in accepts {
                let mt = MediaType::parse(a).map_err(|e| Rejection::bad(format!("Accept: {e}")))?;
                ok |= mt.covers("application", "sdp");
            }
            if !ok {
                let mut r = Rejection::new(406, "Not Acceptable");
                r.headers.push(("Accept".into(), "application/sdp".into()));
                return Err(r);
            }
        }
    }
    Ok(())
}

/// Validates a response; an invalid response is silently dropped (RFC 3261 §18.1.2).
pub fn validate_response(m: &Message) -> Result<(), String> {
    let StartLine::Response { version, .. } = &m.start else {
        return Err("not a response".into());
    };
    if version != "SIP/2.0" {
        return Err("unsupported SIP version".into());
    }
    check_common(m).map_err(|r| r.reason)?;
    if let Some(e) = m.header("Expires") {
        parse_u32(e, "Expires", u32::MAX as u64).map_err(|e| e.to_string())?;
    }
    for v in m.header_values("Contact") {
        if v == "*" {
            continue;
        }
        let c = NameAddr::parse(v).map_err(|e| e.to_string())?;
        if let Some(Some(exp)) = param(&c.params, "expires") {
            parse_u32(exp, "Contact expires", u32::MAX as u64).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
