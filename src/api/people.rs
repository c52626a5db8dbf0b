//! The API's users and callers' data rights: `/api/users` (admins add, list and remove the
//! console's users) and `/api/callers/{number}` (a caller's data exported or erased).

use super::auth::Identity;
use super::{internal, Api, ApiError, ApiResult};
use crate::store::users::NewUserError;
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
    let token = api
        .store
        .user_new(&u.name, &u.role)
        .await
        .map_err(|e| match e {
            NewUserError::Store(e) => internal(e),
            e => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        })?;
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
