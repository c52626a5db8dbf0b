//! The SIP message parser (RFC 3261 §7, §25; robust per RFC 4475 and RFC 5118).
//!
//! `parse_datagram` takes one UDP datagram; `frame_stream` finds message boundaries in a
//! TCP byte stream and `parse_datagram` then parses each framed message.

use crate::header::is_token;
use crate::msg::{Header, Message, Method, StartLine};
use crate::uri::Uri;
use std::borrow::Cow;
use thiserror::Error;

/// Largest header section accepted before giving up on a stream (bytes).
pub const MAX_HEAD: usize = 64 * 1024;

/// Why a message could not be parsed, with whatever was readable so that a request can
/// still be answered with 400 (RFC 3261 §21.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct ParseError {
    pub reason: String,
    /// True when the start line looked like a request (so a 400 may be sent).
    pub looks_like_request: bool,
    /// The header lines that could be read.
    pub headers: Vec<Header>,
}

impl ParseError {
    fn new(reason: impl Into<String>) -> Self {
        ParseError {
            reason: reason.into(),
            looks_like_request: false,
            headers: Vec::new(),
        }
    }

    /// Builds a 400 response from the readable headers, if they are enough to route it.
    pub fn bad_request(&self) -> Option<Message> {
        if !self.looks_like_request {
            return None;
        }
        let has = |n: &str| self.headers.iter().any(|h| h.name.eq_ignore_ascii_case(n));
        if !(has("Via") && has("From") && has("To") && has("Call-ID") && has("CSeq")) {
            return None;
        }
        let fake = Message {
            start: StartLine::Request {
                method: Method::Options,
                uri: Uri::Tel("0".into()),
                version: "SIP/2.0".into(),
            },
            headers: self.headers.clone(),
            body: Vec::new(),
        };
        let reason = format!("Bad Request ({})", sanitize_reason(&self.reason));
        Some(fake.response(400, &reason, None))
    }
}

/// Makes text safe for a reason phrase (no CR/LF, bounded length).
pub fn sanitize_reason(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect()
}

/// Long form of a compact header name (RFC 3261 §7.3.3 and later extensions).
pub fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => return None,
    })
}

/// Well-known header names in their canonical spelling.
const KNOWN: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Route",
    "Record-Route",
    "Expires",
    "Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Require",
    "Proxy-Require",
    "Supported",
    "Unsupported",
    "Allow",
    "Accept",
    "User-Agent",
    "Server",
    "Session-Expires",
    "Min-SE",
    "Min-Expires",
    "Date",
    "Subject",
    "Timestamp",
    "Event",
    "Refer-To",
    "Referred-By",
    "Content-Encoding",
    "Accept-Encoding",
    "Accept-Language",
    "Content-Disposition",
    "Organization",
    "Priority",
    "Warning",
    "Allow-Events",
    "Call-Info",
    "P-Asserted-Identity",
];

/// Canonical spelling for a header name (compact forms expanded); unknown names are kept.
pub fn canonical_name(name: &str) -> Cow<'static, str> {
    if let Some(long) = expand_compact(name) {
        return Cow::Borrowed(long);
    }
    // Exact canonical spelling is by far the most common: a length switch and one compare.
    let exact = match name {
        "Via" => "Via",
        "From" => "From",
        "To" => "To",
        "Call-ID" => "Call-ID",
        "CSeq" => "CSeq",
        "Contact" => "Contact",
        "Max-Forwards" => "Max-Forwards",
        "Content-Length" => "Content-Length",
        "Content-Type" => "Content-Type",
        "Route" => "Route",
        "Record-Route" => "Record-Route",
        "Expires" => "Expires",
        "Authorization" => "Authorization",
        "User-Agent" => "User-Agent",
        "Allow" => "Allow",
        "Supported" => "Supported",
        "Require" => "Require",
        "Server" => "Server",
        "Session-Expires" => "Session-Expires",
        _ => "",
    };
    if !exact.is_empty() {
        return Cow::Borrowed(exact);
    }
    let mut lower = [0u8; 24];
    if name.len() <= lower.len() {
        for (d, b) in lower.iter_mut().zip(name.bytes()) {
            *d = b.to_ascii_lowercase();
        }
        let known = match &lower[..name.len()] {
            b"via" => "Via",
            b"from" => "From",
            b"to" => "To",
            b"call-id" => "Call-ID",
            b"cseq" => "CSeq",
            b"contact" => "Contact",
            b"max-forwards" => "Max-Forwards",
            b"content-length" => "Content-Length",
            b"content-type" => "Content-Type",
            b"route" => "Route",
            b"record-route" => "Record-Route",
            b"expires" => "Expires",
            b"authorization" => "Authorization",
            b"user-agent" => "User-Agent",
            b"allow" => "Allow",
            b"supported" => "Supported",
            b"require" => "Require",
            b"server" => "Server",
            b"session-expires" => "Session-Expires",
            _ => "",
        };
        if !known.is_empty() {
            return Cow::Borrowed(known);
        }
    }
    for k in KNOWN {
        if k.len() == name.len() && k.eq_ignore_ascii_case(name) {
            return Cow::Borrowed(k);
        }
    }
    Cow::Owned(name.to_string())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn lflf() -> &'static memchr::memmem::Finder<'static> {
    static F: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    F.get_or_init(|| memchr::memmem::Finder::new(b"\n\n"))
}

fn crlfcrlf() -> &'static memchr::memmem::Finder<'static> {
    static F: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    F.get_or_init(|| memchr::memmem::Finder::new(b"\r\n\r\n"))
}

/// Locates the end of the header section: (index of the empty line, length of terminator).
/// CRLF is the norm (a SIMD search); bare-LF line ends are accepted too.
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = crlfcrlf().find(buf);
    // Only look for a bare-LF blank line before the CRLF one (rare: LF-only senders).
    let scope = &buf[..crlf.map(|i| i + 2).unwrap_or(buf.len())];
    let lf = lflf().find(scope).map(|i| {
        if i > 0 && buf[i - 1] == b'\r' {
            (i - 1, 3)
        } else {
            (i, 2)
        }
    });
    match (crlf, lf) {
        (_, Some(l)) => Some(l),
        (Some(c), None) => Some((c, 4)),
        (None, None) => memchr::memmem::find(buf, b"\n\r\n").map(|i| (i, 3)),
    }
}

fn skip_leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Parses one message received in a datagram. Trailing octets past Content-Length are
/// ignored (RFC 4475 §3.1.1.9); a body shorter than Content-Length is an error (§3.1.2.2).
pub fn parse_datagram(buf: &[u8]) -> Result<Message, ParseError> {
    let start = skip_leading_crlf(buf);
    let buf = &buf[start..];
    if buf.is_empty() {
        return Err(ParseError::new("empty message"));
    }
    // One SIMD pass over the line ends finds the header section and every header line.
    const MAX_LINES: usize = 256;
    let mut ends = [0u32; MAX_LINES];
    let mut nlines = 0;
    let mut line_start = 0;
    let mut head_len = buf.len();
    let mut body_start = buf.len();
    for nl in memchr::memchr_iter(b'\n', buf) {
        let cr = nl > line_start && buf[nl - 1] == b'\r';
        if nl == line_start || (cr && nl == line_start + 1) {
            head_len = line_start;
            body_start = nl + 1;
            break;
        }
        if nlines == MAX_LINES {
            return Err(ParseError::new("too many header lines"));
        }
        ends[nlines] = nl as u32;
        nlines += 1;
        line_start = nl + 1;
    }
    if head_len == buf.len() && line_start < buf.len() {
        // A datagram whose headers run to its end: accept without the empty line.
        if nlines == MAX_LINES {
            return Err(ParseError::new("too many header lines"));
        }
        ends[nlines] = buf.len() as u32;
        nlines += 1;
    }
    let (head, rest) = (&buf[..head_len.min(buf.len())], &buf[body_start..]);
    let text: Cow<str> = match std::str::from_utf8(head) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => Cow::Owned(String::from_utf8_lossy(head).into_owned()),
    };
    // Lossy conversion may change lengths: then split the text itself.
    let same_len = text.len() == head.len();
    let mut idx = 0;
    let mut start = 0;
    let mut fallback = text.split('\n');
    let mut lines = std::iter::from_fn(|| {
        let line = if same_len {
            if idx >= nlines {
                return None;
            }
            let end = (ends[idx] as usize).min(text.len());
            idx += 1;
            let l = &text[start.min(end)..end];
            start = end + 1;
            l
        } else {
            fallback.next()?
        };
        Some(line.strip_suffix('\r').unwrap_or(line))
    });
    let first = lines.next().unwrap_or_default();
    let start_res = parse_start_line(first);
    let looks_like_request = !first.starts_with("SIP/") && first.contains(' ');
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let mut header_err = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Folded continuation (LWS): joins the previous header with one space.
            match headers.last_mut() {
                Some(h) => {
                    h.value.push(' ');
                    h.value.push_str(line.trim_ascii());
                }
                None => {
                    header_err.get_or_insert_with(|| {
                        "continuation line where a header was expected".to_string()
                    });
                }
            }
            continue;
        }
        match parse_header_line(line) {
            Ok(h) => headers.push(h),
            Err(e) => {
                header_err.get_or_insert(e);
            }
        }
    }
    let fail = |reason: String, headers: Vec<Header>| ParseError {
        reason,
        looks_like_request,
        headers,
    };
    let start_line = match start_res {
        Ok(s) => s,
        Err(e) => return Err(fail(e, headers)),
    };
    if let Some(e) = header_err {
        return Err(fail(e, headers));
    }
    // Content-Length: at most one (RFC 4475 mcl01); names are canonical, so compare exactly.
    let mut cl: Option<&str> = None;
    let mut cl_count = 0;
    for h in &headers {
        if h.name == "Content-Length" {
            cl_count += 1;
            cl = Some(h.value.as_str());
        }
    }
    let body = match (cl_count, cl) {
        (0, _) => rest.to_vec(),
        (1, Some(v)) => {
            let v = v.trim();
            if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
                let reason = format!("invalid Content-Length {v:?}");
                return Err(fail(reason, headers));
            }
            let n: usize = v.parse().unwrap_or(usize::MAX);
            if n > rest.len() {
                let reason = format!(
                    "Content-Length {n} exceeds the {} body bytes received",
                    rest.len()
                );
                return Err(fail(reason, headers));
            }
            rest[..n].to_vec()
        }
        _ => return Err(fail("multiple Content-Length headers".into(), headers)),
    };
    Ok(Message {
        start: start_line,
        headers,
        body,
    })
}

fn parse_start_line(line: &str) -> Result<StartLine, String> {
    if line.is_empty() {
        return Err("empty start line".into());
    }
    if let Some(rest) = line.strip_prefix("SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (ver, rest) = rest.split_once(' ').ok_or("malformed status line")?;
        check_version(ver)?;
        let (code_s, reason) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if code_s.len() != 3 || !code_s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid status code {code_s:?}"));
        }
        let code: u16 = code_s.parse().map_err(|_| "invalid status code")?;
        if !(100..=699).contains(&code) {
            return Err(format!("status code out of range: {code}"));
        }
        return Ok(StartLine::Response {
            version: version_of(ver),
            code,
            reason: reason.to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (single spaces, no trailing space)
    let mut it = line.split(' ');
    let parts = [
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    ];
    if parts[2].is_empty() || it.next().is_some() {
        return Err("malformed request line (expected METHOD SP URI SP SIP/2.0)".into());
    }
    if !is_token(parts[0]) {
        return Err(format!("invalid method {:?}", parts[0]));
    }
    let ver = parts[2]
        .strip_prefix("SIP/")
        .or_else(|| parts[2].strip_prefix("sip/"))
        .ok_or("malformed SIP version")?;
    check_version(ver)?;
    let uri = Uri::parse(parts[1]).map_err(|e| format!("invalid Request-URI: {e}"))?;
    Ok(StartLine::Request {
        method: Method::from_token(parts[0]),
        uri,
        version: version_of(ver),
    })
}

fn version_of(ver: &str) -> Cow<'static, str> {
    if ver == "2.0" {
        Cow::Borrowed("SIP/2.0")
    } else {
        Cow::Owned(format!("SIP/{ver}"))
    }
}

fn check_version(v: &str) -> Result<(), String> {
    let ok = v
        .split_once('.')
        .map(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!("malformed SIP version {v:?}"))
    }
}

fn parse_header_line(line: &str) -> Result<Header, String> {
    let colon = line
        .bytes()
        .position(|b| b == b':')
        .ok_or_else(|| format!("header line without a colon: {:?}", truncate(line)))?;
    let name = line[..colon].trim_end_matches([' ', '\t']);
    if !is_token(name) {
        return Err(format!("invalid header name {:?}", truncate(name)));
    }
    Ok(Header {
        name: canonical_name(name),
        value: compact_str::CompactString::from(line[colon + 1..].trim_ascii()),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Outcome of framing a stream buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// Only CRLF keep-alives (RFC 5626 §3.5.1): drop this many bytes; `pong` says whether the
    /// peer sent a double-CRLF ping that must be answered with one CRLF.
    KeepAlive { consumed: usize, pong: bool },
    /// A whole message occupies `buf[skip..skip+len]`.
    Message { skip: usize, len: usize },
    /// The next message is (or declares itself) larger than the limit: answer 513 and close.
    TooLarge { skip: usize },
}

/// Finds the next message in a stream (TCP/TLS) buffer. Content-Length is mandatory on
/// streams (RFC 3261 §18.3); a stream that cannot be framed must be closed.
pub fn frame_stream(buf: &[u8]) -> Result<Frame, String> {
    frame_stream_limited(buf, 16 * 1024 * 1024)
}

/// [`frame_stream`] with a limit on one message (header section plus body), checked as
/// soon as the Content-Length is known, so a peer cannot make the reader buffer more.
pub fn frame_stream_limited(buf: &[u8], max_message: usize) -> Result<Frame, String> {
    let skip = skip_leading_crlf(buf);
    if skip == buf.len() {
        if skip == 0 {
            return Ok(Frame::Incomplete);
        }
        let pong = find(&buf[..skip], b"\r\n\r\n").is_some();
        return Ok(Frame::KeepAlive {
            consumed: skip,
            pong,
        });
    }
    let b = &buf[skip..];
    let Some((i, n)) = head_end(b) else {
        if b.len() > max_message.min(MAX_HEAD) {
            return Ok(Frame::TooLarge { skip });
        }
        return Ok(Frame::Incomplete);
    };
    let head = String::from_utf8_lossy(&b[..i]);
    let mut cl = None;
    for raw in head.split('\n').skip(1) {
        let line = raw.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
                let v = value.trim();
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("invalid Content-Length {v:?} on a stream"))?;
                if cl.replace(n).is_some() {
                    return Err("multiple Content-Length headers on a stream".into());
                }
            }
        }
    }
    let cl = cl.ok_or("Content-Length is required on stream transports")?;
    let len = i.saturating_add(n).saturating_add(cl);
    if len > max_message {
        return Ok(Frame::TooLarge { skip });
    }
    if b.len() < len {
        return Ok(Frame::Incomplete);
    }
    Ok(Frame::Message { skip, len })
}
