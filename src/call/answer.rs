//! Taking the call (the driver's side): reserve an RTP port and start the media leg for
//! the caller's leg (`leg::uas` decides the SIP), then, once answered, recording, the CDR,
//! and the greeting with the bot (or the agent's bridge, or a feature code).

use super::{codecs, stream_params, Call, State};
use crate::media::leg;
use crate::media::session::{MediaCmd, MediaSetup, StreamParams};
use crate::media::source::SourcePolicy;
use crate::store::now_ms;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use voxdesk_sip::sdes::SrtpPolicy;
use voxdesk_sip::sdp::LocalMedia;

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

    /// Reserves media for the offer, starts the media leg, rings (and rings the agent,
    /// for a call to an extension).
    pub(super) async fn prepare(&mut self) {
        if self.state() != State::Ringing {
            return;
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
        self.caller.take_offer(local);
        self.flush().await;
        if self.state() != State::Ringing {
            return;
        }
        let params = match self.caller.media_params() {
            Some((n, ptime)) => stream_params(&n, ptime),
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
        let now = self.now();
        self.caller.ring(now);
        self.flush().await;
        if !self.agents.is_empty() {
            let (agent, binding) = self.agents.remove(0);
            if let Err(why) = self.dial_agent(agent, &binding).await {
                self.unavailable(why).await;
            }
        }
    }

    /// Our 200 went out: recording, the CDR, then whoever speaks first (a feature code's
    /// confirmation, the agent of a direct call, or the bot's greeting).
    pub(super) async fn on_answered(&mut self, codec: &'static str) {
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
        self.ctx.shared.store.call_answered(
            &self.ctx.id,
            now_ms(),
            codec,
            self.recording.as_deref(),
        );
        tracing::info!(codec, "call answered");
        if let Some(f) = self.feature_request.take() {
            self.run_feature(f).await;
        } else if self.agent.as_ref().is_some_and(|a| a.sip.answered()) {
            self.bridge().await;
        } else if let Some(m) = &self.media {
            let _ = m
                .cmd
                .send(MediaCmd::Play(self.ctx.shared.greeting.clone()))
                .await;
            if let (Some(speech), Some(brain)) = (&self.ctx.shared.speech, &self.ctx.shared.brain) {
                let caller = self
                    .caller
                    .invite()
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
    }

    /// The caller's leg answers (a direct call, when the agent answered).
    pub(super) async fn answer(&mut self) {
        let now = self.now();
        self.caller.answer(now);
        self.flush().await;
    }
}
