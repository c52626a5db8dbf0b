//! SRTP and SRTCP for one call leg (RFC 3711), keyed by SDES (`voxdesk_sip::sdes`). The
//! cipher work is the webrtc project's `webrtc-srtp`; this wraps it for hostile input:
//! lengths are checked before it sees a packet, and the per-SSRC state it keeps is bounded.

use std::borrow::Cow;
use std::collections::HashSet;
use voxdesk_sip::sdes::{SrtpKeys, Suite};
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Distinct SSRCs tried on the receive side before its state is reset (an attacker on the
/// peer's address cannot grow it without bound).
const MAX_SSRCS: usize = 16;
/// Packets behind the newest that may still arrive (reordering) and are not replays.
const REPLAY_WINDOW: usize = 128;

pub struct SrtpSession {
    keys: SrtpKeys,
    tx: Context,
    rx: Context,
    rx_ssrcs: HashSet<u32>,
    tag_len: usize,
    /// Packets that failed authentication or replay checks (dropped).
    pub rejected: u64,
}

fn profile(s: Suite) -> ProtectionProfile {
    match s {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    }
}

fn context(key: &[u8; 30], suite: Suite, replay: bool) -> Result<Context, webrtc_srtp::Error> {
    let (k, salt) = key.split_at(16);
    if replay {
        Context::new(
            k,
            salt,
            profile(suite),
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
        )
    } else {
        Context::new(k, salt, profile(suite), None, None)
    }
}

impl SrtpSession {
    pub fn new(keys: &SrtpKeys) -> Result<SrtpSession, webrtc_srtp::Error> {
        Ok(SrtpSession {
            tx: context(&keys.local, keys.suite, false)?,
            rx: context(&keys.remote, keys.suite, true)?,
            keys: keys.clone(),
            rx_ssrcs: HashSet::new(),
            tag_len: match keys.suite {
                Suite::AesCm128HmacSha1_80 => 10,
                Suite::AesCm128HmacSha1_32 => 4,
            },
            rejected: 0,
        })
    }

    /// Encrypts an RTP packet we built (header of 12 bytes, no extensions).
    pub fn protect_rtp(&mut self, pkt: &[u8]) -> Option<bytes::Bytes> {
        if pkt.len() < 12 {
            return None;
        }
        self.tx.encrypt_rtp(pkt).ok()
    }

    pub fn protect_rtcp(&mut self, pkt: &[u8]) -> Option<bytes::Bytes> {
        if pkt.len() < 8 {
            return None;
        }
        self.tx.encrypt_rtcp(pkt).ok()
    }

    fn note_ssrc(&mut self, ssrc: u32) {
        if self.rx_ssrcs.insert(ssrc) && self.rx_ssrcs.len() > MAX_SSRCS {
            // Too many streams: start the receive state afresh (keys unchanged).
            if let Ok(c) = context(&self.keys.remote, self.keys.suite, true) {
                self.rx = c;
            }
            self.rx_ssrcs.clear();
            self.rx_ssrcs.insert(ssrc);
        }
    }

    /// Decrypts and authenticates a received SRTP packet; None (and counted) if it fails.
    pub fn unprotect_rtp(&mut self, pkt: &[u8]) -> Option<bytes::Bytes> {
        // Version 2, a header with its CSRCs, and the tag.
        let csrc = usize::from(pkt.first()? & 0x0f) * 4;
        if pkt.len() < 12 + csrc + self.tag_len || pkt[0] >> 6 != 2 {
            self.rejected += 1;
            return None;
        }
        self.note_ssrc(u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]));
        let out = self.rx.decrypt_rtp(pkt).ok();
        self.rejected += u64::from(out.is_none());
        out
    }

    /// Decrypts and authenticates a received SRTCP packet.
    pub fn unprotect_rtcp(&mut self, pkt: &[u8]) -> Option<bytes::Bytes> {
        // Header and sender SSRC (8), the E flag and index (4), a 10-byte tag (SRTCP
        // always uses the 80-bit tag).
        if pkt.len() < 8 + 4 + 10 || pkt[0] >> 6 != 2 {
            self.rejected += 1;
            return None;
        }
        self.note_ssrc(u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]));
        let out = self.rx.decrypt_rtcp(pkt).ok();
        self.rejected += u64::from(out.is_none());
        out
    }
}

/// A leg's media protection: plain RTP, SRTP, or keys the cipher refused (then nothing is
/// sent or taken: never a fall back to plain RTP).
pub enum LegCrypto {
    Plain,
    Srtp(Box<SrtpSession>),
    Broken,
}

impl LegCrypto {
    pub fn new(keys: Option<&SrtpKeys>) -> LegCrypto {
        let Some(keys) = keys else {
            return LegCrypto::Plain;
        };
        match SrtpSession::new(keys) {
            Ok(s) => {
                tracing::info!(suite = keys.suite.name(), "media encrypted (SRTP)");
                LegCrypto::Srtp(Box::new(s))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot set up SRTP for this leg: its media stops");
                LegCrypto::Broken
            }
        }
    }

    /// A received RTP packet in the clear; None: dropped (failed authentication, a replay).
    pub fn open_rtp<'a>(&mut self, pkt: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match self {
            LegCrypto::Plain => Some(Cow::Borrowed(pkt)),
            LegCrypto::Srtp(s) => {
                let out = s.unprotect_rtp(pkt);
                if out.is_none() && (s.rejected == 1 || s.rejected.is_multiple_of(1000)) {
                    tracing::warn!(
                        total = s.rejected,
                        "SRTP packet failed authentication (or a replay); dropped"
                    );
                }
                out.map(|b| Cow::Owned(b.to_vec()))
            }
            LegCrypto::Broken => None,
        }
    }

    pub fn open_rtcp<'a>(&mut self, pkt: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match self {
            LegCrypto::Plain => Some(Cow::Borrowed(pkt)),
            LegCrypto::Srtp(s) => s.unprotect_rtcp(pkt).map(|b| Cow::Owned(b.to_vec())),
            LegCrypto::Broken => None,
        }
    }

    /// What goes on the wire for an RTP packet we built (None: nothing may go).
    pub fn seal_rtp<'a>(&mut self, pkt: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match self {
            LegCrypto::Plain => Some(Cow::Borrowed(pkt)),
            LegCrypto::Srtp(s) => s.protect_rtp(pkt).map(|b| Cow::Owned(b.to_vec())),
            LegCrypto::Broken => None,
        }
    }

    pub fn seal_rtcp<'a>(&mut self, pkt: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match self {
            LegCrypto::Plain => Some(Cow::Borrowed(pkt)),
            LegCrypto::Srtp(s) => s.protect_rtcp(pkt).map(|b| Cow::Owned(b.to_vec())),
            LegCrypto::Broken => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SrtpSession, SrtpSession) {
        let a = SrtpKeys {
            suite: Suite::AesCm128HmacSha1_80,
            local: [1; 30],
            remote: [2; 30],
        };
        let b = SrtpKeys {
            suite: a.suite,
            local: a.remote,
            remote: a.local,
        };
        (SrtpSession::new(&a).unwrap(), SrtpSession::new(&b).unwrap())
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend(std::iter::repeat_n(0x55u8, 160));
        p
    }

    #[test]
    fn round_trip_replay_and_tampering() {
        let (mut a, mut b) = pair();
        let sealed = a.protect_rtp(&rtp(1)).unwrap();
        assert_eq!(sealed.len(), 12 + 160 + 10);
        assert_ne!(&sealed[12..172], &rtp(1)[12..]);
        assert_eq!(
            b.unprotect_rtp(&sealed).unwrap().as_ref(),
            rtp(1).as_slice()
        );
        assert!(b.unprotect_rtp(&sealed).is_none(), "a replay");
        let mut bad = a.protect_rtp(&rtp(2)).unwrap().to_vec();
        bad[20] ^= 1;
        assert!(b.unprotect_rtp(&bad).is_none(), "tampered");
        // Plain RTP from someone without the key.
        assert!(b.unprotect_rtp(&rtp(3)).is_none());
        assert_eq!(b.rejected, 3);
        // RTCP both ways.
        let sr = [
            0x80u8, 200, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0,
        ];
        let sealed = a.protect_rtcp(&sr).unwrap();
        assert_eq!(b.unprotect_rtcp(&sealed).unwrap().as_ref(), &sr[..]);
    }

    #[test]
    fn hostile_packets_never_panic() {
        let (_, mut b) = pair();
        for len in 0..40 {
            for fill in [0x00u8, 0x80, 0x8f, 0xff] {
                let p = vec![fill; len];
                let _ = b.unprotect_rtp(&p);
                let _ = b.unprotect_rtcp(&p);
            }
        }
        // Many SSRCs: the receive state stays bounded.
        for ssrc in 0..1000u32 {
            let mut p = rtp(1);
            p[8..12].copy_from_slice(&ssrc.to_be_bytes());
            p.extend([0; 10]);
            let _ = b.unprotect_rtp(&p);
            assert!(b.rx_ssrcs.len() <= MAX_SSRCS);
        }
    }
}
