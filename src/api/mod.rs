//! The HTTP API (axum) the web console and operators' scripts use: the knowledge base,
//! training, calls with their turns, escalations and tickets. JSON in and out; bound to
//! loopback by default; with `api.token` set, every request needs `Authorization: Bearer`.

use crate::config::Config;
use crate::kb::{format::JsonEntry, KbEntry};
use crate::store::{Store, View};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub mod auth;
mod people;
mod serve;
use auth::{Identity, Role};
use axum::Extension;
use people::{caller_erase, caller_export, user_add, user_remove, users_list};

#[derive(Clone)]
struct Api {
    cfg: Arc<Config>,
    store: Store,
    brain: Option<Arc<crate::brain::Brain>>,
    router: Option<crate::routing::Router>,
    live: crate::call::LiveCalls,
}

/// An error as `{"error": "..."}` with its status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "api request failed");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

type ApiResult<T> = Result<T, ApiError>;

/// Binds the API listener (`api.bind`:`api.port`; port 0 picks a free one) and serves it
/// until `stop` fires. Returns the bound address.
pub async fn start(
    cfg: Arc<Config>,
    store: Store,
    brain: Option<Arc<crate::brain::Brain>>,
    router: Option<crate::routing::Router>,
    live: crate::call::LiveCalls,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<std::net::SocketAddr> {
    use anyhow::Context;
    let addr = format!("{}:{}", cfg.api.bind, cfg.api.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot bind the HTTP API on {addr} (api.bind / api.port)"))?;
    let local = listener.local_addr()?;
    let limits = cfg.limits.clone();
    let app = routes(Api {
        cfg,
        store,
        brain,
        router,
        live,
    });
    tokio::spawn(async move { serve::serve(listener, app, &limits, stop).await });
    Ok(local)
}

/// The API's router over `store` with the request bounds but no knowledge-base index and
/// no routing (what the `api` fuzz target drives in-process; `start` serves the full one).
pub fn app(cfg: Arc<Config>, store: Store) -> Router {
    routes(Api {
        cfg,
        store,
        brain: None,
        router: None,
        live: crate::call::LiveCalls::default(),
    })
}

fn routes(api: Api) -> Router {
    let request_secs = std::time::Duration::from_secs(api.cfg.limits.api_request_secs);
    Router::new()
        .route("/api/kb", get(kb_list))
        .route("/api/kb/search", get(kb_search))
        .route("/api/kb/{key}", get(kb_get).put(kb_put).delete(kb_delete))
        .route("/api/nlu/train", post(train))
        .route("/api/calls", get(calls))
        .route("/api/calls/{id}", get(call))
        .route("/api/calls/{id}/wrapup", post(wrapup))
        .route("/api/calls/{id}/supervise", post(supervise))
        .route("/api/kb/suggestions", get(suggestions))
        .route("/api/escalations", get(escalations))
        .route("/api/tickets", get(tickets))
        .route("/api/agents", get(agents))
        .route("/api/agents/{id}/state", post(agent_state))
        .route(
            "/api/callers/{number}",
            get(caller_export).delete(caller_erase),
        )
        .route("/api/users", get(users_list).post(user_add))
        .route("/api/users/{name}", axum::routing::delete(user_remove))
        .layer(middleware::from_fn_with_state(
            api.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(api.clone(), auth::guard))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn(move |req, next| {
            serve::bound_request(request_secs, req, next)
        }))
        .with_state(api)
}

/// Runs `f` with a connection of its own on a blocking thread (writes that need the
/// encoder, or a transaction).
async fn blocking<T: Send + 'static>(
    api: &Api,
    f: impl FnOnce(&mut rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let path = api.cfg.database_path();
    tokio::task::spawn_blocking(move || {
        let mut conn = crate::store::open_connection(&path)?;
        f(&mut conn)
    })
    .await
    .map_err(internal)?
    .map_err(internal)
}

async fn kb_list(State(api): State<Api>) -> ApiResult<Json<Vec<JsonEntry>>> {
    let entries = blocking(&api, |c| Ok(crate::store::kb::load(c, true)?)).await?;
    Ok(Json(entries.iter().map(JsonEntry::from).collect()))
}

async fn kb_get(State(api): State<Api>, Path(key): Path<String>) -> ApiResult<Json<JsonEntry>> {
    let entries = blocking(&api, |c| Ok(crate::store::kb::load(c, true)?)).await?;
    entries
        .iter()
        .find(|e| e.key == key)
        .map(|e| Json(JsonEntry::from(e)))
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no entry {key:?}")))
}

async fn kb_put(
    State(api): State<Api>,
    Path(key): Path<String>,
    body: String,
) -> ApiResult<Response> {
    let j: JsonEntry = serde_json::from_str(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let entry = KbEntry::from(j);
    if entry.key != key {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body's key {:?} is not the path's {key:?}", entry.key),
        ));
    }
    entry
        .check()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let encoder = api
        .brain
        .as_ref()
        .and_then(|b| b.nlu())
        .map(|n| n.encoder().clone());
    let report = blocking(&api, move |c| {
        Ok(crate::store::kb::import(
            c,
            &[entry],
            encoder.as_deref(),
            "api",
        )?)
    })
    .await?;
    let status = if report.added > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "added": report.added, "updated": report.updated, "unchanged": report.unchanged }))).into_response())
}

async fn kb_delete(State(api): State<Api>, Path(key): Path<String>) -> ApiResult<StatusCode> {
    let k = key.clone();
    if blocking(&api, move |c| Ok(crate::store::kb::delete(c, &k)?)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no entry {key:?}")))
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    #[serde(default)]
    lang: Option<String>,
}

async fn kb_search(State(api): State<Api>, Query(q): Query<SearchQuery>) -> ApiResult<Json<Value>> {
    let path = api.cfg.database_path();
    let encoder = api
        .brain
        .as_ref()
        .and_then(|b| b.nlu())
        .map(|n| n.encoder().clone());
    let hits = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        let index = crate::store::kb::open_index(&path)?
            .multilingual(encoder.as_ref().is_some_and(|e| e.multilingual()));
        let emb = match &encoder {
            Some(e) => Some(e.embed(&q.q)?),
            None => None,
        };
        let lang = q.lang.clone().unwrap_or_else(|| {
            if crate::nlu::text::looks_chinese(&q.q) { "zh" } else { "en" }.into()
        });
        Ok(Value::Array(
            index
                .search(&q.q, emb.as_deref(), 5)
                .into_iter()
                .map(|h| {
                    let e = &index.entries[h.entry];
                    json!({ "key": h.key, "score": h.score, "semantic": h.semantic, "lexical": h.lexical,
                            "intent": e.intent, "answer": e.answer(&lang) })
                })
                .collect(),
        ))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(hits))
}

async fn train(State(api): State<Api>) -> ApiResult<Json<Value>> {
    let Some(nlu) = api.brain.as_ref().and_then(|b| b.nlu()).cloned() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "nlu.enabled is false (or speech is off): nothing to train".into(),
        ));
    };
    let cfg = api.cfg.clone();
    let msg = tokio::task::spawn_blocking(move || {
        crate::brain::load::train_and_store(&cfg, nlu.encoder().as_ref()).map(|(_, m)| m)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(json!({ "result": msg })))
}

async fn calls(State(api): State<Api>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(api.store.view(View::Calls).await.map_err(internal)?))
}

async fn call(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let view = |v| async { api.store.view(v).await.map_err(internal) };
    let mut c = view(View::Call(id.clone())).await?;
    let Some(call) = c.pop() else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no call {id:?}")));
    };
    let turns = view(View::CallTurns(id.clone())).await?;
    let esc = view(View::CallEscalations(id.clone())).await?;
    let tickets = view(View::CallTickets(id)).await?;
    Ok(Json(
        json!({ "call": call, "turns": turns, "escalations": esc, "tickets": tickets }),
    ))
}

async fn escalations(State(api): State<Api>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(
        api.store.view(View::Escalations).await.map_err(internal)?,
    ))
}

async fn tickets(State(api): State<Api>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(api.store.view(View::Tickets).await.map_err(internal)?))
}

async fn agents(State(api): State<Api>) -> ApiResult<Json<Value>> {
    let Some(r) = &api.router else {
        return Ok(Json(json!([])));
    };
    Ok(Json(
        serde_json::to_value(r.agents().await).map_err(internal)?,
    ))
}

#[derive(Deserialize)]
struct AgentStateBody {
    /// "available" or "paused".
    state: String,
    #[serde(default)]
    reason: String,
}

/// `POST /api/agents/{id}/state` with `{"state": "available"}` or
/// `{"state": "paused", "reason": "lunch"}`.
async fn agent_state(
    State(api): State<Api>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    Json(b): Json<AgentStateBody>,
) -> ApiResult<StatusCode> {
    if !who.may_act_as(&id) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "an agent sets only their own state".into(),
        ));
    }
    let Some(r) = &api.router else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "routing.enabled is false".into(),
        ));
    };
    let available = match b.state.as_str() {
        "available" => true,
        "paused" => false,
        s => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("state {s:?}: \"available\" or \"paused\""),
            ))
        }
    };
    let reason = if b.reason.is_empty() {
        "paused"
    } else {
        &b.reason
    };
    r.set_state(&id, available, reason)
        .await
        .map(|_| StatusCode::NO_CONTENT)
        .map_err(|e| match e {
            crate::routing::RouteError::Gone => internal(e),
            e => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        })
}

#[derive(Deserialize)]
struct SuperviseBody {
    /// A supervisor account (`supervisor = true` in `[[agents]]`).
    supervisor: String,
    /// "listen", "whisper", "barge", or "off".
    mode: String,
}

/// `POST /api/calls/{id}/supervise` with `{"supervisor": "...", "mode": "listen"}`: rings
/// the supervisor's phone (or changes the mode of the one connected; "off" ends it).
/// Answers `{"call", "supervisor", "mode", "state": "ringing" | "connected" | "ended"}`.
async fn supervise(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(b): Json<SuperviseBody>,
) -> ApiResult<Json<Value>> {
    use crate::call::{CallInput, SuperviseError, SuperviseMode};
    let mode = match b.mode.as_str() {
        "off" => None,
        m => Some(SuperviseMode::parse(m).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("mode {m:?}: \"listen\", \"whisper\", \"barge\" or \"off\""),
            )
        })?),
    };
    let call = api
        .live
        .get(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no live call {id:?}")))?;
    let (reply, rx) = tokio::sync::oneshot::channel();
    call.send(CallInput::Supervise {
        supervisor: b.supervisor.clone(),
        mode,
        reply,
    })
    .await
    .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("call {id:?} has ended")))?;
    let state = rx
        .await
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("call {id:?} has ended")))?
        .map_err(|e| {
            let code = match e {
                SuperviseError::NotSupervisor(_) => StatusCode::FORBIDDEN,
                SuperviseError::NotRegistered(_) | SuperviseError::NotBridged => {
                    StatusCode::CONFLICT
                }
                SuperviseError::Busy(_) => StatusCode::CONFLICT,
                SuperviseError::NoMedia => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError(code, e.to_string())
        })?;
    Ok(Json(json!({
        "call": id,
        "supervisor": b.supervisor,
        "mode": b.mode,
        "state": state,
    })))
}

#[derive(Deserialize)]
struct WrapUp {
    /// The agent's disposition code ("resolved", "follow-up", ...).
    disposition: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    agent: Option<String>,
    /// "The bot should have answered X": goes to the knowledge-base suggestion queue.
    #[serde(default)]
    correction: Option<String>,
}

/// `POST /api/calls/{id}/wrapup`: the agent's disposition and notes; a correction becomes a
/// knowledge-base suggestion (the caller's last question with the agent's answer).
async fn wrapup(
    State(api): State<Api>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    body: String,
) -> ApiResult<StatusCode> {
    let mut w: WrapUp = serde_json::from_str(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    // An agent wraps up as themself.
    if who.role == Role::Agent {
        match &w.agent {
            Some(a) if a != &who.name => {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "an agent wraps up only as themself".into(),
                ))
            }
            _ => w.agent = Some(who.name.clone()),
        }
    }
    if w.disposition.trim().is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "disposition is required".into(),
        ));
    }
    let wrapup = crate::store::Wrapup {
        agent: w.agent,
        disposition: w.disposition.trim().to_string(),
        // Agents' notes may quote the caller: redacted like the transcripts.
        notes: crate::privacy::redact(&w.notes).into_owned(),
        correction: w
            .correction
            .as_deref()
            .map(|c| crate::privacy::redact(c).into_owned()),
    };
    let found = api.store.wrapup(&id, wrapup).await.map_err(internal)?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, "no such call".into()))
    }
}

async fn suggestions(State(api): State<Api>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(
        api.store.view(View::Suggestions).await.map_err(internal)?,
    ))
}
