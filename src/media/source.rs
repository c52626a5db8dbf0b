//! Whose RTP a leg takes and where it may send (sans-IO): media belongs to the negotiated
//! peer. A leg hears only the IP its SDP names or the IP its SIP signalling came from (a
//! NATed phone sends from the latter), on any port of those; never another IP. It sends
//! freely to the signalling IP or to an IP it has heard from; to any other address (a
//! third party's, named in an attacker's SDP: reflection) only a bounded burst, until RTP
//! from there proves the peer is really there.

use std::net::{IpAddr, SocketAddr};

/// A leg's rule, from `media.rtp_source` and `media.unverified_send_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePolicy {
    /// false: any source (latch the first, another after 500 ms of silence); no send limit.
    pub strict: bool,
    /// Where the leg's SIP signalling comes from (the caller's or the agent's phone).
    pub signalling_ip: Option<IpAddr>,
    /// Packets that may go to an address nobody has vouched for.
    pub unverified_packets: u32,
}

impl SourcePolicy {
    /// Any source, no limit: legs whose peer is not known (tests, benches).
    pub fn open() -> SourcePolicy {
        SourcePolicy {
            strict: false,
            signalling_ip: None,
            unverified_packets: u32::MAX,
        }
    }

    pub fn from_config(m: &crate::config::MediaConfig, signalling_ip: IpAddr) -> SourcePolicy {
        SourcePolicy {
            strict: m.rtp_source != "any",
            signalling_ip: Some(signalling_ip),
            unverified_packets: (m.unverified_send_ms / 20).min(u64::from(u32::MAX)) as u32,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SourceGuard {
    policy: SourcePolicy,
    sdp_ip: Option<IpAddr>,
    /// The IP RTP was last accepted from.
    heard: Option<IpAddr>,
    /// Packets sent so far to unverified addresses (for the whole leg: a re-INVITE does
    /// not buy another burst).
    unverified_sent: u32,
    /// Datagrams refused from foreign sources.
    pub refused: u64,
}

impl SourceGuard {
    pub fn new(policy: SourcePolicy, sdp_remote: Option<SocketAddr>) -> SourceGuard {
        SourceGuard {
            policy,
            sdp_ip: sdp_remote.map(|a| a.ip()),
            heard: None,
            unverified_sent: 0,
            refused: 0,
        }
    }

    /// A new SDP (answer, re-INVITE) names this remote.
    pub fn set_sdp(&mut self, remote: Option<SocketAddr>) {
        let ip = remote.map(|a| a.ip());
        if ip != self.sdp_ip {
            self.sdp_ip = ip;
        }
    }

    /// Whether a datagram from `from` belongs to this leg.
    pub fn belongs(&self, from: SocketAddr) -> bool {
        let ip = from.ip();
        !self.policy.strict || Some(ip) == self.sdp_ip || Some(ip) == self.policy.signalling_ip
    }

    /// Whether RTP from `from` belongs to this leg; records it as heard if so.
    pub fn accept(&mut self, from: SocketAddr) -> bool {
        let ok = self.belongs(from);
        if ok {
            let ip = from.ip();
            self.heard = Some(ip);
        } else {
            self.refused += 1;
        }
        ok
    }

    /// Whether `to` is vouched for: the signalling IP, or an IP we accepted RTP from.
    pub fn trusted(&self, to: SocketAddr) -> bool {
        !self.policy.strict
            || Some(to.ip()) == self.policy.signalling_ip
            || Some(to.ip()) == self.heard
    }

    /// Whether one more packet may go to `to` now (spends the unverified budget).
    pub fn may_send(&mut self, to: SocketAddr) -> bool {
        if self.trusted(to) {
            return true;
        }
        if self.unverified_sent < self.policy.unverified_packets {
            self.unverified_sent += 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn strict(sig: &str, budget: u32) -> SourcePolicy {
        SourcePolicy {
            strict: true,
            signalling_ip: Some(sig.parse().unwrap()),
            unverified_packets: budget,
        }
    }

    #[test]
    fn hears_only_the_sdp_or_signalling_ip() {
        let mut g = SourceGuard::new(strict("192.0.2.1", 50), Some(a("10.0.0.5:4000")));
        assert!(g.accept(a("10.0.0.5:4000")), "the SDP address");
        assert!(g.accept(a("10.0.0.5:4010")), "another port on it");
        assert!(g.accept(a("192.0.2.1:31000")), "the NATed signalling IP");
        assert!(!g.accept(a("198.51.100.7:4000")), "a third IP");
        assert_eq!(g.refused, 1);
        g.set_sdp(Some(a("203.0.113.2:5000")));
        assert!(
            !g.accept(a("10.0.0.5:4000")),
            "the old SDP address after a re-INVITE"
        );
        assert!(g.accept(a("203.0.113.2:5000")));
    }

    #[test]
    fn third_party_gets_a_bounded_burst_until_heard() {
        let sink = a("198.51.100.9:9000");
        let mut g = SourceGuard::new(strict("192.0.2.1", 50), Some(sink));
        let sent = (0..1000).filter(|_| g.may_send(sink)).count();
        assert_eq!(sent, 50);
        assert!(
            g.may_send(a("192.0.2.1:4000")),
            "the signalling IP is always fine"
        );
        // RTP from the SDP address proves the peer is there: sending resumes.
        assert!(g.accept(sink));
        assert!(g.may_send(sink));
        // A re-INVITE elsewhere does not buy another burst.
        let other = a("198.51.100.10:9000");
        g.set_sdp(Some(other));
        assert!(!g.may_send(other));
    }

    #[test]
    fn open_policy_takes_anything() {
        let mut g = SourceGuard::new(SourcePolicy::open(), None);
        assert!(g.accept(a("198.51.100.7:4000")));
        assert!((0..10_000).all(|_| g.may_send(a("203.0.113.1:1"))));
    }
}
