//! A leg we place (we are the UAC of its INVITE), sans-IO: an agent's, a supervisor's or a
//! consulted colleague's phone. The INVITE with our offer, its answer (ACK, the agreed
//! media, re-ACK of a retransmitted 2xx), failure, CANCEL or BYE from our side (with the
//! 2xx that crosses our CANCEL ACKed and ended, RFC 3261 §9.1), and the phone's own
//! requests: BYE, re-INVITE/UPDATE (hold, resume, refresh), REFER (handed to the call).
//!
//! The leg is a value: an attended transfer moves it from the consultation's call to the
//! caller's, its dialog and transactions with it.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use voxdesk_sip::dialog::Dialog;
use voxdesk_sip::sdp::{self, LocalMedia, SessionDescription};
use voxdesk_sip::txn::{client_key_for_request, TxKey};
use voxdesk_sip::uri::Uri;
use voxdesk_sip::{Message, Method};

/// The RFC 4733 payload type we offer for telephone-event.
const DTMF_PT: u8 = 101;

/// Who we call and how we present ourselves.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The phone's registered contact.
    pub target: Uri,
    /// This leg's own Call-ID and our From tag (random, from the driver).
    pub call_id: String,
    pub local_tag: String,
    /// The caller as the phone should show them: display name and user part.
    pub from_display: String,
    pub from_user: String,
    /// Our host (for the From URI), `Contact`, `Via` sent-by (`SIP/2.0/UDP host:port`),
    /// `Allow` and `User-Agent`.
    pub host: String,
    pub contact: String,
    pub via: String,
    pub allow: String,
    pub user_agent: String,
    /// Extra headers (Subject, Call-Info, the handoff summary).
    pub headers: Vec<(&'static str, String)>,
    /// Our side of the media (its RTP port reserved by the driver).
    pub local: LocalMedia,
}

#[derive(Debug)]
pub enum Input {
    /// A response to one of our requests on this leg (the INVITE, BYE, NOTIFY...).
    Response(Message),
    /// A 2xx that matched no transaction (a retransmission after the INVITE's ended).
    Stray2xx(Message),
    /// A request from the phone on this leg's Call-ID.
    Request { key: TxKey, msg: Message },
    /// One of our transactions timed out.
    Timeout { key: TxKey },
}

/// What the driver must do.
pub type Output = super::Output<Event>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The phone answered; the media is agreed.
    Answered { codec: &'static str },
    /// The phone did not take the call (its final code; 408 for no answer at all, 488 for
    /// an answer we could not use). The leg is over.
    Failed { code: u16 },
    /// The phone hung up. The leg is over.
    RemoteBye,
    /// The phone asks to transfer (REFER in the dialog): the call decides and answers.
    Refer { key: TxKey, msg: Box<Message> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The INVITE is out.
    Calling,
    Confirmed,
    /// We sent CANCEL (ringing) or BYE (answered), or the phone hung up or refused.
    Over,
}

pub struct UacLeg {
    invite: Message,
    key: TxKey,
    call_id: String,
    local_tag: String,
    via: String,
    contact: String,
    /// Our `Server` header on responses.
    server: String,
    local: LocalMedia,
    dialog: Option<Dialog>,
    state: State,
    /// We cancelled while it rang: a 2xx that crosses the CANCEL is ACKed and ended.
    cancelled: bool,
    branches: u32,
    out: VecDeque<Output>,
}

impl UacLeg {
    /// Places the call: the INVITE with our offer is the first output.
    pub fn place(p: Placement) -> UacLeg {
        let mut inv = Message::request(Method::Invite, p.target.clone());
        inv.push_header("Via", super::via(&p.via, &p.local_tag, 1));
        inv.push_header("Max-Forwards", "70");
        inv.push_header(
            "From",
            format!(
                "{} <sip:{}@{}>;tag={}",
                voxdesk_sip::header::quoted(&p.from_display),
                p.from_user,
                p.host,
                p.local_tag
            ),
        );
        inv.push_header("To", format!("<{}>", p.target));
        inv.push_header("Call-ID", p.call_id.clone());
        inv.push_header("CSeq", "1 INVITE");
        inv.push_header("Contact", p.contact.clone());
        inv.push_header("Allow", p.allow);
        for (name, value) in p.headers {
            inv.push_header(name, value);
        }
        inv.push_header("User-Agent", p.user_agent.clone());
        inv.push_header("Content-Type", "application/sdp");
        inv.body = sdp::offer(&p.local, DTMF_PT).to_bytes();
        // The Via above is ours, with a branch: the key always exists.
        let key = client_key_for_request(&inv).unwrap_or_else(|| TxKey {
            server: false,
            branch: String::new(),
            sent_by: String::new(),
            method: "INVITE".into(),
        });
        UacLeg {
            out: VecDeque::from([Output::Send(inv.clone())]),
            invite: inv,
            key,
            call_id: p.call_id,
            local_tag: p.local_tag,
            via: p.via,
            contact: p.contact,
            server: p.user_agent,
            local: p.local,
            dialog: None,
            state: State::Calling,
            cancelled: false,
            branches: 1,
        }
    }

    /// The INVITE's client transaction.
    pub fn key(&self) -> &TxKey {
        &self.key
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn answered(&self) -> bool {
        self.dialog.is_some()
    }

    pub fn is_over(&self) -> bool {
        self.state == State::Over
    }

    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// Whether `msg` belongs to this leg.
    pub fn owns(&self, msg: &Message) -> bool {
        msg.call_id() == Some(self.call_id.as_str())
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// We end the leg: CANCEL while it rings, BYE once answered; nothing if it is over.
    pub fn end(&mut self) {
        match self.state {
            State::Calling => {
                self.cancelled = true;
                if let Some(c) = self.invite.cancel_for() {
                    self.out.push_back(Output::Send(c));
                }
            }
            State::Confirmed => self.bye(),
            State::Over => {}
        }
        self.state = State::Over;
    }

    /// Tells the phone its transfer is done (REFER's NOTIFY, subscription terminated).
    pub fn notify_transfer_done(&mut self) {
        let via = self.next_via();
        let contact = self.contact.clone();
        let Some(d) = self.dialog.as_mut() else {
            return;
        };
        let mut n = d.request(Method::Notify, &via);
        n.push_header("Event", "refer");
        n.push_header("Subscription-State", "terminated;reason=noresource");
        n.push_header("Contact", contact);
        n.push_header("Content-Type", "message/sipfrag;version=2.0");
        n.body = b"SIP/2.0 200 OK\r\n".to_vec();
        self.out.push_back(Output::Send(n));
    }

    /// An input for the leg (it has no timers of its own: the transaction layer times
    /// its requests out and says so with `Timeout`).
    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Response(msg) => {
                let invite = msg.cseq().is_ok_and(|c| c.method == "INVITE" && c.seq == 1);
                if invite && self.owns(&msg) {
                    self.on_invite_response(msg);
                }
            }
            Input::Stray2xx(msg) => {
                if self.owns(&msg) && msg.status().is_some_and(|c| (200..300).contains(&c)) {
                    self.on_invite_response(msg);
                }
            }
            Input::Request { key, msg } => self.on_request(key, msg),
            Input::Timeout { key } => {
                if key == self.key && self.state == State::Calling {
                    self.state = State::Over;
                    self.event(Event::Failed { code: 408 });
                }
            }
        }
    }

    fn on_invite_response(&mut self, msg: Message) {
        let code = msg.status().unwrap_or(0);
        match code {
            100..=199 => {}
            200..=299 => self.on_2xx(msg),
            _ => {
                if self.state == State::Calling {
                    self.state = State::Over;
                    self.event(Event::Failed { code });
                }
            }
        }
    }

    fn on_2xx(&mut self, msg: Message) {
        let via = self.next_via();
        if let Some(d) = &self.dialog {
            // A retransmitted 2xx: ACK again, nothing else.
            let ack = d.ack(1, &via);
            self.out.push_back(Output::Send(ack));
            return;
        }
        let dialog = match Dialog::uac(&self.invite, &msg) {
            Ok(d) => d,
            Err(_) => {
                // No dialog to ACK or end: the phone gives up on its own (64*T1).
                if self.state == State::Calling {
                    self.state = State::Over;
                    self.event(Event::Failed { code: 502 });
                }
                return;
            }
        };
        self.out.push_back(Output::Send(dialog.ack(1, &via)));
        self.dialog = Some(dialog);
        if self.cancelled || self.state == State::Over {
            // Answered as we cancelled (or after we gave up): ACK, then BYE.
            self.bye();
            return;
        }
        let neg = SessionDescription::parse(&msg.body)
            .ok()
            .and_then(|sd| sdp::accept_answer(&sd, &self.local).ok());
        let Some(neg) = neg else {
            self.bye();
            self.state = State::Over;
            self.event(Event::Failed { code: 488 });
            return;
        };
        self.state = State::Confirmed;
        let codec = neg.codec.name();
        self.out.push_back(Output::Media {
            negotiated: neg,
            ptime_ms: 20,
        });
        self.event(Event::Answered { codec });
    }

    fn on_request(&mut self, key: TxKey, msg: Message) {
        let method = msg.method().cloned();
        let in_dialog = self.dialog.as_ref().is_some_and(|d| d.matches(&msg));
        let code = match (&method, self.state) {
            // The leg left the call: its BYE is answered, the rest refused.
            (Some(Method::Bye), State::Over) => 200,
            (_, State::Over) => 481,
            _ if !in_dialog => 481,
            _ => 200,
        };
        let mut ok = msg.response(code, voxdesk_sip::reason_phrase(code), None);
        ok.push_header("Server", self.server.clone());
        if code != 200 || self.state == State::Over {
            self.out.push_back(Output::Respond { key, msg: ok });
            return;
        }
        match method {
            Some(Method::Bye) => {
                self.out.push_back(Output::Respond { key, msg: ok });
                self.state = State::Over;
                self.event(Event::RemoteBye);
            }
            Some(Method::Refer) => self.event(Event::Refer {
                key,
                msg: Box::new(msg),
            }),
            Some(Method::Invite | Method::Update) => {
                // Hold, resume, refresh: answer with our side of the session.
                ok.push_header("Contact", self.contact.clone());
                self.answer_offer(&msg, &mut ok);
                self.out.push_back(Output::Respond { key, msg: ok });
            }
            _ => self.out.push_back(Output::Respond { key, msg: ok }),
        }
    }

    /// Answers an in-dialog offer in `ok` and moves the media to it. No offer or an
    /// unusable one: `ok` stays without a body.
    fn answer_offer(&mut self, msg: &Message, ok: &mut Message) {
        if msg.body.is_empty() {
            return;
        }
        self.local.session_version += 1;
        if let Ok((ans, neg)) = SessionDescription::parse(&msg.body)
            .map_err(|_| ())
            .and_then(|o| sdp::answer(&o, &self.local).map_err(|_| ()))
        {
            let ptime_ms = neg.ptime_ms;
            self.out.push_back(Output::Media {
                negotiated: neg,
                ptime_ms,
            });
            ok.push_header("Content-Type", "application/sdp");
            ok.body = ans.to_bytes();
        }
    }

    fn bye(&mut self) {
        let via = self.next_via();
        if let Some(d) = self.dialog.as_mut() {
            let bye = d.request(Method::Bye, &via);
            self.out.push_back(Output::Send(bye));
        }
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn next_via(&mut self) -> String {
        self.branches += 1;
        super::via(&self.via, &self.local_tag, self.branches)
    }
}
