//! Requests inside a call's dialogs go to the leg they belong to: the agent's, the
//! supervisor's, a departed leg's late ones (`leg::uac`), else the caller's (`leg::uas`).

use super::Call;
use crate::leg::{uac, uas};
use crate::transport::Flow;
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::{Message, Method};

impl Call {
    pub(super) async fn on_request(&mut self, key: TxKey, msg: Message, _flow: Flow) {
        if self.agent.as_ref().is_some_and(|a| a.sip.owns(&msg)) {
            return self.on_agent_sip(uac::Input::Request { key, msg }).await;
        }
        if self.is_supervisor_leg(&msg) {
            return self
                .on_supervisor_sip(uac::Input::Request { key, msg })
                .await;
        }
        if self.is_departed(&msg) {
            return self.on_departed_sip(uac::Input::Request { key, msg }).await;
        }
        if msg.method() == Some(&Method::Bye) {
            tracing::info!("caller hung up");
        }
        let now = self.now();
        self.caller.handle(now, uas::Input::Request { key, msg });
        self.flush().await;
    }
}
