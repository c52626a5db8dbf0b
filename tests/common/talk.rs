//! What the spoken-conversation tests read back: the `turns` table (caller and bot) and the
//! recording's channels.

use super::*;

#[derive(Debug)]
pub struct Turn {
    pub seq: i64,
    pub speaker: String,
    pub text: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub confidence: Option<f64>,
    pub latency_ms: Option<i64>,
    pub interrupted: bool,
}

pub fn turns(server: &Server) -> Vec<Turn> {
    let db = server.db();
    let mut st = db
        .prepare("SELECT seq, speaker, text, start_ms, end_ms, confidence, reply_latency_ms, interrupted FROM turns ORDER BY seq, speaker DESC")
        .unwrap();
    st.query_map([], |r| {
        Ok(Turn {
            seq: r.get(0)?,
            speaker: r.get(1)?,
            text: r.get(2)?,
            start_ms: r.get(3)?,
            end_ms: r.get(4)?,
            confidence: r.get(5)?,
            latency_ms: r.get(6)?,
            interrupted: r.get::<_, i64>(7)? != 0,
        })
    })
    .unwrap()
    .map(|t| t.unwrap())
    .collect()
}

pub fn caller_text(turns: &[Turn]) -> String {
    turns
        .iter()
        .filter(|t| t.speaker == "caller")
        .map(|t| t.text.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// These tests are about hearing and speaking: JFK's speech is no question the bot knows,
/// and an orator's voice is loud, so the escalation rules are relaxed for them. No sensitive
/// intents either: "Ask not what your country can do for you.", when Whisper's turn cuts it
/// out alone, reads to the intent model as a complaint (0.65), which hands the call over.
pub const PATIENT_BOT: &str = "[dialog]\nmax_not_understood = 9\nanger_rising = false\nsensitive_intents = []\n\n[nlu]\nanger_threshold = 1.0\n";

#[derive(Debug)]
pub struct BotTurn {
    pub kind: String,
    pub text: String,
    pub kb_key: Option<String>,
}

pub fn bot_turns(server: &Server) -> Vec<BotTurn> {
    let db = server.db();
    let mut st = db
        .prepare("SELECT kind, text, kb_key FROM turns WHERE speaker = 'bot' ORDER BY seq")
        .unwrap();
    st.query_map([], |r| {
        Ok(BotTurn {
            kind: r.get(0)?,
            text: r.get(1)?,
            kb_key: r.get(2)?,
        })
    })
    .unwrap()
    .map(|t| t.unwrap())
    .collect()
}

/// One channel of a WAV over [from_s, to_s), at 16 kHz for Whisper.
pub fn channel_16k(wav: &Path, channel: usize, from_s: f32, to_s: f32) -> Vec<f32> {
    let mut r = hound::WavReader::open(wav).unwrap();
    let spec = r.spec();
    let ch = spec.channels as usize;
    let rate = spec.sample_rate as f32;
    let (a, b) = ((from_s * rate) as usize, (to_s * rate) as usize);
    let pcm: Vec<i16> = r
        .samples::<i16>()
        .map(|s| s.unwrap())
        .skip(a * ch)
        .take((b.saturating_sub(a)) * ch)
        .enumerate()
        .filter(|(i, _)| i % ch == channel)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(spec.sample_rate, 8000, "recordings are 8 kHz");
    voxdesk::speech::to_16k(&pcm)
}
