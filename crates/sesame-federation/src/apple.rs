//! Sign in with Apple's quirks: the client secret is an ES256 JWT signed with
//! the team's `.p8` key (minted here, valid five minutes), and the person's
//! name arrives once, in the first callback's `user` form field.

use crate::{Connection, Refusal};
use time::OffsetDateTime;

/// A client secret JWT for `c`, whose audience is Apple's issuer.
pub(crate) fn client_secret(
    c: &Connection,
    pem: &str,
    issuer: &str,
    now: OffsetDateTime,
) -> Result<String, Refusal> {
    let team = c.settings.apple_team_id.clone().unwrap_or_default();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = c.settings.apple_key_id.clone();
    let iat = now.unix_timestamp();
    let claims = serde_json::json!({
        "iss": team,
        "iat": iat,
        "exp": iat + 300,
        "aud": issuer,
        "sub": c.settings.client_id,
    });
    let key = jsonwebtoken::EncodingKey::from_ec_der(&pkcs8_der(pem)?);
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| Refusal::provider("client_secret", format!("the Apple key: {e}")))
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` armour (Apple's `.p8`).
fn pkcs8_der(pem: &str) -> Result<Vec<u8>, Refusal> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| Refusal::provider("client_secret", format!("the Apple key is not PEM: {e}")))
}

/// The name in Apple's `user` field: `{"name": {"firstName", "lastName"}, …}`.
pub(crate) fn name_of(user: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(user).ok()?;
    let name = value.get("name")?;
    let part = |k: &str| name.get(k).and_then(|v| v.as_str()).map(str::trim);
    let full = [part("firstName"), part("lastName")]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!full.is_empty() && full.len() <= 200).then_some(full)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_client_secret_is_an_es256_jwt_for_apple() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let key = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let settings = crate::ConnectionSettings {
            client_id: "com.example.web".into(),
            return_to: vec!["https://app.example/done".into()],
            apple_team_id: Some("TEAM123456".into()),
            apple_key_id: Some("KEY1234567".into()),
            ..Default::default()
        };
        let c = Connection::new("apple", settings, Some("x".into()), false).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let jwt = client_secret(&c, &pem, "https://appleid.apple.com", now).unwrap();
        let point = key.public_key().to_encoded_point(false);
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let decoding = jsonwebtoken::DecodingKey::from_ec_components(
            &b64(point.x().unwrap()),
            &b64(point.y().unwrap()),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.validate_exp = false;
        validation.set_audience(&["https://appleid.apple.com"]);
        validation.set_issuer(&["TEAM123456"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &decoding, &validation).unwrap();
        assert_eq!(data.header.kid.as_deref(), Some("KEY1234567"));
        assert_eq!(data.claims["sub"], "com.example.web");
        assert_eq!(
            data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap(),
            300
        );
    }

    #[test]
    fn the_name_comes_from_the_user_field() {
        let user = r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@example.test"}"#;
        assert_eq!(name_of(user).as_deref(), Some("Ada Lovelace"));
        assert_eq!(name_of(r#"{"email":"a@example.test"}"#), None);
        assert_eq!(name_of("not json"), None);
    }
}
