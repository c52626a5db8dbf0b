//! A supervisor on a live bridged call, started from the API: voxdesk rings the
//! supervisor's registered softphone and, once it answers, routes audio by mode:
//! - listen: the supervisor hears caller and agent (mixed); nobody hears the supervisor;
//! - whisper: as listen, and the agent (only) hears the supervisor;
//! - barge: as listen, and both caller and agent hear the supervisor.
//!
//! The mode can change while connected; `off`, the supervisor hanging up, or the bridge
//! ending (hang-up, transfer) ends it.

use super::agent::AgentLeg;
use super::Call;
use crate::leg::uac;
use crate::media::session::{MediaCmd, MediaEvent, Party};
use voxdesk_sip::Message;

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
            let answered = s.leg.sip.answered();
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

    /// An input for the supervisor's leg: their phone answers, refuses, hangs up.
    pub(super) async fn on_supervisor_sip(&mut self, input: uac::Input) {
        let Some(s) = self.supervisor.as_mut() else {
            return;
        };
        let events = s.leg.feed(&self.ctx, &self.sip_call_id, Some(input)).await;
        for e in events {
            match e {
                uac::Event::Answered { .. } => {
                    if let Some(s) = &self.supervisor {
                        tracing::info!(supervisor = %s.leg.username, mode = s.mode.as_str(), "supervisor connected");
                    }
                    self.route_supervision().await;
                }
                uac::Event::Failed { code } => {
                    tracing::info!(code, "supervisor's phone did not take the call");
                    self.end_supervision("refused").await;
                }
                uac::Event::RemoteBye => self.end_supervision("the supervisor hung up").await,
                uac::Event::Refer { key, msg } => {
                    // A supervisor's phone cannot hand the call on.
                    let mut r = msg.response(603, "Decline", None);
                    r.push_header("Server", self.ctx.shared.server_header.clone());
                    self.ctx.respond(&key, r).await;
                }
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
        let Some(s) = self.supervisor.take() else {
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
        self.release_departing(s.leg).await;
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
            .is_some_and(|s| s.leg.sip.owns(msg))
    }
}
