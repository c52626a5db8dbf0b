//! Requests inside an established dialog: BYE, re-INVITE/UPDATE (hold, resume, session
//! refresh, renegotiation), INFO digits.

use super::{stream_params, Call, Pending2xx, State, T1};
use crate::media::session::MediaCmd;
use crate::shared::{ALLOW, SUPPORTED};
use crate::transport::Flow;
use tokio::time::Instant;
use voxdesk_sip::dialog::{negotiate_session_timer, SessionTimerAnswer, SessionTimerState};
use voxdesk_sip::sdp::{self, SessionDescription};
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::{Message, Method};

impl Call {
    pub(super) async fn on_request(&mut self, key: TxKey, msg: Message, _flow: Flow) {
        let method = msg
            .method()
            .cloned()
            .unwrap_or(Method::Other(String::new()));
        // Requests on the agent leg's dialog.
        if let Some(a) = self.agent.as_ref() {
            if msg.call_id() == Some(a.call_id.as_str()) {
                if method == Method::Refer && a.dialog.as_ref().is_some_and(|d| d.matches(&msg)) {
                    return self.on_agent_refer(key, msg).await;
                }
                return self.on_agent_request(key, msg).await;
            }
        }
        if self.is_supervisor_leg(&msg) {
            return self.on_supervisor_request(key, msg).await;
        }
        if self.is_departed(&msg) {
            return self.on_departed_request(key, msg).await;
        }
        let reply = |code: u16| {
            let mut r = msg.response(code, voxdesk_sip::reason_phrase(code), None);
            r.push_header("Server", self.ctx.shared.server_header.clone());
            r
        };
        if let Some(d) = self.dialog.as_mut() {
            if !d.matches(&msg) {
                return self.ctx.respond(&key, reply(481)).await;
            }
            if let Err(code) = d.accept_remote_cseq(&msg) {
                return self.ctx.respond(&key, reply(code)).await;
            }
        } else if method == Method::Bye {
            // BYE in an early dialog: end the INVITE too.
            self.ctx.respond(&key, reply(200)).await;
            self.cancel_agent().await;
            return self
                .reject(487, "Request Terminated", "caller-bye", &[])
                .await;
        } else {
            return self.ctx.respond(&key, reply(481)).await;
        }
        match method {
            Method::Bye => {
                tracing::info!("caller hung up");
                self.ctx.respond(&key, reply(200)).await;
                self.end_reason.get_or_insert_with(|| "caller-bye".into());
                // An agent leg still ringing is cancelled, an answered one gets BYE.
                self.cancel_agent().await;
                self.state = State::Done;
            }
            Method::Invite | Method::Update => {
                if method == Method::Invite && self.pending_2xx.is_some() {
                    let mut r = reply(491);
                    r.push_header("Retry-After", "1");
                    return self.ctx.respond(&key, r).await;
                }
                let mut ok = reply(200);
                ok.push_header("Contact", self.ctx.shared.contact(&self.flow));
                ok.push_header("Allow", ALLOW);
                ok.push_header("Supported", SUPPORTED);
                match negotiate_session_timer(
                    &msg,
                    self.ctx.shared.cfg.session_timer.min_se,
                    self.ctx.shared.cfg.session_timer.default_secs,
                ) {
                    SessionTimerAnswer::TooSmall { min_se } => {
                        let mut r = reply(422);
                        r.push_header("Min-SE", min_se.to_string());
                        return self.ctx.respond(&key, r).await;
                    }
                    SessionTimerAnswer::Use { timer, headers } => {
                        for (n, v) in headers {
                            ok.push_header(&n, v);
                        }
                        let now = self.clock.elapsed();
                        match self.session_timer.as_mut() {
                            Some(st) => st.refreshed(timer, now),
                            None => self.session_timer = Some(SessionTimerState::new(timer, now)),
                        }
                    }
                    SessionTimerAnswer::None => {
                        let now = self.clock.elapsed();
                        if let Some(st) = self.session_timer.as_mut() {
                            st.refreshed(st.timer, now);
                        }
                    }
                }
                if !msg.body.is_empty() {
                    let Some(local) = self.local.as_mut() else {
                        return self.ctx.respond(&key, reply(500)).await;
                    };
                    local.session_version += 1;
                    let res = SessionDescription::parse(&msg.body)
                        .map_err(|e| (400, e.to_string()))
                        .and_then(|o| sdp::answer(&o, local).map_err(|e| (488, e.to_string())));
                    match res {
                        Ok((ans, neg)) => {
                            tracing::info!(
                                direction = neg.direction.as_str(),
                                "session modified (re-INVITE/UPDATE)"
                            );
                            if let Some(m) = &self.media {
                                let _ = m
                                    .cmd
                                    .send(MediaCmd::Update(stream_params(&neg, neg.ptime_ms)))
                                    .await;
                            }
                            self.negotiated = Some(neg);
                            self.answer_sdp = Some(ans.clone());
                            ok.push_header("Content-Type", "application/sdp");
                            ok.body = ans.to_bytes();
                        }
                        Err((code, why)) => {
                            let mut r = reply(code);
                            r.push_header("Warning", format!("399 voxdesk \"{why}\""));
                            return self.ctx.respond(&key, r).await;
                        }
                    }
                } else if method == Method::Invite {
                    // An offerless re-INVITE: offer our current SDP again.
                    if let Some(ans) = &self.answer_sdp {
                        ok.push_header("Content-Type", "application/sdp");
                        ok.body = ans.to_bytes();
                    }
                }
                self.ctx.respond(&key, ok.clone()).await;
                if method == Method::Invite {
                    let now = Instant::now();
                    self.pending_2xx = Some(Pending2xx {
                        key,
                        cseq: msg.cseq().map(|c| c.seq).unwrap_or(0),
                        msg: ok,
                        next_at: now + T1,
                        interval: T1,
                        give_up_at: now + 64 * T1,
                    });
                }
            }
            Method::Info => {
                // application/dtmf-relay: "Signal=5\r\nDuration=160"
                let body = String::from_utf8_lossy(&msg.body).to_string();
                let digit = body.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("Signal=")
                        .and_then(|s| s.trim().chars().next())
                });
                self.ctx.respond(&key, reply(200)).await;
                if let Some(d) = digit {
                    self.on_digit(d).await;
                }
            }
            // The caller's side cannot hand the call on (only an agent can).
            Method::Refer => self.ctx.respond(&key, reply(603)).await,
            _ => self.ctx.respond(&key, reply(405)).await,
        }
    }
}
