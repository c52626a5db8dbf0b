//! The one TOML configuration file, validated at start with errors that name the key.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

mod dialog;
pub mod flows;
mod limits;
mod media;
mod privacy;
mod routing;
mod sip;
mod speech;
mod trunks;
pub use dialog::{DialogConfig, LlmConfig, NluConfig};
pub use limits::LimitsConfig;
pub use media::MediaConfig;
pub use privacy::{PatternConfig, PrivacyConfig};
pub use routing::{FeatureCode, FeatureCodes, QueueDef, RoutingConfig};
pub use sip::SipConfig;
pub use speech::{ModelsConfig, PromptsConfig, SpeechConfig};
pub use trunks::{TrunkConfig, Trunks};

/// `[api]`: the HTTP API for the console and scripts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub enabled: bool,
    /// Address to listen on (loopback by default: put a TLS proxy in front to expose it).
    pub bind: String,
    /// 0 picks a free port (logged at start-up).
    pub port: u16,
    /// When set, requests need `Authorization: Bearer <token>`.
    pub token: String,
    /// Host names (in the Host header) the API answers to besides localhost, 127.0.0.1,
    /// ::1 and `bind`: the name a proxy in front uses. Others get 421 (DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            bind: "127.0.0.1".into(),
            port: 8080,
            token: String::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub paths: PathsConfig,
    pub registrar: RegistrarConfig,
    pub session_timer: SessionTimerConfig,
    pub models: ModelsConfig,
    pub prompts: PromptsConfig,
    pub speech: SpeechConfig,
    pub nlu: NluConfig,
    pub dialog: DialogConfig,
    pub api: ApiConfig,
    pub llm: LlmConfig,
    pub routing: RoutingConfig,
    pub limits: LimitsConfig,
    pub privacy: PrivacyConfig,
    pub trunks: Vec<TrunkConfig>,
    pub agents: Vec<AgentAccount>,
    /// Set when the agent list is the built-in demo one.
    #[serde(skip)]
    pub demo_agents: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Digest nonce lifetime in seconds (older nonces get `stale=true`).
    pub nonce_lifetime_secs: u64,
    /// Challenges sent, in order of preference (RFC 8760): "MD5", "SHA-256". The default is
    /// MD5 alone: sipp 3.6 answers only the first challenge and fails on SHA-256, and
    /// baresip 1.0 (libre) refuses the whole 401 if any challenge is SHA-256. Use
    /// ["SHA-256", "MD5"] when every phone supports RFC 8760.
    pub digest_algorithms: Vec<String>,
    /// Contacts one agent may have registered at once; a new one beyond it replaces the
    /// one that expires first.
    pub max_contacts: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionTimerConfig {
    pub min_se: u32,
    pub default_secs: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentAccount {
    pub username: String,
    pub password: Option<String>,
    /// MD5 HA1 = md5(username:realm:password), instead of a password.
    pub ha1: Option<String>,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    /// May listen to, whisper to or barge into live bridged calls (started from the API).
    /// A supervisor with no skills is never offered calls.
    #[serde(default)]
    pub supervisor: bool,
    /// Media encryption of calls to this agent's phone: "off", "optional" (offered with
    /// `a=crypto` in RTP/AVP, taken if the phone answers with a key) or "required" (RTP/SAVP).
    /// Unset: `media.srtp`.
    #[serde(default)]
    pub srtp: Option<String>,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            data_dir: PathBuf::from("./data"),
            models_dir: PathBuf::from("./models"),
        }
    }
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 600,
            nonce_lifetime_secs: 300,
            digest_algorithms: vec!["MD5".into()],
            max_contacts: 5,
        }
    }
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        SessionTimerConfig {
            min_se: 90,
            default_secs: 1800,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            paths: PathsConfig::default(),
            registrar: RegistrarConfig::default(),
            session_timer: SessionTimerConfig::default(),
            models: ModelsConfig::default(),
            prompts: PromptsConfig::default(),
            speech: SpeechConfig::default(),
            nlu: NluConfig::default(),
            dialog: DialogConfig::default(),
            api: ApiConfig::default(),
            llm: LlmConfig::default(),
            routing: RoutingConfig::default(),
            limits: LimitsConfig::default(),
            privacy: PrivacyConfig::default(),
            trunks: Vec::new(),
            agents: demo_agents(),
            demo_agents: true,
        }
    }
}

/// The demo accounts a config without `[[agents]]` gets (loopback only): two agents and a
/// supervisor.
pub fn demo_agents() -> Vec<AgentAccount> {
    let skills: Vec<String> = ["general", "billing", "technical", "sales", "retention"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut accounts: Vec<AgentAccount> = (1..=2)
        .map(|i| AgentAccount {
            username: format!("agent{i}"),
            password: Some(format!("agent{i}pass")),
            ha1: None,
            display_name: format!("Demo Agent {i}"),
            skills: skills.clone(),
            languages: vec!["en".into(), "zh".into()],
            supervisor: false,
            srtp: None,
        })
        .collect();
    accounts.push(AgentAccount {
        username: "supervisor".into(),
        password: Some("supervisorpass".into()),
        ha1: None,
        display_name: "Demo Supervisor".into(),
        skills: Vec::new(),
        languages: Vec::new(),
        supervisor: true,
        srtp: None,
    });
    accounts
}

/// Overrides from the command line and environment, applied after the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    pub bind: Option<String>,
    pub port: Option<u16>,
}

impl Config {
    /// Reads and validates a config file; `None` gives the defaults.
    pub fn load(path: Option<&Path>, ov: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Config::parse(&text).map_err(|e| match e {
                    ConfigError::Parse { message, .. } => ConfigError::Parse {
                        path: p.to_path_buf(),
                        message,
                    },
                    other => other,
                })?
            }
        };
        if let Some(d) = &ov.data_dir {
            cfg.paths.data_dir = d.clone();
        }
        if let Some(d) = &ov.models_dir {
            cfg.paths.models_dir = d.clone();
        }
        if let Some(b) = &ov.bind {
            cfg.sip.bind = b.clone();
        }
        if let Some(p) = ov.port {
            cfg.sip.port = p;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text (unknown keys are errors that name the key).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        #[derive(Deserialize)]
        struct Probe {
            agents: Option<toml::Value>,
        }
        let has_agents = toml::from_str::<Probe>(text)
            .map(|p| p.agents.is_some())
            .unwrap_or(false);
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        if !has_agents {
            cfg.agents = demo_agents();
            cfg.demo_agents = true;
        } else {
            cfg.demo_agents = false;
        }
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bind = self.sip.validate()?;
        self.media.validate(&self.agents, &self.trunks)?;
        self.limits.validate()?;
        let r = &self.registrar;
        if r.max_contacts == 0 {
            return Err(invalid("registrar.max_contacts", "must be at least 1"));
        }
        if r.min_expires == 0
            || r.min_expires > r.max_expires
            || !(r.min_expires..=r.max_expires).contains(&r.default_expires)
        {
            return Err(invalid(
                "registrar.default_expires",
                "need 0 < min_expires <= default_expires <= max_expires",
            ));
        }
        if r.digest_algorithms.is_empty()
            || r.digest_algorithms
                .iter()
                .any(|a| voxdesk_sip::auth::Algorithm::parse(a).is_none())
        {
            return Err(invalid(
                "registrar.digest_algorithms",
                "list one or both of \"MD5\", \"SHA-256\"",
            ));
        }
        if self.prompts.greeting.trim().is_empty() {
            return Err(invalid("prompts.greeting", "must not be empty"));
        }
        if self.speech.language != "en" && self.prompts.greeting_zh.trim().is_empty() {
            return Err(invalid(
                "prompts.greeting_zh",
                "must not be empty when speech.language is \"zh\" or \"auto\"",
            ));
        }
        if self.session_timer.min_se < 90 {
            return Err(invalid(
                "session_timer.min_se",
                "RFC 4028 requires at least 90 seconds",
            ));
        }
        if self.session_timer.default_secs < self.session_timer.min_se {
            return Err(invalid(
                "session_timer.default_secs",
                "must be at least session_timer.min_se",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            let key = format!("agents[{i}]");
            if a.username.is_empty()
                || !a
                    .username
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(invalid(
                    &format!("{key}.username"),
                    "letters, digits, '-', '_' or '.' only",
                ));
            }
            if !seen.insert(a.username.clone()) {
                return Err(invalid(
                    &format!("{key}.username"),
                    format!("duplicate agent {:?}", a.username),
                ));
            }
            match (&a.password, &a.ha1) {
                (Some(p), None) if !p.is_empty() => {}
                (None, Some(h)) if h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                (None, Some(_)) => {
                    return Err(invalid(
                        &format!("{key}.ha1"),
                        "must be 32 hex digits (MD5 of username:realm:password)",
                    ))
                }
                _ => {
                    return Err(invalid(
                        &format!("{key}.password"),
                        "set exactly one of password or ha1",
                    ))
                }
            }
        }
        let sp = &self.speech;
        if !matches!(sp.language.as_str(), "en" | "zh" | "auto") {
            return Err(invalid(
                "speech.language",
                format!(
                    "{:?} is not supported (\"en\", \"zh\" or \"auto\")",
                    sp.language
                ),
            ));
        }
        if !matches!(sp.vad.as_str(), "energy" | "silero") {
            return Err(invalid(
                "speech.vad",
                format!("{:?} is not supported (\"energy\" or \"silero\")", sp.vad),
            ));
        }
        if sp.workers > 64 {
            return Err(invalid("speech.workers", "at most 64 (0: one per core)"));
        }
        for (key, v, lo, hi) in [
            ("speech.min_speech_ms", sp.min_speech_ms, 40, 2000),
            ("speech.end_silence_ms", sp.end_silence_ms, 100, 5000),
            (
                "speech.early_transcribe_ms",
                sp.early_transcribe_ms,
                60,
                5000,
            ),
            ("speech.early_end_ms", sp.early_end_ms, 100, 5000),
            ("speech.barge_in_ms", sp.barge_in_ms, 20, 2000),
            ("speech.max_turn_ms", sp.max_turn_ms, 2000, 60000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(invalid(key, format!("{v} is outside {lo}..={hi}")));
            }
        }
        if sp.early_transcribe_ms > sp.early_end_ms || sp.early_end_ms > sp.end_silence_ms {
            return Err(invalid(
                "speech.early_end_ms",
                "needs early_transcribe_ms <= early_end_ms <= end_silence_ms",
            ));
        }
        dialog::validate(&self.nlu, &self.dialog)?;
        routing::validate(&self.routing)?;
        if self.llm.enabled {
            if !self.llm.url.starts_with("http://") {
                return Err(invalid(
                    "llm.url",
                    "must be an http:// URL (put a local proxy in front for TLS)",
                ));
            }
            if !(100..=30000).contains(&self.llm.timeout_ms) {
                return Err(invalid("llm.timeout_ms", "between 100 and 30000"));
            }
        }
        let api_ip: IpAddr = self.api.bind.parse().map_err(|_| {
            invalid(
                "api.bind",
                format!("{:?} is not an IP address", self.api.bind),
            )
        })?;
        // A non-loopback API with neither users nor api.token refuses every request (see
        // api::auth); `serve` warns about it at start.
        let _ = api_ip;
        Trunks::parse(&self.trunks)?;
        self.privacy.validate()?;
        if let Some(a) = &self.sip.accept_calls_from {
            if a != "anyone" && a != "trunks" {
                return Err(invalid(
                    "sip.accept_calls_from",
                    format!("{a:?}: use \"anyone\" or \"trunks\""),
                ));
            }
        }
        if self.demo_agents && !bind.is_loopback() {
            return Err(invalid(
                "agents",
                "the demo agent accounts (agent1/agent1pass, agent2/agent2pass) are only allowed while sip.bind is a loopback address; define real [[agents]] with your own passwords",
            ));
        }
        Ok(())
    }

    /// Whether calls from any source are taken (see `sip.accept_calls_from`).
    pub fn calls_from_anyone(&self) -> bool {
        match self.sip.accept_calls_from.as_deref() {
            Some("anyone") => true,
            Some(_) => false,
            None => self
                .sip
                .bind
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
        }
    }

    /// The media encryption policy for a leg to `agent`'s phone.
    pub fn agent_srtp(&self, agent: &str) -> voxdesk_sip::sdes::SrtpPolicy {
        let v = self
            .agents
            .iter()
            .find(|a| a.username == agent)
            .and_then(|a| a.srtp.as_deref())
            .unwrap_or(&self.media.srtp);
        voxdesk_sip::sdes::SrtpPolicy::parse(v).unwrap_or_default()
    }

    /// The address we advertise in Contact and SDP.
    pub fn advertised_address(&self) -> String {
        self.sip
            .public_address
            .clone()
            .unwrap_or_else(|| self.sip.bind.clone())
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.paths.data_dir.join("recordings")
    }

    /// A model path from `[models]`, resolved against `paths.models_dir`.
    pub fn model_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.paths.models_dir.join(p)
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.paths.data_dir.join("voxdesk.sqlite")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_have_demo_agents() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.agents.len(), 3);
        assert_eq!(
            c.agents.iter().filter(|a| a.supervisor).count(),
            1,
            "two agents and a supervisor"
        );
        assert_eq!(c.sip.port, 5060);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("[sip]\nprot = 5060\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("prot"), "{e}");
        let e = Config::parse("[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("media.rtp_port_min"), "{e}");
        let e = Config::parse("[[agents]]\nusername = \"a b\"\npassword = \"x\"\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("agents[0].username"), "{e}");
        let e = Config::parse("[[agents]]\nusername = \"a\"\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("agents[0].password"), "{e}");
        let e = Config::parse("[sip]\nbind = \"0.0.0.0\"\npublic_address = \"192.0.2.1\"\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("demo agent"), "{e}");
        let e = Config::parse("[sip]\nport = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn shipped_example_is_valid_and_matches_the_defaults() {
        let c = Config::parse(include_str!("../../voxdesk.toml")).unwrap();
        c.validate().unwrap();
        let d = Config::default();
        assert_eq!(c.sip.port, d.sip.port);
        assert_eq!(c.media.rtp_port_min, d.media.rtp_port_min);
        assert_eq!(c.registrar.digest_algorithms, d.registrar.digest_algorithms);
        assert_eq!(c.routing.queues, d.routing.queues);
        assert_eq!(c.dialog.sensitive_intents, d.dialog.sensitive_intents);
        assert_eq!(c.nlu.intent_threshold, d.nlu.intent_threshold);
        assert_eq!(c.models.encoder, d.models.encoder);
        assert!(c.demo_agents);
    }

    #[test]
    fn explicit_agents_replace_demo() {
        let c = Config::parse("[[agents]]\nusername = \"alice\"\nha1 = \"0123456789abcdef0123456789abcdef\"\nskills = [\"billing\"]\n").unwrap();
        c.validate().unwrap();
        assert!(!c.demo_agents);
        assert_eq!(c.agents.len(), 1);
    }
}
