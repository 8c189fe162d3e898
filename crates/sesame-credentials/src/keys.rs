//! Ed25519 signing keys: generated here, sealed under the master key, published
//! as a JWKS, and held in memory as a key ring for signing and verifying tokens.

use crate::seal::{MasterKey, MasterKeys, Sealed};
use crate::tokens::AccessClaims;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::json;
use sesame_core::{Error, ErrorCode};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use time::OffsetDateTime;

/// The `typ` of every access token (RFC 9068).
const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// A signing key as stored: the private half sealed.
#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// Always `EdDSA` for now.
    pub alg: String,
    /// The sealed 32-byte seed.
    pub private_key_sealed: Sealed,
    /// The public key as a JWK.
    pub public_jwk: serde_json::Value,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it started signing; `None` while only published.
    pub activated_at: Option<OffsetDateTime>,
    /// When it stopped being published.
    pub retired_at: Option<OffsetDateTime>,
}

impl SigningKeyRecord {
    /// Generates a new Ed25519 key sealed under `master`.
    pub fn generate(master: &MasterKey, now: OffsetDateTime) -> Result<Self, Error> {
        let seed: [u8; 32] = crate::random_bytes()?;
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let x = B64.encode(public);
        // RFC 7638: the thumbprint of the required members in lexicographic order.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = B64.encode(Sha256::digest(canonical.as_bytes()));
        let private_key_sealed = master.seal(&seed, kid.as_bytes())?;
        let public_jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"
        });
        Ok(Self {
            kid,
            alg: "EdDSA".into(),
            private_key_sealed,
            public_jwk,
            created_at: now,
            activated_at: Some(now),
            retired_at: None,
        })
    }
}

/// The key that signs, expanded once (jsonwebtoken would derive its public
/// half again for each token), and the JWS header of its tokens, encoded.
struct Signer {
    kid: String,
    key: SigningKey,
    header: String,
}

impl Signer {
    fn new(kid: &str, key: SigningKey) -> Result<Self, Error> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        Ok(Self {
            kid: kid.to_owned(),
            key,
            header: encode_part(&header)?,
        })
    }

    /// A JWS in compact serialisation (RFC 7515 §7.1): the encoded header
    /// and claims, and the signature over both.
    fn sign(&self, claims: &AccessClaims) -> Result<String, Error> {
        use ed25519_dalek::Signer as _;
        let mut token = format!("{}.{}", self.header, encode_part(claims)?);
        let signature = self.key.sign(token.as_bytes()).to_bytes();
        token.push('.');
        token.push_str(&B64.encode(signature));
        Ok(token)
    }
}

fn encode_part<T: serde::Serialize>(part: &T) -> Result<String, Error> {
    serde_json::to_vec(part)
        .map(|json| B64.encode(json))
        .map_err(|e| Error::internal_from("a token part did not serialise", e))
}

/// The keys in memory: the one that signs, every one that verifies, and the JWKS.
pub struct KeyRing {
    signing: Option<Signer>,
    verifying: HashMap<String, DecodingKey>,
    jwks: Vec<u8>,
    validation: Validation,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("signing", &self.signing.as_ref().map(|s| &s.kid))
            .field("verifying", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// Builds the ring from stored records as of `now`: keys not yet retired
    /// verify and are published (including keys that do not sign yet); of the
    /// keys activated by `now`, the most recent one signs.
    pub fn from_records(
        records: &[SigningKeyRecord],
        master: &MasterKeys,
        issuer: &str,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        let mut signer: Option<&SigningKeyRecord> = None;
        for rec in records
            .iter()
            .filter(|r| r.retired_at.is_none_or(|at| at > now))
        {
            let x = rec
                .public_jwk
                .get("x")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let key = DecodingKey::from_ed_components(x)
                .map_err(|e| Error::internal(format!("bad public key {}: {e}", rec.kid)))?;
            verifying.insert(rec.kid.clone(), key);
            published.push(rec.public_jwk.clone());
            if rec.activated_at.is_some_and(|at| at <= now)
                && signer.is_none_or(|s| rec.activated_at > s.activated_at)
            {
                signer = Some(rec);
            }
        }
        let signing = match signer {
            Some(rec) => {
                let seed = master.open(&rec.private_key_sealed, rec.kid.as_bytes())?;
                let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
                    Error::internal(format!("signing key {} is not 32 bytes", rec.kid))
                })?;
                Some(Signer::new(&rec.kid, SigningKey::from_bytes(&seed))?)
            }
            None => None,
        };
        let jwks = serde_json::to_vec(&json!({ "keys": published }))
            .map_err(|e| Error::internal_from("the JWKS did not serialise", e))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Expiry is checked against the injected clock instead.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[issuer]);
        // The audience is the deployment's setting; the application checks it.
        validation.validate_aud = false;
        Ok(Self {
            signing,
            verifying,
            jwks,
            validation,
        })
    }

    /// The id of the key that signs, if any.
    pub fn signing_kid(&self) -> Option<&str> {
        self.signing.as_ref().map(|s| s.kid.as_str())
    }

    /// The JWKS document, serialised.
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    /// Signs access-token claims as a JWT with the current key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, Error> {
        let signer = self
            .signing
            .as_ref()
            .ok_or_else(|| Error::internal("no active signing key"))?;
        signer.sign(claims)
    }

    /// Verifies a JWT's signature and issuer, and that it is not expired at `now`.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<AccessClaims, Error> {
        let invalid = || Error::code(ErrorCode::InvalidToken);
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        // Only access tokens (RFC 9068), never another JWT signed by a key of ours.
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(invalid());
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or_else(invalid)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|_| invalid())?;
        if data.claims.exp <= now.unix_timestamp() {
            return Err(Error::problem(
                ErrorCode::InvalidToken,
                "The access token has expired",
            ));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn claims(now: OffsetDateTime) -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            sub: Uuid::now_v7(),
            kind: "user".into(),
            sid: Uuid::now_v7(),
            aal: "aal1".into(),
            amr: vec!["pwd".into()],
            iat: now.unix_timestamp(),
            exp: now.unix_timestamp() + 900,
            jti: Uuid::now_v7(),
            roles: vec!["support".into()],
            aud: Some("https://api.example".into()),
        }
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let master = MasterKey::generate().unwrap();
        let now = sesame_core::Clock::now(&sesame_core::SystemClock);
        let rec = SigningKeyRecord::generate(&master, now).unwrap();
        let ring = KeyRing::from_records(
            std::slice::from_ref(&rec),
            &master.clone().into(),
            "https://auth.example",
            now,
        )
        .unwrap();
        let c = claims(now);
        let token = ring.sign(&c).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(rec.kid.as_str()));
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(ring.verify(&token, now).unwrap(), c);
        // jsonwebtoken makes the same token, byte for byte (Ed25519 is
        // deterministic).
        let signer = ring.signing.as_ref().unwrap();
        let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&signer.key).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
        let mut same = Header::new(Algorithm::EdDSA);
        same.kid = Some(signer.kid.clone());
        same.typ = Some(ACCESS_TOKEN_TYPE.into());
        assert_eq!(jsonwebtoken::encode(&same, &c, &key).unwrap(), token);
        // The same claims under the same key, typed as another kind of JWT.
        let mut other = same;
        other.typ = Some("JWT".into());
        let foreign_type = jsonwebtoken::encode(&other, &c, &key).unwrap();
        assert!(ring.verify(&foreign_type, now).is_err());
        // Expired at exp, refused after.
        assert!(
            ring.verify(&token, now + time::Duration::seconds(900))
                .is_err()
        );
    }

    #[test]
    fn refuses_tampered_foreign_and_wrong_issuer_tokens() {
        let master = MasterKey::generate().unwrap();
        let now = sesame_core::Clock::now(&sesame_core::SystemClock);
        let rec = SigningKeyRecord::generate(&master, now).unwrap();
        let ring = KeyRing::from_records(
            std::slice::from_ref(&rec),
            &master.clone().into(),
            "https://auth.example",
            now,
        )
        .unwrap();
        let token = ring.sign(&claims(now)).unwrap();
        let mut tampered = token.clone().into_bytes();
        let mid = token.find('.').unwrap() + 3;
        tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
        assert!(
            ring.verify(&String::from_utf8(tampered).unwrap(), now)
                .is_err()
        );

        let other = KeyRing::from_records(
            &[SigningKeyRecord::generate(&master, now).unwrap()],
            &master.clone().into(),
            "https://auth.example",
            now,
        )
        .unwrap();
        assert!(other.verify(&token, now).is_err());

        let wrong_iss = KeyRing::from_records(
            std::slice::from_ref(&rec),
            &master.clone().into(),
            "https://evil.example",
            now,
        )
        .unwrap();
        assert!(wrong_iss.verify(&token, now).is_err());
        assert!(ring.verify("not.a.jwt", now).is_err());
    }

    #[test]
    fn jwks_publishes_the_public_key_only() {
        let master = MasterKey::generate().unwrap();
        let now = sesame_core::Clock::now(&sesame_core::SystemClock);
        let rec = SigningKeyRecord::generate(&master, now).unwrap();
        let ring =
            KeyRing::from_records(std::slice::from_ref(&rec), &master.clone().into(), "i", now)
                .unwrap();
        let jwks: serde_json::Value = serde_json::from_slice(ring.jwks()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["kid"], rec.kid.as_str());
        assert!(key.get("d").is_none());
        assert_eq!(B64.decode(key["x"].as_str().unwrap()).unwrap().len(), 32);
    }

    #[test]
    fn a_rotated_key_is_published_before_it_signs_and_the_old_one_until_it_retires() {
        let master = MasterKey::generate().unwrap();
        let keys: MasterKeys = master.clone().into();
        let t0 = sesame_core::Clock::now(&sesame_core::SystemClock);
        let mut old = SigningKeyRecord::generate(&master, t0).unwrap();
        let mut new = SigningKeyRecord::generate(&master, t0).unwrap();
        let activation = t0 + time::Duration::minutes(10);
        new.activated_at = Some(activation);
        old.retired_at = Some(activation + time::Duration::minutes(15));
        let records = [old.clone(), new.clone()];
        let kids = |ring: &KeyRing| {
            let jwks: serde_json::Value = serde_json::from_slice(ring.jwks()).unwrap();
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let before = KeyRing::from_records(&records, &keys, "https://auth.example", t0).unwrap();
        assert_eq!(before.signing_kid(), Some(old.kid.as_str()));
        assert_eq!(kids(&before), vec![old.kid.clone(), new.kid.clone()]);
        let old_token = before.sign(&claims(t0)).unwrap();

        let after =
            KeyRing::from_records(&records, &keys, "https://auth.example", activation).unwrap();
        assert_eq!(after.signing_kid(), Some(new.kid.as_str()));
        assert_eq!(kids(&after), vec![old.kid.clone(), new.kid.clone()]);
        assert!(after.verify(&old_token, t0).is_ok());

        let retired = KeyRing::from_records(
            &records,
            &keys,
            "https://auth.example",
            activation + time::Duration::minutes(15),
        )
        .unwrap();
        assert_eq!(kids(&retired), vec![new.kid.clone()]);
        assert!(retired.verify(&old_token, t0).is_err());
    }
}
