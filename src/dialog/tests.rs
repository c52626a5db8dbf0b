//! Scripted conversations through the dialog with a virtual clock (no audio, no models).

use super::*;
use crate::config::{DialogConfig, NluConfig, PromptsConfig};

fn settings() -> Arc<DialogSettings> {
    Arc::new(DialogSettings::new(
        &DialogConfig::default(),
        &NluConfig::default(),
        &PromptsConfig::default(),
    ))
}

fn dialog() -> Dialog {
    Dialog::new(settings(), "5551234", "en", 10, 1_234_000)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn said(text: &str, intent: &str) -> Analysis {
    Analysis {
        understanding: Understanding {
            text: text.into(),
            intent: intent.into(),
            intent_confidence: 0.9,
            emotion: "neutral".into(),
            rule: crate::nlu::rules::match_rules(text, &[]),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn with_hits(mut a: Analysis, hits: &[(&str, f32)]) -> Analysis {
    a.hits = hits.iter().map(|(k, s)| cand(k, *s)).collect();
    a
}

fn cand(key: &str, score: f32) -> KbCandidate {
    KbCandidate {
        key: key.into(),
        intent: Some(key.into()),
        score,
        answer: format!("Answer about {key} for {{caller_number}}."),
        needs_person: key == "fraud",
        topic: format!("What about {key}?"),
    }
}

fn emb(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[test]
fn answers_from_the_knowledge_base_with_slots() {
    let mut d = dialog();
    let r = d.on_turn(
        &with_hits(
            said("How do I check my balance?", "billing_balance"),
            &[("billing_balance", 0.8), ("data_usage", 0.55)],
        ),
        secs(5),
    );
    assert_eq!(r.kind, "kb:billing_balance");
    assert_eq!(r.text, "Answer about billing_balance for 5 5 5 1 2 3 4.");
    assert!(r.escalation.is_none() && !r.hang_up);
    // "No" after an answer ends the call politely; nothing was left open: no ticket.
    let r = d.on_turn(&said("No.", "deny"), secs(12));
    assert!(r.hang_up && r.kind == "goodbye");
    assert_eq!(d.on_call_end(secs(14)), None);
}

#[test]
fn clarifies_between_two_close_entries_then_answers_the_chosen_one() {
    let mut d = dialog();
    let r = d.on_turn(
        &with_hits(
            said("roaming", "unknown"),
            &[("roaming_rates", 0.61), ("roaming_activate", 0.60)],
        ),
        secs(3),
    );
    assert_eq!(r.kind, "clarify");
    assert_eq!(
        r.text,
        "Do you mean what about roaming_rates, or what about roaming_activate?"
    );
    let r = d.on_turn(&with_hits(said("The second one.", "unknown"), &[]), secs(8));
    assert_eq!(r.kind, "kb:roaming_activate");
}

#[test]
fn follow_up_uses_the_previous_topic() {
    let mut d = dialog();
    d.on_turn(
        &with_hits(
            said("How do I turn on roaming?", "roaming_activate"),
            &[("roaming_activate", 0.9)],
        ),
        secs(3),
    );
    assert_eq!(d.followup_context(), Some("What about roaming_activate?"));
    let mut a = with_hits(
        said("And how much does that cost?", "unknown"),
        &[("plan_change", 0.3)],
    );
    a.followup_hits = vec![cand("roaming_rates", 0.7)];
    assert_eq!(d.on_turn(&a, secs(9)).kind, "kb-followup:roaming_rates");
}

#[test]
fn explicit_request_escalates_with_a_summary() {
    let mut d = dialog();
    d.on_turn(
        &with_hits(
            said("Why is my bill so high?", "billing_high_bill"),
            &[("billing_high_bill", 0.8)],
        ),
        secs(4),
    );
    let r = d.on_turn(
        &said("I want to talk to a real person.", "unknown"),
        secs(11),
    );
    let e = r.escalation.expect("escalates");
    assert_eq!(e.trigger, Trigger::Requested);
    assert_eq!(r.kind, "escalate:requested");
    assert!(r.text.contains("colleague"), "{}", r.text);
    let h = e.handoff;
    assert_eq!(h.caller, "5551234");
    assert_eq!(
        h.intent, "billing_high_bill",
        "the topic, not the request for a person"
    );
    assert_eq!(
        h.asked,
        [
            "Why is my bill so high?",
            "I want to talk to a real person."
        ]
    );
    assert_eq!(h.answered.len(), 2);
    assert_eq!(h.after_secs, 11);
    // Once escalated, the bot stays quiet (routing speaks) and makes no ticket.
    assert_eq!(
        d.on_turn(&said("Hello?", "unknown"), secs(13)).kind,
        "waiting"
    );
    // ...unless it is a question the knowledge base answers clearly: answered, still queued.
    let r = d.on_turn(
        &with_hits(
            said("How do I turn on roaming?", "roaming_activate"),
            &[("roaming_activate", 0.8)],
        ),
        secs(14),
    );
    assert_eq!(r.kind, "queued-kb:roaming_activate");
    assert!(!r.hang_up && r.escalation.is_none(), "{r:?}");
    assert!(
        r.text.starts_with("Answer about roaming_activate")
            && r.text.ends_with("You are still in line for a colleague."),
        "{}",
        r.text
    );
    // A person is still what they asked for: not an answer.
    assert_eq!(
        d.on_turn(
            &with_hits(
                said("Agent please", "agent_request"),
                &[("roaming_activate", 0.8)]
            ),
            secs(14)
        )
        .kind,
        "waiting"
    );
    // No person can take it: a callback ticket with the summary, said, then the call ends.
    let r = d.on_no_agent(secs(15));
    assert!(r.hang_up && r.kind == "callback");
    let t = r.ticket.unwrap();
    assert_eq!(t.kind, "callback");
    assert_eq!(t.intent.as_deref(), Some("billing_high_bill"));
    assert_eq!(t.details["caller"], "5551234");
    assert!(
        r.text.contains("5 5 5 1 2 3 4") && r.text.contains("1 2 3 4 0 0 1"),
        "{}",
        r.text
    );
    assert_eq!(d.on_call_end(secs(20)), None);
}

#[test]
fn keypad_zero_escalates_and_chinese_request_too() {
    let mut d = dialog();
    assert_eq!(d.on_dtmf('5', secs(1)), None);
    let r = d.on_dtmf('0', secs(2)).unwrap();
    assert_eq!(r.escalation.unwrap().trigger, Trigger::Keypad);
    let mut d = Dialog::new(settings(), "", "zh", 10, 1);
    let r = d.on_turn(&said("我要转人工", "unknown"), secs(2));
    assert_eq!(r.escalation.unwrap().trigger, Trigger::Requested);
    assert!(r.text.starts_with("我为您转接人工客服"), "{}", r.text);
}

#[test]
fn an_unsure_model_does_not_hand_the_call_over() {
    // A garbled transcript the model reads as "a person" or a sensitive topic at 0.55: under
    // dialog.handover_confidence (0.6) it is treated as any other turn (here: the roaming
    // entry answers); at 0.9 it hands over.
    for (intent, trigger) in [
        ("agent_request", Trigger::Requested),
        ("complaint", Trigger::Sensitive),
    ] {
        let mut unsure = with_hits(
            said("I want to go out my phone roaming", intent),
            &[("roaming_rates", 0.7)],
        );
        unsure.understanding.intent_confidence = 0.55;
        let r = dialog().on_turn(&unsure, secs(3));
        assert!(r.escalation.is_none(), "{intent}: {r:?}");
        assert_eq!(r.kb_key.as_deref(), Some("roaming_rates"), "{intent}");
        let sure = with_hits(
            said("I want to go out my phone roaming", intent),
            &[("roaming_rates", 0.7)],
        );
        let r = dialog().on_turn(&sure, secs(3));
        assert_eq!(r.escalation.map(|e| e.trigger), Some(trigger), "{intent}");
    }
}

#[test]
fn anger_above_threshold_and_rising_anger() {
    let mut d = dialog();
    let mut a = said("This is ridiculous, fix it!", "billing_high_bill");
    a.understanding.anger = 0.8;
    a.understanding.emotion = "angry".into();
    let r = d.on_turn(&a, secs(5));
    assert_eq!(r.escalation.as_ref().unwrap().trigger, Trigger::Anger);
    assert_eq!(r.escalation.unwrap().handoff.emotions, ["angry"]);

    // Calm turns whose scores wander upwards a little do not count as rising anger.
    assert_eq!(triggers_for_anger(&[0.18, 0.22, 0.3]), [None, None, None]);
    assert_eq!(
        triggers_for_anger(&[0.1, 0.2, 0.35]),
        [None, None, Some(Trigger::AngerRising)]
    );
}

/// The trigger each of three answered questions fires, at these anger scores.
fn triggers_for_anger(angers: &[f32]) -> Vec<Option<Trigger>> {
    let mut d = dialog();
    angers
        .iter()
        .enumerate()
        .map(|(i, anger)| {
            let mut a = with_hits(
                said(&format!("question number {i} here"), "data_usage"),
                &[("data_usage", 0.8)],
            );
            a.understanding.anger = *anger;
            d.on_turn(&a, secs(10 * i as u64 + 5))
                .escalation
                .map(|e| e.trigger)
        })
        .collect()
}

#[test]
fn repeated_misunderstanding_escalates_and_asks_to_rephrase_first() {
    let mut d = dialog();
    let r = d.on_turn(&said("Blue elephants dance.", "unknown"), secs(3));
    assert_eq!(r.kind, "rephrase");
    let r = d.on_turn(&said("Purple giraffes sing.", "unknown"), secs(9));
    assert_eq!(r.escalation.unwrap().trigger, Trigger::NotUnderstood);
}

#[test]
fn sensitive_intent_and_needs_person_entry_escalate() {
    let mut d = dialog();
    let r = d.on_turn(
        &said("I want to cancel my contract.", "cancel_service"),
        secs(3),
    );
    assert_eq!(r.escalation.unwrap().trigger, Trigger::Sensitive);
    let mut d = dialog();
    let r = d.on_turn(
        &with_hits(
            said("Someone is using my card.", "unknown"),
            &[("fraud", 0.8)],
        ),
        secs(3),
    );
    assert_eq!(r.escalation.as_ref().unwrap().trigger, Trigger::NeedsPerson);
    assert!(
        r.text.starts_with("Answer about fraud"),
        "the entry's answer first: {}",
        r.text
    );
    // A match just over the answering bar, with no word from the intent model, is a calm
    // opener near the entry: asked again, not handed over.
    let mut d = dialog();
    let r = d.on_turn(
        &with_hits(
            said("I'm calling about my account.", UNKNOWN),
            &[("fraud", 0.65)],
        ),
        secs(3),
    );
    assert_eq!(r.kind, "rephrase", "{}", r.text);
    // The same score when the model names the entry's intent hands over.
    let mut d = dialog();
    let r = d.on_turn(
        &with_hits(
            said("Somebody got into my account.", "fraud"),
            &[("fraud", 0.65)],
        ),
        secs(3),
    );
    assert!(r.escalation.is_some(), "{}", r.kind);
}

#[test]
fn the_same_question_again_escalates() {
    let mut d = dialog();
    let mut a = with_hits(
        said("Why is my bill so high this month?", "billing_high_bill"),
        &[("billing_high_bill", 0.8)],
    );
    a.understanding.embedding = emb(&[1.0, 0.2, 0.0]);
    assert!(d.on_turn(&a, secs(3)).escalation.is_none());
    let mut b = with_hits(
        said("Why is my bill this high this month?", "billing_high_bill"),
        &[("billing_high_bill", 0.8)],
    );
    b.understanding.embedding = emb(&[1.0, 0.21, 0.0]);
    assert_eq!(
        d.on_turn(&b, secs(15)).escalation.unwrap().trigger,
        Trigger::Repeated
    );
}

#[test]
fn long_call_escalates_on_tick() {
    let mut d = dialog();
    assert_eq!(d.on_tick(secs(599)), None);
    assert_eq!(
        d.on_tick(secs(600)).unwrap().escalation.unwrap().trigger,
        Trigger::LongCall
    );
    assert_eq!(d.on_tick(secs(700)), None);
}

#[test]
fn outage_flow_creates_a_ticket_and_reads_its_number() {
    let mut d = dialog();
    let r = d.on_turn(
        &said("I want to report a fault on my line.", "report_outage"),
        secs(3),
    );
    assert_eq!(r.kind, "flow:report_outage");
    assert!(r.text.contains("address"));
    let r = d.on_turn(&said("12 Station Road.", "unknown"), secs(10));
    assert!(r.text.contains("number"));
    assert_eq!(
        d.on_dtmf('0', secs(12)),
        None,
        "digits are collected, 0 is not 'agent' here"
    );
    for k in "412345678#".chars() {
        if let Some(r) = d.on_dtmf(k, secs(14)) {
            assert!(r.text.contains("12 Station Road"), "{}", r.text);
        }
    }
    let r = d.on_turn(&said("Yes.", "affirm"), secs(20));
    let t = r.ticket.expect("ticket");
    assert_eq!(t.reference, "1234001");
    assert_eq!(t.kind, "fault");
    assert_eq!(t.details["contact_number"], "0412345678");
    assert!(r.text.contains("1 2 3 4 0 0 1"), "{}", r.text);
    // A flow that keeps failing goes to a person.
    let mut d = dialog();
    d.on_turn(&said("report a fault", "report_outage"), secs(1));
    d.on_turn(&said("5 Hill St", "unknown"), secs(2));
    for i in 0..2 {
        assert!(d
            .on_turn(&said("I don't know", "unknown"), secs(3 + i))
            .escalation
            .is_none());
    }
    assert_eq!(
        d.on_turn(&said("hmm", "unknown"), secs(6))
            .escalation
            .unwrap()
            .trigger,
        Trigger::FlowFailed
    );
}

#[test]
fn unresolved_call_gets_a_ticket() {
    let mut d = dialog();
    let r = d.on_turn(&said("Can my cat use my data plan?", "unknown"), secs(3));
    assert_eq!(r.kind, "rephrase");
    let t = d.on_call_end(secs(8)).expect("ticket");
    assert_eq!(t.kind, "unresolved");
    assert_eq!(t.subject, "unresolved call: Can my cat use my data plan?");
    assert_eq!(t.details["asked"][0], "Can my cat use my data plan?");
}

#[test]
fn a_generated_answer_is_used_only_when_the_knowledge_base_has_none() {
    let mut d = dialog();
    let mut a = with_hits(
        said("Does the travel pass work in Japan?", "unknown"),
        &[("roaming_rates", 0.4)],
    );
    a.generated = Some("Yes, it covers Japan.".into());
    let r = d.on_turn(&a, secs(3));
    assert_eq!(
        (r.kind.as_str(), r.text.as_str()),
        ("generated", "Yes, it covers Japan.")
    );
    // A knowledge-base answer wins over a generated one.
    let mut a = with_hits(
        said("How much is roaming?", "roaming_rates"),
        &[("roaming_rates", 0.8)],
    );
    a.generated = Some("Something else.".into());
    assert_eq!(d.on_turn(&a, secs(9)).kind, "kb:roaming_rates");
    assert_eq!(d.on_call_end(secs(12)), None);
}

#[test]
fn slots_are_filled_in_the_answers_language() {
    use super::fill_slots;
    assert_eq!(
        fill_slots("号码是{caller_number}，{time_of_day}好", "", 9),
        "号码是您的电话，上午好"
    );
    assert_eq!(
        fill_slots(
            "Good {time_of_day}, texting from {caller_number}",
            "+1555",
            20
        ),
        "Good evening, texting from + 1 5 5 5"
    );
    assert_eq!(
        fill_slots("from {caller_number}", "", 13),
        "from your phone"
    );
    // A SIP user name is not a number to text from.
    assert_eq!(
        fill_slots("from {caller_number}", "caller0", 13),
        "from your phone"
    );
}

/// Issue 17: a goodbye ends the call however angry it scored; small talk is answered in
/// kind, never escalated and never a topic; "say that again" repeats the last answer.
#[test]
fn small_talk_and_a_loud_goodbye_stay_with_the_bot() {
    let mut d = dialog();
    let mut hi = said("Hi.", "affirm");
    hi.understanding.anger = 0.7;
    let r = d.on_turn(&hi, secs(2));
    assert_eq!(r.kind, "smalltalk:greeting", "{}", r.text);
    assert!(r.escalation.is_none());
    let r = d.on_turn(
        &with_hits(
            said("How do I check my balance?", "billing_balance"),
            &[("billing_balance", 0.8)],
        ),
        secs(8),
    );
    assert_eq!(r.kind, "kb:billing_balance");
    let answer = r.text.clone();
    let r = d.on_turn(&said("Sorry, could you say that again?", UNKNOWN), secs(15));
    assert_eq!(r.kind, "smalltalk:repeat");
    assert_eq!(r.text, format!("Sure. {answer}"));
    let mut robot = said("Are you a real person?", "agent_request");
    robot.understanding.anger = 0.6;
    let r = d.on_turn(&robot, secs(20));
    assert_eq!(r.kind, "smalltalk:robot", "{}", r.text);
    assert!(r.escalation.is_none());
    let r = d.on_turn(&said("Hold on a second.", UNKNOWN), secs(24));
    assert_eq!(r.kind, "smalltalk:hold");
    let r = d.on_turn(&said("Can you hear me?", UNKNOWN), secs(30));
    assert_eq!(r.kind, "smalltalk:hear-me");
    // Thanks, then a goodbye that scored angry: a polite goodbye, no ticket.
    let r = d.on_turn(&said("Great, thanks!", "thanks"), secs(34));
    assert_eq!(r.kind, "smalltalk:thanks");
    let mut bye = said("Okay, thank you. Goodbye!", "goodbye");
    bye.understanding.anger = 0.55;
    bye.understanding.emotion = "angry".into();
    let r = d.on_turn(&bye, secs(38));
    assert!(
        r.hang_up && r.kind == "goodbye" && r.escalation.is_none(),
        "{r:?}"
    );
    assert_eq!(d.on_call_end(secs(40)), None);
    // None of it became the call's topic.
    assert_eq!(d.last_intent, "billing_balance");
}

#[test]
fn chinese_small_talk_is_answered_in_chinese() {
    let mut d = Dialog::new(settings(), "5551234", "zh", 10, 1_234_000);
    let r = d.on_turn(&said("喂，你好", UNKNOWN), secs(2));
    assert_eq!(r.kind, "smalltalk:greeting");
    assert!(r.text.contains("您好"), "{}", r.text);
    let r = d.on_turn(&said("你是机器人吗？", "agent_request"), secs(6));
    assert_eq!(r.kind, "smalltalk:robot");
    assert!(
        r.text.contains("转人工") && r.escalation.is_none(),
        "{}",
        r.text
    );
    let r = d.on_turn(&said("好的，谢谢，再见", "goodbye"), secs(9));
    assert!(r.hang_up);
}

/// Garbled speech the model scored angry, with no intent, no answer and no angry word, is
/// asked again; the same score on words that carry anger hands over.
#[test]
fn garbled_speech_is_asked_again_not_read_as_anger() {
    let mut d = dialog();
    let mut garbled = said("turn on rolling and going to the next week", UNKNOWN);
    garbled.understanding.anger = 0.7;
    garbled.understanding.emotion = "frustrated".into();
    let r = d.on_turn(&garbled, secs(3));
    assert_eq!(r.kind, "rephrase", "{}", r.text);
    assert!(r.escalation.is_none());
    let mut angry = said("This is ridiculous, I have waited for hours", UNKNOWN);
    angry.understanding.anger = 0.7;
    let r = d.on_turn(&angry, secs(9));
    assert_eq!(r.kind, "escalate:anger");
}

/// Anger the models are very sure of counts with no intent and no angry word, but only on
/// words whisper heard well.
#[test]
fn strong_anger_counts_without_an_intent_if_heard_well() {
    let line = "I've called four times and every time I get a different answer";
    let mut d = dialog();
    let mut unsure = said(line, UNKNOWN);
    unsure.understanding.anger = 0.95;
    unsure.heard_confidence = Some(0.2);
    assert_eq!(d.on_turn(&unsure, secs(3)).kind, "rephrase");
    let mut d = dialog();
    let mut sure = said(line, UNKNOWN);
    sure.understanding.anger = 0.95;
    sure.heard_confidence = Some(0.8);
    assert_eq!(d.on_turn(&sure, secs(3)).kind, "escalate:anger");
    // Nor on a weak intent: most often a misheard question, asked again.
    let mut d = dialog();
    let mut misheard = said(
        "How much they don't like you, this month",
        "billing_high_bill",
    );
    misheard.understanding.intent_confidence = 0.49;
    misheard.understanding.anger = 0.99;
    misheard.heard_confidence = Some(0.8);
    assert_eq!(d.on_turn(&misheard, secs(3)).kind, "rephrase");
    // Never on a goodbye.
    let mut d = dialog();
    let mut bye = said("Okay, thank you. Goodbye.", "goodbye");
    bye.understanding.anger = 0.95;
    assert!(d.on_turn(&bye, secs(3)).escalation.is_none());
}

#[test]
fn thanks_is_never_angry_but_an_angry_no_is() {
    let mut d = dialog();
    let mut thanks = said("多谢，我知道怎么弄了。", "thanks");
    thanks.understanding.anger = 0.53;
    let r = d.on_turn(&thanks, secs(3));
    assert!(r.escalation.is_none(), "{}", r.kind);
    let mut no = said("No! That's not it at all.", "deny");
    no.understanding.anger = 0.81;
    let r = d.on_turn(&no, secs(9));
    assert_eq!(r.kind, "escalate:anger");
}

#[test]
fn never_mind_after_a_rephrase_drops_the_question_not_the_call() {
    let mut d = dialog();
    let r = d.on_turn(&said("What's the weather like tomorrow?", UNKNOWN), secs(3));
    assert_eq!(r.kind, "rephrase");
    let r = d.on_turn(&said("Never mind.", "deny"), secs(8));
    assert_eq!(r.kind, "smalltalk:never-mind", "{}", r.text);
    assert!(!r.hang_up);
    let r = d.on_turn(
        &with_hits(
            said("When is my bill due?", "payment_due_date"),
            &[("payment_due_date", 0.8)],
        ),
        secs(14),
    );
    assert!(r.kind.starts_with("kb:"), "{}", r.kind);
    // After an answer, "no" is "nothing else": goodbye.
    let r = d.on_turn(&said("No.", "deny"), secs(20));
    assert_eq!(r.kind, "goodbye");
    assert!(r.hang_up);
}

#[test]
fn misheard_words_are_not_angry_on_the_models_word_alone() {
    let mut d = dialog();
    let mut misheard = said("How much they don't like you, this month", "data_usage");
    misheard.understanding.anger = 1.0;
    misheard.heard_confidence = Some(0.25);
    let r = d.on_turn(&misheard, secs(3));
    assert!(r.escalation.is_none(), "{}", r.kind);
    let mut shouted = said("This is ridiculous, fix my line", "report_outage");
    shouted.understanding.anger = 0.9;
    shouted.heard_confidence = Some(0.2);
    let r = d.on_turn(&shouted, secs(9));
    assert_eq!(r.kind, "escalate:anger");
}
