//! Sign-in through other identity providers (Sesame as the relying party):
//! connections and their presets, the authorization URL with `state`, PKCE
//! S256 and `nonce`, and turning a callback's code into a verified identity.
//! Every request to a provider goes through one outbound client: no
//! redirects, timeouts, no private targets unless the connection allows them.

mod apple;
pub mod connection;
mod oauth;
mod oidc;

pub use connection::{Connection, ConnectionSettings, Endpoint, Provider, TokenAuth};

use sesame_core::Clock;
use sesame_outbound::OutboundClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the provider says about the person, once verified.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProviderIdentity {
    /// The stable subject: the login's identifier.
    pub subject: String,
    /// An e-mail address, when the provider gave one.
    pub email: Option<String>,
    /// Whether the provider says it verified that e-mail.
    pub email_verified: bool,
    /// A display name.
    pub name: Option<String>,
    /// The provider's tokens, when the connection keeps them.
    pub tokens: Option<serde_json::Value>,
}

/// Why a provider's answer was refused: `code` goes back to the app as
/// `?error=`, `reason` as `error_description`, `message` to the log.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// `provider_unavailable`, `provider_error` or `id_token_rejected`.
    pub code: &'static str,
    /// A stable slug: `issuer`, `audience`, `nonce`, `expired`, `signature`, …
    pub reason: &'static str,
    /// What happened, for the log.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(code: &'static str, reason: &'static str, message: impl ToString) -> Self {
        Self {
            code,
            reason,
            message: message.to_string(),
        }
    }

    pub(crate) fn unavailable(message: impl ToString) -> Self {
        Self::new("provider_unavailable", "unreachable", message)
    }

    pub(crate) fn provider(reason: &'static str, message: impl ToString) -> Self {
        Self::new("provider_error", reason, message)
    }

    pub(crate) fn id_token(reason: &'static str, message: impl ToString) -> Self {
        Self::new("id_token_rejected", reason, message)
    }
}

/// What the authorization URL carries.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    /// `state` (random, 32 bytes).
    pub state: &'a str,
    /// `nonce` (OpenID Connect).
    pub nonce: &'a str,
    /// The PKCE verifier whose S256 challenge is sent.
    pub pkce_verifier: &'a str,
    /// This connection's callback URL.
    pub redirect_uri: &'a str,
}

/// What the callback brought, and what the flow kept.
#[derive(Debug, Clone)]
pub struct CallbackData<'a> {
    /// The authorization code.
    pub code: &'a str,
    /// The flow's PKCE verifier.
    pub pkce_verifier: &'a str,
    /// The flow's nonce.
    pub nonce: &'a str,
    /// This connection's callback URL.
    pub redirect_uri: &'a str,
    /// Apple's `user` form field (the name, on the first sign-in only).
    pub apple_user: Option<&'a str>,
}

/// The relying party: outbound clients and what it caches of each issuer.
pub struct Federation {
    strict: OutboundClient,
    open: OutboundClient,
    clock: Arc<dyn Clock>,
    issuers: Mutex<HashMap<String, Arc<oidc::Issuer>>>,
}

impl Federation {
    /// A relying party whose requests time out after `timeout`.
    pub fn new(timeout: Duration, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let agent = concat!("sesame/", env!("CARGO_PKG_VERSION"));
        Ok(Self {
            strict: OutboundClient::new(agent, timeout, false)?,
            open: OutboundClient::new(agent, timeout, true)?,
            clock,
            issuers: Mutex::default(),
        })
    }

    /// The client a connection's requests go through.
    pub(crate) fn client(&self, c: &Connection) -> &OutboundClient {
        if c.settings.allow_private_network {
            &self.open
        } else {
            &self.strict
        }
    }

    /// Checks a provider URL against the connection's network rule.
    pub(crate) fn checked(&self, c: &Connection, url: &str) -> Result<reqwest::Url, Refusal> {
        self.client(c)
            .check_url(url)
            .map_err(|e| Refusal::new("provider_unavailable", "address", e))
    }

    /// The URL to send the person to.
    pub async fn authorization_url(
        &self,
        c: &Connection,
        req: &AuthRequest<'_>,
    ) -> Result<String, Refusal> {
        match c.provider {
            Provider::Google | Provider::Apple | Provider::Oidc => {
                oidc::authorization_url(self, c, req).await
            }
            Provider::Wechat => oauth::wechat_authorization_url(self, c, req),
            Provider::Github | Provider::Discord | Provider::Oauth2 => {
                oauth::authorization_url(self, c, req)
            }
        }
    }

    /// Redeems the callback's code and verifies what comes back.
    pub async fn complete(
        &self,
        c: &Connection,
        data: &CallbackData<'_>,
    ) -> Result<ProviderIdentity, Refusal> {
        let mut identity = match c.provider {
            Provider::Google | Provider::Apple | Provider::Oidc => {
                oidc::complete(self, c, data).await?
            }
            Provider::Wechat => oauth::wechat_complete(self, c, data).await?,
            Provider::Github | Provider::Discord | Provider::Oauth2 => {
                oauth::complete(self, c, data).await?
            }
        };
        if c.provider == Provider::Apple
            && identity.name.is_none()
            && let Some(user) = data.apple_user
        {
            identity.name = apple::name_of(user);
        }
        if !c.settings.store_tokens {
            identity.tokens = None;
        }
        if identity.subject.is_empty() || identity.subject.len() > 255 {
            return Err(Refusal::provider("subject", "no usable subject"));
        }
        Ok(identity)
    }

    /// The client secret to send: the configured one, or Apple's minted JWT.
    pub(crate) fn client_secret(&self, c: &Connection) -> Result<Option<String>, Refusal> {
        use secrecy::ExposeSecret;
        let Some(secret) = &c.secret else {
            return Ok(None);
        };
        if c.provider == Provider::Apple {
            let issuer = c.issuer().unwrap_or_default();
            return apple::client_secret(c, secret.expose_secret(), &issuer, self.clock.now())
                .map(Some);
        }
        Ok(Some(secret.expose_secret().to_owned()))
    }
}
