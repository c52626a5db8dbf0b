//! Transaction state machines driven by a virtual clock.

use std::time::Duration;
use voxdesk_sip::txn::{Output, Timers, TransactionLayer};
use voxdesk_sip::{parse_datagram, Message};

type Addr = &'static str;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn invite(branch: &str) -> Message {
    let s = format!(
        "INVITE sip:bot@voxdesk.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\nMax-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bot@voxdesk.test>\r\nCall-ID: c1@example.com\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.1>\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(s.as_bytes()).unwrap()
}

fn request(method: &str, branch: &str, cseq: u32) -> Message {
    let s = format!(
        "{method} sip:bot@voxdesk.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\nMax-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bot@voxdesk.test>\r\nCall-ID: c1@example.com\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(s.as_bytes()).unwrap()
}

fn sends(out: &[Output<Addr>]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { msg, .. } => Some(match msg.status() {
                Some(c) => c.to_string(),
                None => msg.method().unwrap().to_string(),
            }),
            _ => None,
        })
        .collect()
}

/// The key of the request the layer handed to the transaction user.
fn request_key(out: &[Output<Addr>]) -> voxdesk_sip::txn::TxKey {
    out.iter()
        .find_map(|o| match o {
            Output::Request { key, .. } => Some(key.clone()),
            _ => None,
        })
        .expect("a request for the TU")
}

fn run_timers(l: &mut TransactionLayer<Addr>, until: Duration) -> Vec<(Duration, Output<Addr>)> {
    let mut all = Vec::new();
    while let Some(at) = l.next_deadline() {
        if at > until {
            break;
        }
        for o in l.on_timer(at) {
            all.push((at, o));
        }
    }
    all
}

#[test]
fn client_invite_retransmits_with_doubling_then_times_out() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let (key, out) = l.send_request(invite("z9hG4bKc1"), "peer", false, ms(0));
    assert_eq!(sends(&out), ["INVITE"]);
    let fired = run_timers(&mut l, ms(40_000));
    let resend_times: Vec<u64> = fired
        .iter()
        .filter(|(_, o)| matches!(o, Output::Send { .. }))
        .map(|(t, _)| t.as_millis() as u64)
        .collect();
    assert_eq!(resend_times, [500, 1500, 3500, 7500, 15500, 31500]);
    assert!(fired
        .iter()
        .any(|(t, o)| *t == ms(32_000) && *o == Output::Timeout { key: key.clone() }));
    assert!(l.is_empty());
}

#[test]
fn client_invite_non_2xx_is_acked_and_ack_repeated_on_retransmit() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let req = invite("z9hG4bKc2");
    let (_key, _) = l.send_request(req.clone(), "peer", false, ms(0));
    let mut busy = req.response(486, "Busy Here", Some("b1"));
    busy.set_header("Via", req.header("Via").unwrap());
    let out = l.on_message(busy.clone(), "peer", false, ms(100));
    assert_eq!(sends(&out), ["ACK"]);
    let ack = out
        .iter()
        .find_map(|o| {
            if let Output::Send { msg, .. } = o {
                Some(msg.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert!(ack.header("To").unwrap().contains("tag=b1"));
    assert_eq!(ack.header("CSeq"), Some("1 ACK"));
    assert!(out.iter().any(|o| matches!(o, Output::Response { .. })));
    // A retransmitted 486 gets the same ACK and is not passed up again.
    let out = l.on_message(busy, "peer", false, ms(600));
    assert_eq!(sends(&out), ["ACK"]);
    assert!(!out.iter().any(|o| matches!(o, Output::Response { .. })));
    // Timer D ends it after 32 s.
    let fired = run_timers(&mut l, ms(40_000));
    assert!(fired
        .iter()
        .any(|(t, o)| *t == ms(32_100) && matches!(o, Output::Terminated { .. })));
}

#[test]
fn forked_or_duplicate_2xx_all_reach_the_tu() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let req = invite("z9hG4bKc3");
    l.send_request(req.clone(), "peer", false, ms(0));
    for (i, tag) in ["x1", "x2", "x1"].iter().enumerate() {
        let ok = req.response(200, "OK", Some(tag));
        let out = l.on_message(ok, "peer", false, ms(100 + i as u64));
        assert!(
            out.iter().any(|o| matches!(o, Output::Response { .. })),
            "2xx #{i} must reach the TU"
        );
        assert!(
            sends(&out).is_empty(),
            "the transaction never ACKs a 2xx itself"
        );
    }
    // After timer M the transaction is gone; a late 2xx is a stray for the dialog layer.
    run_timers(&mut l, ms(40_000));
    let out = l.on_message(
        req.response(200, "OK", Some("x1")),
        "peer",
        false,
        ms(41_000),
    );
    assert!(matches!(out[0], Output::StrayResponse { .. }));
}

#[test]
fn server_invite_sends_100_and_absorbs_retransmissions() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let out = l.on_message(invite("z9hG4bKs1"), "peer", false, ms(0));
    assert_eq!(sends(&out), ["100"]);
    let key = request_key(&out);
    let ringing = l
        .request(&key)
        .unwrap()
        .response(180, "Ringing", Some("t1"));
    assert_eq!(sends(&l.respond(&key, ringing, ms(10))), ["180"]);
    // A retransmitted INVITE is answered with the last provisional, not passed up.
    let out = l.on_message(invite("z9hG4bKs1"), "peer", false, ms(500));
    assert_eq!(sends(&out), ["180"]);
    assert!(!out.iter().any(|o| matches!(o, Output::Request { .. })));
}

#[test]
fn server_invite_error_retransmits_until_ack_then_confirmed() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let out = l.on_message(invite("z9hG4bKs2"), "peer", false, ms(0));
    let key = request_key(&out);
    let resp = l
        .request(&key)
        .unwrap()
        .response(486, "Busy Here", Some("t"));
    l.respond(&key, resp, ms(0));
    let fired = run_timers(&mut l, ms(1_600));
    let g: Vec<u64> = fired
        .iter()
        .filter(|(_, o)| matches!(o, Output::Send { .. }))
        .map(|(t, _)| t.as_millis() as u64)
        .collect();
    assert_eq!(g, [500, 1500], "timer G doubles");
    // ACK (same branch) absorbed: no more retransmissions, and not passed to the TU.
    let out = l.on_message(request("ACK", "z9hG4bKs2", 1), "peer", false, ms(1_700));
    assert!(out.is_empty());
    let fired = run_timers(&mut l, ms(60_000));
    assert!(!fired.iter().any(|(_, o)| matches!(o, Output::Send { .. })));
    assert!(
        fired
            .iter()
            .any(|(t, o)| *t == ms(6_700) && matches!(o, Output::Terminated { .. })),
        "timer I = T4"
    );
    assert!(l.is_empty());
}

#[test]
fn server_invite_error_without_ack_times_out_with_timer_h() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let out = l.on_message(invite("z9hG4bKs3"), "peer", false, ms(0));
    let key = request_key(&out);
    let resp = l.request(&key).unwrap().response(603, "Decline", Some("t"));
    l.respond(&key, resp, ms(0));
    let fired = run_timers(&mut l, ms(40_000));
    assert!(fired
        .iter()
        .any(|(t, o)| *t == ms(32_000) && *o == Output::Timeout { key: key.clone() }));
    // G capped at T2 = 4 s: 0.5, 1.5, 3.5, 7.5, 11.5, ...
    let g: Vec<u64> = fired
        .iter()
        .filter(|(_, o)| matches!(o, Output::Send { .. }))
        .map(|(t, _)| t.as_millis() as u64)
        .collect();
    assert_eq!(&g[..5], &[500, 1500, 3500, 7500, 11500]);
}

#[test]
fn ack_for_2xx_goes_to_the_tu_and_2xx_moves_to_accepted() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let out = l.on_message(invite("z9hG4bKs4"), "peer", false, ms(0));
    let key = request_key(&out);
    let ok = l.request(&key).unwrap().response(200, "OK", Some("t"));
    assert_eq!(sends(&l.respond(&key, ok.clone(), ms(5))), ["200"]);
    // The TU retransmits its 2xx through the transaction while in Accepted.
    assert_eq!(sends(&l.respond(&key, ok, ms(505))), ["200"]);
    // A retransmitted INVITE in Accepted is absorbed (the TU's 2xx timer covers it).
    assert!(l
        .on_message(invite("z9hG4bKs4"), "peer", false, ms(600))
        .is_empty());
    // The ACK for a 2xx carries a new branch: no transaction, handed to the TU.
    let out = l.on_message(request("ACK", "z9hG4bKack", 1), "peer", false, ms(700));
    assert!(matches!(out[0], Output::Ack { .. }));
    let fired = run_timers(&mut l, ms(40_000));
    assert!(
        fired
            .iter()
            .any(|(t, o)| *t == ms(32_005) && matches!(o, Output::Terminated { .. })),
        "timer L"
    );
}

#[test]
fn cancel_and_200_race() {
    // The TU has answered 200 when the CANCEL arrives: CANCEL is its own transaction, answered
    // 200, and the INVITE transaction is no longer pending (so no 487 follows).
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let out = l.on_message(invite("z9hG4bKs5"), "peer", false, ms(0));
    let ikey = request_key(&out);
    let ok = l.request(&ikey).unwrap().response(200, "OK", Some("t"));
    l.respond(&ikey, ok, ms(10));
    let out = l.on_message(request("CANCEL", "z9hG4bKs5", 1), "peer", false, ms(11));
    let ckey = request_key(&out);
    assert_eq!(ckey.invite_for_cancel(), ikey);
    assert!(
        !l.is_pending(&ikey),
        "INVITE already answered: CANCEL has no effect"
    );
    // Before the answer, the CANCEL finds a pending INVITE.
    let out = l.on_message(invite("z9hG4bKs6"), "peer", false, ms(20));
    let ikey2 = request_key(&out);
    let out = l.on_message(request("CANCEL", "z9hG4bKs6", 1), "peer", false, ms(21));
    let ckey2 = request_key(&out);
    assert!(l.is_pending(&ckey2.invite_for_cancel()));
    assert_eq!(ckey2.invite_for_cancel(), ikey2);
}

#[test]
fn non_invite_server_resends_final_and_client_retransmits_capped() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let out = l.on_message(request("BYE", "z9hG4bKb1", 2), "peer", false, ms(0));
    let key = request_key(&out);
    assert!(sends(&out).is_empty(), "no 100 for non-INVITE");
    // Retransmission in Trying is absorbed.
    assert!(l
        .on_message(request("BYE", "z9hG4bKb1", 2), "peer", false, ms(400))
        .is_empty());
    let ok = l.request(&key).unwrap().response(200, "OK", None);
    l.respond(&key, ok, ms(450));
    assert_eq!(
        sends(&l.on_message(request("BYE", "z9hG4bKb1", 2), "peer", false, ms(900))),
        ["200"]
    );
    let fired = run_timers(&mut l, ms(40_000));
    assert!(
        fired
            .iter()
            .any(|(t, o)| *t == ms(32_450) && matches!(o, Output::Terminated { .. })),
        "timer J"
    );

    let mut c = TransactionLayer::<Addr>::new(Timers::default());
    let (key, _) = c.send_request(request("OPTIONS", "z9hG4bKo1", 3), "peer", false, ms(0));
    let fired = run_timers(&mut c, ms(40_000));
    let e: Vec<u64> = fired
        .iter()
        .filter(|(_, o)| matches!(o, Output::Send { .. }))
        .map(|(t, _)| t.as_millis() as u64)
        .collect();
    assert_eq!(
        &e[..6],
        &[500, 1500, 3500, 7500, 11500, 15500],
        "timer E capped at T2"
    );
    assert!(
        fired
            .iter()
            .any(|(t, o)| *t == ms(32_000) && *o == Output::Timeout { key: key.clone() }),
        "timer F"
    );
}

#[test]
fn reliable_transports_do_not_retransmit() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    l.send_request(invite("z9hG4bKr1"), "peer", true, ms(0));
    let fired = run_timers(&mut l, ms(40_000));
    assert!(!fired.iter().any(|(_, o)| matches!(o, Output::Send { .. })));
    assert!(fired
        .iter()
        .any(|(_, o)| matches!(o, Output::Timeout { .. })));
}

#[test]
fn rfc2543_requests_without_magic_cookie_match() {
    let mut l = TransactionLayer::<Addr>::new(Timers::default());
    let out = l.on_message(invite("oldbranch"), "peer", false, ms(0));
    assert!(out.iter().any(|o| matches!(o, Output::Request { .. })));
    let out = l.on_message(invite("oldbranch"), "peer", false, ms(500));
    assert_eq!(
        sends(&out),
        ["100"],
        "retransmission recognised without z9hG4bK"
    );
}
