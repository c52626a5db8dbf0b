//! Digest nonces: issued statelessly (a timestamp, a serial and a keyed hash), checked for
//! age, and their nonce counts remembered so that credentials are accepted once.

use crate::auth::{constant_time_eq, hex};
use sha2::{Digest as _, Sha256};

/// Issues and checks stateless nonces: `<unix-seconds hex>-<serial hex>.<keyed hash>`. The
/// serial makes every challenge's nonce unique, so nonce counts (replay protection) are
/// never shared by two clients challenged in the same second.
pub struct NonceKeeper {
    secret: Vec<u8>,
    /// Lifetime of a nonce in seconds.
    pub max_age: u64,
    serial: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Ours but expired: re-challenge with `stale=true`.
    Stale,
    /// Not one of ours.
    Invalid,
}

impl NonceKeeper {
    pub fn new(secret: &[u8], max_age: u64) -> Self {
        NonceKeeper {
            secret: secret.to_vec(),
            max_age,
            serial: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn mac(&self, ts: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.secret);
        h.update(ts.as_bytes());
        hex(&h.finalize()[..16])
    }

    pub fn issue(&self, now_secs: u64) -> String {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{now_secs:x}-{n:x}");
        format!("{id}.{}", self.mac(&id))
    }

    pub fn check(&self, nonce: &str, now_secs: u64) -> NonceCheck {
        let Some((id, mac)) = nonce.split_once('.') else {
            return NonceCheck::Invalid;
        };
        if !constant_time_eq(self.mac(id).as_bytes(), mac.as_bytes()) {
            return NonceCheck::Invalid;
        }
        let ts = id.split_once('-').map(|(t, _)| t).unwrap_or(id);
        match u64::from_str_radix(ts, 16) {
            Ok(t) if now_secs.saturating_sub(t) <= self.max_age && t <= now_secs + 5 => {
                NonceCheck::Valid
            }
            Ok(_) => NonceCheck::Stale,
            Err(_) => NonceCheck::Invalid,
        }
    }
}

/// Remembers the highest nonce count used with each live nonce, so that credentials are
/// accepted once (RFC 2617 §3.2.2: a repeated `nc` is a replay). Credentials without `qop`
/// carry no count: their nonce is then single-use. Bounded: at most `cap` nonces, and a
/// nonce older than the lifetime is forgotten (the nonce check refuses it anyway).
pub struct NonceCounts {
    seen: std::collections::HashMap<String, (u32, u64)>,
    cap: usize,
}

impl NonceCounts {
    pub fn new(cap: usize) -> NonceCounts {
        NonceCounts {
            seen: std::collections::HashMap::new(),
            cap,
        }
    }

    /// Records a use of `nonce` with count `nc` at `now_secs`; false if it is a replay (a
    /// count not above the last one seen, or a second use of a count-less nonce).
    pub fn accept(&mut self, nonce: &str, nc: Option<u32>, now_secs: u64, max_age: u64) -> bool {
        let n = nc.unwrap_or(0);
        if let Some((last, _)) = self.seen.get(nonce) {
            if nc.is_none() || n <= *last {
                return false;
            }
        }
        if self.seen.len() >= self.cap && !self.seen.contains_key(nonce) {
            self.seen
                .retain(|_, (_, at)| now_secs.saturating_sub(*at) <= max_age);
            if self.seen.len() >= self.cap {
                // Still full of live nonces: drop the oldest (its next use is challenged).
                if let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                {
                    self.seen.remove(&oldest);
                }
            }
        }
        let at = self.seen.get(nonce).map(|(_, at)| *at).unwrap_or(now_secs);
        self.seen.insert(nonce.to_string(), (n, at));
        true
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_counts_refuse_replays_and_stay_bounded() {
        let mut c = NonceCounts::new(3);
        assert!(c.accept("n1", Some(1), 0, 300));
        assert!(!c.accept("n1", Some(1), 1, 300), "same nc replayed");
        assert!(c.accept("n1", Some(2), 1, 300));
        assert!(c.accept("n2", None, 1, 300));
        assert!(
            !c.accept("n2", None, 2, 300),
            "a count-less nonce is single-use"
        );
        for i in 0..100 {
            c.accept(&format!("x{i}"), Some(1), 10 + i, 300);
        }
        assert!(c.len() <= 3);
    }
}
