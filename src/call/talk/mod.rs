//! The spoken conversation of one call: caller turns go to the recogniser on the inference
//! pool, the transcript to the dialog policy, the reply to the TTS voice sentence by
//! sentence and from there straight into the media session; a caller who starts speaking
//! cancels what is still to come. Every turn is stored, and every reply's latency is
//! measured from the end of the caller's speech to the first packet of the answer.
//!
//! End of turn: when the caller pauses (`Tentative`, 250 ms of silence) what they said so far
//! is transcribed at once. If that transcript reads as a finished sentence and the caller is
//! still silent, the turn ends there (`EndTurn`) instead of after the full silence hangover;
//! if the hangover ends the turn anyway, the transcript already made is reused.

mod speak;

use super::conversation::Conversation;
use crate::brain::Brain;
use crate::dialog::Analysis;
use crate::media::leg::MediaTx;
use crate::media::session::{MediaCmd, Utterance};
use crate::speech::pool::JobError;
use crate::speech::pool::Priority;
use crate::speech::stt::Transcript;
use crate::speech::{to_16k, Speech};
use crate::store::{Store, TurnRow};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A caller turn as the pool hands it back: the transcript and what it means.
pub(super) struct Heard {
    transcript: Transcript,
    analysis: Analysis,
}

/// Results coming back from the inference pool.
pub(super) enum TalkEvent {
    Transcribed {
        seq: u32,
        utt: UttMeta,
        result: Result<Heard, JobError>,
    },
    /// The transcript of a caller's pause (turn audio from `start` to `end`).
    TranscribedTentative {
        start: Duration,
        end: Duration,
        result: Result<Heard, JobError>,
    },
    /// The reply's first sentence is rendered (and queued for playback).
    FirstAudio { seq: u32, at: Instant },
    Rendered {
        seq: u32,
        result: Result<usize, JobError>,
    },
}

pub(super) struct UttMeta {
    start: Duration,
    end: Duration,
    speech_end: Instant,
    decided: Instant,
}

/// A transcript made at a pause, kept in case the turn ends there.
struct Tentative {
    start: Duration,
    end: Duration,
    asked: Instant,
    result: Option<Result<Heard, JobError>>,
    /// The turn ended here while the transcript was still being made.
    committed: Option<UttMeta>,
    /// Set when this transcript is no longer wanted: a job still queued is skipped.
    stale: Arc<AtomicBool>,
    /// The audio, for the turn's own transcript if this one fails (a looped early
    /// decode is not retried, see `WhisperStt`).
    pcm: Vec<i16>,
}

impl Drop for Talk {
    fn drop(&mut self) {
        // A person took over (or the call ended): whatever is still rendering is dropped.
        if let Some(s) = &self.speaking {
            s.cancel.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Tentative {
    fn drop(&mut self) {
        self.stale.store(true, Ordering::Relaxed);
    }
}

/// The reply being spoken (or rendered).
struct Speaking {
    seq: u32,
    cancel: Arc<AtomicBool>,
    speech_end: Instant,
    vad: Duration,
    stt: Duration,
    policy: Duration,
    policy_done: Instant,
    tts_first: Option<Duration>,
    started: bool,
    /// Every piece has been handed to the media task (nothing left rendering): when
    /// playback then goes quiet, the reply has been said in full.
    rendered: bool,
    hang_up: bool,
    /// The reply hands the call to a person: what follows when it has been said.
    escalates: bool,
}

pub(super) struct Talk {
    speech: Arc<Speech>,
    brain: Arc<Brain>,
    store: Store,
    call_id: String,
    caller: String,
    conv: Conversation,
    /// When the call was answered (the dialog's clock).
    answered: Instant,
    /// The escalation whose handoff line is being said; handed to the call (`take_handover`)
    /// once it has been said, or at once if the caller speaks over it.
    handover: Option<crate::dialog::Escalation>,
    handover_ready: bool,
    /// The call went to the queue or a callback: nothing more to hand over.
    handed_over: bool,
    callback_done: bool,
    seq: u32,
    tx: mpsc::Sender<TalkEvent>,
    pub rx: mpsc::Receiver<TalkEvent>,
    speaking: Option<Speaking>,
    tentative: Option<Tentative>,
    /// Turns that ended at a pause whose transcript is still being made.
    awaiting: Vec<Tentative>,
}

/// Hands a pool job's result to the call as a `TalkEvent` (a job that panicked becomes an
/// error naming `what`).
fn forward<T: Send + 'static>(
    rx: tokio::sync::oneshot::Receiver<Result<T, JobError>>,
    tx: mpsc::Sender<TalkEvent>,
    what: &'static str,
    event: impl FnOnce(Result<T, JobError>) -> TalkEvent + Send + 'static,
) {
    tokio::spawn(async move {
        let result = rx.await.unwrap_or(Err(JobError::Panicked(what)));
        let _ = tx.send(event(result)).await;
    });
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl Talk {
    pub fn new(
        speech: Arc<Speech>,
        brain: Arc<Brain>,
        store: Store,
        call_id: String,
        caller: &str,
    ) -> Talk {
        let (tx, rx) = mpsc::channel(16);
        let lang = if speech.language == "zh" { "zh" } else { "en" };
        Talk {
            conv: Conversation::new(brain.dialog(caller, lang), &speech.language),
            caller: caller.to_string(),
            answered: Instant::now(),
            handover: None,
            handover_ready: false,
            handed_over: false,
            callback_done: false,
            speech,
            brain,
            store,
            call_id,
            seq: 0,
            tx,
            rx,
            speaking: None,
            tentative: None,
            awaiting: Vec::new(),
        }
    }

    /// The pool job for a caller turn: speech to text, then what it means (intent, emotion,
    /// prosody, knowledge-base candidates), all on the same worker.
    /// A speculative one gives up when `stop` is set.
    fn hearing(
        &self,
        pcm: Vec<i16>,
        stop: Option<Arc<AtomicBool>>,
    ) -> impl FnOnce(usize) -> Result<Heard, JobError> + Send + 'static {
        let stt = self.speech.stt_for(self.conv.stt_language());
        let lang = self.conv.stt_language().to_string();
        let brain = self.brain.clone();
        let context = self.conv.context();
        move |threads| {
            let audio = to_16k(&pcm);
            let transcript = match &stop {
                Some(stop) => stt.transcribe_unless(&audio, &lang, threads, stop),
                None => stt.transcribe(&audio, &lang, threads),
            }?;
            let reply_lang = if transcript.language == "zh" || lang == "zh" {
                "zh"
            } else {
                "en"
            };
            let mut analysis = brain.analyse(&transcript.text, reply_lang, Some(&pcm), &context);
            analysis.heard_confidence = Some(transcript.confidence);
            Ok(Heard {
                transcript,
                analysis,
            })
        }
    }

    /// The caller paused: transcribe what they said so far.
    pub fn on_tentative(&mut self, u: Utterance) {
        let (start, end) = (u.start, u.end);
        let stale = Arc::new(AtomicBool::new(false));
        self.tentative = Some(Tentative {
            start,
            end,
            asked: Instant::now(),
            result: None,
            committed: None,
            stale: stale.clone(),
            pcm: u.pcm.clone(),
        });
        let hear = self.hearing(u.pcm, Some(stale.clone()));
        let tx = self.tx.clone();
        match self.speech.pool.submit_cancellable(
            Priority::Speculative,
            stale.clone(),
            move |threads| {
                if stale.load(Ordering::Relaxed) {
                    return Err(JobError::Stale);
                }
                hear(threads)
            },
        ) {
            Ok(rx) => forward(rx, tx, "the recogniser", move |result| {
                TalkEvent::TranscribedTentative { start, end, result }
            }),
            Err(e) => {
                tracing::debug!(error = %e, "no early transcript (pool busy)");
                self.tentative = None;
            }
        }
    }

    /// The transcript of a pause is back: end the turn early if it reads as complete, or
    /// answer now if the turn already ended at that pause.
    pub fn on_tentative_transcribed(
        &mut self,
        start: Duration,
        end: Duration,
        result: Result<Heard, JobError>,
        media: &MediaTx,
    ) {
        if let Some(i) = self
            .awaiting
            .iter()
            .position(|t| t.start == start && t.end == end)
        {
            let mut t = self.awaiting.remove(i);
            if let Some(meta) = t.committed.take() {
                if let Err(e) = &result {
                    tracing::debug!(error = %e, "early transcript failed: transcribing the turn");
                    return self.transcribe_turn(std::mem::take(&mut t.pcm), meta);
                }
                self.seq += 1;
                return self.on_transcribed(self.seq, meta, result, media);
            }
        }
        let Some(t) = self
            .tentative
            .as_mut()
            .filter(|t| t.start == start && t.end == end)
        else {
            return; // the caller went on speaking; a newer pause replaced this one
        };
        let complete =
            matches!(&result, Ok(h) if crate::speech::stt::sounds_complete(&h.transcript.text));
        tracing::debug!(
            complete,
            elapsed_ms = ms(t.asked.elapsed()),
            "early transcript"
        );
        t.result = Some(result);
        if complete {
            let _ = media.try_send(MediaCmd::EndTurn { end });
        }
    }

    /// A caller turn ended: transcribe it on the pool (or reuse the transcript made when
    /// the caller paused at the same point).
    pub fn on_utterance(&mut self, u: Utterance, media: &MediaTx) {
        let meta = UttMeta {
            start: u.start,
            end: u.end,
            speech_end: u.speech_end,
            decided: u.decided,
        };
        if let Some(mut t) = self
            .tentative
            .take()
            .filter(|t| t.start == u.start && t.end == u.end)
        {
            match t.result.take() {
                Some(Err(e)) => {
                    // Looped or failed: the turn gets its own transcript below.
                    tracing::debug!(error = %e, "early transcript failed: transcribing the turn");
                }
                Some(result) => {
                    self.seq += 1;
                    // The decision waited for the transcript: count that as recognition.
                    let meta = UttMeta {
                        decided: t.asked,
                        ..meta
                    };
                    return self.on_transcribed(self.seq, meta, result, media);
                }
                None => {
                    // The turn is over; its transcript arrives in on_tentative_transcribed.
                    t.committed = Some(UttMeta {
                        decided: t.asked,
                        ..meta
                    });
                    self.awaiting.push(t);
                    return;
                }
            }
        }
        self.transcribe_turn(u.pcm, meta);
    }

    /// Transcribes a caller turn that has ended, as urgent work on the pool.
    fn transcribe_turn(&mut self, pcm: Vec<i16>, meta: UttMeta) {
        self.seq += 1;
        let seq = self.seq;
        tracing::debug!(
            seq,
            secs = pcm.len() as f32 / 8000.0,
            "transcribing caller turn"
        );
        let hear = self.hearing(pcm, None);
        let job = self.speech.pool.submit(hear);
        let tx = self.tx.clone();
        match job {
            Ok(rx) => forward(rx, tx, "the recogniser", move |result| {
                TalkEvent::Transcribed {
                    seq,
                    utt: meta,
                    result,
                }
            }),
            Err(e) => {
                let _ = tx.try_send(TalkEvent::Transcribed {
                    seq,
                    utt: meta,
                    result: Err(e.into()),
                });
            }
        }
    }

    /// The caller started speaking: whatever the bot still had to say is dropped. True when
    /// that was the goodbye: the conversation is over, so the call ends now (a caller who
    /// says "bye" over the bot's goodbye must not be left on an open line).
    pub fn on_speech_started(&mut self, media: &MediaTx) -> bool {
        self.tentative = None;
        let mut goodbye = false;
        if let Some(s) = self.speaking.take() {
            goodbye = s.hang_up;
            s.cancel.store(true, Ordering::Relaxed);
            let _ = media.try_send(MediaCmd::StopPlayback);
            self.conv.on_speech_started(s.started);
            if s.started {
                tracing::info!(seq = s.seq, "caller interrupted the reply");
                self.store.turn_interrupted(&self.call_id, s.seq);
            } else {
                tracing::info!(
                    seq = s.seq,
                    "caller spoke again before the reply: reply dropped"
                );
            }
        }
        goodbye
    }

    /// A transcript is back: store it, ask the dialog, start speaking the reply.
    pub fn on_transcribed(
        &mut self,
        seq: u32,
        utt: UttMeta,
        result: Result<Heard, JobError>,
        media: &MediaTx,
    ) {
        let stt_done = Instant::now();
        let (t, analysis) = match result {
            Ok(h) => (h.transcript, h.analysis),
            Err(e) => {
                tracing::error!(seq, error = %e, "speech-to-text failed");
                (Transcript::default(), Analysis::default())
            }
        };
        let u = &analysis.understanding;
        // Said for a sensitive slot (a card number, a PIN): neither logged nor stored.
        let text = if self.conv.dialog.collecting_sensitive() {
            crate::dialog::SENSITIVE.to_string()
        } else {
            crate::privacy::redact(&t.text).into_owned()
        };
        tracing::info!(seq, text = %crate::privacy::loggable(&text), confidence = t.confidence, no_speech = t.no_speech,
            stt_ms = ms(t.elapsed), passes = t.passes, audio_ctx = t.audio_ctx, threads = t.threads,
            intent = %u.intent, intent_p = u.intent_confidence, emotion = %u.emotion, anger = u.anger,
            arousal = u.prosody.map(|p| p.arousal).unwrap_or(0.0), nlu_ms = ms(u.elapsed), "caller said");
        tracing::debug!(seq, %text, prosody = ?u.prosody, baseline = ?self.conv.baseline(), "caller's voice");
        self.store.turn(TurnRow {
            call_id: self.call_id.clone(),
            seq,
            speaker: "caller",
            text,
            language: Some(t.language.clone()).filter(|l| !l.is_empty()),
            start_ms: Some(ms(utt.start)),
            end_ms: Some(ms(utt.end)),
            confidence: Some(t.confidence as f64),
            no_speech: Some(t.no_speech as f64),
            kind: None,
            stt_ms: Some(ms(t.elapsed)),
            stt_passes: Some(t.passes as i64),
            intent: Some(u.intent.clone()),
            intent_confidence: Some(u.intent_confidence as f64),
            emotion: Some(u.emotion.clone()),
            anger: Some(u.anger as f64),
            kb_key: analysis.hits.first().map(|h| h.key.clone()),
            nlu_ms: Some(ms(u.elapsed)),
        });
        let reply = self.conv.on_heard(&t.language, &analysis, utt.end);
        if (reply.kind == "waiting" || reply.kind.starts_with("queued-kb:"))
            && self.handover.is_some()
        {
            // The caller spoke over the handoff line: hand over now.
            self.handover_ready = true;
        }
        self.speak(seq, reply, &utt, stt_done, media);
    }

    /// Whether the caller's keys and words now are for a sensitive slot.
    pub fn sensitive_input(&self) -> bool {
        self.conv.dialog.collecting_sensitive()
    }

    /// A keypad press while the bot has the call: true when the dialog used it.
    pub fn on_dtmf(&mut self, digit: char, media: &MediaTx) -> bool {
        let at = self.answered.elapsed();
        let Some(reply) = self.conv.dialog.on_dtmf(digit, at) else {
            return false;
        };
        self.say_now(reply, media);
        true
    }

    /// A person has the call: whatever is still being said or transcribed is dropped.
    pub fn park(&mut self) {
        if let Some(s) = self.speaking.take() {
            s.cancel.store(true, Ordering::Relaxed);
        }
        self.tentative = None;
        self.awaiting.clear();
    }

    /// Back with the caller after a person had the call (turns up to `seq` were theirs).
    pub fn resume_after(&mut self, seq: u32) {
        self.seq = self.seq.max(seq);
    }

    /// The number of the last turn (caller's or bot's).
    pub fn seq(&self) -> u32 {
        self.seq
    }

    pub fn language(&self) -> &str {
        self.conv.language()
    }

    /// The call is over: a question left unanswered becomes a ticket.
    pub fn on_call_end(&mut self) {
        let at = self.answered.elapsed();
        if let Some(t) = self.conv.dialog.on_call_end(at) {
            tracing::info!(reference = %t.reference, "unresolved call: ticket created");
            self.store.ticket(&self.call_id, &self.caller, &t);
        }
    }
}
