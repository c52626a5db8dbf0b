//! A bridged call keeps being transcribed: both legs' turns go to the recogniser on the
//! inference pool (background priority: the bot's live conversations come first) and are
//! stored speaker-labelled ("caller", "agent") in `turns`, for agent assist and QA. Caller
//! turns are also understood (intent, emotion, anger), so the emotion trajectory goes on
//! past the handoff.

use crate::brain::{Brain, CallContext};
use crate::media::session::Utterance;
use crate::speech::pool::JobError;
use crate::speech::pool::Priority;
use crate::speech::stt::Transcript;
use crate::speech::{to_16k, Speech};
use crate::store::{Store, TurnRow};
use std::sync::Arc;
use std::time::Duration;

/// A bridged turn, transcribed (or the reason it could not be).
struct Scribed {
    seq: u32,
    speaker: &'static str,
    start: Duration,
    end: Duration,
    result: Result<(Transcript, Option<crate::nlu::Understanding>), JobError>,
}

pub(super) struct Scribe {
    speech: Arc<Speech>,
    brain: Option<Arc<Brain>>,
    store: Store,
    call_id: String,
    language: String,
    seq: u32,
    /// Where the agent leg's turn timeline starts on the caller's (call answer = 0).
    agent_offset: Duration,
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl Scribe {
    /// `seq`: the last turn number the bot's conversation used; `language`: the caller's.
    pub fn new(
        speech: Arc<Speech>,
        brain: Option<Arc<Brain>>,
        store: Store,
        call_id: String,
        language: &str,
        seq: u32,
        agent_offset: Duration,
    ) -> Scribe {
        Scribe {
            speech,
            brain,
            store,
            call_id,
            language: language.to_string(),
            seq,
            agent_offset,
        }
    }

    /// The last turn number used.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Goes on after the bot had the caller again (its turns up to `seq`) with a new
    /// agent leg starting `agent_offset` into the call.
    pub fn resume(&mut self, seq: u32, agent_offset: Duration) {
        self.seq = self.seq.max(seq);
        self.agent_offset = agent_offset;
    }

    /// A turn ended on one leg: transcribe it in the background.
    pub fn on_utterance(&mut self, speaker: &'static str, u: Utterance) {
        self.seq += 1;
        let seq = self.seq;
        let (start, end) = if speaker == "agent" {
            (u.start + self.agent_offset, u.end + self.agent_offset)
        } else {
            (u.start, u.end)
        };
        let stt = self.speech.stt_for(&self.language);
        let lang = self.language.clone();
        // The caller's turns are understood too (emotion after the handoff).
        let brain = self.brain.clone().filter(|_| speaker == "caller");
        let pcm = u.pcm;
        let job = self
            .speech
            .pool
            .submit_with(Priority::Background, move |threads| {
                let t = stt.transcribe(&to_16k(&pcm), &lang, threads)?;
                let u = brain.map(|b| {
                    let lang = if t.language == "zh" { "zh" } else { "en" };
                    b.analyse(&t.text, lang, Some(&pcm), &CallContext::default())
                        .understanding
                });
                Ok((t, u))
            });
        match job {
            Ok(rx) => {
                let (store, call_id) = (self.store.clone(), self.call_id.clone());
                // Stored from here: a transcript still being made when the call ends is kept.
                tokio::spawn(async move {
                    let result = rx
                        .await
                        .unwrap_or(Err(JobError::Panicked("the recogniser")));
                    store_turn(
                        &store,
                        &call_id,
                        Scribed {
                            seq,
                            speaker,
                            start,
                            end,
                            result,
                        },
                    );
                });
            }
            Err(e) => tracing::warn!(seq, speaker, error = %e, "bridged turn not transcribed"),
        }
    }
}

/// A transcript is back: store it (empty results are dropped).
fn store_turn(store: &Store, call_id: &str, s: Scribed) {
    let (t, u) = match s.result {
        Ok(r) => r,
        Err(e) => {
            return tracing::error!(seq = s.seq, speaker = s.speaker, error = %e, "speech-to-text failed on a bridged turn");
        }
    };
    if t.text.trim().is_empty() {
        return tracing::debug!(seq = s.seq, speaker = s.speaker, "bridged turn: no speech");
    }
    tracing::info!(seq = s.seq, speaker = s.speaker, text = %crate::privacy::loggable(&t.text), confidence = t.confidence, "bridged turn");
    store.turn(TurnRow {
        call_id: call_id.to_string(),
        seq: s.seq,
        speaker: s.speaker,
        text: t.text.clone(),
        language: Some(t.language.clone()).filter(|l| !l.is_empty()),
        start_ms: Some(ms(s.start)),
        end_ms: Some(ms(s.end)),
        confidence: Some(t.confidence as f64),
        no_speech: Some(t.no_speech as f64),
        kind: Some("bridged".into()),
        stt_ms: Some(ms(t.elapsed)),
        stt_passes: Some(t.passes as i64),
        intent: u.as_ref().map(|u| u.intent.clone()),
        intent_confidence: u.as_ref().map(|u| u.intent_confidence as f64),
        emotion: u.as_ref().map(|u| u.emotion.clone()),
        anger: u.as_ref().map(|u| u.anger as f64),
        kb_key: None,
        nlu_ms: u.as_ref().map(|u| ms(u.elapsed)),
    });
}
