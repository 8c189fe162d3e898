//! Plain OAuth 2 providers: GitHub, Discord and any provider with a user
//! endpoint, through the `oauth2` crate; WeChat, whose parameters are its
//! own, by hand. E-mails count as verified only where the provider says so:
//! GitHub's `/user/emails` entry that is primary and verified, Discord's
//! `verified`, a configured field for the rest, never for WeChat.

use crate::{
    AuthRequest, CallbackData, Connection, Endpoint, Federation, Provider, ProviderIdentity,
    Refusal, TokenAuth,
};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, ErrorResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse as _,
    TokenUrl,
};
use serde_json::Value;

/// A token endpoint's failure as a refusal.
pub(crate) fn token_error<RE: std::error::Error, T: ErrorResponse>(
    e: &RequestTokenError<RE, T>,
) -> Refusal {
    match e {
        RequestTokenError::ServerResponse(r) => {
            Refusal::provider("token_refused", format!("{r:?}"))
        }
        RequestTokenError::Request(r) => Refusal::unavailable(format!("token endpoint: {r}")),
        RequestTokenError::Parse(p, _) => Refusal::provider("token_response", p),
        RequestTokenError::Other(o) => Refusal::provider("token_response", o),
    }
}

fn endpoint(c: &Connection, which: Endpoint) -> Result<String, Refusal> {
    c.endpoint(which)
        .ok_or_else(|| Refusal::provider("configuration", format!("no {which:?} endpoint")))
}

fn config(e: impl ToString) -> Refusal {
    Refusal::provider("configuration", e)
}

pub(crate) fn authorization_url(
    _fed: &Federation,
    c: &Connection,
    req: &AuthRequest<'_>,
) -> Result<String, Refusal> {
    let client = BasicClient::new(ClientId::new(c.settings.client_id.clone()))
        .set_auth_uri(AuthUrl::new(endpoint(c, Endpoint::Authorization)?).map_err(config)?)
        .set_redirect_uri(RedirectUrl::new(req.redirect_uri.to_owned()).map_err(config)?);
    let verifier = PkceCodeVerifier::new(req.pkce_verifier.to_owned());
    let state = req.state.to_owned();
    let (url, _) = client
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(c.scopes().into_iter().map(Scope::new))
        .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
        .url();
    Ok(url.to_string())
}

async fn get_json(
    fed: &Federation,
    c: &Connection,
    url: &str,
    token: &str,
) -> Result<Value, Refusal> {
    let url = fed.checked(c, url)?;
    let response = fed
        .client(c)
        .http()
        .get(url)
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| Refusal::unavailable(format!("user endpoint: {e}")))?;
    if !response.status().is_success() {
        return Err(Refusal::provider(
            "userinfo",
            format!("user endpoint answered {}", response.status()),
        ));
    }
    response
        .json()
        .await
        .map_err(|e| Refusal::provider("userinfo", e))
}

/// A stable id: a string, or a number written in decimal.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(crate) async fn complete(
    fed: &Federation,
    c: &Connection,
    data: &CallbackData<'_>,
) -> Result<ProviderIdentity, Refusal> {
    let token_url = endpoint(c, Endpoint::Token)?;
    fed.checked(c, &token_url)?;
    let mut client = BasicClient::new(ClientId::new(c.settings.client_id.clone()))
        .set_token_uri(TokenUrl::new(token_url).map_err(config)?)
        .set_redirect_uri(RedirectUrl::new(data.redirect_uri.to_owned()).map_err(config)?);
    if let Some(secret) = fed.client_secret(c)? {
        client = client.set_client_secret(ClientSecret::new(secret));
    }
    if c.settings.token_auth == TokenAuth::Post {
        client = client.set_auth_type(AuthType::RequestBody);
    }
    let response = client
        .exchange_code(AuthorizationCode::new(data.code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(data.pkce_verifier.to_owned()))
        .request_async(fed.client(c).http())
        .await
        .map_err(|e| token_error(&e))?;
    let access = response.access_token().secret();
    let user = get_json(fed, c, &endpoint(c, Endpoint::User)?, access).await?;
    let tokens = serde_json::json!({
        "access_token": access,
        "refresh_token": response.refresh_token().map(|t| t.secret().clone()),
        "expires_in": response.expires_in().map(|d| d.as_secs()),
    });
    let missing = || Refusal::provider("subject", "the user endpoint named no id");
    let identity = match c.provider {
        Provider::Github => {
            let emails = get_json(fed, c, &endpoint(c, Endpoint::Emails)?, access).await?;
            let email = emails.as_array().and_then(|list| {
                list.iter()
                    .find(|e| {
                        e.get("primary").and_then(Value::as_bool) == Some(true)
                            && e.get("verified").and_then(Value::as_bool) == Some(true)
                    })
                    .and_then(|e| str_of(e, "email"))
            });
            ProviderIdentity {
                subject: id_of(user.get("id")).ok_or_else(missing)?,
                email_verified: email.is_some(),
                email,
                name: str_of(&user, "name").or_else(|| str_of(&user, "login")),
                tokens: Some(tokens),
            }
        }
        Provider::Discord => {
            let verified = user.get("verified").and_then(Value::as_bool) == Some(true);
            ProviderIdentity {
                subject: id_of(user.get("id")).ok_or_else(missing)?,
                email: str_of(&user, "email").filter(|_| verified),
                email_verified: verified && user.get("email").is_some(),
                name: str_of(&user, "global_name").or_else(|| str_of(&user, "username")),
                tokens: Some(tokens),
            }
        }
        _ => {
            let s = &c.settings;
            let field =
                |f: &Option<String>, default: &str| f.clone().unwrap_or_else(|| default.to_owned());
            let email = str_of(&user, &field(&s.email_field, "email"));
            let verified = s
                .email_verified_field
                .as_ref()
                .is_some_and(|f| user.get(f).and_then(Value::as_bool) == Some(true));
            ProviderIdentity {
                subject: id_of(user.get(field(&s.subject_field, "id"))).ok_or_else(missing)?,
                email_verified: verified && email.is_some(),
                email,
                name: str_of(&user, &field(&s.name_field, "name")),
                tokens: Some(tokens),
            }
        }
    };
    Ok(identity)
}

pub(crate) fn wechat_authorization_url(
    _fed: &Federation,
    c: &Connection,
    req: &AuthRequest<'_>,
) -> Result<String, Refusal> {
    let mut url = reqwest::Url::parse(&endpoint(c, Endpoint::Authorization)?).map_err(config)?;
    url.query_pairs_mut()
        .append_pair("appid", &c.settings.client_id)
        .append_pair("redirect_uri", req.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &c.scopes().join(","))
        .append_pair("state", req.state);
    url.set_fragment(Some("wechat_redirect"));
    Ok(url.to_string())
}

pub(crate) async fn wechat_complete(
    fed: &Federation,
    c: &Connection,
    data: &CallbackData<'_>,
) -> Result<ProviderIdentity, Refusal> {
    let mut url = fed.checked(c, &endpoint(c, Endpoint::Token)?)?;
    let secret = fed.client_secret(c)?.unwrap_or_default();
    url.query_pairs_mut()
        .append_pair("appid", &c.settings.client_id)
        .append_pair("secret", &secret)
        .append_pair("code", data.code)
        .append_pair("grant_type", "authorization_code");
    let answer: Value = fed
        .client(c)
        .http()
        .get(url)
        .send()
        .await
        .map_err(|e| Refusal::unavailable(format!("token endpoint: {e}")))?
        .json()
        .await
        .map_err(|e| Refusal::provider("token_response", e))?;
    if answer
        .get("errcode")
        .and_then(Value::as_i64)
        .is_some_and(|c| c != 0)
    {
        return Err(Refusal::provider("token_refused", answer));
    }
    let key = if c.settings.wechat_unionid {
        "unionid"
    } else {
        "openid"
    };
    let subject = str_of(&answer, key)
        .ok_or_else(|| Refusal::provider("subject", format!("no {key} in the token response")))?;
    Ok(ProviderIdentity {
        subject,
        email: None,
        email_verified: false,
        name: None,
        tokens: Some(serde_json::json!({
            "access_token": answer.get("access_token"),
            "refresh_token": answer.get("refresh_token"),
            "expires_in": answer.get("expires_in"),
        })),
    })
}
