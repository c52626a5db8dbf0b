//! Speech: voice activity and turn-taking now; speech-to-text and text-to-speech engines
//! plug in behind small traits as the speech pipeline lands.

pub mod espeak;
pub mod tts;
pub mod turn;
pub mod vad;
