//! A call the bot hands to a person (the driver of `handover`, which decides): it joins
//! the queue its topic maps to; the caller hears why and where they are in line, then hold
//! prompts; the router picks an agent, whose softphone is rung with the handoff summary in
//! its headers; when the agent answers, the summary is spoken to the agent alone
//! ("whisper"), then caller and agent are bridged. An agent who does not answer or refuses
//! returns the call to the queue; nobody in time, or the caller pressing 1, books a
//! callback instead. Never dead air, never a dropped call.

use super::handover::{Handover, Out, Route, RouterNote};
use super::{Call, State};
use crate::dialog::summary::Handoff;
use crate::dialog::Escalation;
use crate::media::session::MediaCmd;
use crate::routing::RouteEvent;
use crate::speech::pool::JobError;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A rendered whisper on its way from the pool.
pub(super) type WhisperJob = tokio::sync::oneshot::Receiver<Result<Arc<Vec<i16>>, JobError>>;

/// Waiting for (or talking to) a person.
pub(super) struct Queued {
    /// What the agent is told (headers, whisper, screen).
    pub handoff: Handoff,
    /// Where the call is with people (sans-IO).
    pub line: Handover,
    pub events: mpsc::Receiver<RouteEvent>,
    /// The summary for the agent's ear, being rendered while their phone rings...
    pub whisper: Option<WhisperJob>,
    /// ...and once rendered.
    pub whisper_pcm: Option<Arc<Vec<i16>>>,
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
            match self.whisper.as_mut() {
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
        let asked = crate::store::now_ms();
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
                    .escalation_queued(&self.ctx.id, &q.name, asked);
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
                let line = Handover::queued(q.name, position, whisper.is_some());
                self.queued = Some(Queued {
                    handoff: e.handoff,
                    line,
                    events: rx,
                    whisper,
                    whisper_pcm: None,
                });
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot queue the call: booking a callback");
                t.callback(&media);
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
            ("X-Voxdesk-Queue", q.line.queue().to_string()),
            (
                "Call-Info",
                format!(
                    "<{}{}>;purpose=info",
                    self.ctx.shared.call_info_url, self.ctx.id
                ),
            ),
        ]
    }

    /// Carries out what the handover decided.
    pub(super) async fn drive_line(&mut self) {
        while let Some(o) = self.queued.as_mut().and_then(|q| q.line.poll_output()) {
            self.on_line(o).await;
        }
        if self.queued.as_ref().is_some_and(|q| q.line.is_over()) {
            self.queued = None;
        }
    }

    async fn on_line(&mut self, o: Out) {
        let media = self.media.as_ref().map(|m| m.cmd.clone());
        match o {
            Out::Announce { position } => {
                let (Some(t), Some(m)) = (self.talk.as_mut(), media) else {
                    return;
                };
                let text = if t.language() == "zh" {
                    format!(
                        "您前面还有{}位客户。如需我们稍后回电，请按1。",
                        position.saturating_sub(1)
                    )
                } else if position <= 1 {
                    "You are next in line. To have us call you back instead, press 1.".into()
                } else {
                    format!("You are number {position} in line. To have us call you back instead, press 1.")
                };
                t.announce(&text, "queue", &m);
            }
            Out::PlayHold => {
                if let (Some(m), Some(speech)) = (media, self.ctx.shared.speech.as_ref()) {
                    let lang = self.talk.as_ref().map(|t| t.language()).unwrap_or("en");
                    let hold = speech.prompts_for(lang).hold.clone();
                    let _ = m.send(MediaCmd::Play(hold)).await;
                }
            }
            Out::Ring { agent, binding } => {
                let placed = if self.agent.is_some() {
                    Err("another agent leg is up")
                } else {
                    self.dial_agent(agent, &binding).await
                };
                if let Err(why) = placed {
                    tracing::warn!(why, "cannot ring the agent");
                    let now = self.now();
                    if let Some(q) = self.queued.as_mut() {
                        q.line.on_agent_failed(now);
                    }
                }
            }
            Out::ReleaseAgent => self.release_agent().await,
            Out::AgentTookCall { agent } => {
                self.ctx
                    .shared
                    .store
                    .escalation_answered(&self.ctx.id, &agent);
                tracing::info!(%agent, "agent took the escalated call");
                self.end_talk();
                if let Some(at) = self.agent.as_ref().map(|a| a.media_at) {
                    self.start_scribe(at).await;
                }
            }
            Out::Whisper => {
                let pcm = self.queued.as_ref().and_then(|q| q.whisper_pcm.clone());
                if let (Some(pcm), Some(a)) = (pcm, self.agent.as_ref()) {
                    tracing::info!(
                        secs = pcm.len() as f32 / 8000.0,
                        "whispering the summary to the agent"
                    );
                    let _ = a.media.cmd.send(MediaCmd::Play(pcm)).await;
                }
            }
            Out::Connect => {
                if let Some(m) = media {
                    let _ = m.send(MediaCmd::StopPlayback).await;
                }
                self.bridge().await;
            }
            Out::Callback => {
                if let (Some(t), Some(m)) = (self.talk.as_mut(), media) {
                    let _ = m.send(MediaCmd::StopPlayback).await;
                    t.callback(&m);
                }
            }
            Out::Router(note) => {
                let Some(r) = &self.ctx.shared.router else {
                    return;
                };
                match note {
                    RouterNote::Answered => r.answered(&self.ctx.id),
                    RouterNote::RingFailed => r.ring_failed(&self.ctx.id),
                    RouterNote::Abandon => r.abandon(&self.ctx.id),
                    RouterNote::Ended { agent } => r.ended(&agent),
                }
            }
            Out::CallerLeft => {
                tracing::info!("caller left the queue");
                self.ctx
                    .shared
                    .store
                    .escalation_outcome(&self.ctx.id, "abandoned");
            }
            Out::Overflowed { queue } => {
                tracing::info!(%queue, "waited too long: moved to the overflow queue");
                self.ctx
                    .shared
                    .store
                    .escalation_overflow(&self.ctx.id, &queue);
            }
        }
    }

    /// Whatever the caller last heard is over: their place in line, then hold prompts.
    pub(super) async fn on_caller_playback_done(&mut self) {
        let now = self.now();
        if let Some(q) = self.queued.as_mut() {
            q.line.on_caller_playback_done(now);
            self.drive_line().await;
        }
    }

    pub(super) async fn on_line_timer(&mut self) {
        let now = self.now();
        if let Some(q) = self.queued.as_mut() {
            q.line.on_timer(now);
            self.drive_line().await;
        }
    }

    /// The caller pressed a key while waiting: true when it was used (1 = call me back).
    pub(super) async fn on_queued_digit(&mut self, d: char) -> bool {
        let used = self.queued.as_mut().is_some_and(|q| q.line.on_digit(d));
        if used {
            tracing::info!("caller asked for a callback instead of waiting");
            self.drive_line().await;
        }
        used
    }

    pub(super) async fn on_route(&mut self, ev: RouteEvent) {
        if self.state() != State::Confirmed {
            return;
        }
        let now = self.now();
        let route = match ev {
            RouteEvent::Ring { agent, binding } => Route::Ring { agent, binding },
            RouteEvent::CancelRing { agent } => {
                tracing::info!(%agent, "agent did not answer in time");
                Route::CancelRing
            }
            RouteEvent::Overflow { queue } => Route::Overflow { queue },
            RouteEvent::Expired => {
                tracing::info!("nobody could take the call in time: booking a callback");
                Route::Expired
            }
        };
        if let Some(q) = self.queued.as_mut() {
            q.line.on_route(now, route);
            self.drive_line().await;
        }
    }

    /// The rung agent picked up an escalated call.
    pub(super) async fn on_escalated_answer(&mut self) {
        if let Some(q) = self.queued.as_mut() {
            q.line.on_agent_answered();
            self.drive_line().await;
        }
    }

    /// The summary for the agent's ear is rendered (or could not be).
    pub(super) async fn on_whisper_rendered(&mut self, pcm: Option<Arc<Vec<i16>>>) {
        if let Some(q) = self.queued.as_mut() {
            q.whisper = None;
            q.line.on_whisper_rendered(pcm.is_some());
            q.whisper_pcm = pcm;
            self.drive_line().await;
        }
    }

    /// The agent heard the whisper: connect the caller.
    pub(super) async fn on_whisper_played(&mut self) {
        if let Some(q) = self.queued.as_mut() {
            q.line.on_whisper_played();
            self.drive_line().await;
        }
    }

    /// The agent leg failed while the caller waits: back to the queue.
    pub(super) async fn escalated_ring_failed(&mut self, code: u16) {
        tracing::info!(code, "agent did not take the call: back to the queue");
        let now = self.now();
        if let Some(q) = self.queued.as_mut() {
            q.line.on_agent_failed(now);
            self.drive_line().await;
        }
    }

    /// The call is over: tell the router (wrap-up, or the caller gave up waiting).
    pub(super) async fn escalation_finished(&mut self) {
        if let Some(q) = self.queued.as_mut() {
            q.line.on_call_end();
            self.drive_line().await;
        }
    }
}
