//! Connections: one per identity provider, each a login type. Presets know
//! their provider's endpoints; generic OpenID Connect finds them by
//! discovery, plain OAuth 2 is told them and how to read its user endpoint.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sesame_credentials::LoginType;

/// Which protocol and quirks a connection follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Google (OpenID Connect).
    Google,
    /// Sign in with Apple (OpenID Connect, `form_post`, an ES256 client secret).
    Apple,
    /// GitHub (OAuth 2; the subject is the numeric user id).
    Github,
    /// Discord (OAuth 2; the subject is the user's snowflake id).
    Discord,
    /// WeChat (its own OAuth 2 dialect; `unionid` or `openid`).
    Wechat,
    /// Any OpenID Connect provider, by discovery (`oidc:<name>`).
    Oidc,
    /// Any OAuth 2 provider with a user endpoint (`oauth:<name>`).
    Oauth2,
}

impl Provider {
    /// The provider a connection name (its login type) stands for, when the
    /// name is well formed: a preset's name, `oidc:<slug>` or `oauth:<slug>`
    /// (slug: 1–40 of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit).
    pub fn of_name(name: &str) -> Option<Self> {
        if !sesame_credentials::login::is_federated_name(name) {
            return None;
        }
        Some(match name {
            "google" => Self::Google,
            "apple" => Self::Apple,
            "github" => Self::Github,
            "discord" => Self::Discord,
            "wechat" => Self::Wechat,
            _ if name.starts_with("oidc:") => Self::Oidc,
            _ => Self::Oauth2,
        })
    }

    /// Whether the provider speaks OpenID Connect (an ID token to verify).
    pub fn is_oidc(self) -> bool {
        matches!(self, Self::Google | Self::Apple | Self::Oidc)
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    /// HTTP Basic (`client_secret_basic`).
    #[default]
    Basic,
    /// In the form body (`client_secret_post`).
    Post,
}

/// A connection's settings, secrets apart. Endpoint fields left empty take
/// the preset's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    /// The client id registered at the provider.
    pub client_id: String,
    /// Scopes asked for; empty: the preset's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Where the calling app may be sent back to (exact matches).
    #[serde(default)]
    pub return_to: Vec<String>,
    /// Link to an existing account whose e-mail login is verified and equal
    /// to the provider's verified e-mail (off: `409 link_required`).
    #[serde(default)]
    pub link_by_verified_email: bool,
    /// Keep the provider's tokens (sealed).
    #[serde(default)]
    pub store_tokens: bool,
    /// Allow the provider's endpoints on private or loopback addresses.
    #[serde(default)]
    pub allow_private_network: bool,
    /// Accept HS256 ID tokens, keyed with the client secret.
    #[serde(default)]
    pub allow_hs256: bool,
    /// Client authentication at the token endpoint.
    #[serde(default)]
    pub token_auth: TokenAuth,
    /// OpenID Connect issuer (discovery at `/.well-known/openid-configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// OAuth 2 authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// OAuth 2 token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// The user endpoint (GitHub `/user`, Discord `/users/@me`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_url: Option<String>,
    /// GitHub's `/user/emails`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails_url: Option<String>,
    /// Plain OAuth 2: the user endpoint's field holding the stable subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_field: Option<String>,
    /// Plain OAuth 2: its e-mail field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_field: Option<String>,
    /// Plain OAuth 2: its boolean "e-mail verified" field (absent: never verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified_field: Option<String>,
    /// Plain OAuth 2: its display-name field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_field: Option<String>,
    /// WeChat: the subject is `unionid` (an Open Platform account) rather than `openid`.
    #[serde(default)]
    pub wechat_unionid: bool,
    /// Apple: the team id that signs the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_team_id: Option<String>,
    /// Apple: the key id of the `.p8` key (the connection's secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_key_id: Option<String>,
}

impl ConnectionSettings {
    /// Reads settings that sit in one object beside other keys (a name, a
    /// secret): takes `beside` out, then reads the rest strictly, so that a
    /// misspelt setting is an error rather than ignored (which `flatten`
    /// would do).
    pub fn read_beside(
        mut object: serde_json::Map<String, serde_json::Value>,
        beside: &[&str],
    ) -> Result<(Vec<Option<serde_json::Value>>, Self), serde_json::Error> {
        let taken = beside.iter().map(|k| object.remove(*k)).collect();
        let settings = serde_json::from_value(serde_json::Value::Object(object))?;
        Ok((taken, settings))
    }
}

/// A connection ready to use.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Its name, which is the login type of the logins it makes.
    pub name: String,
    /// The provider.
    pub provider: Provider,
    /// Settings.
    pub settings: ConnectionSettings,
    /// The client secret (Apple: the `.p8` private key in PEM).
    pub secret: Option<SecretString>,
    /// Whether it was configured in the file (not editable at run time).
    pub from_config: bool,
    /// The login type of the logins it makes, from its name.
    login_type: LoginType,
}

/// A setting that cannot be used: the field and the code.
pub type Invalid = (&'static str, &'static str);

impl Connection {
    /// Checks the name and that the provider has what it needs.
    pub fn new(
        name: &str,
        settings: ConnectionSettings,
        secret: Option<SecretString>,
        from_config: bool,
    ) -> Result<Self, Invalid> {
        let provider = Provider::of_name(name).ok_or(("name", "invalid"))?;
        check(provider, &settings, secret.is_some())?;
        // Interned only once valid: the connection is about to be used or stored.
        let login_type = LoginType::parse(name).ok_or(("name", "invalid"))?;
        Ok(Self {
            name: name.to_owned(),
            provider,
            settings,
            secret,
            from_config,
            login_type,
        })
    }

    /// The login type of the logins this connection makes (its name).
    pub fn login_type(&self) -> LoginType {
        self.login_type
    }

    /// The scopes to ask for.
    pub fn scopes(&self) -> Vec<String> {
        if !self.settings.scopes.is_empty() {
            return self.settings.scopes.clone();
        }
        let preset: &[&str] = match self.provider {
            Provider::Google | Provider::Oidc => &["openid", "email", "profile"],
            Provider::Apple => &["openid", "name", "email"],
            Provider::Github => &["read:user", "user:email"],
            Provider::Discord => &["identify", "email"],
            Provider::Wechat => &["snsapi_login"],
            Provider::Oauth2 => &[],
        };
        preset.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The issuer of an OpenID Connect connection.
    pub fn issuer(&self) -> Option<String> {
        let preset = match self.provider {
            Provider::Google => "https://accounts.google.com",
            Provider::Apple => "https://appleid.apple.com",
            _ => "",
        };
        self.settings
            .issuer
            .clone()
            .or_else(|| (!preset.is_empty()).then(|| preset.to_owned()))
    }

    /// An endpoint: the setting, else the preset's.
    pub fn endpoint(&self, which: Endpoint) -> Option<String> {
        let s = &self.settings;
        let set = match which {
            Endpoint::Authorization => &s.authorization_url,
            Endpoint::Token => &s.token_url,
            Endpoint::User => &s.userinfo_url,
            Endpoint::Emails => &s.emails_url,
        };
        if let Some(url) = set {
            return Some(url.clone());
        }
        let preset = match (self.provider, which) {
            (Provider::Github, Endpoint::Authorization) => {
                "https://github.com/login/oauth/authorize"
            }
            (Provider::Github, Endpoint::Token) => "https://github.com/login/oauth/access_token",
            (Provider::Github, Endpoint::User) => "https://api.github.com/user",
            (Provider::Github, Endpoint::Emails) => "https://api.github.com/user/emails",
            (Provider::Discord, Endpoint::Authorization) => "https://discord.com/oauth2/authorize",
            (Provider::Discord, Endpoint::Token) => "https://discord.com/api/oauth2/token",
            (Provider::Discord, Endpoint::User) => "https://discord.com/api/users/@me",
            (Provider::Wechat, Endpoint::Authorization) => {
                "https://open.weixin.qq.com/connect/qrconnect"
            }
            (Provider::Wechat, Endpoint::Token) => {
                "https://api.weixin.qq.com/sns/oauth2/access_token"
            }
            _ => return None,
        };
        Some(preset.to_owned())
    }

    /// Whether `url` is one of the allowed `return_to` URLs.
    pub fn allows_return_to(&self, url: &str) -> bool {
        self.settings.return_to.iter().any(|u| u == url)
    }
}

/// The OAuth 2 endpoints a connection may name.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    /// Authorization.
    Authorization,
    /// Token.
    Token,
    /// The user.
    User,
    /// The user's e-mails (GitHub).
    Emails,
}

fn is_http_url(s: &str) -> bool {
    reqwest::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// Checks that `provider` has what it needs in `settings`.
fn check(provider: Provider, s: &ConnectionSettings, has_secret: bool) -> Result<(), Invalid> {
    if s.client_id.is_empty() || s.client_id.len() > 512 {
        return Err(("client_id", "invalid"));
    }
    if s.return_to.is_empty() || s.return_to.len() > 50 {
        return Err(("return_to", "required"));
    }
    if s.return_to.iter().any(|u| !is_http_url(u)) {
        return Err(("return_to", "invalid"));
    }
    if s.scopes.len() > 30 || s.scopes.iter().any(|x| x.is_empty() || x.contains(' ')) {
        return Err(("scopes", "invalid"));
    }
    let urls = [
        ("issuer", &s.issuer),
        ("authorization_url", &s.authorization_url),
        ("token_url", &s.token_url),
        ("userinfo_url", &s.userinfo_url),
        ("emails_url", &s.emails_url),
    ];
    for (field, url) in urls {
        if url.as_deref().is_some_and(|u| !is_http_url(u)) {
            return Err((field, "invalid"));
        }
    }
    match provider {
        Provider::Oidc if s.issuer.is_none() => return Err(("issuer", "required")),
        Provider::Oauth2 => {
            for (field, url) in [
                ("authorization_url", &s.authorization_url),
                ("token_url", &s.token_url),
                ("userinfo_url", &s.userinfo_url),
            ] {
                if url.is_none() {
                    return Err((field, "required"));
                }
            }
        }
        Provider::Apple if s.apple_team_id.is_none() => {
            return Err(("apple_team_id", "required"));
        }
        Provider::Apple if s.apple_key_id.is_none() => {
            return Err(("apple_key_id", "required"));
        }
        _ => {}
    }
    if !has_secret && provider != Provider::Google {
        // Every provider here authenticates its clients; Google's
        // installed-app clients are the one exception.
        return Err(("client_secret", "required"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings() -> ConnectionSettings {
        ConnectionSettings {
            client_id: "client".into(),
            return_to: vec!["https://app.example/done".into()],
            ..Default::default()
        }
    }

    #[test]
    fn settings_beside_other_keys_are_read_strictly() {
        let object = serde_json::json!({
            "name": "github", "client_id": "c", "return_to": ["https://a.example/"],
        });
        let serde_json::Value::Object(map) = object else {
            unreachable!()
        };
        let (taken, settings) = ConnectionSettings::read_beside(map.clone(), &["name"]).unwrap();
        assert_eq!(taken, vec![Some(serde_json::json!("github"))]);
        assert_eq!(settings.client_id, "c");
        let mut typo = map;
        typo.insert("link_by_verfied_email".into(), true.into());
        assert!(ConnectionSettings::read_beside(typo, &["name"]).is_err());
    }

    #[test]
    fn names_choose_the_provider() {
        assert_eq!(Provider::of_name("google"), Some(Provider::Google));
        assert_eq!(Provider::of_name("oidc:acme-corp"), Some(Provider::Oidc));
        assert_eq!(Provider::of_name("oauth:gitea"), Some(Provider::Oauth2));
        for bad in [
            "oidc:",
            "oidc:Acme",
            "oidc:-x",
            "saml:acme",
            "facebook",
            "oidc:a b",
        ] {
            assert_eq!(Provider::of_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_provider_needs_what_it_uses() {
        let secret = || Some(SecretString::from("s"));
        assert_eq!(
            Connection::new("oidc:acme", settings(), secret(), false).unwrap_err(),
            ("issuer", "required")
        );
        assert_eq!(
            Connection::new("github", settings(), None, false).unwrap_err(),
            ("client_secret", "required")
        );
        let none = ConnectionSettings {
            return_to: vec![],
            ..settings()
        };
        assert_eq!(
            Connection::new("github", none, secret(), false).unwrap_err(),
            ("return_to", "required")
        );
        let github = Connection::new("github", settings(), secret(), false).unwrap();
        assert_eq!(
            github.endpoint(Endpoint::Emails).as_deref(),
            Some("https://api.github.com/user/emails")
        );
        assert!(github.allows_return_to("https://app.example/done"));
        assert!(!github.allows_return_to("https://app.example/done/"));
        let google = Connection::new("google", settings(), None, false).unwrap();
        assert_eq!(
            google.issuer().as_deref(),
            Some("https://accounts.google.com")
        );
        assert_eq!(google.scopes(), ["openid", "email", "profile"]);
    }
}
