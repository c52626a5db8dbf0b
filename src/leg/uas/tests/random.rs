//! Random interleavings of everything a phone, the network, the clock and the driver can
//! do to the caller's leg, with the invariants that must hold whatever the order.

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Wait(u64),
    Ack,
    Bye,
    Cancel,
    Reinvite(bool),
    Update,
    Info,
    Shutdown,
    Answer,
    Hangup,
    /// The phone answers our last request with this code.
    AnswerOurs(u16),
    TimeoutOurs,
    TimeoutInvite,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u64..40_000).prop_map(Step::Wait),
        Just(Step::Ack),
        Just(Step::Bye),
        Just(Step::Cancel),
        any::<bool>().prop_map(Step::Reinvite),
        Just(Step::Update),
        Just(Step::Info),
        Just(Step::Shutdown),
        Just(Step::Answer),
        Just(Step::Hangup),
        prop_oneof![Just(200u16), Just(481), Just(408)].prop_map(Step::AnswerOurs),
        Just(Step::TimeoutOurs),
        Just(Step::TimeoutInvite),
    ]
}

fn play(r: &mut Run, s: &Step) {
    let answered = r.phone.dialog.is_some();
    match s {
        Step::Wait(ms) => r.advance(Duration::from_millis(*ms)),
        Step::Ack if answered => {
            let ack = r.phone.ack("");
            r.input(Input::Ack(ack));
        }
        Step::Bye if answered => {
            r.request(Method::Bye, &[], "");
        }
        Step::Cancel => {
            let key = r.phone.cancel();
            r.input(Input::Cancel { invite_key: key });
        }
        Step::Reinvite(hold) if answered => {
            let dir = if *hold { "sendonly" } else { "sendrecv" };
            r.request(Method::Invite, &[], &sdp("0 101", dir));
        }
        Step::Update if answered => {
            r.request(
                Method::Update,
                &[("Session-Expires", "90;refresher=uac")],
                "",
            );
        }
        Step::Info if answered => {
            r.request(Method::Info, &[], "Signal=3\r\n");
        }
        Step::Shutdown => r.input(Input::Shutdown),
        Step::Answer => {
            r.leg.answer(r.now);
            r.collect();
        }
        Step::Hangup => {
            r.leg.hangup(r.now, "driver");
            r.collect();
        }
        Step::AnswerOurs(code) => {
            if let Some(m) = r.sent().last().cloned() {
                r.answer_ours(&m, *code);
            }
        }
        Step::TimeoutOurs => {
            if let Some(m) = r.sent().last() {
                let mut key = key_of(m);
                key.server = false;
                r.input(Input::Timeout { key });
            }
        }
        Step::TimeoutInvite => {
            let key = r.phone.key();
            r.input(Input::Timeout { key });
        }
        _ => {}
    }
    // The phone learns of our 200 as soon as it is sent.
    if r.phone.dialog.is_none() {
        if let Some(ok) = r
            .last_response(200)
            .filter(|m| m.cseq().is_ok_and(|c| c.method == "INVITE"))
        {
            r.phone.answered(&ok);
        }
    }
}

/// Final responses to the caller's INVITE, in order.
fn finals(r: &Run, all: &[Message]) -> Vec<u16> {
    let key = r.phone.key();
    let _ = key;
    all.iter()
        .filter(|m| m.cseq().is_ok_and(|c| c.method == "INVITE" && c.seq == 1))
        .filter_map(|m| m.status())
        .filter(|c| *c >= 200)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_order_of_events_keeps_the_leg_sound(steps in proptest::collection::vec(step(), 1..40)) {
        let mut r = Run::offer();
        let mut all = Vec::new();
        for s in &steps {
            r.out.clear();
            play(&mut r, s);
            all.extend(r.responses());
        }
        // The INVITE gets one kind of final answer: 2xx (maybe repeated) or one error.
        let f = finals(&r, &all);
        if f.iter().any(|c| *c >= 300) {
            prop_assert_eq!(f.len(), 1, "one error response, nothing else: {:?}", f);
        }
        // Whatever happened, a shutdown and a minute of time end every leg: no leak.
        r.input(Input::Shutdown);
        r.advance(Duration::from_secs(60));
        if r.leg.state() != State::Done {
            r.input(Input::Shutdown);
        }
        prop_assert_eq!(r.leg.state(), State::Done);
        prop_assert_eq!(r.endings, 1);
        prop_assert!(r.leg.end_reason().is_some());
        prop_assert_eq!(r.leg.next_deadline(), None);
        // Once over, nothing more goes out but answers to requests.
        r.out.clear();
        r.advance(Duration::from_secs(600));
        r.leg.hangup(r.now, "late");
        r.leg.answer(r.now);
        r.collect();
        prop_assert!(r.out.is_empty(), "output after the end: {:?}", r.out);
    }
}
