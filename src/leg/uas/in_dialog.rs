//! Requests from the caller inside (or before) the dialog: BYE, re-INVITE/UPDATE (hold,
//! resume, session refresh, renegotiation), INFO digits; REFER and the rest are refused.

use super::{Event, Output, State, UasLeg};
use std::time::Duration;
use voxdesk_sip::dialog::{negotiate_session_timer, SessionTimerAnswer, SessionTimerState};
use voxdesk_sip::sdp::{self, SessionDescription};
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::{Message, Method};

impl UasLeg {
    pub(super) fn on_request(&mut self, now: Duration, key: TxKey, msg: Message) {
        let method = msg
            .method()
            .cloned()
            .unwrap_or(Method::Other(String::new()));
        if self.is_over() {
            // Our BYE is out (or the call is over): a BYE crossing ours is fine, the rest
            // has no call to change.
            let code = if method == Method::Bye { 200 } else { 481 };
            self.respond(&key, self.reply(&msg, code));
            if method == Method::Bye {
                self.bye_deadline = None;
                self.set_done();
            }
            return;
        }
        match self.dialog.as_mut() {
            Some(d) => {
                if !d.matches(&msg) {
                    return self.respond(&key, self.reply(&msg, 481));
                }
                if let Err(code) = d.accept_remote_cseq(&msg) {
                    return self.respond(&key, self.reply(&msg, code));
                }
            }
            None if method == Method::Bye && self.state == State::Ringing => {
                // BYE in an early dialog: it ends the INVITE too.
                self.respond(&key, self.reply(&msg, 200));
                return self.reject(487, "Request Terminated", "caller-bye", &[]);
            }
            None => return self.respond(&key, self.reply(&msg, 481)),
        }
        match method {
            Method::Bye => {
                self.respond(&key, self.reply(&msg, 200));
                self.set_end_reason("caller-bye");
                self.pending_2xx = None;
                self.bye_deadline = None;
                self.set_done();
                self.ending();
            }
            Method::Invite | Method::Update => self.on_modify(now, key, &method, msg),
            Method::Info => {
                // application/dtmf-relay: "Signal=5\r\nDuration=160"
                let body = String::from_utf8_lossy(&msg.body).to_string();
                let digit = body.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("Signal=")
                        .and_then(|s| s.trim().chars().next())
                });
                self.respond(&key, self.reply(&msg, 200));
                if let Some(d) = digit.filter(|d| d.is_ascii_digit() || "*#ABCDabcd".contains(*d)) {
                    self.out.push_back(Output::Event(Event::Digit(d)));
                }
            }
            // The caller's side cannot hand the call on (only an agent can).
            Method::Refer => self.respond(&key, self.reply(&msg, 603)),
            _ => self.respond(&key, self.reply(&msg, 405)),
        }
    }

    /// A re-INVITE or UPDATE: a session refresh, hold/resume, or a new offer.
    fn on_modify(&mut self, now: Duration, key: TxKey, method: &Method, msg: Message) {
        if *method == Method::Invite && self.pending_2xx.is_some() {
            // RFC 3261 §14.2: one INVITE at a time.
            let mut r = self.reply(&msg, 491);
            r.push_header("Retry-After", "1");
            return self.respond(&key, r);
        }
        let mut ok = self.reply(&msg, 200);
        ok.push_header("Contact", self.settings.contact.clone());
        ok.push_header("Allow", self.settings.allow.clone());
        ok.push_header("Supported", self.settings.supported.clone());
        match negotiate_session_timer(&msg, self.settings.min_se, self.settings.session_secs) {
            SessionTimerAnswer::TooSmall { min_se } => {
                let mut r = self.reply(&msg, 422);
                r.push_header("Min-SE", min_se.to_string());
                return self.respond(&key, r);
            }
            SessionTimerAnswer::Use { timer, headers } => {
                for (n, v) in headers {
                    ok.push_header(&n, v);
                }
                match self.session_timer.as_mut() {
                    Some(st) => st.refreshed(timer, now),
                    None => self.session_timer = Some(SessionTimerState::new(timer, now)),
                }
            }
            SessionTimerAnswer::None => {
                if let Some(st) = self.session_timer.as_mut() {
                    st.refreshed(st.timer, now);
                }
            }
        }
        if !msg.body.is_empty() {
            let Some(local) = self.local.as_mut() else {
                return self.respond(&key, self.reply(&msg, 500));
            };
            local.session_version += 1;
            let res = SessionDescription::parse(&msg.body)
                .map_err(|e| (400, e.to_string()))
                .and_then(|o| sdp::answer(&o, local).map_err(|e| (488, e.to_string())));
            match res {
                Ok((ans, neg)) => {
                    self.out.push_back(Output::Media {
                        negotiated: neg.clone(),
                        ptime_ms: neg.ptime_ms,
                    });
                    self.negotiated = Some(neg);
                    ok.push_header("Content-Type", "application/sdp");
                    ok.body = ans.to_bytes();
                    self.answer_sdp = Some(ans);
                }
                Err((code, why)) => {
                    let mut r = self.reply(&msg, code);
                    r.push_header("Warning", format!("399 voxdesk \"{why}\""));
                    return self.respond(&key, r);
                }
            }
        } else if *method == Method::Invite {
            // An offerless re-INVITE: offer our current SDP again.
            if let Some(ans) = &self.answer_sdp {
                ok.push_header("Content-Type", "application/sdp");
                ok.body = ans.to_bytes();
            }
        }
        self.respond(&key, ok.clone());
        if *method == Method::Invite {
            let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
            self.retransmit_until_ack(now, key, cseq, ok);
        }
    }
}
