//! The live calls, for the HTTP API (by voxdesk call id: supervision) and for an attended
//! transfer (by inbound Call-ID: the consultation call to take the colleague's leg from).

use super::CallInput;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Default)]
struct Live {
    /// voxdesk call id -> (the call's inbound Call-ID, its input).
    calls: std::collections::HashMap<String, (String, mpsc::Sender<CallInput>)>,
    /// Inbound Call-ID -> voxdesk call id.
    by_sip: std::collections::HashMap<String, String>,
}

/// Live calls by voxdesk call id (for the API) and by inbound Call-ID (for an attended
/// transfer to find the consultation call).
#[derive(Clone, Default)]
pub struct LiveCalls(Arc<std::sync::Mutex<Live>>);

impl LiveCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn insert(&self, id: &str, sip_call_id: &str, tx: mpsc::Sender<CallInput>) {
        let mut l = self.lock();
        l.calls
            .insert(id.to_string(), (sip_call_id.to_string(), tx));
        l.by_sip.insert(sip_call_id.to_string(), id.to_string());
    }
    pub fn remove(&self, id: &str) {
        let mut l = self.lock();
        if let Some((sip, _)) = l.calls.remove(id) {
            l.by_sip.remove(&sip);
        }
    }
    pub fn get(&self, id: &str) -> Option<mpsc::Sender<CallInput>> {
        self.lock().calls.get(id).map(|(_, tx)| tx.clone())
    }
    pub fn get_by_sip_call_id(&self, sip_call_id: &str) -> Option<mpsc::Sender<CallInput>> {
        let l = self.lock();
        let id = l.by_sip.get(sip_call_id)?;
        l.calls.get(id).map(|(_, tx)| tx.clone())
    }
}
