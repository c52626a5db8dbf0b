//! Offer/answer (RFC 3264): our codecs and media, the answer to a peer's offer, our own
//! offer, and what a peer's answer to it agreed.

use super::*;
use crate::sdes::{is_secure_proto, Crypto, MasterKey, SrtpKeys, SrtpPolicy, Suite};

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
