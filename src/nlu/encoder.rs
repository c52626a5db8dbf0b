//! The sentence encoder: WordPiece tokens (the `tokenizers` crate reading the model's
//! tokenizer.json) into an ONNX graph (run by `ort`) that returns one L2-normalised embedding
//! per sentence. scripts/minilm_to_onnx.py writes that graph from all-MiniLM-L6-v2.

use super::NluError;
use ort::session::Session;
use ort::value::Tensor;
use std::path::Path;
use std::sync::Mutex;
use tokenizers::Tokenizer;

/// Turns a sentence into a unit-length vector; similar meanings give a high dot product.
pub trait Encoder: Send + Sync {
    fn embed(&self, text: &str) -> Result<Vec<f32>, NluError>;
    fn dim(&self) -> usize;
}

pub struct OnnxEncoder {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    dim: usize,
}

/// Longest input the encoder sees (all-MiniLM-L6-v2 was trained on 128 tokens).
const MAX_TOKENS: usize = 128;

impl OnnxEncoder {
    /// Loads the graph `model` and `tokenizer` (tokenizer.json) with ONNX Runtime `lib`, and
    /// runs one sentence through it to learn the embedding size.
    pub fn load(lib: &Path, model: &Path, tokenizer: &Path) -> Result<OnnxEncoder, NluError> {
        let env = crate::speech::tts::runtime(lib).map_err(|e| NluError::Model {
            path: lib.to_path_buf(),
            msg: e.to_string(),
        })?;
        let merr = |msg: String| NluError::Model {
            path: model.to_path_buf(),
            msg,
        };
        if !model.is_file() {
            return Err(merr("file not found".into()));
        }
        let mut tok = Tokenizer::from_file(tokenizer).map_err(|e| NluError::Model {
            path: tokenizer.to_path_buf(),
            msg: e.to_string(),
        })?;
        // The file pads every input to 128 tokens: ten times the work for a short sentence.
        tok.with_padding(None);
        tok.with_truncation(Some(tokenizers::TruncationParams {
            max_length: MAX_TOKENS,
            ..Default::default()
        }))
        .map_err(|e| NluError::Model {
            path: tokenizer.to_path_buf(),
            msg: e.to_string(),
        })?;
        let session = Session::builder(env)
            .map_err(|e| merr(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| merr(e.to_string()))?
            .commit_from_file(model)
            .map_err(|e| merr(e.to_string()))?;
        let mut enc = OnnxEncoder {
            session: Mutex::new(session),
            tokenizer: tok,
            dim: 0,
        };
        enc.dim = enc.embed("hello").map_err(|e| merr(e.to_string()))?.len();
        Ok(enc)
    }
}

impl Encoder for OnnxEncoder {
    fn embed(&self, text: &str) -> Result<Vec<f32>, NluError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| NluError::Inference(e.to_string()))?;
        let ids: Vec<i64> = enc.get_ids().iter().map(|&i| i as i64).collect();
        let n = ids.len();
        let ierr = |e: ort::Error| NluError::Inference(e.to_string());
        let input = Tensor::from_array(([1usize, n], ids)).map_err(ierr)?;
        let mask = Tensor::from_array(([1usize, n], vec![1i64; n])).map_err(ierr)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| NluError::Inference("encoder poisoned".into()))?;
        let out = session
            .run(ort::inputs!["input_ids" => input, "attention_mask" => mask])
            .map_err(ierr)?;
        let e = out["embedding"].try_extract_array::<f32>().map_err(ierr)?;
        Ok(e.iter().copied().collect())
    }

    fn dim(&self) -> usize {
        self.dim
    }
}
