//! The endpoint's side of calls: a new INVITE starts a call actor (in its own task, so
//! that a panic in one call answers that caller 500 and nothing else), inputs reach the
//! actor that owns a Call-ID, and what actors ask for goes out through the transaction
//! layer.

use super::*;

impl Endpoint {
    pub(super) fn route_to_call(&mut self, sip_call_id: &str, input: CallInput) {
        let Some(c) = self.calls.get(sip_call_id) else {
            return;
        };
        match c.tx.try_send(input) {
            Ok(()) => {}
            // A request that cannot be queued is answered, never left hanging.
            Err(mpsc::error::TrySendError::Full(CallInput::Request { key, msg, .. }))
            | Err(mpsc::error::TrySendError::Closed(CallInput::Request { key, msg, .. })) => {
                tracing::warn!(
                    call = sip_call_id,
                    "call actor not keeping up; request answered 503"
                );
                let retry = self.shared.cfg.limits.retry_after_secs.to_string();
                self.reply(&key, &msg, 503, &[("Retry-After", retry)]);
            }
            Err(e) => {
                tracing::warn!(call = sip_call_id, error = %e, "call actor not keeping up; event dropped");
            }
        }
    }

    pub(super) fn start_call(
        &mut self,
        key: TxKey,
        msg: Message,
        flow: Flow,
        call_id: String,
        feature: Option<call::Feature>,
    ) {
        let to_bot = feature.is_none()
            && msg
                .request_uri()
                .and_then(|u| u.as_sip())
                .and_then(|u| u.user_decoded())
                .is_none_or(|u| self.registrar.account(&u).is_none());
        self.admission.started(&call_id, to_bot);
        let (tx, rx) = mpsc::channel(256);
        let id = format!("{:016x}", rand::random::<u64>());
        self.live.insert(&id, &call_id, tx.clone());
        self.calls.insert(call_id.clone(), CallEntry { tx });
        let ctx = call::CallCtx {
            shared: self.shared.clone(),
            live: self.live.clone(),
            core: self.core_tx.clone(),
            id: id.clone(),
        };
        let agents: Vec<(String, crate::registrar::Binding)> = {
            let user = msg
                .request_uri()
                .and_then(|u| u.as_sip())
                .and_then(|u| u.user_decoded())
                .unwrap_or_default();
            self.registrar
                .lookup(&user, now_ms())
                .into_iter()
                .map(|b| (user.clone(), b))
                .collect()
        };
        let span = tracing::info_span!("call", id = %id);
        // Kept to answer the caller if the call actor dies before it has.
        let (invite_key, fallback) = (
            key.clone(),
            msg.response(500, "Server Internal Error", Some(&new_tag())),
        );
        tokio::spawn(
            async move {
                // Its own task: tokio catches a panic there and tells us here.
                let actor = tokio::spawn(
                    call::run_inbound(ctx.clone(), key, msg, flow, rx, agents, feature)
                        .in_current_span(),
                );
                // A panic in one call must never take the server down, nor leave the caller
                // waiting: a still-pending INVITE gets 500 (ignored if already answered).
                if let Err(p) = actor.await {
                    tracing::error!(panic = %p, "call actor failed");
                    ctx.live.remove(&ctx.id);
                    let _ = ctx
                        .core
                        .send(CoreMsg::Respond {
                            key: invite_key,
                            msg: fallback,
                        })
                        .await;
                    let _ = ctx
                        .core
                        .send(CoreMsg::Ended {
                            call_ids: vec![call_id],
                        })
                        .await;
                }
            }
            .instrument(span),
        );
    }

    pub(super) fn on_core(&mut self, m: CoreMsg) {
        match m {
            CoreMsg::Respond { key, msg } => self.respond(&key, msg),
            CoreMsg::Request { call, msg, flow } => {
                let reliable = flow.reliable();
                let is_ack = msg.method() == Some(&Method::Ack);
                if let Some(cid) = msg.call_id() {
                    // An outbound leg of a call (B2BUA) routes to the same actor.
                    if !self.calls.contains_key(cid) {
                        if let Some(tx) = self.calls.get(&call).map(|c| c.tx.clone()) {
                            self.calls.insert(cid.to_string(), CallEntry { tx });
                        }
                    }
                }
                let (key, outs) = self.txl.send_request(msg, flow, reliable, self.now());
                if !is_ack {
                    self.client_owner.insert(key, call);
                }
                self.dispatch(outs);
            }
            CoreMsg::Adopt { call, leg } => {
                if let Some(tx) = self.calls.get(&call).map(|c| c.tx.clone()) {
                    self.calls.insert(leg, CallEntry { tx });
                }
            }
            CoreMsg::Ended { call_ids } => {
                for c in call_ids {
                    self.admission.ended(&c);
                    self.calls.remove(&c);
                }
            }
        }
    }
}
