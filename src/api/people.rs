//! The API's users and callers' data rights: `/api/users` (admins add, list and remove the
//! console's users) and `/api/callers/{number}` (a caller's data exported or erased).

use super::auth::{Identity, Role};
use super::{internal, Api, ApiError, ApiResult};
use crate::store::Store;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub(super) struct NewUser {
    name: String,
    role: String,
}

pub(super) async fn users_list(
    State(api): State<Api>,
) -> ApiResult<Json<Vec<crate::store::UserRow>>> {
    Ok(Json(api.store.users().await.map_err(internal)?))
}

/// `POST /api/users` with `{"name", "role"}`: adds a user (or gives them a new token);
/// the token is in the answer, once.
pub(super) async fn user_add(
    State(api): State<Api>,
    Json(u): Json<NewUser>,
) -> ApiResult<Json<Value>> {
    let token = new_user(&api.store, &u.name, &u.role)
        .await
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(
        json!({ "name": u.name, "role": u.role, "token": token }),
    ))
}

pub(super) async fn user_remove(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if api.store.user_remove(&name).await.map_err(internal)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, "no such user".into()))
    }
}

/// Adds (or re-keys) a user; returns their new token. Shared by the API and the CLI.
pub async fn new_user(store: &Store, name: &str, role: &str) -> Result<String, String> {
    if Role::parse(role).is_none() {
        return Err(format!(
            "role {role:?}: \"admin\", \"supervisor\" or \"agent\""
        ));
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err("a user name is 1-64 letters, digits, '.', '_' or '-'".into());
    }
    let bytes: [u8; 32] = rand::random();
    let token: String = format!(
        "vxd_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    store
        .user_put(name, role, &token)
        .await
        .map_err(|e| e.to_string())?;
    Ok(token)
}

/// Everything stored about a caller (the right of access).
pub(super) async fn caller_export(
    State(api): State<Api>,
    Path(number): Path<String>,
) -> ApiResult<Json<crate::store::CallerData>> {
    Ok(Json(
        api.store.caller_export(&number).await.map_err(internal)?,
    ))
}

/// Erases a caller's data (the right to erasure); an audit row keeps who and how much.
pub(super) async fn caller_erase(
    State(api): State<Api>,
    Extension(who): Extension<Identity>,
    Path(number): Path<String>,
) -> ApiResult<Json<Value>> {
    let e = api
        .store
        .caller_erase(&number, &format!("api:{}", who.name))
        .await
        .map_err(internal)?;
    let files = crate::store::retention::delete_files(&e.recordings);
    tracing::info!(
        calls = e.calls,
        recordings = files,
        "caller data erased over the API"
    );
    Ok(Json(json!({
        "calls": e.calls, "turns": e.turns, "escalations": e.escalations,
        "tickets": e.tickets, "recordings": files,
    })))
}
