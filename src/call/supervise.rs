//! A supervisor on a live bridged call, started from the API: voxdesk rings the
//! supervisor's registered softphone and, once it answers, routes audio by mode:
//! - listen: the supervisor hears caller and agent (mixed); nobody hears the supervisor;
//! - whisper: as listen, and the agent (only) hears the supervisor;
//! - barge: as listen, and both caller and agent hear the supervisor.
//!
//! The mode can change while connected; `off`, the supervisor hanging up, or the bridge
//! ending (hang-up, transfer) ends it.

use super::agent::AgentLeg;
use super::{stream_params, Call};
use crate::media::session::{MediaCmd, MediaEvent, Party};
use voxdesk_sip::dialog::Dialog;
use voxdesk_sip::sdp::{self, SessionDescription};
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::{Message, Method};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuperviseMode {
    Listen,
    Whisper,
    Barge,
}

impl SuperviseMode {
    pub fn parse(s: &str) -> Option<SuperviseMode> {
        match s {
            "listen" => Some(SuperviseMode::Listen),
            "whisper" => Some(SuperviseMode::Whisper),
            "barge" => Some(SuperviseMode::Barge),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SuperviseMode::Listen => "listen",
            SuperviseMode::Whisper => "whisper",
            SuperviseMode::Barge => "barge",
        }
    }
}

/// Why supervision cannot start (the API maps these to status codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperviseError {
    #[error("{0} is not a supervisor account")]
    NotSupervisor(String),
    #[error("{0} has no registered phone")]
    NotRegistered(String),
    #[error("the call is not bridged to an agent")]
    NotBridged,
    #[error("the call is already supervised by {0}")]
    Busy(String),
    #[error("no RTP port or socket for the supervisor's leg")]
    NoMedia,
}

pub(super) struct Supervisor {
    pub leg: AgentLeg,
    pub mode: SuperviseMode,
}

impl Call {
    /// The API asks to start, change or stop supervision. Ok: "ringing", "connected" or
    /// "ended".
    pub(super) async fn on_supervise(
        &mut self,
        who: String,
        mode: Option<SuperviseMode>,
    ) -> Result<&'static str, SuperviseError> {
        let Some(mode) = mode else {
            if self
                .supervisor
                .as_ref()
                .is_some_and(|s| s.leg.username == who)
            {
                self.end_supervision("stopped from the API").await;
            }
            return Ok("ended");
        };
        if let Some(s) = self.supervisor.as_mut() {
            if s.leg.username != who {
                return Err(SuperviseError::Busy(s.leg.username.clone()));
            }
            s.mode = mode;
            let answered = s.leg.answered;
            tracing::info!(supervisor = %who, mode = mode.as_str(), "supervision mode changed");
            if answered {
                self.route_supervision().await;
                return Ok("connected");
            }
            return Ok("ringing");
        }
        let shared = self.ctx.shared.clone();
        if !shared
            .cfg
            .agents
            .iter()
            .any(|a| a.username == who && a.supervisor)
        {
            return Err(SuperviseError::NotSupervisor(who));
        }
        if !self.agent.as_ref().is_some_and(|a| a.bridged) {
            return Err(SuperviseError::NotBridged);
        }
        let binding = match &shared.router {
            Some(r) => r.binding(&who).await,
            None => None,
        };
        let Some(binding) = binding else {
            return Err(SuperviseError::NotRegistered(who));
        };
        let agent = self
            .agent
            .as_ref()
            .map(|a| a.username.clone())
            .unwrap_or_default();
        let subject = format!(
            "Supervise ({}): {} with {agent}",
            mode.as_str(),
            self.caller_user()
        );
        let headers = vec![
            ("Subject", subject),
            (
                "Call-Info",
                format!("<{}{}>;purpose=info", shared.call_info_url, self.ctx.id),
            ),
        ];
        let leg = self
            .place_leg(who.clone(), &binding, "supervisor", headers)
            .await
            .map_err(|_| SuperviseError::NoMedia)?;
        tracing::info!(supervisor = %who, mode = mode.as_str(), "supervisor's phone ringing");
        self.supervisor = Some(Supervisor { leg, mode });
        Ok("ringing")
    }

    pub(super) async fn on_supervisor_response(&mut self, msg: Message) {
        let code = msg.status().unwrap_or(0);
        if msg.cseq().map(|c| c.method != "INVITE").unwrap_or(true) {
            return;
        }
        let Some(s) = self.supervisor.as_mut() else {
            return;
        };
        match code {
            100..=199 => {}
            200..=299 => {
                let Ok(dialog) = Dialog::uac(&s.leg.invite, &msg) else {
                    return self.end_supervision("unusable 2xx").await;
                };
                let ack = dialog.ack(1, &self.ctx.shared.via(&s.leg.flow));
                let flow = s.leg.flow.clone();
                let again = s.leg.dialog.is_some();
                s.leg.dialog = Some(dialog);
                s.leg.answered = true;
                self.ctx.request(&self.sip_call_id, ack, &flow).await;
                if again {
                    return;
                }
                let neg = SessionDescription::parse(&msg.body)
                    .ok()
                    .and_then(|sd| sdp::accept_answer(&sd, &s.leg.local).ok());
                let Some(neg) = neg else {
                    return self.end_supervision("unusable answer SDP").await;
                };
                let _ = s
                    .leg
                    .media
                    .cmd
                    .send(MediaCmd::Update(stream_params(&neg, 20)))
                    .await;
                tracing::info!(supervisor = %s.leg.username, mode = s.mode.as_str(), "supervisor connected");
                self.route_supervision().await;
            }
            _ => {
                tracing::info!(code, "supervisor's phone did not take the call");
                if let Some(s) = self.supervisor.as_mut() {
                    s.leg.bye_sent = true; // the INVITE failed: no dialog to end
                }
                self.end_supervision("refused").await;
            }
        }
    }

    /// Connects the supervisor's audio for the current mode (and disconnects the rest).
    async fn route_supervision(&mut self) {
        let (Some(s), Some(m), Some(a)) = (&self.supervisor, &self.media, &self.agent) else {
            return;
        };
        let (sup, caller, agent) = (&s.leg.media.cmd, &m.cmd, &a.media.cmd);
        // The supervisor always hears both.
        let (tx, rx) = crate::media::link::frame_link();
        let _ = caller
            .send(MediaCmd::BridgeOut(Party::Supervisor, Some(tx)))
            .await;
        let _ = sup.send(MediaCmd::BridgeIn(Party::Caller, Some(rx))).await;
        let (tx, rx) = crate::media::link::frame_link();
        let _ = agent
            .send(MediaCmd::BridgeOut(Party::Supervisor, Some(tx)))
            .await;
        let _ = sup.send(MediaCmd::BridgeIn(Party::Agent, Some(rx))).await;
        // The agent hears the supervisor when whispering or barging in.
        if s.mode == SuperviseMode::Listen {
            let _ = sup.send(MediaCmd::BridgeOut(Party::Agent, None)).await;
            let _ = agent
                .send(MediaCmd::BridgeIn(Party::Supervisor, None))
                .await;
        } else {
            let (tx, rx) = crate::media::link::frame_link();
            let _ = sup.send(MediaCmd::BridgeOut(Party::Agent, Some(tx))).await;
            let _ = agent
                .send(MediaCmd::BridgeIn(Party::Supervisor, Some(rx)))
                .await;
        }
        // The caller only when barging in.
        if s.mode == SuperviseMode::Barge {
            let (tx, rx) = crate::media::link::frame_link();
            let _ = sup.send(MediaCmd::BridgeOut(Party::Caller, Some(tx))).await;
            let _ = caller
                .send(MediaCmd::BridgeIn(Party::Supervisor, Some(rx)))
                .await;
        } else {
            let _ = sup.send(MediaCmd::BridgeOut(Party::Caller, None)).await;
            let _ = caller
                .send(MediaCmd::BridgeIn(Party::Supervisor, None))
                .await;
        }
        tracing::info!(supervisor = %s.leg.username, mode = s.mode.as_str(), "supervisor audio routed");
    }

    /// Ends supervision: the other legs stop sending to or hearing the supervisor, whose
    /// phone is sent BYE (or CANCEL while it rings).
    pub(super) async fn end_supervision(&mut self, why: &str) {
        let Some(mut s) = self.supervisor.take() else {
            return;
        };
        tracing::info!(supervisor = %s.leg.username, why, "supervision ended");
        for cmd in [
            self.media.as_ref().map(|m| &m.cmd),
            self.agent.as_ref().map(|a| &a.media.cmd),
        ]
        .into_iter()
        .flatten()
        {
            let _ = cmd.send(MediaCmd::BridgeOut(Party::Supervisor, None)).await;
            let _ = cmd.send(MediaCmd::BridgeIn(Party::Supervisor, None)).await;
        }
        if !s.leg.bye_sent {
            s.leg.bye_sent = true;
            let flow = s.leg.flow.clone();
            let req = match s.leg.dialog.as_mut() {
                Some(d) => Some(d.request(Method::Bye, &self.ctx.shared.via(&flow))),
                None => s.leg.invite.cancel_for(),
            };
            if let Some(req) = req {
                self.ctx.request(&self.sip_call_id, req, &flow).await;
            }
        }
        let _ = s.leg.media.cmd.send(MediaCmd::Stop).await;
        self.departing.push(s.leg.call_id.clone());
    }

    /// A request on the supervisor's leg (their BYE ends supervision).
    pub(super) async fn on_supervisor_request(&mut self, key: TxKey, msg: Message) {
        let mut ok = msg.response(200, "OK", None);
        ok.push_header("Server", self.ctx.shared.server_header.clone());
        if msg.method() == Some(&Method::Bye) {
            if let Some(s) = self.supervisor.as_mut() {
                s.leg.bye_sent = true;
            }
            self.ctx.respond(&key, ok).await;
            return self.end_supervision("the supervisor hung up").await;
        }
        if matches!(msg.method(), Some(Method::Invite | Method::Update)) {
            // A re-INVITE (hold, refresh): answer with our side of the session.
            if let Some(s) = self.supervisor.as_ref() {
                ok.push_header("Contact", self.ctx.shared.contact(&s.leg.flow));
                s.leg.answer_offer(&msg, &mut ok).await;
            }
        }
        self.ctx.respond(&key, ok).await;
    }

    pub(super) async fn on_supervisor_media(&mut self, e: MediaEvent) {
        if e == MediaEvent::RtpTimeout {
            self.end_supervision("no RTP from the supervisor").await;
        }
    }

    /// Whether a message belongs to the supervisor's leg.
    pub(super) fn is_supervisor_leg(&self, msg: &Message) -> bool {
        self.supervisor
            .as_ref()
            .is_some_and(|s| msg.call_id() == Some(s.leg.call_id.as_str()))
    }
}
