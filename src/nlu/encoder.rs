//! The sentence encoder: tokens into an ONNX graph (run by `ort`) that returns one
//! L2-normalised embedding per sentence. Two models are supported, told apart by their
//! tokenizer file: all-MiniLM-L6-v2 (English; WordPiece, the `tokenizers` crate reading its
//! tokenizer.json; graph by scripts/minilm_to_onnx.py) and multilingual-e5-small (English,
//! Chinese and ~100 more; SentencePiece Unigram, `unigram`; graph by scripts/e5_to_onnx.py).

use super::unigram::Unigram;
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
    /// Which model this is (its file name): stored embeddings and trained heads are only
    /// valid for the encoder that made them.
    fn name(&self) -> &str;
    /// Whether it understands Chinese as well as English (else Chinese text needs help).
    fn multilingual(&self) -> bool {
        false
    }
}

enum Tokens {
    WordPiece(Box<Tokenizer>),
    Unigram(Unigram),
}

pub struct OnnxEncoder {
    session: Mutex<Session>,
    tokenizer: Tokens,
    dim: usize,
    name: String,
}

/// Longest input the encoder sees (all-MiniLM-L6-v2 was trained on 128 tokens; a caller's
/// turn is shorter than that).
const MAX_TOKENS: usize = 128;

fn wordpiece(path: &Path) -> Result<Tokenizer, NluError> {
    let err = |e: tokenizers::Error| NluError::Model {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let mut tok = Tokenizer::from_file(path).map_err(err)?;
    // The file pads every input to 128 tokens: ten times the work for a short sentence.
    tok.with_padding(None);
    tok.with_truncation(Some(tokenizers::TruncationParams {
        max_length: MAX_TOKENS,
        ..Default::default()
    }))
    .map_err(err)?;
    Ok(tok)
}

/// A Unigram vocabulary (voxdesk's own format) or a Hugging Face tokenizer.json.
fn tokens(path: &Path) -> Result<Tokens, NluError> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| NluError::Model {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    if String::from_utf8_lossy(&head[..n]).contains("\"pieces\"") {
        Ok(Tokens::Unigram(Unigram::from_file(path)?))
    } else {
        Ok(Tokens::WordPiece(Box::new(wordpiece(path)?)))
    }
}

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
        let tok = tokens(tokenizer)?;
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
            name: model
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        enc.dim = enc.embed("hello").map_err(|e| merr(e.to_string()))?.len();
        Ok(enc)
    }
}

impl Encoder for OnnxEncoder {
    fn embed(&self, text: &str) -> Result<Vec<f32>, NluError> {
        let ids: Vec<i64> = match &self.tokenizer {
            Tokens::WordPiece(t) => t
                .encode(text, true)
                .map_err(|e| NluError::Inference(e.to_string()))?
                .get_ids()
                .iter()
                .map(|&i| i as i64)
                .collect(),
            Tokens::Unigram(u) => u
                .encode(text, MAX_TOKENS)
                .into_iter()
                .map(i64::from)
                .collect(),
        };
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

    fn name(&self) -> &str {
        &self.name
    }

    fn multilingual(&self) -> bool {
        matches!(&self.tokenizer, Tokens::Unigram(u) if u.multilingual)
    }
}
