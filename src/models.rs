//! Checking model files: present, the sha256 the manifest gives, loadable, and one inference.

use crate::config::Config;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(serde::Deserialize)]
struct Manifest {
    file: Vec<ManifestFile>,
}

#[derive(serde::Deserialize)]
struct ManifestFile {
    path: PathBuf,
    sha256: String,
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// One line of the doctor's report.
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn failed(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            what: what.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

const FIX: &str =
    "run scripts/fetch-models.sh (or set [models] / --models-dir to where the files are)";

/// Verifies the configured model files against `<models_dir>/manifest.toml` and runs the
/// TTS voice once.
pub fn check(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let dir = &cfg.paths.models_dir;
    let manifest: Option<Manifest> = std::fs::read_to_string(dir.join("manifest.toml"))
        .ok()
        .and_then(|t| toml::from_str(&t).ok());
    let expected = |p: &Path| -> Option<String> {
        manifest
            .as_ref()?
            .file
            .iter()
            .find(|f| dir.join(&f.path) == p)
            .map(|f| f.sha256.clone())
    };
    let mut files_ok = true;
    let mut models = vec![
        ("onnxruntime", cfg.model_path(&cfg.models.onnxruntime)),
        ("tts_voice", cfg.model_path(&cfg.models.tts_voice)),
        ("stt", cfg.model_path(&cfg.models.stt)),
    ];
    if cfg.speech.language != "en" {
        models.push((
            "stt_multilingual",
            cfg.model_path(&cfg.models.stt_multilingual),
        ));
        models.push(("tts_voice_zh", cfg.model_path(&cfg.models.tts_voice_zh)));
        models.push(("kokoro", cfg.model_path(&cfg.models.kokoro)));
        models.push(("kokoro_vocab", cfg.model_path(&cfg.models.kokoro_vocab)));
    }
    if cfg.nlu.enabled {
        models.push(("encoder", cfg.model_path(&cfg.models.encoder)));
        models.push((
            "encoder_tokenizer",
            cfg.model_path(&cfg.models.encoder_tokenizer),
        ));
    }
    let silero = cfg.speech.vad == "silero";
    if silero {
        models.push(("vad", cfg.model_path(&cfg.models.vad)));
    }
    let mut stt_ok = true;
    let mut encoder_ok = true;
    let mut vad_ok = true;
    for (what, p) in models {
        let json = PathBuf::from(format!("{}.json", p.display()));
        let paths = if what == "tts_voice" {
            vec![p.clone(), json]
        } else {
            vec![p.clone()]
        };
        for path in paths {
            let c = match sha256_file(&path) {
                Err(e) => Check { what: format!("models.{what}"), ok: false, detail: format!("{}: {e}: {FIX}", path.display()) },
                Ok(sum) => match expected(&path) {
                    Some(want) if want != sum => Check {
                        what: format!("models.{what}"),
                        ok: false,
                        detail: format!("{}: sha256 {sum} is not the manifest's {want} (corrupt or a different file): {FIX}", path.display()),
                    },
                    Some(_) => Check { what: format!("models.{what}"), ok: true, detail: format!("{} (sha256 verified)", path.display()) },
                    None => Check { what: format!("models.{what}"), ok: true, detail: format!("{} (not in a manifest; sha256 not checked)", path.display()) },
                },
            };
            if what.starts_with("stt") {
                stt_ok &= c.ok;
            } else if what.starts_with("encoder") {
                encoder_ok &= c.ok;
            } else if what == "vad" {
                vad_ok &= c.ok;
            } else {
                files_ok &= c.ok;
            }
            out.push(c);
        }
    }
    if files_ok {
        out.push(tts_smoke(cfg, false));
        if cfg.speech.language != "en" {
            out.push(tts_smoke(cfg, true));
        }
    }
    if silero && vad_ok && files_ok {
        out.push(vad_smoke(cfg));
    }
    if cfg.nlu.enabled && encoder_ok && files_ok {
        out.push(encoder_smoke(cfg));
    }
    if stt_ok {
        out.push(stt_smoke(&cfg.model_path(&cfg.models.stt), "en"));
        if cfg.speech.language != "en" {
            out.push(stt_smoke(
                &cfg.model_path(&cfg.models.stt_multilingual),
                "auto",
            ));
        }
    }
    out
}

/// Loads a whisper model and transcribes the built-in greeting recording with it.
fn stt_smoke(path: &Path, language: &str) -> Check {
    use crate::speech::stt::{Stt, WhisperStt};
    let what = format!(
        "stt ({})",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let t0 = Instant::now();
    let stt = match WhisperStt::load(path) {
        Ok(s) => s,
        Err(e) => return Check::failed(what, e.to_string()),
    };
    let load = t0.elapsed();
    let pcm = crate::prompts::builtin_greeting();
    let audio = crate::speech::to_16k(&pcm[..pcm.len().min(8000 * 4)]);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    match stt.transcribe(&audio, language, threads) {
        Ok(t) if !t.text.is_empty() => Check {
            what,
            ok: true,
            detail: format!(
                "whisper loads in {} ms; {:.1} s of the built-in greeting -> {:?} in {} ms (audio_ctx {}, {} pass(es), {threads} threads)",
                ms(load),
                audio.len() as f32 / 16000.0,
                t.text,
                ms(t.elapsed),
                t.audio_ctx,
                t.passes
            ),
        },
        Ok(_) => Check {
            what,
            ok: false,
            detail: "the model heard nothing in a recording of speech (wrong or damaged model?)".into(),
        },
        Err(e) => Check::failed(what, e.to_string()),
    }
}

/// Loads the Silero VAD and runs it over the built-in greeting (speech) and silence.
fn vad_smoke(cfg: &Config) -> Check {
    use crate::speech::silero::{SileroModel, SileroVad, CHUNK};
    use crate::speech::vad::Vad;
    let what = "vad (silero)".to_string();
    let t0 = Instant::now();
    let model = match SileroModel::load(
        &cfg.model_path(&cfg.models.onnxruntime),
        &cfg.model_path(&cfg.models.vad),
    ) {
        Ok(m) => std::sync::Arc::new(m),
        Err(e) => return Check::failed(what, e.to_string()),
    };
    let load = t0.elapsed();
    let speech_share = |pcm: &[i16]| {
        let mut vad = SileroVad::new(model.clone());
        let frames: Vec<f32> = pcm.chunks_exact(160).map(|f| vad.score(f)).collect();
        frames.iter().filter(|&&p| p > 0.5).count() as f32 / frames.len().max(1) as f32
    };
    let greeting = crate::prompts::builtin_greeting();
    let t1 = Instant::now();
    let voiced = speech_share(&greeting);
    let per_chunk = t1.elapsed() / (greeting.len() / CHUNK).max(1) as u32;
    let quiet = speech_share(&[0i16; 8000 * 2]);
    Check {
        what,
        ok: voiced > 0.3 && quiet < 0.05,
        detail: format!(
            "loads in {} ms; {:.0} % of the built-in greeting is speech, {:.0} % of silence; {} us per 32 ms of audio",
            ms(load),
            voiced * 100.0,
            quiet * 100.0,
            per_chunk.as_micros()
        ),
    }
}

/// Loads the sentence encoder and checks that two paraphrases land closer than an
/// unrelated sentence.
fn encoder_smoke(cfg: &Config) -> Check {
    let what = "encoder".to_string();
    let t0 = Instant::now();
    let enc = match crate::brain::load::load_encoder(cfg) {
        Ok(e) => e,
        Err(e) => return Check::failed(what, format!("{e:#}")),
    };
    let load = t0.elapsed();
    let t1 = Instant::now();
    let v: Result<Vec<Vec<f32>>, _> = [
        "How do I pay my bill?",
        "What is the way to settle my invoice?",
        "The weather is nice today.",
    ]
    .iter()
    .map(|s| enc.embed(s))
    .collect();
    let each = t1.elapsed() / 3;
    match v {
        Ok(v) => {
            let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
            let (near, far) = (cos(&v[0], &v[1]), cos(&v[0], &v[2]));
            Check {
                what,
                ok: near > far,
                detail: format!(
                    "loads in {} ms; {} dimensions, {} ms per sentence; paraphrase similarity {near:.2} vs unrelated {far:.2}",
                    ms(load),
                    enc.dim(),
                    ms(each)
                ),
            }
        }
        Err(e) => Check::failed(what, e.to_string()),
    }
}

fn tts_smoke(cfg: &Config, chinese: bool) -> Check {
    let t0 = Instant::now();
    let (what, name, text) = if chinese {
        ("tts_zh", "Kokoro", "感谢您的来电。")
    } else {
        ("tts", "Piper", "Thank you for calling.")
    };
    let voice = match crate::prompts::load_voice(cfg, chinese) {
        Ok(v) => v,
        Err(e) => return Check::failed(what, e.to_string()),
    };
    let load = t0.elapsed();
    let t1 = Instant::now();
    match voice.synthesize(text) {
        Ok(pcm) if pcm.len() > 4000 => Check {
            what: what.into(),
            ok: true,
            detail: format!(
                "{name} loads in {} ms; \"{text}\" = {:.2} s of audio in {} ms",
                ms(load),
                pcm.len() as f32 / 8000.0,
                ms(t1.elapsed())
            ),
        },
        Ok(pcm) => Check {
            what: what.into(),
            ok: false,
            detail: format!("the voice produced only {} samples", pcm.len()),
        },
        Err(e) => Check {
            what: what.into(),
            ok: false,
            detail: e.to_string(),
        },
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}
