//! SIP URIs (RFC 3261 §19.1, RFC 5118 IPv6 references) and other URI schemes.

use crate::chars;
use crate::error::{bad, SyntaxError};
use compact_str::CompactString;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The host part of a SIP URI or Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// Lower-cased; short names are stored inline.
    Name(CompactString),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl Host {
    /// Parses a host: a hostname, an IPv4 address or a bracketed IPv6 reference.
    pub fn parse(s: &str) -> Result<Host, SyntaxError> {
        if let Some(inner) = s.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return bad(format!("unterminated IPv6 reference: {s}"));
            };
            return parse_ipv6(inner).map(Host::V6);
        }
        if s.is_empty() {
            return bad("empty host");
        }
        if s.contains(':') {
            return bad(format!("IPv6 address must be enclosed in brackets: {s}"));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.bytes().any(|b| b == b'.') {
            if let Ok(a) = s.parse::<Ipv4Addr>() {
                return Ok(Host::V4(a));
            }
        }
        let valid = chars::all(s, &chars::HOSTNAME);
        if !valid {
            return bad(format!("invalid host name: {s}"));
        }
        let mut name = CompactString::from(s);
        name.make_ascii_lowercase();
        Ok(Host::Name(name))
    }

    /// Parses a host that may be an unbracketed IPv6 address (Via `received`, RFC 5118 §4.5).
    pub fn parse_lenient(s: &str) -> Result<Host, SyntaxError> {
        if !s.starts_with('[') && s.contains(':') {
            return parse_ipv6(s).map(Host::V6);
        }
        Host::parse(s)
    }
}

/// Parses an IPv6 address; tolerates the `:::` form RFC 3261's ABNF allowed (RFC 5118 §4.10).
fn parse_ipv6(s: &str) -> Result<Ipv6Addr, SyntaxError> {
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Ok(a);
    }
    if s.matches(":::").count() == 1 {
        if let Ok(a) = s.replacen(":::", "::", 1).parse::<Ipv6Addr>() {
            return Ok(a);
        }
    }
    bad(format!("invalid IPv6 address: {s}"))
}

/// `sip` or `sips`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
}

/// A URI parameter (`;name=value` or `;flag`).
pub type Param = (String, Option<String>);

/// A SIP or SIPS URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: Scheme,
    /// The user part as received (still percent-escaped).
    pub user: Option<CompactString>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Vec<Param>,
    /// URI headers (`?name=value&...`), escaped as received.
    pub headers: Vec<(String, String)>,
}

impl SipUri {
    /// A plain `sip:user@host:port` URI.
    pub fn new(user: Option<&str>, host: Host, port: Option<u16>) -> SipUri {
        SipUri {
            scheme: Scheme::Sip,
            user: user.map(CompactString::from),
            password: None,
            host,
            port,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The user part with percent-escapes decoded (lossy for non-UTF-8 bytes).
    pub fn user_decoded(&self) -> Option<String> {
        self.user.as_deref().map(percent_decode)
    }

    /// The value of a URI parameter, case-insensitive on the name.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// `host[:port]` as text.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    fn parse_after_scheme(scheme: Scheme, rest: &str) -> Result<SipUri, SyntaxError> {
        if rest.is_empty() {
            return bad("empty SIP URI");
        }
        if let Some(b) = rest
            .bytes()
            .find(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return bad(format!("SIP URI contains an invalid character 0x{b:02x}"));
        }
        // '@' never appears unescaped in params or headers, so it always ends the userinfo
        // (which itself may contain '?', ';' and '/').
        let (userinfo, after_user) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers_part) = match after_user.find('?') {
            Some(i) => (&after_user[..i], Some(&after_user[i + 1..])),
            None => (after_user, None),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.find(':') {
                    Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return bad("empty user part in SIP URI");
                }
                check_class(u, "user", &chars::USER)?;
                check_escapes(u)?;
                if let Some(p) = p {
                    check_class(p, "password", &chars::PASSWORD)?;
                    check_escapes(p)?;
                }
                (Some(CompactString::from(u)), p.map(str::to_string))
            }
        };
        // hostport, then ;params
        let (hostport, params_part) = split_hostport_params(hostpart)?;
        let (host_s, port) = split_host_port(hostport)?;
        let host = Host::parse(host_s)?;
        let mut params = Vec::new();
        if let Some(pp) = params_part {
            for p in pp.split(';') {
                if p.is_empty() {
                    return bad("empty URI parameter");
                }
                check_class(p, "URI parameter", &chars::URI_PARAM)?;
                check_escapes(p)?;
                let (n, v) = match p.find('=') {
                    Some(i) => (&p[..i], Some(p[i + 1..].to_string())),
                    None => (p, None),
                };
                if n.is_empty() {
                    return bad("URI parameter without a name");
                }
                params.push((n.to_ascii_lowercase(), v));
            }
        }
        let mut headers = Vec::new();
        if let Some(hp) = headers_part {
            for h in hp.split('&') {
                let (n, v) = h.split_once('=').unwrap_or((h, ""));
                check_class(h, "URI header", &chars::URI_HEADER)?;
                check_escapes(h)?;
                headers.push((n.to_string(), v.to_string()));
            }
        }
        Ok(SipUri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
}

fn split_hostport_params(s: &str) -> Result<(&str, Option<&str>), SyntaxError> {
    // An IPv6 reference may hold ':' but never ';'.
    match s.find(';') {
        Some(i) => Ok((&s[..i], Some(&s[i + 1..]))),
        None => Ok((s, None)),
    }
}

/// Splits `host[:port]`, where host may be a bracketed IPv6 reference.
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), SyntaxError> {
    let (host, port_s) = if s.starts_with('[') {
        let Some(end) = s.find(']') else {
            return bad(format!("unterminated IPv6 reference: {s}"));
        };
        let rest = &s[end + 1..];
        if rest.is_empty() {
            (&s[..=end], None)
        } else if let Some(p) = rest.strip_prefix(':') {
            (&s[..=end], Some(p))
        } else {
            return bad(format!("junk after IPv6 reference: {s}"));
        }
    } else {
        match s.rfind(':') {
            Some(i) if !s[..i].contains(':') => (&s[..i], Some(&s[i + 1..])),
            Some(_) => return bad(format!("IPv6 address must be enclosed in brackets: {s}")),
            None => (s, None),
        }
    };
    let port = match port_s {
        None => None,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
                return bad(format!("invalid port: {p}"));
            }
            Some(
                p.parse::<u16>()
                    .map_err(|_| SyntaxError::new(format!("port out of range: {p}")))?,
            )
        }
    };
    Ok((host, port))
}

pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

fn check_class(s: &str, what: &str, table: &[bool; 256]) -> Result<(), SyntaxError> {
    match chars::first_not(s, table) {
        Some(b) => bad(format!("invalid character {:?} in {what}", b as char)),
        None => Ok(()),
    }
}

fn check_escapes(s: &str) -> Result<(), SyntaxError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return bad(format!("truncated percent-escape in {s:?}"));
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return bad(format!("invalid percent-escape in {s:?}"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Decodes `%XX` escapes; invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.scheme {
            Scheme::Sip => "sip:",
            Scheme::Sips => "sips:",
        })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        for (i, (n, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// Any URI found in a SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel(String),
    /// A syntactically valid absolute URI of a scheme we do not interpret.
    Other {
        scheme: String,
        rest: String,
    },
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, SyntaxError> {
        let Some(colon) = s.find(':') else {
            return bad(format!("URI without a scheme: {s:?}"));
        };
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        let scheme_ok = !scheme.is_empty()
            && scheme.as_bytes()[0].is_ascii_alphabetic()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
        if !scheme_ok {
            return bad(format!("invalid URI scheme: {scheme:?}"));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_after_scheme(Scheme::Sip, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_after_scheme(Scheme::Sips, rest).map(Uri::Sip)
        } else {
            if rest.is_empty() {
                return bad("empty URI");
            }
            if let Some(b) = rest.bytes().find(|b| {
                b.is_ascii_whitespace()
                    || b.is_ascii_control()
                    || *b == b'<'
                    || *b == b'>'
                    || *b == b'"'
            }) {
                return bad(format!("URI contains an invalid character {:?}", b as char));
            }
            if scheme.eq_ignore_ascii_case("tel") {
                Ok(Uri::Tel(rest.to_string()))
            } else {
                Ok(Uri::Other {
                    scheme: scheme.to_ascii_lowercase(),
                    rest: rest.to_string(),
                })
            }
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.scheme == Scheme::Sips => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => write!(f, "{u}"),
            Uri::Tel(t) => write!(f, "tel:{t}"),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_sip_uri() {
        let u = Uri::parse("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi&x=y")
            .unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.scheme, Scheme::Sips);
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.password.as_deref(), Some("secret"));
        assert_eq!(s.host, Host::Name("example.com".into()));
        assert_eq!(s.port, Some(5061));
        assert_eq!(s.param("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(s.param("lr"), Some(None));
        assert_eq!(s.headers.len(), 2);
    }

    #[test]
    fn ipv6_references() {
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.as_sip().unwrap().port, Some(5070));
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.as_sip().unwrap().port, None);
        assert_eq!(
            u.as_sip().unwrap().host,
            Host::V6("2001:db8::10:5070".parse().unwrap())
        );
        // RFC 5118 §4.10: tolerate the three-colon form and read the same address.
        let a = Uri::parse("sip:u@[2001:db8:::192.0.2.1]").unwrap();
        let b = Uri::parse("sip:u@[2001:db8::192.0.2.1]").unwrap();
        assert_eq!(a.as_sip().unwrap().host, b.as_sip().unwrap().host);
        assert!(Uri::parse("sip:2001:db8::10").is_err());
    }

    #[test]
    fn escapes_and_bad_chars() {
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(
            u.as_sip().unwrap().user_decoded().unwrap(),
            "sips:user@example.com"
        );
        assert!(Uri::parse("sip:us er@example.com").is_err());
        assert!(Uri::parse("sip:user%4@example.com").is_err());
        assert!(Uri::parse("sip:user@exa mple.com").is_err());
        assert!(Uri::parse("sip:user@example.com:99999").is_err());
    }

    #[test]
    fn other_schemes() {
        assert!(matches!(
            Uri::parse("tel:+1-201-555-0123").unwrap(),
            Uri::Tel(_)
        ));
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002").unwrap(),
            Uri::Other { .. }
        ));
        assert!(Uri::parse("nocolon").is_err());
        assert!(Uri::parse("1sip:x").is_err());
    }

    #[test]
    fn display_round_trip() {
        for s in [
            "sip:alice@example.com:5060;transport=udp",
            "sip:[2001:db8::1]:5060",
            "sip:192.0.2.1",
        ] {
            assert_eq!(Uri::parse(s).unwrap().to_string(), s);
        }
    }
}
