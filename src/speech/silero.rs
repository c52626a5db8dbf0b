//! Silero VAD (v5, ONNX) through ONNX Runtime: a small recurrent network that gives the
//! probability of speech for each 32 ms of 8 kHz audio (256 samples, with the previous
//! chunk's last 32 samples as context and a 2x1x128 state carried from chunk to chunk).
//! One model is loaded per process and shared; each call has its own `SileroVad` with its
//! own state. Unlike the energy VAD it tells speech from loud non-speech (music on hold,
//! a door, a car horn) rather than from quiet.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::TensorRef;

use super::vad::{EnergyVad, Vad};

/// Samples per inference at 8 kHz.
pub const CHUNK: usize = 256;
/// Samples of the previous chunk put before each chunk.
const CONTEXT: usize = 32;
const STATE: usize = 2 * 128;

#[derive(Debug, thiserror::Error)]
pub enum SileroError {
    #[error("{path}: {msg}")]
    Model { path: PathBuf, msg: String },
    #[error("voice activity inference failed: {0}")]
    Inference(String),
}

/// The loaded network, shared by all calls (inference takes a lock: 40-65 us a chunk here).
pub struct SileroModel {
    session: Mutex<Session>,
    path: PathBuf,
}

impl std::fmt::Debug for SileroModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroModel")
            .field("path", &self.path)
            .finish()
    }
}

impl SileroModel {
    /// Loads `model` with the ONNX Runtime library at `lib`, and runs it once.
    pub fn load(lib: &Path, model: &Path) -> Result<SileroModel, SileroError> {
        let merr = |msg: String| SileroError::Model {
            path: model.to_path_buf(),
            msg,
        };
        let env = super::tts::runtime(lib).map_err(|e| SileroError::Model {
            path: lib.to_path_buf(),
            msg: e.to_string(),
        })?;
        if !model.is_file() {
            return Err(merr(
                "file not found (run scripts/fetch-models.sh, or set speech.vad = \"energy\")"
                    .into(),
            ));
        }
        let session = Session::builder(env)
            .map_err(|e| merr(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| merr(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| merr(e.to_string()))?
            .commit_from_file(model)
            .map_err(|e| merr(e.to_string()))?;
        let m = SileroModel {
            session: Mutex::new(session),
            path: model.to_path_buf(),
        };
        let mut state = [0.0f32; STATE];
        m.probability(&[0.0; CONTEXT + CHUNK], &mut state)
            .map_err(|e| merr(format!("not a Silero VAD model: {e}")))?;
        Ok(m)
    }

    /// Speech probability of one chunk (`CONTEXT + CHUNK` samples in -1..1); `state` is
    /// read and replaced by the next one.
    pub fn probability(&self, input: &[f32], state: &mut [f32; STATE]) -> Result<f32, SileroError> {
        let ierr = |e: ort::Error| SileroError::Inference(e.to_string());
        // Views of the caller's buffers: nothing is copied or allocated on the way in.
        let x = TensorRef::from_array_view(([1usize, input.len()], input)).map_err(ierr)?;
        let s = TensorRef::from_array_view(([2usize, 1, 128], &state[..])).map_err(ierr)?;
        let rate = [8000i64];
        let sr = TensorRef::from_array_view(([0usize; 0], &rate[..])).map_err(ierr)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| SileroError::Inference("model poisoned".into()))?;
        let out = session
            .run(ort::inputs!["input" => x, "state" => s, "sr" => sr])
            .map_err(ierr)?;
        let p = out[0].try_extract_array::<f32>().map_err(ierr)?;
        let next = out[1].try_extract_array::<f32>().map_err(ierr)?;
        if next.len() != STATE {
            return Err(SileroError::Inference(format!(
                "state of {} values, expected {STATE}",
                next.len()
            )));
        }
        for (o, v) in state.iter_mut().zip(next.iter()) {
            *o = *v;
        }
        p.iter()
            .next()
            .copied()
            .ok_or_else(|| SileroError::Inference("no output".into()))
    }
}

/// One call's voice activity detector on a shared Silero model. Frames of any length go in;
/// every complete 32 ms chunk is run, and a frame scores the probability of the newest
/// chunk. Should inference ever fail, the call goes on with an energy detector.
pub struct SileroVad {
    model: Arc<SileroModel>,
    /// Context (the last `CONTEXT` samples of the previous chunk) then the pending samples.
    input: Vec<f32>,
    state: [f32; STATE],
    last: f32,
    /// Set when inference failed: the rest of the call is scored by it.
    fallback: Option<EnergyVad>,
}

impl SileroVad {
    pub fn new(model: Arc<SileroModel>) -> SileroVad {
        let mut input = Vec::with_capacity(CONTEXT + CHUNK * 2);
        input.resize(CONTEXT, 0.0);
        SileroVad {
            model,
            input,
            state: [0.0; STATE],
            last: 0.0,
            fallback: None,
        }
    }
}

impl Vad for SileroVad {
    fn score(&mut self, frame: &[i16]) -> f32 {
        if let Some(energy) = self.fallback.as_mut() {
            return energy.score(frame);
        }
        self.input.extend(frame.iter().map(|&s| s as f32 / 32768.0));
        while self.input.len() >= CONTEXT + CHUNK {
            match self
                .model
                .probability(&self.input[..CONTEXT + CHUNK], &mut self.state)
            {
                Ok(p) => self.last = p,
                Err(e) => {
                    tracing::error!(error = %e, "Silero VAD failed: this call goes on with the energy VAD");
                    return self.fallback.insert(EnergyVad::default()).score(frame);
                }
            }
            self.input.drain(..CHUNK);
        }
        self.last
    }
}
