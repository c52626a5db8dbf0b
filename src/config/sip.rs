//! `[sip]`: listeners (UDP, TCP, TLS and its files), addresses, realm, who may call.

use super::{invalid, ConfigError};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address the SIP listeners bind to.
    pub bind: String,
    pub port: u16,
    /// Any of "udp", "tcp", "tls" (TLS needs `tls_cert` and `tls_key`).
    pub transports: Vec<String>,
    /// SIP over TLS (`sips:`, RFC 3261 §26.2): its port and the PEM files of the server's
    /// certificate chain and private key.
    pub tls_port: u16,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Address put in Contact and SDP; defaults to `bind` (required when `bind` is 0.0.0.0).
    pub public_address: Option<String>,
    /// Digest realm.
    pub realm: String,
    pub user_agent: String,
    /// Milliseconds of ringing (180) before the bot answers.
    pub ring_ms: u64,
    /// Who may place calls: "anyone", or "trunks" (sources in `[[trunks]]`, and agents who
    /// authenticate with their credentials; anyone else gets 401/403). Unset: "anyone"
    /// while `bind` is a loopback address, "trunks" otherwise.
    pub accept_calls_from: Option<String>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            bind: "127.0.0.1".into(),
            port: 5060,
            transports: vec!["udp".into(), "tcp".into()],
            tls_port: 5061,
            tls_cert: None,
            tls_key: None,
            public_address: None,
            realm: "voxdesk".into(),
            user_agent: format!("voxdesk/{}", env!("CARGO_PKG_VERSION")),
            ring_ms: 200,
            accept_calls_from: None,
        }
    }
}

impl SipConfig {
    /// Checks `[sip]`; returns the bind address.
    pub fn validate(&self) -> Result<IpAddr, ConfigError> {
        let bind: IpAddr = self
            .bind
            .parse()
            .map_err(|_| invalid("sip.bind", format!("{:?} is not an IP address", self.bind)))?;
        if self.transports.is_empty() {
            return Err(invalid(
                "sip.transports",
                "at least one of \"udp\", \"tcp\"",
            ));
        }
        for t in &self.transports {
            if t != "udp" && t != "tcp" && t != "tls" {
                return Err(invalid(
                    "sip.transports",
                    format!("unsupported transport {t:?} (supported: \"udp\", \"tcp\", \"tls\")"),
                ));
            }
        }
        if self.transports.iter().any(|t| t == "tls") {
            for (key, p) in [
                ("sip.tls_cert", &self.tls_cert),
                ("sip.tls_key", &self.tls_key),
            ] {
                match p {
                    None => return Err(invalid(key, "required when sip.transports has \"tls\"")),
                    Some(p) if !p.is_file() => {
                        return Err(invalid(key, format!("file {} not found", p.display())))
                    }
                    _ => {}
                }
            }
        }
        if bind.is_unspecified() && self.public_address.is_none() {
            return Err(invalid(
                "sip.public_address",
                "required when sip.bind is a wildcard address (it goes into Contact and SDP)",
            ));
        }
        if let Some(p) = &self.public_address {
            p.parse::<IpAddr>().map_err(|_| {
                invalid("sip.public_address", format!("{p:?} is not an IP address"))
            })?;
        }
        if self.realm.is_empty() {
            return Err(invalid("sip.realm", "must not be empty"));
        }
        Ok(bind)
    }
}
