//! Typed views of SIP header values (RFC 3261 §20, §25.1 grammar).

use crate::error::{bad, SyntaxError};
use crate::uri::{is_unreserved, split_host_port, Host, Param, Uri};
use std::fmt;

/// RFC 3261 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    crate::chars::TOKEN[b as usize]
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && crate::chars::all(s, &crate::chars::TOKEN)
}

/// Splits a header value on top-level commas (outside quotes and `<...>`).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = value.as_bytes();
    let (mut start, mut in_q, mut in_a, mut i) = (0, false, false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' if in_q => i += 1,
            b'"' => in_q = !in_q,
            b'<' if !in_q => in_a = true,
            b'>' if !in_q => in_a = false,
            b',' if !in_q && !in_a => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(value[start..].trim());
    out
}

/// Parses `;name=value;flag` header parameters (leading `;` already present or not).
pub fn parse_params(s: &str) -> Result<Vec<Param>, SyntaxError> {
    let mut out = Vec::new();
    let s = s.trim();
    if s.is_empty() {
        return Ok(out);
    }
    let s = s.strip_prefix(';').unwrap_or(s);
    for part in split_outside_quotes(s, b';') {
        let part = part.trim();
        if part.is_empty() {
            return bad("empty header parameter");
        }
        let (n, v) = match part.find('=') {
            Some(i) => (part[..i].trim(), Some(part[i + 1..].trim())),
            None => (part, None),
        };
        if !is_token(n) {
            return bad(format!("invalid parameter name {n:?}"));
        }
        let v = match v {
            None => None,
            Some(v) if v.starts_with('"') => Some(unquote(v)?),
            Some(v) => {
                let ok = !v.is_empty()
                    && v.bytes()
                        .all(|b| is_token_char(b) || b == b':' || b == b'[' || b == b']');
                if !ok {
                    return bad(format!("invalid value for parameter {n}: {v:?}"));
                }
                Some(v.to_string())
            }
        };
        out.push((n.to_ascii_lowercase(), v));
    }
    Ok(out)
}

fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let (mut start, mut in_q, mut i) = (0, false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' if in_q => i += 1,
            b'"' => in_q = !in_q,
            c if c == sep && !in_q => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

/// Makes a quoted-string of any text (a display name from one message put into another):
/// `\` and `"` escaped, control characters dropped, at most 64 characters.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()).take(64) {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Removes the quotes of a quoted-string and resolves `\` escapes.
pub fn unquote(s: &str) -> Result<String, SyntaxError> {
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| SyntaxError::new(format!("unbalanced quotes in {s:?}")))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => return bad("dangling escape in quoted string"),
            },
            '"' => return bad(format!("stray quote in {s:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

pub fn param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    for (n, v) in params {
        match v {
            Some(v)
                if v.bytes()
                    .all(|b| is_token_char(b) || b == b':' || b == b'[' || b == b']')
                    && !v.is_empty() =>
            {
                write!(f, ";{n}={v}")?
            }
            Some(v) => write!(
                f,
                ";{n}=\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            )?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

/// `name-addr` / `addr-spec` with header parameters: From, To, Contact, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn new(uri: Uri) -> Self {
        NameAddr {
            display: None,
            uri,
            params: Vec::new(),
        }
    }

    pub fn parse(s: &str) -> Result<NameAddr, SyntaxError> {
        let s = s.trim();
        if s.is_empty() {
            return bad("empty address");
        }
        let (display, rest) = if s.starts_with('"') {
            let end = closing_quote(s)?;
            let display = unquote(&s[..=end])?;
            let rest = s[end + 1..].trim_start();
            if !rest.starts_with('<') {
                return bad("quoted display name must be followed by <URI>");
            }
            (Some(display), rest)
        } else if let Some(lt) = s.find('<') {
            let dn = s[..lt].trim();
            if !dn.is_empty() {
                // display-name = *(token LWS)
                if !dn.split_whitespace().all(is_token) {
                    return bad(format!("display name must be a token or quoted: {dn:?}"));
                }
            }
            (
                if dn.is_empty() {
                    None
                } else {
                    Some(dn.to_string())
                },
                &s[lt..],
            )
        } else {
            // addr-spec: the URI ends at the first ';' and may not contain ',', '?' or spaces.
            let (uri_s, params_s) = match s.find(';') {
                Some(i) => (&s[..i], &s[i..]),
                None => (s, ""),
            };
            let uri_s = uri_s.trim_end();
            if uri_s.contains(|c: char| c.is_whitespace() || c == '?' || c == ',') {
                return bad(format!(
                    "address with spaces, '?' or ',' must be enclosed in <>: {uri_s:?}"
                ));
            }
            let uri = Uri::parse(uri_s)?;
            return Ok(NameAddr {
                display: None,
                uri,
                params: parse_params(params_s)?,
            });
        };
        // rest starts with '<'
        let Some(gt) = rest.find('>') else {
            return bad("unterminated <URI>");
        };
        let uri_s = &rest[1..gt];
        if uri_s.contains(|c: char| c.is_whitespace()) {
            return bad(format!("whitespace inside <URI>: {uri_s:?}"));
        }
        let uri = Uri::parse(uri_s)?;
        let after = rest[gt + 1..].trim();
        if !after.is_empty() && !after.starts_with(';') {
            return bad(format!("junk after <URI>: {after:?}"));
        }
        Ok(NameAddr {
            display,
            uri,
            params: parse_params(after)?,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        param(&self.params, "tag").flatten()
    }

    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        self.params.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.params
            .push((name.to_string(), value.map(str::to_string)));
    }
}

fn closing_quote(s: &str) -> Result<usize, SyntaxError> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i),
            _ => i += 1,
        }
    }
    bad("unterminated quoted string")
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// One Via header field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub protocol: String,
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

impl Via {
    pub fn parse(s: &str) -> Result<Via, SyntaxError> {
        let s = s.trim();
        // sent-protocol: name SLASH version SLASH transport, LWS allowed around slashes.
        let mut parts = Vec::new();
        let mut rest = s;
        for _ in 0..2 {
            let Some(slash) = rest.find('/') else {
                return bad(format!("malformed Via sent-protocol: {s:?}"));
            };
            parts.push(rest[..slash].trim());
            rest = rest[slash + 1..].trim_start();
        }
        let tend = rest
            .find(|c: char| c.is_whitespace())
            .ok_or_else(|| SyntaxError::new(format!("Via without sent-by: {s:?}")))?;
        let transport = &rest[..tend];
        let rest = rest[tend..].trim_start();
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" || !is_token(transport) {
            return bad(format!("unsupported Via protocol: {s:?}"));
        }
        let (sent_by, params_s) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest.trim(), ""),
        };
        // LWS is allowed around the ':' of sent-by.
        let compact: String = sent_by.chars().filter(|c| !c.is_whitespace()).collect();
        let (host_s, port) = split_host_port(&compact)?;
        let host = Host::parse(host_s)?;
        let params = parse_params(params_s)?;
        if let Some(Some(r)) = param(&params, "received") {
            Host::parse_lenient(r)?;
        }
        if let Some(Some(b)) = param(&params, "branch") {
            if b.is_empty() {
                return bad("empty Via branch");
            }
        }
        Ok(Via {
            protocol: "SIP/2.0".into(),
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        param(&self.params, "branch").flatten()
    }

    /// `host[:port]` of sent-by, used in transaction matching.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        if let Some(slot) = self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            slot.1 = value.map(str::to_string);
        } else {
            self.params
                .push((name.to_string(), value.map(str::to_string)));
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)
    }
}

/// The CSeq header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: String,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, SyntaxError> {
        let mut it = s.split_whitespace();
        let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
            return bad(format!("malformed CSeq: {s:?}"));
        };
        if !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 10 {
            return bad(format!("CSeq number out of range: {n}"));
        }
        let seq: u64 = n.parse().map_err(|_| SyntaxError::new("bad CSeq number"))?;
        // RFC 3261 §8.1.1.5: less than 2**31.
        if seq >= 1 << 31 {
            return bad(format!("CSeq number out of range: {n}"));
        }
        if !is_token(m) {
            return bad(format!("invalid CSeq method: {m:?}"));
        }
        Ok(CSeq {
            seq: seq as u32,
            method: m.to_string(),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Parses a decimal delta-seconds or count field bounded by `max`.
pub fn parse_u32(s: &str, what: &str, max: u64) -> Result<u32, SyntaxError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 10 {
        return bad(format!("invalid {what}: {s:?}"));
    }
    let v: u64 = s
        .parse()
        .map_err(|_| SyntaxError::new(format!("invalid {what}")))?;
    if v > max {
        return bad(format!("{what} out of range: {v}"));
    }
    Ok(v as u32)
}

/// A media type such as `application/sdp; charset=utf-8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub kind: String,
    pub subtype: String,
    pub params: Vec<Param>,
}

impl MediaType {
    pub fn parse(s: &str) -> Result<MediaType, SyntaxError> {
        let (main, params) = match s.find(';') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        let Some((t, st)) = main.split_once('/') else {
            return bad(format!("invalid media type {s:?}"));
        };
        let (t, st) = (t.trim(), st.trim());
        if !(is_token(t) || t == "*") || !(is_token(st) || st == "*") {
            return bad(format!("invalid media type {s:?}"));
        }
        Ok(MediaType {
            kind: t.to_ascii_lowercase(),
            subtype: st.to_ascii_lowercase(),
            params: parse_params(params)?,
        })
    }

    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind == kind && self.subtype == subtype
    }

    /// Whether this (possibly wildcard) Accept range covers `kind/subtype`.
    pub fn covers(&self, kind: &str, subtype: &str) -> bool {
        (self.kind == "*" || self.kind == kind) && (self.subtype == "*" || self.subtype == subtype)
    }
}

/// Checks an RFC 1123 date as SIP requires (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn check_sip_date(s: &str) -> Result<(), SyntaxError> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    const DAYS: [&str; 7] = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ok = parts.len() == 6
        && DAYS.contains(&parts[0])
        && parts[1].len() == 2
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && MONTHS.contains(&parts[2])
        && parts[3].len() == 4
        && parts[3].bytes().all(|b| b.is_ascii_digit())
        && parts[4].len() == 8
        && parts[5] == "GMT";
    if ok {
        Ok(())
    } else {
        bad(format!("invalid Date (RFC 1123, GMT only): {s:?}"))
    }
}

/// Percent-free check that a string is a `word` (Call-ID halves).
pub fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| is_unreserved(b) || b"%+`:\\\"/[]?{}<>".contains(&b) || b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse("\"Alice \\\"A\\\"\" <sip:alice@example.com>;tag=abc").unwrap();
        assert_eq!(a.display.as_deref(), Some("Alice \"A\""));
        assert_eq!(a.tag(), Some("abc"));
        let b = NameAddr::parse("Bob Smith<sip:bob@example.com>").unwrap();
        assert_eq!(b.display.as_deref(), Some("Bob Smith"));
        let c = NameAddr::parse("sip:carol@example.com;tag=1").unwrap();
        assert_eq!(c.tag(), Some("1"));
        assert!(NameAddr::parse("\"unterminated <sip:x@y>").is_err());
        assert!(NameAddr::parse("Bob J. Smith, Jr <sip:x@y>").is_err());
        assert!(NameAddr::parse("sip:x@y?Route=%3Csip:z%3E").is_err());
        assert!(NameAddr::parse("sip:x @y").is_err());
    }

    #[test]
    fn via_forms() {
        let v = Via::parse("SIP / 2.0 / UDP first.example.com: 4000;ttl=16 ;maddr=224.2.0.1 ;branch=z9hG4bKa7c6a8dlze.1").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.port, Some(4000));
        assert_eq!(v.branch(), Some("z9hG4bKa7c6a8dlze.1"));
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(v.host, Host::V6("2001:db8::9:1".parse().unwrap()));
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0/UDP host;;branch=x").is_err());
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(CSeq::parse("  4711   INVITE ").unwrap().seq, 4711);
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }

    #[test]
    fn lists_respect_quotes() {
        let l = split_list("\"a, b\" <sip:a@x>, <sip:b@y;x=1,2>, sip:c@z");
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn dates() {
        assert!(check_sip_date("Sat, 13 Nov 2010 23:29:00 GMT").is_ok());
        assert!(check_sip_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
    }
}
