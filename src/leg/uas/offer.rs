//! Taking the call: the session timer and SDP offer checks, 180, the 200 with our answer
//! (or our offer, for an INVITE without one), and the ACK (with a late offer's answer).

use super::{Event, Output, State, UasLeg};
use std::time::Duration;
use voxdesk_sip::dialog::{negotiate_session_timer, Dialog, SessionTimerAnswer, SessionTimerState};
use voxdesk_sip::sdp::{self, LocalMedia, Negotiated, SdpError, SessionDescription};
use voxdesk_sip::Message;

/// The RFC 4733 payload type we offer for telephone-event when we make the offer.
const DTMF_PT: u8 = 101;

impl UasLeg {
    pub(super) fn check_session_timer(&mut self, now: Duration) {
        match negotiate_session_timer(
            &self.invite,
            self.settings.min_se,
            self.settings.session_secs,
        ) {
            SessionTimerAnswer::TooSmall { min_se } => self.reject(
                422,
                "Session Interval Too Small",
                "session-interval-too-small",
                &[("Min-SE", min_se.to_string())],
            ),
            SessionTimerAnswer::Use { timer, .. } => {
                self.session_timer = Some(SessionTimerState::new(timer, now));
            }
            SessionTimerAnswer::None => {}
        }
    }

    /// Answers the INVITE's offer (if it has one) with our media on `local` (its RTP port
    /// is reserved by the driver). A broken offer gets 400, one we cannot meet 488.
    pub fn take_offer(&mut self, local: LocalMedia) {
        if self.state != State::Ringing {
            return;
        }
        let body = match voxdesk_sip::body::sdp_body(&self.invite) {
            Ok(b) => b,
            Err(e) => return self.reject(400, &format!("Bad Request ({e})"), "bad-sdp", &[]),
        };
        let Some(body) = body else {
            // Late offer: we offer in the 200 and take the answer from the ACK.
            self.answer_sdp = Some(sdp::offer(&local, DTMF_PT));
            self.local = Some(local);
            return;
        };
        let offer = match SessionDescription::parse(&body) {
            Ok(o) => o,
            Err(e) => return self.reject(400, &format!("Bad Request ({e})"), "bad-sdp", &[]),
        };
        match sdp::answer(&offer, &local) {
            Ok((ans, neg)) => {
                self.offer_ptime = neg.ptime_ms;
                self.answer_sdp = Some(ans);
                self.negotiated = Some(neg);
                self.local = Some(local);
            }
            Err(e @ (SdpError::NoCommonCodec | SdpError::NoAudio)) => self.reject(
                488,
                "Not Acceptable Here",
                "no-common-codec",
                &[("Warning", format!("305 voxdesk \"{e}\""))],
            ),
            Err(e @ SdpError::Srtp(_)) => self.reject(
                488,
                "Not Acceptable Here",
                "srtp-policy",
                &[("Warning", format!("305 voxdesk \"{e}\""))],
            ),
            Err(e) => self.reject(400, &format!("Bad Request ({e})"), "bad-sdp", &[]),
        }
    }

    /// What the media should expect before the answer: the agreed stream and the offer's
    /// packetisation (None for a late offer: nothing agreed yet).
    pub fn media_params(&self) -> Option<(Negotiated, u32)> {
        self.negotiated.clone().map(|n| (n, self.offer_ptime))
    }

    /// The media is ready: 180 Ringing, and the answer timer starts (if we answer).
    pub fn ring(&mut self, now: Duration) {
        if self.state != State::Ringing {
            return;
        }
        let mut ringing = self.response(180, "Ringing");
        ringing.push_header("Contact", self.settings.contact.clone());
        self.respond(&self.invite_key.clone(), ringing);
        self.answer_at = self.settings.auto_answer.map(|a| now + a);
    }

    /// Sends the 200 with our SDP and retransmits it until the ACK.
    pub fn answer(&mut self, now: Duration) {
        if self.state != State::Ringing {
            return;
        }
        let Some(ans) = self.answer_sdp.clone() else {
            return;
        };
        let mut ok = self.response(200, "OK");
        ok.push_header("Contact", self.settings.contact.clone());
        ok.push_header("Allow", self.settings.allow.clone());
        ok.push_header("Supported", self.settings.supported.clone());
        if let SessionTimerAnswer::Use { headers, .. } = negotiate_session_timer(
            &self.invite,
            self.settings.min_se,
            self.settings.session_secs,
        ) {
            for (n, v) in headers {
                ok.push_header(&n, v);
            }
        }
        ok.push_header("Content-Type", "application/sdp");
        ok.body = ans.to_bytes();
        match Dialog::uas(&self.invite, &self.local_tag, &self.settings.contact) {
            Ok(d) => self.dialog = Some(d),
            Err(e) => return self.reject(400, &format!("Bad Request ({e})"), "bad-request", &[]),
        }
        let key = self.invite_key.clone();
        self.respond(&key, ok.clone());
        let cseq = self.invite.cseq().map(|c| c.seq).unwrap_or(0);
        self.retransmit_until_ack(now, key, cseq, ok);
        self.state = State::WaitAck;
        if let Some(st) = self.session_timer.as_mut() {
            // The interval runs from the answer, not from the INVITE.
            st.refreshed(st.timer, now);
        }
        let codec = self
            .negotiated
            .as_ref()
            .map(|n| n.codec.name())
            .unwrap_or("PCMU");
        if let Some(n) = self.negotiated.clone() {
            let ptime_ms = n.ptime_ms;
            self.out.push_back(Output::Media {
                negotiated: n,
                ptime_ms,
            });
        }
        self.out.push_back(Output::Event(Event::Answered { codec }));
    }

    pub(super) fn on_ack(&mut self, now: Duration, msg: Message) {
        let acks_2xx = self
            .pending_2xx
            .as_ref()
            .is_some_and(|p| msg.cseq().map(|c| c.seq == p.cseq).unwrap_or(false));
        if !acks_2xx {
            return;
        }
        self.pending_2xx = None;
        if !msg.body.is_empty() && self.negotiated.is_none() {
            // The answer to the offer in our 200.
            let neg = SessionDescription::parse(&msg.body).ok().and_then(|a| {
                self.local
                    .as_ref()
                    .and_then(|l| sdp::accept_answer(&a, l).ok())
            });
            match neg {
                Some(n) => {
                    self.out.push_back(Output::Media {
                        negotiated: n.clone(),
                        ptime_ms: 20,
                    });
                    self.negotiated = Some(n);
                }
                None => return self.hangup(now, "bad-sdp-answer"),
            }
        }
        if self.state == State::WaitAck {
            self.state = State::Confirmed;
            self.out.push_back(Output::Event(Event::Confirmed));
        }
    }
}
