//! Taking the call: offer/answer, media set-up, 180 then 200, the ACK (and a late offer's
//! answer in it).

use super::{codecs, stream_params, Call, Pending2xx, State, T1};
use crate::media::leg;
use crate::media::session::{MediaCmd, MediaSetup, StreamParams};
use crate::media::source::SourcePolicy;
use crate::shared::{ALLOW, SUPPORTED};
use crate::store::now_ms;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use voxdesk_sip::dialog::{negotiate_session_timer, Dialog, SessionTimerAnswer, SessionTimerState};
use voxdesk_sip::sdes::SrtpPolicy;
use voxdesk_sip::sdp::{self, LocalMedia, SdpError, SessionDescription};
use voxdesk_sip::Message;

impl Call {
    /// Our side of a leg's media: its port, codecs, encryption policy and a fresh key.
    pub(super) fn local_media(&self, port: u16, srtp: SrtpPolicy) -> LocalMedia {
        LocalMedia {
            address: self.ctx.shared.advertised.clone(),
            port,
            codecs: codecs(&self.ctx.shared.cfg),
            session_id: rand::random::<u32>() as u64,
            session_version: 1,
            srtp,
            srtp_key: rand::random(),
        }
    }

    /// 503 with Retry-After for a call we cannot take (no ports, socket errors).
    pub(super) async fn unavailable(&mut self, end: &str) {
        self.reject(
            503,
            "Service Unavailable",
            end,
            &[("Retry-After", "5".into())],
        )
        .await
    }

    pub(super) fn response(&self, code: u16, reason: &str) -> Message {
        let mut r = self.invite.response(code, reason, Some(&self.local_tag));
        r.push_header("Server", self.ctx.shared.server_header.clone());
        r
    }

    pub(super) async fn reject(
        &mut self,
        code: u16,
        reason: &str,
        end: &str,
        extra: &[(&str, String)],
    ) {
        let mut r = self.response(code, reason);
        for (n, v) in extra {
            r.push_header(n, v.clone());
        }
        self.ctx.respond(&self.invite_key, r).await;
        self.end_reason = Some(end.to_string());
        self.state = State::Done;
    }

    /// Checks the offer, reserves media, sends 180 (and starts ringing the agent, if any).
    pub(super) async fn prepare(&mut self) {
        match negotiate_session_timer(
            &self.invite,
            self.ctx.shared.cfg.session_timer.min_se,
            self.ctx.shared.cfg.session_timer.default_secs,
        ) {
            SessionTimerAnswer::TooSmall { min_se } => {
                return self
                    .reject(
                        422,
                        "Session Interval Too Small",
                        "session-interval-too-small",
                        &[("Min-SE", min_se.to_string())],
                    )
                    .await;
            }
            SessionTimerAnswer::Use { timer, .. } => {
                self.session_timer = Some(SessionTimerState::new(timer, self.clock.elapsed()));
            }
            SessionTimerAnswer::None => {}
        }
        let Some(lease) = self
            .ctx
            .shared
            .ports
            .lease_bindable(self.ctx.shared.bind_ip)
        else {
            tracing::warn!("no free RTP port");
            return self.unavailable("no-rtp-ports").await;
        };
        let local = self.local_media(lease.port, self.ctx.shared.caller_srtp(&self.flow));
        let offer_ptime;
        let offer_body = match voxdesk_sip::body::sdp_body(&self.invite) {
            Ok(b) => b,
            Err(e) => {
                return self
                    .reject(400, &format!("Bad Request ({e})"), "bad-sdp", &[])
                    .await
            }
        };
        if let Some(offer_body) = offer_body {
            let offer = match SessionDescription::parse(&offer_body) {
                Ok(o) => o,
                Err(e) => {
                    return self
                        .reject(400, &format!("Bad Request ({e})"), "bad-sdp", &[])
                        .await
                }
            };
            match sdp::answer(&offer, &local) {
                Ok((ans, neg)) => {
                    offer_ptime = neg.ptime_ms;
                    self.answer_sdp = Some(ans);
                    self.negotiated = Some(neg);
                }
                Err(e @ (SdpError::NoCommonCodec | SdpError::NoAudio)) => {
                    return self
                        .reject(
                            488,
                            "Not Acceptable Here",
                            "no-common-codec",
                            &[("Warning", format!("305 voxdesk \"{e}\""))],
                        )
                        .await;
                }
                Err(e @ SdpError::Srtp(_)) => {
                    return self
                        .reject(
                            488,
                            "Not Acceptable Here",
                            "srtp-policy",
                            &[("Warning", format!("305 voxdesk \"{e}\""))],
                        )
                        .await;
                }
                Err(e) => {
                    return self
                        .reject(400, &format!("Bad Request ({e})"), "bad-sdp", &[])
                        .await
                }
            }
        } else {
            // Late offer: we offer in the 200 and take the answer from the ACK.
            self.answer_sdp = Some(sdp::offer(&local, 101));
            offer_ptime = 20;
        }
        let params = match &self.negotiated {
            Some(n) => stream_params(n, offer_ptime),
            None => StreamParams::awaiting_answer(),
        };
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let setup = MediaSetup {
            lease,
            bind: self.ctx.shared.bind_ip,
            params: StreamParams {
                send: false,
                ..params
            },
            jitter_ms: self.ctx.shared.cfg.media.jitter_ms,
            rtp_timeout: Duration::from_secs(self.ctx.shared.cfg.media.rtp_timeout_secs),
            // Recording starts when the call is answered.
            record: None,
            cname: format!("voxdesk-{}", self.ctx.id),
            turn: crate::speech::turn::TurnConfig::from(&self.ctx.shared.cfg.speech),
            vad: self.ctx.shared.vad(),
            source: SourcePolicy::from_config(&self.ctx.shared.cfg.media, self.flow.addr().ip()),
        };
        match leg::start(setup, ev_tx).await {
            Ok(h) => {
                self.media = Some(h);
                self.media_events = Some(ev_rx);
                self.media_at = Some(Instant::now());
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot open RTP socket");
                return self.unavailable("rtp-socket-error").await;
            }
        }
        self.local = Some(local);
        let mut ringing = self.response(180, "Ringing");
        ringing.push_header("Contact", self.ctx.shared.contact(&self.flow));
        self.ctx.respond(&self.invite_key, ringing).await;
        if !self.agents.is_empty() {
            self.dial_agent().await;
        }
    }

    /// Sends the 200 OK with our SDP and starts the 2xx retransmission timer.
    pub(super) async fn answer(&mut self) {
        let Some(ans) = self.answer_sdp.clone() else {
            return;
        };
        let mut ok = self.response(200, "OK");
        ok.push_header("Contact", self.ctx.shared.contact(&self.flow));
        ok.push_header("Allow", ALLOW);
        ok.push_header("Supported", SUPPORTED);
        if let SessionTimerAnswer::Use { headers, .. } = negotiate_session_timer(
            &self.invite,
            self.ctx.shared.cfg.session_timer.min_se,
            self.ctx.shared.cfg.session_timer.default_secs,
        ) {
            for (n, v) in headers {
                ok.push_header(&n, v);
            }
        }
        ok.push_header("Content-Type", "application/sdp");
        ok.body = ans.to_bytes();
        match Dialog::uas(
            &self.invite,
            &self.local_tag,
            &self.ctx.shared.contact(&self.flow),
        ) {
            Ok(d) => self.dialog = Some(d),
            Err(e) => {
                return self
                    .reject(400, &format!("Bad Request ({e})"), "bad-request", &[])
                    .await
            }
        }
        self.ctx.respond(&self.invite_key, ok.clone()).await;
        let now = Instant::now();
        self.pending_2xx = Some(Pending2xx {
            key: self.invite_key.clone(),
            cseq: self.invite.cseq().map(|c| c.seq).unwrap_or(0),
            msg: ok,
            next_at: now + T1,
            interval: T1,
            give_up_at: now + 64 * T1,
        });
        self.state = State::WaitAck;
        if self.ctx.shared.cfg.media.record {
            let path = self
                .ctx
                .shared
                .cfg
                .recordings_dir()
                .join(format!("{}.wav", self.ctx.id));
            if let Some(m) = &self.media {
                let _ = m.cmd.send(MediaCmd::Record(path.clone())).await;
            }
            self.recording = Some(path);
        }
        let codec = self
            .negotiated
            .as_ref()
            .map(|n| n.codec.name())
            .unwrap_or("PCMU");
        self.ctx.shared.store.call_answered(
            &self.ctx.id,
            now_ms(),
            codec,
            self.recording.as_deref(),
        );
        if let (Some(n), Some(m)) = (&self.negotiated, &self.media) {
            let _ = m
                .cmd
                .send(MediaCmd::Update(stream_params(n, n.ptime_ms)))
                .await;
        }
        if let Some(f) = self.feature_request.take() {
            self.run_feature(f).await;
        } else if self.agent.as_ref().map(|a| a.answered).unwrap_or(false) {
            self.bridge().await;
        } else if let Some(m) = &self.media {
            let _ = m
                .cmd
                .send(MediaCmd::Play(self.ctx.shared.greeting.clone()))
                .await;
            if let (Some(speech), Some(brain)) = (&self.ctx.shared.speech, &self.ctx.shared.brain) {
                let caller = self
                    .invite
                    .from_addr()
                    .ok()
                    .and_then(|f| match &f.uri {
                        voxdesk_sip::uri::Uri::Tel(t) => Some(t.clone()),
                        u => u.as_sip().and_then(|s| s.user_decoded()),
                    })
                    .unwrap_or_default();
                self.talk = Some(super::talk::Talk::new(
                    speech.clone(),
                    brain.clone(),
                    self.ctx.shared.store.clone(),
                    self.ctx.id.clone(),
                    &caller,
                ));
            }
        }
        tracing::info!(codec, "call answered");
    }

    pub(super) async fn on_ack(&mut self, msg: Message) {
        let acks_2xx = self
            .pending_2xx
            .as_ref()
            .map(|p| msg.cseq().map(|c| c.seq == p.cseq).unwrap_or(false))
            .unwrap_or(false);
        if !acks_2xx {
            return;
        }
        self.pending_2xx = None;
        if !msg.body.is_empty() && self.negotiated.is_none() {
            // Late-offer answer.
            let neg = SessionDescription::parse(&msg.body).ok().and_then(|a| {
                self.local
                    .as_ref()
                    .and_then(|l| sdp::accept_answer(&a, l).ok())
            });
            match neg {
                Some(n) => {
                    if let Some(m) = &self.media {
                        let _ = m.cmd.send(MediaCmd::Update(stream_params(&n, 20))).await;
                    }
                    self.negotiated = Some(n);
                }
                None => {
                    tracing::warn!("ACK carried an unusable SDP answer");
                    return self.hangup("bad-sdp-answer").await;
                }
            }
        }
        if self.state == State::WaitAck {
            self.state = State::Confirmed;
            tracing::info!("call confirmed");
        }
    }
}
