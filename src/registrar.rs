//! The registrar for agent softphones (RFC 3261 §10.3): digest-authenticated REGISTER,
//! bindings with expiry, multiple contacts, un-register, 423 Interval Too Brief.

use crate::config::{AgentAccount, LimitsConfig, RegistrarConfig};
use crate::limits::{AuthGuard, Lockout};
use crate::transport::Flow;
use std::collections::HashMap;
use std::time::Duration;
use voxdesk_sip::auth::{self, Algorithm, Challenge, NonceCounts, NonceKeeper, Verdict};
use voxdesk_sip::header::{param, NameAddr};
use voxdesk_sip::{Message, Uri};

#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    ha1_md5: String,
    ha1_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The Contact URI as registered.
    pub contact: String,
    pub uri: Uri,
    pub expires_at_ms: i64,
    /// The flow the REGISTER arrived on (requests to the agent go back along it).
    pub flow: Flow,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: Option<String>,
}

/// A change the caller persists.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    Set {
        aor: String,
        binding: Box<Binding>,
    },
    Remove {
        aor: String,
        contact: Option<String>,
    },
}

pub struct Registrar {
    realm: String,
    cfg: RegistrarConfig,
    nonces: NonceKeeper,
    accounts: HashMap<String, Account>,
    bindings: HashMap<String, Vec<Binding>>,
    /// Nonce counts seen (a replayed `nc` is refused).
    counts: NonceCounts,
    /// Failed authentications per source and account, and the lockouts they cause.
    guard: AuthGuard,
}

/// Most nonces whose counts are remembered at once.
const MAX_TRACKED_NONCES: usize = 10_000;

/// How an authentication attempt failed, for the log line (fail2ban reads it).
fn log_failure(flow: &Flow, user: Option<&str>, method: &str, reason: &str) {
    let user: String = user.unwrap_or("").chars().take(64).collect();
    tracing::warn!(
        "authentication failed: source={} user={:?} method={} reason={}",
        flow.addr().ip(),
        user,
        method,
        reason
    );
}

/// Wall-clock milliseconds as the lockout's time.
fn at(now_ms: i64) -> Duration {
    Duration::from_millis(now_ms.max(0) as u64)
}

/// RFC 1123 date for a Unix time (the Date header).
pub fn http_date(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        MON[(m - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

impl Registrar {
    pub fn new(
        realm: &str,
        cfg: RegistrarConfig,
        limits: &LimitsConfig,
        agents: &[AgentAccount],
        nonce_secret: &[u8],
    ) -> Registrar {
        let accounts = agents
            .iter()
            .map(|a| {
                let (md5, sha) = match (&a.password, &a.ha1) {
                    (Some(p), _) => (
                        auth::ha1(Algorithm::Md5, &a.username, realm, p),
                        Some(auth::ha1(Algorithm::Sha256, &a.username, realm, p)),
                    ),
                    (None, Some(h)) => (h.to_ascii_lowercase(), None),
                    (None, None) => (String::new(), None),
                };
                (
                    a.username.clone(),
                    Account {
                        username: a.username.clone(),
                        display_name: a.display_name.clone(),
                        skills: a.skills.clone(),
                        languages: a.languages.clone(),
                        ha1_md5: md5,
                        ha1_sha256: sha,
                    },
                )
            })
            .collect();
        Registrar {
            realm: realm.to_string(),
            nonces: NonceKeeper::new(nonce_secret, cfg.nonce_lifetime_secs),
            cfg,
            accounts,
            bindings: HashMap::new(),
            counts: NonceCounts::new(MAX_TRACKED_NONCES),
            guard: AuthGuard::new(limits),
        }
    }

    pub fn account(&self, username: &str) -> Option<&Account> {
        self.accounts.get(username)
    }

    /// Restores a binding loaded from the store at start-up.
    pub fn restore(&mut self, aor: &str, b: Binding) {
        if self.accounts.contains_key(aor) {
            self.bindings.entry(aor.to_string()).or_default().push(b);
        }
    }

    /// Live bindings of an agent, newest first.
    pub fn lookup(&self, username: &str, now_ms: i64) -> Vec<Binding> {
        let mut v: Vec<Binding> = self
            .bindings
            .get(username)
            .map(|b| {
                b.iter()
                    .filter(|b| b.expires_at_ms > now_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|b| std::cmp::Reverse(b.expires_at_ms));
        v
    }

    /// Drops expired bindings (returned for the store) and forgotten lockout entries.
    pub fn expire(&mut self, now_ms: i64) -> Vec<StoreOp> {
        self.guard.expire(at(now_ms));
        let mut ops = Vec::new();
        for (aor, list) in self.bindings.iter_mut() {
            list.retain(|b| {
                let live = b.expires_at_ms > now_ms;
                if !live {
                    ops.push(StoreOp::Remove {
                        aor: aor.clone(),
                        contact: Some(b.contact.clone()),
                    });
                }
                live
            });
        }
        ops
    }

    fn challenge(&self, req: &Message, now_ms: i64, stale: bool, to_tag: Option<&str>) -> Message {
        let mut r = req.response(401, "Unauthorized", to_tag);
        let nonce = self.nonces.issue((now_ms / 1000) as u64);
        for alg in self
            .cfg
            .digest_algorithms
            .iter()
            .filter_map(|a| Algorithm::parse(a))
        {
            let c = Challenge {
                realm: self.realm.clone(),
                nonce: nonce.clone(),
                algorithm: alg,
                stale,
            };
            r.push_header("WWW-Authenticate", c.header_value());
        }
        r
    }

    /// Checks the request's `Authorization` digest against the agent accounts.
    fn verify(&self, req: &Message, method: &str, now_ms: i64) -> Verdict {
        let request_uri = req.request_uri().map(|u| u.to_string()).unwrap_or_default();
        auth::verify(
            req.header("Authorization"),
            method,
            &request_uri,
            &self.realm,
            &self.nonces,
            (now_ms / 1000) as u64,
            |u, alg| {
                let a = self.accounts.get(u)?;
                match alg {
                    Algorithm::Md5 => Some(a.ha1_md5.clone()),
                    Algorithm::Sha256 => a.ha1_sha256.clone(),
                }
            },
        )
    }

    /// Digest check of a request other than REGISTER from an agent's softphone (a feature
    /// code): the authenticated account name, or the response to send (401 with a
    /// challenge, 403 for an unknown user or someone else's credentials, 400 if malformed).
    pub fn authorize(
        &mut self,
        req: &Message,
        flow: &Flow,
        now_ms: i64,
        to_tag: &str,
    ) -> Result<String, Box<Message>> {
        let from_user = req
            .from_addr()
            .ok()
            .and_then(|f| f.uri.as_sip().and_then(|u| u.user_decoded()));
        self.authenticate(req, flow, from_user.as_deref(), now_ms, to_tag)
    }

    /// The digest check shared by REGISTER and other requests: the lockout first, then the
    /// credentials, which must be for `user` (the AOR or the From user) and not a replay.
    /// An unknown user and a wrong password get the same 401, so neither reveals which
    /// accounts exist. Every failure with credentials is logged and counted.
    fn authenticate(
        &mut self,
        req: &Message,
        flow: &Flow,
        user: Option<&str>,
        now_ms: i64,
        to_tag: &str,
    ) -> Result<String, Box<Message>> {
        let method = req
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let ip = flow.addr().ip();
        let account = user.filter(|u| self.accounts.contains_key(*u));
        let reply = |code: u16, reason: &str| Box::new(req.response(code, reason, Some(to_tag)));
        match self.guard.check(ip, account, at(now_ms)) {
            Lockout::Open => {}
            scope => {
                tracing::warn!(
                    "authentication refused (locked out): source={ip} user={:?} scope={scope:?}",
                    user.unwrap_or("").chars().take(64).collect::<String>()
                );
                return Err(reply(403, "Forbidden"));
            }
        }
        let has_credentials = req.header("Authorization").is_some();
        let failure = match self.verify(req, &method, now_ms) {
            Verdict::Ok {
                username,
                nonce,
                nc,
            } if Some(username.as_str()) == account => {
                let max_age = self.nonces.max_age;
                if self
                    .counts
                    .accept(&nonce, nc, (now_ms / 1000) as u64, max_age)
                {
                    return Ok(username);
                }
                // A replay (or a client reusing a count-less nonce): a fresh challenge.
                (
                    "replayed nonce count",
                    self.challenge(req, now_ms, true, Some(to_tag)),
                )
            }
            Verdict::Ok { .. } => (
                "credentials for another user",
                *reply(403, "Forbidden (credentials for another user)"),
            ),
            Verdict::Challenge { stale } => {
                let challenge = self.challenge(req, now_ms, stale, Some(to_tag));
                if !has_credentials || stale {
                    return Err(Box::new(challenge));
                }
                ("wrong credentials or unknown user", challenge)
            }
            Verdict::Malformed(why) => {
                log_failure(flow, user, &method, &why);
                let r = reply(400, &format!("Bad Request ({why})"));
                self.count_failure(ip, account, user, now_ms);
                return Err(r);
            }
        };
        log_failure(flow, user, &method, failure.0);
        self.count_failure(ip, account, user, now_ms);
        Err(Box::new(failure.1))
    }

    fn count_failure(
        &mut self,
        ip: std::net::IpAddr,
        account: Option<&str>,
        user: Option<&str>,
        now_ms: i64,
    ) {
        let locked = self.guard.failed(ip, account, at(now_ms));
        if locked != Lockout::Open {
            tracing::warn!(
                "authentication lockout: source={ip} user={:?} scope={locked:?} secs={}",
                user.unwrap_or("").chars().take(64).collect::<String>(),
                self.guard_lockout_secs()
            );
        }
    }

    fn guard_lockout_secs(&self) -> u64 {
        self.guard.lockout_secs()
    }

    /// Handles a validated REGISTER; returns the response and the store changes.
    pub fn handle(
        &mut self,
        req: &Message,
        flow: &Flow,
        now_ms: i64,
        to_tag: &str,
    ) -> (Message, Vec<StoreOp>) {
        let reply = |code: u16, reason: &str| req.response(code, reason, Some(to_tag));
        let to = match req.to_addr() {
            Ok(t) => t,
            Err(_) => return (reply(400, "Bad Request (To)"), vec![]),
        };
        let user = to
            .uri
            .as_sip()
            .and_then(|u| u.user_decoded())
            .unwrap_or_default();
        if let Err(r) = self.authenticate(req, flow, Some(&user), now_ms, to_tag) {
            return (*r, vec![]);
        }
        let call_id = req.call_id().unwrap_or_default().to_string();
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let header_expires: Option<u32> = req.header("Expires").and_then(|e| e.trim().parse().ok());
        let contacts = req.header_values("Contact");
        let mut ops = Vec::new();
        if contacts.contains(&"*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return (
                    reply(
                        400,
                        "Bad Request (Contact: * needs Expires: 0 and no other contacts)",
                    ),
                    vec![],
                );
            }
            self.bindings.remove(&user);
            ops.push(StoreOp::Remove {
                aor: user.clone(),
                contact: None,
            });
        } else {
            let mut parsed = Vec::new();
            for c in contacts {
                let Ok(na) = NameAddr::parse(c) else {
                    return (reply(400, "Bad Request (Contact)"), vec![]);
                };
                let expires = param(&na.params, "expires")
                    .flatten()
                    .and_then(|e| e.parse::<u32>().ok())
                    .or(header_expires)
                    .unwrap_or(self.cfg.default_expires);
                if expires != 0 && expires < self.cfg.min_expires {
                    let mut r = reply(423, "Interval Too Brief");
                    r.push_header("Min-Expires", self.cfg.min_expires.to_string());
                    return (r, vec![]);
                }
                parsed.push((na, expires.min(self.cfg.max_expires)));
            }
            let max_contacts = self.cfg.max_contacts;
            let list = self.bindings.entry(user.clone()).or_default();
            for (na, expires) in parsed {
                let key = na.uri.to_string();
                if let Some(old) = list.iter().find(|b| b.contact == key) {
                    // RFC 3261 §10.3 step 7: an out-of-order REGISTER must not update.
                    if old.call_id == call_id && cseq <= old.cseq {
                        return (
                            reply(500, "Server Internal Error (out-of-order REGISTER)"),
                            vec![],
                        );
                    }
                }
                list.retain(|b| b.contact != key);
                if expires == 0 {
                    ops.push(StoreOp::Remove {
                        aor: user.clone(),
                        contact: Some(key),
                    });
                    continue;
                }
                let b = Binding {
                    contact: key,
                    uri: na.uri.clone(),
                    expires_at_ms: now_ms + expires as i64 * 1000,
                    flow: flow.clone(),
                    call_id: call_id.clone(),
                    cseq,
                    user_agent: req.header("User-Agent").map(str::to_string),
                };
                ops.push(StoreOp::Set {
                    aor: user.clone(),
                    binding: Box::new(b.clone()),
                });
                // Bounded: a new contact beyond the cap replaces the one expiring first.
                while list.len() >= max_contacts {
                    let Some(i) = (0..list.len()).min_by_key(|&i| list[i].expires_at_ms) else {
                        break;
                    };
                    let gone = list.remove(i);
                    tracing::info!(aor = %user, contact = %gone.contact, "too many contacts: replaced the oldest");
                    ops.push(StoreOp::Remove {
                        aor: user.clone(),
                        contact: Some(gone.contact),
                    });
                }
                list.push(b);
            }
        }
        let mut r = reply(200, "OK");
        for b in self.lookup(&user, now_ms) {
            let left = ((b.expires_at_ms - now_ms) / 1000).max(0);
            r.push_header("Contact", format!("<{}>;expires={left}", b.contact));
        }
        r.push_header("Date", http_date(now_ms / 1000));
        (r, ops)
    }
}

#[cfg(test)]
mod tests;
