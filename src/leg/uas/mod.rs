//! The caller's SIP leg (we are the UAS of their INVITE), sans-IO: the offer and answer,
//! 180 and 200, the 2xx retransmissions until the ACK (RFC 3261 §13.3.1.4), CANCEL, BYE in
//! both directions, re-INVITE/UPDATE (hold, resume, session refresh), INFO digits, the
//! session timer (RFC 4028), the call's maximum length and a clean shutdown.
//!
//! Time is a [`Duration`] since the call began, on whatever clock the driver keeps; the
//! leg never reads one. How a driver runs it:
//! ```text
//! let mut leg = UasLeg::new(now, invite, key, tag, settings);   // may reject (422)
//! leg.take_offer(local_media);                                  // may reject (400, 488)
//! start media with leg.media_params(), then leg.ring(now)       // 180
//! loop { leg.handle(now, input) / leg.on_timer(now) / leg.answer(now) / leg.hangup(..);
//!        while let Some(o) = leg.poll_output() { execute o } }  // until leg.state() == Done
//! ```

mod in_dialog;
mod offer;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::VecDeque;
use std::time::Duration;
use voxdesk_sip::dialog::{Dialog, SessionTimerAction, SessionTimerState};
use voxdesk_sip::sdp::{LocalMedia, Negotiated, SessionDescription};
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::{Message, Method};

/// RFC 3261 timer values for the 2xx retransmissions.
pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
/// How long we wait for the answer to our BYE before the leg is over anyway.
pub const BYE_WAIT: Duration = Duration::from_secs(5);

/// What the leg needs to know of the deployment (from the config and the flow).
#[derive(Debug, Clone)]
pub struct Settings {
    /// RFC 4028: the smallest session interval we accept, and the one we ask for.
    pub min_se: u32,
    pub session_secs: u32,
    /// Answer by itself this long after ringing; None: the driver answers (a call to an
    /// agent's extension is answered when the agent answers).
    pub auto_answer: Option<Duration>,
    /// The call is ended whatever it is doing after this long (`limits.max_call_secs`).
    pub max_call: Option<Duration>,
    /// Our `Server` header, our `Contact` for this flow, and the start of our `Via` for it
    /// (`SIP/2.0/UDP host:port`; the leg adds a branch and `rport`).
    pub server: String,
    pub contact: String,
    pub via: String,
    pub allow: String,
    pub supported: String,
}

/// Inputs from the transaction layer (already matched to this leg).
#[derive(Debug)]
pub enum Input {
    Request {
        key: TxKey,
        msg: Message,
    },
    Ack(Message),
    Response {
        key: TxKey,
        msg: Message,
    },
    /// A transaction of this leg timed out.
    Timeout {
        key: TxKey,
    },
    /// The caller cancelled the INVITE whose server transaction is `invite_key`.
    Cancel {
        invite_key: TxKey,
    },
    /// The server is stopping.
    Shutdown,
}

/// What the driver must do.
pub type Output = super::Output<Event>;

/// What happened to the leg, for the rest of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Our 200 went out: the call is answered with this codec.
    Answered { codec: &'static str },
    /// The caller's ACK arrived.
    Confirmed,
    /// A key from an INFO (application/dtmf-relay).
    Digit(char),
    /// The leg is going away (rejected, cancelled, hung up by either side): tear down
    /// whatever else the call holds. Sent once.
    Ending { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The INVITE is being answered (100/180 sent or about to be).
    Ringing,
    /// Our 200 is out; waiting for the ACK.
    WaitAck,
    Confirmed,
    /// Our BYE is out; waiting for its answer.
    Ending,
    Done,
}

struct Pending2xx {
    key: TxKey,
    msg: Message,
    cseq: u32,
    next_at: Duration,
    interval: Duration,
    give_up_at: Duration,
}

pub struct UasLeg {
    settings: Settings,
    invite_key: TxKey,
    invite: Message,
    local_tag: String,
    state: State,
    /// When we answer by ourselves (None: the driver answers).
    answer_at: Option<Duration>,
    max_end: Option<Duration>,
    bye_deadline: Option<Duration>,
    dialog: Option<Dialog>,
    local: Option<LocalMedia>,
    answer_sdp: Option<SessionDescription>,
    negotiated: Option<Negotiated>,
    /// The packetisation of the initial offer (for the first media parameters).
    offer_ptime: u32,
    pending_2xx: Option<Pending2xx>,
    session_timer: Option<SessionTimerState>,
    end_reason: Option<String>,
    ending_sent: bool,
    branches: u32,
    out: VecDeque<Output>,
}

impl UasLeg {
    /// A new INVITE at `now`: checks its session timer (422 when too small). `local_tag`
    /// is our To tag (random, from the driver).
    pub fn new(
        now: Duration,
        invite: Message,
        key: TxKey,
        local_tag: String,
        settings: Settings,
    ) -> UasLeg {
        let max_end = settings.max_call.map(|m| now + m);
        let mut leg = UasLeg {
            settings,
            invite_key: key,
            invite,
            local_tag,
            state: State::Ringing,
            answer_at: None,
            max_end,
            bye_deadline: None,
            dialog: None,
            local: None,
            answer_sdp: None,
            negotiated: None,
            offer_ptime: 20,
            pending_2xx: None,
            session_timer: None,
            end_reason: None,
            ending_sent: false,
            branches: 0,
            out: VecDeque::new(),
        };
        leg.check_session_timer(now);
        leg
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The caller's INVITE (for its From, Request-URI, headers).
    pub fn invite(&self) -> &Message {
        &self.invite
    }

    /// The established dialog, once we answered.
    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Why the leg ended (or is ending); the first reason given wins.
    pub fn end_reason(&self) -> Option<&str> {
        self.end_reason.as_deref()
    }

    /// Records why the call ends if no reason was given yet (the driver's reasons: an
    /// agent hung up, a feature code).
    pub fn set_end_reason(&mut self, reason: &str) {
        self.end_reason.get_or_insert_with(|| reason.to_string());
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest time [`on_timer`](Self::on_timer) has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut d: Option<Duration> = None;
        let mut at = |t: Duration| d = Some(d.map_or(t, |d| d.min(t)));
        if self.state == State::Ringing {
            if let Some(a) = self.answer_at {
                at(a);
            }
        }
        if let Some(p) = &self.pending_2xx {
            at(p.next_at.min(p.give_up_at));
        }
        if let (Some(st), State::Confirmed) = (&self.session_timer, self.state) {
            at(st.deadline());
        }
        if let Some(b) = self.bye_deadline {
            at(b);
        }
        if let (Some(m), false) = (self.max_end, self.is_over()) {
            at(m);
        }
        d
    }

    /// The leg is over: no timer of it runs any more.
    fn set_done(&mut self) {
        self.state = State::Done;
        self.pending_2xx = None;
        self.bye_deadline = None;
        self.answer_at = None;
        self.max_end = None;
    }

    pub(super) fn is_over(&self) -> bool {
        matches!(self.state, State::Ending | State::Done)
    }

    pub fn on_timer(&mut self, now: Duration) {
        if self.max_end.is_some_and(|m| now >= m) && !self.is_over() {
            // No call holds ports and workers for ever.
            self.max_end = None;
            if self.state == State::Ringing {
                self.reject(503, "Service Unavailable", "max-duration", &[]);
            } else {
                self.hangup(now, "max-duration");
            }
        }
        if self.state == State::Ringing && self.answer_at.is_some_and(|a| now >= a) {
            self.answer(now);
        }
        if let Some(p) = self.pending_2xx.as_mut() {
            if now >= p.give_up_at {
                self.pending_2xx = None;
                if self.state == State::WaitAck {
                    self.hangup(now, "no-ack");
                }
            } else if now >= p.next_at {
                p.interval = (p.interval * 2).min(T2);
                p.next_at = now + p.interval;
                let (key, msg) = (p.key.clone(), p.msg.clone());
                self.out.push_back(Output::Respond { key, msg });
            }
        }
        let action = match self.session_timer.as_mut() {
            Some(st) if self.state == State::Confirmed => st.on_timer(now),
            _ => None,
        };
        match action {
            Some(SessionTimerAction::Expired) => self.hangup(now, "session-expired"),
            Some(SessionTimerAction::Refresh) => self.refresh_session(),
            None => {}
        }
        if self.bye_deadline.is_some_and(|b| now >= b) {
            self.bye_deadline = None;
            self.set_done();
        }
    }

    pub fn handle(&mut self, now: Duration, input: Input) {
        match input {
            Input::Cancel { invite_key } => {
                if invite_key == self.invite_key && self.state == State::Ringing {
                    self.reject(487, "Request Terminated", "caller-cancel", &[]);
                }
            }
            Input::Shutdown => match self.state {
                State::Ringing => self.reject(
                    503,
                    "Service Unavailable",
                    "server-shutdown",
                    &[("Retry-After", "30".into())],
                ),
                State::WaitAck | State::Confirmed => self.hangup(now, "server-shutdown"),
                State::Ending | State::Done => self.set_done(),
            },
            Input::Ack(msg) => self.on_ack(now, msg),
            Input::Request { key, msg } => self.on_request(now, key, msg),
            Input::Response { msg, .. } => self.on_response(now, msg),
            Input::Timeout { key } => {
                if self.state == State::Ending {
                    self.set_done();
                } else if key.server && !self.is_over() {
                    self.hangup(now, "transaction-timeout");
                }
            }
        }
    }

    /// Sends BYE and waits a little for its answer (480 to an INVITE not answered yet).
    pub fn hangup(&mut self, now: Duration, reason: &str) {
        if self.is_over() {
            return;
        }
        if self.state == State::Ringing {
            // Not answered yet: every INVITE gets its final response.
            return self.reject(480, "Temporarily Unavailable", reason, &[]);
        }
        self.set_end_reason(reason);
        self.pending_2xx = None;
        let via = self.next_via();
        let Some(d) = self.dialog.as_mut() else {
            self.set_done();
            self.ending();
            return;
        };
        let bye = d.request(Method::Bye, &via);
        self.out.push_back(Output::Send(bye));
        self.state = State::Ending;
        self.bye_deadline = Some(now + BYE_WAIT);
        self.ending();
    }

    /// A final error response to the INVITE (before it was answered): the leg is over.
    pub fn reject(&mut self, code: u16, reason: &str, end: &str, extra: &[(&str, String)]) {
        if self.state != State::Ringing {
            return;
        }
        let mut r = self.response(code, reason);
        for (n, v) in extra {
            r.push_header(n, v.clone());
        }
        self.out.push_back(Output::Respond {
            key: self.invite_key.clone(),
            msg: r,
        });
        self.set_end_reason(end);
        self.set_done();
        self.ending();
    }

    /// 503 with Retry-After, for a call we cannot take (no ports, socket errors).
    pub fn unavailable(&mut self, end: &str) {
        self.reject(
            503,
            "Service Unavailable",
            end,
            &[("Retry-After", "5".into())],
        )
    }

    fn ending(&mut self) {
        if !self.ending_sent {
            self.ending_sent = true;
            let reason = self.end_reason.clone().unwrap_or_else(|| "normal".into());
            self.out.push_back(Output::Event(Event::Ending { reason }));
        }
    }

    fn on_response(&mut self, now: Duration, msg: Message) {
        let code = msg.status().unwrap_or(0);
        let method = msg.cseq().map(|c| c.method).unwrap_or_default();
        if method == "BYE" && code >= 200 {
            if self.state == State::Ending {
                self.set_done();
            }
        } else if method == "UPDATE" && code >= 300 {
            self.hangup(now, "session-refresh-failed");
        }
    }

    /// We are the refresher: an UPDATE (the timer fires halfway through each interval).
    fn refresh_session(&mut self) {
        let Some(st) = self.session_timer else {
            return;
        };
        let via = self.next_via();
        let Some(d) = self.dialog.as_mut() else {
            return;
        };
        let mut upd = d.request(Method::Update, &via);
        upd.push_header(
            "Session-Expires",
            format!("{};refresher=uas", st.timer.interval_secs),
        );
        upd.push_header("Supported", self.settings.supported.clone());
        self.out.push_back(Output::Send(upd));
    }

    /// A `Via` for a new request of ours: our sent-by and a branch unique to this leg's
    /// tag and count (RFC 3261 §8.1.1.7).
    fn next_via(&mut self) -> String {
        self.branches += 1;
        super::via(&self.settings.via, &self.local_tag, self.branches)
    }

    /// A response to the INVITE with our tag and Server header.
    fn response(&self, code: u16, reason: &str) -> Message {
        let mut r = self.invite.response(code, reason, Some(&self.local_tag));
        r.push_header("Server", self.settings.server.clone());
        r
    }

    /// A response to an in-dialog request (their tags stand) with our Server header.
    fn reply(&self, msg: &Message, code: u16) -> Message {
        let mut r = msg.response(code, voxdesk_sip::reason_phrase(code), None);
        r.push_header("Server", self.settings.server.clone());
        r
    }

    fn respond(&mut self, key: &TxKey, msg: Message) {
        self.out.push_back(Output::Respond {
            key: key.clone(),
            msg,
        });
    }

    /// Our 2xx to an INVITE goes out again until its ACK (T1, doubling to T2, for 64*T1).
    fn retransmit_until_ack(&mut self, now: Duration, key: TxKey, cseq: u32, msg: Message) {
        self.pending_2xx = Some(Pending2xx {
            key,
            msg,
            cseq,
            next_at: now + T1,
            interval: T1,
            give_up_at: now + 64 * T1,
        });
    }
}
