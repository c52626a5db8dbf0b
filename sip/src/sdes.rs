//! SDES key exchange for SRTP (RFC 4568): `a=crypto` lines, the suites we take, and the
//! policy (off, optional, required) that decides what an offer may be answered with.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Master key (16 bytes) and master salt (14 bytes) of AES_CM_128 suites, concatenated.
pub const KEY_LEN: usize = 30;
pub type MasterKey = [u8; KEY_LEN];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn parse(s: &str) -> Option<Suite> {
        match s {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }
}

/// Whether a leg's media is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP; an SRTP-only offer is refused.
    Off,
    /// SRTP when the peer offers it (RTP/SAVP, or RTP/AVP with `a=crypto`), else plain RTP;
    /// our offers are RTP/AVP with `a=crypto` ("best effort").
    #[default]
    Optional,
    /// SRTP or nothing: plain offers are refused (488); our offers are RTP/SAVP.
    Required,
}

impl SrtpPolicy {
    pub fn parse(s: &str) -> Option<SrtpPolicy> {
        match s {
            "off" => Some(SrtpPolicy::Off),
            "optional" => Some(SrtpPolicy::Optional),
            "required" => Some(SrtpPolicy::Required),
            _ => None,
        }
    }
}

/// One `a=crypto` line: tag, suite and the master key (without lifetime or MKI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: Suite,
    pub key: MasterKey,
}

impl Crypto {
    /// Parses the value of `a=crypto:` (`1 AES_CM_128_HMAC_SHA1_80 inline:KEY[|2^31][|1:1]`).
    /// Suites we do not implement, session parameters, several keys or an MKI: None.
    pub fn parse(v: &str) -> Option<Crypto> {
        let mut it = v.split_whitespace();
        let tag: u32 = it.next()?.parse().ok()?;
        if tag > 999_999_999 {
            return None;
        }
        let suite = Suite::parse(it.next()?)?;
        let params = it.next()?;
        if it.next().is_some() || params.contains(';') {
            return None; // session parameters (UNENCRYPTED_SRTP...) or several keys
        }
        let inline = params.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let b64 = parts.next()?;
        // A lifetime is fine; an MKI ("1:4") we do not implement.
        if parts.any(|p| p.contains(':')) {
            return None;
        }
        if b64.len() > 64 {
            return None;
        }
        let bytes = STANDARD.decode(b64).ok()?;
        let key: MasterKey = bytes.try_into().ok()?;
        Some(Crypto { tag, suite, key })
    }

    /// The value for `a=crypto:`.
    pub fn attribute(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            STANDARD.encode(self.key)
        )
    }
}

/// The keys of a negotiated SRTP stream: ours encrypts what we send, theirs decrypts what
/// we receive.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: Suite,
    pub local: MasterKey,
    pub remote: MasterKey,
}

impl std::fmt::Debug for SrtpKeys {
    // Keys never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SrtpKeys({})", self.suite.name())
    }
}

/// Whether an `m=` proto is SRTP (RTP/SAVP, RTP/SAVPF).
pub fn is_secure_proto(proto: &str) -> bool {
    proto == "RTP/SAVP" || proto == "RTP/SAVPF"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_lines() {
        // RFC 4568 §4 example key.
        let c = Crypto::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
        );
        assert!(c.is_none(), "an MKI is refused");
        let c = Crypto::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20",
        )
        .unwrap();
        assert_eq!((c.tag, c.suite), (1, Suite::AesCm128HmacSha1_80));
        let again = Crypto::parse(&c.attribute()).unwrap();
        assert_eq!(again, c);
        for bad in [
            "",
            "1",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:short",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP",
            "1 AES_CM_128_HMAC_SHA1_80 inline:é",
        ] {
            assert!(Crypto::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            format!(
                "{:?}",
                SrtpKeys {
                    suite: Suite::AesCm128HmacSha1_80,
                    local: [7; 30],
                    remote: [9; 30]
                }
            ),
            "SrtpKeys(AES_CM_128_HMAC_SHA1_80)"
        );
    }
}
