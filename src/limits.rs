//! Sans-IO bookkeeping for admission control: token buckets per source IP and the
//! authentication lockout. Both take the time as an argument and hold bounded maps.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

/// Forgets the least recently touched entries of `map` until it holds fewer than `cap`.
fn make_room<K: Eq + Hash + Clone, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    touched: impl Fn(&V) -> Duration,
) {
    if map.len() < cap {
        return;
    }
    let mut ages: Vec<(Duration, K)> = map.iter().map(|(k, v)| (touched(v), k.clone())).collect();
    // Drop the oldest eighth at once: one sort per cap/8 insertions, not per insertion.
    let n = (cap / 8).max(1).min(ages.len());
    ages.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
    for (_, k) in ages.into_iter().take(n) {
        map.remove(&k);
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Duration,
}

/// Token buckets keyed by source IP: `rate` per second sustained, `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    cap: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `rate` 0 disables the limit.
    pub fn new(rate: f64, burst: f64, cap: usize) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            cap,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `ip` at `now`; false when its bucket is empty.
    pub fn allow(&mut self, ip: IpAddr, now: Duration) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        if !self.buckets.contains_key(&ip) {
            make_room(&mut self.buckets, self.cap, |b| b.at);
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_sub(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets that have refilled completely (they behave like absent ones).
    pub fn expire(&mut self, now: Duration) {
        if self.rate <= 0.0 {
            return;
        }
        let full = Duration::from_secs_f64(self.burst / self.rate);
        self.buckets.retain(|_, b| now.saturating_sub(b.at) < full);
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[derive(Debug, Clone, Default)]
struct Failures {
    /// Start of the current counting window and the failures in it.
    since: Duration,
    count: u32,
    locked_until: Option<Duration>,
    touched: Duration,
}

impl Failures {
    fn locked(&self, now: Duration) -> bool {
        self.locked_until.is_some_and(|u| now < u)
    }
}

/// What the lockout says of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lockout {
    Open,
    /// Refused: this source (or account) failed too often recently.
    Source,
    User,
}

/// Counts failed digest authentications per source IP and per account; N failures within
/// the window lock that source (or account) out for the lockout time.
#[derive(Debug)]
pub struct AuthGuard {
    max_source: u32,
    max_user: u32,
    window: Duration,
    lockout: Duration,
    cap: usize,
    sources: HashMap<IpAddr, Failures>,
    users: HashMap<String, Failures>,
}

impl AuthGuard {
    pub fn new(cfg: &crate::config::LimitsConfig) -> AuthGuard {
        AuthGuard {
            max_source: cfg.auth_max_failures,
            max_user: cfg.auth_user_max_failures,
            window: Duration::from_secs(cfg.auth_window_secs),
            lockout: Duration::from_secs(cfg.auth_lockout_secs),
            cap: cfg.max_tracked_sources,
            sources: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// Whether a request from `ip` for `user` may try to authenticate now.
    pub fn check(&self, ip: IpAddr, user: Option<&str>, now: Duration) -> Lockout {
        if self.sources.get(&ip).is_some_and(|f| f.locked(now)) {
            return Lockout::Source;
        }
        if user
            .and_then(|u| self.users.get(u))
            .is_some_and(|f| f.locked(now))
        {
            return Lockout::User;
        }
        Lockout::Open
    }

    /// Records a failure; returns what it locked now (if this failure was the Nth).
    pub fn failed(&mut self, ip: IpAddr, user: Option<&str>, now: Duration) -> Lockout {
        let (window, lockout) = (self.window, self.lockout);
        let bump = |f: &mut Failures, max: u32| -> bool {
            if now.saturating_sub(f.since) > window || f.count == 0 {
                f.since = now;
                f.count = 0;
            }
            f.count += 1;
            f.touched = now;
            if f.count >= max && !f.locked(now) {
                f.locked_until = Some(now + lockout);
                f.count = 0;
                return true;
            }
            false
        };
        if !self.sources.contains_key(&ip) {
            make_room(&mut self.sources, self.cap, |f| f.touched);
        }
        let source_locked = bump(self.sources.entry(ip).or_default(), self.max_source);
        let mut user_locked = false;
        if let Some(u) = user {
            // Only names of real accounts are counted (the caller passes None otherwise),
            // so an attacker cannot fill this map with invented names.
            if !self.users.contains_key(u) {
                make_room(&mut self.users, self.cap, |f| f.touched);
            }
            user_locked = bump(self.users.entry(u.to_string()).or_default(), self.max_user);
        }
        match (source_locked, user_locked) {
            (true, _) => Lockout::Source,
            (_, true) => Lockout::User,
            _ => Lockout::Open,
        }
    }

    /// Forgets entries with no failure in the window and no lock in force.
    pub fn expire(&mut self, now: Duration) {
        let window = self.window;
        let keep = |f: &mut Failures| f.locked(now) || now.saturating_sub(f.touched) <= window;
        self.sources.retain(|_, f| keep(f));
        self.users.retain(|_, f| keep(f));
    }

    pub fn tracked(&self) -> usize {
        self.sources.len() + self.users.len()
    }

    pub fn lockout_secs(&self) -> u64 {
        self.lockout.as_secs()
    }
}

/// Admission control for new calls and registrations: per-source rates, the number of
/// calls in progress (and of calls to the bot).
#[derive(Debug)]
pub struct Admission {
    invites: RateLimiter,
    registers: RateLimiter,
    /// Inbound calls by their SIP Call-ID: whether each is the bot's (uses speech workers).
    active: HashMap<String, bool>,
    ai_calls: usize,
    max_calls: usize,
    max_ai_calls: usize,
    refused: u64,
}

impl Admission {
    pub fn new(l: &crate::config::LimitsConfig) -> Admission {
        Admission {
            invites: RateLimiter::new(l.invites_per_sec, l.invite_burst, l.max_tracked_sources),
            registers: RateLimiter::new(
                l.registers_per_sec,
                l.register_burst,
                l.max_tracked_sources,
            ),
            active: HashMap::new(),
            ai_calls: 0,
            max_calls: l.max_calls,
            max_ai_calls: l.ai_calls(),
            refused: 0,
        }
    }

    /// A REGISTER from `ip`: Err names the limit it is over.
    pub fn register(&mut self, ip: IpAddr, now: Duration) -> Result<(), &'static str> {
        if self.registers.allow(ip, now) {
            Ok(())
        } else {
            Err("REGISTER rate from this source")
        }
    }

    /// A new INVITE from `ip` (`rate_exempt`: from a trunk that carries many callers).
    pub fn invite(
        &mut self,
        ip: IpAddr,
        now: Duration,
        rate_exempt: bool,
    ) -> Result<(), &'static str> {
        if !rate_exempt && !self.invites.allow(ip, now) {
            return Err("INVITE rate from this source");
        }
        if self.active.len() >= self.max_calls {
            return Err("limits.max_calls reached");
        }
        Ok(())
    }

    /// Whether another call to the bot fits.
    pub fn bot_call(&self) -> Result<(), &'static str> {
        if self.ai_calls >= self.max_ai_calls {
            return Err("limits.max_ai_calls reached");
        }
        Ok(())
    }

    pub fn started(&mut self, sip_call_id: &str, to_bot: bool) {
        if self
            .active
            .insert(sip_call_id.to_string(), to_bot)
            .is_none()
        {
            self.ai_calls += usize::from(to_bot);
        }
    }

    /// A call's SIP Call-ID (or one of its legs') is gone.
    pub fn ended(&mut self, sip_call_id: &str) {
        if let Some(ai) = self.active.remove(sip_call_id) {
            self.ai_calls -= usize::from(ai);
        }
    }

    /// Counts a refusal; returns how many came before it (for sparse logging).
    pub fn refused(&mut self) -> u64 {
        self.refused += 1;
        self.refused - 1
    }

    pub fn expire(&mut self, now: Duration) {
        self.invites.expire(now);
        self.registers.expire(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let mut r = RateLimiter::new(10.0, 20.0, 100);
        let allowed = (0..100).filter(|_| r.allow(ip, secs(1.0))).count();
        assert_eq!(allowed, 20, "the burst");
        assert!(r.allow(other, secs(1.0)), "another source is unaffected");
        assert!(!r.allow(ip, secs(1.05)));
        assert!(r.allow(ip, secs(1.15)), "refilled at 10/s");
        r.expire(secs(100.0));
        assert_eq!(r.tracked(), 0);
        let mut off = RateLimiter::new(0.0, 0.0, 100);
        assert!((0..1000).all(|_| off.allow(ip, secs(0.0))));
    }

    #[test]
    fn bucket_map_is_bounded() {
        let mut r = RateLimiter::new(1.0, 1.0, 64);
        for i in 0..10_000u32 {
            r.allow(IpAddr::from(i.to_be_bytes()), secs(f64::from(i) / 1000.0));
            assert!(r.tracked() <= 64);
        }
    }

    #[test]
    fn admission_counts_calls_and_bot_calls() {
        let cfg = crate::config::LimitsConfig {
            max_calls: 3,
            max_ai_calls: 2,
            invites_per_sec: 1.0,
            invite_burst: 2.0,
            ..Default::default()
        };
        let mut a = Admission::new(&cfg);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(a.invite(ip, secs(0.0), false).is_ok());
        assert!(a.invite(ip, secs(0.0), false).is_ok());
        assert_eq!(
            a.invite(ip, secs(0.0), false),
            Err("INVITE rate from this source")
        );
        assert!(a.invite(ip, secs(0.0), true).is_ok(), "a trunk is exempt");
        a.started("c1", true);
        a.started("c2", true);
        assert!(a.bot_call().is_err());
        a.started("c3", false);
        assert_eq!(
            a.invite(ip, secs(10.0), true),
            Err("limits.max_calls reached")
        );
        a.ended("c1");
        a.ended("c1");
        assert!(a.bot_call().is_ok());
        assert!(a.invite(ip, secs(10.0), true).is_ok());
    }

    #[test]
    fn lockout_by_source_and_by_user() {
        let cfg = crate::config::LimitsConfig {
            auth_max_failures: 3,
            auth_user_max_failures: 5,
            auth_window_secs: 60,
            auth_lockout_secs: 300,
            ..Default::default()
        };
        let mut g = AuthGuard::new(&cfg);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(g.failed(a, Some("agent1"), secs(0.0)), Lockout::Open);
        assert_eq!(g.failed(a, Some("agent1"), secs(1.0)), Lockout::Open);
        assert_eq!(g.failed(a, Some("agent1"), secs(2.0)), Lockout::Source);
        assert_eq!(g.check(a, None, secs(3.0)), Lockout::Source);
        assert_eq!(g.check(a, None, secs(303.0)), Lockout::Open, "lock expires");
        // Failures spread over other sources lock the account.
        for i in 0..2u8 {
            g.failed(IpAddr::from([198, 51, 100, i]), Some("agent1"), secs(4.0));
        }
        assert_eq!(
            g.check("203.0.113.9".parse().unwrap(), Some("agent1"), secs(5.0)),
            Lockout::User
        );
        assert_eq!(
            g.check("203.0.113.9".parse().unwrap(), Some("agent2"), secs(5.0)),
            Lockout::Open
        );
        // Failures outside the window do not add up.
        let b: IpAddr = "192.0.2.7".parse().unwrap();
        for t in [0.0, 100.0, 200.0, 300.0] {
            assert_eq!(g.failed(b, None, secs(t)), Lockout::Open);
        }
        g.expire(secs(10_000.0));
        assert_eq!(g.tracked(), 0);
    }
}
