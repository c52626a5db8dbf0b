//! A call the bot hands to a person: it joins the queue its topic maps to, the caller hears
//! why and where they are in line, then hold prompts; the router picks an agent, whose
//! softphone is rung with the handoff summary in its headers; when the agent answers, the
//! summary is spoken to the agent alone ("whisper"), then caller and agent are bridged. An
//! agent who does not answer or refuses returns the call to the queue; nobody in time, or
//! the caller pressing 1, books a callback instead. Never dead air, never a dropped call.

use super::{Call, State};
use crate::dialog::summary::Handoff;
use crate::dialog::Escalation;
use crate::media::session::MediaCmd;
use crate::routing::RouteEvent;
use crate::speech::pool::JobError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Waiting for (or talking to) a person.
pub(super) struct Queued {
    pub handoff: Handoff,
    pub queue: String,
    pub events: mpsc::Receiver<RouteEvent>,
    /// The next hold prompt (while nothing else plays).
    pub hold_at: Option<Instant>,
    /// The agent picked up; their whisper is playing.
    pub whispering: bool,
    /// The agent who took the call (for wrap-up when it ends).
    pub agent: Option<String>,
    /// Where the caller is in line, told once the handoff line has been said.
    pub announce: Option<usize>,
    /// The summary for the agent's ear, rendered while their phone rings.
    pub whisper: Option<tokio::sync::oneshot::Receiver<Result<Arc<Vec<i16>>, JobError>>>,
    /// The agent answered before the summary was rendered: it is awaited by the call's
    /// loop (never inline), then whispered.
    pub awaiting_whisper: bool,
}

/// What a waiting call hears next: the router, or the whisper's render.
pub(super) enum Waiting {
    Route(RouteEvent),
    /// The summary for the agent's ear (None: it could not be rendered).
    Whisper(Option<Arc<Vec<i16>>>),
}

impl Queued {
    /// The next thing that happens to a waiting call (pending for ever if nothing can).
    pub async fn next(&mut self) -> Waiting {
        let whisper = async {
            match self.whisper.as_mut().filter(|_| self.awaiting_whisper) {
                Some(rx) => rx.await.ok().and_then(|r| r.ok()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(e) = self.events.recv() => Waiting::Route(e),
            pcm = whisper => Waiting::Whisper(pcm),
        }
    }
}

/// Silence between hold prompts.
const HOLD_GAP: Duration = Duration::from_secs(4);

/// A SIP header value from free text: one line, printable, bounded.
fn header_safe(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

impl Call {
    /// The bot has said its handoff line: queue the call, or book a callback when calls are
    /// not routed to people.
    pub(super) async fn hand_over(&mut self, e: Escalation) {
        let Some(media) = self.media.as_ref().map(|m| m.cmd.clone()) else {
            return;
        };
        let (Some(router), Some(t)) = (self.ctx.shared.router.clone(), self.talk.as_mut()) else {
            if let Some(t) = self.talk.as_mut() {
                t.callback(&media);
            }
            return;
        };
        let lang = t.language().to_string();
        let routing = &self.ctx.shared.cfg.routing;
        let Some(q) = routing.queue_for(&e.handoff.intent).cloned() else {
            return t.callback(&media);
        };
        let (tx, rx) = mpsc::channel(16);
        match router
            .enqueue(&self.ctx.id, &q.name, &lang, q.priority, tx)
            .await
        {
            Ok(position) => {
                tracing::info!(queue = %q.name, position, "waiting for a person");
                self.ctx
                    .shared
                    .store
                    .escalation_queued(&self.ctx.id, &q.name);
                // Render the whisper now, while the agent's phone rings.
                let whisper = match (&self.ctx.shared.speech, routing.whisper) {
                    (Some(speech), true) => {
                        let (voice, text) = (speech.clone(), e.handoff.spoken());
                        speech
                            .pool
                            .submit(move |_| voice.render(&text).map_err(JobError::from))
                            .ok()
                    }
                    _ => None,
                };
                self.queued = Some(Queued {
                    handoff: e.handoff,
                    queue: q.name,
                    events: rx,
                    hold_at: None,
                    whispering: false,
                    agent: None,
                    announce: Some(position),
                    whisper,
                    awaiting_whisper: false,
                });
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot queue the call: booking a callback");
                t.callback(&media);
            }
        }
    }

    /// Whatever the caller last heard is over: their place in line, then hold prompts,
    /// while they wait.
    pub(super) fn on_caller_playback_done(&mut self) {
        let Some(q) = self.queued.as_mut() else {
            return;
        };
        if q.agent.is_some() {
            return;
        }
        let Some(position) = q.announce.take() else {
            q.hold_at = Some(Instant::now() + HOLD_GAP);
            return;
        };
        let (Some(t), Some(m)) = (self.talk.as_mut(), self.media.as_ref()) else {
            return;
        };
        let text = if t.language() == "zh" {
            format!(
                "您前面还有{}位客户。如需我们稍后回电，请按1。",
                position.saturating_sub(1)
            )
        } else if position <= 1 {
            "You are next in line. To have us call you back instead, press 1.".to_string()
        } else {
            format!("You are number {position} in line. To have us call you back instead, press 1.")
        };
        t.announce(&text, "queue", &m.cmd);
    }

    pub(super) async fn on_hold_timer(&mut self) {
        let Some(q) = self.queued.as_mut() else {
            return;
        };
        q.hold_at = None;
        if q.agent.is_some() {
            return;
        }
        if let (Some(m), Some(speech)) = (self.media.as_ref(), self.ctx.shared.speech.as_ref()) {
            let lang = self.talk.as_ref().map(|t| t.language()).unwrap_or("en");
            let _ = m
                .cmd
                .send(MediaCmd::Play(speech.prompts_for(lang).hold.clone()))
                .await;
        }
    }

    /// The caller pressed a key while waiting: true when it was used (1 = call me back).
    pub(super) async fn on_queued_digit(&mut self, d: char) -> bool {
        let Some(q) = self.queued.as_ref() else {
            return false;
        };
        if d != '1' || q.agent.is_some() {
            return false;
        }
        tracing::info!("caller asked for a callback instead of waiting");
        if let Some(r) = &self.ctx.shared.router {
            r.abandon(&self.ctx.id);
        }
        self.release_agent().await;
        self.queued = None;
        if let (Some(t), Some(m)) = (self.talk.as_mut(), self.media.as_ref()) {
            let _ = m.cmd.send(MediaCmd::StopPlayback).await;
            t.callback(&m.cmd);
        }
        true
    }

    pub(super) async fn on_route(&mut self, ev: RouteEvent) {
        if self.state() != State::Confirmed || self.queued.is_none() {
            return;
        }
        match ev {
            RouteEvent::Ring { agent, binding } => {
                if self.agent.is_some() {
                    tracing::warn!(%agent, "asked to ring an agent while another leg is up");
                    if let Some(r) = &self.ctx.shared.router {
                        r.ring_failed(&self.ctx.id);
                    }
                    return;
                }
                self.agents = vec![(agent, *binding)];
                self.dial_agent().await;
            }
            RouteEvent::CancelRing { agent } => {
                tracing::info!(%agent, "agent did not answer in time");
                self.release_agent().await;
            }
            RouteEvent::Overflow { queue } => {
                tracing::info!(%queue, "waited too long: moved to the overflow queue");
                self.ctx
                    .shared
                    .store
                    .escalation_overflow(&self.ctx.id, &queue);
                if let Some(q) = self.queued.as_mut() {
                    q.queue = queue;
                }
            }
            RouteEvent::Expired => {
                tracing::info!("nobody could take the call in time: booking a callback");
                self.release_agent().await;
                self.queued = None;
                if let (Some(t), Some(m)) = (self.talk.as_mut(), self.media.as_ref()) {
                    let _ = m.cmd.send(MediaCmd::StopPlayback).await;
                    t.callback(&m.cmd);
                }
            }
        }
    }

    /// Headers that tell the agent's phone what the call is about.
    pub(super) fn handoff_headers(&self) -> Vec<(&'static str, String)> {
        let Some(q) = self.queued.as_ref() else {
            return Vec::new();
        };
        let line = header_safe(&q.handoff.line(), 200);
        vec![
            ("Subject", line.clone()),
            ("X-Voxdesk-Summary", header_safe(&q.handoff.line(), 500)),
            ("X-Voxdesk-Queue", q.queue.clone()),
            (
                "Call-Info",
                format!(
                    "<{}{}>;purpose=info",
                    self.ctx.shared.call_info_url, self.ctx.id
                ),
            ),
        ]
    }

    /// The agent picked up an escalated call: the bot steps back, the agent hears the
    /// summary, then the legs are bridged.
    pub(super) async fn on_escalated_answer(&mut self) {
        let Some(agent) = self.agent.as_ref().map(|a| a.username.clone()) else {
            return;
        };
        if let Some(r) = &self.ctx.shared.router {
            r.answered(&self.ctx.id);
        }
        self.ctx
            .shared
            .store
            .escalation_answered(&self.ctx.id, &agent);
        tracing::info!(%agent, "agent took the escalated call");
        self.end_talk();
        if let Some(at) = self.agent.as_ref().map(|a| a.media_at) {
            self.start_scribe(at).await;
        }
        let mut wait = false;
        if let Some(q) = self.queued.as_mut() {
            q.agent = Some(agent.clone());
            q.hold_at = None;
            wait = q.whisper.is_some();
            q.awaiting_whisper = wait;
        }
        if !wait {
            self.connect_agent().await;
        }
    }

    /// The summary for the agent's ear is rendered (or failed): whisper it, then connect.
    pub(super) async fn on_whisper_rendered(&mut self, pcm: Option<Arc<Vec<i16>>>) {
        if let Some(q) = self.queued.as_mut() {
            q.awaiting_whisper = false;
            q.whisper = None;
        }
        if self.state() != State::Confirmed {
            return;
        }
        if let (Some(pcm), Some(a)) = (pcm, self.agent.as_ref()) {
            tracing::info!(
                secs = pcm.len() as f32 / 8000.0,
                "whispering the summary to the agent"
            );
            let _ = a.media.cmd.send(MediaCmd::Play(pcm)).await;
            if let Some(q) = self.queued.as_mut() {
                q.whispering = true;
            }
            return;
        }
        self.connect_agent().await;
    }

    /// The agent heard the whisper (or there was none): connect the caller.
    pub(super) async fn connect_agent(&mut self) {
        if let Some(q) = self.queued.as_mut() {
            q.whispering = false;
        }
        if let Some(m) = self.media.as_ref() {
            let _ = m.cmd.send(MediaCmd::StopPlayback).await;
        }
        self.bridge().await;
    }

    /// The agent leg failed while the caller waits: back to the queue.
    pub(super) fn escalated_ring_failed(&mut self, code: u16) {
        tracing::info!(code, "agent did not take the call: back to the queue");
        if let Some(r) = &self.ctx.shared.router {
            r.ring_failed(&self.ctx.id);
        }
        if let Some(q) = self.queued.as_mut() {
            q.hold_at.get_or_insert(Instant::now() + HOLD_GAP);
        }
    }

    /// The call is over: tell the router (wrap-up, or the caller gave up waiting).
    pub(super) fn escalation_finished(&mut self) {
        let Some(q) = self.queued.take() else { return };
        let Some(r) = &self.ctx.shared.router else {
            return;
        };
        match q.agent {
            Some(agent) => r.ended(&agent),
            None => {
                r.abandon(&self.ctx.id);
                tracing::info!("caller left the queue");
                self.ctx
                    .shared
                    .store
                    .escalation_outcome(&self.ctx.id, "abandoned");
            }
        }
    }
}
