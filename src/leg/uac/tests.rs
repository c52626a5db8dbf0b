//! An agent's phone, scripted, answering (or not) the leg we place; on virtual time.

use super::*;
use crate::leg::outputs;
use crate::leg::uas::tests::{local_media, parse, sdp};
use proptest::prelude::*;

fn placement() -> Placement {
    Placement {
        target: Uri::parse("sip:agent1@127.0.0.1:5080").unwrap(),
        call_id: "c1-agent1@voxdesk".into(),
        local_tag: "uac1".into(),
        from_display: "Alice".into(),
        from_user: "alice".into(),
        host: "127.0.0.1".into(),
        contact: "<sip:voxdesk@127.0.0.1:5060>".into(),
        via: "SIP/2.0/UDP 127.0.0.1:5060".into(),
        allow: "INVITE, ACK, BYE".into(),
        user_agent: "voxdesk-test".into(),
        headers: vec![("Subject", "Call from alice".into())],
        local: local_media(),
    }
}

/// The leg, the INVITE it sent, and everything it put out since.
struct Agent {
    leg: UacLeg,
    invite: Message,
    out: Vec<Output>,
    phone: Option<Dialog>,
}

impl Agent {
    fn call() -> Agent {
        let mut leg = UacLeg::place(placement());
        let Some(Output::Send(invite)) = leg.poll_output() else {
            panic!("the INVITE goes out first")
        };
        // Through the parser, as the phone would read it.
        let invite = parse(&String::from_utf8_lossy(&invite.to_bytes()));
        Agent {
            leg,
            invite,
            out: Vec::new(),
            phone: None,
        }
    }

    fn collect(&mut self) {
        while let Some(o) = self.leg.poll_output() {
            self.out.push(o);
        }
    }

    fn reply(&mut self, code: u16, body: &str) {
        let mut r = self
            .invite
            .response(code, voxdesk_sip::reason_phrase(code), Some("ph1"));
        r.push_header("Contact", "<sip:agent1@127.0.0.1:5080>");
        if !body.is_empty() {
            r.push_header("Content-Type", "application/sdp");
            r.body = body.as_bytes().to_vec();
        }
        let r = parse(&String::from_utf8_lossy(&r.to_bytes()));
        if (200..300).contains(&code) && self.phone.is_none() {
            self.phone = Dialog::uas(&self.invite, "ph1", "<sip:agent1@127.0.0.1:5080>").ok();
        }
        self.leg.handle(Input::Response(r));
        self.collect();
    }

    fn phone_request(&mut self, method: Method, body: &str) {
        let d = self.phone.as_mut().expect("answered");
        let mut m = d.request(method, "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-ph");
        if !body.is_empty() {
            m.push_header("Content-Type", "application/sdp");
            m.body = body.as_bytes().to_vec();
        }
        let m = parse(&String::from_utf8_lossy(&m.to_bytes()));
        let key = TxKey {
            server: true,
            branch: "z9hG4bK-ph".into(),
            sent_by: "127.0.0.1:5080".into(),
            method: m.cseq().unwrap().method,
        };
        self.leg.handle(Input::Request { key, msg: m });
        self.collect();
    }

    fn sent(&self) -> Vec<String> {
        outputs::sent(&self.out)
            .iter()
            .filter_map(|m| m.method().map(|m| m.as_str().to_string()))
            .collect()
    }

    fn events(&self) -> Vec<Event> {
        outputs::events(&self.out)
    }

    fn codes(&self) -> Vec<u16> {
        outputs::responses(&self.out)
            .iter()
            .filter_map(|m| m.status())
            .collect()
    }
}

#[test]
fn the_invite_carries_the_caller_our_offer_and_the_headers() {
    let a = Agent::call();
    let i = &a.invite;
    assert_eq!(
        i.request_uri().unwrap().to_string(),
        "sip:agent1@127.0.0.1:5080"
    );
    assert_eq!(i.from_addr().unwrap().tag(), Some("uac1"));
    assert!(i.header("From").unwrap().contains("sip:alice@127.0.0.1"));
    assert_eq!(i.header("Subject"), Some("Call from alice"));
    assert!(String::from_utf8_lossy(&i.body).contains("m=audio 30000"));
    assert_eq!(a.leg.key().branch, "z9hG4bKuac1-1");
    assert_eq!(a.leg.state(), State::Calling);
}

#[test]
fn an_answer_is_acked_and_moves_the_media() {
    let mut a = Agent::call();
    a.reply(180, "");
    assert!(a.out.is_empty());
    a.reply(200, &sdp("0 101", "sendrecv"));
    assert_eq!(a.sent(), vec!["ACK"]);
    assert_eq!(a.events(), vec![Event::Answered { codec: "PCMU" }]);
    assert!(a.out.iter().any(|o| matches!(o, Output::Media { .. })));
    assert!(a.leg.answered());
    a.out.clear();
    a.reply(200, &sdp("0 101", "sendrecv"));
    assert_eq!(a.sent(), vec!["ACK"], "a retransmitted 2xx is ACKed again");
    assert!(a.events().is_empty());
}

#[test]
fn a_refusal_or_no_answer_fails_the_leg() {
    let mut a = Agent::call();
    a.reply(486, "");
    assert_eq!(a.events(), vec![Event::Failed { code: 486 }]);
    assert!(a.leg.is_over());
    let mut a = Agent::call();
    let key = a.leg.key().clone();
    a.leg.handle(Input::Timeout { key });
    a.collect();
    assert_eq!(a.events(), vec![Event::Failed { code: 408 }]);
}

#[test]
fn an_answer_we_cannot_use_is_acked_ended_and_failed() {
    let mut a = Agent::call();
    a.reply(200, &sdp("9", "sendrecv"));
    assert_eq!(a.sent(), vec!["ACK", "BYE"]);
    assert_eq!(a.events(), vec![Event::Failed { code: 488 }]);
}

#[test]
fn ending_a_ringing_leg_cancels_and_a_crossing_200_is_acked_and_ended() {
    let mut a = Agent::call();
    a.leg.end();
    a.collect();
    assert_eq!(a.sent(), vec!["CANCEL"]);
    a.out.clear();
    a.reply(200, &sdp("0", "sendrecv"));
    assert_eq!(a.sent(), vec!["ACK", "BYE"]);
    assert!(
        a.events().is_empty(),
        "no answer reported after we cancelled"
    );
    a.out.clear();
    a.reply(487, "");
    assert!(a.out.is_empty());
}

#[test]
fn ending_an_answered_leg_sends_one_bye() {
    let mut a = Agent::call();
    a.reply(200, &sdp("0", "sendrecv"));
    a.out.clear();
    a.leg.end();
    a.leg.end();
    a.collect();
    assert_eq!(a.sent(), vec!["BYE"]);
}

#[test]
fn the_phone_hanging_up_is_reported_once() {
    let mut a = Agent::call();
    a.reply(200, &sdp("0", "sendrecv"));
    a.out.clear();
    a.phone_request(Method::Bye, "");
    assert_eq!(a.codes(), vec![200]);
    assert_eq!(a.events(), vec![Event::RemoteBye]);
    a.leg.end();
    a.collect();
    assert!(a.sent().is_empty(), "no BYE after theirs");
    a.out.clear();
    a.phone_request(Method::Invite, &sdp("0", "sendonly"));
    assert_eq!(a.codes(), vec![481], "a request after the end");
}

#[test]
fn hold_from_the_phone_is_answered_and_moves_the_media() {
    let mut a = Agent::call();
    a.reply(200, &sdp("0", "sendrecv"));
    a.out.clear();
    a.phone_request(Method::Invite, &sdp("0", "sendonly"));
    assert_eq!(a.codes(), vec![200]);
    let ok = match &a.out[1] {
        Output::Respond { msg, .. } => msg.clone(),
        o => panic!("{o:?}"),
    };
    assert!(String::from_utf8_lossy(&ok.body).contains("a=recvonly"));
    assert!(matches!(a.out[0], Output::Media { .. }));
}

#[test]
fn refer_goes_to_the_call_and_a_stranger_gets_481() {
    let mut a = Agent::call();
    a.reply(200, &sdp("0", "sendrecv"));
    a.out.clear();
    a.phone_request(Method::Refer, "");
    assert!(matches!(a.events()[..], [Event::Refer { .. }]));
    assert!(a.codes().is_empty(), "the call answers the REFER");
    a.out.clear();
    a.phone.as_mut().unwrap().remote_tag = "other".into();
    a.phone_request(Method::Refer, "");
    assert_eq!(a.codes(), vec![481]);
}

#[test]
fn the_transfer_notify_is_in_the_dialog() {
    let mut a = Agent::call();
    a.reply(200, &sdp("0", "sendrecv"));
    a.out.clear();
    a.leg.notify_transfer_done();
    a.collect();
    let Output::Send(n) = &a.out[0] else { panic!() };
    assert_eq!(n.header("Event"), Some("refer"));
    assert_eq!(n.to_addr().unwrap().tag(), Some("ph1"));
    assert_eq!(&n.body[..], b"SIP/2.0 200 OK\r\n");
}

#[derive(Debug, Clone)]
enum Step {
    Reply(u16),
    End,
    Bye,
    Hold,
    Timeout,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        prop_oneof![Just(180u16), Just(200), Just(486), Just(487), Just(503)].prop_map(Step::Reply),
        Just(Step::End),
        Just(Step::Bye),
        Just(Step::Hold),
        Just(Step::Timeout),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_order_ends_cleanly(steps in proptest::collection::vec(step(), 1..16)) {
        let mut a = Agent::call();
        for s in &steps {
            match s {
                Step::Reply(c) => a.reply(*c, &sdp("0", "sendrecv")),
                Step::End => { a.leg.end(); a.collect(); }
                Step::Bye if a.phone.is_some() => a.phone_request(Method::Bye, ""),
                Step::Hold if a.phone.is_some() => a.phone_request(Method::Invite, &sdp("0", "sendonly")),
                Step::Timeout => {
                    let key = a.leg.key().clone();
                    a.leg.handle(Input::Timeout { key });
                    a.collect();
                }
                _ => {}
            }
        }
        a.leg.end();
        a.collect();
        let ev = a.events();
        let answered = ev.iter().filter(|e| matches!(e, Event::Answered { .. })).count();
        let ends = ev.iter().filter(|e| matches!(e, Event::Failed { .. } | Event::RemoteBye)).count();
        prop_assert!(answered <= 1, "{:?}", ev);
        prop_assert!(ends <= 1, "{:?}", ev);
        prop_assert!(a.leg.is_over());
        // A dialog that came up is ended by exactly one BYE, ours or theirs.
        if a.leg.answered() {
            let byes = a.sent().iter().filter(|m| *m == "BYE").count();
            let theirs = ev.contains(&Event::RemoteBye);
            prop_assert_eq!(byes + usize::from(theirs), 1, "{:?} {:?}", a.sent(), ev);
        }
        // An end from us while it rang is one CANCEL at most.
        prop_assert!(a.sent().iter().filter(|m| *m == "CANCEL").count() <= 1);
    }
}
