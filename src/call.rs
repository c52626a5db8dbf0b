//! One call's actor: owns its SIP dialog(s) and media leg(s), plays the greeting, records,
//! logs DTMF, hangs up on `#`, answers re-INVITE/UPDATE/INFO, enforces session timers and
//! RTP timeouts, and writes the CDR as events happen. A call to a registered agent's
//! extension is bridged to that agent's softphone (B2BUA).

use crate::endpoint::{new_tag, CoreMsg, Shared, ALLOW, SUPPORTED};
use crate::media::g711::Law;
use crate::media::session::{self, MediaCmd, MediaEvent, MediaHandle, MediaSetup, StreamParams};
use crate::registrar::Binding;
use crate::store::{now_ms, MediaSummary, NewCall};
use crate::transport::Flow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use voxdesk_sip::dialog::{
    negotiate_session_timer, Dialog, SessionTimerAction, SessionTimerAnswer, SessionTimerState,
};
use voxdesk_sip::sdp::{
    self, Codec, Direction, LocalMedia, Negotiated, SdpError, SessionDescription,
};
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::{Message, Method};

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
}

#[derive(Clone)]
pub struct CallCtx {
    pub shared: Arc<Shared>,
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

/// The outbound leg to an agent's softphone.
struct AgentLeg {
    username: String,
    call_id: String,
    invite: Message,
    key: Option<TxKey>,
    flow: Flow,
    dialog: Option<Dialog>,
    media: MediaHandle,
    events: mpsc::Receiver<MediaEvent>,
    local: LocalMedia,
    answered: bool,
    bye_sent: bool,
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
    recording: Option<std::path::PathBuf>,
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
    tracing::info!(from = %from.as_ref().map(|f| f.uri.to_string()).unwrap_or_default(), sip_call_id = %sip_call_id, %flow, "incoming call");
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
        recording: None,
    };
    call.run(rx).await;
}

impl Call {
    fn local_media(&self, port: u16) -> LocalMedia {
        LocalMedia {
            address: self.ctx.shared.advertised.clone(),
            port,
            codecs: codecs(&self.ctx.shared.cfg),
            session_id: rand::random::<u32>() as u64,
            session_version: 1,
        }
    }

    /// 503 with Retry-After for a call we cannot take (no ports, socket errors).
    async fn unavailable(&mut self, end: &str) {
        self.reject(
            503,
            "Service Unavailable",
            end,
            &[("Retry-After", "5".into())],
        )
        .await
    }

    fn response(&self, code: u16, reason: &str) -> Message {
        let mut r = self.invite.response(code, reason, Some(&self.local_tag));
        r.push_header("Server", self.ctx.shared.server_header.clone());
        r
    }

    async fn reject(&mut self, code: u16, reason: &str, end: &str, extra: &[(&str, String)]) {
        let mut r = self.response(code, reason);
        for (n, v) in extra {
            r.push_header(n, v.clone());
        }
        self.ctx.respond(&self.invite_key, r).await;
        self.end_reason = Some(end.to_string());
        self.state = State::Done;
    }

    /// Checks the offer, reserves media, sends 180 (and starts ringing the agent, if any).
    async fn prepare(&mut self) {
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
        let Some(lease) = self.ctx.shared.ports.lease() else {
            tracing::warn!("no free RTP port");
            return self.unavailable("no-rtp-ports").await;
        };
        let local = self.local_media(lease.port);
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
            None => StreamParams {
                law: Law::Ulaw,
                payload_type: 0,
                dtmf_pt: Some(101),
                remote: None,
                send: false,
                recv: true,
                remote_ptime_ms: 20,
            },
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
        };
        match session::start(setup, ev_tx).await {
            Ok(h) => {
                self.media = Some(h);
                self.media_events = Some(ev_rx);
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
    async fn answer(&mut self) {
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
        if self.agent.as_ref().map(|a| a.answered).unwrap_or(false) {
            self.bridge().await;
        } else if let Some(m) = &self.media {
            let _ = m
                .cmd
                .send(MediaCmd::Play(self.ctx.shared.greeting.clone()))
                .await;
        }
        tracing::info!(codec, "call answered");
    }

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
                    if let Some(MediaEvent::RtpTimeout) = e { self.hangup("agent-rtp-timeout").await }
                }
                _ = tokio::time::sleep_until(deadline) => self.on_timer().await,
            }
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
        d
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
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
            CallInput::Timeout { key } => {
                if self.agent.as_ref().and_then(|a| a.key.as_ref()) == Some(&key) {
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

    async fn on_ack(&mut self, msg: Message) {
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

    async fn on_request(&mut self, key: TxKey, msg: Message, _flow: Flow) {
        let method = msg
            .method()
            .cloned()
            .unwrap_or(Method::Other(String::new()));
        // Requests on the agent leg's dialog.
        if let Some(a) = self.agent.as_ref() {
            if msg.call_id() == Some(a.call_id.as_str()) {
                return self.on_agent_request(key, msg).await;
            }
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
                self.bye_agent().await;
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
            _ => self.ctx.respond(&key, reply(405)).await,
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
            MediaEvent::PlaybackDone => tracing::debug!("prompt finished"),
            MediaEvent::Latched(addr) => tracing::debug!(%addr, "RTP source latched"),
        }
    }

    async fn on_digit(&mut self, d: char) {
        tracing::info!(digit = %d, "DTMF");
        self.ctx.shared.store.call_dtmf(&self.ctx.id, d);
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
        // Retransmitted 2xx for the agent leg's INVITE: ACK again.
        if let Some(a) = self.agent.as_ref() {
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
        if let Some(a) = self.agent.take() {
            let _ = a.media.cmd.send(MediaCmd::Stop).await;
        }
        let reason = self.end_reason.clone().unwrap_or_else(|| "normal".into());
        tracing::info!(%reason, packets_in = summary.as_ref().map(|s| s.packets_in).unwrap_or(0), "call ended");
        self.ctx
            .shared
            .store
            .call_ended(&self.ctx.id, now_ms(), &reason, summary);
        let mut ids = vec![self.sip_call_id.clone()];
        if let Some(a) = &self.agent {
            ids.push(a.call_id.clone());
        }
        let _ = self.ctx.core.send(CoreMsg::Ended { call_ids: ids }).await;
    }

    // ---- the agent leg (B2BUA) ----

    async fn dial_agent(&mut self) {
        let (username, binding) = self.agents.remove(0);
        let Some(lease) = self.ctx.shared.ports.lease() else {
            return self.unavailable("no-rtp-ports").await;
        };
        let local = self.local_media(lease.port);
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let setup = MediaSetup {
            lease,
            bind: self.ctx.shared.bind_ip,
            params: StreamParams {
                law: Law::Ulaw,
                payload_type: 0,
                dtmf_pt: Some(101),
                remote: None,
                send: false,
                recv: true,
                remote_ptime_ms: 20,
            },
            jitter_ms: self.ctx.shared.cfg.media.jitter_ms,
            rtp_timeout: Duration::from_secs(self.ctx.shared.cfg.media.rtp_timeout_secs),
            record: None,
            cname: format!("voxdesk-{}-agent", self.ctx.id),
        };
        let media = match session::start(setup, ev_tx).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot open RTP socket for the agent leg");
                return self.unavailable("rtp-socket-error").await;
            }
        };
        let flow = binding.flow.clone();
        let call_id = format!("{}-agent@voxdesk", self.ctx.id);
        let caller = self.invite.from_addr().ok();
        let mut inv = Message::request(Method::Invite, binding.uri.clone());
        inv.push_header("Via", self.ctx.shared.via(&flow));
        inv.push_header("Max-Forwards", "70");
        let display = caller
            .as_ref()
            .and_then(|c| c.display.clone())
            .unwrap_or_default()
            .replace('"', "");
        let caller_user = caller
            .as_ref()
            .and_then(|c| c.uri.as_sip().and_then(|u| u.user.clone()))
            .unwrap_or_else(|| "caller".into());
        inv.push_header(
            "From",
            format!(
                "\"{display}\" <sip:{caller_user}@{}>;tag={}",
                self.ctx.shared.advertised_host(),
                new_tag()
            ),
        );
        inv.push_header("To", format!("<{}>", binding.uri));
        inv.push_header("Call-ID", call_id.clone());
        inv.push_header("CSeq", "1 INVITE");
        inv.push_header("Contact", self.ctx.shared.contact(&flow));
        inv.push_header("Allow", ALLOW);
        inv.push_header("Subject", format!("Call from {caller_user}"));
        inv.push_header("User-Agent", self.ctx.shared.server_header.clone());
        inv.push_header("Content-Type", "application/sdp");
        inv.body = sdp::offer(&local, 101).to_bytes();
        tracing::info!(agent = %username, contact = %binding.contact, "ringing agent");
        self.agent = Some(AgentLeg {
            username,
            call_id,
            invite: inv.clone(),
            key: None,
            flow: flow.clone(),
            dialog: None,
            media,
            events: ev_rx,
            local,
            answered: false,
            bye_sent: false,
        });
        let key = voxdesk_sip::txn::client_key_for_request(&inv);
        if let Some(a) = self.agent.as_mut() {
            a.key = key;
        }
        self.ctx.request(&self.sip_call_id, inv, &flow).await;
    }

    async fn on_agent_response(&mut self, msg: Message) {
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
                // Now answer the caller and bridge.
                self.answer().await;
            }
            _ => self.agent_failed(code).await,
        }
    }

    async fn agent_failed(&mut self, code: u16) {
        tracing::info!(code, "agent leg failed");
        if let Some(a) = self.agent.take() {
            let _ = a.media.cmd.send(MediaCmd::Stop).await;
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

    async fn bridge(&mut self) {
        let (Some(m), Some(a)) = (&self.media, &self.agent) else {
            return;
        };
        let (to_agent_tx, to_agent_rx) = mpsc::channel(16);
        let (to_caller_tx, to_caller_rx) = mpsc::channel(16);
        let _ = m.cmd.send(MediaCmd::BridgeOut(Some(to_agent_tx))).await;
        let _ = m.cmd.send(MediaCmd::BridgeIn(Some(to_caller_rx))).await;
        let _ = a
            .media
            .cmd
            .send(MediaCmd::BridgeOut(Some(to_caller_tx)))
            .await;
        let _ = a
            .media
            .cmd
            .send(MediaCmd::BridgeIn(Some(to_agent_rx)))
            .await;
        tracing::info!(agent = %a.username, "caller and agent bridged");
    }

    async fn on_agent_request(&mut self, key: TxKey, msg: Message) {
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
            if !msg.body.is_empty() {
                if let Ok((ans, neg)) = SessionDescription::parse(&msg.body)
                    .map_err(|_| ())
                    .and_then(|o| sdp::answer(&o, &a.local).map_err(|_| ()))
                {
                    let _ = a
                        .media
                        .cmd
                        .send(MediaCmd::Update(stream_params(&neg, neg.ptime_ms)))
                        .await;
                    ok.push_header("Content-Type", "application/sdp");
                    ok.body = ans.to_bytes();
                }
            }
            self.ctx.respond(&key, ok).await;
        } else {
            self.ctx.respond(&key, ok).await;
        }
    }

    async fn bye_agent(&mut self) {
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

    async fn cancel_agent(&mut self) {
        let sip_call_id = self.sip_call_id.clone();
        let Some(a) = self.agent.as_mut() else { return };
        if a.answered || a.bye_sent {
            return self.bye_agent().await;
        }
        a.bye_sent = true;
        // CANCEL: same Request-URI, Call-ID, From, To, CSeq number and top Via as the INVITE.
        let inv = &a.invite;
        let mut c = Message::request(Method::Cancel, inv.request_uri().cloned().expect("request"));
        for n in ["Via", "Max-Forwards", "From", "To", "Call-ID"] {
            if let Some(v) = inv.header(n) {
                c.push_header(n, v);
            }
        }
        c.push_header("CSeq", "1 CANCEL");
        let flow = a.flow.clone();
        self.ctx.request(&sip_call_id, c, &flow).await;
    }
}
