//! The agent leg of a call (B2BUA): ring a registered agent's softphone, bridge media when
//! it answers, pass hang-ups across, cancel or BYE it when the caller goes.

use super::{stream_params, Call, State};
use crate::media::leg::{self, MediaHandle};
use crate::media::session::{MediaCmd, MediaEvent, MediaSetup, Party, StreamParams};
use crate::media::source::SourcePolicy;
use crate::registrar::Binding;
use crate::shared::{new_tag, ALLOW};
use crate::transport::Flow;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use voxdesk_sip::dialog::Dialog;
use voxdesk_sip::sdp::{self, LocalMedia, SessionDescription};
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::{Message, Method};

/// The outbound leg to an agent's softphone.
pub struct AgentLeg {
    pub(super) username: String,
    pub(super) call_id: String,
    pub(super) invite: Message,
    pub(super) key: Option<TxKey>,
    pub(super) flow: Flow,
    pub(super) dialog: Option<Dialog>,
    pub(super) media: MediaHandle,
    pub(super) events: mpsc::Receiver<MediaEvent>,
    pub(super) local: LocalMedia,
    pub(super) answered: bool,
    pub(super) bye_sent: bool,
    /// Caller and agent hear each other.
    pub(super) bridged: bool,
    /// When this leg's media session (its turn timeline) started.
    pub(super) media_at: Instant,
}

impl AgentLeg {
    /// Answers an in-dialog offer from this leg's phone (re-INVITE/UPDATE: hold, resume,
    /// refresh) in `ok`, and moves the media to what was agreed. No offer or an unusable
    /// one: `ok` stays without a body.
    pub(super) async fn answer_offer(&self, msg: &Message, ok: &mut Message) {
        if msg.body.is_empty() {
            return;
        }
        if let Ok((ans, neg)) = SessionDescription::parse(&msg.body)
            .map_err(|_| ())
            .and_then(|o| sdp::answer(&o, &self.local).map_err(|_| ()))
        {
            let _ = self
                .media
                .cmd
                .send(MediaCmd::Update(stream_params(&neg, neg.ptime_ms)))
                .await;
            ok.push_header("Content-Type", "application/sdp");
            ok.body = ans.to_bytes();
        }
    }
}

impl std::fmt::Debug for AgentLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLeg")
            .field("username", &self.username)
            .field("call_id", &self.call_id)
            .field("answered", &self.answered)
            .field("bridged", &self.bridged)
            .finish()
    }
}

impl Call {
    pub(super) async fn dial_agent(&mut self) {
        let (username, binding) = self.agents.remove(0);
        let mut headers = self.handoff_headers();
        if headers.is_empty() {
            headers.push(("Subject", format!("Call from {}", self.caller_user())));
        }
        match self.place_leg(username, &binding, "agent", headers).await {
            Ok(leg) => {
                self.agent = Some(leg);
            }
            Err(why) => self.unavailable(why).await,
        }
    }

    /// The caller's SIP user (number), for headers.
    pub(super) fn caller_user(&self) -> String {
        self.invite
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
        let display = self
            .invite
            .from_addr()
            .ok()
            .and_then(|c| c.display.clone())
            .unwrap_or_default();
        let mut inv = Message::request(Method::Invite, binding.uri.clone());
        inv.push_header("Via", self.ctx.shared.via(&flow));
        inv.push_header("Max-Forwards", "70");
        inv.push_header(
            "From",
            format!(
                "{} <sip:{}@{}>;tag={}",
                voxdesk_sip::header::quoted(&display),
                self.caller_user(),
                self.ctx.shared.advertised_host(),
                new_tag()
            ),
        );
        inv.push_header("To", format!("<{}>", binding.uri));
        inv.push_header("Call-ID", call_id.clone());
        inv.push_header("CSeq", "1 INVITE");
        inv.push_header("Contact", self.ctx.shared.contact(&flow));
        inv.push_header("Allow", ALLOW);
        for (name, value) in headers {
            inv.push_header(name, value);
        }
        inv.push_header("User-Agent", self.ctx.shared.server_header.clone());
        inv.push_header("Content-Type", "application/sdp");
        inv.body = sdp::offer(&local, 101).to_bytes();
        tracing::info!(user = %username, contact = %binding.contact, "ringing {kind}");
        let key = voxdesk_sip::txn::client_key_for_request(&inv);
        self.ctx
            .request(&self.sip_call_id, inv.clone(), &flow)
            .await;
        Ok(AgentLeg {
            username,
            call_id,
            invite: inv,
            key,
            flow,
            dialog: None,
            media,
            events: ev_rx,
            local,
            answered: false,
            bye_sent: false,
            bridged: false,
            media_at: Instant::now(),
        })
    }

    pub(super) async fn on_agent_response(&mut self, msg: Message) {
        let code = msg.status().unwrap_or(0);
        let Some(a) = self.agent.as_mut() else { return };
        if msg.cseq().map(|c| c.method != "INVITE").unwrap_or(true) {
            return;
        }
        match code {
            100..=199 => {}
            200..=299 => {
                let dialog = match Dialog::uac(&a.invite, &msg) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "agent answered with an unusable 2xx");
                        return self.agent_failed(502).await;
                    }
                };
                let ack = dialog.ack(1, &self.ctx.shared.via(&a.flow));
                let flow = a.flow.clone();
                if a.dialog.is_some() {
                    // A retransmitted 2xx: re-ACK only.
                    return self.ctx.request(&self.sip_call_id, ack, &flow).await;
                }
                let neg = SessionDescription::parse(&msg.body)
                    .ok()
                    .and_then(|sd| sdp::accept_answer(&sd, &a.local).ok());
                a.dialog = Some(dialog);
                a.answered = true;
                self.ctx.request(&self.sip_call_id, ack, &flow).await;
                let Some(neg) = neg else {
                    tracing::warn!("agent's answer SDP unusable");
                    return self.agent_failed(488).await;
                };
                if let Some(a) = self.agent.as_ref() {
                    let _ = a
                        .media
                        .cmd
                        .send(MediaCmd::Update(stream_params(&neg, 20)))
                        .await;
                    tracing::info!(agent = %a.username, codec = neg.codec.name(), "agent answered");
                }
                if self.state == State::Confirmed && self.queued.is_some() {
                    // An escalated call: the caller is already talking to us.
                    return self.on_escalated_answer().await;
                }
                // A call to the agent's extension: busy for the ACD until it ends.
                if let (Some(r), Some(a)) = (&self.ctx.shared.router, self.agent.as_ref()) {
                    r.direct_call(&a.username, &self.ctx.id);
                }
                // Now answer the caller and bridge.
                self.answer().await;
            }
            _ => self.agent_failed(code).await,
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
            self.agent.as_ref().filter(|a| a.answered),
        ) {
            r.ended(&a.username);
        }
    }

    pub(super) async fn agent_failed(&mut self, code: u16) {
        tracing::info!(code, "agent leg failed");
        if let Some(a) = self.agent.take() {
            let _ = a.media.cmd.send(MediaCmd::Stop).await;
        }
        if self.state == State::Confirmed && self.queued.is_some() {
            return self.escalated_ring_failed(code);
        }
        if self.state == State::Ringing {
            let (c, reason) = if code == 486 || code == 600 {
                (486, "Busy Here")
            } else {
                (480, "Temporarily Unavailable")
            };
            self.reject(c, reason, &format!("agent-{code}"), &[]).await;
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
                if self.queued.as_ref().map(|q| q.whispering).unwrap_or(false) =>
            {
                self.connect_agent().await
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

    pub(super) async fn on_agent_request(&mut self, key: TxKey, msg: Message) {
        let Some(a) = self.agent.as_mut() else { return };
        let method = msg.method().cloned();
        let mut ok = msg.response(200, "OK", None);
        ok.push_header("Server", self.ctx.shared.server_header.clone());
        if method == Some(Method::Bye) {
            tracing::info!(agent = %a.username, "agent hung up");
            a.bye_sent = true; // the agent's dialog is over: no BYE from us on it
            self.ctx.respond(&key, ok).await;
            self.end_reason.get_or_insert_with(|| "agent-bye".into());
            self.hangup("agent-bye").await;
        } else if method == Some(Method::Invite) || method == Some(Method::Update) {
            // Agent-side re-INVITE (hold, refresh): answer with our current offer.
            ok.push_header("Contact", self.ctx.shared.contact(&a.flow));
            a.answer_offer(&msg, &mut ok).await;
            self.ctx.respond(&key, ok).await;
        } else {
            self.ctx.respond(&key, ok).await;
        }
    }

    pub(super) async fn bye_agent(&mut self) {
        let sip_call_id = self.sip_call_id.clone();
        let Some(a) = self.agent.as_mut() else { return };
        if a.bye_sent {
            return;
        }
        a.bye_sent = true;
        if let Some(d) = a.dialog.as_mut() {
            let bye = d.request(Method::Bye, &self.ctx.shared.via(&a.flow));
            let flow = a.flow.clone();
            self.ctx.request(&sip_call_id, bye, &flow).await;
        }
    }

    pub(super) async fn cancel_agent(&mut self) {
        let sip_call_id = self.sip_call_id.clone();
        let Some(a) = self.agent.as_mut() else { return };
        if a.answered || a.bye_sent {
            return self.bye_agent().await;
        }
        a.bye_sent = true;
        let flow = a.flow.clone();
        if let Some(c) = a.invite.cancel_for() {
            self.ctx.request(&sip_call_id, c, &flow).await;
        }
    }
}
