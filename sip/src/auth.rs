//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 2617 MD5, RFC 8760 SHA-256).
//!
//! Server side: stateless nonces (timestamp + keyed hash) with expiry reported as
//! `stale=true`; client side: answering a challenge.

use crate::error::{bad, SyntaxError};
pub use crate::nonce::{NonceCheck, NonceCounts, NonceKeeper};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
    pub fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }
    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// HA1 = H(username:realm:password).
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hash(&format!("{user}:{realm}:{password}"))
}

/// Parsed `Authorization` / `WWW-Authenticate` digest parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestParams {
    pub params: Vec<(String, String)>,
}

impl DigestParams {
    /// Parses `Digest k=v, k="v", ...`. Other schemes are an error.
    pub fn parse(value: &str) -> Result<DigestParams, SyntaxError> {
        let v = value.trim();
        let (scheme, rest) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return bad(format!("unsupported authorization scheme {scheme:?}"));
        }
        let mut params = Vec::new();
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() {
            while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            let ks = i;
            while i < b.len() && b[i] != b'=' && b[i] != b',' {
                i += 1;
            }
            let key = rest[ks..i].trim().to_ascii_lowercase();
            if i >= b.len() || b[i] != b'=' {
                return bad(format!("digest parameter without value: {key}"));
            }
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let val = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut out = String::new();
                loop {
                    if i >= b.len() {
                        return bad("unterminated quoted digest parameter");
                    }
                    match b[i] {
                        // quoted-pair (RFC 3261 §25.1): the next *character*, which may
                        // be multi-byte; `i` must stay on a character boundary.
                        b'\\' if i + 1 < b.len() => {
                            let ch = rest[i + 1..].chars().next().unwrap_or('?');
                            out.push(ch);
                            i += 1 + ch.len_utf8();
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => {
                            let ch = rest[i..].chars().next().unwrap_or('?');
                            out.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out
            } else {
                let vs = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                rest[vs..i].trim().to_string()
            };
            if key.is_empty() {
                return bad("empty digest parameter name");
            }
            params.push((key, val));
        }
        Ok(DigestParams { params })
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// A challenge to send in `WWW-Authenticate` / `Proxy-Authenticate`.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    pub stale: bool,
}

impl Challenge {
    pub fn header_value(&self) -> String {
        format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"{}",
            self.realm,
            self.nonce,
            self.algorithm.name(),
            if self.stale { ", stale=true" } else { "" }
        )
    }
}

/// Outcome of checking an Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok {
        username: String,
        /// The nonce and nonce count the credentials were computed with (`nc` is `None`
        /// without `qop`): the caller tracks them so a replay is refused.
        nonce: String,
        nc: Option<u32>,
    },
    /// Credentials missing, for another realm, or wrong: challenge again.
    Challenge { stale: bool },
    /// Unparseable credentials: 400.
    Malformed(String),
}

/// Whether the digest `uri` names the request's Request-URI (RFC 2617 §3.2.2.5: a server
/// must check it, or credentials sniffed for one request serve for another). Equal as text,
/// or as SIP URIs with the same scheme, user, host and port.
pub fn uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    match (
        crate::Uri::parse(digest_uri),
        crate::Uri::parse(request_uri),
    ) {
        (Ok(crate::Uri::Sip(a)), Ok(crate::Uri::Sip(b))) => {
            a.scheme == b.scheme
                && a.user == b.user
                && a.host.to_string().eq_ignore_ascii_case(&b.host.to_string())
                && a.port.unwrap_or(5060) == b.port.unwrap_or(5060)
        }
        _ => false,
    }
}

/// Verifies digest credentials for a request with this method and Request-URI.
/// `lookup_ha1(username, algorithm)` returns the stored HA1.
pub fn verify(
    authorization: Option<&str>,
    method: &str,
    request_uri: &str,
    realm: &str,
    nonces: &NonceKeeper,
    now_secs: u64,
    lookup_ha1: impl Fn(&str, Algorithm) -> Option<String>,
) -> Verdict {
    let Some(value) = authorization else {
        return Verdict::Challenge { stale: false };
    };
    let p = match DigestParams::parse(value) {
        Ok(p) => p,
        // An unknown scheme (RFC 4475 regaut01) is answered with a fresh challenge.
        Err(_)
            if !value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("digest") =>
        {
            return Verdict::Challenge { stale: false }
        }
        Err(e) => return Verdict::Malformed(e.to_string()),
    };
    let (Some(user), Some(nonce), Some(uri), Some(response)) = (
        p.get("username"),
        p.get("nonce"),
        p.get("uri"),
        p.get("response"),
    ) else {
        return Verdict::Malformed(
            "digest credentials lack username, nonce, uri or response".into(),
        );
    };
    if p.get("realm") != Some(realm) {
        return Verdict::Challenge { stale: false };
    }
    if !uri_matches(uri, request_uri) {
        return Verdict::Malformed("digest uri does not match the Request-URI".into());
    }
    let alg = match p.get("algorithm") {
        None => Algorithm::Md5,
        Some(a) => match Algorithm::parse(a) {
            Some(a) => a,
            None => return Verdict::Challenge { stale: false },
        },
    };
    let nonce_state = nonces.check(nonce, now_secs);
    if nonce_state == NonceCheck::Invalid {
        return Verdict::Challenge { stale: false };
    }
    let Some(ha1) = lookup_ha1(user, alg) else {
        return Verdict::Challenge { stale: false };
    };
    let ha2 = alg.hash(&format!("{method}:{uri}"));
    let mut count = None;
    let expected = match p.get("qop") {
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            let (Some(nc), Some(cnonce)) = (p.get("nc"), p.get("cnonce")) else {
                return Verdict::Malformed("qop=auth without nc/cnonce".into());
            };
            match u32::from_str_radix(nc, 16) {
                Ok(n) if nc.len() == 8 => count = Some(n),
                _ => return Verdict::Malformed("nc must be 8 hex digits".into()),
            }
            alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
        }
        Some(other) => return Verdict::Malformed(format!("unsupported qop {other}")),
        None => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
    };
    if !constant_time_eq(
        expected.as_bytes(),
        response.to_ascii_lowercase().as_bytes(),
    ) {
        return Verdict::Challenge { stale: false };
    }
    if nonce_state == NonceCheck::Stale {
        return Verdict::Challenge { stale: true };
    }
    Verdict::Ok {
        username: user.to_string(),
        nonce: nonce.to_string(),
        nc: count,
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Client side: builds the Authorization value answering `challenge` (a WWW-Authenticate value).
pub fn respond(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, SyntaxError> {
    let c = DigestParams::parse(challenge)?;
    let realm = c.get("realm").unwrap_or("");
    let nonce = c
        .get("nonce")
        .ok_or_else(|| SyntaxError::new("challenge without nonce"))?;
    let alg = c
        .get("algorithm")
        .map(|a| {
            Algorithm::parse(a)
                .ok_or_else(|| SyntaxError::new(format!("unsupported algorithm {a}")))
        })
        .transpose()?
        .unwrap_or(Algorithm::Md5);
    let h1 = ha1(alg, user, realm, password);
    let h2 = alg.hash(&format!("{method}:{uri}"));
    let qop_auth = c
        .get("qop")
        .map(|q| q.split(',').any(|x| x.trim() == "auth"))
        .unwrap_or(false);
    let mut out = format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm={}", alg.name());
    if qop_auth {
        let nc = format!("{nc:08x}");
        let r = alg.hash(&format!("{h1}:{nonce}:{nc}:{cnonce}:auth:{h2}"));
        let _ = write!(
            out,
            ", response=\"{r}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\""
        );
    } else {
        let r = alg.hash(&format!("{h1}:{nonce}:{h2}"));
        let _ = write!(out, ", response=\"{r}\"");
    }
    if let Some(o) = c.get("opaque") {
        let _ = write!(out, ", opaque=\"{o}\"");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_vector() {
        // RFC 2617 §3.5 example (HTTP, but the same arithmetic).
        let h1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let h2 = Algorithm::Md5.hash("GET:/dir/index.html");
        let r = Algorithm::Md5.hash(&format!(
            "{h1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{h2}"
        ));
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn round_trip_both_algorithms_and_stale() {
        let keeper = NonceKeeper::new(b"secret", 300);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let ch = Challenge {
                realm: "voxdesk".into(),
                nonce: keeper.issue(1000),
                algorithm: alg,
                stale: false,
            };
            let auth = respond(
                &ch.header_value(),
                "REGISTER",
                "sip:voxdesk",
                "agent1",
                "pw",
                "abc",
                1,
            )
            .unwrap();
            let lookup =
                |u: &str, a: Algorithm| (u == "agent1").then(|| ha1(a, "agent1", "voxdesk", "pw"));
            assert!(matches!(
                verify(Some(&auth), "REGISTER", "sip:voxdesk", "voxdesk", &keeper, 1010, lookup),
                Verdict::Ok { username, nc: Some(1), .. } if username == "agent1"
            ));
            // The same credentials for another Request-URI are refused.
            assert!(matches!(
                verify(
                    Some(&auth),
                    "REGISTER",
                    "sip:elsewhere",
                    "voxdesk",
                    &keeper,
                    1010,
                    lookup
                ),
                Verdict::Malformed(_)
            ));
            assert_eq!(
                verify(
                    Some(&auth),
                    "REGISTER",
                    "sip:voxdesk",
                    "voxdesk",
                    &keeper,
                    2000,
                    lookup
                ),
                Verdict::Challenge { stale: true }
            );
            let wrong = respond(
                &ch.header_value(),
                "REGISTER",
                "sip:voxdesk",
                "agent1",
                "nope",
                "abc",
                1,
            )
            .unwrap();
            assert_eq!(
                verify(
                    Some(&wrong),
                    "REGISTER",
                    "sip:voxdesk",
                    "voxdesk",
                    &keeper,
                    1010,
                    lookup
                ),
                Verdict::Challenge { stale: false }
            );
        }
        assert!(matches!(
            verify(
                Some("Digest username=\"x\""),
                "REGISTER",
                "sip:voxdesk",
                "voxdesk",
                &keeper,
                0,
                |_, _| None
            ),
            Verdict::Malformed(_)
        ));
        assert_eq!(
            verify(
                Some("NoOneKnowsThisScheme opaque-data=here"),
                "REGISTER",
                "sip:voxdesk",
                "voxdesk",
                &keeper,
                0,
                |_, _| None
            ),
            Verdict::Challenge { stale: false }
        );
        assert_eq!(keeper.check("forged.0000", 0), NonceCheck::Invalid);
    }

    #[test]
    fn quoted_pair_before_multibyte_character() {
        // A backslash before a multi-byte character once sliced inside it and panicked.
        let p = DigestParams::parse(
            "Digest username=\"\\\u{e9}\", realm=\"voxdesk\", nonce=\"abc\", uri=\"sip:*21@127.0.0.1\", response=\"00\"",
        )
        .unwrap();
        assert_eq!(p.get("username"), Some("\u{e9}"));
        for tail in ["\\\u{4e2d}\"", "\\\u{1f600}x\"", "\\", "\\\"", "\u{e9}\\"] {
            let _ = DigestParams::parse(&format!("Digest username=\"{tail}"));
        }
    }
}
