//! Whole SIP calls on the caller's leg, on virtual time: a scripted phone (a real UAC
//! dialog from `voxdesk_sip`) talks to a [`UasLeg`]; every scenario runs in microseconds.

mod random;
mod scenarios;

use super::*;
use crate::leg::outputs;
use voxdesk_sip::dialog::Dialog;
use voxdesk_sip::parse_datagram;
use voxdesk_sip::sdes::SrtpPolicy;
use voxdesk_sip::sdp::Codec;

pub(super) const S: Duration = Duration::from_secs(1);
pub(super) const MS: Duration = Duration::from_millis(1);

pub(super) fn settings() -> Settings {
    Settings {
        min_se: 90,
        session_secs: 1800,
        auto_answer: Some(S),
        max_call: Some(Duration::from_secs(3600)),
        server: "voxdesk-test".into(),
        contact: "<sip:voxdesk@127.0.0.1:5060>".into(),
        via: "SIP/2.0/UDP 127.0.0.1:5060".into(),
        allow: "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER".into(),
        supported: "timer".into(),
    }
}

pub(crate) fn local_media() -> LocalMedia {
    LocalMedia {
        address: "127.0.0.1".into(),
        port: 30000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        session_id: 42,
        session_version: 1,
        srtp: SrtpPolicy::Off,
        srtp_key: [7; 30],
    }
}

/// An SDP offer from the phone: `pts` on the m-line, `dir` its direction.
pub(crate) fn sdp(pts: &str, dir: &str) -> String {
    let mut s = String::from(
        "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
    );
    s.push_str(&format!("m=audio 40000 RTP/AVP {pts}\r\n"));
    for pt in pts.split(' ') {
        match pt {
            "0" => s.push_str("a=rtpmap:0 PCMU/8000\r\n"),
            "8" => s.push_str("a=rtpmap:8 PCMA/8000\r\n"),
            "9" => s.push_str("a=rtpmap:9 G722/8000\r\n"),
            "101" => s.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"),
            _ => {}
        }
    }
    s.push_str(&format!("a={dir}\r\n"));
    s
}

pub(crate) fn parse(text: &str) -> Message {
    parse_datagram(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?} in\n{text}"))
}

fn key_of(msg: &Message) -> TxKey {
    let via = msg.header("Via").unwrap_or_default();
    let branch = via.split("branch=").nth(1).unwrap_or("").split(';').next();
    TxKey {
        server: true,
        branch: branch.unwrap_or_default().to_string(),
        sent_by: "127.0.0.1:5070".into(),
        method: msg.cseq().map(|c| c.method).unwrap_or_default(),
    }
}

/// The caller's phone: builds its INVITE and, once answered, its in-dialog requests.
pub(super) struct Phone {
    pub invite: Message,
    pub dialog: Option<Dialog>,
    branches: u32,
}

impl Phone {
    /// An INVITE with `body` (empty: a late offer) and `extra` header lines.
    pub fn new(body: &str, extra: &str) -> Phone {
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        let text = format!(
            "INVITE sip:bot@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-inv;rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag=phone1\r\n\
             To: <sip:bot@127.0.0.1>\r\n\
             Call-ID: call-1@127.0.0.1\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:alice@127.0.0.1:5070>\r\n\
             {extra}{ctype}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Phone {
            invite: parse(&text),
            dialog: None,
            branches: 0,
        }
    }

    pub fn key(&self) -> TxKey {
        key_of(&self.invite)
    }

    fn via(&mut self) -> String {
        self.branches += 1;
        format!(
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-p{};rport",
            self.branches
        )
    }

    /// Our 200 arrived: the phone's dialog starts.
    pub fn answered(&mut self, ok: &Message) {
        if self.dialog.is_none() {
            self.dialog = Some(Dialog::uac(&self.invite, ok).expect("usable 200"));
        }
    }

    pub fn ack(&mut self, body: &str) -> Message {
        let via = self.via();
        let d = self.dialog.as_ref().expect("answered");
        let mut a = d.ack(d.local_seq, &via);
        if !body.is_empty() {
            a.push_header("Content-Type", "application/sdp");
            a.body = body.as_bytes().to_vec();
        }
        a
    }

    /// An in-dialog request with `headers` and `body`, and its server key at the leg.
    pub fn request(
        &mut self,
        method: Method,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (TxKey, Message) {
        let via = self.via();
        let d = self.dialog.as_mut().expect("answered");
        let mut m = d.request(method, &via);
        for (n, v) in headers {
            m.push_header(n, *v);
        }
        if !body.is_empty() {
            let ctype = if body.starts_with("v=0") {
                "application/sdp"
            } else {
                "application/dtmf-relay"
            };
            m.push_header("Content-Type", ctype);
            m.body = body.as_bytes().to_vec();
        }
        // Through the parser, as the endpoint would hand it over.
        let m = parse(&String::from_utf8_lossy(&m.to_bytes()));
        (key_of(&m), m)
    }

    pub fn cancel(&self) -> TxKey {
        self.key()
    }
}

/// A leg and its phone on a virtual clock, with everything the leg put out.
pub(super) struct Run {
    pub leg: UasLeg,
    pub phone: Phone,
    pub now: Duration,
    pub out: Vec<Output>,
    pub endings: usize,
}

impl Run {
    /// A call offered with `body` and `extra` headers: the INVITE, the offer, ringing.
    pub fn offer_with(body: &str, extra: &str, settings: Settings) -> Run {
        let phone = Phone::new(body, extra);
        let leg = UasLeg::new(
            Duration::ZERO,
            phone.invite.clone(),
            phone.key(),
            "uas1".into(),
            settings,
        );
        let mut r = Run {
            leg,
            phone,
            now: Duration::ZERO,
            out: Vec::new(),
            endings: 0,
        };
        r.leg.take_offer(local_media());
        if r.leg.state() == State::Ringing {
            r.leg.ring(r.now);
        }
        r.collect();
        r
    }

    pub fn offer() -> Run {
        Run::offer_with(&sdp("0 8 101", "sendrecv"), "", settings())
    }

    /// Offered, answered after the ring, ACKed: the call is up.
    pub fn confirmed_with(body: &str, extra: &str, settings: Settings) -> Run {
        let mut r = Run::offer_with(body, extra, settings);
        r.advance(S);
        let ok = r.last_response(200).expect("answered");
        r.phone.answered(&ok);
        let ack = r.phone.ack("");
        r.input(Input::Ack(ack));
        assert_eq!(r.leg.state(), State::Confirmed);
        r.out.clear();
        r
    }

    pub fn confirmed() -> Run {
        Run::confirmed_with(&sdp("0 8 101", "sendrecv"), "", settings())
    }

    pub fn collect(&mut self) {
        while let Some(o) = self.leg.poll_output() {
            if matches!(o, Output::Event(Event::Ending { .. })) {
                self.endings += 1;
            }
            if self.leg.state() == State::Done {
                // Nothing but answers and the news of the end once it is over.
                assert!(!matches!(o, Output::Media { .. }), "media after the end");
            }
            self.out.push(o);
        }
        assert!(self.endings <= 1, "Ending reported twice");
        if self.leg.state() == State::Done {
            assert_eq!(self.endings, 1, "the leg ended without saying so");
            assert!(self.leg.end_reason().is_some());
            assert_eq!(self.leg.next_deadline(), None, "timers left after the end");
        }
    }

    pub fn input(&mut self, i: Input) {
        self.leg.handle(self.now, i);
        self.collect();
    }

    /// Moves the clock on by `d`, firing every timer that falls due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.leg.next_deadline().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.leg.on_timer(self.now);
            self.collect();
        }
        self.now = end;
    }

    pub fn request(&mut self, method: Method, headers: &[(&str, &str)], body: &str) -> Message {
        let (key, msg) = self.phone.request(method, headers, body);
        self.out.clear();
        self.input(Input::Request { key, msg });
        self.responses()
            .last()
            .cloned()
            .expect("the leg answers every request")
    }

    pub fn responses(&self) -> Vec<Message> {
        outputs::responses(&self.out)
    }

    pub fn last_response(&self, code: u16) -> Option<Message> {
        self.responses()
            .into_iter()
            .rev()
            .find(|m| m.status() == Some(code))
    }

    pub fn codes(&self) -> Vec<u16> {
        self.responses().iter().filter_map(|m| m.status()).collect()
    }

    pub fn sent(&self) -> Vec<Message> {
        outputs::sent(&self.out)
    }

    pub fn sent_methods(&self) -> Vec<String> {
        self.sent()
            .iter()
            .map(|m| m.cseq().map(|c| c.method).unwrap_or_default())
            .collect()
    }

    pub fn events(&self) -> Vec<Event> {
        outputs::events(&self.out)
    }

    pub fn media(&self) -> Vec<Negotiated> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Media { negotiated, .. } => Some(negotiated.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn reason(&self) -> &str {
        self.leg.end_reason().unwrap_or("")
    }

    /// Our request `m` is answered with `code` by the phone.
    pub fn answer_ours(&mut self, m: &Message, code: u16) {
        let resp = m.response(code, voxdesk_sip::reason_phrase(code), None);
        let resp = parse(&String::from_utf8_lossy(&resp.to_bytes()));
        let mut key = key_of(m);
        key.server = false;
        self.input(Input::Response { key, msg: resp });
    }
}
