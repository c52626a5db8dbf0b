//! An agent transfers the caller (RFC 3515 REFER on the agent's leg): blind, to a colleague
//! (`sip:agent2@...`, rung first, the queue's agents if they do not answer) or to a queue
//! (`sip:billing@...`). voxdesk is the caller's side of that dialog, so it takes the transfer
//! on itself: 202, a final NOTIFY (sipfrag 200), BYE to the transferring agent (who goes to
//! wrap-up), the caller hears the transfer prompt and hold audio, the call waits at the head
//! of its priority for the next agent, who gets the summary (and who transferred) first.

use super::agent::{feed, AgentLeg, Departed};
use super::handover::Handover;
use super::{Call, State};
use crate::leg::uac;
use crate::media::session::{MediaCmd, Party};
use crate::speech::pool::JobError;
use tokio::sync::mpsc;
use voxdesk_sip::header::NameAddr;
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::Message;

/// Where a REFER sends the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Agent(String),
    Queue(String),
    /// Attended: the transferring agent's consultation call (its Call-ID and tags, RFC
    /// 3891 Replaces) with the colleague who then takes the caller.
    Replaces {
        call_id: String,
        to_tag: String,
        from_tag: String,
    },
}

/// A transferred call waits ahead of new calls of its queue.
const TRANSFER_PRIORITY_BOOST: i32 = 10;

/// Reads a Refer-To value: the target, or the status code to refuse the REFER with.
pub(super) fn target_of(
    refer_to: Option<&str>,
    cfg: &crate::config::Config,
) -> Result<Target, u16> {
    let v = refer_to.ok_or(400u16)?;
    let addr = NameAddr::parse(v).map_err(|_| 400u16)?;
    let uri = addr.uri.as_sip().ok_or(416u16)?;
    if let Some((_, v)) = uri
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Replaces"))
    {
        return parse_replaces(&voxdesk_sip::uri::percent_decode(v)).ok_or(400);
    }
    let user = uri.user_decoded().ok_or(404u16)?;
    if cfg.agents.iter().any(|a| a.username == user) {
        Ok(Target::Agent(user))
    } else if cfg.routing.queues.iter().any(|q| q.name == user) {
        Ok(Target::Queue(user))
    } else {
        Err(404)
    }
}

/// `call-id;to-tag=..;from-tag=..` (RFC 3891).
fn parse_replaces(v: &str) -> Option<Target> {
    let mut parts = v.split(';');
    let call_id = parts.next()?.trim().to_string();
    let (mut to_tag, mut from_tag) = (None, None);
    for p in parts {
        let (k, val) = p.split_once('=')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to_tag = Some(val.trim().to_string()),
            "from-tag" => from_tag = Some(val.trim().to_string()),
            _ => {}
        }
    }
    if call_id.is_empty() {
        return None;
    }
    Some(Target::Replaces {
        call_id,
        to_tag: to_tag?,
        from_tag: from_tag?,
    })
}

impl Call {
    /// REFER on the agent's leg.
    pub(super) async fn on_agent_refer(&mut self, key: TxKey, msg: Message) {
        let server = self.ctx.shared.server_header.clone();
        let reply = |code: u16| {
            let mut r = msg.response(code, voxdesk_sip::reason_phrase(code), None);
            r.push_header("Server", server.clone());
            r
        };
        let bridged = self.agent.as_ref().is_some_and(|a| a.bridged);
        let Some(router) = self.ctx.shared.router.clone().filter(|_| bridged) else {
            // Only a bridged call can be handed on, and only where calls are routed.
            return self.ctx.respond(&key, reply(403)).await;
        };
        let target = match target_of(msg.header("Refer-To"), &self.ctx.shared.cfg) {
            Ok(t) => t,
            Err(code) => {
                tracing::info!(code, refer_to = ?msg.header("Refer-To"), "transfer refused");
                return self.ctx.respond(&key, reply(code)).await;
            }
        };
        // Blind: to a queue, or to a colleague (who waits in the call's queue).
        let (to_queue, to_agent) = match target {
            Target::Replaces {
                call_id,
                to_tag,
                from_tag,
            } => {
                let taken = self.take_consulted_leg(&call_id, &to_tag, &from_tag).await;
                let Some(new_leg) = taken else {
                    tracing::info!(%call_id, "attended transfer: no such consultation call");
                    return self.ctx.respond(&key, reply(481)).await;
                };
                self.ctx.respond(&key, reply(202)).await;
                return self.attended_transfer(new_leg).await;
            }
            Target::Queue(q) => (Some(q), None),
            Target::Agent(a) => (None, Some(a)),
        };
        self.ctx.respond(&key, reply(202)).await;
        self.end_supervision("the agent transferred the call").await;
        let Some(mut leg) = self.agent.take() else {
            return;
        };
        let from = leg.username.clone();
        tracing::info!(agent = %from, queue = ?to_queue, to = ?to_agent, "agent transferred the call (blind)");
        self.notify_transfer_done(&mut leg).await;
        // Unbridge: the caller hears the transfer prompt, then hold audio.
        if let Some(m) = &self.media {
            let _ = m.cmd.send(MediaCmd::BridgeOut(Party::Agent, None)).await;
            let _ = m.cmd.send(MediaCmd::BridgeIn(Party::Agent, None)).await;
            let _ = m.cmd.send(MediaCmd::StopPlayback).await;
            if let Some(speech) = &self.ctx.shared.speech {
                let lang = self
                    .talk
                    .as_ref()
                    .or(self.parked.as_ref())
                    .map(|t| t.language())
                    .unwrap_or("en");
                let _ = m
                    .cmd
                    .send(MediaCmd::Play(speech.prompts_for(lang).transfer.clone()))
                    .await;
            }
        }
        self.release_departing(leg).await;
        router.ended(&from);
        self.resume_talk().await;
        let queue = to_queue
            .clone()
            .or_else(|| self.queued.as_ref().map(|q| q.line.queue().to_string()))
            .or_else(|| {
                let queues = &self.ctx.shared.cfg.routing.queues;
                queues.first().map(|q| q.name.clone())
            })
            .unwrap_or_default();
        let priority = self
            .ctx
            .shared
            .cfg
            .routing
            .queues
            .iter()
            .find(|q| q.name == queue)
            .map(|q| q.priority)
            .unwrap_or(0)
            + TRANSFER_PRIORITY_BOOST;
        let lang = self
            .parked
            .as_ref()
            .map(|t| t.language().to_string())
            .unwrap_or_else(|| "en".into());
        let (tx, rx) = mpsc::channel(16);
        let how = match &to_agent {
            Some(a) => format!("transferred by {from} to {a}"),
            None => format!("transferred by {from} to the {queue} queue"),
        };
        self.ctx
            .shared
            .store
            .escalation_transferred(&self.ctx.id, &how, &queue);
        let handoff = self
            .queued
            .as_ref()
            .map(|q| q.handoff.clone())
            .unwrap_or_default();
        // The next agent hears who transferred the call, then the summary.
        let whisper = match (&self.ctx.shared.speech, self.ctx.shared.cfg.routing.whisper) {
            (Some(speech), true) => {
                let voice = speech.clone();
                let text = format!("Transferred by {from}. {}", handoff.spoken());
                speech
                    .pool
                    .submit(move |_| voice.render(&text).map_err(JobError::from))
                    .ok()
            }
            _ => None,
        };
        match router
            .enqueue_for(
                &self.ctx.id,
                &queue,
                &lang,
                priority,
                to_agent.as_deref(),
                tx,
            )
            .await
        {
            Ok(position) => {
                tracing::info!(%queue, position, "transferred call waiting");
                let now = self.now();
                let line = Handover::transferred(now, queue, whisper.is_some());
                self.queued = Some(super::escalate::Queued {
                    handoff,
                    line,
                    events: rx,
                    whisper,
                    whisper_pcm: None,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot queue the transferred call");
                self.hangup("transfer-failed").await;
            }
        }
    }

    /// Asks the call the consultation belongs to for its agent leg (the colleague).
    async fn take_consulted_leg(
        &mut self,
        call_id: &str,
        to_tag: &str,
        from_tag: &str,
    ) -> Option<AgentLeg> {
        let other = self.ctx.live.get_by_sip_call_id(call_id)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        other
            .send(super::CallInput::Surrender {
                tags: (to_tag.to_string(), from_tag.to_string()),
                reply,
            })
            .await
            .ok()?;
        tokio::time::timeout(std::time::Duration::from_secs(2), rx)
            .await
            .ok()?
            .ok()?
    }

    /// The colleague the agent consulted takes the caller: the transferring agent is told
    /// (NOTIFY) and released, the colleague's leg joins this call and is bridged.
    async fn attended_transfer(&mut self, mut new_leg: AgentLeg) {
        self.end_supervision("the agent transferred the call").await;
        let Some(mut leg) = self.agent.take() else {
            return;
        };
        let (from, to) = (leg.username.clone(), new_leg.username.clone());
        tracing::info!(agent = %from, to = %to, "agent transferred the call (attended)");
        self.notify_transfer_done(&mut leg).await;
        self.release_departing(leg).await;
        if let Some(r) = &self.ctx.shared.router {
            r.ended(&from);
        }
        // From now on requests on the colleague's dialog come to this call.
        let _ = self
            .ctx
            .core
            .send(crate::shared::CoreMsg::Adopt {
                call: self.sip_call_id.clone(),
                leg: new_leg.sip.call_id().to_string(),
            })
            .await;
        let queue = self
            .queued
            .as_ref()
            .map(|q| q.line.queue().to_string())
            .unwrap_or_default();
        let store = &self.ctx.shared.store;
        store.escalation_transferred(
            &self.ctx.id,
            &format!("transferred by {from} to {to} (attended)"),
            &queue,
        );
        store.escalation_answered(&self.ctx.id, &to);
        if let Some(q) = self.queued.as_mut() {
            q.line.taken_over_by(to.clone());
        }
        new_leg.bridged = false;
        self.agent = Some(new_leg);
        self.bridge().await;
    }

    /// Another call's agent asks for this call's agent leg (this call is their
    /// consultation with a colleague): it is handed over, and this call ends.
    pub(super) async fn surrender(&mut self, tags: (String, String)) -> Option<AgentLeg> {
        let d = self.caller.dialog()?;
        let (local, remote) = (d.local_tag.as_str(), d.remote_tag.as_str());
        // RFC 3891: to-tag is ours, from-tag theirs; either order is accepted.
        let matches =
            (tags.0 == local && tags.1 == remote) || (tags.0 == remote && tags.1 == local);
        if !matches || self.state() != State::Confirmed || !self.agent.as_ref()?.bridged {
            return None;
        }
        self.end_supervision("the call was taken over").await;
        let mut leg = self.agent.take()?;
        if let Some(m) = &self.media {
            let _ = m.cmd.send(MediaCmd::BridgeOut(Party::Agent, None)).await;
            let _ = m.cmd.send(MediaCmd::BridgeIn(Party::Agent, None)).await;
        }
        let _ = leg
            .media
            .cmd
            .send(MediaCmd::BridgeOut(Party::Caller, None))
            .await;
        let _ = leg
            .media
            .cmd
            .send(MediaCmd::BridgeIn(Party::Caller, None))
            .await;
        leg.bridged = false;
        tracing::info!(agent = %leg.username, "consultation taken over by an attended transfer");
        self.hangup("transferred").await;
        Some(leg)
    }

    /// Tells the transferring agent the transfer is done (one NOTIFY, subscription over).
    async fn notify_transfer_done(&mut self, leg: &mut AgentLeg) {
        leg.sip.notify_transfer_done();
        leg.feed(&self.ctx, &self.sip_call_id, None).await;
    }

    /// Ends a leg that is no longer part of the call (BYE or CANCEL, media stopped); it
    /// stays with the call for its phone's late answers and requests.
    pub(super) async fn release_departing(&mut self, mut leg: AgentLeg) {
        leg.sip.end();
        leg.feed(&self.ctx, &self.sip_call_id, None).await;
        let _ = leg.media.cmd.send(MediaCmd::Stop).await;
        self.departing.push(Departed {
            sip: leg.sip,
            flow: leg.flow,
        });
    }

    /// An input for a leg that left the call: its BYE is answered, the rest refused, a
    /// 2xx crossing our CANCEL ACKed and ended.
    pub(super) async fn on_departed_sip(&mut self, input: uac::Input) {
        let msg = match &input {
            uac::Input::Request { msg, .. }
            | uac::Input::Response(msg)
            | uac::Input::Stray2xx(msg) => msg,
            uac::Input::Timeout { .. } => return,
        };
        let Some(d) = self.departing.iter_mut().find(|d| d.sip.owns(msg)) else {
            return;
        };
        let owner = self.sip_call_id.clone();
        feed(&self.ctx, &owner, &mut d.sip, &d.flow, None, Some(input)).await;
    }

    /// Whether a message belongs to a leg that has left the call.
    pub(super) fn is_departed(&self, msg: &Message) -> bool {
        self.departing.iter().any(|d| d.sip.owns(msg)) && self.state() != State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_targets() {
        let cfg = crate::config::Config::default();
        let t = |v: &str| target_of(Some(v), &cfg);
        assert_eq!(
            t("<sip:agent2@127.0.0.1:5060>"),
            Ok(Target::Agent("agent2".into()))
        );
        assert_eq!(
            t("sip:billing@voxdesk"),
            Ok(Target::Queue("billing".into()))
        );
        assert_eq!(
            t("\"Billing\" <sip:billing@10.0.0.1;transport=udp>"),
            Ok(Target::Queue("billing".into()))
        );
        assert_eq!(t("<sip:nobody@127.0.0.1>"), Err(404));
        assert_eq!(
            t("<sip:agent2@127.0.0.1?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>"),
            Ok(Target::Replaces {
                call_id: "abc@h".into(),
                to_tag: "1".into(),
                from_tag: "2".into()
            })
        );
        assert_eq!(t("<sip:agent2@h?Replaces=abc%3Bto-tag%3D1>"), Err(400));
        assert_eq!(t("<tel:+15550100>"), Err(416));
        assert_eq!(t("not a uri <"), Err(400));
        assert_eq!(target_of(None, &cfg), Err(400));
    }
}
