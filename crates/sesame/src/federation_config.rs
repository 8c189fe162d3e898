//! `[federation]`: sign-in through other identity providers.

use secrecy::SecretString;
use serde::Deserialize;
use sesame_app::federation::{ConnectionSeed, FederationSettings};
use sesame_federation::ConnectionSettings;
use std::time::Duration;

/// One connection (`[[federation.connections]]`): `name` (`google`,
/// `apple`, `github`, `discord`, `wechat`, `oidc:<name>` or `oauth:<name>`),
/// `client_id`, `client_secret` (Apple: the `.p8` key in PEM), `return_to`
/// and the provider's optional settings; a key it does not know is an error.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// The connection's name: the login type of its logins.
    pub name: String,
    /// The client secret.
    pub client_secret: Option<SecretString>,
    /// Everything else.
    pub settings: ConnectionSettings,
}

impl<'de> Deserialize<'de> for ConnectionConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let object = serde_json::Map::deserialize(d)?;
        let (taken, settings) = ConnectionSettings::read_beside(object, &["name", "client_secret"])
            .map_err(D::Error::custom)?;
        let text =
            |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v.as_str()).map(str::to_owned);
        Ok(Self {
            name: text(&taken[0]).ok_or_else(|| D::Error::missing_field("name"))?,
            client_secret: text(&taken[1]).map(SecretString::from),
            settings,
        })
    }
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

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its own error type
mod tests {
    use crate::Config;

    #[test]
    fn connections_are_read_from_the_file_and_unknown_keys_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sesame.toml",
                r#"
[federation]
callback_base = "https://auth.example.com"

[[federation.connections]]
name = "github"
client_id = "Iv1.abc"
client_secret = "gh-secret"
return_to = ["https://app.example.com/signed-in"]

[[federation.connections]]
name = "oidc:acme"
client_id = "sesame"
client_secret = "acme-secret"
issuer = "https://login.acme.example"
return_to = ["https://app.example.com/signed-in"]
link_by_verified_email = true
"#,
            )?;
            let cfg = Config::load(Some("sesame.toml".as_ref())).map_err(|e| e.to_string())?;
            let settings = cfg.federation.settings();
            assert_eq!(settings.connections.len(), 2);
            assert_eq!(settings.connections[1].name, "oidc:acme");
            assert!(settings.connections[1].settings.link_by_verified_email);
            assert_eq!(
                settings.connections[1].settings.issuer.as_deref(),
                Some("https://login.acme.example")
            );
            assert_eq!(
                settings.callback_base.as_deref(),
                Some("https://auth.example.com")
            );
            jail.create_file(
                "typo.toml",
                "[[federation.connections]]\nname = \"github\"\nclient_id = \"x\"\nreturn_to = []\nlink_by_verfied_email = true\n",
            )?;
            assert!(Config::load(Some("typo.toml".as_ref())).is_err());
            Ok(())
        });
    }
}
