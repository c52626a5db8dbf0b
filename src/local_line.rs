//! `voxdesk talk`: a local test line. The caller is this machine's microphone and speaker
//! (cpal), or a WAV file; the bot is the same pipeline a phone call gets: 8 kHz audio, the
//! energy VAD and turn detector, early end of turn on a complete transcript, Whisper, the
//! dialog policy, Piper, barge-in. From a file, time is virtual: each reply is placed in the
//! output after the time its recognition and synthesis really took, so the output WAV
//! (left = caller, right = bot) sounds like the call would have.

use crate::brain::Brain;
use crate::call::conversation::Conversation;
use crate::config::Config;
use crate::media::wav::{self, Recorder};
use crate::speech::hearing::Hearing;
use crate::speech::stt::Transcript;
use crate::speech::tts::speech_chunks;
use crate::speech::turn::{TurnConfig, TurnEvent};
use crate::speech::{to_16k, Speech};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FRAME: usize = 160;

/// One exchange of the conversation, for the report.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub caller: String,
    pub bot: String,
    /// End of the caller's speech to the first sample of the reply (virtual time).
    pub latency_ms: u64,
    pub interrupted: bool,
    /// The reply's kind ("kb:<key>", "escalate:<trigger>", "goodbye", ...).
    pub kind: String,
    /// What the NLU made of the caller's words.
    pub intent: String,
    pub emotion: String,
    pub anger: f32,
}

/// The bot side of a local conversation, driven one 20 ms frame at a time.
struct Bot<'a> {
    speech: &'a Speech,
    brain: &'a Brain,
    conv: Conversation,
    /// Voice activity, turn-taking and the caller's recent audio, as on a call.
    hearing: Hearing,
    playing: VecDeque<i16>,
    paused: VecDeque<i16>,
    /// Reply audio waiting for its (virtual) render time: (frame it is ready, audio).
    pending: Option<(u64, Vec<i16>, usize)>,
    /// The transcript made at the last pause: (end, transcript).
    tentative: Option<(Duration, Transcript)>,
    /// A complete-sounding transcript of a pause, and when (virtual time) it is ready:
    /// `(ready_at, start, end)`. Only then may it end the turn, and only if the caller has
    /// not spoken again by that frame (as on a call, where the decode takes real time).
    stable: Option<(Duration, Duration, Duration)>,
    exchanges: Vec<Exchange>,
    /// Index of the exchange whose reply is playing, and the frame its speech ended.
    replying: Option<(usize, u64)>,
    threads: usize,
}

fn frames_for(d: Duration) -> u64 {
    (d.as_millis() as u64).div_ceil(20)
}

impl<'a> Bot<'a> {
    fn new(speech: &'a Speech, brain: &'a Brain, cfg: &Config, greeting: &[i16]) -> Bot<'a> {
        let lang = if speech.language == "zh" { "zh" } else { "en" };
        Bot {
            speech,
            brain,
            conv: Conversation::new(brain.dialog("", lang), &speech.language),
            hearing: Hearing::new(speech.vad.make(), TurnConfig::from(&cfg.speech)),
            playing: greeting.iter().copied().collect(),
            paused: VecDeque::new(),
            pending: None,
            tentative: None,
            stable: None,
            exchanges: Vec::new(),
            replying: None,
            threads: speech.pool.cores(),
        }
    }

    fn transcribe(&mut self, start: Duration, end: Duration) -> Result<Transcript> {
        let audio = to_16k(&self.hearing.span(start, end));
        let lang = self.conv.stt_language();
        Ok(self
            .speech
            .stt_for(lang)
            .transcribe(&audio, lang, self.threads)?)
    }

    /// Answers a finished turn: the reply becomes audible after the compute time it took.
    fn respond(
        &mut self,
        t: Transcript,
        frame: u64,
        start: Duration,
        end: Duration,
        spent: Duration,
    ) -> Result<()> {
        let t0 = Instant::now();
        let heard = self.hearing.span(start, end);
        // As on a call (`call::talk`): a Chinese transcript is answered in Chinese.
        let lang = if t.language == "zh" || self.conv.language() == "zh" {
            "zh"
        } else {
            "en"
        };
        let context = self.conv.context();
        let mut analysis = self.brain.analyse(&t.text, lang, Some(&heard), &context);
        analysis.heard_confidence = Some(t.confidence);
        let mut reply = self.conv.on_heard(&t.language, &analysis, end);
        let u = &analysis.understanding;
        println!("caller: {}", t.text);
        println!(
            "        (heard {:.2}, intent {} {:.2}, emotion {}, anger {:.2}{})",
            t.confidence,
            u.intent,
            u.intent_confidence,
            u.emotion,
            u.anger,
            analysis
                .hits
                .first()
                .map(|h| format!(", best entry {} {:.2}", h.key, h.score))
                .unwrap_or_default()
        );
        if let Some(e) = &reply.escalation {
            // No people on a local line: say the handoff, then what a caller hears when
            // nobody can take the call.
            println!("        (escalation: {})", e.handoff.line());
            let no_agent = self.conv.dialog.on_no_agent(end);
            reply.text = format!("{} {}", reply.text, no_agent.text);
        }
        let mut audio = Vec::new();
        let mut first = None;
        for chunk in speech_chunks(&reply.text) {
            audio.extend(self.speech.render(&chunk)?.iter());
            first.get_or_insert(t0.elapsed());
        }
        let ready = frame + frames_for(spent + first.unwrap_or_default());
        let end_frame = frames_for(end);
        println!("bot:    {}", reply.text);
        self.exchanges.push(Exchange {
            caller: t.text,
            bot: reply.text,
            latency_ms: (ready.saturating_sub(end_frame)) * 20,
            interrupted: false,
            kind: reply.kind,
            intent: u.intent.clone(),
            emotion: u.emotion.clone(),
            anger: u.anger,
        });
        self.pending = Some((ready, audio, self.exchanges.len() - 1));
        Ok(())
    }

    /// One frame of caller audio in, one frame of bot audio out.
    fn step(&mut self, frame: u64, rx: &[i16; FRAME]) -> Result<[i16; FRAME]> {
        let now = Duration::from_millis(frame * 20);
        if let Some((ready, _, _)) = &self.pending {
            if frame >= *ready {
                let (_, audio, idx) = self.pending.take().unwrap_or_default();
                self.playing.extend(audio);
                self.replying = Some((idx, frame));
            }
        }
        match self.hearing.on_frame(rx, !self.playing.is_empty()) {
            Some(TurnEvent::BargeIn { .. }) => self.paused = std::mem::take(&mut self.playing),
            Some(TurnEvent::FalseBargeIn { .. }) => self.playing = std::mem::take(&mut self.paused),
            Some(TurnEvent::SpeechStarted { .. }) => {
                // Talking over a reply that had begun playing is an interruption (it
                // counts for this turn's anger, as on a call); one not yet audible is
                // just dropped.
                let audible = !self.paused.is_empty();
                if audible || self.pending.is_some() {
                    if let Some((idx, _)) = self.replying.take() {
                        self.exchanges[idx].interrupted = true;
                    }
                }
                self.conv.on_speech_started(audible);
                self.paused.clear();
                self.pending = None;
                self.tentative = None;
                self.stable = None;
            }
            Some(TurnEvent::Pause { start, end }) => {
                let t0 = Instant::now();
                let t = self.transcribe(start, end)?;
                let spent = t0.elapsed();
                let complete = crate::speech::stt::sounds_complete(&t.text);
                self.tentative = Some((end, t));
                // Virtual time: the decision lands on the frame where the transcript is
                // ready (or where the silence reaches the early-end point, later).
                self.stable = complete.then_some((now + spent, start, end));
            }
            Some(TurnEvent::TurnEnded { start, end, .. }) => {
                let t0 = Instant::now();
                let t = match self.tentative.take() {
                    Some((e, t)) if e == end => t,
                    _ => self.transcribe(start, end)?,
                };
                let spent = t0.elapsed();
                self.respond(t, frame, start, end, spent)?;
            }
            _ => {}
        }
        if let Some((ready, start, end)) = self.stable {
            if now >= ready {
                self.stable = None;
                if let Some(TurnEvent::TurnEnded { end, .. }) =
                    self.hearing.on_stable_transcript(end)
                {
                    let (_, t) = self.tentative.take().unwrap_or_default();
                    self.respond(t, frame, start, end, Duration::ZERO)?;
                }
            }
        }
        let mut tx = [0i16; FRAME];
        for s in tx.iter_mut() {
            match self.playing.pop_front() {
                Some(v) => *s = v,
                None => break,
            }
        }
        Ok(tx)
    }

    fn idle(&self) -> bool {
        self.playing.is_empty() && self.pending.is_none() && !self.hearing.in_turn()
    }
}

/// Runs the conversation on a WAV file (any rate; mixed to mono, resampled to 8 kHz) and
/// writes the call as a stereo 8 kHz WAV (left = caller, right = bot).
pub fn run_wav(
    cfg: &Config,
    speech: &Speech,
    brain: &Brain,
    greeting: &[i16],
    input: &Path,
    out: &Path,
) -> Result<Vec<Exchange>> {
    let caller =
        wav::load_mono(input, 8000).with_context(|| format!("--wav {}", input.display()))?;
    let mut rec = Recorder::create(out).with_context(|| format!("--out {}", out.display()))?;
    let mut bot = Bot::new(speech, brain, cfg, greeting);
    let mut frame = 0u64;
    let mut chunks = caller.chunks(FRAME);
    // After the input ends: silence until the bot has finished (at most 30 s).
    let tail_limit = frames_for(Duration::from_secs(30));
    let mut tail = 0;
    loop {
        let mut rx = [0i16; FRAME];
        match chunks.next() {
            Some(c) => rx[..c.len()].copy_from_slice(c),
            None => {
                tail += 1;
                if (bot.idle() && tail > 25) || tail > tail_limit {
                    break;
                }
            }
        }
        let tx = bot.step(frame, &rx)?;
        rec.write(&rx, &tx)?;
        frame += 1;
    }
    rec.finish()?;
    Ok(bot.exchanges)
}

/// Talks through this machine's microphone and speaker until Ctrl-C.
pub fn run_device(cfg: &Config, speech: &Speech, brain: &Brain, greeting: &[i16]) -> Result<()> {
    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    let host = cpal::default_host();
    let (Some(input), Some(output)) = (host.default_input_device(), host.default_output_device())
    else {
        bail!("no audio device (microphone and speaker) on this machine: use `voxdesk talk --wav IN.wav --out OUT.wav`");
    };
    const NO_DEVICE: &str =
        "no usable audio device on this machine: use `voxdesk talk --wav IN.wav --out OUT.wav`";
    let in_cfg = input
        .default_input_config()
        .map_err(|e| anyhow::anyhow!("{NO_DEVICE} (microphone: {e})"))?;
    let out_cfg = output
        .default_output_config()
        .map_err(|e| anyhow::anyhow!("{NO_DEVICE} (speaker: {e})"))?;
    let (in_rate, in_ch) = (in_cfg.sample_rate().0, in_cfg.channels() as usize);
    let (out_rate, out_ch) = (out_cfg.sample_rate().0, out_cfg.channels() as usize);
    let captured: Arc<Mutex<Vec<f32>>> = Arc::default();
    let to_play: Arc<Mutex<VecDeque<f32>>> = Arc::default();
    let cap = captured.clone();
    let in_stream = input.build_input_stream(
        &in_cfg.into(),
        move |data: &[f32], _| {
            let mut c = cap.lock().unwrap_or_else(|e| e.into_inner());
            c.extend(
                data.chunks(in_ch)
                    .map(|f| f.iter().sum::<f32>() / in_ch as f32),
            );
        },
        |e| tracing::error!(error = %e, "microphone"),
        None,
    )?;
    let play = to_play.clone();
    let out_stream = output.build_output_stream(
        &out_cfg.into(),
        move |data: &mut [f32], _| {
            let mut p = play.lock().unwrap_or_else(|e| e.into_inner());
            for f in data.chunks_mut(out_ch) {
                let v = p.pop_front().unwrap_or(0.0);
                f.iter_mut().for_each(|s| *s = v);
            }
        },
        |e| tracing::error!(error = %e, "speaker"),
        None,
    )?;
    in_stream.play()?;
    out_stream.play()?;
    println!("talking: speak after the greeting (Ctrl-C to stop)");
    let mut bot = Bot::new(speech, brain, cfg, greeting);
    let mut heard8k: VecDeque<i16> = VecDeque::new();
    let mut frame = 0u64;
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let block: Vec<f32> =
            std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
        let at8k = wav::resample(&block, in_rate, 8000).map_err(anyhow::Error::msg)?;
        heard8k.extend(at8k.iter().map(|&s| (s.clamp(-1.0, 1.0) * 32767.0) as i16));
        // Keep up with the wall clock: one step per 20 ms that has passed.
        while frame < start.elapsed().as_millis() as u64 / 20 {
            let mut rx = [0i16; FRAME];
            for s in rx.iter_mut() {
                *s = heard8k.pop_front().unwrap_or(0);
            }
            let tx = bot.step(frame, &rx)?;
            let f: Vec<f32> = tx.iter().map(|&s| s as f32 / 32768.0).collect();
            let up = wav::resample(&f, 8000, out_rate).map_err(anyhow::Error::msg)?;
            to_play.lock().unwrap_or_else(|e| e.into_inner()).extend(up);
            frame += 1;
        }
    }
}
