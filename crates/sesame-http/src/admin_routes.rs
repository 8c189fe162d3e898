//! Handlers of the admin API and of introspection: extract, call one
//! service method, map the result.

use crate::ApiError;
use crate::extract::{CallerAuth, JsonBody, JsonOrForm, Meta};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sesame_app::App;
use sesame_app::access::IntrospectRequest;
use sesame_app::admin::{
    ApiKeyRequest, AuditQuery, RoleRequest, SuspendRequest, UserQuery, WebhookRequest,
};
use sesame_core::{Error, ErrorCode, PrincipalId};
use uuid::Uuid;

type Result<T> = std::result::Result<T, ApiError>;

/// A path id, or `404 not_found` (no such thing can exist).
fn path_id(id: &str) -> Result<Uuid> {
    id.parse().map_err(|_| ApiError::from(ErrorCode::NotFound))
}

fn user(id: &str) -> Result<PrincipalId> {
    path_id(id).map(PrincipalId)
}

pub async fn introspect(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    JsonOrForm(req): JsonOrForm<IntrospectRequest>,
) -> Result<Response> {
    let answer = app.introspect(&caller, &req.token).await?;
    let mut response = Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn create_api_key(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<ApiKeyRequest>,
) -> Result<Response> {
    let created = app.create_api_key(&caller, req, &meta).await?;
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn list_api_keys(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
) -> Result<Response> {
    Ok(Json(app.list_api_keys(&caller).await?).into_response())
}

pub async fn revoke_api_key(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    app.revoke_api_key(&caller, path_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_roles(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
) -> Result<Response> {
    Ok(Json(app.list_roles(&caller).await?).into_response())
}

pub async fn put_role(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<RoleRequest>,
) -> Result<Response> {
    Ok(Json(app.put_role(&caller, &name, req, &meta).await?).into_response())
}

pub async fn delete_role(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    app.delete_role(&caller, &name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_webhooks(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
) -> Result<Response> {
    Ok(Json(app.list_webhooks(&caller).await?).into_response())
}

pub async fn put_webhook(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<WebhookRequest>,
) -> Result<Response> {
    let (created, saved) = app.put_webhook(&caller, &name, req, &meta).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(saved)).into_response())
}

pub async fn rotate_webhook_secret(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(name): Path<String>,
) -> Result<Response> {
    Ok(Json(app.rotate_webhook_secret(&caller, &name, &meta).await?).into_response())
}

pub async fn delete_webhook(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    app.delete_webhook(&caller, &name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query parameters as `T`, or `400 validation_failed`.
fn query<T: serde::de::DeserializeOwned>(raw: Option<String>) -> Result<T> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|_| ApiError(Error::field("", "invalid_query")))
}

pub async fn list_users(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let query: UserQuery = query(raw)?;
    Ok(Json(app.list_users(&caller, query).await?).into_response())
}

pub async fn list_audit(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let query: AuditQuery = query(raw)?;
    Ok(Json(app.list_audit(&caller, query).await?).into_response())
}

pub async fn list_logins(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(Json(app.admin_list_logins(&caller, user(&id)?).await?).into_response())
}

pub async fn unbind_login(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path((id, login_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    app.admin_unbind_login(&caller, user(&id)?, path_id(&login_id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reset_mfa(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    app.admin_reset_mfa(&caller, user(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_user(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(Json(app.admin_get_user(&caller, user(&id)?).await?).into_response())
}

pub async fn delete_user(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    app.admin_delete_user(&caller, user(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn suspend(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<SuspendRequest>,
) -> Result<StatusCode> {
    app.suspend(&caller, user(&id)?, req, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reactivate(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    app.reactivate(&caller, user(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn assign_role(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path((id, role)): Path<(String, String)>,
) -> Result<StatusCode> {
    app.assign_role(&caller, user(&id)?, &role, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_role(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path((id, role)): Path<(String, String)>,
) -> Result<StatusCode> {
    app.revoke_role(&caller, user(&id)?, &role, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_sessions(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(Json(app.admin_list_sessions(&caller, user(&id)?).await?).into_response())
}

pub async fn revoke_sessions(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(Json(
        app.admin_revoke_sessions(&caller, user(&id)?, &meta)
            .await?,
    )
    .into_response())
}
