//! Sesame's HTTP edge: the axum router, extractors and problem documents.

mod admin_routes;
mod error;
pub mod extract;
mod federation_routes;
mod proxies;
mod routes;
mod trace;

pub use error::{ApiError, PROBLEM_JSON};
pub use proxies::TrustedProxies;
pub use trace::REQUEST_ID;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Extension, Router};
use sesame_app::App;
use sesame_core::Error;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;

pub use routes::OPENAPI;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `GET /metrics` (Prometheus text format), on the API's listener or a
/// listener of its own.
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(routes::metrics))
        .with_state(app)
}

/// The whole HTTP API; client addresses come from the socket alone.
pub fn router(app: App) -> Router {
    router_behind(app, TrustedProxies::default())
}

/// The whole HTTP API behind `proxies`, whose `X-Forwarded-For` names the client.
pub fn router_behind(app: App, proxies: TrustedProxies) -> Router {
    Router::new()
        .route("/v1/registrations", post(routes::register))
        .route(
            "/v1/registrations/passkey/begin",
            post(routes::begin_passkey_sign_up),
        )
        .route(
            "/v1/registrations/passkey/finish",
            post(routes::finish_passkey_sign_up),
        )
        .route("/v1/sessions", post(routes::sign_in))
        .route("/v1/sessions/refresh", post(routes::refresh))
        .route("/v1/sessions/mfa", post(routes::verify_mfa))
        .route(
            "/v1/sessions/mfa/webauthn",
            post(routes::begin_mfa_webauthn),
        )
        .route(
            "/v1/sessions/passkey/begin",
            post(routes::begin_passkey_sign_in),
        )
        .route(
            "/v1/sessions/passkey/finish",
            post(routes::finish_passkey_sign_in),
        )
        .route("/v1/sessions/current", delete(routes::sign_out))
        .route("/v1/sessions/reauthenticate", post(routes::reauthenticate))
        .route("/v1/me", get(routes::me).delete(routes::delete_me))
        .route("/v1/me/profile", patch(routes::update_profile))
        .route("/v1/me/sessions", get(routes::list_sessions))
        .route("/v1/me/sessions/{id}", delete(routes::revoke_session))
        .route("/v1/me/logins", post(routes::bind_login))
        .route("/v1/me/logins/{id}", delete(routes::unbind_login))
        .route("/v1/me/password", put(routes::change_password))
        .route(
            "/v1/me/mfa/totp",
            post(routes::begin_totp).delete(routes::remove_totp),
        )
        .route("/v1/me/mfa/totp/confirm", post(routes::confirm_totp))
        .route("/v1/me/passkeys", get(routes::list_passkeys))
        .route("/v1/me/security-keys", get(routes::list_security_keys))
        .route(
            "/v1/me/security-keys/begin",
            post(routes::begin_security_key_registration),
        )
        .route(
            "/v1/me/security-keys/finish",
            post(routes::finish_security_key_registration),
        )
        .route(
            "/v1/me/security-keys/{id}",
            delete(routes::remove_security_key),
        )
        .route(
            "/v1/me/passkeys/begin",
            post(routes::begin_passkey_registration),
        )
        .route(
            "/v1/me/passkeys/finish",
            post(routes::finish_passkey_registration),
        )
        .route(
            "/v1/me/passkeys/{id}",
            patch(routes::rename_passkey).delete(routes::remove_passkey),
        )
        .route(
            "/v1/me/mfa/backup-codes",
            post(routes::regenerate_backup_codes),
        )
        .route("/v1/password-resets", post(routes::request_reset))
        .route("/v1/password-resets/confirm", post(routes::confirm_reset))
        .route("/v1/verifications", post(routes::send_code))
        .route("/v1/verifications/confirm", post(routes::confirm_code))
        .route(
            "/v1/federation/{connection}/begin",
            post(federation_routes::begin),
        )
        .route(
            "/v1/federation/{connection}/callback",
            get(federation_routes::callback_get).post(federation_routes::callback_post),
        )
        .route("/v1/federation/exchange", post(federation_routes::exchange))
        .route("/v1/introspect", post(admin_routes::introspect))
        .route(
            "/v1/admin/api-keys",
            get(admin_routes::list_api_keys).post(admin_routes::create_api_key),
        )
        .route(
            "/v1/admin/api-keys/{id}",
            delete(admin_routes::revoke_api_key),
        )
        .route("/v1/admin/roles", get(admin_routes::list_roles))
        .route(
            "/v1/admin/roles/{name}",
            put(admin_routes::put_role).delete(admin_routes::delete_role),
        )
        .route("/v1/admin/webhooks", get(admin_routes::list_webhooks))
        .route(
            "/v1/admin/webhooks/{name}",
            put(admin_routes::put_webhook).delete(admin_routes::delete_webhook),
        )
        .route(
            "/v1/admin/webhooks/{name}/secret",
            post(admin_routes::rotate_webhook_secret),
        )
        .route(
            "/v1/admin/connections",
            get(federation_routes::list_connections),
        )
        .route(
            "/v1/admin/connections/{name}",
            put(federation_routes::put_connection).delete(federation_routes::delete_connection),
        )
        .route("/v1/admin/users", get(admin_routes::list_users))
        .route(
            "/v1/admin/users/{id}",
            get(admin_routes::get_user).delete(admin_routes::delete_user),
        )
        .route("/v1/admin/users/{id}/suspend", post(admin_routes::suspend))
        .route(
            "/v1/admin/users/{id}/reactivate",
            post(admin_routes::reactivate),
        )
        .route(
            "/v1/admin/users/{id}/roles/{role}",
            put(admin_routes::assign_role).delete(admin_routes::revoke_role),
        )
        .route(
            "/v1/admin/users/{id}/logins",
            get(admin_routes::list_logins),
        )
        .route(
            "/v1/admin/users/{id}/logins/{login_id}",
            delete(admin_routes::unbind_login),
        )
        .route("/v1/admin/users/{id}/mfa", delete(admin_routes::reset_mfa))
        .route("/v1/admin/audit", get(admin_routes::list_audit))
        .route(
            "/v1/admin/users/{id}/sessions",
            get(admin_routes::list_sessions).delete(admin_routes::revoke_sessions),
        )
        .route("/.well-known/jwks.json", get(routes::jwks))
        .route("/openapi.yaml", get(routes::openapi))
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(Arc::new(proxies)))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| -> Response {
                ApiError(Error::internal("handler panicked")).into_response()
            },
        ))
        .layer(trace::EdgeLayer)
        .with_state(app)
}
