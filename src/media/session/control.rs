//! What a call tells its media leg and hears back from it: the negotiated stream, the
//! commands (prompts, bridging, recording, digits) and the events (turns, digits, silence).

use crate::media::frame::Pcm;
use crate::media::g711::Law;
use crate::media::link::{FrameRx, FrameTx};
use crate::media::ports::PortLease;
use crate::media::source::SourcePolicy;
use crate::speech::turn::{EndReason, TurnConfig, TurnEvent};
use crate::speech::VadChoice;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Negotiated stream parameters.
#[derive(Debug, Clone)]
pub struct StreamParams {
    pub law: Law,
    pub payload_type: u8,
    pub dtmf_pt: Option<u8>,
    /// Where to send (None: on hold / not known yet).
    pub remote: Option<SocketAddr>,
    pub send: bool,
    pub recv: bool,
    /// The remote's packetisation in ms (for the jitter buffer).
    pub remote_ptime_ms: u32,
    /// SRTP keys (SDES) when the leg's media is encrypted.
    pub srtp: Option<voxdesk_sip::sdes::SrtpKeys>,
}

impl StreamParams {
    /// Before any SDP answer: receive-only, PCMU and telephone-event 101 expected.
    pub fn awaiting_answer() -> StreamParams {
        StreamParams {
            law: Law::Ulaw,
            payload_type: 0,
            dtmf_pt: Some(101),
            remote: None,
            send: false,
            recv: true,
            remote_ptime_ms: 20,
            srtp: None,
        }
    }
}

pub enum MediaCmd {
    /// Queue a prompt (8 kHz mono PCM).
    Play(Arc<Pcm>),
    /// Queue part of a spoken reply; `ReplyStarted { tag }` reports when its first frame
    /// goes out. Queued behind a paused prompt while a barge-in is being judged.
    Say {
        pcm: Arc<Pcm>,
        tag: u64,
    },
    /// The transcript of the turn up to `end` (a `Tentative`) is complete: end the turn now
    /// if the caller has not spoken since.
    EndTurn {
        end: Duration,
    },
    /// Drop whatever is playing or queued.
    StopPlayback,
    SendDigit(char),
    Update(StreamParams),
    /// Send this leg's decoded audio to another leg (None: stop sending to it).
    BridgeOut(Party, Option<FrameTx>),
    /// Hear audio from another leg (None: stop). Several inputs are mixed.
    BridgeIn(Party, Option<FrameRx>),
    /// Detect turns for the transcript only: also while bridged, and never pausing what
    /// plays (barge-in is for the bot's own prompts on the caller's leg).
    Transcribe(bool),
    /// Start recording both directions to this WAV (from now on).
    Record(PathBuf),
    Stop,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    Dtmf(char),
    RtpTimeout,
    PlaybackDone,
    /// The remote moved (symmetric RTP latch).
    Latched(SocketAddr),
    /// Turn-taking on the caller's audio (barge-in already acted on: playback paused).
    Turn(TurnEvent),
    /// The caller finished a turn: their audio, to be transcribed.
    Utterance(Utterance),
    /// The caller paused inside a turn: their audio so far (the turn may go on).
    Tentative(Utterance),
    /// The first frame of a `Say` with this tag was sent.
    ReplyStarted {
        tag: u64,
        at: Instant,
    },
}

/// One caller turn as heard (arrival order, 8 kHz, pre-roll included).
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub start: Duration,
    pub end: Duration,
    pub reason: EndReason,
    pub pcm: Vec<i16>,
    /// Wall-clock estimate of when the caller stopped speaking (end of the last voiced
    /// frame): where reply latency is measured from.
    pub speech_end: Instant,
    /// When the turn detector decided the turn was over.
    pub decided: Instant,
}

/// Who a bridged leg belongs to (keys for its audio routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Caller,
    Agent,
    Supervisor,
}

pub struct MediaSetup {
    pub lease: PortLease,
    pub bind: IpAddr,
    pub params: StreamParams,
    pub jitter_ms: u32,
    pub rtp_timeout: Duration,
    pub record: Option<PathBuf>,
    pub cname: String,
    pub turn: TurnConfig,
    pub vad: VadChoice,
    /// Whose RTP this leg takes and where it may send.
    pub source: SourcePolicy,
}
