//! Handlers of `/v1/federation/*` and `/v1/admin/connections`.

use crate::ApiError;
use crate::extract::{CallerAuth, JsonBody, MaybeAuth, Meta};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sesame_app::App;
use sesame_app::admin::ConnectionRequest;
use sesame_app::federation::{Exchanged, FederationBegin, FederationCallback, FederationExchange};
use sesame_core::Error;

type Result<T> = std::result::Result<T, ApiError>;

pub async fn begin(
    State(app): State<App>,
    MaybeAuth(auth): MaybeAuth,
    Meta(meta): Meta,
    Path(connection): Path<String>,
    JsonBody(req): JsonBody<FederationBegin>,
) -> Result<Response> {
    let started = app
        .begin_federation(&connection, req, auth.as_ref(), &meta)
        .await?;
    Ok(Json(started).into_response())
}

/// `303` to where the app waits; the URL carries a login code, so it is
/// neither cached nor sent on as a referrer.
fn see_other(location: &str) -> Result<Response> {
    let location = HeaderValue::from_str(location)
        .map_err(|e| ApiError(Error::internal_from("return_to", e)))?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response())
}

fn parse_callback(raw: &[u8]) -> Result<FederationCallback> {
    serde_urlencoded::from_bytes(raw).map_err(|_| ApiError(Error::field("", "invalid_query")))
}

pub async fn callback_get(
    State(app): State<App>,
    Path(connection): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let cb = parse_callback(raw.unwrap_or_default().as_bytes())?;
    see_other(&app.federation_callback(&connection, cb).await?)
}

/// Apple's `form_post`: a cross-site POST that carries no cookies, and
/// needs none.
pub async fn callback_post(
    State(app): State<App>,
    Path(connection): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let cb = parse_callback(&body)?;
    see_other(&app.federation_callback(&connection, cb).await?)
}

pub async fn exchange(
    State(app): State<App>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<FederationExchange>,
) -> Result<Response> {
    Ok(match app.federation_exchange(req, &meta).await? {
        Exchanged::SignedIn(signed_in) => Json(signed_in).into_response(),
        Exchanged::Registered(registered) => {
            (StatusCode::CREATED, Json(registered)).into_response()
        }
        Exchanged::Linked { login, created } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(login)).into_response()
        }
    })
}

pub async fn list_connections(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
) -> Result<Response> {
    Ok(Json(app.list_connections(&caller).await?).into_response())
}

pub async fn put_connection(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<ConnectionRequest>,
) -> Result<Response> {
    let (created, view) = app.put_connection(&caller, &name, req, &meta).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

pub async fn delete_connection(
    State(app): State<App>,
    CallerAuth(caller): CallerAuth,
    Meta(meta): Meta,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    app.delete_connection(&caller, &name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
