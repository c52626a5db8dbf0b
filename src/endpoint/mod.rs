//! The SIP endpoint: one task that owns the transaction layer and the registrar, validates
//! requests, answers what needs no call (OPTIONS, REGISTER, errors) and routes the rest to
//! call actors. Sockets stay in `transport`; the SIP logic lives in `voxdesk-sip`.

mod calls;

use crate::call::{self, CallInput, LiveCalls};
use crate::limits::Admission;
use crate::registrar::{Registrar, StoreOp};
use crate::shared::{new_tag, CoreMsg, Shared, ALLOW, SUPPORTED};
use crate::store::{now_ms, RegistrationRow};
use crate::transport::{Flow, Inbound, Transport};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;
use voxdesk_sip::txn::{Output, Timers, TransactionLayer, TxKey};
use voxdesk_sip::validate::{validate_request, Capabilities};
use voxdesk_sip::{Message, Method};

struct CallEntry {
    tx: mpsc::Sender<CallInput>,
}

pub struct Endpoint {
    shared: Arc<Shared>,
    /// Live calls by id (the API reaches them here) and by inbound Call-ID.
    live: LiveCalls,
    transport: Transport,
    txl: TransactionLayer<Flow>,
    clock: Instant,
    calls: HashMap<String, CallEntry>,
    client_owner: HashMap<TxKey, String>,
    registrar: Registrar,
    core_tx: mpsc::Sender<CoreMsg>,
    core_rx: mpsc::Receiver<CoreMsg>,
    inbound: mpsc::Receiver<Inbound>,
    admission: Admission,
    /// Any source may call (`sip.accept_calls_from`; a loopback bind by default).
    /// Otherwise only trunks and authenticated agents.
    open_network: bool,
}

impl Endpoint {
    pub async fn new(
        shared: Arc<Shared>,
        live: LiveCalls,
        transport: Transport,
        inbound: mpsc::Receiver<Inbound>,
    ) -> Endpoint {
        let secret: [u8; 32] = rand::random();
        let mut registrar = Registrar::new(
            &shared.cfg.sip.realm,
            shared.cfg.registrar.clone(),
            &shared.cfg.limits,
            &shared.cfg.agents,
            &secret,
        );
        // Bindings survive a restart (UDP flows only: TCP connections are gone).
        if let Ok(rows) = shared.store.registrations().await {
            let now = now_ms();
            for r in rows
                .into_iter()
                .filter(|r| r.expires_at_ms > now && r.transport == "UDP")
            {
                if let (Ok(uri), Ok(addr)) = (voxdesk_sip::Uri::parse(&r.contact), r.source.parse())
                {
                    registrar.restore(
                        &r.aor,
                        crate::registrar::Binding {
                            contact: r.contact.clone(),
                            uri,
                            expires_at_ms: r.expires_at_ms,
                            flow: Flow::Udp(addr),
                            call_id: String::new(),
                            cseq: 0,
                            user_agent: r.user_agent.clone(),
                        },
                    );
                }
            }
        }
        if let Some(r) = &shared.router {
            for a in &shared.cfg.agents {
                if let Some(b) = registrar.lookup(&a.username, now_ms()).into_iter().next() {
                    r.registration(&a.username, Some(b));
                }
            }
        }
        let (core_tx, core_rx) = mpsc::channel(1024);
        Endpoint {
            admission: Admission::new(&shared.cfg.limits),
            open_network: shared.cfg.calls_from_anyone(),
            shared,
            live,
            transport,
            txl: TransactionLayer::new(Timers::default()),
            clock: Instant::now(),
            calls: HashMap::new(),
            client_owner: HashMap::new(),
            registrar,
            core_tx,
            core_rx,
            inbound,
        }
    }

    fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Runs until `shutdown` flips to true and every call has ended (or the grace period passed).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(10));
        let mut shutting_down: Option<Instant> = None;
        loop {
            let deadline = self.txl.next_deadline().map(|d| self.clock + d);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(inb) = self.inbound.recv() => self.guarded_inbound(inb),
                Some(m) = self.core_rx.recv() => self.guarded("a call's message", |e| e.on_core(m)),
                _ = sleep => self.guarded("a timer", |e| {
                    let outs = e.txl.on_timer(e.now());
                    e.dispatch(outs);
                }),
                _ = housekeeping.tick() => self.guarded("housekeeping", Self::housekeeping),
                r = shutdown.changed(), if shutting_down.is_none() => {
                    if r.is_err() || *shutdown.borrow() {
                        tracing::info!(calls = self.calls.len(), "shutting down: ending active calls");
                        shutting_down = Some(Instant::now());
                        for c in self.calls.values() {
                            let _ = c.tx.try_send(CallInput::Shutdown);
                        }
                    }
                }
            }
            if let Some(since) = shutting_down {
                if self.calls.is_empty() || since.elapsed() > Duration::from_secs(10) {
                    break;
                }
            }
        }
    }

    fn housekeeping(&mut self) {
        let ops = self.registrar.expire(now_ms());
        self.persist(ops);
        let now = self.now();
        self.admission.expire(now);
    }

    /// Runs one step of the endpoint, catching a panic: a bug reached by one message is
    /// logged and that message dropped, and the endpoint goes on serving everyone else.
    fn guarded(&mut self, what: &str, step: impl FnOnce(&mut Self)) {
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self)));
        if let Err(p) = res {
            tracing::error!(panic = %panic_text(&p), "the SIP endpoint panicked handling {what}; it goes on");
        }
    }

    /// [`guarded`](Self::guarded) for a received message: a request whose handling panicked
    /// is answered 500 (statelessly), so the sender is not left waiting.
    fn guarded_inbound(&mut self, inb: Inbound) {
        let answer = (inb.msg.is_request() && inb.msg.method() != Some(&Method::Ack)).then(|| {
            let mut r = inb
                .msg
                .response(500, "Server Internal Error", Some(&new_tag()));
            r.push_header("Server", self.shared.server_header.clone());
            (inb.flow.clone(), r)
        });
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.on_inbound(inb)));
        if let Err(p) = res {
            tracing::error!(panic = %panic_text(&p), "the SIP endpoint panicked handling a message; answered 500, it goes on");
            if let Some((flow, r)) = answer {
                self.transport.send(&flow, &r);
            }
        }
    }

    /// Tells the router where an agent can be reached now (or that it cannot).
    fn notify_router(&self, aor: &str) {
        if let Some(r) = &self.shared.router {
            r.registration(aor, self.registrar.lookup(aor, now_ms()).into_iter().next());
        }
    }

    fn persist(&self, ops: Vec<StoreOp>) {
        let mut touched: Vec<String> = ops
            .iter()
            .map(|op| match op {
                StoreOp::Set { aor, .. } | StoreOp::Remove { aor, .. } => aor.clone(),
            })
            .collect();
        touched.dedup();
        for aor in &touched {
            self.notify_router(aor);
        }
        for op in ops {
            match op {
                StoreOp::Set { aor, binding } => {
                    self.shared.store.registration_set(RegistrationRow {
                        aor,
                        contact: binding.contact,
                        expires_at_ms: binding.expires_at_ms,
                        source: binding.flow.addr().to_string(),
                        transport: binding.flow.transport().into(),
                        user_agent: binding.user_agent,
                        updated_at_ms: now_ms(),
                    })
                }
                StoreOp::Remove { aor, contact } => self
                    .shared
                    .store
                    .registration_remove(&aor, contact.as_deref()),
            }
        }
    }

    fn on_inbound(&mut self, inb: Inbound) {
        tracing::debug!(flow = %inb.flow, method = ?inb.msg.method().map(|m| m.as_str()), status = ?inb.msg.status(), call_id = ?inb.msg.call_id(), "received");
        let reliable = inb.flow.reliable();
        if inb.msg.is_request() && voxdesk_sip::txn::server_key(&inb.msg).is_none() {
            // No transaction can be formed (e.g. an unparseable Via): answer statelessly.
            if inb.msg.method() != Some(&Method::Ack) {
                let rej = validate_request(&inb.msg, &Capabilities::default()).err();
                let mut r = match rej {
                    Some(rej) => rej.response_to(&inb.msg, Some(&new_tag())),
                    None => inb.msg.response(400, "Bad Request (Via)", Some(&new_tag())),
                };
                r.push_header("Server", self.shared.server_header.clone());
                self.transport.send(&inb.flow, &r);
            }
            return;
        }
        if !inb.msg.is_request() {
            if let Err(e) = voxdesk_sip::validate::validate_response(&inb.msg) {
                tracing::debug!(flow = %inb.flow, reason = %e, "dropping invalid response");
                return;
            }
        }
        if inb.msg.is_request()
            && inb.msg.method() != Some(&Method::Ack)
            && self.txl.len() >= self.shared.cfg.limits.max_transactions
        {
            // Full: a retransmission still reaches its transaction; a new request is
            // answered statelessly instead of being given one.
            let known = voxdesk_sip::txn::server_key(&inb.msg)
                .is_some_and(|k| self.txl.request(&k).is_some());
            if !known {
                let n = self.admission.refused();
                if n < 10 || n.is_multiple_of(1000) {
                    tracing::warn!(flow = %inb.flow, total = n + 1, "refused with 503: limits.max_transactions reached");
                }
                let mut r = inb
                    .msg
                    .response(503, "Service Unavailable", Some(&new_tag()));
                r.push_header(
                    "Retry-After",
                    self.shared.cfg.limits.retry_after_secs.to_string(),
                );
                r.push_header("Server", self.shared.server_header.clone());
                self.transport.send(&inb.flow, &r);
                return;
            }
        }
        let outs = self.txl.on_message(inb.msg, inb.flow, reliable, self.now());
        self.dispatch(outs);
    }

    fn dispatch(&mut self, outs: Vec<Output<Flow>>) {
        for o in outs {
            match o {
                Output::Send { to, msg } => self.transport.send(&to, &msg),
                Output::Request { key, msg, from } => self.on_request(key, msg, from),
                Output::Response { key, msg } => {
                    if let Some(call) = self.client_owner.get(&key) {
                        self.route_to_call(&call.clone(), CallInput::Response { key, msg });
                    }
                }
                Output::Ack { msg, .. } => {
                    if let Some(cid) = msg.call_id().map(str::to_string) {
                        self.route_to_call(&cid, CallInput::Ack { msg });
                    }
                }
                Output::StrayResponse { msg, .. } => {
                    // A retransmitted 2xx after our INVITE transaction ended: the call re-ACKs.
                    if let (Some(cid), Some(200..=299)) =
                        (msg.call_id().map(str::to_string), msg.status())
                    {
                        self.route_to_call(&cid, CallInput::Stray2xx { msg });
                    }
                }
                Output::Timeout { key } => {
                    if let Some(call) = self.client_owner.get(&key).cloned() {
                        self.route_to_call(&call, CallInput::Timeout { key });
                    } else if key.server {
                        if let Some(cid) = self
                            .txl
                            .request(&key)
                            .and_then(|r| r.call_id())
                            .map(str::to_string)
                        {
                            self.route_to_call(&cid, CallInput::Timeout { key });
                        }
                    }
                }
                Output::Terminated { key } => {
                    self.client_owner.remove(&key);
                }
            }
        }
    }

    /// Refuses a request with 503 and `Retry-After` (overload or a rate limit), logging the
    /// first few and then one in a thousand.
    fn refuse(&mut self, key: &TxKey, msg: &Message, flow: &Flow, why: &str) {
        let n = self.admission.refused();
        if n < 10 || n.is_multiple_of(1000) {
            tracing::warn!(source = %flow.addr().ip(), method = ?msg.method().map(|m| m.as_str()), total = n + 1, "refused with 503: {why}");
        }
        let retry = self.shared.cfg.limits.retry_after_secs.to_string();
        self.reply(key, msg, 503, &[("Retry-After", retry)]);
    }

    fn respond(&mut self, key: &TxKey, msg: Message) {
        let outs = self.txl.respond(key, msg, self.now());
        self.dispatch(outs);
    }

    fn reply(&mut self, key: &TxKey, req: &Message, code: u16, extra: &[(&str, String)]) {
        let tag = if req
            .to_addr()
            .ok()
            .and_then(|t| t.tag().map(|_| ()))
            .is_some()
        {
            None
        } else {
            Some(new_tag())
        };
        let mut r = req.response(code, voxdesk_sip::reason_phrase(code), tag.as_deref());
        r.push_header("Server", self.shared.server_header.clone());
        for (n, v) in extra {
            r.push_header(n, v.clone());
        }
        self.respond(key, r);
    }

    fn on_request(&mut self, key: TxKey, msg: Message, flow: Flow) {
        let caps = Capabilities::default();
        if let Err(rej) = validate_request(&msg, &caps) {
            tracing::info!(%flow, code = rej.code, reason = %rej.reason, "rejecting request");
            let mut r = rej.response_to(&msg, Some(&new_tag()));
            r.push_header("Server", self.shared.server_header.clone());
            self.respond(&key, r);
            return;
        }
        let method = msg
            .method()
            .cloned()
            .unwrap_or(Method::Other(String::new()));
        let call_id = msg.call_id().unwrap_or_default().to_string();
        let in_dialog = msg
            .to_addr()
            .ok()
            .and_then(|t| t.tag().map(|_| ()))
            .is_some();
        match method {
            Method::Options => {
                let accept = "application/sdp".to_string();
                self.reply(
                    &key,
                    &msg,
                    200,
                    &[
                        ("Allow", ALLOW.into()),
                        ("Accept", accept),
                        ("Supported", SUPPORTED.into()),
                    ],
                );
            }
            Method::Register => {
                if let Err(why) = self.admission.register(flow.addr().ip(), self.now()) {
                    self.refuse(&key, &msg, &flow, why);
                    return;
                }
                let tag = new_tag();
                let (mut resp, ops) = self.registrar.handle(&msg, &flow, now_ms(), &tag);
                resp.push_header("Server", self.shared.server_header.clone());
                if resp.status() == Some(200) {
                    tracing::info!(%flow, to = msg.header("To").unwrap_or(""), "registration updated");
                }
                self.persist(ops);
                self.respond(&key, resp);
            }
            Method::Invite if !in_dialog => {
                if self.calls.contains_key(&call_id) {
                    // Same Call-ID, new branch, no To tag: a merged/looped request.
                    self.reply(&key, &msg, 482, &[]);
                    return;
                }
                let trunk = self.shared.trunks.find(flow.addr().ip()).cloned();
                let exempt = trunk.as_ref().is_some_and(|t| t.unlimited_rate);
                if let Err(why) = self.admission.invite(flow.addr().ip(), self.now(), exempt) {
                    self.refuse(&key, &msg, &flow, why);
                    return;
                }
                let user = msg
                    .request_uri()
                    .and_then(|u| u.as_sip())
                    .and_then(|u| u.user_decoded())
                    .unwrap_or_default();
                // An agent dialling a feature code (*21, *22): only with their credentials.
                if let Some(code) = self.shared.cfg.routing.feature_codes.lookup(&user) {
                    match self.registrar.authorize(&msg, &flow, now_ms(), &new_tag()) {
                        Ok(agent) => {
                            let f = call::Feature { agent, code };
                            self.start_call(key, msg, flow, call_id, Some(f));
                        }
                        Err(resp) => {
                            let mut resp = *resp;
                            if resp.status() != Some(401) {
                                tracing::info!(%flow, code = ?resp.status(), "feature code refused");
                            }
                            resp.push_header("Server", self.shared.server_header.clone());
                            self.respond(&key, resp);
                        }
                    }
                    return;
                }
                let to_agent = self.registrar.account(&user).is_some();
                if let Some(t) = &trunk {
                    if to_agent && !t.reach_agents {
                        tracing::info!(%flow, trunk = %t.name, "call to an agent's extension from a trunk that may not reach agents");
                        self.reply(&key, &msg, 403, &[]);
                        return;
                    }
                } else if !self.open_network {
                    // Not a trunk, and the server is on a real network: only agents, with
                    // their credentials (a challenge first), may call.
                    if let Err(resp) = self.registrar.authorize(&msg, &flow, now_ms(), &new_tag()) {
                        let mut resp = *resp;
                        if resp.status() != Some(401) {
                            tracing::info!(%flow, code = ?resp.status(), "INVITE from outside the trunks refused");
                        }
                        resp.push_header("Server", self.shared.server_header.clone());
                        self.respond(&key, resp);
                        return;
                    }
                }
                // A configured agent who is not registered: say so instead of the bot.
                if to_agent && self.registrar.lookup(&user, now_ms()).is_empty() {
                    tracing::info!(agent = %user, "call to an agent who is not registered");
                    self.reply(&key, &msg, 480, &[]);
                    return;
                }
                if !to_agent {
                    if let Err(why) = self.admission.bot_call() {
                        self.refuse(&key, &msg, &flow, why);
                        return;
                    }
                }
                self.start_call(key, msg, flow, call_id, None);
            }
            Method::Cancel => {
                let ikey = key.invite_for_cancel();
                if self.txl.is_pending(&ikey) {
                    self.reply(&key, &msg, 200, &[]);
                    self.route_to_call(&call_id, CallInput::Cancel { invite_key: ikey });
                } else if self.txl.request(&ikey).is_some() {
                    // Already answered: the CANCEL has no effect (RFC 3261 §9.2).
                    self.reply(&key, &msg, 200, &[]);
                } else {
                    self.reply(&key, &msg, 481, &[]);
                }
            }
            Method::Invite | Method::Bye | Method::Update | Method::Info | Method::Refer => {
                if self.calls.contains_key(&call_id) {
                    self.route_to_call(&call_id, CallInput::Request { key, msg, flow });
                } else {
                    self.reply(&key, &msg, 481, &[]);
                }
            }
            Method::Ack => {}
            Method::Prack | Method::Notify | Method::Subscribe | Method::Message => {
                self.reply(&key, &msg, 405, &[("Allow", ALLOW.into())]);
            }
            Method::Other(_) => self.reply(&key, &msg, 501, &[("Allow", ALLOW.into())]),
        }
    }
}

/// The message of a caught panic.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into())
}
