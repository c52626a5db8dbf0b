//! SDP (RFC 4566) parsing/serialization and the answerer side of offer/answer (RFC 3264).

use crate::sdes::{is_secure_proto, Crypto, MasterKey, SrtpKeys, SrtpPolicy, Suite};
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

/// Audio codecs the answerer supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
    fn from_offer(rtpmap: Option<(&str, u32, u8)>, pt: &str) -> Option<Codec> {
        match rtpmap {
            Some((name, 8000, 1)) if name.eq_ignore_ascii_case("PCMU") => Some(Codec::Pcmu),
            Some((name, 8000, 1)) if name.eq_ignore_ascii_case("PCMA") => Some(Codec::Pcma),
            Some(_) => None,
            None => match pt {
                "0" => Some(Codec::Pcmu),
                "8" => Some(Codec::Pcma),
                _ => None,
            },
        }
    }
}

/// What the local side offers in an answer.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    pub address: String,
    pub port: u16,
    /// In order of preference.
    pub codecs: Vec<Codec>,
    pub session_id: u64,
    pub session_version: u64,
    /// Encryption of this leg's media, and our master key if it is encrypted.
    pub srtp: SrtpPolicy,
    pub srtp_key: MasterKey,
}

impl LocalMedia {
    /// A session description from us holding these media sections.
    pub fn session(&self, media: Vec<Media>) -> SessionDescription {
        let addr_type = if self.address.contains(':') {
            "IP6"
        } else {
            "IP4"
        };
        SessionDescription {
            origin: format!(
                "voxdesk {} {} IN {addr_type} {}",
                self.session_id, self.session_version, self.address
            ),
            session_name: "voxdesk".into(),
            connection: Some(Connection {
                addr_type: addr_type.into(),
                address: self.address.clone(),
            }),
            other: Vec::new(),
            times: vec!["0 0".into()],
            attributes: Vec::new(),
            media,
        }
    }
}

/// The negotiated audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// RFC 4733 telephone-event payload type, if both sides support it.
    pub dtmf_pt: Option<u8>,
    pub ptime_ms: u32,
    /// Where to send RTP (None when the offer puts the stream on hold with 0.0.0.0).
    pub remote: Option<(String, u16)>,
    /// Our direction in the answer.
    pub direction: Direction,
    /// SRTP keys when the stream is encrypted (SDES).
    pub srtp: Option<SrtpKeys>,
}

/// The RFC 4733 telephone-event payload type of a section (8 kHz), from its rtpmaps.
fn telephone_event(
    m: &Media,
    maps: &std::collections::HashMap<&str, (&str, u32, u8)>,
) -> Option<u8> {
    m.formats
        .iter()
        .find_map(|pt| match maps.get(pt.as_str()).copied() {
            Some((n, 8000, _)) if n.eq_ignore_ascii_case("telephone-event") => pt.parse().ok(),
            _ => None,
        })
}

/// A section's first `a=crypto` line we implement (RFC 4568: in order of preference).
fn first_crypto(m: &Media) -> Option<Crypto> {
    m.attributes
        .iter()
        .filter(|(n, _)| n == "crypto")
        .find_map(|(_, v)| v.as_deref().and_then(Crypto::parse))
}

/// Answers an offer (RFC 3264 §6): picks the first offered codec we support, mirrors the
/// direction, rejects every other stream with port 0.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    let mut chosen: Option<(usize, Negotiated)> = None;
    let mut refused_srtp = false;
    let mut media = Vec::with_capacity(offer.media.len());
    for (i, m) in offer.media.iter().enumerate() {
        let secure = is_secure_proto(&m.proto);
        // The offer's first crypto line we implement (RFC 4568 §6.1: in preference order).
        let crypto = if local.srtp == SrtpPolicy::Off {
            None
        } else {
            first_crypto(m)
        };
        // Refused: SRTP when it is off, SAVP without a key we can use, plain when required.
        let encryption_ok = !matches!(
            (local.srtp, secure, &crypto),
            (SrtpPolicy::Off, true, _) | (_, true, None) | (SrtpPolicy::Required, false, None)
        );
        if !encryption_ok && m.kind == "audio" && chosen.is_none() {
            refused_srtp = true;
        }
        let is_audio_rtp = m.kind == "audio"
            && m.port != 0
            && encryption_ok
            && (m.proto == "RTP/AVP" || m.proto == "RTP/AVPF" || secure);
        // One pass over the attributes (not one per format: that was quadratic).
        let maps: std::collections::HashMap<&str, (&str, u32, u8)> = if is_audio_rtp {
            m.rtpmaps().collect()
        } else {
            Default::default()
        };
        let pick = if is_audio_rtp && chosen.is_none() {
            m.formats
                .iter()
                .filter_map(|pt| Codec::from_offer(maps.get(pt.as_str()).copied(), pt))
                .find(|c| local.codecs.contains(c))
        } else {
            None
        };
        let Some(codec) = pick else {
            media.push(Media {
                kind: m.kind.clone(),
                port: 0,
                proto: m.proto.clone(),
                formats: m.formats.iter().take(1).cloned().collect(),
                connection: None,
                other: Vec::new(),
                attributes: Vec::new(),
            });
            continue;
        };
        let dtmf_pt = telephone_event(m, &maps);
        let ptime_ms = m
            .attr("ptime")
            .flatten()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .filter(|p| (10..=60).contains(p) && p % 10 == 0)
            .unwrap_or(20);
        let offered_dir = m
            .direction()
            .or_else(|| {
                offer.attributes.iter().find_map(|(n, v)| {
                    if v.is_none() {
                        Direction::from_attr(n)
                    } else {
                        None
                    }
                })
            })
            .unwrap_or(Direction::SendRecv);
        let conn = offer.media_connection(m);
        let hold_addr = conn
            .map(|c| c.address == "0.0.0.0" || c.address == "::")
            .unwrap_or(true);
        let direction = if hold_addr && offered_dir == Direction::SendRecv {
            Direction::RecvOnly
        } else {
            offered_dir.reversed()
        };
        let remote = if hold_addr {
            None
        } else {
            conn.map(|c| {
                (
                    c.address.split('/').next().unwrap_or("").to_string(),
                    m.port,
                )
            })
        };
        let mut formats = vec![codec.payload_type().to_string()];
        let mut attributes = vec![(
            "rtpmap".to_string(),
            Some(format!("{} {}/8000", codec.payload_type(), codec.name())),
        )];
        if let Some(pt) = dtmf_pt {
            formats.push(pt.to_string());
            attributes.push(("rtpmap".into(), Some(format!("{pt} telephone-event/8000"))));
            attributes.push(("fmtp".into(), Some(format!("{pt} 0-16"))));
        }
        attributes.push(("ptime".into(), Some(ptime_ms.to_string())));
        attributes.push((direction.as_str().to_string(), None));
        // Our key, under the tag and suite of the crypto line we took.
        let srtp = crypto.map(|c| {
            let ours = Crypto {
                tag: c.tag,
                suite: c.suite,
                key: local.srtp_key,
            };
            attributes.push(("crypto".into(), Some(ours.attribute())));
            SrtpKeys {
                suite: c.suite,
                local: local.srtp_key,
                remote: c.key,
            }
        });
        media.push(Media {
            kind: "audio".into(),
            port: local.port,
            proto: m.proto.clone(),
            formats,
            connection: None,
            other: Vec::new(),
            attributes,
        });
        chosen = Some((
            i,
            Negotiated {
                codec,
                dtmf_pt,
                ptime_ms,
                remote,
                direction,
                srtp,
            },
        ));
    }
    let Some((_, neg)) = chosen else {
        if refused_srtp {
            return Err(SdpError::Srtp(match local.srtp {
                SrtpPolicy::Off => "encrypted media (SRTP) is not accepted here",
                _ => "encrypted media (SRTP with SDES, AES_CM_128_HMAC_SHA1_80 or _32) is required",
            }));
        }
        return Err(if offer.media.iter().any(|m| m.kind == "audio") {
            SdpError::NoCommonCodec
        } else {
            SdpError::NoAudio
        });
    };
    let sd = local.session(media);
    Ok((sd, neg))
}

/// Builds an offer for a new outgoing call.
pub fn offer(local: &LocalMedia, dtmf_pt: u8) -> SessionDescription {
    let mut formats: Vec<String> = local
        .codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    formats.push(dtmf_pt.to_string());
    let mut attributes: Vec<(String, Option<String>)> = local
        .codecs
        .iter()
        .map(|c| {
            (
                "rtpmap".to_string(),
                Some(format!("{} {}/8000", c.payload_type(), c.name())),
            )
        })
        .collect();
    attributes.push((
        "rtpmap".into(),
        Some(format!("{dtmf_pt} telephone-event/8000")),
    ));
    attributes.push(("fmtp".into(), Some(format!("{dtmf_pt} 0-16"))));
    attributes.push(("ptime".into(), Some("20".into())));
    attributes.push(("sendrecv".into(), None));
    if local.srtp != SrtpPolicy::Off {
        let c = Crypto {
            tag: 1,
            suite: Suite::AesCm128HmacSha1_80,
            key: local.srtp_key,
        };
        attributes.push(("crypto".into(), Some(c.attribute())));
    }
    local.session(vec![Media {
        kind: "audio".into(),
        port: local.port,
        proto: if local.srtp == SrtpPolicy::Required {
            "RTP/SAVP".into()
        } else {
            "RTP/AVP".into()
        },
        formats,
        connection: None,
        other: Vec::new(),
        attributes,
    }])
}

/// Reads the negotiated stream out of an answer to our offer.
pub fn accept_answer(ans: &SessionDescription, local: &LocalMedia) -> Result<Negotiated, SdpError> {
    let m = ans
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let maps: std::collections::HashMap<&str, (&str, u32, u8)> = m.rtpmaps().collect();
    let codec = m
        .formats
        .iter()
        .filter_map(|pt| Codec::from_offer(maps.get(pt.as_str()).copied(), pt))
        .find(|c| local.codecs.contains(c))
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_pt = telephone_event(m, &maps);
    let conn = ans
        .media_connection(m)
        .ok_or_else(|| SdpError::Syntax("no c= line".into()))?;
    let direction = m.direction().unwrap_or(Direction::SendRecv).reversed();
    // Their key for the suite we offered (tag 1), if they took encryption.
    let crypto = first_crypto(m).filter(|c| c.tag == 1 && c.suite == Suite::AesCm128HmacSha1_80);
    let srtp = match (local.srtp, crypto) {
        (SrtpPolicy::Off, _) => None,
        (_, Some(c)) => Some(SrtpKeys {
            suite: c.suite,
            local: local.srtp_key,
            remote: c.key,
        }),
        (SrtpPolicy::Required, None) => return Err(SdpError::Srtp("the answer did not take SRTP")),
        (SrtpPolicy::Optional, None) if is_secure_proto(&m.proto) => {
            return Err(SdpError::Srtp(
                "RTP/SAVP answer without a usable crypto line",
            ))
        }
        (SrtpPolicy::Optional, None) => None,
    };
    Ok(Negotiated {
        codec,
        dtmf_pt,
        srtp,
        ptime_ms: 20,
        remote: Some((
            conn.address.split('/').next().unwrap_or("").to_string(),
            m.port,
        )),
        direction,
    })
}
