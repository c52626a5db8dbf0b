//! `[[trunks]]`: carriers and PBXs allowed to send calls, by source address.

use super::{invalid, ConfigError};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// Source addresses of its SIP signalling: IPs or CIDR blocks ("203.0.113.0/24").
    pub sources: Vec<String>,
    /// May its callers dial agents' and supervisors' extensions directly (not only the bot)?
    #[serde(default)]
    pub reach_agents: bool,
    /// Exempt from the per-source INVITE rate (`limits.invites_per_sec`): a carrier's one
    /// address carries many callers. `limits.max_calls` still applies.
    #[serde(default = "yes")]
    pub unlimited_rate: bool,
    /// Media encryption for its calls: "off", "optional", "required". Unset: `media.srtp`.
    #[serde(default)]
    pub srtp: Option<String>,
}

fn yes() -> bool {
    true
}

/// The trunks with their parsed source blocks.
#[derive(Debug, Clone, Default)]
pub struct Trunks {
    list: Vec<(TrunkConfig, Vec<IpNet>)>,
}

impl Trunks {
    pub fn parse(cfg: &[TrunkConfig]) -> Result<Trunks, ConfigError> {
        let mut list = Vec::with_capacity(cfg.len());
        for (i, t) in cfg.iter().enumerate() {
            let key = format!("trunks[{i}].sources");
            if t.name.trim().is_empty() {
                return Err(invalid(&format!("trunks[{i}].name"), "must not be empty"));
            }
            if t.sources.is_empty() {
                return Err(invalid(&key, "list at least one IP or CIDR block"));
            }
            let nets = t
                .sources
                .iter()
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            invalid(&key, format!("{s:?} is not an IP address or CIDR block"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            list.push((t.clone(), nets));
        }
        Ok(Trunks { list })
    }

    /// The trunk a source address belongs to.
    pub fn find(&self, ip: IpAddr) -> Option<&TrunkConfig> {
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.list
            .iter()
            .find(|(_, nets)| nets.iter().any(|n| n.contains(&ip)))
            .map(|(t, _)| t)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_by_block_or_address() {
        let t = Trunks::parse(&[TrunkConfig {
            name: "carrier".into(),
            sources: vec![
                "203.0.113.0/24".into(),
                "198.51.100.7".into(),
                "2001:db8::/32".into(),
            ],
            reach_agents: false,
            unlimited_rate: true,
            srtp: None,
        }])
        .unwrap();
        for ip in [
            "203.0.113.200",
            "198.51.100.7",
            "2001:db8::1",
            "::ffff:203.0.113.9",
        ] {
            assert!(t.find(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["203.0.114.1", "198.51.100.8", "127.0.0.1"] {
            assert!(t.find(ip.parse().unwrap()).is_none(), "{ip}");
        }
        let bad = Trunks::parse(&[TrunkConfig {
            name: "x".into(),
            sources: vec!["203.0.113.0/33".into()],
            reach_agents: false,
            unlimited_rate: true,
            srtp: None,
        }]);
        assert!(bad.unwrap_err().to_string().contains("trunks[0].sources"));
    }
}
