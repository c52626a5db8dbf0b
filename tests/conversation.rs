//! The spoken conversation end to end: sipp calls the real voxdesk binary (real Whisper and
//! Piper models from ./models) and speaks recorded speech as RTP; the transcripts land in the
//! `turns` table and the bot's spoken reply comes back on the line (the call recording's
//! right channel is exactly what was sent to the caller).

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// Start times of the non-silent 20 ms frames in one channel of a WAV over [from_s, to_s).
fn voiced_frames(wav: &Path, channel: usize, from_s: f32, to_s: f32) -> Vec<f32> {
    let mut out = Vec::new();
    let mut t = from_s.max(0.0);
    while t < to_s {
        if wav_rms(wav, t, t + 0.02)[channel] > 0.01 {
            out.push(t);
        }
        t += 0.02;
    }
    out
}

/// Seconds of non-silent 20 ms frames in one channel of a WAV over [from_s, to_s).
fn voiced_seconds(wav: &Path, channel: usize, from_s: f32, to_s: f32) -> f32 {
    voiced_frames(wav, channel, from_s, to_s).len() as f32 * 0.02
}

#[test]
fn a_spoken_question_is_transcribed_and_answered_aloud() {
    let _g = serial();
    let server = Server::start_with_models("", "", PATIENT_BOT);
    // JFK (real speech, 11 s) after the greeting; time for the last answer; hang up.
    let sc = talk_scenario(server.dir.path(), 6500, "jfk.ul", 22000, "silence.ul", 500);
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-bye"), "{row:?}");
    let ts = turns(&server);
    let heard = caller_text(&ts);
    eprintln!("turns: {ts:#?}");
    for words in [
        "fellow america",
        "country can do for you",
        "for your country",
    ] {
        assert!(
            heard.contains(words),
            "transcripts {heard:?} lack {words:?}\n{}",
            server.log()
        );
    }
    for t in ts.iter().filter(|t| t.speaker == "caller") {
        assert!(t.start_ms.unwrap() < t.end_ms.unwrap());
        assert!((0.0..=1.0).contains(&t.confidence.unwrap()));
    }
    // The last reply was spoken to the end: it is on the line after the caller's last turn,
    // and lasts about as long as its text takes to say.
    let last = ts
        .iter()
        .rev()
        .find(|t| t.speaker == "bot")
        .expect("a bot turn");
    assert!(!last.interrupted && last.latency_ms.is_some(), "{last:?}");
    let caller_end_s = ts
        .iter()
        .filter(|t| t.speaker == "caller" && t.seq == last.seq)
        .map(|t| t.end_ms.unwrap())
        .next()
        .unwrap() as f32
        / 1000.0;
    let wav = PathBuf::from(row.recording_path.expect("recording"));
    let voiced = voiced_frames(&wav, 1, caller_end_s, wav_seconds(&wav));
    let spoken = voiced.last().unwrap_or(&0.0) + 0.02 - voiced.first().unwrap_or(&0.0);
    let words = last.text.split_whitespace().count() as f32;
    eprintln!(
        "reply {:?}: {spoken:.2} s of speech for {words} words, latency {:?} ms",
        last.text, last.latency_ms
    );
    // Between 4.5 and 1.5 words per second.
    assert!(
        spoken > words / 4.5 && spoken < words / 1.5 + 1.0,
        "{spoken:.2} s of reply audio for {words} words: {:?}",
        last.text
    );
}

#[test]
fn a_turn_after_the_reply_was_said_in_full_is_not_an_interruption() {
    let _g = serial();
    let server = Server::start_with_models("", "", PATIENT_BOT);
    // The opening-hours answer takes about 10 s to say; the next question comes 14 s after
    // the first, on a quiet line.
    let two = spoken(
        &server,
        "two.ul",
        &[
            ("What are your opening hours?", 14.0),
            ("I would like to check my balance, please.", 0.0),
        ],
    );
    // (sipp plays the file in the background: 18 s of it, then ~10 s for the last reply.)
    let sc = talk_scenario(server.dir.path(), 6500, &two, 28000, "silence.ul", 0);
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    server.wait_call_ended();
    let ts = turns(&server);
    let bots: Vec<&Turn> = ts.iter().filter(|t| t.speaker == "bot").collect();
    assert!(bots.len() >= 2, "two replies: {ts:#?}\n{}", server.log());
    assert!(
        bots[0].latency_ms.is_some() && !bots[0].interrupted,
        "the first reply was said in full before the caller spoke again: {ts:#?}\n{}",
        server.log()
    );
    assert!(
        !server.log().contains("caller interrupted the reply"),
        "{}",
        server.log()
    );
    // The answers rendered ahead are kept on disk for the next start.
    if server.log().contains("fixed answers pre-rendered") {
        let cached = std::fs::read_dir(server.dir.path().join("data/tts-cache"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(cached > 10, "{cached} rendered answers on disk");
    }
}

#[test]
fn the_caller_interrupts_the_answer_and_is_heard() {
    let _g = serial();
    // Whatever the bot makes of the first turn (a balance answer, or a request to rephrase
    // when the line is misheard), its reply is long enough to be talked over.
    let cfg = PATIENT_BOT.replace(
        "anger_rising = false\n",
        "anger_rising = false\nrephrase_en = \"Sorry, I am not quite sure I understood what you just said. Could you please say that again in a different way, so that I can find the right answer for you?\"\n",
    );
    // With the Silero VAD (the other spoken tests use the energy one).
    let server = Server::start_with_models("", "", &format!("{cfg}\n[speech]\nvad = \"silero\"\n"));
    // "Hello, I would like to check the balance on my account, please." then, while the bot
    // answers (the knowledge-base answer reads the caller's number: rendered, not cached),
    // JFK's line: the answer must stop, and the new words be transcribed.
    let sc = talk_scenario(
        server.dir.path(),
        6500,
        "caller-hello.ul",
        8000,
        "jfk.ul",
        16000,
    );
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    let ts = turns(&server);
    eprintln!("turns: {ts:#?}");
    let first = ts
        .iter()
        .find(|t| t.speaker == "bot")
        .expect("a first reply");
    assert!(
        first.latency_ms.is_some(),
        "the first reply started: {first:?}\n{}",
        server.log()
    );
    assert!(
        first.interrupted,
        "the first reply was interrupted: {first:?}\n{}",
        server.log()
    );
    assert!(server.log().contains("caller barged in"), "barge-in logged");
    assert!(server.log().contains("vad=\"silero\""), "{}", server.log());
    let heard = caller_text(&ts);
    assert!(heard.contains("account"), "{heard:?}");
    assert!(
        heard.contains("fellow america"),
        "the interruption was transcribed: {heard:?}"
    );
    // On the line: the reply stops once the caller speaks over it.
    let barge = ts
        .iter()
        .find(|t| t.speaker == "caller" && t.seq == first.seq + 1)
        .expect("the interrupting turn");
    let onset_s = (barge.start_ms.unwrap() + 200) as f32 / 1000.0; // start includes 200 ms pre-roll
    let wav = PathBuf::from(row.recording_path.expect("recording"));
    let before = voiced_seconds(&wav, 1, onset_s - 1.2, onset_s - 0.2);
    let after = voiced_seconds(&wav, 1, onset_s + 0.3, onset_s + 1.5);
    assert!(
        before > 0.2,
        "the reply was playing before the interruption ({before:.2} s voiced)"
    );
    assert!(
        after < 0.1,
        "the reply stopped after the interruption ({after:.2} s voiced)"
    );
}

#[test]
fn talk_from_a_wav_file_runs_the_same_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    // 7 s of silence (the greeting plays), the caller's question, 1 s of silence.
    let ul = std::fs::read(fixtures().join("caller-hello.ul")).unwrap();
    let input = dir.path().join("in.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&input, spec).unwrap();
    for _ in 0..7 * 8000 {
        w.write_sample(0i16).unwrap();
    }
    for b in ul {
        w.write_sample(voxdesk::media::g711::ulaw_to_linear(b))
            .unwrap();
    }
    for _ in 0..8000 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let out = dir.path().join("out.wav");
    let (ok, text) = voxdesk(
        &[
            "--models-dir",
            &models_dir(),
            "--data-dir",
            "state",
            "talk",
            "--wav",
            "in.wav",
            "--out",
            "out.wav",
        ],
        dir.path(),
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("caller: Hello, I would like to check"),
        "{text}"
    );
    assert!(text.contains("bot:    "), "{text}");
    assert!(text.contains("turn 1: reply after"), "{text}");
    // Left: the caller; right: the greeting, then the reply after the question (at ~10.8 s).
    let secs = wav_seconds(&out);
    assert!(secs > 12.0, "{secs}");
    assert!(
        wav_rms(&out, 0.5, 3.0)[1] > 0.02,
        "greeting on the right channel"
    );
    assert!(
        wav_rms(&out, 7.5, 10.0)[0] > 0.02,
        "caller on the left channel"
    );
    assert!(
        wav_rms(&out, 11.0, secs)[1] > 0.01,
        "reply on the right channel"
    );
}

#[test]
fn talk_without_an_audio_device_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = voxdesk(
        &["--models-dir", &models_dir(), "--data-dir", "state", "talk"],
        dir.path(),
    );
    assert!(!ok, "{text}");
    assert!(text.contains("--wav IN.wav --out OUT.wav"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn a_missing_or_corrupt_whisper_model_is_reported_by_doctor_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, b"not a ggml file at all").unwrap();
    for (model, expect) in [
        (
            "/nonexistent/ggml-tiny.en.bin",
            "/nonexistent/ggml-tiny.en.bin",
        ),
        (bad.to_str().unwrap(), "bad.bin"),
    ] {
        let cfg = dir.path().join("voxdesk.toml");
        std::fs::write(
            &cfg,
            format!(
                "[sip]\nport = {}\n[models]\nstt = \"{model}\"\n",
                free_port()
            ),
        )
        .unwrap();
        let c = cfg.to_str().unwrap();
        let (ok, text) = voxdesk(
            &[
                "--config",
                c,
                "--models-dir",
                &models_dir(),
                "--data-dir",
                "state",
                "doctor",
            ],
            dir.path(),
        );
        assert!(!ok, "{text}");
        assert!(
            text.contains("models.stt") && text.contains(expect),
            "{text}"
        );
        let (ok, text) = voxdesk(
            &[
                "--config",
                c,
                "--models-dir",
                &models_dir(),
                "--data-dir",
                "state",
                "serve",
            ],
            dir.path(),
        );
        assert!(!ok, "{text}");
        assert!(
            text.contains("models.stt") && text.contains(expect),
            "{text}"
        );
        assert!(text.contains("fetch-models"), "names the fix: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

/// The end of the talking caller's scenario when the bot hangs up: wait for its BYE, answer.

#[test]
fn saying_goodbye_gets_a_goodbye_and_the_bot_hangs_up() {
    let _g = serial();
    let server = Server::start_with_models("", "", "");
    // The caller's line, spoken by the Piper voice (sipp takes rtp_stream files relative to
    // its working folder, tests/fixtures).
    let rel = spoken(
        &server,
        "goodbye.ul",
        &[("Okay, that is all. Goodbye.", 0.0)],
    );
    // (A new rtp_stream replaces the one playing: the line is over after 2.5 s.)
    let sc = talk_scenario(server.dir.path(), 6500, &rel, 2500, "silence.ul", 0);
    // Instead of the caller's BYE: the bot's.
    bot_hangs_up_instead(&sc);
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(
        row.end_reason.as_deref(),
        Some("bot-goodbye"),
        "{row:?}\n{}",
        server.log()
    );
    let ts = turns(&server);
    // The last reply says goodbye. (Piper pauses ~300 ms after "Okay,": when Whisper has
    // "Okay." before the caller goes on, that is a turn of its own, whose reply the rest of
    // the line interrupts.)
    let bye = ts
        .iter()
        .rev()
        .find(|t| t.speaker == "bot")
        .expect("a reply");
    assert!(bye.text.contains("Goodbye"), "{ts:#?}");
    // The goodbye was spoken to the end before the BYE: it is the last thing on the line.
    let wav = PathBuf::from(row.recording_path.expect("recording"));
    let end = wav_seconds(&wav);
    let voiced = voiced_frames(&wav, 1, end - 4.0, end);
    assert!(
        !voiced.is_empty() && end - voiced.last().unwrap() < 1.0,
        "goodbye audio right before the hang-up ({end:.2} s): {voiced:?}"
    );
}

/// A caller who says "bye" again over the bot's goodbye is not left on an open line: the
/// interrupted goodbye still ends the call (found by scripts/eval_spoken.py over sipp: the
/// call stayed up until the caller hung up, 40 s later).
#[test]
fn talking_over_the_goodbye_still_ends_the_call() {
    let _g = serial();
    let server = Server::start_with_models("", "", "");
    let rel = spoken(
        &server,
        "goodbye.ul",
        &[("Okay, that is all. Goodbye.", 0.0)],
    );
    let first_ms = std::fs::metadata(server.dir.path().join("goodbye.ul"))
        .unwrap()
        .len()
        / 8;
    let again = spoken(&server, "bye-again.ul", &[("Bye bye, thanks again.", 0.0)]);
    // The second line starts about a second after the first ends: over the bot's goodbye
    // (or, on a slow machine, before it), never after the bot has hung up.
    let sc = talk_scenario(
        server.dir.path(),
        6500,
        &rel,
        first_ms as u32 + 1000,
        &again,
        0,
    );
    bot_hangs_up_instead(&sc);
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(
        row.end_reason.as_deref(),
        Some("bot-goodbye"),
        "{row:?}\n{}",
        server.log()
    );
}

/// Rewrites a talking caller's scenario to end by waiting for the bot's BYE instead of
/// sending its own.
fn bot_hangs_up_instead(sc: &std::path::Path) {
    let text = std::fs::read_to_string(sc).unwrap();
    let cut = text.rfind("  <send retrans=\"500\">").unwrap();
    std::fs::write(sc, format!("{}{BOT_HANGS_UP}", &text[..cut])).unwrap();
}

#[test]
fn a_knowledge_base_question_a_follow_up_then_a_person() {
    let _g = serial();
    // Without routing to people (tests/escalation.rs has that): a callback is booked.
    let server = Server::start_with_models("", "", "[routing]\nenabled = false\n");
    // A question the sample knowledge base answers, then (over the answer: barge-in) a
    // follow-up that only makes sense with the previous topic; then a request for a person.
    let first = spoken(
        &server,
        "roaming.ul",
        &[
            ("How do I turn on roaming?", 4.0),
            ("And how much does that cost?", 0.0),
        ],
    );
    let second = spoken(
        &server,
        "person.ul",
        &[("I want to talk to a real person, please.", 0.0)],
    );
    let sc = talk_scenario(server.dir.path(), 6500, &first, 11000, &second, 0);
    let text = std::fs::read_to_string(&sc).unwrap();
    let cut = text.rfind("  <send retrans=\"500\">").unwrap();
    // The handoff line and the callback booking take ~15 s to say.
    let hangup = BOT_HANGS_UP.replace("timeout=\"15000\"", "timeout=\"45000\"");
    std::fs::write(&sc, format!("{}{hangup}", &text[..cut])).unwrap();
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    let bots = bot_turns(&server);
    eprintln!(
        "bot turns: {bots:#?}\ncaller: {}",
        caller_text(&turns(&server))
    );
    assert_eq!(
        row.end_reason.as_deref(),
        Some("bot-goodbye"),
        "{row:?}\n{}",
        server.log()
    );
    let kinds: Vec<&str> = bots.iter().map(|b| b.kind.as_str()).collect();
    assert_eq!(
        bots[0].kb_key.as_deref(),
        Some("roaming_activate"),
        "{bots:#?}"
    );
    assert!(
        bots[0].text.starts_with("Roaming is off by default."),
        "{bots:#?}"
    );
    assert!(
        bots[1].kb_key.as_deref() == Some("roaming_rates"),
        "the follow-up is answered about roaming prices: {bots:#?}"
    );
    assert!(kinds.contains(&"escalate:requested"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"callback"), "{kinds:?}");
    let last = &bots.last().unwrap().text;
    // The caller hears their number read back; the stored transcript has it redacted.
    assert!(
        last.contains("callback to [number]."),
        "the callback number is read back (and redacted in the store): {last}"
    );
    // The escalation and its summary, and the callback ticket, are in the store.
    let db = server.db();
    let (trigger, outcome, summary, line): (String, String, String, String) = db
        .query_row(
            "SELECT trigger, outcome, summary_json, summary_line FROM escalations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (trigger.as_str(), outcome.as_str()),
        ("requested", "callback")
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["caller"], "+15550100");
    assert_eq!(summary["intent"], "roaming_rates", "{summary}");
    assert!(summary["asked"].as_array().unwrap().len() >= 3, "{summary}");
    assert!(line.starts_with("roaming rates;"), "{line}");
    let (kind, caller, reference): (String, String, String) = db
        .query_row("SELECT kind, caller, reference FROM tickets", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((kind.as_str(), caller.as_str()), ("callback", "+15550100"));
    let spoken_ref: String = reference.chars().map(|c| format!("{c} ")).collect();
    assert!(last.contains(spoken_ref.trim_end()), "{last} / {reference}");
    // Each caller turn has its intent, emotion and anger stored.
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM turns WHERE speaker = 'caller' AND intent IS NOT NULL AND emotion IS NOT NULL AND anger IS NOT NULL", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 3, "{n}");
    // Over the API: the call with its turns and escalation; the agent's wrap-up with a
    // correction lands in the knowledge-base suggestion queue with the caller's question.
    let api = server.api_addr();
    let (st, body) = http(&api, "GET", &format!("/api/calls/{}", row.id), None, None);
    assert_eq!(st, 200, "{body}");
    let call: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        call["escalations"][0]["summary"]["caller"], "+15550100",
        "{body}"
    );
    assert_eq!(call["tickets"][0]["kind"], "callback");
    let wrap = r#"{"disposition":"resolved","agent":"agent1","notes":"explained the pass","correction":"The Travel Pass is ten dollars a day in over a hundred countries."}"#;
    assert_eq!(
        http(
            &api,
            "POST",
            &format!("/api/calls/{}/wrapup", row.id),
            Some(wrap),
            None
        )
        .0,
        204
    );
    let (_, body) = http(&api, "GET", "/api/kb/suggestions", None, None);
    let sug: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(sug.len(), 1, "{body}");
    assert!(
        sug[0]["question"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("how much"),
        "{body}"
    );
    assert_eq!(sug[0]["suggested_by"], "agent1");
}
