//! Media: RTP/RTCP, jitter buffer, G.711, RFC 4733 DTMF, resampling, recording.

pub mod dtmf;
pub mod engine;
pub mod frame;
pub mod g711;
pub mod jitter;
pub mod leg;
pub mod link;
pub mod ports;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod source;
pub mod srtp;
pub mod wav;
