//! SDP (RFC 4566) parsing and serialization; the offer/answer side (RFC 3264) is in
//! `negotiate`.

mod negotiate;
pub use negotiate::{accept_answer, answer, offer, Codec, LocalMedia, Negotiated};

use std::fmt::Write as _;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Syntax(String),
    #[error("no common audio codec")]
    NoCommonCodec,
    #[error("offer has no audio stream")]
    NoAudio,
    /// The media policy and the offer disagree on encryption.
    #[error("{0}")]
    Srtp(&'static str),
}

fn syn<T>(s: impl Into<String>) -> Result<T, SdpError> {
    Err(SdpError::Syntax(s.into()))
}

/// `c=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// "IP4" or "IP6".
    pub addr_type: String,
    pub address: String,
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    fn from_attr(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
    /// The direction an answer takes for this offered direction.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    /// Other lines of the section (b=, i=, k=) kept verbatim.
    pub other: Vec<String>,
    pub attributes: Vec<(String, Option<String>)>,
}

impl Media {
    pub fn attr(&self, name: &str) -> Option<Option<&str>> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    pub fn direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(|(n, v)| {
            if v.is_none() {
                Direction::from_attr(n)
            } else {
                None
            }
        })
    }

    /// rtpmap for a payload type: (encoding name, clock rate, channels).
    pub fn rtpmap(&self, pt: &str) -> Option<(String, u32, u8)> {
        self.rtpmaps()
            .find(|(p, _)| *p == pt)
            .map(|(_, (n, r, c))| (n.to_string(), r, c))
    }

    /// Every rtpmap of the section: (payload type, (encoding name, clock rate, channels)).
    pub fn rtpmaps(&self) -> impl Iterator<Item = (&str, (&str, u32, u8))> {
        self.attributes.iter().filter_map(|(n, v)| {
            if n != "rtpmap" {
                return None;
            }
            let (p, rest) = v.as_deref()?.split_once(' ')?;
            let mut it = rest.trim().split('/');
            let name = it.next()?;
            let rate = it.next()?.parse().ok()?;
            let ch = it.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            Some((p, (name, rate, ch)))
        })
    }
}

/// Most media sections, formats per `m=` line and attributes per section an offer may carry
/// (a browser's offer has a few dozen of each): more is refused as malformed, so the
/// answerer's work stays bounded by these and linear in the offer's size.
pub const MAX_MEDIA: usize = 32;
pub const MAX_FORMATS: usize = 128;
pub const MAX_ATTRIBUTES: usize = 1024;

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: String,
    pub session_name: String,
    pub connection: Option<Connection>,
    /// Session-level lines other than v/o/s/c/t/a/m, verbatim (i, u, e, p, b, z, k, r).
    pub other: Vec<String>,
    pub times: Vec<String>,
    pub attributes: Vec<(String, Option<String>)>,
    pub media: Vec<Media>,
}

fn parse_connection(v: &str) -> Result<Connection, SdpError> {
    let p: Vec<&str> = v.split_whitespace().collect();
    if p.len() != 3 || p[0] != "IN" || !(p[1] == "IP4" || p[1] == "IP6") {
        return syn(format!("bad c= line {v:?}"));
    }
    let addr = p[2].split('/').next().unwrap_or("");
    let valid = match p[1] {
        "IP4" => addr.parse::<std::net::Ipv4Addr>().is_ok() || is_fqdn(addr),
        _ => addr.parse::<std::net::Ipv6Addr>().is_ok() || is_fqdn(addr),
    };
    if !valid {
        return syn(format!("bad connection address {addr:?}"));
    }
    Ok(Connection {
        addr_type: p[1].to_string(),
        address: p[2].to_string(),
    })
}

fn is_fqdn(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn parse_attr(v: &str) -> (String, Option<String>) {
    match v.split_once(':') {
        Some((n, val)) => (n.to_string(), Some(val.to_string())),
        None => (v.to_string(), None),
    }
}

impl SessionDescription {
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Syntax("not UTF-8".into()))?;
        let mut lines = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty());
        if lines.next() != Some("v=0") {
            return syn("first line must be v=0");
        }
        let mut sd = SessionDescription {
            origin: String::new(),
            session_name: String::new(),
            connection: None,
            other: Vec::new(),
            times: Vec::new(),
            attributes: Vec::new(),
            media: Vec::new(),
        };
        for line in lines {
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return syn(format!("bad line {line:?}"));
            }
            let (t, v) = (b[0], &line[2..]);
            match (t, sd.media.last_mut()) {
                (b'm', _) => {
                    let p: Vec<&str> = v.split_whitespace().collect();
                    if p.len() < 4 {
                        return syn(format!("bad m= line {v:?}"));
                    }
                    let port_s = p[1].split('/').next().unwrap_or("");
                    let port = port_s
                        .parse::<u16>()
                        .map_err(|_| SdpError::Syntax(format!("bad port {port_s:?}")))?;
                    if sd.media.len() == MAX_MEDIA {
                        return syn(format!("more than {MAX_MEDIA} media sections"));
                    }
                    if p.len() - 3 > MAX_FORMATS {
                        return syn(format!("more than {MAX_FORMATS} formats in an m= line"));
                    }
                    sd.media.push(Media {
                        kind: p[0].to_string(),
                        port,
                        proto: p[2].to_string(),
                        formats: p[3..].iter().map(|s| s.to_string()).collect(),
                        connection: None,
                        other: Vec::new(),
                        attributes: Vec::new(),
                    });
                }
                (b'o', None) => {
                    if v.split_whitespace().count() != 6 {
                        return syn(format!("bad o= line {v:?}"));
                    }
                    sd.origin = v.to_string();
                }
                (b's', None) => sd.session_name = v.to_string(),
                (b't', None) => sd.times.push(v.to_string()),
                (b'c', None) => sd.connection = Some(parse_connection(v)?),
                (b'c', Some(m)) => m.connection = Some(parse_connection(v)?),
                (b'a', None) if sd.attributes.len() < MAX_ATTRIBUTES => {
                    sd.attributes.push(parse_attr(v))
                }
                (b'a', Some(m)) if m.attributes.len() < MAX_ATTRIBUTES => {
                    m.attributes.push(parse_attr(v))
                }
                (b'a', _) => return syn(format!("more than {MAX_ATTRIBUTES} attributes")),
                (_, None) => sd.other.push(line.to_string()),
                (_, Some(m)) => m.other.push(line.to_string()),
            }
        }
        if sd.origin.is_empty() {
            return syn("missing o= line");
        }
        Ok(sd)
    }

    /// The connection address that applies to a media section.
    pub fn media_connection<'a>(&'a self, m: &'a Media) -> Option<&'a Connection> {
        m.connection.as_ref().or(self.connection.as_ref())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256);
        s.push_str("v=0\r\n");
        let _ = write!(
            s,
            "o={}\r\ns={}\r\n",
            self.origin,
            if self.session_name.is_empty() {
                "-"
            } else {
                &self.session_name
            }
        );
        for o in self.other.iter().filter(|l| !l.starts_with('b')) {
            let _ = write!(s, "{o}\r\n");
        }
        if let Some(c) = &self.connection {
            let _ = write!(s, "c=IN {} {}\r\n", c.addr_type, c.address);
        }
        for o in self.other.iter().filter(|l| l.starts_with('b')) {
            let _ = write!(s, "{o}\r\n");
        }
        if self.times.is_empty() {
            s.push_str("t=0 0\r\n");
        }
        for t in &self.times {
            let _ = write!(s, "t={t}\r\n");
        }
        write_attrs(&mut s, &self.attributes);
        for m in &self.media {
            let _ = write!(
                s,
                "m={} {} {} {}\r\n",
                m.kind,
                m.port,
                m.proto,
                m.formats.join(" ")
            );
            if let Some(c) = &m.connection {
                let _ = write!(s, "c=IN {} {}\r\n", c.addr_type, c.address);
            }
            for o in &m.other {
                let _ = write!(s, "{o}\r\n");
            }
            write_attrs(&mut s, &m.attributes);
        }
        s.into_bytes()
    }
}

fn write_attrs(s: &mut String, attrs: &[(String, Option<String>)]) {
    for (n, v) in attrs {
        match v {
            Some(v) => {
                let _ = write!(s, "a={n}:{v}\r\n");
            }
            None => {
                let _ = write!(s, "a={n}\r\n");
            }
        }
    }
}
