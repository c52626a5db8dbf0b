//! The command line: clear errors for bad configuration, doctor, calls.

mod common;
use common::voxdesk;

#[test]
fn bad_config_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[sip]\nprot = 5060\n", "prot"),
        (
            "[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n",
            "media.rtp_port_min",
        ),
        (
            "[media]\ngreeting = \"/nonexistent/hello.wav\"\n",
            "media.greeting",
        ),
        (
            "[sip]\nbind = \"0.0.0.0\"\npublic_address = \"192.0.2.1\"\n",
            "demo agent",
        ),
        (
            "[[agents]]\nusername = \"x\"\nha1 = \"short\"\n",
            "agents[0].ha1",
        ),
        ("this is not toml", "voxdesk.toml"),
        ("[speech]\nlanguage = \"fr\"\n", "speech.language"),
        ("[speech]\nvad = \"webrtc\"\n", "speech.vad"),
        ("[speech]\nend_silence_ms = 20\n", "speech.end_silence_ms"),
        (
            "[speech]\nearly_end_ms = 900\nend_silence_ms = 700\n",
            "speech.early_end_ms",
        ),
    ];
    for (text, needle) in cases {
        let p = dir.path().join("voxdesk.toml");
        std::fs::write(&p, text).unwrap();
        for cmd in ["serve", "doctor"] {
            let (ok, out) = voxdesk(&["--config", p.to_str().unwrap(), cmd], dir.path());
            assert!(!ok, "{cmd} must fail for {text:?}");
            assert!(
                out.contains(needle),
                "{cmd}: error for {text:?} should mention {needle:?}: {out}"
            );
            assert!(!out.contains("panicked"), "{out}");
        }
    }
    let (ok, out) = voxdesk(
        &["--config", "/nonexistent/voxdesk.toml", "serve"],
        dir.path(),
    );
    assert!(!ok && out.contains("/nonexistent/voxdesk.toml"), "{out}");
}

#[test]
fn doctor_and_calls_on_a_fresh_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = voxdesk(&["calls"], dir.path());
    assert!(!ok && out.contains("no database"), "{out}");
    // No models in this folder: doctor says which file is missing and how to get it.
    let (ok, out) = voxdesk(&["doctor", "--data-dir", "state"], dir.path());
    assert!(!ok, "{out}");
    assert!(
        out.contains("database    ok") && out.contains("schema version 9"),
        "{out}"
    );
    assert!(out.contains("greeting    ok"), "{out}");
    assert!(
        out.contains("libonnxruntime.so.1.31.1") && out.contains("scripts/fetch-models.sh"),
        "{out}"
    );
    // With the fetched models it passes, verifying sha256 and running the voice once.
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
    let (ok, out) = voxdesk(
        &["doctor", "--data-dir", "state", "--models-dir", models],
        dir.path(),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("sha256 verified")
            && out.contains("Piper loads")
            && out.contains("encoder     ok"),
        "{out}"
    );
    // A corrupt copy of a model is caught by its sha256.
    let copy = dir.path().join("models");
    std::fs::create_dir_all(copy.join("piper")).unwrap();
    std::fs::create_dir_all(copy.join("onnxruntime")).unwrap();
    for f in [
        "manifest.toml",
        "onnxruntime/libonnxruntime.so.1.31.1",
        "piper/en_US-joe-medium.onnx.json",
    ] {
        std::fs::copy(format!("{models}/{f}"), copy.join(f)).unwrap();
    }
    std::fs::write(copy.join("piper/en_US-joe-medium.onnx"), b"truncated").unwrap();
    let (ok, out) = voxdesk(
        &[
            "doctor",
            "--data-dir",
            "state",
            "--models-dir",
            copy.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        !ok && out.contains("is not the manifest's") && out.contains("en_US-joe-medium.onnx"),
        "{out}"
    );
    assert!(
        dir.path().join("state/voxdesk.sqlite").is_file(),
        "--data-dir is honoured"
    );
    let (ok, out) = voxdesk(&["calls", "--data-dir", "state"], dir.path());
    assert!(ok && out.contains("started (UTC)"), "{out}");
}

#[test]
fn a_bad_greeting_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("greeting.wav");
    std::fs::write(&wav, b"RIFF....not a wav").unwrap();
    let cfg = dir.path().join("voxdesk.toml");
    std::fs::write(&cfg, format!("[media]\ngreeting = \"{}\"\n", wav.display())).unwrap();
    let (ok, out) = voxdesk(&["--config", cfg.to_str().unwrap(), "doctor"], dir.path());
    assert!(
        !ok && out.contains("media.greeting") && out.contains("greeting.wav"),
        "{out}"
    );
}
