//! Handlers: extract, call one service method, map the result.

use crate::ApiError;
use crate::extract::{Auth, JsonBody, MaybeAuth, Meta};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sesame_app::{
    App, BindRequest, CodeRequest, ConfirmRequest, MfaVerify, MfaWebauthnBegin, PasskeyRename,
    PasskeySignInFinish, PasskeySignUpBegin, PasskeySignUpFinish, PasswordChange, Reauthenticate,
    RefreshRequest, RegisterRequest, RegistrationFinish, ResetConfirm, ResetRequest, SignInRequest,
    TotpCode,
};
use sesame_core::{ErrorCode, SessionId};
use sesame_identity::ProfilePatch;

type Result<T> = std::result::Result<T, ApiError>;

pub async fn register(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Response> {
    let registered = app.register(req, &meta).await?;
    Ok((StatusCode::CREATED, Json(registered)).into_response())
}

pub async fn sign_in(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<SignInRequest>,
) -> Result<Response> {
    Ok(Json(app.sign_in(req, &meta).await?).into_response())
}

pub async fn verify_mfa(
    State(app): State<App>,
    MaybeAuth(auth): MaybeAuth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<MfaVerify>,
) -> Result<Response> {
    Ok(Json(app.verify_mfa(req, auth.as_ref(), &meta).await?).into_response())
}

pub async fn begin_totp(State(app): State<App>, Auth(auth): Auth) -> Result<Response> {
    Ok(Json(app.begin_totp(&auth).await?).into_response())
}

pub async fn confirm_totp(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<TotpCode>,
) -> Result<Response> {
    Ok(Json(app.confirm_totp(&auth, &req.code, &meta).await?).into_response())
}

pub async fn remove_totp(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<TotpCode>,
) -> Result<StatusCode> {
    app.remove_totp(&auth, &req.code, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn regenerate_backup_codes(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
) -> Result<Response> {
    Ok(Json(app.regenerate_backup_codes(&auth, &meta).await?).into_response())
}

pub async fn begin_passkey_registration(
    State(app): State<App>,
    Auth(auth): Auth,
) -> Result<Response> {
    Ok(Json(app.begin_passkey_registration(&auth).await?).into_response())
}

pub async fn finish_passkey_registration(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<RegistrationFinish>,
) -> Result<Response> {
    let passkey = app.finish_passkey_registration(&auth, req, &meta).await?;
    Ok((StatusCode::CREATED, Json(passkey)).into_response())
}

pub async fn list_passkeys(State(app): State<App>, Auth(auth): Auth) -> Result<Response> {
    Ok(Json(app.list_passkeys(&auth).await?).into_response())
}

fn login_id(id: &str) -> Result<uuid::Uuid> {
    id.parse().map_err(|_| ApiError::from(ErrorCode::NotFound))
}

pub async fn rename_passkey(
    State(app): State<App>,
    Auth(auth): Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PasskeyRename>,
) -> Result<Response> {
    let id = login_id(&id)?;
    Ok(Json(app.rename_passkey(&auth, id, req).await?).into_response())
}

pub async fn remove_passkey(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    app.remove_passkey(&auth, login_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn begin_security_key_registration(
    State(app): State<App>,
    Auth(auth): Auth,
) -> Result<Response> {
    Ok(Json(app.begin_security_key_registration(&auth).await?).into_response())
}

pub async fn finish_security_key_registration(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<RegistrationFinish>,
) -> Result<Response> {
    let enrolled = app
        .finish_security_key_registration(&auth, req, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(enrolled)).into_response())
}

pub async fn list_security_keys(State(app): State<App>, Auth(auth): Auth) -> Result<Response> {
    Ok(Json(app.list_security_keys(&auth).await?).into_response())
}

pub async fn remove_security_key(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    app.remove_security_key(&auth, login_id(&id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn begin_mfa_webauthn(
    State(app): State<App>,
    MaybeAuth(auth): MaybeAuth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<MfaWebauthnBegin>,
) -> Result<Response> {
    Ok(Json(app.begin_mfa_webauthn(req, auth.as_ref(), &meta).await?).into_response())
}

pub async fn begin_passkey_sign_up(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<PasskeySignUpBegin>,
) -> Result<Response> {
    Ok(Json(app.begin_passkey_sign_up(req, &meta).await?).into_response())
}

pub async fn finish_passkey_sign_up(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<PasskeySignUpFinish>,
) -> Result<Response> {
    let registered = app.finish_passkey_sign_up(req, &meta).await?;
    Ok((StatusCode::CREATED, Json(registered)).into_response())
}

pub async fn begin_passkey_sign_in(State(app): State<App>, Meta(meta): Meta) -> Result<Response> {
    Ok(Json(app.begin_passkey_sign_in(&meta).await?).into_response())
}

pub async fn finish_passkey_sign_in(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<PasskeySignInFinish>,
) -> Result<Response> {
    Ok(Json(app.finish_passkey_sign_in(req, &meta).await?).into_response())
}

pub async fn refresh(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Response> {
    Ok(Json(app.refresh(&req.refresh_token, &meta).await?).into_response())
}

pub async fn sign_out(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
) -> Result<StatusCode> {
    app.sign_out(&auth, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_me(State(app): State<App>, Auth(auth): Auth) -> Result<StatusCode> {
    app.delete_me(&auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(State(app): State<App>, Auth(auth): Auth) -> Result<Response> {
    Ok(Json(app.me(&auth).await?).into_response())
}

pub async fn update_profile(
    State(app): State<App>,
    Auth(auth): Auth,
    JsonBody(patch): JsonBody<ProfilePatch>,
) -> Result<Response> {
    Ok(Json(app.update_profile(&auth, patch).await?).into_response())
}

pub async fn list_sessions(State(app): State<App>, Auth(auth): Auth) -> Result<Response> {
    Ok(Json(app.list_sessions(&auth).await?).into_response())
}

pub async fn revoke_session(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = id
        .parse()
        .map(SessionId)
        .map_err(|_| ApiError::from(ErrorCode::NotFound))?;
    app.revoke_session(&auth, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn send_code(
    State(app): State<App>,
    MaybeAuth(auth): MaybeAuth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<CodeRequest>,
) -> Result<Response> {
    let sent = app.send_code(req, auth.as_ref(), &meta).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)).into_response())
}

pub async fn confirm_code(
    State(app): State<App>,
    MaybeAuth(auth): MaybeAuth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<ConfirmRequest>,
) -> Result<Response> {
    let login = app.confirm_verification(req, auth.as_ref(), &meta).await?;
    Ok(Json(login).into_response())
}

pub async fn reauthenticate(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<Reauthenticate>,
) -> Result<Response> {
    Ok(Json(app.reauthenticate(&auth, req, &meta).await?).into_response())
}

pub async fn bind_login(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<BindRequest>,
) -> Result<Response> {
    let login = app.bind_login(&auth, req, &meta).await?;
    Ok((StatusCode::CREATED, Json(login)).into_response())
}

pub async fn unbind_login(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    app.unbind_login(&auth, login_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn change_password(
    State(app): State<App>,
    Auth(auth): Auth,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<PasswordChange>,
) -> Result<StatusCode> {
    app.change_password(&auth, req, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn request_reset(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<Response> {
    let sent = app.request_password_reset(req, &meta).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)).into_response())
}

pub async fn confirm_reset(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<ResetConfirm>,
) -> Result<StatusCode> {
    app.confirm_password_reset(req, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn jwks(State(app): State<App>) -> Response {
    let mut response = app.jwks().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../../openapi.yaml");

pub async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    response
}

pub async fn metrics(State(app): State<App>) -> Response {
    let mut response = app.metrics_text().await.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub async fn live() -> &'static str {
    "ok"
}

pub async fn ready(State(app): State<App>) -> Result<&'static str> {
    app.ready().await?;
    Ok("ok")
}

pub async fn not_found() -> ApiError {
    ErrorCode::NotFound.into()
}

pub async fn method_not_allowed() -> ApiError {
    ErrorCode::MethodNotAllowed.into()
}
