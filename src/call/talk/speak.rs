//! The bot's voice in a call: a reply is stored, rendered sentence by sentence on the
//! pool and played as it comes; its first audio and the caller's hearing of it are
//! measured (the latency row); announcements and the callback offer take the same way.

use super::{forward, ms, Speaking, Talk, TalkEvent, UttMeta};
use crate::dialog::Reply;
use crate::media::leg::MediaTx;
use crate::media::session::MediaCmd;
use crate::speech::pool::JobError;
use crate::speech::tts::reply_pieces;
use crate::store::{ReplyTiming, TurnRow};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

impl Talk {
    /// Audio rendered before goes out at once: its first audio is now.
    fn say_cached(&mut self, seq: u32, pcm: Arc<Vec<i16>>, media: &MediaTx) {
        let _ = media.try_send(MediaCmd::Say {
            pcm,
            tag: seq as u64,
        });
        let _ = self.tx.try_send(TalkEvent::FirstAudio {
            seq,
            at: Instant::now(),
        });
    }

    /// Stores what the dialog decided (turn, escalation, ticket) and starts saying it.
    pub(super) fn speak(
        &mut self,
        seq: u32,
        reply: Reply,
        utt: &UttMeta,
        stt_done: Instant,
        media: &MediaTx,
    ) {
        let policy_done = Instant::now();
        tracing::info!(seq, kind = %reply.kind, text = %crate::privacy::loggable(&reply.text), hang_up = reply.hang_up, "bot replies");
        tracing::debug!(seq, text = %crate::privacy::redact(&reply.text), "bot reply text");
        self.store.turn(TurnRow {
            call_id: self.call_id.clone(),
            seq,
            speaker: "bot",
            text: reply.text.clone(),
            language: Some(self.conv.stt_language().to_string()),
            kind: Some(reply.kind.clone()),
            kb_key: reply.kb_key.clone(),
            ..Default::default()
        });
        if let Some(e) = &reply.escalation {
            tracing::info!(trigger = e.trigger.as_str(), summary = %crate::privacy::loggable(&e.handoff.line()), "escalating to a person");
            self.store.escalation(&self.call_id, e, "pending");
            // Routing starts at once (the agent's phone rings while the line is said).
            self.handover = Some(e.clone());
            self.handover_ready = true;
        }
        if let Some(t) = &reply.ticket {
            tracing::info!(reference = %t.reference, kind = %t.kind, "ticket created");
            self.store.ticket(&self.call_id, &self.caller, t);
        }
        if let Some(old) = self.speaking.take() {
            old.cancel.store(true, Ordering::Relaxed);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        self.speaking = Some(Speaking {
            seq,
            cancel: cancel.clone(),
            speech_end: utt.speech_end,
            vad: utt.decided.saturating_duration_since(utt.speech_end),
            stt: stt_done.saturating_duration_since(utt.decided),
            policy: policy_done.saturating_duration_since(stt_done),
            policy_done,
            tts_first: None,
            started: false,
            rendered: false,
            hang_up: reply.hang_up,
            escalates: reply.escalation.is_some(),
        });
        if reply.text.is_empty() {
            return;
        }
        // Fixed prompts were rendered at start-up.
        let cached = match reply.kind.as_str() {
            "not-understood" => Some(
                self.speech
                    .prompts_for(self.language())
                    .not_understood
                    .clone(),
            ),
            _ => None,
        };
        if let Some(pcm) = cached {
            self.say_cached(seq, pcm, media);
            self.mark_rendered(seq);
            return;
        }
        // Pieces said before (knowledge-base answers) are in the cache: the first one goes
        // out now, without waiting for a worker.
        let mut parts = reply_pieces(&reply.text, reply.hang_up || reply.escalation.is_some());
        if let Some(pcm) = self.speech.cached(&parts[0]) {
            self.say_cached(seq, pcm, media);
            parts.remove(0);
            if parts.is_empty() {
                self.mark_rendered(seq);
                return;
            }
        }
        let speech = self.speech.clone();
        let out = media.clone();
        let tx = self.tx.clone();
        // (A reply that ends the call is rendered whole, so that "playback done" means done.)
        let job = self.speech.pool.submit(move |_threads| {
            let mut n = 0;
            for s in &parts {
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let pcm = speech.render(s)?;
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                if out
                    .blocking_send(MediaCmd::Say {
                        pcm,
                        tag: seq as u64,
                    })
                    .is_err()
                {
                    break; // the call is over
                }
                if n == 0 {
                    let _ = tx.blocking_send(TalkEvent::FirstAudio {
                        seq,
                        at: Instant::now(),
                    });
                }
                n += 1;
            }
            Ok(n)
        });
        let tx = self.tx.clone();
        match job {
            Ok(rx) => forward(rx, tx, "the voice", move |result| TalkEvent::Rendered {
                seq,
                result,
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot render the reply");
                let _ = media.try_send(MediaCmd::Say {
                    pcm: self.speech.prompts_for(self.language()).hold.clone(),
                    tag: seq as u64,
                });
                self.mark_rendered(seq);
            }
        }
    }

    pub fn on_first_audio(&mut self, seq: u32, at: Instant) {
        if let Some(s) = self.speaking.as_mut().filter(|s| s.seq == seq) {
            s.tts_first
                .get_or_insert(at.saturating_duration_since(s.policy_done));
        }
    }

    pub(super) fn mark_rendered(&mut self, seq: u32) {
        if let Some(s) = self.speaking.as_mut().filter(|s| s.seq == seq) {
            s.rendered = true;
        }
    }

    pub fn on_rendered(&mut self, seq: u32, result: Result<usize, JobError>) {
        self.mark_rendered(seq);
        match result {
            Ok(n) => tracing::debug!(seq, sentences = n, "reply rendered"),
            Err(e) => tracing::error!(seq, error = %e, "text-to-speech failed"),
        }
    }

    /// The first packet of reply `seq` went out: the latency is known.
    pub fn on_reply_started(&mut self, seq: u64, at: Instant) {
        let Some(s) = self.speaking.as_mut().filter(|s| s.seq as u64 == seq) else {
            return;
        };
        if s.started {
            return;
        }
        s.started = true;
        let timing = ReplyTiming {
            vad_ms: ms(s.vad),
            stt_ms: ms(s.stt),
            policy_ms: ms(s.policy),
            tts_first_ms: ms(s.tts_first.unwrap_or_default()),
            reply_latency_ms: ms(at.saturating_duration_since(s.speech_end)),
        };
        tracing::info!(
            seq,
            latency_ms = timing.reply_latency_ms,
            vad_ms = timing.vad_ms,
            stt_ms = timing.stt_ms,
            policy_ms = timing.policy_ms,
            tts_first_ms = timing.tts_first_ms,
            "reply started"
        );
        self.store.turn_timing(&self.call_id, s.seq, timing);
    }

    /// Playback went quiet: true when the reply that asked to end the call has been spoken.
    /// After a handoff line the escalation is ready for the call (`take_handover`).
    pub fn on_playback_done(&mut self) -> bool {
        match &self.speaking {
            Some(s) if s.started && s.hang_up => {
                self.speaking = None;
                true
            }
            Some(s) if s.started && s.escalates => {
                self.speaking = None;
                self.handover_ready = true;
                false
            }
            // Said in full: the caller's next words are a new turn, not an interruption
            // (playback also goes quiet between pieces while the next one renders).
            Some(s) if s.started && s.rendered => {
                self.speaking = None;
                false
            }
            _ => false,
        }
    }

    /// The escalation to act on, once its handoff line has been said.
    pub fn take_handover(&mut self) -> Option<crate::dialog::Escalation> {
        if !self.handover_ready || self.handed_over {
            return None;
        }
        self.handed_over = true;
        self.handover.take()
    }

    /// Says `text` (a queue announcement) as the bot.
    pub fn announce(&mut self, text: &str, kind: &str, media: &MediaTx) {
        let reply = Reply {
            text: text.to_string(),
            kind: kind.to_string(),
            ..Default::default()
        };
        self.say_now(reply, media);
    }

    /// No person can take the handed-over call: book a callback, say so, end the call.
    pub fn callback(&mut self, media: &MediaTx) {
        if self.callback_done {
            return;
        }
        self.callback_done = true;
        self.handed_over = true;
        self.store.escalation_outcome(&self.call_id, "callback");
        let reply = self.conv.dialog.on_no_agent(self.answered.elapsed());
        self.say_now(reply, media);
    }

    pub(super) fn say_now(&mut self, reply: Reply, media: &MediaTx) {
        self.seq += 1;
        let at = self.answered.elapsed();
        let now = Instant::now();
        let utt = UttMeta {
            start: at,
            end: at,
            speech_end: now,
            decided: now,
        };
        self.speak(self.seq, reply, &utt, now, media);
    }
}
