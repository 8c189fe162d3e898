//! The relying party, and its check of a WebAuthn assertion (WebAuthn L3
//! §7.2, "Verifying an Authentication Assertion") against a stored
//! credential.
//!
//! `webauthn-rs` makes the options of every ceremony and checks
//! registrations; assertions are checked here, with the same rules as
//! `webauthn-rs` 0.6 and its own parsers of the client data and the
//! authenticator data, so that the signature of the common key type (ECDSA
//! P-256) is checked with `ring`: about a fifth of the CPU time of
//! `webauthn-rs`'s check, and the largest share of a passkey sign-in's.
//! Other key types (P-384, RSA) are checked by `webauthn-rs`'s own key
//! code. The tests run both checks over the same assertions.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    COSEKeyType, Credential, ECDSACurve, PublicKeyCredential, Url, Webauthn,
};
use webauthn_rs_core::internals::AuthenticatorData;
use webauthn_rs_core::proto::origin::origins_match;
use webauthn_rs_core::proto::{Authentication, CollectedClientData, UserVerificationPolicy};

/// The relying party: `webauthn-rs` for options and registrations, and what
/// an assertion is checked against.
pub(crate) struct RelyingParty {
    pub(crate) webauthn: Webauthn,
    /// SHA-256 of the relying-party id: an assertion's authenticator data
    /// begins with it.
    rp_id_hash: [u8; 32],
    /// Origins allowed to run ceremonies, exactly (no subdomain, same port).
    origins: Vec<Url>,
}

/// What an assertion's ceremony keeps server side until `finish`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AssertionState {
    /// The challenge sent to the authenticator (base64url).
    pub(crate) challenge: String,
}

impl AssertionState {
    pub(crate) fn new(challenge: &[u8]) -> Self {
        Self {
            challenge: crate::webauthn::b64(challenge),
        }
    }
}

/// What a verified assertion told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Asserted {
    pub(crate) counter: u32,
    pub(crate) user_verified: bool,
    pub(crate) backup_eligible: bool,
    pub(crate) backup_state: bool,
}

/// Why an assertion was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// It does not verify; the reason is for the log.
    Invalid(&'static str),
    /// It verifies, but the signature counter did not move forward: the
    /// authenticator may have been cloned.
    CounterRegressed,
}

impl Asserted {
    /// The stored credential after this use: a counter that moved forward,
    /// the backup flags the authenticator reports now.
    pub(crate) fn apply(&self, credential: &mut Credential) {
        credential.counter = credential.counter.max(self.counter);
        credential.backup_state = self.backup_state;
        credential.backup_eligible |= self.backup_eligible;
    }
}

impl RelyingParty {
    pub(crate) fn new(webauthn: Webauthn, rp_id: &str, origins: Vec<Url>) -> Self {
        Self {
            webauthn,
            rp_id_hash: Sha256::digest(rp_id.as_bytes()).into(),
            origins,
        }
    }

    /// Checks `response` to the ceremony whose challenge is `state`'s, made
    /// with `credential`: client data, relying party, flags, signature and
    /// counter, in the order of WebAuthn L3 §7.2.
    pub(crate) fn check_assertion(
        &self,
        response: &PublicKeyCredential,
        state: &AssertionState,
        policy: UserVerificationPolicy,
        credential: &Credential,
    ) -> Result<Asserted, Refused> {
        use Refused::Invalid;
        if response.raw_id != credential.cred_id {
            return Err(Invalid("another credential"));
        }
        let raw = &response.response;
        let client: CollectedClientData =
            serde_json::from_slice(&raw.client_data_json).map_err(|_| Invalid("client data"))?;
        if client.type_ != "webauthn.get" {
            return Err(Invalid("client data type"));
        }
        if crate::webauthn::b64(&client.challenge) != state.challenge {
            return Err(Invalid("challenge"));
        }
        if !self
            .origins
            .iter()
            .any(|allowed| origins_match(false, false, &client.origin, allowed))
        {
            return Err(Invalid("origin"));
        }
        // No ceremony is run in a frame of another site.
        if client.cross_origin == Some(true) {
            return Err(Invalid("cross-origin"));
        }
        let data = AuthenticatorData::<Authentication>::try_from(raw.authenticator_data.as_slice())
            .map_err(|_| Invalid("authenticator data"))?;
        // It begins with the hash of the relying-party id.
        if raw.authenticator_data.get(..32) != Some(&self.rp_id_hash[..]) {
            return Err(Invalid("relying party"));
        }
        if !data.user_present {
            return Err(Invalid("user not present"));
        }
        let verification_required = policy == UserVerificationPolicy::Required
            || credential.registration_policy == UserVerificationPolicy::Required
            || (credential.registration_policy == UserVerificationPolicy::Preferred
                && credential.user_verified);
        if verification_required && !data.user_verified {
            return Err(Invalid("user not verified"));
        }
        // A credential does not become (or stop being) one that can be
        // backed up; one that cannot be is not backed up.
        if credential.backup_eligible != data.backup_eligible {
            return Err(Invalid("backup eligibility changed"));
        }
        if data.backup_state && !credential.backup_eligible {
            return Err(Invalid("backed up but not eligible"));
        }
        let mut signed = Vec::with_capacity(raw.authenticator_data.len() + 32);
        signed.extend_from_slice(&raw.authenticator_data);
        signed.extend_from_slice(&Sha256::digest(&raw.client_data_json));
        if !verify_signature(credential, &raw.signature, &signed) {
            return Err(Invalid("signature"));
        }
        // A counter of 0 on both sides is an authenticator that does not
        // count (synced passkeys).
        if (data.counter > 0 || credential.counter > 0) && data.counter <= credential.counter {
            return Err(Refused::CounterRegressed);
        }
        Ok(Asserted {
            counter: data.counter,
            user_verified: data.user_verified,
            backup_eligible: data.backup_eligible,
            backup_state: data.backup_state,
        })
    }
}

/// Whether `signature` (DER) signs `signed` with `credential`'s key.
fn verify_signature(credential: &Credential, signature: &[u8], signed: &[u8]) -> bool {
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    match &credential.cred.key {
        COSEKeyType::EC_EC2(key) if key.curve == ECDSACurve::SECP256R1 => {
            if key.x.len() != 32 || key.y.len() != 32 {
                return false;
            }
            let mut point = [4u8; 65];
            point[1..33].copy_from_slice(&key.x);
            point[33..].copy_from_slice(&key.y);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(signed, signature)
                .is_ok()
        }
        _ => credential
            .cred
            .verify_signature(signature, signed)
            .unwrap_or(false),
    }
}

#[cfg(test)]
#[path = "assertion_tests.rs"]
mod tests;
