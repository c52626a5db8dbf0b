//! An agent dialled a feature code from their softphone (`*21` available, `*22` pause, set
//! in `[routing.feature_codes]`): the endpoint has checked their digest credentials; the
//! call is answered, the agent's state changes, a short confirmation is played (spoken
//! when a voice is loaded, else tones), and voxdesk hangs up.

use super::Call;
use crate::config::FeatureCode;
use crate::media::session::MediaCmd;
use crate::speech::pool::JobError;
use std::sync::Arc;

/// Who dialled which feature.
#[derive(Debug, Clone)]
pub struct Feature {
    pub agent: String,
    pub code: FeatureCode,
}

/// A dialled code as words ("star 2 1").
fn spell(code: &str) -> String {
    code.chars()
        .map(|c| match c {
            '*' => "star".to_string(),
            '#' => "hash".to_string(),
            d => d.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Without a voice: one high beep for done, three low ones for failed (8 kHz).
pub(super) fn tones(ok: bool) -> Vec<i16> {
    let (hz, beeps, on_ms) = if ok {
        (1000.0, 1, 400)
    } else {
        (400.0, 3, 150)
    };
    let mut out = Vec::new();
    for _ in 0..beeps {
        let n = 8 * on_ms;
        out.extend((0..n).map(|i| {
            let t = i as f32 / 8000.0;
            // 10 ms ramps: no clicks.
            let ramp = (i.min(n - i) as f32 / 80.0).min(1.0);
            (ramp * 8000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
        }));
        out.extend(std::iter::repeat_n(0i16, 8 * 150));
    }
    out
}

impl Call {
    /// Applies the feature and plays its confirmation; `PlaybackDone` then hangs up.
    pub(super) async fn run_feature(&mut self, f: Feature) {
        let codes = &self.ctx.shared.cfg.routing.feature_codes;
        let (ok, text) = match &self.ctx.shared.router {
            None => (false, "Routing to agents is turned off.".to_string()),
            Some(r) => {
                let available = f.code == FeatureCode::Available;
                match r.set_state(&f.agent, available, "feature code").await {
                    Ok(()) if available => (true, "You are available for calls.".to_string()),
                    Ok(()) => (
                        true,
                        format!(
                            "You are paused. Dial {} when you are ready for calls.",
                            spell(&codes.available)
                        ),
                    ),
                    Err(e) => (false, format!("That did not work: {e}.")),
                }
            }
        };
        tracing::info!(agent = %f.agent, code = ?f.code, ok, "feature code: {text}");
        self.caller.set_end_reason("feature-code");
        let pcm = match &self.ctx.shared.speech {
            Some(speech) => {
                let voice = speech.clone();
                let job = speech
                    .pool
                    .submit(move |_| voice.render(&text).map_err(JobError::from));
                match job {
                    Ok(rx) => rx.await.ok().and_then(|r| r.ok()),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let pcm = pcm.unwrap_or_else(|| Arc::new(tones(ok)));
        if let Some(m) = &self.media {
            let _ = m.cmd.send(MediaCmd::Play(pcm)).await;
        }
        self.feature = Some(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_out_and_tones_are_bounded() {
        assert_eq!(spell("*21"), "star 2 1");
        assert_eq!(spell("#9"), "hash 9");
        let ok = tones(true);
        let bad = tones(false);
        assert_eq!(ok.len(), 8 * (400 + 150));
        assert_eq!(bad.len(), 3 * 8 * (150 + 150));
        assert!(ok.iter().all(|s| s.unsigned_abs() <= 8000));
        assert!(ok.iter().any(|s| s.unsigned_abs() > 7000));
    }
}
