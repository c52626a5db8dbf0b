//! The HTTP API (axum) the web console and operators' scripts use: the knowledge base,
//! training, calls with their turns, escalations and tickets. JSON in and out; bound to
//! loopback by default; with `api.token` set, every request needs `Authorization: Bearer`.

use crate::config::Config;
use crate::kb::{self, format::JsonEntry, search::KbIndex, KbEntry};
use crate::store::Store;
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
pub use people::new_user;
use people::{caller_erase, caller_export, user_add, user_remove, users_list};

#[derive(Clone)]
struct Api {
    cfg: Arc<Config>,
    store: Store,
    brain: Option<Arc<crate::dialog::brain::Brain>>,
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
    brain: Option<Arc<crate::dialog::brain::Brain>>,
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
    let entries = blocking(&api, |c| Ok(kb::load(c, true)?)).await?;
    Ok(Json(entries.iter().map(JsonEntry::from).collect()))
}

async fn kb_get(State(api): State<Api>, Path(key): Path<String>) -> ApiResult<Json<JsonEntry>> {
    let entries = blocking(&api, |c| Ok(kb::load(c, true)?)).await?;
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
        Ok(kb::import(c, &[entry], encoder.as_deref(), "api")?)
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
    if blocking(&api, move |c| Ok(kb::delete(c, &k)?)).await? {
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
        let index = KbIndex::open(&path)?
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
        crate::admin::train_and_store(&cfg, nlu.encoder().as_ref()).map(|(_, m)| m)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(json!({ "result": msg })))
}

/// Rows of `sql` as JSON objects keyed by column name.
async fn rows(api: &Api, sql: &'static str, param: Option<String>) -> ApiResult<Vec<Value>> {
    api.store
        .read(move |c| {
            let mut st = c.prepare(sql)?;
            let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
            let map = |r: &rusqlite::Row| {
                let mut o = serde_json::Map::new();
                for (i, n) in names.iter().enumerate() {
                    let v = match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(i) => json!(i),
                        rusqlite::types::ValueRef::Real(f) => json!(f),
                        rusqlite::types::ValueRef::Text(t) => {
                            let s = String::from_utf8_lossy(t).into_owned();
                            // JSON stored as text (summaries, details) goes out as JSON.
                            if n.ends_with("_json") {
                                serde_json::from_str(&s).unwrap_or(Value::String(s))
                            } else {
                                Value::String(s)
                            }
                        }
                        rusqlite::types::ValueRef::Blob(_) => Value::Null,
                    };
                    o.insert(n.trim_end_matches("_json").to_string(), v);
                }
                Ok(Value::Object(o))
            };
            let out: rusqlite::Result<Vec<Value>> = match &param {
                Some(p) => st.query_map([p], map)?.collect(),
                None => st.query_map([], map)?.collect(),
            };
            out
        })
        .await
        .map_err(internal)
}

async fn calls(State(api): State<Api>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(
        rows(
            &api,
            "SELECT * FROM calls ORDER BY started_at_ms DESC LIMIT 100",
            None,
        )
        .await?,
    ))
}

async fn call(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let mut c = rows(&api, "SELECT * FROM calls WHERE id = ?1", Some(id.clone())).await?;
    let Some(call) = c.pop() else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no call {id:?}")));
    };
    let turns = rows(
        &api,
        "SELECT * FROM turns WHERE call_id = ?1 ORDER BY seq, speaker DESC",
        Some(id.clone()),
    )
    .await?;
    let esc = rows(
        &api,
        "SELECT * FROM escalations WHERE call_id = ?1 ORDER BY id",
        Some(id.clone()),
    )
    .await?;
    let tickets = rows(
        &api,
        "SELECT * FROM tickets WHERE call_id = ?1 ORDER BY id",
        Some(id),
    )
    .await?;
    Ok(Json(
        json!({ "call": call, "turns": turns, "escalations": esc, "tickets": tickets }),
    ))
}

async fn escalations(State(api): State<Api>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(
        rows(
            &api,
            "SELECT * FROM escalations ORDER BY id DESC LIMIT 100",
            None,
        )
        .await?,
    ))
}

async fn tickets(State(api): State<Api>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(
        rows(
            &api,
            "SELECT * FROM tickets ORDER BY id DESC LIMIT 100",
            None,
        )
        .await?,
    ))
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
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))
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
    let found = api
        .store
        .read(move |c| {
            let exists: bool = c.query_row("SELECT COUNT(*) > 0 FROM calls WHERE id = ?1", [&id], |r| r.get(0))?;
            if !exists {
                return Ok(false);
            }
            // The wrap-up and its suggestion land together or not at all.
            let c = c.unchecked_transaction()?;
            let now = crate::store::now_ms();
            let agent = match w.agent.clone() {
                Some(a) => Some(a),
                None => c.query_row(
                    "SELECT agent FROM escalations WHERE call_id = ?1 ORDER BY id DESC LIMIT 1",
                    [&id],
                    |r| r.get::<_, Option<String>>(0),
                ).unwrap_or(None),
            };
            // Agents' notes may quote the caller: redacted like the transcripts.
            let notes = crate::privacy::redact(&w.notes).into_owned();
            let correction = w.correction.as_deref().map(|c| crate::privacy::redact(c).into_owned());
            c.execute(
                "INSERT INTO wrapups (call_id, agent, disposition, notes, correction, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![id, agent, w.disposition.trim(), notes, correction, now],
            )?;
            if let Some(answer) = correction.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
                // The question: the caller's last words to the bot.
                let (question, intent): (String, Option<String>) = c
                    .query_row(
                        "SELECT text, intent FROM turns WHERE call_id = ?1 AND speaker = 'caller' AND text != ''
                         AND (intent IS NULL OR intent NOT IN ('agent_request', 'goodbye', 'thanks', 'affirm', 'deny', 'greeting', 'smalltalk'))
                         ORDER BY seq DESC LIMIT 1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap_or_default();
                c.execute(
                    "INSERT INTO kb_suggestions (call_id, question, answer, intent, suggested_by, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![id, question, answer, intent, agent, now],
                )?;
            }
            c.commit()?;
            Ok(true)
        })
        .await
        .map_err(internal)?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, "no such call".into()))
    }
}

async fn suggestions(State(api): State<Api>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(
        rows(
            &api,
            "SELECT * FROM kb_suggestions WHERE status = 'pending' ORDER BY id DESC LIMIT 100",
            None,
        )
        .await?,
    ))
}
