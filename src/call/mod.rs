//! One call's actor: owns its SIP dialog(s) and media leg(s), plays the greeting, records,
//! logs DTMF, hangs up on `#`, answers re-INVITE/UPDATE/INFO, enforces session timers and
//! RTP timeouts, and writes the CDR as events happen. A call to a registered agent's
//! extension is bridged to that agent's softphone (B2BUA).

use crate::leg::uac;
use crate::leg::uas::{self, State, UasLeg};
use crate::media::g711::Law;
use crate::media::leg::MediaHandle;
use crate::media::session::{MediaCmd, MediaEvent, StreamParams};
use crate::registrar::Binding;
use crate::shared::{new_tag, CoreMsg, Shared, ALLOW, SUPPORTED};
use crate::store::{now_ms, MediaSummary, NewCall};
use crate::transport::Flow;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use voxdesk_sip::sdp::{Codec, Direction, Negotiated};
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::Message;

mod agent;
mod answer;
mod caller_media;
pub mod conversation;
mod escalate;
mod feature;
pub mod handover;
mod in_dialog;
mod live;
mod scribe;
mod supervise;
mod talk;
mod transfer;
pub use agent::AgentLeg;
pub use feature::Feature;
pub use live::LiveCalls;
use supervise::Supervisor;
pub use supervise::{SuperviseError, SuperviseMode};
use talk::Talk;

/// Inputs from the endpoint.
#[derive(Debug)]
pub enum CallInput {
    Request {
        key: TxKey,
        msg: Message,
        flow: Flow,
    },
    Ack {
        msg: Message,
    },
    Response {
        key: TxKey,
        msg: Message,
    },
    Stray2xx {
        msg: Message,
    },
    Timeout {
        key: TxKey,
    },
    Cancel {
        invite_key: TxKey,
    },
    Shutdown,
    /// From the API: a supervisor listens, whispers or barges in (`mode` None: stops).
    Supervise {
        supervisor: String,
        mode: Option<SuperviseMode>,
        reply: tokio::sync::oneshot::Sender<Result<&'static str, SuperviseError>>,
    },
    /// Another call's agent is transferring their caller (attended) to this call's agent,
    /// with whom this call is their consultation: hand over the agent leg (if the dialog
    /// tags match) and end.
    Surrender {
        tags: (String, String),
        reply: tokio::sync::oneshot::Sender<Option<AgentLeg>>,
    },
}

#[derive(Clone)]
pub struct CallCtx {
    pub shared: Arc<Shared>,
    /// The live calls (an attended transfer finds its consultation call here).
    pub live: LiveCalls,
    pub core: mpsc::Sender<CoreMsg>,
    pub id: String,
}

impl CallCtx {
    async fn respond(&self, key: &TxKey, msg: Message) {
        let _ = self
            .core
            .send(CoreMsg::Respond {
                key: key.clone(),
                msg,
            })
            .await;
    }
    async fn request(&self, owner: &str, msg: Message, flow: &Flow) {
        let _ = self
            .core
            .send(CoreMsg::Request {
                call: owner.to_string(),
                msg,
                flow: flow.clone(),
            })
            .await;
    }
}

struct Call {
    ctx: CallCtx,
    sip_call_id: String,
    flow: Flow,
    /// The caller's SIP leg (sans-IO): answer, dialog, timers, hang-ups.
    caller: UasLeg,
    /// What the caller's leg reported and the call has yet to act on.
    leg_events: VecDeque<uas::Event>,
    /// Origin of the call's monotonic clock for the sans-IO legs and timers.
    clock: Instant,
    agents: Vec<(String, Binding)>,
    agent: Option<AgentLeg>,
    /// Agent legs placed so far (each gets its own Call-ID).
    agent_legs: u32,
    recording: Option<std::path::PathBuf>,
    media: Option<MediaHandle>,
    media_events: Option<mpsc::Receiver<MediaEvent>>,
    /// When the caller's media session (its turn timeline) started.
    media_at: Option<Instant>,
    /// The spoken conversation with the bot (absent when speech is off or a person talks).
    talk: Option<Talk>,
    /// The bot's conversation while a person has the call (back if they transfer it).
    parked: Option<Talk>,
    /// Someone listening in (or whispering, or barging in) on the bridged call.
    supervisor: Option<Supervisor>,
    /// Placed legs that left the call (transferred, ended): their late answers and requests.
    departing: Vec<agent::Departed>,
    /// Transcribes both sides of a bridged call.
    scribe: Option<scribe::Scribe>,
    /// Handed to people: queued, ringing, whispering or bridged.
    queued: Option<escalate::Queued>,
    /// An agent's feature code, applied when the call is answered.
    feature_request: Option<Feature>,
    /// Applied; its confirmation is playing (then voxdesk hangs up).
    feature: Option<Feature>,
}

fn codecs(cfg: &crate::config::Config) -> Vec<Codec> {
    cfg.media
        .codecs
        .iter()
        .filter_map(|c| match c.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            _ => None,
        })
        .collect()
}

fn stream_params(n: &Negotiated, ptime: u32) -> StreamParams {
    let remote = n.remote.as_ref().and_then(|(ip, port)| {
        ip.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, *port))
    });
    StreamParams {
        law: if n.codec == Codec::Pcma {
            Law::Alaw
        } else {
            Law::Ulaw
        },
        payload_type: n.codec.payload_type(),
        dtmf_pt: n.dtmf_pt,
        remote,
        send: matches!(n.direction, Direction::SendRecv | Direction::SendOnly),
        recv: matches!(n.direction, Direction::SendRecv | Direction::RecvOnly),
        remote_ptime_ms: ptime,
        srtp: n.srtp.clone(),
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs an inbound call from its INVITE to the end.
pub async fn run_inbound(
    ctx: CallCtx,
    key: TxKey,
    invite: Message,
    flow: Flow,
    rx: mpsc::Receiver<CallInput>,
    agents: Vec<(String, Binding)>,
    feature: Option<Feature>,
) {
    let from = invite.from_addr().ok();
    let sip_call_id = invite.call_id().unwrap_or_default().to_string();
    ctx.shared.store.call_started(&NewCall {
        id: ctx.id.clone(),
        sip_call_id: sip_call_id.clone(),
        direction: "inbound".into(),
        from_uri: from.as_ref().map(|f| f.uri.to_string()).unwrap_or_default(),
        from_display: from.as_ref().and_then(|f| f.display.clone()),
        to_uri: invite
            .request_uri()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        remote_addr: flow.addr().to_string(),
        transport: flow.transport().into(),
        started_at_ms: now_ms(),
    });
    tracing::info!(from = %crate::privacy::loggable_number(&from.as_ref().map(|f| f.uri.to_string()).unwrap_or_default()), sip_call_id = %sip_call_id, %flow, "incoming call");
    let shared = &ctx.shared;
    let max = shared.cfg.limits.max_call_secs;
    let settings = uas::Settings {
        min_se: shared.cfg.session_timer.min_se,
        session_secs: shared.cfg.session_timer.default_secs,
        // A call to an agent's extension is answered when the agent answers.
        auto_answer: agents
            .is_empty()
            .then(|| Duration::from_millis(shared.cfg.sip.ring_ms)),
        max_call: (max > 0).then(|| Duration::from_secs(max)),
        server: shared.server_header.clone(),
        contact: shared.contact(&flow),
        via: shared.via_base(&flow),
        allow: ALLOW.into(),
        supported: SUPPORTED.into(),
    };
    let caller = UasLeg::new(Duration::ZERO, invite, key, new_tag(), settings);
    let mut call = Call {
        ctx,
        sip_call_id,
        flow,
        caller,
        leg_events: VecDeque::new(),
        clock: Instant::now(),
        agents,
        agent: None,
        agent_legs: 0,
        recording: None,
        media: None,
        media_events: None,
        media_at: None,
        talk: None,
        parked: None,
        supervisor: None,
        departing: Vec::new(),
        scribe: None,
        queued: None,
        feature_request: feature,
        feature: None,
    };
    call.run(rx).await;
}

impl Call {
    async fn run(&mut self, mut rx: mpsc::Receiver<CallInput>) {
        self.flush().await;
        self.prepare().await;
        self.on_leg_events().await;
        while self.state() != State::Done {
            let deadline = self.next_deadline();
            tokio::select! {
                i = rx.recv() => match i {
                    Some(i) => self.on_input(i).await,
                    None => { self.caller.set_end_reason("internal"); break; }
                },
                e = recv_opt(&mut self.media_events) => if let Some(e) = e { self.on_media(e).await },
                e = async { match self.agent.as_mut() { Some(a) => a.events.recv().await, None => std::future::pending().await } } => {
                    if let Some(e) = e { self.on_agent_media(e).await }
                }
                e = async { match self.supervisor.as_mut() { Some(s) => s.leg.events.recv().await, None => std::future::pending().await } } => {
                    if let Some(e) = e { self.on_supervisor_media(e).await }
                }
                e = async { match self.talk.as_mut() { Some(t) => t.rx.recv().await, None => std::future::pending().await } } => {
                    if let Some(e) = e { self.on_talk(e).await }
                }
                e = async { match self.queued.as_mut() { Some(q) => q.next().await, None => std::future::pending().await } } => match e {
                    escalate::Waiting::Route(e) => self.on_route(e).await,
                    escalate::Waiting::Whisper(pcm) => self.on_whisper_rendered(pcm).await,
                },
                _ = tokio::time::sleep_until(deadline) => self.on_timer().await,
            }
            let handover = self.talk.as_mut().and_then(|t| t.take_handover());
            if let Some(e) = handover {
                if self.state() == State::Confirmed {
                    self.hand_over(e).await;
                }
            }
            self.on_leg_events().await;
        }
        self.direct_call_finished();
        self.escalation_finished().await;
        if let Some(t) = self.talk.as_mut() {
            t.on_call_end();
        }
        self.finish().await;
    }

    fn state(&self) -> State {
        self.caller.state()
    }

    /// The call's clock for its sans-IO parts.
    fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Carries out what the caller's leg asked for; its events wait for `on_leg_events`.
    async fn flush(&mut self) {
        while let Some(o) = self.caller.poll_output() {
            match o {
                uas::Output::Respond { key, msg } => self.ctx.respond(&key, msg).await,
                uas::Output::Send(msg) => {
                    self.ctx.request(&self.sip_call_id, msg, &self.flow).await
                }
                uas::Output::Media {
                    negotiated,
                    ptime_ms,
                } => {
                    tracing::info!(
                        direction = negotiated.direction.as_str(),
                        codec = negotiated.codec.name(),
                        "caller's media (re)negotiated"
                    );
                    if let Some(m) = &self.media {
                        let _ = m
                            .cmd
                            .send(MediaCmd::Update(stream_params(&negotiated, ptime_ms)))
                            .await;
                    }
                }
                uas::Output::Event(e) => self.leg_events.push_back(e),
            }
        }
    }

    async fn on_leg_events(&mut self) {
        while let Some(e) = self.leg_events.pop_front() {
            match e {
                uas::Event::Answered { codec } => self.on_answered(codec).await,
                uas::Event::Confirmed => tracing::info!("call confirmed"),
                uas::Event::Digit(d) => self.on_digit(d).await,
                uas::Event::Ending { reason } => {
                    tracing::info!(%reason, "caller's leg ending");
                    // An agent leg still ringing is cancelled, an answered one gets BYE.
                    self.end_supervision("call ended").await;
                    self.end_agent().await;
                }
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut d = Instant::now() + Duration::from_secs(3600);
        if let Some(t) = self.caller.next_deadline() {
            d = d.min(self.clock + t);
        }
        if let Some(h) = self.queued.as_ref().and_then(|q| q.line.next_deadline()) {
            d = d.min(self.clock + h);
        }
        d
    }

    async fn on_timer(&mut self) {
        let now = self.now();
        self.caller.on_timer(now);
        self.flush().await;
        self.on_line_timer().await;
    }

    async fn on_input(&mut self, i: CallInput) {
        let now = self.now();
        match i {
            CallInput::Cancel { invite_key } => {
                self.caller.handle(now, uas::Input::Cancel { invite_key })
            }
            CallInput::Shutdown => self.caller.handle(now, uas::Input::Shutdown),
            CallInput::Ack { msg } => self.caller.handle(now, uas::Input::Ack(msg)),
            CallInput::Request { key, msg, flow } => self.on_request(key, msg, flow).await,
            CallInput::Response { key, msg } => self.on_response(key, msg).await,
            CallInput::Stray2xx { msg } => self.on_stray_2xx(msg).await,
            CallInput::Supervise {
                supervisor,
                mode,
                reply,
            } => {
                let r = self.on_supervise(supervisor, mode).await;
                let _ = reply.send(r);
            }
            CallInput::Surrender { tags, reply } => {
                let leg = self.surrender(tags).await;
                let _ = reply.send(leg);
            }
            CallInput::Timeout { key } => {
                if self
                    .supervisor
                    .as_ref()
                    .is_some_and(|s| s.leg.sip.key() == &key)
                {
                    self.on_supervisor_sip(uac::Input::Timeout { key }).await;
                } else if self.agent.as_ref().is_some_and(|a| a.sip.key() == &key) {
                    self.on_agent_sip(uac::Input::Timeout { key }).await;
                } else {
                    if key.server {
                        tracing::warn!(method = %key.method, "server transaction timed out");
                    }
                    self.caller.handle(now, uas::Input::Timeout { key });
                }
            }
        }
        self.flush().await;
    }

    /// Sends BYE (on every established leg) and waits briefly for the answers.
    async fn hangup(&mut self, reason: &str) {
        if matches!(self.state(), State::Ending | State::Done) {
            return;
        }
        tracing::info!(reason, "hanging up");
        // The other legs are ended on the caller leg's `Ending` event (`on_leg_events`).
        let now = self.now();
        self.caller.hangup(now, reason);
        self.flush().await;
    }

    /// A final error response to the caller's INVITE (before it was answered).
    async fn reject(&mut self, code: u16, reason: &str, end: &str) {
        self.caller.reject(code, reason, end, &[]);
        self.flush().await;
    }

    /// 503 with Retry-After for a call we cannot take (no ports, socket errors).
    async fn unavailable(&mut self, end: &str) {
        self.caller.unavailable(end);
        self.flush().await;
    }

    async fn on_response(&mut self, key: TxKey, msg: Message) {
        if self.agent.as_ref().is_some_and(|a| a.sip.key() == &key) {
            return self.on_agent_sip(uac::Input::Response(msg)).await;
        }
        if self
            .supervisor
            .as_ref()
            .is_some_and(|s| s.leg.sip.key() == &key)
        {
            return self.on_supervisor_sip(uac::Input::Response(msg)).await;
        }
        if msg.call_id() == Some(self.sip_call_id.as_str()) {
            let now = self.now();
            self.caller.handle(now, uas::Input::Response { key, msg });
            self.flush().await;
        } else if self.departing.iter().any(|d| d.sip.owns(&msg)) {
            // A departed leg's INVITE answered as we cancelled it, or its BYE's answer.
            self.on_departed_sip(uac::Input::Response(msg)).await;
        }
    }

    /// A retransmitted 2xx for one of our INVITEs: its leg ACKs again (or ends it).
    async fn on_stray_2xx(&mut self, msg: Message) {
        if self.agent.as_ref().is_some_and(|a| a.sip.owns(&msg)) {
            self.on_agent_sip(uac::Input::Stray2xx(msg)).await
        } else if self
            .supervisor
            .as_ref()
            .is_some_and(|s| s.leg.sip.owns(&msg))
        {
            self.on_supervisor_sip(uac::Input::Stray2xx(msg)).await
        } else if self.departing.iter().any(|d| d.sip.owns(&msg)) {
            self.on_departed_sip(uac::Input::Stray2xx(msg)).await
        }
    }

    async fn finish(&mut self) {
        self.end_agent().await;
        let mut summary: Option<MediaSummary> = None;
        if let Some(m) = self.media.take() {
            let _ = m.cmd.send(MediaCmd::Stop).await;
            summary = tokio::time::timeout(Duration::from_secs(2), m.done)
                .await
                .ok()
                .and_then(|r| r.ok());
        }
        self.end_supervision("call ended").await;
        let mut ids = vec![self.sip_call_id.clone()];
        ids.extend(
            self.departing
                .drain(..)
                .map(|d| d.sip.call_id().to_string()),
        );
        self.ctx.live.remove(&self.ctx.id);
        if let Some(a) = self.agent.take() {
            ids.push(a.sip.call_id().to_string());
            let _ = a.media.cmd.send(MediaCmd::Stop).await;
        }
        let reason = self.caller.end_reason().unwrap_or("normal").to_string();
        tracing::info!(%reason, packets_in = summary.as_ref().map(|s| s.packets_in).unwrap_or(0), "call ended");
        self.ctx
            .shared
            .store
            .call_ended(&self.ctx.id, now_ms(), &reason, summary);
        let _ = self.ctx.core.send(CoreMsg::Ended { call_ids: ids }).await;
    }
}
