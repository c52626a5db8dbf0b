//! SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" states), sans-IO.
//!
//! The layer is driven by three inputs (a received message, a request or response from the
//! transaction user, the current time) and returns [`Output`]s: messages to send and events
//! for the transaction user. Time is a `Duration` on any monotonic clock the driver chooses,
//! so tests run whole call flows on a virtual clock.

use crate::msg::{Message, Method};

mod keys;
pub use keys::{ack_for_non_2xx, client_key, client_key_for_request, is_method, server_key};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// RFC 3261 timer values.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Identifies a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxKey {
    pub server: bool,
    pub branch: String,
    /// Via sent-by (server transactions only).
    pub sent_by: String,
    /// The method, with ACK folded into INVITE.
    pub method: String,
}

impl TxKey {
    /// The key of the INVITE server transaction a CANCEL with this key refers to.
    pub fn invite_for_cancel(&self) -> TxKey {
        TxKey {
            method: "INVITE".into(),
            ..self.clone()
        }
    }
}

/// What the layer asks the driver or the transaction user to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<A> {
    /// Send this message to that address.
    Send { to: A, msg: Message },
    /// A new request for the TU (answer it with [`TransactionLayer::respond`]).
    Request { key: TxKey, msg: Message, from: A },
    /// A response to a request the TU sent.
    Response { key: TxKey, msg: Message },
    /// An ACK that matched no transaction: the ACK for a 2xx, which belongs to the dialog.
    Ack { msg: Message, from: A },
    /// A response that matched no transaction (a retransmitted 2xx after the transaction ended).
    StrayResponse { msg: Message, from: A },
    /// Timer B, F or H fired: no (final) response or no ACK in time.
    Timeout { key: TxKey },
    /// The transaction is gone.
    Terminated { key: TxKey },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Calling,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug)]
struct Tx<A> {
    state: State,
    invite: bool,
    reliable: bool,
    peer: A,
    request: Message,
    /// Last response sent (server) or ACK sent for a non-2xx (client).
    last: Option<Message>,
    retransmit_at: Option<Duration>,
    interval: Duration,
    timeout_at: Option<Duration>,
}

/// All transactions of one SIP endpoint.
pub struct TransactionLayer<A> {
    pub timers: Timers,
    txs: HashMap<TxKey, Tx<A>>,
    heap: BinaryHeap<Reverse<(Duration, u64)>>,
    heap_keys: HashMap<u64, TxKey>,
    seq: u64,
}

impl<A: Clone> TransactionLayer<A> {
    pub fn new(timers: Timers) -> Self {
        TransactionLayer {
            timers,
            txs: HashMap::new(),
            heap: BinaryHeap::new(),
            heap_keys: HashMap::new(),
            seq: 0,
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Whether a server transaction for this key exists and has not sent a final response.
    pub fn is_pending(&self, key: &TxKey) -> bool {
        self.txs
            .get(key)
            .map(|t| matches!(t.state, State::Trying | State::Proceeding))
            .unwrap_or(false)
    }

    /// The original request of a transaction.
    pub fn request(&self, key: &TxKey) -> Option<&Message> {
        self.txs.get(key).map(|t| &t.request)
    }

    fn schedule(&mut self, key: &TxKey, at: Duration) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.heap_keys.insert(self.seq, key.clone());
    }

    fn arm(&mut self, key: &TxKey) {
        if let Some(t) = self.txs.get(key) {
            let times: Vec<Duration> = [t.retransmit_at, t.timeout_at]
                .into_iter()
                .flatten()
                .collect();
            for at in times {
                self.schedule(key, at);
            }
        }
    }

    /// The earliest time [`on_timer`](Self::on_timer) has work to do.
    pub fn next_deadline(&mut self) -> Option<Duration> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            let live = self
                .heap_keys
                .get(&id)
                .and_then(|k| self.txs.get(k))
                .map(|t| t.retransmit_at == Some(at) || t.timeout_at == Some(at))
                .unwrap_or(false);
            if live {
                return Some(at);
            }
            self.heap.pop();
            self.heap_keys.remove(&id);
        }
        None
    }

    /// Handles a message received from `from`. `reliable` is true for TCP/TLS/WS.
    pub fn on_message(
        &mut self,
        msg: Message,
        from: A,
        reliable: bool,
        now: Duration,
    ) -> Vec<Output<A>> {
        if msg.is_request() {
            self.on_request(msg, from, reliable, now)
        } else {
            self.on_response(msg, from, now)
        }
    }

    fn on_request(
        &mut self,
        msg: Message,
        from: A,
        reliable: bool,
        now: Duration,
    ) -> Vec<Output<A>> {
        let Some(key) = server_key(&msg) else {
            return Vec::new();
        };
        let is_ack = msg.method() == Some(&Method::Ack);
        let mut out = Vec::new();
        if let Some(t) = self.txs.get_mut(&key) {
            if is_ack {
                match t.state {
                    State::Completed => {
                        t.state = State::Confirmed;
                        t.retransmit_at = None;
                        t.timeout_at = Some(
                            now + if t.reliable {
                                Duration::ZERO
                            } else {
                                self.timers.t4
                            },
                        );
                        self.arm(&key);
                    }
                    // ACK for a 2xx sent by an RFC 2543 peer with the INVITE's branch.
                    State::Accepted => out.push(Output::Ack { msg, from }),
                    _ => {}
                }
                return out;
            }
            // A retransmission: resend the last response, if any.
            if matches!(t.state, State::Proceeding | State::Completed) {
                if let Some(last) = &t.last {
                    out.push(Output::Send {
                        to: t.peer.clone(),
                        msg: last.clone(),
                    });
                }
            }
            return out;
        }
        if is_ack {
            out.push(Output::Ack { msg, from });
            return out;
        }
        let invite = msg.method() == Some(&Method::Invite);
        let mut tx = Tx {
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            invite,
            reliable,
            peer: from.clone(),
            request: msg.clone(),
            last: None,
            retransmit_at: None,
            interval: self.timers.t1,
            timeout_at: None,
        };
        if invite {
            // Answer 100 at once so the caller stops retransmitting (RFC 3261 §17.2.1).
            let trying = msg.response(100, "Trying", None);
            out.push(Output::Send {
                to: from.clone(),
                msg: trying.clone(),
            });
            tx.last = Some(trying);
        }
        self.txs.insert(key.clone(), tx);
        out.push(Output::Request { key, msg, from });
        out
    }

    fn on_response(&mut self, msg: Message, from: A, now: Duration) -> Vec<Output<A>> {
        let Some(key) = client_key(&msg) else {
            return Vec::new();
        };
        let code = msg.status().unwrap_or(0);
        let timers = self.timers;
        let Some(t) = self.txs.get_mut(&key) else {
            return vec![Output::StrayResponse { msg, from }];
        };
        let mut out = Vec::new();
        match (t.state, code) {
            (State::Calling | State::Trying | State::Proceeding, 100..=199) => {
                t.state = State::Proceeding;
                if t.invite {
                    // Timer B only guards the Calling state; ringing may last (the TU cancels).
                    t.retransmit_at = None;
                    t.timeout_at = None;
                } else if t.retransmit_at.is_some() {
                    t.interval = timers.t2;
                }
                out.push(Output::Response {
                    key: key.clone(),
                    msg,
                });
            }
            (State::Calling | State::Proceeding, 200..=299) if t.invite => {
                t.state = State::Accepted;
                t.retransmit_at = None;
                t.timeout_at = Some(now + 64 * timers.t1);
                out.push(Output::Response {
                    key: key.clone(),
                    msg,
                });
                self.arm(&key);
            }
            (State::Accepted, 200..=299) => out.push(Output::Response {
                key: key.clone(),
                msg,
            }),
            (State::Calling | State::Proceeding, 300..=699) if t.invite => {
                let ack = ack_for_non_2xx(&t.request, &msg);
                out.push(Output::Send {
                    to: t.peer.clone(),
                    msg: ack.clone(),
                });
                t.last = Some(ack);
                t.state = State::Completed;
                t.retransmit_at = None;
                t.timeout_at = Some(
                    now + if t.reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    },
                );
                out.push(Output::Response {
                    key: key.clone(),
                    msg,
                });
                self.arm(&key);
            }
            (State::Completed, 300..=699) if t.invite => {
                if let Some(ack) = &t.last {
                    out.push(Output::Send {
                        to: t.peer.clone(),
                        msg: ack.clone(),
                    });
                }
            }
            (State::Trying | State::Proceeding, 200..=699) if !t.invite => {
                t.state = State::Completed;
                t.retransmit_at = None;
                t.timeout_at = Some(
                    now + if t.reliable {
                        Duration::ZERO
                    } else {
                        timers.t4
                    },
                );
                out.push(Output::Response {
                    key: key.clone(),
                    msg,
                });
                self.arm(&key);
            }
            _ => {}
        }
        out
    }

    /// Sends a response through the server transaction `key`.
    pub fn respond(&mut self, key: &TxKey, resp: Message, now: Duration) -> Vec<Output<A>> {
        let timers = self.timers;
        let Some(t) = self.txs.get_mut(key) else {
            return Vec::new();
        };
        let code = resp.status().unwrap_or(0);
        let mut out = vec![];
        match (t.state, t.invite, code) {
            (State::Proceeding | State::Trying, _, 100..=199) => {
                t.state = State::Proceeding;
                t.last = Some(resp.clone());
                out.push(Output::Send {
                    to: t.peer.clone(),
                    msg: resp,
                });
            }
            (State::Proceeding, true, 200..=299) => {
                t.state = State::Accepted;
                t.last = None;
                t.timeout_at = Some(now + 64 * timers.t1);
                out.push(Output::Send {
                    to: t.peer.clone(),
                    msg: resp,
                });
                self.arm(key);
            }
            // 2xx retransmissions by the TU go out unchanged (RFC 6026 §7.1).
            (State::Accepted, true, 200..=299) => out.push(Output::Send {
                to: t.peer.clone(),
                msg: resp,
            }),
            (State::Proceeding, true, 300..=699) => {
                t.state = State::Completed;
                t.last = Some(resp.clone());
                if !t.reliable {
                    t.interval = timers.t1;
                    t.retransmit_at = Some(now + timers.t1);
                }
                t.timeout_at = Some(now + 64 * timers.t1);
                out.push(Output::Send {
                    to: t.peer.clone(),
                    msg: resp,
                });
                self.arm(key);
            }
            (State::Trying | State::Proceeding, false, 200..=699) => {
                t.state = State::Completed;
                t.last = Some(resp.clone());
                t.timeout_at = Some(
                    now + if t.reliable {
                        Duration::ZERO
                    } else {
                        64 * timers.t1
                    },
                );
                out.push(Output::Send {
                    to: t.peer.clone(),
                    msg: resp,
                });
                self.arm(key);
            }
            _ => {}
        }
        out
    }

    /// Starts a client transaction for `req` (whose top Via carries a fresh branch).
    pub fn send_request(
        &mut self,
        req: Message,
        to: A,
        reliable: bool,
        now: Duration,
    ) -> (TxKey, Vec<Output<A>>) {
        let method = req
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let branch = req
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let key = TxKey {
            server: false,
            branch,
            sent_by: String::new(),
            method: method.clone(),
        };
        let out = vec![Output::Send {
            to: to.clone(),
            msg: req.clone(),
        }];
        if method == "ACK" {
            return (key, out);
        }
        let invite = method == "INVITE";
        let t1 = self.timers.t1;
        self.txs.insert(
            key.clone(),
            Tx {
                state: if invite {
                    State::Calling
                } else {
                    State::Trying
                },
                invite,
                reliable,
                peer: to,
                request: req,
                last: None,
                retransmit_at: if reliable { None } else { Some(now + t1) },
                interval: t1,
                timeout_at: Some(now + 64 * t1),
            },
        );
        self.arm(&key);
        (key, out)
    }

    /// Fires every timer due at `now`.
    pub fn on_timer(&mut self, now: Duration) -> Vec<Output<A>> {
        let mut out = Vec::new();
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(key) = self.heap_keys.remove(&id) else {
                continue;
            };
            self.fire(&key, at, now, &mut out);
        }
        out
    }

    fn fire(&mut self, key: &TxKey, at: Duration, now: Duration, out: &mut Vec<Output<A>>) {
        let timers = self.timers;
        let Some(t) = self.txs.get_mut(key) else {
            return;
        };
        if t.retransmit_at == Some(at) {
            let msg = if key.server {
                t.last.clone()
            } else {
                Some(t.request.clone())
            };
            if let Some(msg) = msg {
                out.push(Output::Send {
                    to: t.peer.clone(),
                    msg,
                });
            }
            // Timer A doubles without bound; E and G are capped at T2.
            t.interval = if t.invite && !key.server {
                t.interval * 2
            } else {
                (t.interval * 2).min(timers.t2)
            };
            if !t.invite && t.state == State::Proceeding {
                t.interval = timers.t2;
            }
            t.retransmit_at = Some(now + t.interval);
            let k = key.clone();
            self.schedule(&k, now + self.txs[&k].interval);
            return;
        }
        if t.timeout_at != Some(at) {
            return;
        }
        // Timer B/F/H are failures; D/I/J/K/L/M end the transaction quietly.
        let failed = match (key.server, t.state) {
            (false, State::Calling | State::Trying | State::Proceeding) => true,
            (true, State::Completed) => t.invite,
            _ => false,
        };
        self.txs.remove(key);
        if failed {
            out.push(Output::Timeout { key: key.clone() });
        }
        out.push(Output::Terminated { key: key.clone() });
    }
}
