//! Turn-taking, sans-IO: per 20 ms frame a voiced/unvoiced decision and the time go in;
//! speech start, end of turn, barge-in and false barge-in come out.
//!
//! - A turn starts after `min_speech_ms` of (almost) continuous voice; shorter sounds
//!   (coughs, clicks) are reported as noise and ignored.
//! - A turn ends after `end_silence_ms` of silence, or earlier (`early_end_silence_ms`) when
//!   the recogniser says the transcript is stable, or at `max_turn_ms`.
//! - While the bot speaks, `barge_in_ms` of voice interrupts it (stop playback); if that
//!   voice then dies out before `min_speech_ms`, a false barge-in lets the bot resume.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnConfig {
    pub min_speech_ms: u64,
    pub end_silence_ms: u64,
    pub early_end_silence_ms: u64,
    /// Silence after which a `Pause` asks for the transcript so far (so that it can be ready
    /// by the time `early_end_silence_ms` has passed).
    pub pause_ms: u64,
    pub barge_in_ms: u64,
    pub max_turn_ms: u64,
    /// Unvoiced gap tolerated inside the onset before it counts as a new attempt.
    pub onset_gap_ms: u64,
    /// Audio kept before the detected start (the STT gets the whole first syllable).
    pub pre_roll_ms: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            min_speech_ms: 200,
            end_silence_ms: 700,
            early_end_silence_ms: 250,
            pause_ms: 80,
            barge_in_ms: 80,
            max_turn_ms: 20_000,
            onset_gap_ms: 60,
            pre_roll_ms: 200,
        }
    }
}

impl From<&crate::config::SpeechConfig> for TurnConfig {
    /// The `[speech]` section's turn-taking settings.
    fn from(s: &crate::config::SpeechConfig) -> Self {
        TurnConfig {
            min_speech_ms: s.min_speech_ms,
            end_silence_ms: s.end_silence_ms,
            pause_ms: s.early_transcribe_ms,
            early_end_silence_ms: s.early_end_ms,
            barge_in_ms: s.barge_in_ms,
            max_turn_ms: s.max_turn_ms,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEvent {
    /// The caller has been speaking for `min_speech_ms`; the turn began at `start`.
    SpeechStarted { start: Duration },
    /// Caller voice over the bot: stop playback now.
    BargeIn { at: Duration },
    /// The voice that interrupted was too short to be speech: the bot may resume.
    FalseBargeIn { at: Duration },
    /// The caller has been silent for `pause_ms` inside a turn: a good moment to
    /// transcribe what was said so far (the turn may still go on).
    Pause { start: Duration, end: Duration },
    /// A short sound that was not speech.
    Noise { start: Duration, len: Duration },
    /// The caller's turn is over: transcribe `start..end` (pre-roll included).
    TurnEnded {
        start: Duration,
        end: Duration,
        reason: EndReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Silence,
    StableTranscript,
    MaxLength,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Onset {
        start: Duration,
        voiced: Duration,
        last_voice: Duration,
        barged: bool,
    },
    Speaking {
        start: Duration,
        last_voice: Duration,
        /// A `Pause` was reported for this stretch of silence.
        paused: bool,
        /// The transcript up to this point reads complete: end the turn once the silence
        /// reaches `early_end_silence_ms`.
        stable_at: Option<Duration>,
    },
}

pub struct TurnDetector {
    cfg: TurnConfig,
    state: State,
    bot_speaking: bool,
    frame: Duration,
}

impl TurnDetector {
    pub fn new(cfg: TurnConfig) -> Self {
        TurnDetector {
            cfg,
            state: State::Idle,
            bot_speaking: false,
            frame: Duration::from_millis(20),
        }
    }

    /// Tell the detector whether our prompt/answer is playing (barge-in applies then).
    pub fn set_bot_speaking(&mut self, speaking: bool) {
        self.bot_speaking = speaking;
    }

    /// Neither in a turn nor judging a possible start of one.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    pub fn in_turn(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// One frame that started at `now`.
    pub fn on_frame(&mut self, voiced: bool, now: Duration) -> Option<TurnEvent> {
        let c = self.cfg;
        let frame_end = now + self.frame;
        match self.state {
            State::Idle => {
                if voiced {
                    self.state = State::Onset {
                        start: now,
                        voiced: self.frame,
                        last_voice: frame_end,
                        barged: false,
                    };
                    return self.check_barge_in();
                }
                None
            }
            State::Onset {
                start,
                voiced: v,
                last_voice,
                barged,
            } => {
                if voiced {
                    let v = v + self.frame;
                    self.state = State::Onset {
                        start,
                        voiced: v,
                        last_voice: frame_end,
                        barged,
                    };
                    if v >= Self::ms(c.min_speech_ms) {
                        self.state = State::Speaking {
                            start,
                            last_voice: frame_end,
                            paused: false,
                            stable_at: None,
                        };
                        let pre = start.saturating_sub(Self::ms(c.pre_roll_ms));
                        return Some(TurnEvent::SpeechStarted { start: pre });
                    }
                    return self.check_barge_in();
                }
                if frame_end.saturating_sub(last_voice) > Self::ms(c.onset_gap_ms) {
                    self.state = State::Idle;
                    return Some(if barged {
                        TurnEvent::FalseBargeIn { at: frame_end }
                    } else {
                        TurnEvent::Noise {
                            start,
                            len: last_voice - start,
                        }
                    });
                }
                None
            }
            State::Speaking {
                start,
                last_voice,
                paused,
                stable_at,
            } => {
                let (last_voice, paused, stable_at) = if voiced {
                    (frame_end, false, None)
                } else {
                    (last_voice, paused, stable_at)
                };
                self.state = State::Speaking {
                    start,
                    last_voice,
                    paused,
                    stable_at,
                };
                let pre = start.saturating_sub(Self::ms(c.pre_roll_ms));
                if frame_end.saturating_sub(start) >= Self::ms(c.max_turn_ms) {
                    self.state = State::Idle;
                    return Some(TurnEvent::TurnEnded {
                        start: pre,
                        end: frame_end,
                        reason: EndReason::MaxLength,
                    });
                }
                if frame_end.saturating_sub(last_voice) >= Self::ms(c.end_silence_ms) {
                    self.state = State::Idle;
                    return Some(TurnEvent::TurnEnded {
                        start: pre,
                        end: last_voice,
                        reason: EndReason::Silence,
                    });
                }
                if stable_at == Some(last_voice) {
                    if let Some(ev) = self.on_stable_transcript(frame_end, last_voice) {
                        return Some(ev);
                    }
                }
                if !paused && frame_end.saturating_sub(last_voice) >= Self::ms(c.pause_ms) {
                    self.state = State::Speaking {
                        start,
                        last_voice,
                        paused: true,
                        stable_at,
                    };
                    return Some(TurnEvent::Pause {
                        start: pre,
                        end: last_voice,
                    });
                }
                None
            }
        }
    }

    fn check_barge_in(&mut self) -> Option<TurnEvent> {
        if let State::Onset {
            start,
            voiced,
            last_voice,
            barged: false,
        } = self.state
        {
            if self.bot_speaking && voiced >= Self::ms(self.cfg.barge_in_ms) {
                self.state = State::Onset {
                    start,
                    voiced,
                    last_voice,
                    barged: true,
                };
                return Some(TurnEvent::BargeIn { at: last_voice });
            }
        }
        None
    }

    /// The transcript up to `end` (a `Pause`) reads complete: end the turn as soon as the
    /// caller has been silent for `early_end_silence_ms` (now, or at a later frame) instead of
    /// the full hangover. If the caller spoke again since, nothing happens.
    pub fn on_stable_transcript(&mut self, now: Duration, end: Duration) -> Option<TurnEvent> {
        if let State::Speaking {
            start,
            last_voice,
            ref mut stable_at,
            ..
        } = self.state
        {
            if last_voice != end {
                return None;
            }
            *stable_at = Some(end);
            if now.saturating_sub(last_voice) >= Self::ms(self.cfg.early_end_silence_ms) {
                self.state = State::Idle;
                let pre = start.saturating_sub(Self::ms(self.cfg.pre_roll_ms));
                return Some(TurnEvent::TurnEnded {
                    start: pre,
                    end: last_voice,
                    reason: EndReason::StableTranscript,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_config_defaults_are_the_detector_defaults() {
        let from_config = TurnConfig::from(&crate::config::SpeechConfig::default());
        assert_eq!(from_config, TurnConfig::default());
    }

    use super::*;

    /// Feeds a voiced/unvoiced pattern (one char per 20 ms frame: '#' voice, '.' silence);
    /// the events, without the `Pause` hints.
    fn run(d: &mut TurnDetector, pattern: &str, t0: u64) -> Vec<(u64, TurnEvent)> {
        run_with_pauses(d, pattern, t0)
            .into_iter()
            .filter(|(_, e)| !matches!(e, TurnEvent::Pause { .. }))
            .collect()
    }

    fn run_with_pauses(d: &mut TurnDetector, pattern: &str, t0: u64) -> Vec<(u64, TurnEvent)> {
        pattern
            .chars()
            .enumerate()
            .filter_map(|(i, c)| {
                let now = Duration::from_millis(t0 + 20 * i as u64);
                d.on_frame(c == '#', now)
                    .map(|e| (now.as_millis() as u64, e))
            })
            .collect()
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_turn_with_pauses_between_words() {
        let mut d = TurnDetector::new(TurnConfig::default());
        // 0.4 s silence, 0.6 s speech, 0.3 s pause, 0.4 s speech, then silence.
        let p = format!(
            "{}{}{}{}{}",
            ".".repeat(20),
            "#".repeat(30),
            ".".repeat(15),
            "#".repeat(20),
            ".".repeat(50)
        );
        let ev = run(&mut d, &p, 0);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0].1, TurnEvent::SpeechStarted { start: ms(200) });
        // Voice ended at 1.7 s; the turn ends 700 ms later.
        assert_eq!(
            ev[1].1,
            TurnEvent::TurnEnded {
                start: ms(200),
                end: ms(1700),
                reason: EndReason::Silence
            }
        );
        assert_eq!(ev[1].0 + 20, 2400);
    }

    #[test]
    fn coughs_are_noise_and_do_not_barge_in() {
        let mut d = TurnDetector::new(TurnConfig::default());
        d.set_bot_speaking(true);
        let ev = run(&mut d, &format!("{}{}", "###", ".".repeat(10)), 0);
        // Decided once the gap exceeds onset_gap_ms (voice ended at 60 ms).
        assert_eq!(
            ev,
            vec![(
                120,
                TurnEvent::Noise {
                    start: ms(0),
                    len: ms(60)
                }
            )]
        );
    }

    #[test]
    fn barge_in_within_100ms_and_false_barge_in() {
        let mut d = TurnDetector::new(TurnConfig::default());
        d.set_bot_speaking(true);
        // 140 ms of voice over the bot: interrupt at 80 ms, then it was nothing.
        let ev = run(&mut d, &format!("{}{}", "#######", ".".repeat(10)), 1000);
        assert_eq!(ev[0].1, TurnEvent::BargeIn { at: ms(1080) });
        assert!(
            ev[0].1 == TurnEvent::BargeIn { at: ms(1080) } && ev[0].0 + 20 - 1000 <= 100,
            "stop within 100 ms of onset"
        );
        assert!(matches!(ev[1].1, TurnEvent::FalseBargeIn { .. }), "{ev:?}");
        // Real speech over the bot: barge-in, then a turn.
        let ev = run(
            &mut d,
            &format!("{}{}", "#".repeat(40), ".".repeat(40)),
            5000,
        );
        assert!(matches!(ev[0].1, TurnEvent::BargeIn { .. }));
        assert!(matches!(ev[1].1, TurnEvent::SpeechStarted { .. }));
        assert!(matches!(
            ev[2].1,
            TurnEvent::TurnEnded {
                reason: EndReason::Silence,
                ..
            }
        ));
        // Without the bot speaking there is no barge-in event.
        d.set_bot_speaking(false);
        let ev = run(
            &mut d,
            &format!("{}{}", "#".repeat(20), ".".repeat(40)),
            9000,
        );
        assert!(!ev
            .iter()
            .any(|(_, e)| matches!(e, TurnEvent::BargeIn { .. })));
    }

    #[test]
    fn stable_transcript_ends_early_and_max_length_cuts() {
        let mut d = TurnDetector::new(TurnConfig::default());
        let ev = run_with_pauses(&mut d, &format!("{}{}", "#".repeat(30), ".".repeat(14)), 0);
        assert!(d.in_turn());
        // 80 ms into the silence the detector reports a pause (transcribe now) ...
        assert_eq!(
            ev.last(),
            Some(&(
                660,
                TurnEvent::Pause {
                    start: ms(0),
                    end: ms(600)
                }
            ))
        );
        // ... but an answer for an older pause (the caller spoke again since) is ignored.
        assert_eq!(d.on_stable_transcript(ms(900), ms(400)), None);
        // Voice ended at 600 ms; at 900 ms the transcript is stable: end now, not at 1300.
        assert_eq!(
            d.on_stable_transcript(ms(900), ms(600)),
            Some(TurnEvent::TurnEnded {
                start: ms(0),
                end: ms(600),
                reason: EndReason::StableTranscript
            })
        );
        // A transcript that is ready before 250 ms of silence ends the turn at 250 ms.
        let mut d = TurnDetector::new(TurnConfig::default());
        run_with_pauses(&mut d, &format!("{}{}", "#".repeat(30), ".".repeat(8)), 0);
        assert_eq!(d.on_stable_transcript(ms(760), ms(600)), None);
        let ev = run(&mut d, ".....", 760);
        assert_eq!(
            ev,
            [(
                840,
                TurnEvent::TurnEnded {
                    start: ms(0),
                    end: ms(600),
                    reason: EndReason::StableTranscript
                }
            )]
        );
        // ... unless the caller speaks again first.
        let mut d = TurnDetector::new(TurnConfig::default());
        run_with_pauses(&mut d, &format!("{}{}", "#".repeat(30), ".".repeat(8)), 0);
        assert_eq!(d.on_stable_transcript(ms(760), ms(600)), None);
        assert!(run(&mut d, "#.....", 760).is_empty());
        assert!(d.in_turn());
        let mut d = TurnDetector::new(TurnConfig {
            max_turn_ms: 1000,
            ..TurnConfig::default()
        });
        let ev = run(&mut d, &"#".repeat(60), 0);
        assert!(
            ev.iter().any(|(t, e)| *t == 980
                && matches!(
                    e,
                    TurnEvent::TurnEnded {
                        reason: EndReason::MaxLength,
                        ..
                    }
                )),
            "{ev:?}"
        );
    }
}
