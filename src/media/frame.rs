//! The unit of call audio, below the media session and the links that carry it.

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
pub type Pcm = Vec<i16>;
/// One 20 ms frame, passed by value (no allocation on the audio path).
pub type Frame = [i16; FRAME];
