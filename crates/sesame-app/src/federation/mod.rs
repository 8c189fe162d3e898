//! Sign-in through other identity providers: begin (the authorization URL),
//! the callback (the provider's answer verified, a single-use login code for
//! the app) and the exchange (the app proves it began the flow with its own
//! PKCE verifier; the linking policy decides whose session it is).
//!
//! The linking policy is in [`linking`].

use crate::{App, AuthContext, ClientMeta};
use crate::{LoginView, Registered, SignedIn};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sesame_core::{Error, ErrorCode};
use sesame_credentials::{FederationFlow, StoredConnection};
use sesame_federation::{
    AuthRequest, CallbackData, Connection, ConnectionSettings, ProviderIdentity,
};
use std::sync::Arc;
use time::Duration;
use uuid::Uuid;

mod linking;

/// How long a flow waits for its callback.
const FLOW_TTL: Duration = Duration::minutes(10);
/// How long the app has to exchange its login code.
const LOGIN_CODE_TTL: Duration = Duration::seconds(60);
/// The RFC 8176-style method reference of a federated sign-in.
const AMR: &str = "fed";

/// A connection from the config file.
#[derive(Debug, Clone)]
pub struct ConnectionSeed {
    /// Its name (the login type).
    pub name: String,
    /// Its settings.
    pub settings: ConnectionSettings,
    /// The client secret (Apple: the `.p8` key).
    pub secret: Option<SecretString>,
}

/// Settings of federation.
#[derive(Debug, Clone)]
pub struct FederationSettings {
    /// Connections from the config file.
    pub connections: Vec<ConnectionSeed>,
    /// The public base URL callbacks are reached at (`…/v1/federation/{name}/callback`).
    pub callback_base: Option<String>,
    /// Timeout of each request to a provider.
    pub timeout: std::time::Duration,
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            connections: Vec::new(),
            callback_base: None,
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// `POST /v1/federation/{connection}/begin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationBegin {
    /// `sign_in` (default) or `link` (needs a recently proven session).
    pub intent: Option<String>,
    /// Where to send the person back to; one of the connection's `return_to`.
    pub return_to: String,
    /// The app's PKCE challenge: base64url SHA-256 of its verifier.
    pub app_code_challenge: String,
}

/// The answer to a begin.
#[derive(Debug, Serialize)]
pub struct FederationStarted {
    /// Where to send the person.
    pub authorization_url: String,
    /// Names the flow at the exchange.
    pub flow_id: Uuid,
    /// Seconds the flow waits for the callback.
    pub expires_in: i64,
}

/// What a callback brought (query or form).
#[derive(Debug, Default, Deserialize)]
pub struct FederationCallback {
    /// `state`.
    pub state: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// The provider's error.
    pub error: Option<String>,
    /// RFC 9207 `iss`.
    pub iss: Option<String>,
    /// Apple's `user` (form field, first sign-in only).
    pub user: Option<String>,
    /// Whatever else the provider adds.
    #[serde(flatten)]
    pub other: std::collections::HashMap<String, String>,
}

/// `POST /v1/federation/exchange`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationExchange {
    /// The flow.
    pub flow_id: Uuid,
    /// The login code the callback handed over.
    pub login_code: String,
    /// The verifier of the app's challenge.
    pub app_code_verifier: String,
}

/// What an exchange gives.
#[derive(Debug)]
pub enum Exchanged {
    /// Signed in (or the second factor to give).
    SignedIn(SignedIn),
    /// A new principal, signed in.
    Registered(Box<Registered>),
    /// The login bound to the caller; `created` false when it was already.
    Linked {
        /// The login.
        login: LoginView,
        /// Whether it is new.
        created: bool,
    },
}

fn s256(verifier: &str) -> String {
    use sha2::Digest as _;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn gone() -> Error {
    Error::problem(
        ErrorCode::InvalidState,
        "No flow waits for this: it was used, it expired, or it never was",
    )
}

fn internal(what: &'static str) -> impl Fn(serde_json::Error) -> Error {
    move |e| Error::internal_from(what, e)
}

/// Whether a PKCE value is 43–128 characters of the unreserved set.
fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl App {
    /// The relying party.
    fn federation(&self) -> &Arc<sesame_federation::Federation> {
        &self.0.federation
    }

    /// A connection by name: the config file's, else the stored ones.
    pub(crate) async fn connection(&self, name: &str) -> Result<Connection, Error> {
        let settings = &self.0.settings.federation;
        if let Some(seed) = settings.connections.iter().find(|c| c.name == name) {
            return Connection::new(name, seed.settings.clone(), seed.secret.clone(), true)
                .map_err(|(field, code)| {
                    Error::internal(format!("connection {name}: {field} {code}"))
                });
        }
        let stored = self
            .0
            .stores
            .federation
            .get_connection(name)
            .await?
            .ok_or_else(|| Error::problem(ErrorCode::NotFound, "No such connection"))?;
        self.open_connection(&stored)
    }

    pub(crate) fn open_connection(&self, stored: &StoredConnection) -> Result<Connection, Error> {
        let settings: ConnectionSettings =
            serde_json::from_value(stored.settings.clone()).map_err(internal("connection"))?;
        let secret = stored
            .secret
            .as_ref()
            .map(|s| {
                let bytes = self
                    .0
                    .master
                    .open(s, connection_context(&stored.name).as_bytes())?;
                String::from_utf8(bytes)
                    .map(SecretString::from)
                    .map_err(|e| Error::internal_from("connection secret", e))
            })
            .transpose()?;
        Connection::new(&stored.name, settings, secret, false).map_err(|(field, code)| {
            Error::internal(format!("connection {}: {field} {code}", stored.name))
        })
    }

    fn callback_url(&self, name: &str) -> String {
        let base = self
            .0
            .settings
            .federation
            .callback_base
            .as_deref()
            .unwrap_or(&self.0.settings.issuer);
        format!(
            "{}/v1/federation/{name}/callback",
            base.trim_end_matches('/')
        )
    }

    /// `POST /v1/federation/{connection}/begin`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(connection = %name))]
    pub async fn begin_federation(
        &self,
        name: &str,
        req: FederationBegin,
        auth: Option<&AuthContext>,
        meta: &ClientMeta,
    ) -> Result<FederationStarted, Error> {
        let link = match req.intent.as_deref() {
            None | Some("sign_in") => false,
            Some("link") => true,
            Some(_) => return Err(Error::field("intent", "invalid")),
        };
        if !pkce_shaped(&req.app_code_challenge) {
            return Err(Error::field("app_code_challenge", "invalid"));
        }
        let principal = if link {
            let auth = auth.ok_or_else(|| Error::code(ErrorCode::InvalidToken))?;
            self.require_recent_proof(auth).await?;
            Some(auth.principal_id)
        } else {
            None
        };
        self.limit_ip(crate::brute_force::Action::SignIn, meta)
            .await?;
        let connection = self.connection(name).await?;
        if !connection.allows_return_to(&req.return_to) {
            return Err(Error::field("return_to", "not_allowed"));
        }
        let now = self.0.clock.now();
        let id = Uuid::now_v7();
        let (state, state_hash) = crate::new_opaque_id()?;
        let (nonce, _) = crate::new_opaque_id()?;
        let (verifier, _) = crate::new_opaque_id()?;
        let redirect_uri = self.callback_url(name);
        let url = self
            .federation()
            .authorization_url(
                &connection,
                &AuthRequest {
                    state: &state,
                    nonce: &nonce,
                    pkce_verifier: &verifier,
                    redirect_uri: &redirect_uri,
                },
            )
            .await
            .map_err(|r| {
                tracing::warn!(connection = name, reason = r.reason, error = %r.message, "provider unusable");
                Error::problem(ErrorCode::Unavailable, "The identity provider cannot be reached")
            })?;
        let flow = FederationFlow {
            id,
            connection: name.to_owned(),
            state_hash,
            intent: if link { "link" } else { "sign_in" }.into(),
            principal_id: principal,
            nonce,
            pkce_verifier: self
                .0
                .master
                .current()
                .seal(verifier.as_bytes(), id.as_bytes())?,
            app_challenge: req.app_code_challenge,
            return_to: req.return_to,
            login_code_hash: None,
            login_code_expires_at: None,
            result: None,
            created_at: now,
            expires_at: now + FLOW_TTL,
            consumed_at: None,
            exchanged_at: None,
        };
        self.0.stores.federation.insert_flow(&flow).await?;
        Ok(FederationStarted {
            authorization_url: url,
            flow_id: id,
            expires_in: FLOW_TTL.whole_seconds(),
        })
    }

    /// `GET|POST /v1/federation/{connection}/callback`: the URL to send the
    /// browser to (the app's `return_to` with `flow_id` and `login_code`, or
    /// with `error`). A state no flow waits for is `400 invalid_state`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(connection = %name))]
    pub async fn federation_callback(
        &self,
        name: &str,
        cb: FederationCallback,
    ) -> Result<String, Error> {
        let state = cb.state.as_deref().ok_or_else(gone)?;
        let now = self.0.clock.now();
        let flow = self
            .0
            .stores
            .federation
            .claim_flow(name, &crate::hash_opaque_id(state), now)
            .await?
            .ok_or_else(gone)?;
        let back = |pairs: &[(&str, &str)]| -> Result<String, Error> {
            let mut url = url::Url::parse(&flow.return_to)
                .map_err(|e| Error::internal_from("return_to", e))?;
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("flow_id", &flow.id.to_string());
                for (k, v) in pairs {
                    query.append_pair(k, v);
                }
            }
            Ok(url.to_string())
        };
        if let Some(error) = &cb.error {
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            tracing::info!(connection = name, provider_error = %error, "the provider refused");
            return back(&[("error", "provider_error"), ("error_description", &error)]);
        }
        let connection = self.connection(name).await?;
        if let (Some(iss), Some(expected)) = (&cb.iss, connection.issuer())
            && *iss != expected
        {
            return back(&[
                ("error", "provider_error"),
                ("error_description", "issuer_mismatch"),
            ]);
        }
        let Some(code) = cb.code.as_deref() else {
            return back(&[
                ("error", "provider_error"),
                ("error_description", "no_code"),
            ]);
        };
        let verifier = self
            .0
            .master
            .open(&flow.pkce_verifier, flow.id.as_bytes())?;
        let verifier = String::from_utf8(verifier).map_err(|e| Error::internal_from("pkce", e))?;
        let data = CallbackData {
            code,
            pkce_verifier: &verifier,
            nonce: &flow.nonce,
            redirect_uri: &self.callback_url(name),
            apple_user: cb.user.as_deref(),
        };
        let identity = match self.federation().complete(&connection, &data).await {
            Ok(identity) => identity,
            Err(r) => {
                tracing::warn!(connection = name, code = r.code, reason = r.reason, error = %r.message, "provider answer refused");
                crate::observe::federation_refused(r.code, r.reason);
                return back(&[("error", r.code), ("error_description", r.reason)]);
            }
        };
        let (login_code, login_code_hash) = crate::new_opaque_id()?;
        let sealed = self.0.master.current().seal(
            &serde_json::to_vec(&identity).map_err(internal("identity"))?,
            &result_context(flow.id),
        )?;
        self.0
            .stores
            .federation
            .finish_flow(flow.id, &login_code_hash, now + LOGIN_CODE_TTL, &sealed)
            .await?;
        back(&[("login_code", &login_code)])
    }

    /// `POST /v1/federation/exchange`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn federation_exchange(
        &self,
        req: FederationExchange,
        meta: &ClientMeta,
    ) -> Result<Exchanged, Error> {
        let now = self.0.clock.now();
        let flow = self
            .0
            .stores
            .federation
            .take_flow(req.flow_id, &crate::hash_opaque_id(&req.login_code), now)
            .await?
            .ok_or_else(gone)?;
        let expected = flow.app_challenge.as_bytes();
        let given = s256(&req.app_code_verifier);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected)) {
            return Err(Error::problem(
                ErrorCode::InvalidCode,
                "The app's code verifier does not match the flow's challenge",
            ));
        }
        let sealed = flow.result.as_ref().ok_or_else(gone)?;
        let identity: ProviderIdentity =
            serde_json::from_slice(&self.0.master.open(sealed, &result_context(flow.id))?)
                .map_err(internal("identity"))?;
        let connection = self.connection(&flow.connection).await?;
        if let Some(principal) = flow.principal_id {
            crate::record_principal(principal);
            return self
                .link_identity(principal, &connection, &identity, meta, now)
                .await;
        }
        let result = self
            .federated_sign_in(&connection, &identity, meta, now)
            .await;
        crate::observe::sign_in(
            "federated",
            &result,
            matches!(result, Ok(Exchanged::SignedIn(SignedIn::Mfa(_)))),
        );
        result
    }
}

/// The sealing context of a connection's client secret.
pub(crate) fn connection_context(name: &str) -> String {
    format!("connection:{name}")
}

fn result_context(flow: Uuid) -> Vec<u8> {
    [flow.as_bytes().as_slice(), b"/result"].concat()
}
