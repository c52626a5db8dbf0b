//! SIP messages: representation, header access and serialization.

use crate::error::SyntaxError;
use crate::header::{split_list, CSeq, MediaType, NameAddr, Via};
use crate::uri::Uri;
use compact_str::CompactString;
use std::borrow::Cow;
use std::fmt::Write as _;

/// Request methods; unknown ones are kept by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Refer,
    Notify,
    Subscribe,
    Message,
    Other(String),
}

impl Method {
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// First line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        uri: Uri,
        version: Cow<'static, str>,
    },
    Response {
        version: Cow<'static, str>,
        code: u16,
        reason: String,
    },
}

/// One header field as received (compact names expanded to their long form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The long form; well-known names are static (no allocation while parsing).
    pub name: Cow<'static, str>,
    /// Short values (most of them) are stored inline, without an allocation.
    pub value: CompactString,
}

/// A parsed SIP message. Header values are kept as text; typed accessors parse on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// Headers whose values may be comma-separated lists (RFC 3261 §7.3.1).
pub fn is_list_header(name: &str) -> bool {
    const LIST: &[&str] = &[
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Content-Encoding",
        "Content-Language",
        "In-Reply-To",
        "Warning",
        "Alert-Info",
        "Call-Info",
        "Error-Info",
        "Allow-Events",
        "Path",
        "Service-Route",
    ];
    LIST.iter().any(|l| l.eq_ignore_ascii_case(name))
}

impl Message {
    pub fn request(method: Method, uri: Uri) -> Message {
        Message {
            start: StartLine::Request {
                method,
                uri,
                version: "SIP/2.0".into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            _ => None,
        }
    }

    /// CANCEL for this client INVITE while it rings (RFC 3261 9.1): the same Request-URI,
    /// Call-ID, From, To, CSeq number and top Via. None if this is not a request.
    pub fn cancel_for(&self) -> Option<Message> {
        let mut c = Message::request(Method::Cancel, self.request_uri()?.clone());
        for n in ["Via", "Max-Forwards", "From", "To", "Call-ID"] {
            if let Some(v) = self.header(n) {
                c.push_header(n, v);
            }
        }
        let seq = self
            .header("CSeq")
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("1");
        c.push_header("CSeq", format!("{seq} CANCEL"));
        Some(c)
    }

    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// First value of a header (long name; case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// All header lines of that name.
    pub fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// All values of a list header, split on top-level commas.
    pub fn header_values<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.header_lines(name)
            .flat_map(split_list)
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn push_header(&mut self, name: &str, value: impl Into<CompactString>) {
        self.headers.push(Header {
            name: crate::parse::canonical_name(name),
            value: value.into(),
        });
    }

    /// Replaces every header of that name with one value (appended if absent).
    pub fn set_header(&mut self, name: &str, value: impl Into<CompactString>) {
        let value = value.into();
        if let Some(pos) = self
            .headers
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name))
        {
            self.headers[pos].value = value;
            let mut i = 0;
            self.headers.retain(|h| {
                i += 1;
                i - 1 == pos || !h.name.eq_ignore_ascii_case(name)
            });
        } else {
            self.push_header(name, value);
        }
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID").map(str::trim)
    }

    pub fn cseq(&self) -> Result<CSeq, SyntaxError> {
        CSeq::parse(
            self.header("CSeq")
                .ok_or_else(|| SyntaxError::new("missing CSeq"))?,
        )
    }

    pub fn from_addr(&self) -> Result<NameAddr, SyntaxError> {
        NameAddr::parse(
            self.header("From")
                .ok_or_else(|| SyntaxError::new("missing From"))?,
        )
    }

    pub fn to_addr(&self) -> Result<NameAddr, SyntaxError> {
        NameAddr::parse(
            self.header("To")
                .ok_or_else(|| SyntaxError::new("missing To"))?,
        )
    }

    pub fn vias(&self) -> Result<Vec<Via>, SyntaxError> {
        self.header_values("Via")
            .into_iter()
            .map(Via::parse)
            .collect()
    }

    pub fn top_via(&self) -> Result<Via, SyntaxError> {
        let v = self
            .header_values("Via")
            .into_iter()
            .next()
            .ok_or_else(|| SyntaxError::new("missing Via"))?;
        Via::parse(v)
    }

    pub fn contacts(&self) -> Result<Vec<NameAddr>, SyntaxError> {
        self.header_values("Contact")
            .into_iter()
            .map(NameAddr::parse)
            .collect()
    }

    pub fn content_type(&self) -> Option<Result<MediaType, SyntaxError>> {
        self.header("Content-Type").map(MediaType::parse)
    }

    /// Serializes with a Content-Length that matches the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256 + self.headers.len() * 48);
        match &self.start {
            StartLine::Request {
                method,
                uri,
                version,
            } => {
                let _ = write!(s, "{method} {uri} {version}\r\n");
            }
            StartLine::Response {
                version,
                code,
                reason,
            } => {
                let _ = write!(s, "{version} {code} {reason}\r\n");
            }
        }
        for h in &self.headers {
            if h.name.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            s.push_str(&h.name);
            s.push_str(": ");
            s.push_str(&h.value);
            s.push_str("\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// Builds a response to this request (RFC 3261 §8.2.6): copies Via, From, To, Call-ID, CSeq.
    /// `to_tag` is added to To unless it already carries one.
    pub fn response(&self, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
        let mut r = Message {
            start: StartLine::Response {
                version: "SIP/2.0".into(),
                code,
                reason: reason.to_string(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        for h in &self.headers {
            let n: &str = &h.name;
            if n.eq_ignore_ascii_case("Via")
                || n.eq_ignore_ascii_case("From")
                || n.eq_ignore_ascii_case("Call-ID")
                || n.eq_ignore_ascii_case("CSeq")
                || (code > 100 && code < 300 && n.eq_ignore_ascii_case("Record-Route"))
            {
                r.headers.push(h.clone());
            } else if n.eq_ignore_ascii_case("To") {
                let mut v = h.value.clone();
                if let Some(tag) = to_tag {
                    if code != 100
                        && NameAddr::parse(&v)
                            .map(|a| a.tag().is_none())
                            .unwrap_or(false)
                    {
                        v.push_str(";tag=");
                        v.push_str(tag);
                    }
                }
                r.headers.push(Header {
                    name: Cow::Borrowed("To"),
                    value: v,
                });
            }
        }
        if code == 100 {
            if let Some(ts) = self.header("Timestamp") {
                r.push_header("Timestamp", ts);
            }
        }
        r
    }
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        603 => "Decline",
        _ => "Unknown",
    }
}
