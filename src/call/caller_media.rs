//! What the caller's media tells the call: keys, RTP silence, the end of a prompt, turns
//! and barge-in for the bot, and the bot's pool results.

use super::talk::TalkEvent;
use super::{Call, State};
use crate::media::session::{MediaCmd, MediaEvent};
use crate::speech::turn::TurnEvent;

impl Call {
    pub(super) async fn on_media(&mut self, e: MediaEvent) {
        match e {
            MediaEvent::Dtmf(d) => self.on_digit(d).await,
            MediaEvent::RtpTimeout => {
                if self.state() == State::Confirmed {
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
                self.on_caller_playback_done().await;
                if done && self.state() == State::Confirmed {
                    self.hangup("bot-goodbye").await;
                }
                if self.feature.is_some() && self.state() == State::Confirmed {
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
                    if goodbye && self.state() == State::Confirmed {
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

    pub(super) async fn on_talk(&mut self, e: TalkEvent) {
        let confirmed = self.state() == State::Confirmed;
        let (Some(t), Some(m)) = (self.talk.as_mut(), self.media.as_ref()) else {
            return;
        };
        match e {
            TalkEvent::Transcribed { seq, utt, result } => {
                if confirmed {
                    t.on_transcribed(seq, utt, result, &m.cmd)
                }
            }
            TalkEvent::TranscribedTentative { start, end, result } => {
                if confirmed {
                    t.on_tentative_transcribed(start, end, result, &m.cmd)
                }
            }
            TalkEvent::FirstAudio { seq, at } => t.on_first_audio(seq, at),
            TalkEvent::Rendered { seq, result } => t.on_rendered(seq, result),
        }
    }

    pub(super) async fn on_digit(&mut self, d: char) {
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
        if self.state() == State::Confirmed && self.on_queued_digit(d).await {
            return;
        }
        if self.state() == State::Confirmed {
            if let (Some(t), Some(m)) = (self.talk.as_mut(), self.media.as_ref()) {
                // The bot has the call: keys go to the dialog first (flows, 0 = a person).
                if t.on_dtmf(d, &m.cmd) {
                    return;
                }
            }
        }
        if d == '#'
            && matches!(self.state(), State::Confirmed | State::WaitAck)
            && self.agent.is_none()
        {
            self.hangup("caller-hash").await;
        }
    }
}
