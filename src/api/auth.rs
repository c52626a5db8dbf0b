//! Who is calling the API and what they may do. Users (`voxdesk user add`) have a role and
//! a token of their own; `api.token` (if set) acts as an admin named "api-token"; with no
//! users and no token, a loopback API is open to local scripts as an admin ("local").
//! Every route needs a role (the table below, in one place), an agent acts only as
//! themself, and every change by an admin or supervisor leaves an audit row.

use super::{Api, ApiError};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "agent" => Role::Agent,
            "supervisor" => Role::Supervisor,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// The caller of a request, put into its extensions by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

impl Identity {
    /// Whether this identity may act as `agent` (itself, or anyone for a supervisor).
    pub fn may_act_as(&self, agent: &str) -> bool {
        self.role >= Role::Supervisor || self.name == agent
    }
}

/// The role a route needs. Unlisted routes need an admin.
pub fn required(method: &Method, path: &str) -> Role {
    let get = *method == Method::GET || *method == Method::HEAD;
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (get, seg.as_slice()) {
        // Looking answers up, the queue board, tickets to work, one's own state.
        (true, ["api", "kb"]) | (true, ["api", "kb", "search"]) => Role::Agent,
        (true, ["api", "kb", "suggestions"]) => Role::Supervisor,
        (true, ["api", "kb", _]) => Role::Agent,
        (true, ["api", "agents"]) | (true, ["api", "tickets"]) => Role::Agent,
        (true, ["api", "calls", _]) => Role::Agent,
        (false, ["api", "calls", _, "wrapup"]) => Role::Agent,
        (false, ["api", "agents", _, "state"]) => Role::Agent,
        // The floor: every call, escalation and live supervision.
        (true, ["api", "calls"]) | (true, ["api", "escalations"]) => Role::Supervisor,
        (false, ["api", "calls", _, "supervise"]) => Role::Supervisor,
        // The knowledge base's content, training, users, callers' data: admins.
        _ => Role::Admin,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn identify(api: &Api, bearer: Option<&str>) -> Result<Identity, ApiError> {
    let unauthorized = || {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <token>` is required (voxdesk user add)".into(),
        )
    };
    let shared = &api.cfg.api.token;
    match bearer {
        Some(t) if !shared.is_empty() && constant_time_eq(t.as_bytes(), shared.as_bytes()) => {
            Ok(Identity {
                name: "api-token".into(),
                role: Role::Admin,
            })
        }
        Some(t) => {
            let user = api
                .store
                .user_by_token(t)
                .await
                .map_err(super::internal)?
                .ok_or_else(unauthorized)?;
            Ok(Identity {
                role: Role::parse(&user.role).ok_or_else(unauthorized)?,
                name: user.name,
            })
        }
        None => {
            let open = shared.is_empty()
                && api.store.user_count().await.map_err(super::internal)? == 0
                && api
                    .cfg
                    .api
                    .bind
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if open {
                Ok(Identity {
                    name: "local".into(),
                    role: Role::Admin,
                })
            } else {
                Err(unauthorized())
            }
        }
    }
}

/// The middleware: identifies the caller, checks the route's role, records changes made
/// by admins and supervisors in the audit table.
pub(super) async fn authenticate(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let who = match identify(&api, bearer.as_deref()).await {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let need = required(&method, &path);
    if who.role < need {
        tracing::warn!(user = %who.name, role = who.role.as_str(), %method, %path, "API request refused: needs {}", need.as_str());
        return ApiError(
            StatusCode::FORBIDDEN,
            format!("this needs the {} role", need.as_str()),
        )
        .into_response();
    }
    req.extensions_mut().insert(who.clone());
    let resp = next.run(req).await;
    let changes = method != Method::GET && method != Method::HEAD;
    if changes && who.role >= Role::Supervisor && resp.status().is_success() {
        // The path names the object (a call id, a KB key, a caller's number: redacted).
        let what = crate::privacy::redact(&path).into_owned();
        api.store
            .audit(&who.name, &format!("{method} {what}"), who.role.as_str());
    }
    resp
}

/// Before anything else: the Host must be one of ours (a page on another site that
/// resolves its own name to 127.0.0.1, DNS rebinding, is refused), and a request that
/// changes something must say it sends JSON (a cross-site form cannot, so no CSRF).
pub(super) async fn guard(State(api): State<Api>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !host_allowed(host, &api.cfg.api) {
        return ApiError(
            StatusCode::MISDIRECTED_REQUEST,
            "this Host is not one of api.allowed_hosts".into(),
        )
        .into_response();
    }
    let changes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if changes && !json {
        return ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests that change something must be sent as Content-Type: application/json".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether `host` (a Host header, maybe with a port) names this API: loopback names, the
/// bind address, or `api.allowed_hosts`.
fn host_allowed(host: &str, cfg: &crate::config::ApiConfig) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1")
        || name == cfg.bind
        || cfg
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_roles_are_the_typed_ones() {
        for r in crate::store::users::ROLES {
            assert!(Role::parse(r).is_some(), "{r}");
        }
        assert!(Role::parse("root").is_none());
    }

    #[test]
    fn roles_per_route() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(required(&g, "/api/kb"), Role::Agent);
        assert_eq!(required(&Method::PUT, "/api/kb/roaming"), Role::Admin);
        assert_eq!(required(&Method::DELETE, "/api/kb/roaming"), Role::Admin);
        assert_eq!(required(&g, "/api/kb/suggestions"), Role::Supervisor);
        assert_eq!(required(&p, "/api/nlu/train"), Role::Admin);
        assert_eq!(required(&g, "/api/calls"), Role::Supervisor);
        assert_eq!(required(&g, "/api/calls/abc"), Role::Agent);
        assert_eq!(required(&p, "/api/calls/abc/wrapup"), Role::Agent);
        assert_eq!(required(&p, "/api/calls/abc/supervise"), Role::Supervisor);
        assert_eq!(required(&p, "/api/agents/agent1/state"), Role::Agent);
        assert_eq!(required(&g, "/api/callers/123"), Role::Admin);
        assert_eq!(required(&g, "/api/users"), Role::Admin);
        assert_eq!(required(&g, "/api/anything-new"), Role::Admin);
        let a = Identity {
            name: "agent1".into(),
            role: Role::Agent,
        };
        assert!(a.may_act_as("agent1") && !a.may_act_as("agent2"));
    }
}
