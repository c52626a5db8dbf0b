//! `[media]`: RTP ports and timeouts, codecs, recording, whose RTP a leg takes, and SRTP.

use super::{invalid, AgentAccount, ConfigError, TrunkConfig};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Seconds without RTP from the caller before the call is ended.
    pub rtp_timeout_secs: u64,
    /// Greeting played on answer: a WAV file of any rate/channels (empty: a built-in tone).
    pub greeting: Option<PathBuf>,
    /// Record both directions of every call to a WAV under `<data_dir>/recordings`.
    pub record: bool,
    /// Jitter buffer prefetch in milliseconds.
    pub jitter_ms: u32,
    /// Codecs in order of preference: "PCMU", "PCMA".
    pub codecs: Vec<String>,
    /// Whose RTP a leg accepts: "strict" (only from the IP its SDP names or the IP its
    /// SIP signalling came from; it may move to another port on those, never to another
    /// IP) or "any" (the first source, and any other after 500 ms of silence: unsafe, for
    /// peers behind media relays that use a third address).
    pub rtp_source: String,
    /// Milliseconds of RTP sent to an SDP address that is neither the signalling source
    /// nor heard from yet (a third party's address: reflection); then sending pauses
    /// until RTP arrives from it.
    pub unverified_send_ms: u64,
    /// Media encryption (SRTP, keys by SDES) for callers' legs, unless their trunk says
    /// otherwise: "off", "optional" (when the caller offers it) or "required".
    pub srtp: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_port_min: 20000,
            rtp_port_max: 20999,
            rtp_timeout_secs: 30,
            greeting: None,
            record: true,
            jitter_ms: 60,
            codecs: vec!["PCMU".into(), "PCMA".into()],
            rtp_source: "strict".into(),
            unverified_send_ms: 1000,
            srtp: "optional".into(),
        }
    }
}

impl MediaConfig {
    /// Checks `[media]`, and the SRTP policies of agents and trunks that refer to it.
    pub fn validate(
        &self,
        agents: &[AgentAccount],
        trunks: &[TrunkConfig],
    ) -> Result<(), ConfigError> {
        let m = self;
        if m.rtp_port_min < 1024
            || m.rtp_port_max <= m.rtp_port_min
            || m.rtp_port_max - m.rtp_port_min < 4
        {
            return Err(invalid(
                "media.rtp_port_min",
                format!(
                    "the RTP range {}..{} must be above 1023 and hold at least two calls",
                    m.rtp_port_min, m.rtp_port_max
                ),
            ));
        }
        if m.rtp_timeout_secs == 0 {
            return Err(invalid("media.rtp_timeout_secs", "must be at least 1"));
        }
        if !(20..=500).contains(&m.jitter_ms) {
            return Err(invalid("media.jitter_ms", "must be between 20 and 500"));
        }
        if m.codecs.is_empty() {
            return Err(invalid(
                "media.codecs",
                "list at least one of \"PCMU\", \"PCMA\"",
            ));
        }
        for c in &m.codecs {
            if !c.eq_ignore_ascii_case("PCMU") && !c.eq_ignore_ascii_case("PCMA") {
                return Err(invalid(
                    "media.codecs",
                    format!("unsupported codec {c:?} (supported: \"PCMU\", \"PCMA\")"),
                ));
            }
        }
        let srtp_ok = |v: &str| voxdesk_sip::sdes::SrtpPolicy::parse(v).is_some();
        if !srtp_ok(&m.srtp) {
            return Err(invalid(
                "media.srtp",
                format!("{:?}: use \"off\", \"optional\" or \"required\"", m.srtp),
            ));
        }
        for (i, a) in agents.iter().enumerate() {
            if a.srtp.as_deref().is_some_and(|v| !srtp_ok(v)) {
                return Err(invalid(
                    &format!("agents[{i}].srtp"),
                    "use \"off\", \"optional\" or \"required\"",
                ));
            }
        }
        for (i, t) in trunks.iter().enumerate() {
            if t.srtp.as_deref().is_some_and(|v| !srtp_ok(v)) {
                return Err(invalid(
                    &format!("trunks[{i}].srtp"),
                    "use \"off\", \"optional\" or \"required\"",
                ));
            }
        }
        if m.rtp_source != "strict" && m.rtp_source != "any" {
            return Err(invalid(
                "media.rtp_source",
                format!("{:?}: use \"strict\" or \"any\"", m.rtp_source),
            ));
        }
        if let Some(g) = &m.greeting {
            if !g.is_file() {
                return Err(invalid(
                    "media.greeting",
                    format!("file {} not found", g.display()),
                ));
            }
        }
        Ok(())
    }
}
