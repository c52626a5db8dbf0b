//! One call's actor: owns its SIP dialog(s) and media leg(s), plays the greeting, records,
//! logs DTMF, hangs up on `#`, answers re-INVITE/UPDATE/INFO, enforces session timers and
//! RTP timeouts, and writes the CDR as events happen. A call to a registered agent's
//! extension is bridged to that agent's softphone (B2BUA).

use crate::media::g711::Law;
use crate::media::leg::MediaHandle;
use crate::media::session::{MediaCmd, MediaEvent, StreamParams};
use crate::registrar::Binding;
use crate::shared::{new_tag, CoreMsg, Shared, SUPPORTED};
use crate::store::{now_ms, MediaSummary, NewCall};
use crate::transport::Flow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use voxdesk_sip::dialog::{Dialog, SessionTimerAction, SessionTimerState};
use voxdesk_sip::sdp::{Codec, Direction, LocalMedia, Negotiated, SessionDescription};
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::{Message, Method};

use crate::speech::turn::TurnEvent;

mod agent;
mod answer;
pub mod conversation;
mod escalate;
mod feature;
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
use talk::{Talk, TalkEvent};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ringing,
    WaitAck,
    Confirmed,
    Ending,
    Done,
}

struct Pending2xx {
    key: TxKey,
    msg: Message,
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
    cseq: u32,
}

struct Call {
    ctx: CallCtx,
    sip_call_id: String,
    invite_key: TxKey,
    invite: Message,
    flow: Flow,
    local_tag: String,
    state: State,
    answer_at: Instant,
    dialog: Option<Dialog>,
    local: Option<LocalMedia>,
    answer_sdp: Option<SessionDescription>,
    negotiated: Option<Negotiated>,
    media: Option<MediaHandle>,
    media_events: Option<mpsc::Receiver<MediaEvent>>,
    pending_2xx: Option<Pending2xx>,
    session_timer: Option<SessionTimerState>,
    /// Origin of the call's monotonic clock for the sans-IO timers.
    clock: Instant,
    bye_deadline: Option<Instant>,
    end_reason: Option<String>,
    agents: Vec<(String, Binding)>,
    agent: Option<AgentLeg>,
    /// Agent legs placed so far (each gets its own Call-ID).
    agent_legs: u32,
    recording: Option<std::path::PathBuf>,
    /// When the caller's media session (its turn timeline) started.
    media_at: Option<Instant>,
    /// The spoken conversation with the bot (absent when speech is off or a person talks).
    talk: Option<Talk>,
    /// The bot's conversation while a person has the call (back if they transfer it).
    parked: Option<Talk>,
    /// Someone listening in (or whispering, or barging in) on the bridged call.
    supervisor: Option<Supervisor>,
    /// Call-IDs of agent legs that left the call (transferred): their late requests.
    departing: Vec<String>,
    /// Transcribes both sides of a bridged call.
    scribe: Option<scribe::Scribe>,
    /// Handed to people: queued, ringing, whispering or bridged.
    queued: Option<escalate::Queued>,
    /// An agent's feature code, applied when the call is answered.
    feature_request: Option<Feature>,
    /// Applied; its confirmation is playing (then voxdesk hangs up).
    feature: Option<Feature>,
    /// When the call is ended whatever it is doing (`limits.max_call_secs`).
    max_end: Option<Instant>,
}

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

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
    let ring = Duration::from_millis(ctx.shared.cfg.sip.ring_ms);
    let mut call = Call {
        ctx,
        sip_call_id,
        invite_key: key,
        invite,
        flow,
        local_tag: new_tag(),
        state: State::Ringing,
        answer_at: Instant::now() + ring,
        dialog: None,
        local: None,
        answer_sdp: None,
        negotiated: None,
        media: None,
        media_events: None,
        pending_2xx: None,
        session_timer: None,
        clock: Instant::now(),
        bye_deadline: None,
        end_reason: None,
        agents,
        agent: None,
        agent_legs: 0,
        recording: None,
        media_at: None,
        talk: None,
        parked: None,
        supervisor: None,
        departing: Vec::new(),
        scribe: None,
        queued: None,
        feature_request: feature,
        feature: None,
        max_end: None,
    };
    let max = call.ctx.shared.cfg.limits.max_call_secs;
    call.max_end = (max > 0).then(|| Instant::now() + Duration::from_secs(max));
    call.run(rx).await;
}

impl Call {
    async fn run(&mut self, mut rx: mpsc::Receiver<CallInput>) {
        self.prepare().await;
        while self.state != State::Done {
            let deadline = self.next_deadline();
            tokio::select! {
                i = rx.recv() => match i {
                    Some(i) => self.on_input(i).await,
                    None => { self.end_reason.get_or_insert_with(|| "internal".into()); break; }
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
                e = async { match self.queued.as_mut() { Some(q) => q.events.recv().await, None => std::future::pending().await } } => {
                    if let Some(e) = e { self.on_route(e).await }
                }
                _ = tokio::time::sleep_until(deadline) => self.on_timer().await,
            }
            let handover = self.talk.as_mut().and_then(|t| t.take_handover());
            if let Some(e) = handover {
                if self.state == State::Confirmed {
                    self.hand_over(e).await;
                }
            }
        }
        self.direct_call_finished();
        self.escalation_finished();
        if let Some(t) = self.talk.as_mut() {
            t.on_call_end();
        }
        self.finish().await;
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut d = far;
        if self.state == State::Ringing && self.agent.is_none() {
            d = d.min(self.answer_at);
        }
        if let Some(p) = &self.pending_2xx {
            d = d.min(p.next_at).min(p.give_up_at);
        }
        if let Some(st) = &self.session_timer {
            if self.state == State::Confirmed {
                d = d.min(self.clock + st.deadline());
            }
        }
        if let Some(b) = self.bye_deadline {
            d = d.min(b);
        }
        if let Some(m) = self.max_end {
            d = d.min(m);
        }
        if let Some(h) = self.queued.as_ref().and_then(|q| q.hold_at) {
            d = d.min(h);
        }
        d
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.max_end.is_some_and(|m| now >= m) {
            // `limits.max_call_secs`: no call holds ports and workers for ever.
            self.max_end = None;
            tracing::info!("call reached limits.max_call_secs; hanging up");
            if self.state == State::Ringing {
                self.cancel_agent().await;
                self.reject(503, "Service Unavailable", "max-duration", &[])
                    .await;
            } else {
                self.hangup("max-duration").await;
            }
        }
        if self.state == State::Ringing && self.agent.is_none() && now >= self.answer_at {
            self.answer().await;
        }
        if let Some(p) = self.pending_2xx.as_mut() {
            if now >= p.give_up_at {
                self.pending_2xx = None;
                tracing::warn!("no ACK for our 2xx within 64*T1");
                if self.state == State::WaitAck {
                    self.hangup("no-ack").await;
                }
            } else if now >= p.next_at {
                p.interval = (p.interval * 2).min(T2);
                p.next_at = now + p.interval;
                let (key, msg) = (p.key.clone(), p.msg.clone());
                self.ctx.respond(&key, msg).await;
            }
        }
        let action = match self.session_timer.as_mut() {
            Some(st) if self.state == State::Confirmed => st.on_timer(now - self.clock),
            _ => None,
        };
        match action {
            Some(SessionTimerAction::Expired) => {
                tracing::info!("session timer expired without refresh");
                self.hangup("session-expired").await;
            }
            Some(SessionTimerAction::Refresh) => self.refresh_session().await,
            None => {}
        }
        if let Some(b) = self.bye_deadline {
            if now >= b {
                self.state = State::Done;
            }
        }
        if self
            .queued
            .as_ref()
            .and_then(|q| q.hold_at)
            .is_some_and(|h| now >= h)
        {
            self.on_hold_timer().await;
        }
    }

    /// We are the refresher: send an UPDATE (the timer fires halfway through each interval).
    async fn refresh_session(&mut self) {
        let Some(st) = self.session_timer else {
            return;
        };
        let Some(d) = self.dialog.as_mut() else {
            return;
        };
        let mut upd = d.request(Method::Update, &self.ctx.shared.via(&self.flow));
        upd.push_header(
            "Session-Expires",
            format!("{};refresher=uas", st.timer.interval_secs),
        );
        upd.push_header("Supported", SUPPORTED);
        self.ctx.request(&self.sip_call_id, upd, &self.flow).await;
    }

    async fn on_input(&mut self, i: CallInput) {
        match i {
            CallInput::Cancel { invite_key }
                if invite_key == self.invite_key && self.state == State::Ringing =>
            {
                tracing::info!("caller cancelled");
                self.cancel_agent().await;
                self.reject(487, "Request Terminated", "caller-cancel", &[])
                    .await;
            }
            CallInput::Cancel { .. } => {}
            CallInput::Shutdown => match self.state {
                State::Ringing => {
                    self.cancel_agent().await;
                    self.reject(
                        503,
                        "Service Unavailable",
                        "server-shutdown",
                        &[("Retry-After", "30".into())],
                    )
                    .await
                }
                State::WaitAck | State::Confirmed => self.hangup("server-shutdown").await,
                _ => self.state = State::Done,
            },
            CallInput::Ack { msg } => self.on_ack(msg).await,
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
                if self.supervisor.as_ref().and_then(|s| s.leg.key.as_ref()) == Some(&key) {
                    self.end_supervision("no answer").await;
                } else if self.agent.as_ref().and_then(|a| a.key.as_ref()) == Some(&key) {
                    self.agent_failed(408).await;
                } else if self.state == State::Ending {
                    self.state = State::Done;
                } else if key.server {
                    tracing::warn!("INVITE transaction timed out");
                    self.hangup("transaction-timeout").await;
                }
            }
        }
    }

    async fn on_media(&mut self, e: MediaEvent) {
        match e {
            MediaEvent::Dtmf(d) => self.on_digit(d).await,
            MediaEvent::RtpTimeout => {
                if self.state == State::Confirmed {
                    tracing::warn!("no RTP from the caller: ending the call");
                    self.hangup("rtp-timeout").await;
                }
            }
            MediaEvent::PlaybackDone => {
                tracing::debug!("prompt finished");
                let done = self
                    .talk
                    .as_mut()
                    .map(|t| t.on_playback_done())
                    .unwrap_or(false);
                self.on_caller_playback_done();
                if done && self.state == State::Confirmed {
                    self.hangup("bot-goodbye").await;
                }
                if self.feature.is_some() && self.state == State::Confirmed {
                    self.hangup("feature-code").await;
                }
            }
            MediaEvent::Utterance(u) => {
                tracing::info!(
                    start_ms = u.start.as_millis() as u64,
                    end_ms = u.end.as_millis() as u64,
                    reason = ?u.reason,
                    "caller turn"
                );
                if let (Some(t), Some(m)) = (self.talk.as_mut(), self.media.as_ref()) {
                    t.on_utterance(u, &m.cmd);
                } else if let Some(s) = self.scribe.as_mut() {
                    s.on_utterance("caller", u);
                }
            }
            MediaEvent::Tentative(u) => {
                if let Some(t) = self.talk.as_mut() {
                    t.on_tentative(u);
                }
            }
            MediaEvent::ReplyStarted { tag, at } => {
                if let Some(t) = self.talk.as_mut() {
                    t.on_reply_started(tag, at);
                }
            }
            MediaEvent::Latched(addr) => tracing::debug!(%addr, "RTP source latched"),
            MediaEvent::Turn(t) => match t {
                TurnEvent::BargeIn { at } => tracing::info!(
                    at_ms = at.as_millis() as u64,
                    "caller barged in: playback paused"
                ),
                TurnEvent::FalseBargeIn { .. } => {
                    tracing::info!("false barge-in: playback resumed")
                }
                TurnEvent::SpeechStarted { .. } => {
                    let goodbye = match (self.talk.as_mut(), self.media.as_ref()) {
                        (Some(t), Some(m)) => t.on_speech_started(&m.cmd),
                        _ => false,
                    };
                    if goodbye && self.state == State::Confirmed {
                        tracing::info!("caller spoke over the goodbye: the call ends");
                        self.hangup("bot-goodbye").await;
                    }
                }
                TurnEvent::TurnEnded { start, end, reason } => tracing::info!(
                    start_ms = start.as_millis() as u64,
                    end_ms = end.as_millis() as u64,
                    ?reason,
                    "caller turn"
                ),
                _ => tracing::debug!(?t, "turn-taking"),
            },
        }
    }

    async fn on_talk(&mut self, e: TalkEvent) {
        let (Some(t), Some(m)) = (self.talk.as_mut(), self.media.as_ref()) else {
            return;
        };
        match e {
            TalkEvent::Transcribed { seq, utt, result } => {
                if self.state == State::Confirmed {
                    t.on_transcribed(seq, utt, result, &m.cmd)
                }
            }
            TalkEvent::TranscribedTentative { start, end, result } => {
                if self.state == State::Confirmed {
                    t.on_tentative_transcribed(start, end, result, &m.cmd)
                }
            }
            TalkEvent::FirstAudio { seq, at } => t.on_first_audio(seq, at),
            TalkEvent::Rendered { seq, result } => t.on_rendered(seq, result),
        }
    }

    async fn on_digit(&mut self, d: char) {
        // Keys typed for a sensitive slot, or while a person has the call (a card number
        // for an agent's payment line), are neither logged nor stored: `x` stands in.
        let bridged = self.agent.as_ref().is_some_and(|a| a.bridged);
        let secret = bridged || self.talk.as_ref().is_some_and(|t| t.sensitive_input());
        if secret {
            tracing::info!("DTMF (not logged: sensitive or with a person)");
            self.ctx.shared.store.call_dtmf(&self.ctx.id, 'x');
        } else {
            tracing::info!(digit = %d, "DTMF");
            self.ctx.shared.store.call_dtmf(&self.ctx.id, d);
        }
        if let Some(a) = self.agent.as_ref().filter(|a| a.bridged) {
            // A person has the call: the caller's keys are theirs (IVRs, card numbers).
            let _ = a.media.cmd.send(MediaCmd::SendDigit(d)).await;
            return;
        }
        if self.state == State::Confirmed && self.on_queued_digit(d).await {
            return;
        }
        if self.state == State::Confirmed {
            if let (Some(t), Some(m)) = (self.talk.as_mut(), self.media.as_ref()) {
                // The bot has the call: keys go to the dialog first (flows, 0 = a person).
                if t.on_dtmf(d, &m.cmd) {
                    return;
                }
            }
        }
        if d == '#'
            && matches!(self.state, State::Confirmed | State::WaitAck)
            && self.agent.is_none()
        {
            self.hangup("caller-hash").await;
        }
    }

    /// Sends BYE (on every established leg) and waits briefly for the answers.
    async fn hangup(&mut self, reason: &str) {
        if matches!(self.state, State::Ending | State::Done) {
            return;
        }
        self.end_reason.get_or_insert_with(|| reason.to_string());
        self.end_supervision("call ended").await;
        self.bye_agent().await;
        let Some(d) = self.dialog.as_mut() else {
            self.state = State::Done;
            return;
        };
        tracing::info!(reason, "hanging up");
        let bye = d.request(Method::Bye, &self.ctx.shared.via(&self.flow));
        self.ctx.request(&self.sip_call_id, bye, &self.flow).await;
        self.pending_2xx = None;
        self.state = State::Ending;
        self.bye_deadline = Some(Instant::now() + Duration::from_secs(5));
    }

    async fn on_response(&mut self, key: TxKey, msg: Message) {
        if self.agent.as_ref().and_then(|a| a.key.as_ref()) == Some(&key) {
            return self.on_agent_response(msg).await;
        }
        if self.supervisor.as_ref().and_then(|s| s.leg.key.as_ref()) == Some(&key) {
            return self.on_supervisor_response(msg).await;
        }
        let code = msg.status().unwrap_or(0);
        let method = msg.cseq().map(|c| c.method).unwrap_or_default();
        if method == "BYE" && code >= 200 {
            if self.state == State::Ending
                && self
                    .agent
                    .as_ref()
                    .map(|a| !a.bye_sent || msg.call_id() != Some(a.call_id.as_str()))
                    .unwrap_or(true)
            {
                self.state = State::Done;
            }
        } else if method == "UPDATE" && code >= 300 {
            tracing::warn!(code, "session refresh failed");
            self.hangup("session-refresh-failed").await;
        }
    }

    async fn on_stray_2xx(&mut self, msg: Message) {
        // Retransmitted 2xx for an agent's or supervisor's INVITE: ACK again.
        for a in [
            self.agent.as_ref(),
            self.supervisor.as_ref().map(|s| &s.leg),
        ]
        .into_iter()
        .flatten()
        {
            if let (Some(d), Ok(c)) = (&a.dialog, msg.cseq()) {
                if msg.call_id() == Some(a.call_id.as_str()) && c.method == "INVITE" {
                    let ack = d.ack(c.seq, &self.ctx.shared.via(&a.flow));
                    let flow = a.flow.clone();
                    self.ctx.request(&self.sip_call_id, ack, &flow).await;
                }
            }
        }
    }

    async fn finish(&mut self) {
        self.cancel_agent().await;
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
        ids.append(&mut self.departing);
        self.ctx.live.remove(&self.ctx.id);
        if let Some(a) = self.agent.take() {
            ids.push(a.call_id.clone());
            let _ = a.media.cmd.send(MediaCmd::Stop).await;
        }
        let reason = self.end_reason.clone().unwrap_or_else(|| "normal".into());
        tracing::info!(%reason, packets_in = summary.as_ref().map(|s| s.packets_in).unwrap_or(0), "call ended");
        self.ctx
            .shared
            .store
            .call_ended(&self.ctx.id, now_ms(), &reason, summary);
        let _ = self.ctx.core.send(CoreMsg::Ended { call_ids: ids }).await;
    }
}
