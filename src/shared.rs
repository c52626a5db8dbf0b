//! What the SIP endpoint and every call share, below both of them: the read-only
//! deployment (`Shared`), the messages a call sends to the endpoint (`CoreMsg`), and the SIP
//! identifiers both mint (tags, branches, the Allow and Supported lists). Neither the
//! endpoint nor a call is imported here, so the two no longer import each other.

use crate::config::{Config, Trunks};
use crate::media::ports::PortPool;
use crate::media::session::Pcm;
use crate::store::Store;
use crate::transport::Flow;
use std::net::IpAddr;
use std::sync::Arc;
use voxdesk_sip::txn::TxKey;
use voxdesk_sip::Message;

pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, REFER";
pub const SUPPORTED: &str = "timer";

/// What every call needs, shared read-only.
pub struct Shared {
    pub cfg: Config,
    pub store: Store,
    pub ports: PortPool,
    pub greeting: Arc<Pcm>,
    /// Speech engines; `None` when `speech.enabled` is off.
    pub speech: Option<Arc<crate::speech::Speech>>,
    /// Understanding and the dialog (NLU models, knowledge base); with `speech`.
    pub brain: Option<Arc<crate::brain::Brain>>,
    /// Queues and agents for escalated calls (`routing.enabled`).
    pub router: Option<crate::routing::Router>,
    /// Base URL of a call's page for `Call-Info` (the call id is appended).
    pub call_info_url: String,
    pub bind_ip: IpAddr,
    pub advertised: String,
    pub sip_port: u16,
    /// The SIP-over-TLS port (0 without TLS).
    pub tls_port: u16,
    pub server_header: String,
    /// Carriers allowed to send calls (`[[trunks]]`, parsed).
    pub trunks: Trunks,
}

impl Shared {
    /// The voice activity detector calls use (the energy one when speech is off).
    pub fn vad(&self) -> crate::speech::VadChoice {
        self.speech
            .as_ref()
            .map(|s| s.vad.clone())
            .unwrap_or_default()
    }

    /// The media encryption policy for a caller's leg that came in on `flow`.
    pub fn caller_srtp(&self, flow: &Flow) -> voxdesk_sip::sdes::SrtpPolicy {
        let v = self
            .trunks
            .find(flow.addr().ip())
            .and_then(|t| t.srtp.as_deref())
            .unwrap_or(&self.cfg.media.srtp);
        voxdesk_sip::sdes::SrtpPolicy::parse(v).unwrap_or_default()
    }

    pub fn contact(&self, flow: &Flow) -> String {
        match flow {
            Flow::Udp(_) => format!("<sip:voxdesk@{}:{}>", self.advertised_host(), self.sip_port),
            Flow::Tcp { tls: false, .. } => format!(
                "<sip:voxdesk@{}:{};transport=tcp>",
                self.advertised_host(),
                self.sip_port
            ),
            Flow::Tcp { tls: true, .. } => format!(
                "<sip:voxdesk@{}:{};transport=tls>",
                self.advertised_host(),
                self.tls_port
            ),
        }
    }

    /// Our port for a flow's transport (the TLS listener has its own).
    pub(crate) fn port_for(&self, flow: &Flow) -> u16 {
        match flow {
            Flow::Tcp { tls: true, .. } => self.tls_port,
            _ => self.sip_port,
        }
    }

    pub fn advertised_host(&self) -> String {
        if self.advertised.contains(':') {
            format!("[{}]", self.advertised)
        } else {
            self.advertised.clone()
        }
    }

    /// Our `Via` sent-by for a flow, without branch (`SIP/2.0/UDP host:port`).
    pub fn via_base(&self, flow: &Flow) -> String {
        format!(
            "SIP/2.0/{} {}:{}",
            flow.transport(),
            self.advertised_host(),
            self.port_for(flow)
        )
    }

    pub fn via(&self, flow: &Flow) -> String {
        format!("{};branch={};rport", self.via_base(flow), new_branch())
    }
}

pub fn new_branch() -> String {
    format!(
        "{}{:016x}",
        voxdesk_sip::txn::MAGIC_COOKIE,
        rand::random::<u64>()
    )
}

pub fn new_tag() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Messages from call actors to the endpoint.
#[derive(Debug)]
pub enum CoreMsg {
    Respond {
        key: TxKey,
        msg: Message,
    },
    /// Start a client transaction (or just send, for ACK).
    Request {
        call: String,
        msg: Message,
        flow: Flow,
    },
    /// Requests on the SIP Call-ID `leg` go to the call whose inbound Call-ID is `call`
    /// from now on (a leg moved between calls by an attended transfer).
    Adopt {
        call: String,
        leg: String,
    },
    /// The call actor is done; forget these SIP Call-IDs.
    Ended {
        call_ids: Vec<String>,
    },
}
