//! The legs of a call as values (sans-IO): each takes the time and its inputs and queues
//! what must be sent, with [`UasLeg::next_deadline`](uas::UasLeg::next_deadline) for its
//! timers. Nothing here touches a socket, a clock, a port or a model: the call's tokio
//! driver (`call/`) executes the outputs, and `uas/tests.rs` plays whole SIP call scenarios
//! on virtual time in milliseconds.
//!
//! A leg speaks one signalling protocol to one party; what a call does with its legs
//! (bridging, the bot, queues) is the driver's. `uas` is the caller's SIP leg; the agent's
//! (SIP UAC) and a browser's (WebRTC) legs follow the same shape: `handle(now, input)`,
//! `poll_output()`, `next_deadline()`, and a [`Media`](uas::Output::Media) output that says
//! what was agreed for the stream without saying how to carry it.

pub mod uac;
pub mod uas;

/// A `Via` for a leg's own request: our sent-by (`SIP/2.0/UDP host:port`) and a branch
/// unique to the leg's random tag and its count of requests (RFC 3261 §8.1.1.7).
fn via(sent_by: &str, tag: &str, n: u32) -> String {
    format!(
        "{sent_by};branch={}{tag}-{n};rport",
        voxdesk_sip::txn::MAGIC_COOKIE
    )
}

use voxdesk_sip::sdp::Negotiated;
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::Message;

/// What a leg asks its driver to do; `E` is the leg's own events.
#[derive(Debug)]
pub enum Output<E> {
    /// Send this response on that server transaction.
    Respond {
        key: TxKey,
        msg: Message,
    },
    /// Send this request to the leg's party (on the leg's flow).
    Send(Message),
    /// The stream was (re)negotiated: move the media to it (`ptime_ms`: the remote's
    /// packetisation, for the jitter buffer).
    Media {
        negotiated: Negotiated,
        ptime_ms: u32,
    },
    Event(E),
}

/// Reading a leg's outputs in tests.
#[cfg(test)]
pub(crate) mod outputs {
    use super::Output;
    use voxdesk_sip::Message;

    /// Requests the leg sent.
    pub fn sent<E>(out: &[Output<E>]) -> Vec<Message> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Responses the leg gave.
    pub fn responses<E>(out: &[Output<E>]) -> Vec<Message> {
        out.iter()
            .filter_map(|o| match o {
                Output::Respond { msg, .. } => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn events<E: Clone>(out: &[Output<E>]) -> Vec<E> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }
}
