//! Dialogs (RFC 3261 §12): identifiers, route sets, sequence numbers, in-dialog requests;
//! and session timer negotiation (RFC 4028).

use crate::error::{bad, SyntaxError};
use crate::header::{param, NameAddr};
use crate::msg::{Message, Method};
use crate::uri::Uri;

/// One side's view of a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our From/To value (without tag).
    pub local: String,
    pub remote: String,
    pub remote_target: Uri,
    /// Route set, in the order used for requests we send.
    pub route_set: Vec<String>,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    pub local_contact: String,
}

fn without_tag(v: &str) -> Result<String, SyntaxError> {
    let mut a = NameAddr::parse(v)?;
    a.params.retain(|(n, _)| n != "tag");
    Ok(a.to_string())
}

impl Dialog {
    /// The dialog a UAS creates when it answers `invite` with a 1xx/2xx carrying `local_tag`.
    pub fn uas(
        invite: &Message,
        local_tag: &str,
        local_contact: &str,
    ) -> Result<Dialog, SyntaxError> {
        let from = invite.from_addr()?;
        let contact = invite
            .contacts()?
            .into_iter()
            .next()
            .ok_or_else(|| SyntaxError::new("INVITE without Contact"))?;
        Ok(Dialog {
            call_id: invite.call_id().unwrap_or_default().to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: from.tag().unwrap_or_default().to_string(),
            local: without_tag(invite.header("To").unwrap_or_default())?,
            remote: without_tag(invite.header("From").unwrap_or_default())?,
            remote_target: contact.uri,
            route_set: invite
                .header_values("Record-Route")
                .into_iter()
                .map(str::to_string)
                .collect(),
            local_seq: 0,
            remote_seq: invite.cseq().ok().map(|c| c.seq),
            local_contact: local_contact.to_string(),
        })
    }

    /// The dialog a UAC creates from its INVITE and a 2xx (or tagged 1xx) response.
    pub fn uac(invite: &Message, response: &Message) -> Result<Dialog, SyntaxError> {
        let to = response.to_addr()?;
        let Some(remote_tag) = to.tag() else {
            return bad("response without To tag");
        };
        let from = invite.from_addr()?;
        let target = response
            .contacts()?
            .into_iter()
            .next()
            .map(|c| c.uri)
            .or_else(|| invite.request_uri().cloned())
            .ok_or_else(|| SyntaxError::new("no remote target"))?;
        let mut route_set: Vec<String> = response
            .header_values("Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id: invite.call_id().unwrap_or_default().to_string(),
            local_tag: from.tag().unwrap_or_default().to_string(),
            remote_tag: remote_tag.to_string(),
            local: without_tag(invite.header("From").unwrap_or_default())?,
            remote: without_tag(response.header("To").unwrap_or_default())?,
            remote_target: target,
            route_set,
            local_seq: invite.cseq().map(|c| c.seq).unwrap_or(1),
            remote_seq: None,
            local_contact: invite.header("Contact").unwrap_or_default().to_string(),
        })
    }

    /// Whether a request or response belongs to this dialog.
    pub fn matches(&self, msg: &Message) -> bool {
        let (ours, theirs) = if msg.is_request() {
            (msg.to_addr(), msg.from_addr())
        } else {
            (msg.from_addr(), msg.to_addr())
        };
        msg.call_id() == Some(self.call_id.as_str())
            && ours
                .ok()
                .and_then(|a| a.tag().map(str::to_string))
                .as_deref()
                == Some(self.local_tag.as_str())
            && theirs
                .ok()
                .and_then(|a| a.tag().map(str::to_string))
                .as_deref()
                == Some(self.remote_tag.as_str())
    }

    /// Checks the CSeq of an in-dialog request (RFC 3261 §12.2.2): lower than the last is 500.
    pub fn accept_remote_cseq(&mut self, msg: &Message) -> Result<(), u16> {
        let seq = msg.cseq().map_err(|_| 400u16)?.seq;
        if msg.method() == Some(&Method::Ack) || msg.method() == Some(&Method::Cancel) {
            return Ok(());
        }
        if let Some(last) = self.remote_seq {
            if seq < last {
                return Err(500);
            }
        }
        self.remote_seq = Some(seq);
        Ok(())
    }

    /// Builds an in-dialog request. The caller adds the Via (with a fresh branch).
    pub fn request(&mut self, method: Method, via: &str) -> Message {
        if method != Method::Ack && method != Method::Cancel {
            self.local_seq += 1;
        }
        let (ruri, routes) = self.target_and_routes();
        let mut m = Message::request(method.clone(), ruri);
        m.push_header("Via", via);
        m.push_header("Max-Forwards", "70");
        m.push_header("From", format!("{};tag={}", self.local, self.local_tag));
        m.push_header("To", format!("{};tag={}", self.remote, self.remote_tag));
        m.push_header("Call-ID", self.call_id.clone());
        m.push_header("CSeq", format!("{} {}", self.local_seq, method));
        for r in routes {
            m.push_header("Route", r);
        }
        if !self.local_contact.is_empty()
            && matches!(
                method,
                Method::Invite
                    | Method::Update
                    | Method::Refer
                    | Method::Subscribe
                    | Method::Notify
            )
        {
            m.push_header("Contact", self.local_contact.clone());
        }
        m
    }

    /// The ACK for a 2xx to our INVITE with CSeq `invite_seq`.
    pub fn ack(&self, invite_seq: u32, via: &str) -> Message {
        let (ruri, routes) = self.target_and_routes();
        let mut m = Message::request(Method::Ack, ruri);
        m.push_header("Via", via);
        m.push_header("Max-Forwards", "70");
        m.push_header("From", format!("{};tag={}", self.local, self.local_tag));
        m.push_header("To", format!("{};tag={}", self.remote, self.remote_tag));
        m.push_header("Call-ID", self.call_id.clone());
        m.push_header("CSeq", format!("{invite_seq} ACK"));
        for r in routes {
            m.push_header("Route", r);
        }
        m
    }

    /// Request-URI and Route headers (RFC 3261 §12.2.1.1, loose and strict routing).
    fn target_and_routes(&self) -> (Uri, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let loose = NameAddr::parse(first)
            .ok()
            .and_then(|a| a.uri.as_sip().map(|u| u.param("lr").is_some()))
            .unwrap_or(true);
        if loose {
            (self.remote_target.clone(), self.route_set.clone())
        } else {
            let uri = NameAddr::parse(first)
                .map(|a| a.uri)
                .unwrap_or_else(|_| self.remote_target.clone());
            let mut routes: Vec<String> = self.route_set[1..].to_vec();
            routes.push(format!("<{}>", self.remote_target));
            (uri, routes)
        }
    }
}

/// Session timer parameters negotiated for a dialog (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval_secs: u32,
    /// True when the remote side (the UAC of the INVITE) refreshes.
    pub remote_refreshes: bool,
}

/// What a running session timer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimerAction {
    /// We are the refresher: send a refresh (UPDATE or re-INVITE) now.
    Refresh,
    /// The remote refresher missed its refresh: end the session with BYE (RFC 4028 §10).
    Expired,
}

/// A negotiated session timer over time, sans-IO (RFC 4028 §10). `now` is any monotonic
/// clock the caller uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerState {
    pub timer: SessionTimer,
    last_refresh: std::time::Duration,
}

impl SessionTimerState {
    pub fn new(timer: SessionTimer, now: std::time::Duration) -> Self {
        SessionTimerState {
            timer,
            last_refresh: now,
        }
    }

    /// A refresh (re-INVITE/UPDATE) succeeded, possibly renegotiating the timer.
    pub fn refreshed(&mut self, timer: SessionTimer, now: std::time::Duration) {
        self.timer = timer;
        self.last_refresh = now;
    }

    /// When [`on_timer`](Self::on_timer) has something to do: half the interval after the
    /// last refresh when we refresh; when the remote refreshes, the interval minus
    /// min(32 s, interval / 3), the RFC's grace before BYE.
    pub fn deadline(&self) -> std::time::Duration {
        let interval = std::time::Duration::from_secs(self.timer.interval_secs as u64);
        if self.timer.remote_refreshes {
            let grace = std::time::Duration::from_secs(32).min(interval / 3);
            self.last_refresh + interval - grace
        } else {
            self.last_refresh + interval / 2
        }
    }

    pub fn on_timer(&mut self, now: std::time::Duration) -> Option<SessionTimerAction> {
        if now < self.deadline() {
            return None;
        }
        if self.timer.remote_refreshes {
            Some(SessionTimerAction::Expired)
        } else {
            self.last_refresh = now;
            Some(SessionTimerAction::Refresh)
        }
    }
}

/// Outcome of the UAS side of session-timer negotiation for an INVITE/UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTimerAnswer {
    /// No session timer in use.
    None,
    /// Use this timer; put these headers in the 2xx.
    Use {
        timer: SessionTimer,
        headers: Vec<(String, String)>,
    },
    /// 422 Session Interval Too Small with this Min-SE.
    TooSmall { min_se: u32 },
}

/// Negotiates a session timer as UAS. `min_se` is our minimum; `default_secs` is what we ask
/// for when the UAC supports timers but proposed no interval.
pub fn negotiate_session_timer(
    req: &Message,
    min_se: u32,
    default_secs: u32,
) -> SessionTimerAnswer {
    let supported = req
        .header_values("Supported")
        .iter()
        .any(|s| s.eq_ignore_ascii_case("timer"));
    let se = req.header("Session-Expires").and_then(|v| {
        let (n, params) = v.split_once(';').unwrap_or((v, ""));
        let n: u32 = n.trim().parse().ok()?;
        let refresher = crate::header::parse_params(params)
            .ok()
            .and_then(|p| param(&p, "refresher").flatten().map(str::to_string));
        Some((n, refresher))
    });
    match se {
        Some((n, _)) if n < min_se => SessionTimerAnswer::TooSmall { min_se },
        Some((n, refresher)) => {
            // The UAC refreshes when it supports timers and did not hand the job to us.
            let remote = supported && refresher.as_deref() != Some("uas");
            let who = if remote { "uac" } else { "uas" };
            let mut headers = vec![(
                "Session-Expires".to_string(),
                format!("{n};refresher={who}"),
            )];
            if supported {
                headers.push(("Require".into(), "timer".into()));
            }
            SessionTimerAnswer::Use {
                timer: SessionTimer {
                    interval_secs: n,
                    remote_refreshes: remote,
                },
                headers,
            }
        }
        None if supported => SessionTimerAnswer::Use {
            timer: SessionTimer {
                interval_secs: default_secs.max(min_se),
                remote_refreshes: true,
            },
            headers: vec![
                (
                    "Session-Expires".into(),
                    format!("{};refresher=uac", default_secs.max(min_se)),
                ),
                ("Require".into(), "timer".into()),
            ],
        },
        None => SessionTimerAnswer::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_datagram;

    fn invite(extra: &str) -> Message {
        let s = format!(
            "INVITE sip:bot@vd SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a1\r\nTo: <sip:bot@vd>\r\nCall-ID: c1\r\nCSeq: 10 INVITE\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nContact: <sip:alice@192.0.2.1:5062>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        parse_datagram(s.as_bytes()).unwrap()
    }

    #[test]
    fn uas_dialog_builds_bye_with_route_set() {
        let inv = invite("");
        let mut d = Dialog::uas(&inv, "b1", "<sip:vd@192.0.2.9>").unwrap();
        let bye = d.request(Method::Bye, "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx");
        assert_eq!(
            bye.request_uri().unwrap().to_string(),
            "sip:alice@192.0.2.1:5062"
        );
        assert_eq!(
            bye.header_values("Route"),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(bye.from_addr().unwrap().tag(), Some("b1"));
        assert_eq!(bye.to_addr().unwrap().tag(), Some("a1"));
        assert_eq!(bye.cseq().unwrap().seq, 1);
        // Remote CSeq must not go backwards.
        let mut lower = invite("");
        lower.set_header("CSeq", "5 BYE");
        lower.start = crate::StartLine::Request {
            method: Method::Bye,
            uri: Uri::parse("sip:bot@vd").unwrap(),
            version: "SIP/2.0".into(),
        };
        assert_eq!(d.accept_remote_cseq(&lower), Err(500));
    }

    #[test]
    fn session_timer_state_on_a_virtual_clock() {
        use std::time::Duration;
        let s = |n| Duration::from_secs(n);
        // Remote refreshes every 600 s: BYE at 600 - 32 = 568 s without a refresh.
        let mut st = SessionTimerState::new(
            SessionTimer {
                interval_secs: 600,
                remote_refreshes: true,
            },
            s(0),
        );
        assert_eq!(st.deadline(), s(568));
        assert_eq!(st.on_timer(s(300)), None);
        st.refreshed(st.timer, s(300));
        assert_eq!(st.on_timer(s(867)), None);
        assert_eq!(st.on_timer(s(868)), Some(SessionTimerAction::Expired));
        // Short interval: the grace is a third of it (90 -> 60 s).
        let st = SessionTimerState::new(
            SessionTimer {
                interval_secs: 90,
                remote_refreshes: true,
            },
            s(0),
        );
        assert_eq!(st.deadline(), s(60));
        // We refresh: at half the interval, again and again.
        let mut st = SessionTimerState::new(
            SessionTimer {
                interval_secs: 1800,
                remote_refreshes: false,
            },
            s(0),
        );
        assert_eq!(st.on_timer(s(899)), None);
        assert_eq!(st.on_timer(s(900)), Some(SessionTimerAction::Refresh));
        assert_eq!(st.deadline(), s(1800));
    }

    #[test]
    fn session_timer_negotiation() {
        assert_eq!(
            negotiate_session_timer(&invite(""), 90, 1800),
            SessionTimerAnswer::None
        );
        assert_eq!(
            negotiate_session_timer(&invite("Session-Expires: 60\r\n"), 90, 1800),
            SessionTimerAnswer::TooSmall { min_se: 90 }
        );
        match negotiate_session_timer(
            &invite("Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n"),
            90,
            1800,
        ) {
            SessionTimerAnswer::Use { timer, headers } => {
                assert_eq!(
                    timer,
                    SessionTimer {
                        interval_secs: 600,
                        remote_refreshes: true
                    }
                );
                assert!(headers.contains(&("Require".into(), "timer".into())));
            }
            other => panic!("{other:?}"),
        }
        match negotiate_session_timer(&invite("Session-Expires: 600\r\n"), 90, 1800) {
            SessionTimerAnswer::Use { timer, .. } => assert!(
                !timer.remote_refreshes,
                "UAC without timer support: we refresh"
            ),
            other => panic!("{other:?}"),
        }
    }
}
