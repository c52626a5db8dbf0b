//! Phonemes from text with libespeak-ng (Debian `libespeak-ng-dev`), as Piper voices expect:
//! IPA, one call per clause, clause punctuation put back (stock espeak-ng drops it).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;
use thiserror::Error;

#[link(name = "espeak-ng")]
extern "C" {
    fn espeak_Initialize(
        output: c_int,
        buflength: c_int,
        path: *const c_char,
        options: c_int,
    ) -> c_int;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
}

const AUDIO_OUTPUT_RETRIEVAL: c_int = 1;
const ESPEAK_CHARS_UTF8: c_int = 1;
const ESPEAK_PHONEMES_IPA: c_int = 0x02;

#[derive(Debug, Error)]
pub enum EspeakError {
    #[error("espeak-ng could not be initialised (is espeak-ng-data installed?)")]
    Init,
    #[error("espeak-ng has no voice {0:?}")]
    Voice(String),
}

/// espeak-ng keeps global state: one caller at a time.
static ESPEAK: Mutex<Option<String>> = Mutex::new(None);

/// Splits text into clauses, keeping each clause's closing punctuation.
fn clauses(text: &str) -> Vec<(String, Option<char>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if matches!(c, '.' | ',' | '?' | '!' | ';' | ':') {
            if !cur.trim().is_empty() {
                out.push((std::mem::take(&mut cur), Some(c)));
            }
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        out.push((cur, None));
    }
    out
}

/// IPA phonemes for `text` in espeak voice `voice` (e.g. "en-us"), clause punctuation kept.
pub fn phonemize(text: &str, voice: &str) -> Result<String, EspeakError> {
    let mut guard = ESPEAK.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        // SAFETY: called once under the lock; NULL path means the default data location.
        let rate = unsafe { espeak_Initialize(AUDIO_OUTPUT_RETRIEVAL, 0, std::ptr::null(), 0) };
        if rate <= 0 {
            return Err(EspeakError::Init);
        }
        *guard = Some(String::new());
    }
    if guard.as_deref() != Some(voice) {
        let name = CString::new(voice).map_err(|_| EspeakError::Voice(voice.into()))?;
        // SAFETY: espeak copies the name; the lock serialises all espeak calls.
        if unsafe { espeak_SetVoiceByName(name.as_ptr()) } != 0 {
            return Err(EspeakError::Voice(voice.into()));
        }
        *guard = Some(voice.to_string());
    }
    let mut out = String::new();
    for (clause, punct) in clauses(text) {
        let c = CString::new(clause.replace('\0', " ")).unwrap_or_default();
        let mut ptr = c.as_ptr() as *const c_void;
        // espeak returns one phrase per call and advances the pointer; NULL at the end.
        while !ptr.is_null() {
            // SAFETY: `c` outlives the loop; the returned buffer is espeak's and copied at once.
            let ph =
                unsafe { espeak_TextToPhonemes(&mut ptr, ESPEAK_CHARS_UTF8, ESPEAK_PHONEMES_IPA) };
            if ph.is_null() {
                break;
            }
            let s = unsafe { CStr::from_ptr(ph) }.to_string_lossy();
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
            out.push_str(s.trim());
        }
        if let Some(p) = punct {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_keep_punctuation() {
        let c = clauses("Hello, world. How are you?");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].1, Some(','));
        assert_eq!(c[2].1, Some('?'));
    }

    #[test]
    fn english_phonemes() {
        let p = phonemize("Hello, world.", "en-us").unwrap();
        assert!(p.contains('ə') || p.contains('l'), "{p}");
        assert!(p.contains(',') && p.ends_with('.'), "{p}");
    }
}
