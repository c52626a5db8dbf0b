//! Mandarin callers end to end: sipp speaks a question, Whisper base hears it, the answer
//! comes from the knowledge base's Chinese text, and Kokoro's Mandarin voice says it (the
//! recording is transcribed back); with `speech.language = "auto"` the caller's language is
//! detected on the first turn and kept, among English and Mandarin only.

mod common;
use common::*;
use std::path::PathBuf;

/// `pinyin` (tone numbers) spoken by espeak-ng's Mandarin voice (no package registry
/// carries recorded Mandarin speech), for sipp.
fn mandarin(server: &Server, name: &str, pinyin: &str, gap_s: f32) -> String {
    espeak(server, name, "cmn-latn-pinyin", 120, pinyin, gap_s)
}

#[test]
fn a_mandarin_question_gets_a_knowledge_base_answer_in_a_mandarin_voice() {
    let _g = serial();
    // The call's language is Mandarin: Whisper base (multilingual) hears it, the answer
    // comes from the knowledge base's Chinese text and Kokoro's Mandarin voice says it.
    let server = Server::start_with_models(
        "",
        "",
        &format!("[speech]\nlanguage = \"zh\"\n\n{PATIENT_BOT}"),
    );
    // "我要出国，手机能用吗？" (I am going abroad: will my phone work?)
    let ask = mandarin(
        &server,
        "roaming-zh",
        "wo3 yao4 chu1 guo2, shou3 ji1 neng2 yong4 ma5",
        1.0,
    );
    let sc = talk_scenario(server.dir.path(), 9000, &ask, 24000, "silence.ul", 500);
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let heard = heard_after_caller(&server, "zh");
    let ts = turns(&server);
    let bots = bot_turns(&server);
    eprintln!("turns: {ts:#?}\nbot: {bots:#?}");
    let answer = bots
        .iter()
        .find(|b| {
            b.kb_key
                .as_deref()
                .is_some_and(|k| k.starts_with("roaming"))
        })
        .unwrap_or_else(|| panic!("no roaming answer: {ts:#?}\n{bots:#?}\n{}", server.log()));
    // Answered in Chinese.
    assert!(voxdesk::speech::tts::has_han(&answer.text), "{answer:?}");
    // Said in a Mandarin voice: what the caller heard after their question, transcribed by
    // Whisper base, is the answer's text (character error rate at most 25 %).
    let (want, got) = (
        voxdesk::eval_voice::cer_units(&answer.text),
        voxdesk::eval_voice::cer_units(&heard),
    );
    let cer = voxdesk::eval_voice::edit_distance(&want, &got) as f32 / want.len() as f32;
    eprintln!(
        "said: {}\nheard: {heard}\ncharacter error rate {cer:.3}",
        answer.text
    );
    assert!(
        cer <= 0.25,
        "said {:?}, heard {heard:?} (CER {cer:.2})",
        answer.text
    );
}

/// Whisper base's transcript (in `language`) of what the bot said after the caller's last
/// turn, from the call's recording.
fn heard_after_caller(server: &Server, language: &str) -> String {
    let row = server.wait_call_ended();
    let ts = turns(server);
    let caller_end_s = ts
        .iter()
        .filter(|t| t.speaker == "caller")
        .filter_map(|t| t.end_ms)
        .max()
        .unwrap() as f32
        / 1000.0;
    let wav = PathBuf::from(row.recording_path.expect("recording"));
    let pcm = channel_16k(&wav, 1, caller_end_s, wav_seconds(&wav));
    let stt = voxdesk::speech::stt::WhisperStt::load(
        &PathBuf::from(models_dir()).join("whisper/ggml-base-q8_0.bin"),
    )
    .unwrap();
    use voxdesk::speech::stt::Stt;
    stt.transcribe(&pcm, language, 2).unwrap().text
}

#[test]
fn with_language_auto_a_mandarin_caller_is_answered_in_mandarin() {
    let _g = serial();
    let server = Server::start_with_models(
        "",
        "",
        &format!("[speech]\nlanguage = \"auto\"\n\n{PATIENT_BOT}"),
    );
    // The greeting is said in English, then in Chinese (about 14 s).
    let ask = spoken_zh(&server, "stores-zh", "请问你们的营业厅几点开门？", 1.0);
    let sc = talk_scenario(server.dir.path(), 15000, &ask, 22000, "silence.ul", 500);
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let heard = heard_after_caller(&server, "auto");
    let ts = turns(&server);
    let bots = bot_turns(&server);
    eprintln!("turns: {ts:#?}\nbot: {bots:#?}\nheard: {heard}");
    let answer = bots
        .iter()
        .find(|b| b.kb_key.as_deref().is_some_and(|k| k.starts_with("store")))
        .unwrap_or_else(|| {
            panic!(
                "no store-hours answer: {ts:#?}\n{bots:#?}\n{}",
                server.log()
            )
        });
    assert!(voxdesk::speech::tts::has_han(&answer.text), "{answer:?}");
    assert!(
        server
            .log()
            .contains("caller language detected; kept for the call"),
        "{}",
        server.log()
    );
    assert!(voxdesk::speech::tts::has_han(&heard), "heard {heard:?}");
}

#[test]
fn with_language_auto_an_english_caller_is_answered_in_english() {
    let _g = serial();
    let server = Server::start_with_models(
        "",
        "",
        &format!("[speech]\nlanguage = \"auto\"\n\n{PATIENT_BOT}"),
    );
    let ask = spoken(
        &server,
        "stores-en",
        &[("What time do your stores open?", 1.0)],
    );
    let sc = talk_scenario(server.dir.path(), 15000, &ask, 16000, "silence.ul", 500);
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let heard = heard_after_caller(&server, "auto");
    let bots = bot_turns(&server);
    eprintln!("bot: {bots:#?}\nheard: {heard}");
    let answer = bots
        .iter()
        .find(|b| b.kb_key.as_deref().is_some_and(|k| k.starts_with("store")))
        .unwrap_or_else(|| panic!("no store-hours answer: {bots:#?}\n{}", server.log()));
    assert!(!voxdesk::speech::tts::has_han(&answer.text), "{answer:?}");
    assert!(heard.to_lowercase().contains("open"), "heard {heard:?}");
}
