//! Rendered speech kept for reuse: the leading-silence trim every rendered piece gets, and
//! the on-disk cache of fixed answers (knowledge-base answers, handoff lines), so a restart
//! does not spend the first minute of CPU re-rendering them while callers wait.
//!
//! Only fixed texts go to disk: a reply with a caller's details in it (a balance, an order
//! number) stays in memory and is gone with the process.

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Piper starts most renders with 40-100 ms of near-silence; the caller hears the answer
/// that much later for nothing. Keeps 10 ms before the first 5 ms window above -45 dBFS.
pub fn trim_leading_silence(pcm: &mut Vec<i16>, rate: u32) {
    let win = (rate as usize / 200).max(1); // 5 ms
    let lead = rate as usize / 100; // 10 ms
    let threshold = 32768.0 * 10f64.powf(-45.0 / 20.0);
    let first = pcm.chunks(win).position(|w| {
        let e = w.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / w.len() as f64;
        e.sqrt() > threshold
    });
    if let Some(i) = first {
        let cut = (i * win).saturating_sub(lead);
        if cut > 0 {
            pcm.drain(..cut);
        }
    }
}

/// Files of 8 kHz 16-bit little-endian samples, one per text, named by a hash of the voice
/// and the text.
pub struct DiskCache {
    dir: PathBuf,
    voice: String,
}

impl DiskCache {
    /// `voice` identifies the voice model (a changed model must not reuse old audio).
    pub fn new(dir: &Path, voice: String) -> DiskCache {
        DiskCache {
            dir: dir.to_path_buf(),
            voice,
        }
    }

    fn file(&self, text: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(b"voxdesk-tts-v1\n");
        h.update(self.voice.as_bytes());
        h.update(b"\n");
        h.update(text.as_bytes());
        let d = h.finalize();
        let name: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.pcm"))
    }

    pub fn load(&self, text: &str) -> Option<Vec<i16>> {
        let bytes = std::fs::read(self.file(text)).ok()?;
        if bytes.len() < 2 || bytes.len() % 2 != 0 {
            return None;
        }
        Some(
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
        )
    }

    /// Written to a temporary name and renamed, so a crash never leaves half a file.
    pub fn store(&self, text: &str, pcm: &[i16]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.file(text);
        let tmp = path.with_extension("tmp");
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    }

    /// Removes the files of texts no longer in `keep` (changed answers, another voice).
    /// Returns how many were removed.
    pub fn prune(&self, keep: &[String]) -> usize {
        let keep: HashSet<PathBuf> = keep.iter().map(|t| self.file(t)).collect();
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut n = 0;
        for e in dir.flatten() {
            let p = e.path();
            let ours = matches!(p.extension().and_then(|x| x.to_str()), Some("pcm" | "tmp"));
            if ours && !keep.contains(&p) && std::fs::remove_file(&p).is_ok() {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_silence_is_cut_to_ten_ms() {
        let mut pcm = vec![0i16; 800]; // 100 ms of silence
        pcm.extend((0..800).map(|i| if i % 2 == 0 { 3000 } else { -3000 }));
        trim_leading_silence(&mut pcm, 8000);
        assert_eq!(pcm.len(), 80 + 800);
        assert_eq!(pcm[80], 3000);
        // All silence: left alone.
        let mut quiet = vec![3i16; 400];
        trim_leading_silence(&mut quiet, 8000);
        assert_eq!(quiet.len(), 400);
    }

    #[test]
    fn the_disk_cache_round_trips_and_prunes_what_is_no_longer_said() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::new(dir.path(), "joe 123".into());
        assert!(c.load("Hello.").is_none());
        c.store("Hello.", &[1, -2, 300]).unwrap();
        c.store("Old answer.", &[5]).unwrap();
        assert_eq!(c.load("Hello.").unwrap(), vec![1, -2, 300]);
        // Another voice does not see this voice's audio.
        assert!(DiskCache::new(dir.path(), "amy 9".into())
            .load("Hello.")
            .is_none());
        assert_eq!(c.prune(&["Hello.".to_string()]), 1);
        assert!(c.load("Old answer.").is_none());
        assert!(c.load("Hello.").is_some());
    }
}
