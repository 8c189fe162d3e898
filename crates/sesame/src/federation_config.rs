//! `[federation]`: sign-in through other identity providers.

use secrecy::SecretString;
use serde::Deserialize;
use sesame_app::federation::{ConnectionSeed, FederationSettings};
use sesame_federation::ConnectionSettings;
use std::time::Duration;

/// One connection (`[[federation.connections]]`): `name` (`google`,
/// `apple`, `github`, `discord`, `wechat`, `oidc:<name>` or `oauth:<name>`),
/// `client_id`, `client_secret` (Apple: the `.p8` key in PEM), `return_to`
/// and the provider's optional settings.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionConfig {
    /// The connection's name: the login type of its logins.
    pub name: String,
    /// The client secret.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Everything else.
    #[serde(flatten)]
    pub settings: ConnectionSettings,
}

/// Federation settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// The connections.
    pub connections: Vec<ConnectionConfig>,
    /// The public base URL of callbacks (default: `public_url`); each
    /// connection's redirect URI is `{callback_base}/v1/federation/{name}/callback`.
    pub callback_base: Option<String>,
    /// How long one request to a provider may take.
    pub timeout_secs: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            connections: Vec::new(),
            callback_base: None,
            timeout_secs: 10,
        }
    }
}

impl FederationConfig {
    /// The app's view.
    pub fn settings(&self) -> FederationSettings {
        FederationSettings {
            connections: self
                .connections
                .iter()
                .map(|c| ConnectionSeed {
                    name: c.name.clone(),
                    settings: c.settings.clone(),
                    secret: c.client_secret.clone(),
                })
                .collect(),
            callback_base: self.callback_base.clone(),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
        }
    }
}
