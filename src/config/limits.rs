//! `[limits]`: what one source, one call and the whole server may take (admission control,
//! rate limits, TCP bounds, authentication lockout). Defaults are sized for a 2-core server.

use super::{invalid, ConfigError};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Concurrent calls in all (bot, queued and bridged); over it a new INVITE gets 503.
    pub max_calls: usize,
    /// Concurrent calls to the bot (they use the speech workers); 0: 8 per CPU core.
    pub max_ai_calls: usize,
    /// Longest call in seconds; then voxdesk hangs up ("max-duration"). 0: no limit.
    pub max_call_secs: u64,
    /// New INVITEs per second from one source IP (sustained), and the burst allowed.
    /// 0 turns the limit off (a trusted trunk on a private network).
    pub invites_per_sec: f64,
    pub invite_burst: f64,
    /// REGISTERs per second from one source IP, and the burst allowed. 0: off.
    pub registers_per_sec: f64,
    pub register_burst: f64,
    /// Source IPs whose rates are tracked at once (the oldest are forgotten beyond it).
    pub max_tracked_sources: usize,
    /// SIP transactions in progress at once (each holds its request until its timers end,
    /// up to 32 s); a new request beyond it is answered 503 without one.
    pub max_transactions: usize,
    /// Seconds the 503 of a refused request asks the sender to wait (`Retry-After`).
    pub retry_after_secs: u32,
    /// Largest SIP message on a stream (header and body); larger gets 513 and the
    /// connection is closed. (A UDP datagram is at most 65,535 bytes anyway.)
    pub max_message_bytes: usize,
    /// TCP connections at once, in all and from one IP; more are closed at accept.
    pub tcp_max_connections: usize,
    pub tcp_max_per_ip: usize,
    /// A TCP connection that sends nothing (not even a CRLF keep-alive) for this long is
    /// closed. Phones keep theirs open with keep-alives or re-registration.
    pub tcp_idle_secs: u64,
    /// Failed digest authentications from one source IP within `auth_window_secs` that
    /// lock that source out for `auth_lockout_secs` (every request answered 403).
    pub auth_max_failures: u32,
    /// The same for one account name, from any source (higher: locking a user out is
    /// itself a denial of service against that agent).
    pub auth_user_max_failures: u32,
    pub auth_window_secs: u64,
    pub auth_lockout_secs: u64,
    /// HTTP API connections at once, in all and from one IP; more are closed at accept.
    pub api_max_connections: usize,
    pub api_max_per_ip: usize,
    /// Seconds an HTTP client has to send a request's head (also the idle limit of a
    /// kept-alive connection), and to have the whole request handled, body included;
    /// past the second it gets 408 and the connection is closed.
    pub api_header_secs: u64,
    pub api_request_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_calls: 500,
            max_ai_calls: 0,
            max_call_secs: 4 * 3600,
            invites_per_sec: 20.0,
            invite_burst: 40.0,
            registers_per_sec: 10.0,
            register_burst: 40.0,
            max_tracked_sources: 10_000,
            max_transactions: 20_000,
            retry_after_secs: 5,
            max_message_bytes: 65_535,
            tcp_max_connections: 1024,
            tcp_max_per_ip: 32,
            tcp_idle_secs: 600,
            auth_max_failures: 5,
            auth_user_max_failures: 20,
            auth_window_secs: 300,
            auth_lockout_secs: 900,
            api_max_connections: 256,
            api_max_per_ip: 64,
            api_header_secs: 10,
            api_request_secs: 30,
        }
    }
}

impl LimitsConfig {
    /// `max_ai_calls` with 0 resolved to 8 per CPU core.
    pub fn ai_calls(&self) -> usize {
        if self.max_ai_calls > 0 {
            self.max_ai_calls
        } else {
            8 * std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_calls == 0 {
            return Err(invalid("limits.max_calls", "must be at least 1"));
        }
        for (key, v) in [
            ("limits.invites_per_sec", self.invites_per_sec),
            ("limits.invite_burst", self.invite_burst),
            ("limits.registers_per_sec", self.registers_per_sec),
            ("limits.register_burst", self.register_burst),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(invalid(key, "must be a number >= 0"));
            }
        }
        if self.invites_per_sec > 0.0 && self.invite_burst < 1.0 {
            return Err(invalid("limits.invite_burst", "must be at least 1"));
        }
        if self.registers_per_sec > 0.0 && self.register_burst < 1.0 {
            return Err(invalid("limits.register_burst", "must be at least 1"));
        }
        if self.max_transactions < 100 {
            return Err(invalid("limits.max_transactions", "must be at least 100"));
        }
        if self.max_tracked_sources < 16 {
            return Err(invalid("limits.max_tracked_sources", "must be at least 16"));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_message_bytes) {
            return Err(invalid(
                "limits.max_message_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if self.tcp_max_connections == 0 || self.tcp_max_per_ip == 0 {
            return Err(invalid(
                "limits.tcp_max_connections",
                "tcp_max_connections and tcp_max_per_ip must be at least 1",
            ));
        }
        if self.tcp_idle_secs < 10 {
            return Err(invalid("limits.tcp_idle_secs", "must be at least 10"));
        }
        if self.auth_max_failures == 0 || self.auth_user_max_failures == 0 {
            return Err(invalid(
                "limits.auth_max_failures",
                "auth_max_failures and auth_user_max_failures must be at least 1",
            ));
        }
        if self.auth_window_secs == 0 {
            return Err(invalid("limits.auth_window_secs", "must be at least 1"));
        }
        if self.api_max_connections == 0 || self.api_max_per_ip == 0 {
            return Err(invalid(
                "limits.api_max_connections",
                "api_max_connections and api_max_per_ip must be at least 1",
            ));
        }
        if self.api_header_secs == 0 || self.api_request_secs == 0 {
            return Err(invalid(
                "limits.api_request_secs",
                "api_header_secs and api_request_secs must be at least 1",
            ));
        }
        Ok(())
    }
}
