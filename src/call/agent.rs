//! The agent leg of a call (B2BUA): ring a registered agent's softphone, bridge media when
//! it answers, pass hang-ups across, cancel or BYE it when the caller goes.

use super::{stream_params, Call, CallCtx, State};
use crate::leg::uac::{self, UacLeg};
use crate::media::leg::{self, MediaHandle};
use crate::media::session::{MediaCmd, MediaEvent, MediaSetup, Party, StreamParams};
use crate::media::source::SourcePolicy;
use crate::registrar::Binding;
use crate::shared::{new_tag, ALLOW};
use crate::transport::Flow;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The outbound leg to an agent's (or supervisor's) softphone: its SIP (a sans-IO
/// [`UacLeg`]) and its media.
pub struct AgentLeg {
    pub(super) username: String,
    pub(super) sip: UacLeg,
    pub(super) flow: Flow,
    pub(super) media: MediaHandle,
    pub(super) events: mpsc::Receiver<MediaEvent>,
    /// Caller and agent hear each other.
    pub(super) bridged: bool,
    /// When this leg's media session (its turn timeline) started.
    pub(super) media_at: Instant,
}

impl std::fmt::Debug for AgentLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLeg")
            .field("username", &self.username)
            .field("call_id", &self.sip.call_id())
            .field("answered", &self.sip.answered())
            .field("bridged", &self.bridged)
            .finish()
    }
}

/// A placed leg that left the call (transferred, ended): it still answers its phone's
/// late requests and ends a 2xx that crosses our CANCEL.
pub(super) struct Departed {
    pub sip: UacLeg,
    pub flow: Flow,
}

/// Gives a placed leg an input and carries out what it asks (requests on its flow,
/// responses, media moves); returns its events for the call to act on.
pub(super) async fn feed(
    ctx: &CallCtx,
    owner: &str,
    sip: &mut UacLeg,
    flow: &Flow,
    media: Option<&MediaHandle>,
    input: Option<uac::Input>,
) -> Vec<uac::Event> {
    if let Some(i) = input {
        sip.handle(i);
    }
    let mut events = Vec::new();
    while let Some(o) = sip.poll_output() {
        match o {
            uac::Output::Send(msg) => ctx.request(owner, msg, flow).await,
            uac::Output::Respond { key, msg } => ctx.respond(&key, msg).await,
            uac::Output::Media {
                negotiated,
                ptime_ms,
            } => {
                if let Some(m) = media {
                    let params = stream_params(&negotiated, ptime_ms);
                    let _ = m.cmd.send(MediaCmd::Update(params)).await;
                }
            }
            uac::Output::Event(e) => events.push(e),
        }
    }
    events
}

impl AgentLeg {
    /// Feeds this leg (see [`feed`]).
    pub(super) async fn feed(
        &mut self,
        ctx: &CallCtx,
        owner: &str,
        input: Option<uac::Input>,
    ) -> Vec<uac::Event> {
        feed(
            ctx,
            owner,
            &mut self.sip,
            &self.flow,
            Some(&self.media),
            input,
        )
        .await
    }
}

impl Call {
    /// Rings `username`'s phone for this call (with the handoff summary in its headers
    /// when the call was escalated). Err: why it could not be rung.
    pub(super) async fn dial_agent(
        &mut self,
        username: String,
        binding: &Binding,
    ) -> Result<(), &'static str> {
        let mut headers = self.handoff_headers();
        if headers.is_empty() {
            headers.push(("Subject", format!("Call from {}", self.caller_user())));
        }
        self.agent = Some(self.place_leg(username, binding, "agent", headers).await?);
        Ok(())
    }

    /// The caller's SIP user (number), for headers.
    pub(super) fn caller_user(&self) -> String {
        self.caller
            .invite()
            .from_addr()
            .ok()
            .and_then(|c| c.uri.as_sip().and_then(|u| u.user.clone()))
            .map(|u| u.to_string())
            .unwrap_or_else(|| "caller".into())
    }

    /// Opens a media leg and INVITEs `username`'s registered phone (from the caller's
    /// number, with `headers`); `kind` names the leg in its Call-ID. Err: why it could not.
    pub(super) async fn place_leg(
        &mut self,
        username: String,
        binding: &Binding,
        kind: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Result<AgentLeg, &'static str> {
        let lease = self
            .ctx
            .shared
            .ports
            .lease_bindable(self.ctx.shared.bind_ip)
            .ok_or("no-rtp-ports")?;
        let srtp = self.ctx.shared.cfg.agent_srtp(&username);
        let local = self.local_media(lease.port, srtp);
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let setup = MediaSetup {
            lease,
            bind: self.ctx.shared.bind_ip,
            params: StreamParams::awaiting_answer(),
            jitter_ms: self.ctx.shared.cfg.media.jitter_ms,
            rtp_timeout: Duration::from_secs(self.ctx.shared.cfg.media.rtp_timeout_secs),
            record: None,
            cname: format!("voxdesk-{}-{kind}", self.ctx.id),
            turn: crate::speech::turn::TurnConfig::from(&self.ctx.shared.cfg.speech),
            vad: self.ctx.shared.vad(),
            source: SourcePolicy::from_config(&self.ctx.shared.cfg.media, binding.flow.addr().ip()),
        };
        let media = leg::start(setup, ev_tx).await.map_err(|e| {
            tracing::error!(error = %e, kind, "cannot open RTP socket for a leg");
            "rtp-socket-error"
        })?;
        // This leg's turns are for the transcript: talking over a prompt pauses nothing.
        let _ = media.cmd.send(MediaCmd::Transcribe(true)).await;
        let flow = binding.flow.clone();
        // One Call-ID per leg: after a transfer a second agent leg lives beside the first.
        self.agent_legs += 1;
        let call_id = format!("{}-{kind}{}@voxdesk", self.ctx.id, self.agent_legs);
        let from_display = self
            .caller
            .invite()
            .from_addr()
            .ok()
            .and_then(|c| c.display.clone())
            .unwrap_or_default();
        let shared = &self.ctx.shared;
        let sip = UacLeg::place(uac::Placement {
            target: binding.uri.clone(),
            call_id,
            local_tag: new_tag(),
            from_display,
            from_user: self.caller_user(),
            host: shared.advertised_host(),
            contact: shared.contact(&flow),
            via: shared.via_base(&flow),
            allow: ALLOW.into(),
            user_agent: shared.server_header.clone(),
            headers,
            local,
        });
        tracing::info!(user = %username, contact = %binding.contact, "ringing {kind}");
        let mut leg = AgentLeg {
            username,
            sip,
            flow,
            media,
            events: ev_rx,
            bridged: false,
            media_at: Instant::now(),
        };
        leg.feed(&self.ctx, &self.sip_call_id, None).await;
        Ok(leg)
    }

    /// An input for the agent's leg (a response, a stray 2xx, a timeout, a request).
    pub(super) async fn on_agent_sip(&mut self, input: uac::Input) {
        let Some(a) = self.agent.as_mut() else { return };
        let events = a.feed(&self.ctx, &self.sip_call_id, Some(input)).await;
        for e in events {
            match e {
                uac::Event::Answered { codec } => {
                    if let Some(a) = self.agent.as_ref() {
                        tracing::info!(agent = %a.username, codec, "agent answered");
                    }
                    if self.state() == State::Confirmed && self.queued.is_some() {
                        // An escalated call: the caller is already talking to us.
                        self.on_escalated_answer().await;
                        continue;
                    }
                    // A call to the agent's extension: busy for the ACD until it ends.
                    if let (Some(r), Some(a)) = (&self.ctx.shared.router, self.agent.as_ref()) {
                        r.direct_call(&a.username, &self.ctx.id);
                    }
                    // Now answer the caller and bridge.
                    self.answer().await;
                }
                uac::Event::Failed { code } => self.agent_failed(code).await,
                uac::Event::RemoteBye => {
                    if let Some(a) = self.agent.as_ref() {
                        tracing::info!(agent = %a.username, "agent hung up");
                    }
                    self.hangup("agent-bye").await;
                }
                uac::Event::Refer { key, msg } => self.on_agent_refer(key, *msg).await,
            }
        }
    }

    /// The call is over: an agent who took it on their extension wraps up. (Escalated
    /// calls are the queue's: `escalation_finished`. A leg handed to another call by an
    /// attended transfer is no longer here.)
    pub(super) fn direct_call_finished(&mut self) {
        if self.queued.is_some() {
            return;
        }
        if let (Some(r), Some(a)) = (
            &self.ctx.shared.router,
            self.agent.as_ref().filter(|a| a.sip.answered()),
        ) {
            r.ended(&a.username);
        }
    }

    pub(super) async fn agent_failed(&mut self, code: u16) {
        tracing::info!(code, "agent leg failed");
        self.release_agent().await;
        if self.state() == State::Confirmed && self.queued.is_some() {
            return self.escalated_ring_failed(code).await;
        }
        if self.state() == State::Ringing {
            let (c, reason) = if code == 486 || code == 600 {
                (486, "Busy Here")
            } else {
                (480, "Temporarily Unavailable")
            };
            self.reject(c, reason, &format!("agent-{code}")).await;
        }
    }

    /// A person takes over: the bot stops listening and talking. It is parked, not gone: if
    /// the agent transfers the call, the bot is with the caller again while they wait.
    pub(super) fn end_talk(&mut self) {
        if let Some(mut t) = self.talk.take() {
            t.park();
            self.parked = Some(t);
        }
    }

    /// The caller is waiting again (a transfer): the bot takes the call back, its turn
    /// numbers after the bridged transcript's.
    pub(super) async fn resume_talk(&mut self) {
        let Some(mut t) = self.parked.take() else {
            return;
        };
        if let Some(s) = &self.scribe {
            t.resume_after(s.seq());
        }
        self.talk = Some(t);
        if let Some(m) = &self.media {
            let _ = m.cmd.send(MediaCmd::Transcribe(false)).await;
        }
    }

    pub(super) async fn bridge(&mut self) {
        self.end_talk();
        let (Some(m), Some(a)) = (&self.media, self.agent.as_mut()) else {
            return;
        };
        a.bridged = true;
        let (to_agent_tx, to_agent_rx) = crate::media::link::frame_link();
        let (to_caller_tx, to_caller_rx) = crate::media::link::frame_link();
        let _ = m
            .cmd
            .send(MediaCmd::BridgeOut(Party::Agent, Some(to_agent_tx)))
            .await;
        let _ = m
            .cmd
            .send(MediaCmd::BridgeIn(Party::Agent, Some(to_caller_rx)))
            .await;
        let _ = a
            .media
            .cmd
            .send(MediaCmd::BridgeOut(Party::Caller, Some(to_caller_tx)))
            .await;
        let _ = a
            .media
            .cmd
            .send(MediaCmd::BridgeIn(Party::Caller, Some(to_agent_rx)))
            .await;
        tracing::info!(agent = %a.username, "caller and agent bridged");
        let agent_media_at = a.media_at;
        self.start_scribe(agent_media_at).await;
    }

    /// Both sides of the bridged call go on being transcribed (when configured and there
    /// is a recogniser).
    pub(super) async fn start_scribe(&mut self, agent_media_at: Instant) {
        let cfg = &self.ctx.shared.cfg;
        let Some(speech) = self.ctx.shared.speech.clone() else {
            return;
        };
        if !cfg.routing.transcribe_bridged {
            return;
        }
        let (seq, language) = self
            .parked
            .as_ref()
            .map(|t| (t.seq(), t.language().to_string()))
            .unwrap_or_else(|| (0, speech.language.clone()));
        let offset =
            agent_media_at.saturating_duration_since(self.media_at.unwrap_or(agent_media_at));
        match self.scribe.as_mut() {
            // A later agent (after a transfer): their leg has its own timeline.
            Some(s) => s.resume(seq, offset),
            None => {
                self.scribe = Some(super::scribe::Scribe::new(
                    speech,
                    self.ctx.shared.brain.clone(),
                    self.ctx.shared.store.clone(),
                    self.ctx.id.clone(),
                    &language,
                    seq,
                    offset,
                ))
            }
        }
        for cmd in [
            self.media.as_ref().map(|m| &m.cmd),
            self.agent.as_ref().map(|a| &a.media.cmd),
        ]
        .into_iter()
        .flatten()
        {
            let _ = cmd.send(MediaCmd::Transcribe(true)).await;
        }
    }

    /// Events from the agent leg's media: the whisper ended, a key, a turn, silence.
    pub(super) async fn on_agent_media(&mut self, e: MediaEvent) {
        match e {
            MediaEvent::RtpTimeout => self.hangup("agent-rtp-timeout").await,
            MediaEvent::PlaybackDone
                if self.queued.as_ref().is_some_and(|q| q.line.whispering()) =>
            {
                self.on_whisper_played().await
            }
            MediaEvent::Dtmf(d) if self.agent.as_ref().is_some_and(|a| a.bridged) => {
                tracing::info!(digit = %d, "agent DTMF passed to the caller");
                if let Some(m) = &self.media {
                    let _ = m.cmd.send(MediaCmd::SendDigit(d)).await;
                }
            }
            MediaEvent::Utterance(u) => {
                if let Some(s) = self.scribe.as_mut() {
                    s.on_utterance("agent", u);
                }
            }
            _ => {}
        }
    }

    /// The agent's leg leaves the call (CANCEL or BYE, media stopped); a 2xx that crosses
    /// the CANCEL still finds it and is ended.
    pub(super) async fn release_agent(&mut self) {
        if let Some(a) = self.agent.take() {
            self.release_departing(a).await;
        }
    }

    /// Ends the agent's leg (CANCEL while it rings, BYE once answered); it stays in the
    /// call until the call ends, for the answers.
    pub(super) async fn end_agent(&mut self) {
        let Some(a) = self.agent.as_mut() else { return };
        a.sip.end();
        a.feed(&self.ctx, &self.sip_call_id, None).await;
    }
}
