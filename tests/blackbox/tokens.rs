//! Tokens checked with a JWT library Sesame does not use (jwt-compact), from
//! nothing but the published JWKS.

use jwt_compact::alg::Ed25519;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, TimeOptions, UntrustedToken};
use serde::Deserialize;
use sesame_tests::TestApp;
use sha2::Sha256;

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    kind: String,
    sid: String,
    aal: String,
    jti: String,
}

#[tokio::test]
async fn access_tokens_verify_with_an_independent_library_and_the_jwks() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.content_type(), "application/jwk-set+json");
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].get("d").is_none(),
        "private part published: {}",
        keys[0]
    );

    let jwk: JsonWebKey<'_> = serde_json::from_value(keys[0].clone()).unwrap();
    // The kid is the RFC 7638 thumbprint of the key.
    let thumbprint = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        jwk.thumbprint::<Sha256>(),
    );
    assert_eq!(keys[0]["kid"], thumbprint);
    let key = ed25519_dalek::VerifyingKey::try_from(&jwk).unwrap();

    let raw = reg["access_token"].as_str().unwrap();
    let untrusted = UntrustedToken::new(raw).unwrap();
    assert_eq!(untrusted.algorithm(), "EdDSA");
    assert_eq!(
        untrusted.header().key_id.as_deref(),
        Some(thumbprint.as_str())
    );
    let token = Ed25519
        .validator::<Claims>(&key)
        .validate(&untrusted)
        .unwrap();
    let claims = token.claims();
    claims.validate_expiration(&TimeOptions::default()).unwrap();
    let iat = claims.issued_at.unwrap();
    let exp = claims.expiration.unwrap();
    assert_eq!((exp - iat).num_seconds(), 900);
    let custom = &claims.custom;
    assert_eq!(custom.iss, app.base);
    assert_eq!(custom.sub, reg["principal"]["id"].as_str().unwrap());
    assert_eq!(custom.kind, "user");
    assert_eq!(custom.sid, reg["session_id"].as_str().unwrap());
    assert_eq!(custom.aal, "aal1");
    // Each token has an id of its own, and says it is an access token.
    let jti: uuid::Uuid = custom.jti.parse().unwrap();
    assert!(!jti.is_nil());
    assert_eq!(untrusted.header().token_type.as_deref(), Some("at+jwt"));
    let again = app.sign_in("ada@example.com", sesame_tests::PASSWORD).await;
    let other = UntrustedToken::new(again.body["access_token"].as_str().unwrap()).unwrap();
    let other: jwt_compact::Token<Claims> = Ed25519.validator(&key).validate(&other).unwrap();
    assert_ne!(other.claims().custom.jti, custom.jti);

    // A flipped signature byte fails the same independent check.
    let at = raw.rfind('.').unwrap() + 10;
    let swapped = if &raw[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &raw[..at], &raw[at + 1..]);
    let untrusted = UntrustedToken::new(&tampered).unwrap();
    assert!(
        Ed25519
            .validator::<Claims>(&key)
            .validate(&untrusted)
            .is_err()
    );
}

#[tokio::test]
async fn the_signing_key_is_sealed_at_rest_and_survives_a_restart() {
    let app = TestApp::spawn().await;
    let before = app.get("/.well-known/jwks.json", None).await.body;
    let sealed = app
        .db
        .blobs("SELECT private_key_sealed FROM signing_keys")
        .await
        .remove(0);
    // 24-byte nonce, 32-byte seed, 16-byte tag: ciphertext, not a raw seed.
    assert_eq!(sealed.len(), 24 + 32 + 16);
    let master_key_id = app.db.text("SELECT master_key_id FROM signing_keys").await;
    assert_eq!(master_key_id.len(), 16);
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn responses_with_tokens_or_account_data_are_never_cached() {
    let app = TestApp::spawn().await;
    let reg = app
        .register_as("email", "ada@example.com", sesame_tests::PASSWORD)
        .await;
    assert_eq!(reg.headers["cache-control"], "no-store");
    let signed_in = app.sign_in("ada@example.com", sesame_tests::PASSWORD).await;
    assert_eq!(signed_in.headers["cache-control"], "no-store");
    let refreshed = app
        .refresh(signed_in.body["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.headers["cache-control"], "no-store");
    let me = app
        .get("/v1/me", signed_in.body["access_token"].as_str())
        .await;
    assert_eq!(me.headers["cache-control"], "no-store");
    let refused = app.sign_in("ada@example.com", "wrong").await;
    assert_eq!(refused.headers["cache-control"], "no-store");
    // The public key set may be cached by verifiers.
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_ne!(
        jwks.headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
}

#[tokio::test]
async fn a_configured_audience_is_in_every_token_and_required() {
    let app = TestApp::builder()
        .config(|c| c.token_audience = Some("https://api.example".into()))
        .spawn()
        .await;
    let reg = app.register("ada@example.com").await;
    let token = reg["access_token"].as_str().unwrap();
    let untrusted = UntrustedToken::new(token).unwrap();
    let claims: serde_json::Value = untrusted
        .deserialize_claims_unchecked::<serde_json::Value>()
        .unwrap()
        .custom;
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(app.get("/v1/me", Some(token)).await.status, 200);
    // Without the setting, tokens carry no audience.
    let plain = TestApp::spawn().await;
    let reg = plain.register("ada@example.com").await;
    let untrusted = UntrustedToken::new(reg["access_token"].as_str().unwrap()).unwrap();
    let claims: serde_json::Value = untrusted
        .deserialize_claims_unchecked::<serde_json::Value>()
        .unwrap()
        .custom;
    assert!(claims.get("aud").is_none(), "{claims}");
}
