//! One scenario a test: what a caller's phone does, what the leg must answer.

use super::*;
use voxdesk_sip::sdp::Direction;

/// A request with our tag before we answered (no dialog on our side yet).
fn early(method: &str) -> Message {
    parse(&format!(
        "{method} sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-e\r\n\
         From: <sip:alice@127.0.0.1:5070>;tag=phone1\r\nTo: <sip:bot@127.0.0.1>;tag=uas1\r\n\
         Call-ID: call-1@127.0.0.1\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn ending(r: &Run) -> Option<String> {
    r.events().into_iter().find_map(|e| match e {
        Event::Ending { reason } => Some(reason),
        _ => None,
    })
}

#[test]
fn rings_then_answers_with_sdp_then_confirms_on_ack() {
    let mut r = Run::offer();
    assert_eq!(r.codes(), vec![180]);
    assert_eq!(r.leg.state(), State::Ringing);
    r.advance(S - MS);
    assert_eq!(r.codes(), vec![180], "nothing before the ring time");
    r.advance(MS);
    let ok = r.last_response(200).expect("200 after the ring");
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio 30000"));
    assert_eq!(ok.header("Content-Type"), Some("application/sdp"));
    assert!(ok.to_addr().unwrap().tag() == Some("uas1"));
    assert!(r.events().contains(&Event::Answered { codec: "PCMU" }));
    assert_eq!(r.media().len(), 1, "the media moves to the answer");
    assert_eq!(r.leg.state(), State::WaitAck);
    r.phone.answered(&ok);
    let ack = r.phone.ack("");
    r.out.clear();
    r.input(Input::Ack(ack));
    assert_eq!(r.events(), vec![Event::Confirmed]);
    assert_eq!(r.leg.state(), State::Confirmed);
}

#[test]
fn the_200_is_retransmitted_with_doubling_intervals_until_the_ack() {
    let mut r = Run::offer();
    r.advance(S);
    r.out.clear();
    let mut at = Vec::new();
    for _ in 0..12_000 {
        r.advance(MS);
        if r.last_response(200).is_some() {
            at.push((r.now - S).as_millis());
            r.out.clear();
        }
    }
    // T1, then doubling: 0.5, 1.5, 3.5, 7.5 s, then every T2 (4 s).
    assert_eq!(at, vec![500, 1500, 3500, 7500, 11500]);
    let ok = {
        r.advance(MS);
        r.leg.pending_2xx.as_ref().unwrap().msg.clone()
    };
    r.phone.answered(&ok);
    let ack = r.phone.ack("");
    r.input(Input::Ack(ack));
    r.out.clear();
    r.advance(Duration::from_secs(30));
    assert!(r.responses().is_empty(), "no 200 after the ACK");
}

#[test]
fn no_ack_within_64_t1_hangs_up() {
    let mut r = Run::offer();
    r.advance(S);
    r.advance(64 * T1 - MS);
    assert_eq!(r.leg.state(), State::WaitAck);
    r.out.clear();
    r.advance(MS);
    assert_eq!(r.sent_methods(), vec!["BYE"]);
    assert_eq!(ending(&r).as_deref(), Some("no-ack"));
    assert_eq!(r.leg.state(), State::Ending);
}

#[test]
fn cancel_while_ringing_ends_with_487() {
    let mut r = Run::offer();
    let key = r.phone.cancel();
    r.input(Input::Cancel { invite_key: key });
    assert_eq!(r.codes(), vec![180, 487]);
    assert_eq!(r.leg.state(), State::Done);
    assert_eq!(r.reason(), "caller-cancel");
    r.advance(Duration::from_secs(10));
    assert_eq!(r.codes(), vec![180, 487], "no 200 after the 487");
}

#[test]
fn cancel_racing_our_200_is_ignored() {
    let mut r = Run::offer();
    r.advance(S);
    let key = r.phone.cancel();
    r.input(Input::Cancel { invite_key: key });
    assert_eq!(r.leg.state(), State::WaitAck);
    assert!(r.last_response(487).is_none());
}

#[test]
fn cancel_of_another_invite_is_ignored() {
    let mut r = Run::offer();
    let mut key = r.phone.cancel();
    key.branch.push('x');
    r.input(Input::Cancel { invite_key: key });
    assert_eq!(r.leg.state(), State::Ringing);
}

#[test]
fn bye_before_the_answer_ends_the_invite_too() {
    let mut r = Run::offer();
    let bye = early("BYE");
    r.input(Input::Request {
        key: key_of(&bye),
        msg: bye,
    });
    assert_eq!(r.codes(), vec![180, 200, 487]);
    assert_eq!(r.reason(), "caller-bye");
}

#[test]
fn caller_bye_ends_the_call() {
    let mut r = Run::confirmed();
    let resp = r.request(Method::Bye, &[], "");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(r.leg.state(), State::Done);
    assert_eq!(r.reason(), "caller-bye");
    assert!(r.sent().is_empty(), "no BYE back");
}

#[test]
fn bye_with_a_wrong_tag_gets_481() {
    let mut r = Run::confirmed();
    r.phone.dialog.as_mut().unwrap().remote_tag = "someone-else".into();
    let resp = r.request(Method::Bye, &[], "");
    assert_eq!(resp.status(), Some(481));
    assert_eq!(r.leg.state(), State::Confirmed);
}

#[test]
fn an_old_cseq_gets_500() {
    let mut r = Run::confirmed();
    r.request(Method::Info, &[], "Signal=1\r\nDuration=100\r\n");
    r.phone.dialog.as_mut().unwrap().local_seq = 0;
    let resp = r.request(Method::Bye, &[], "");
    assert_eq!(resp.status(), Some(500));
    assert_eq!(r.leg.state(), State::Confirmed);
}

#[test]
fn a_request_before_the_dialog_gets_481() {
    let mut r = Run::offer();
    let info = early("INFO");
    r.input(Input::Request {
        key: key_of(&info),
        msg: info,
    });
    assert_eq!(r.codes(), vec![180, 481]);
    assert_eq!(r.leg.state(), State::Ringing);
}

#[test]
fn hold_and_resume_by_reinvite_move_the_media() {
    let mut r = Run::confirmed();
    let ok = r.request(Method::Invite, &[], &sdp("0 101", "sendonly"));
    assert_eq!(ok.status(), Some(200));
    assert!(String::from_utf8_lossy(&ok.body).contains("a=recvonly"));
    assert_eq!(r.media()[0].direction, Direction::RecvOnly);
    let ack = r.phone.ack("");
    r.input(Input::Ack(ack));
    let ok = r.request(Method::Invite, &[], &sdp("0 101", "sendrecv"));
    assert!(String::from_utf8_lossy(&ok.body).contains("a=sendrecv"));
    assert_eq!(r.media()[0].direction, Direction::SendRecv);
    assert_eq!(r.leg.negotiated().unwrap().direction, Direction::SendRecv);
}

#[test]
fn the_session_version_grows_with_each_answer() {
    let mut r = Run::confirmed();
    let ok = r.request(Method::Invite, &[], &sdp("0", "sendonly"));
    assert!(String::from_utf8_lossy(&ok.body).contains("o=voxdesk 42 2 IN IP4"));
}

#[test]
fn a_second_reinvite_before_the_ack_gets_491() {
    let mut r = Run::confirmed();
    r.request(Method::Invite, &[], &sdp("0", "sendonly"));
    let resp = r.request(Method::Invite, &[], &sdp("0", "sendrecv"));
    assert_eq!(resp.status(), Some(491));
    assert_eq!(resp.header("Retry-After"), Some("1"));
}

#[test]
fn an_offerless_reinvite_gets_our_sdp_again() {
    let mut r = Run::confirmed();
    let ok = r.request(Method::Invite, &[], "");
    assert_eq!(ok.status(), Some(200));
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio 30000"));
    assert!(r.media().is_empty());
}

#[test]
fn a_reinvite_with_broken_sdp_gets_400_and_the_call_goes_on() {
    let mut r = Run::confirmed();
    let resp = r.request(Method::Invite, &[], "v=0\r\nnonsense\r\n");
    assert_eq!(resp.status(), Some(400));
    assert!(resp.header("Warning").is_some());
    assert_eq!(r.leg.state(), State::Confirmed);
}

#[test]
fn a_reinvite_with_no_common_codec_gets_488() {
    let mut r = Run::confirmed();
    let resp = r.request(Method::Invite, &[], &sdp("9", "sendrecv"));
    assert_eq!(resp.status(), Some(488));
    assert!(r.media().is_empty());
    assert_eq!(r.leg.state(), State::Confirmed);
}

#[test]
fn update_refreshes_the_session_timer() {
    let extra = "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n";
    let mut r = Run::confirmed_with(&sdp("0", "sendrecv"), extra, settings());
    // Expiry would be at 1 s + 120 - 32 = 89 s without a refresh.
    r.advance(Duration::from_secs(80));
    let ok = r.request(
        Method::Update,
        &[
            ("Session-Expires", "120;refresher=uac"),
            ("Supported", "timer"),
        ],
        "",
    );
    assert_eq!(ok.status(), Some(200));
    assert!(ok.header("Session-Expires").is_some());
    r.advance(Duration::from_secs(80));
    assert_eq!(r.leg.state(), State::Confirmed, "refreshed at 81 s");
    r.advance(Duration::from_secs(10));
    assert_eq!(ending(&r).as_deref(), Some("session-expired"));
    assert_eq!(r.sent_methods(), vec!["BYE"]);
}

#[test]
fn a_missed_refresh_by_the_caller_ends_the_call() {
    let extra = "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n";
    let mut r = Run::confirmed_with(&sdp("0", "sendrecv"), extra, settings());
    r.advance(Duration::from_secs(58));
    assert_eq!(r.leg.state(), State::Confirmed);
    // 90 - min(32, 30) = 60 s after the answer at 1 s.
    r.advance(Duration::from_secs(2));
    assert_eq!(r.leg.state(), State::Ending);
    assert_eq!(r.reason(), "session-expired");
}

#[test]
fn we_refresh_with_update_when_we_are_the_refresher() {
    let extra = "Supported: timer\r\nSession-Expires: 100;refresher=uas\r\n";
    let mut r = Run::confirmed_with(&sdp("0", "sendrecv"), extra, settings());
    r.advance(Duration::from_secs(50));
    assert_eq!(r.sent_methods(), vec!["UPDATE"]);
    let upd = r.sent()[0].clone();
    assert!(upd.header("Session-Expires").unwrap().starts_with("100"));
    r.answer_ours(&upd, 200);
    r.out.clear();
    r.advance(Duration::from_secs(50));
    assert_eq!(
        r.sent_methods(),
        vec!["UPDATE"],
        "again half an interval later"
    );
    let upd = r.sent()[0].clone();
    r.answer_ours(&upd, 481);
    assert_eq!(r.reason(), "session-refresh-failed");
    assert_eq!(r.sent_methods(), vec!["UPDATE", "BYE"]);
}

#[test]
fn a_session_interval_below_min_se_gets_422() {
    let extra = "Supported: timer\r\nSession-Expires: 30\r\n";
    let r = Run::offer_with(&sdp("0", "sendrecv"), extra, settings());
    assert_eq!(r.codes(), vec![422]);
    assert_eq!(r.responses()[0].header("Min-SE"), Some("90"));
    assert_eq!(r.reason(), "session-interval-too-small");
}

#[test]
fn a_broken_offer_gets_400() {
    let r = Run::offer_with("v=0\r\ngarbage\r\n", "", settings());
    assert_eq!(r.codes(), vec![400]);
    assert_eq!(r.reason(), "bad-sdp");
}

#[test]
fn an_offer_without_a_common_codec_gets_488_with_a_warning() {
    let r = Run::offer_with(&sdp("9", "sendrecv"), "", settings());
    assert_eq!(r.codes(), vec![488]);
    assert!(r.responses()[0]
        .header("Warning")
        .unwrap()
        .starts_with("305"));
    assert_eq!(r.reason(), "no-common-codec");
}

#[test]
fn a_late_offer_is_answered_in_the_ack() {
    let mut r = Run::offer_with("", "", settings());
    assert!(r.leg.media_params().is_none());
    r.advance(S);
    let ok = r.last_response(200).unwrap();
    assert!(String::from_utf8_lossy(&ok.body).contains("telephone-event"));
    assert!(r.media().is_empty(), "nothing agreed yet");
    r.phone.answered(&ok);
    let ack = r.phone.ack(&sdp("8 101", "sendrecv"));
    r.out.clear();
    r.input(Input::Ack(ack));
    assert_eq!(r.media().len(), 1);
    assert_eq!(r.media()[0].codec, Codec::Pcma);
    assert_eq!(r.leg.state(), State::Confirmed);
}

#[test]
fn a_late_offer_with_an_unusable_answer_hangs_up() {
    let mut r = Run::offer_with("", "", settings());
    r.advance(S);
    let ok = r.last_response(200).unwrap();
    r.phone.answered(&ok);
    let ack = r.phone.ack(&sdp("9", "sendrecv"));
    r.input(Input::Ack(ack));
    assert_eq!(r.reason(), "bad-sdp-answer");
    assert!(r.sent_methods().contains(&"BYE".to_string()));
}

#[test]
fn info_digits_reach_the_call_and_junk_does_not() {
    let mut r = Run::confirmed();
    let resp = r.request(Method::Info, &[], "Signal=5\r\nDuration=160\r\n");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(r.events(), vec![Event::Digit('5')]);
    r.request(Method::Info, &[], "Signal=#\r\n");
    assert_eq!(r.events(), vec![Event::Digit('#')]);
    r.request(Method::Info, &[], "Signal=<script>\r\n");
    assert!(r.events().is_empty());
    r.request(Method::Info, &[], "");
    assert!(r.events().is_empty());
}

#[test]
fn refer_from_the_caller_is_declined_and_unknown_methods_get_405() {
    let mut r = Run::confirmed();
    let resp = r.request(Method::Refer, &[("Refer-To", "<sip:x@example.com>")], "");
    assert_eq!(resp.status(), Some(603));
    let resp = r.request(Method::Other("PUBLISH".into()), &[], "");
    assert_eq!(resp.status(), Some(405));
    assert_eq!(r.leg.state(), State::Confirmed);
}

#[test]
fn the_driver_answers_when_there_is_no_auto_answer() {
    let s = Settings {
        auto_answer: None,
        ..settings()
    };
    let mut r = Run::offer_with(&sdp("0", "sendrecv"), "", s);
    r.advance(Duration::from_secs(60));
    assert_eq!(r.leg.state(), State::Ringing);
    r.leg.answer(r.now);
    r.collect();
    assert_eq!(r.leg.state(), State::WaitAck);
}

#[test]
fn max_duration_while_ringing_gets_503() {
    let s = Settings {
        auto_answer: None,
        max_call: Some(Duration::from_secs(30)),
        ..settings()
    };
    let mut r = Run::offer_with(&sdp("0", "sendrecv"), "", s);
    r.advance(Duration::from_secs(30));
    assert_eq!(r.codes(), vec![180, 503]);
    assert_eq!(r.reason(), "max-duration");
}

#[test]
fn max_duration_in_a_call_sends_bye() {
    let s = Settings {
        max_call: Some(Duration::from_secs(30)),
        ..settings()
    };
    let mut r = Run::confirmed_with(&sdp("0", "sendrecv"), "", s);
    // Counted from the INVITE (the call was answered at 1 s).
    r.advance(Duration::from_secs(28));
    assert!(r.sent().is_empty(), "{:?}", r.sent());
    r.advance(Duration::from_secs(1));
    assert_eq!(r.sent_methods(), vec!["BYE"]);
    assert_eq!(r.reason(), "max-duration");
    let bye = r.sent()[0].clone();
    r.answer_ours(&bye, 200);
    assert_eq!(r.leg.state(), State::Done);
}

#[test]
fn shutdown_while_ringing_gets_503_with_retry_after() {
    let mut r = Run::offer();
    r.input(Input::Shutdown);
    let resp = r.last_response(503).unwrap();
    assert_eq!(resp.header("Retry-After"), Some("30"));
    assert_eq!(r.reason(), "server-shutdown");
}

#[test]
fn shutdown_in_a_call_sends_bye_and_a_second_one_ends_it() {
    let mut r = Run::confirmed();
    r.input(Input::Shutdown);
    assert_eq!(r.sent_methods(), vec!["BYE"]);
    assert_eq!(r.leg.state(), State::Ending);
    r.input(Input::Shutdown);
    assert_eq!(r.leg.state(), State::Done);
}

#[test]
fn our_bye_carries_the_dialog_and_ends_on_its_answer() {
    let mut r = Run::confirmed();
    r.leg.hangup(r.now, "bot-goodbye");
    r.collect();
    let bye = r.sent()[0].clone();
    assert_eq!(bye.from_addr().unwrap().tag(), Some("uas1"));
    assert_eq!(bye.to_addr().unwrap().tag(), Some("phone1"));
    assert_eq!(
        bye.request_uri().unwrap().to_string(),
        "sip:alice@127.0.0.1:5070"
    );
    r.answer_ours(&bye, 200);
    assert_eq!(r.leg.state(), State::Done);
    assert_eq!(r.reason(), "bot-goodbye");
}

#[test]
fn an_unanswered_bye_ends_the_leg_after_a_while() {
    let mut r = Run::confirmed();
    r.leg.hangup(r.now, "bot-goodbye");
    r.collect();
    r.advance(BYE_WAIT - MS);
    assert_eq!(r.leg.state(), State::Ending);
    r.advance(MS);
    assert_eq!(r.leg.state(), State::Done);
}

#[test]
fn a_bye_that_times_out_ends_the_leg() {
    let mut r = Run::confirmed();
    r.leg.hangup(r.now, "bot-goodbye");
    r.collect();
    let mut key = key_of(&r.sent()[0]);
    key.server = false;
    r.input(Input::Timeout { key });
    assert_eq!(r.leg.state(), State::Done);
}

#[test]
fn hanging_up_twice_sends_one_bye_and_keeps_the_first_reason() {
    let mut r = Run::confirmed();
    r.leg.hangup(r.now, "agent-bye");
    r.leg.hangup(r.now, "rtp-timeout");
    r.collect();
    assert_eq!(r.sent_methods(), vec!["BYE"]);
    assert_eq!(r.reason(), "agent-bye");
}

#[test]
fn a_reason_set_by_the_driver_wins_over_the_hangup() {
    let mut r = Run::confirmed();
    r.leg.set_end_reason("feature-code");
    r.leg.hangup(r.now, "bot-goodbye");
    r.collect();
    assert_eq!(r.reason(), "feature-code");
}

#[test]
fn a_server_transaction_timeout_hangs_up() {
    let mut r = Run::confirmed();
    let key = r.phone.key();
    r.input(Input::Timeout { key });
    assert_eq!(r.reason(), "transaction-timeout");
    assert_eq!(r.sent_methods(), vec!["BYE"]);
}

#[test]
fn a_retransmitted_ack_or_one_for_another_cseq_changes_nothing() {
    let mut r = Run::confirmed();
    let ack = r.phone.ack("");
    r.input(Input::Ack(ack));
    assert!(r.out.is_empty());
    let mut r = Run::offer();
    r.advance(S);
    let ok = r.last_response(200).unwrap();
    r.phone.answered(&ok);
    r.phone.dialog.as_mut().unwrap().local_seq = 7;
    let ack = r.phone.ack("");
    r.input(Input::Ack(ack));
    assert_eq!(r.leg.state(), State::WaitAck, "the ACK of another INVITE");
}

#[test]
fn each_request_of_ours_has_its_own_branch() {
    let extra = "Supported: timer\r\nSession-Expires: 100;refresher=uas\r\n";
    let mut r = Run::confirmed_with(&sdp("0", "sendrecv"), extra, settings());
    r.advance(Duration::from_secs(50));
    r.leg.hangup(r.now, "bot-goodbye");
    r.collect();
    let branches: Vec<String> = r
        .sent()
        .iter()
        .map(|m| m.header("Via").unwrap().to_string())
        .collect();
    assert_eq!(branches.len(), 2);
    assert_ne!(branches[0], branches[1]);
    assert!(branches.iter().all(|b| b.contains(";branch=z9hG4bK")));
}

#[test]
fn a_hangup_before_the_answer_gets_the_invite_a_final_480() {
    let mut r = Run::offer();
    r.leg.hangup(r.now, "agent-bye");
    r.collect();
    assert!(r.sent().is_empty());
    assert_eq!(r.codes(), vec![180, 480]);
    assert_eq!(r.leg.state(), State::Done);
    assert_eq!(r.reason(), "agent-bye");
}
