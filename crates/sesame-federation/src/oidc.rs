//! OpenID Connect: discovery, the authorization URL, the code exchange and
//! every check an ID token must pass (OIDC Core 3.1.3.7). Keys are cached per
//! issuer and fetched again once on an unknown `kid`, at most once a minute.

use crate::{
    AuthRequest, CallbackData, Connection, Federation, Provider, ProviderIdentity, Refusal,
};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier,
    CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse as _,
};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// How long discovery is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::hours(1);
/// The least time between two key fetches for unknown `kid`s.
const REFETCH_INTERVAL: Duration = Duration::minutes(1);
/// Leeway on `exp`.
const EXPIRY_LEEWAY: Duration = Duration::seconds(60);
/// The oldest `iat` accepted.
const MAX_TOKEN_AGE: Duration = Duration::minutes(10);

/// What is cached of an issuer.
#[derive(Clone)]
pub(crate) struct Issuer {
    metadata: CoreProviderMetadata,
    fetched_at: OffsetDateTime,
    keys_fetched_at: Option<OffsetDateTime>,
}

fn cache_key(c: &Connection, issuer: &str) -> String {
    format!("{}|{issuer}", c.settings.allow_private_network)
}

async fn issuer(fed: &Federation, c: &Connection) -> Result<Issuer, Refusal> {
    let url = c
        .issuer()
        .ok_or_else(|| Refusal::provider("configuration", "no issuer"))?;
    let now = fed.clock.now();
    let key = cache_key(c, &url);
    let cached = fed
        .issuers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    if let Some(found) = cached
        && now - found.fetched_at < DISCOVERY_TTL
    {
        return Ok((*found).clone());
    }
    fed.checked(c, &url)?;
    let issuer_url = IssuerUrl::new(url).map_err(|e| Refusal::provider("configuration", e))?;
    let metadata = CoreProviderMetadata::discover_async(issuer_url, fed.client(c).http())
        .await
        .map_err(|e| Refusal::unavailable(format!("discovery: {e}")))?;
    // Discovery may name any endpoint: each is held to the same network rule.
    fed.checked(c, metadata.jwks_uri().as_str())?;
    if let Some(token) = metadata.token_endpoint() {
        fed.checked(c, token.as_str())?;
    }
    let found = Issuer {
        metadata,
        fetched_at: now,
        keys_fetched_at: None,
    };
    fed.issuers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::new(found.clone()));
    Ok(found)
}

/// Fetches the keys again for an unknown `kid`, unless that was done less
/// than a minute ago; `None` then.
async fn refetch_keys(
    fed: &Federation,
    c: &Connection,
    issuer: &Issuer,
) -> Result<Option<Issuer>, Refusal> {
    let now = fed.clock.now();
    let key = cache_key(c, issuer.metadata.issuer().as_str());
    {
        let mut cache = fed.issuers.lock().unwrap_or_else(|e| e.into_inner());
        let current = cache.get(&key).cloned();
        let last = current.as_ref().and_then(|i| i.keys_fetched_at);
        if last.is_some_and(|t| now - t < REFETCH_INTERVAL) {
            return Ok(None);
        }
        // Claimed before fetching, so that concurrent sign-ins fetch once.
        let mut claimed = current.map_or_else(|| issuer.clone(), |i| (*i).clone());
        claimed.keys_fetched_at = Some(now);
        cache.insert(key.clone(), Arc::new(claimed));
    }
    let jwks = CoreJsonWebKeySet::fetch_async(issuer.metadata.jwks_uri(), fed.client(c).http())
        .await
        .map_err(|e| Refusal::unavailable(format!("keys: {e}")))?;
    tracing::info!(issuer = %issuer.metadata.issuer().as_str(), "fetched the keys again for an unknown kid");
    let refreshed = Issuer {
        metadata: issuer.metadata.clone().set_jwks(jwks),
        fetched_at: issuer.fetched_at,
        keys_fetched_at: Some(now),
    };
    fed.issuers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::new(refreshed.clone()));
    Ok(Some(refreshed))
}

fn redirect(uri: &str) -> Result<RedirectUrl, Refusal> {
    RedirectUrl::new(uri.to_owned()).map_err(|e| Refusal::provider("configuration", e))
}

pub(crate) async fn authorization_url(
    fed: &Federation,
    c: &Connection,
    req: &AuthRequest<'_>,
) -> Result<String, Refusal> {
    let issuer = issuer(fed, c).await?;
    let client = CoreClient::from_provider_metadata(
        issuer.metadata,
        ClientId::new(c.settings.client_id.clone()),
        None,
    )
    .set_redirect_uri(redirect(req.redirect_uri)?);
    let verifier = PkceCodeVerifier::new(req.pkce_verifier.to_owned());
    let state = req.state.to_owned();
    let nonce = req.nonce.to_owned();
    let mut auth = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        )
        .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
    for scope in c.scopes().into_iter().filter(|s| s != "openid") {
        auth = auth.add_scope(Scope::new(scope));
    }
    if c.provider == Provider::Apple {
        // Apple posts the callback (with the name) when a name or e-mail is asked for.
        auth = auth.add_extra_param("response_mode", "form_post");
    }
    let (url, _, _) = auth.url();
    Ok(url.to_string())
}

fn to_chrono(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

/// The algorithms accepted: discovery's list ∩ {RS256, PS256, ES256, EdDSA},
/// plus HS256 (keyed with the client secret) only where configured.
fn verifier<'a>(
    fed: &Federation,
    c: &Connection,
    issuer: &Issuer,
    secret: Option<&str>,
) -> CoreIdTokenVerifier<'a> {
    use CoreJwsSigningAlgorithm as A;
    let supported = issuer.metadata.id_token_signing_alg_values_supported();
    let mut allowed: Vec<A> = [
        A::RsaSsaPkcs1V15Sha256,
        A::RsaSsaPssSha256,
        A::EcdsaP256Sha256,
        A::EdDsa,
    ]
    .into_iter()
    .filter(|a| supported.contains(a))
    .collect();
    let client_id = ClientId::new(c.settings.client_id.clone());
    let iss = issuer.metadata.issuer().clone();
    let jwks = issuer.metadata.jwks().clone();
    let verifier = match secret {
        Some(secret) if c.settings.allow_hs256 => {
            allowed.push(A::HmacSha256);
            CoreIdTokenVerifier::new_confidential_client(
                client_id,
                ClientSecret::new(secret.to_owned()),
                iss,
                jwks,
            )
        }
        _ => CoreIdTokenVerifier::new_public_client(client_id, iss, jwks),
    };
    let clock = fed.clock.clone();
    let iat_clock = fed.clock.clone();
    verifier
        .set_allowed_algs(allowed)
        .set_other_audience_verifier_fn(|_| false)
        .set_time_fn(move || to_chrono(clock.now() - EXPIRY_LEEWAY))
        .set_issue_time_verifier_fn(move |iat| {
            let now = to_chrono(iat_clock.now());
            let age = now.signed_duration_since(iat).num_seconds();
            if age > MAX_TOKEN_AGE.whole_seconds() {
                Err(format!("issued {age} s ago"))
            } else if age < -EXPIRY_LEEWAY.whole_seconds() {
                Err("issued in the future".to_owned())
            } else {
                Ok(())
            }
        })
}

fn reason_of(e: &ClaimsVerificationError) -> &'static str {
    use SignatureVerificationError as S;
    match e {
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        ClaimsVerificationError::SignatureVerification(
            S::DisallowedAlg(_) | S::NoSignature | S::UnsupportedAlg(_),
        ) => "algorithm",
        ClaimsVerificationError::SignatureVerification(S::NoMatchingKey) => "unknown_key",
        ClaimsVerificationError::SignatureVerification(_) => "signature",
        ClaimsVerificationError::Other(m) if m.contains("issue") || m.contains("issued") => {
            "issued_at"
        }
        _ => "claims",
    }
}

fn check_claims(
    verifier: &CoreIdTokenVerifier<'_>,
    token: &CoreIdToken,
    nonce: &str,
) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
    token
        .claims(verifier, &Nonce::new(nonce.to_owned()))
        .cloned()
}

pub(crate) async fn complete(
    fed: &Federation,
    c: &Connection,
    data: &CallbackData<'_>,
) -> Result<ProviderIdentity, Refusal> {
    let issuer = issuer(fed, c).await?;
    let secret = fed.client_secret(c)?;
    let mut client = CoreClient::from_provider_metadata(
        issuer.metadata.clone(),
        ClientId::new(c.settings.client_id.clone()),
        secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(redirect(data.redirect_uri)?);
    if c.settings.token_auth == crate::TokenAuth::Post || c.provider == Provider::Apple {
        client = client.set_auth_type(AuthType::RequestBody);
    }
    let response = client
        .exchange_code(AuthorizationCode::new(data.code.to_owned()))
        .map_err(|e| Refusal::provider("configuration", e))?
        .set_pkce_verifier(PkceCodeVerifier::new(data.pkce_verifier.to_owned()))
        .request_async(fed.client(c).http())
        .await
        .map_err(|e| crate::oauth::token_error(&e))?;
    let token = response
        .id_token()
        .ok_or_else(|| Refusal::id_token("missing", "no id_token in the token response"))?;
    let secret = secret.as_deref();
    let mut keys = verifier(fed, c, &issuer, secret);
    let mut checked = check_claims(&keys, token, data.nonce);
    if matches!(
        checked,
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey
        ))
    ) && let Some(refreshed) = refetch_keys(fed, c, &issuer).await?
    {
        keys = verifier(fed, c, &refreshed, secret);
        checked = check_claims(&keys, token, data.nonce);
    }
    let claims = checked.map_err(|e| Refusal::id_token(reason_of(&e), e))?;
    if let Some(azp) = claims.authorized_party()
        && azp.as_str() != c.settings.client_id
    {
        return Err(Refusal::id_token(
            "authorized_party",
            format!("azp is {}", azp.as_str()),
        ));
    }
    if let Some(expected) = claims.access_token_hash() {
        let alg = token
            .signing_alg()
            .map_err(|e| Refusal::id_token("algorithm", e))?
            .clone();
        let actual = if alg == CoreJwsSigningAlgorithm::HmacSha256 {
            use base64::Engine as _;
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(response.access_token().secret().as_bytes());
            AccessTokenHash::new(
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]),
            )
        } else {
            let key = token
                .signing_key(&keys)
                .map_err(|e| Refusal::id_token("signature", e))?;
            AccessTokenHash::from_token(response.access_token(), &alg, key)
                .map_err(|e| Refusal::id_token("at_hash", e))?
        };
        if actual != *expected {
            return Err(Refusal::id_token(
                "at_hash",
                "at_hash does not match the access token",
            ));
        }
    }
    let subject = claims.subject().as_str();
    let subject = match c.provider {
        // Enterprise subjects are unique per issuer only.
        Provider::Oidc => format!("{}#{subject}", claims.issuer().as_str()),
        _ => subject.to_owned(),
    };
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned())
        .or_else(|| {
            let given = claims.given_name().and_then(|n| n.get(None))?;
            let family = claims.family_name().and_then(|n| n.get(None));
            Some(match family {
                Some(f) => format!("{} {}", given.as_str(), f.as_str()),
                None => given.as_str().to_owned(),
            })
        });
    let tokens = serde_json::json!({
        "access_token": response.access_token().secret(),
        "refresh_token": response.refresh_token().map(|t| t.secret().clone()),
        "id_token": token.to_string(),
        "expires_in": response.expires_in().map(|d| d.as_secs()),
    });
    Ok(ProviderIdentity {
        subject,
        email: claims.email().map(|e| e.as_str().to_owned()),
        email_verified: claims.email_verified().unwrap_or(false),
        name,
        tokens: Some(tokens),
    })
}
