//! Hearing the caller, 20 ms at a time: voice activity, the turn detector and the caller's
//! recent audio on the detector's timeline, so an ended turn (or a pause inside one) can be
//! handed to the recogniser. Sans-IO: frames and "is the bot speaking?" go in, turn events
//! come out; time is the frame count. The media session (a call) and `voxdesk talk` both
//! hear through it, so they cannot disagree on when a turn ends or a barge-in happens.

use super::turn::{TurnConfig, TurnDetector, TurnEvent};
use super::vad::Vad;
use std::collections::VecDeque;
use std::time::Duration;

/// Samples in a 20 ms frame at 8 kHz.
const FRAME: usize = 160;

pub struct Hearing {
    vad: Box<dyn Vad>,
    turns: TurnDetector,
    /// The caller's recent audio (sample 0 = frame 0 of the timeline).
    heard: VecDeque<i16>,
    /// The timeline position of `heard[0]`, in samples.
    base: u64,
    /// What is kept during a turn: the longest turn, its pre-roll and some slack.
    cap: usize,
    frames: u64,
}

impl Hearing {
    pub fn new(vad: Box<dyn Vad>, cfg: TurnConfig) -> Hearing {
        Hearing {
            vad,
            cap: ((cfg.max_turn_ms + cfg.pre_roll_ms + 2000) * 8) as usize,
            turns: TurnDetector::new(cfg),
            heard: VecDeque::new(),
            base: 0,
            frames: 0,
        }
    }

    /// The start of the next frame on the timeline.
    pub fn now(&self) -> Duration {
        Duration::from_millis(self.frames * 20)
    }

    /// One frame of the caller's audio (`FRAME` samples), with whether the bot is speaking
    /// over it (barge-in is possible only then). Returns the turn event it caused, if any.
    pub fn on_frame(&mut self, rx: &[i16], bot_speaking: bool) -> Option<TurnEvent> {
        let now = self.now();
        self.frames += 1;
        self.heard.extend(rx.iter().copied());
        // Outside a turn only the last second is kept (enough for the pre-roll).
        let cap = if self.turns.is_idle() { 8000 } else { self.cap };
        if self.heard.len() > cap {
            let drop = self.heard.len() - cap;
            self.heard.drain(..drop);
            self.base += drop as u64;
        }
        self.turns.set_bot_speaking(bot_speaking);
        let voiced = self.vad.score(rx) > 0.5;
        self.turns.on_frame(voiced, now)
    }

    /// A frame nobody listens to: the timeline moves on, nothing is kept.
    pub fn skip_frame(&mut self) {
        self.frames += 1;
        self.heard.clear();
        self.base = self.frames * FRAME as u64;
    }

    /// A transcript of the pause that ended at `end` reads as a finished sentence: the turn
    /// may end now (see `TurnDetector::on_stable_transcript`).
    pub fn on_stable_transcript(&mut self, end: Duration) -> Option<TurnEvent> {
        let now = self.now();
        self.turns.on_stable_transcript(now, end)
    }

    /// The caller's audio between two points of the timeline (what is still kept).
    pub fn span(&self, start: Duration, end: Duration) -> Vec<i16> {
        let to_idx = |d: Duration| {
            ((d.as_millis() as u64 * 8).saturating_sub(self.base) as usize).min(self.heard.len())
        };
        let (a, b) = (to_idx(start), to_idx(end));
        self.heard.range(a..b.max(a)).copied().collect()
    }

    /// Inside a caller's turn (speech started, not yet ended).
    pub fn in_turn(&self) -> bool {
        self.turns.in_turn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::vad::EnergyVad;

    fn tone(level: i16) -> [i16; FRAME] {
        let mut f = [0i16; FRAME];
        for (i, s) in f.iter_mut().enumerate() {
            *s = if i % 8 < 4 { level } else { -level };
        }
        f
    }

    #[test]
    fn a_turn_is_heard_and_its_audio_kept() {
        let mut h = Hearing::new(Box::new(EnergyVad::default()), TurnConfig::default());
        let mut ended = None;
        for i in 0..200 {
            let f = if (25..75).contains(&i) {
                tone(8000)
            } else {
                [0; FRAME]
            };
            if let Some(TurnEvent::TurnEnded { start, end, .. }) = h.on_frame(&f, false) {
                // Taken at the event: once idle, only the last second is kept.
                ended = Some((start, end, h.span(start, end)));
            }
        }
        let (start, end, pcm) = ended.expect("the turn ended");
        assert!(start <= Duration::from_millis(500) && end >= Duration::from_millis(1400));
        assert_eq!(pcm.len(), ((end - start).as_millis() * 8) as usize);
        assert!(pcm.contains(&8000));
        assert!(!h.in_turn());
    }

    #[test]
    fn a_skipped_frame_keeps_nothing() {
        let mut h = Hearing::new(Box::new(EnergyVad::default()), TurnConfig::default());
        h.on_frame(&tone(8000), false);
        h.skip_frame();
        assert_eq!(h.now(), Duration::from_millis(40));
        assert!(h.span(Duration::ZERO, Duration::from_millis(40)).is_empty());
    }
}
