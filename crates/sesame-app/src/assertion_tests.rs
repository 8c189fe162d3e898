//! The assertion check against `webauthn-rs`'s own, over the same
//! assertions: each accepted by both or refused by both, with the same
//! counter and flags, and a counter gone backwards told apart by both.

use super::*;
use crate::webauthn::{WebauthnSettings, b64};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair,
};
use serde_json::json;
use webauthn_rs::prelude::{
    AuthenticationResult, COSEAlgorithm, COSEEC2Key, COSEKey, Passkey, SecurityKey, WebauthnError,
};
use webauthn_rs_core::proto::{AttestationFormat, ParsedAttestation, RegisteredExtensions};

const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://example.com";
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;

fn relying_party() -> RelyingParty {
    WebauthnSettings {
        rp_id: RP_ID.into(),
        rp_name: "Example".into(),
        origins: vec![ORIGIN.into(), "https://login.example.com".into()],
    }
    .build()
    .expect("relying party")
}

/// A software authenticator: one ECDSA key.
struct Authenticator {
    key: EcdsaKeyPair,
    curve: ECDSACurve,
    id: Vec<u8>,
}

impl Authenticator {
    fn new(algorithm: &'static EcdsaSigningAlgorithm, curve: ECDSACurve, id: u8) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &rng).expect("key");
        Self {
            key,
            curve,
            id: vec![id; 16],
        }
    }

    fn p256(id: u8) -> Self {
        Self::new(&ECDSA_P256_SHA256_ASN1_SIGNING, ECDSACurve::SECP256R1, id)
    }

    /// The credential as registration stored it.
    fn credential(&self, counter: u32, eligible: bool) -> Credential {
        let point = self.key.public_key().as_ref();
        let half = (point.len() - 1) / 2;
        let type_ = match self.curve {
            ECDSACurve::SECP256R1 => COSEAlgorithm::ES256,
            _ => COSEAlgorithm::ES384,
        };
        Credential {
            cred_id: self.id.clone(),
            cred: COSEKey {
                type_,
                key: COSEKeyType::EC_EC2(COSEEC2Key {
                    curve: self.curve.clone(),
                    x: point[1..=half].to_vec(),
                    y: point[half + 1..].to_vec(),
                }),
            },
            counter,
            transports: None,
            user_verified: true,
            backup_eligible: eligible,
            backup_state: false,
            registration_policy: UserVerificationPolicy::Required,
            extensions: RegisteredExtensions::none(),
            attestation: ParsedAttestation::default(),
            attestation_format: AttestationFormat::None,
        }
    }

    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        self.key.sign(&rng, bytes).expect("sign").as_ref().to_vec()
    }
}

/// What an assertion carries, and what the test changes of it.
#[derive(Clone)]
struct Case {
    type_: &'static str,
    /// `None`: the ceremony's challenge.
    challenge: Option<Vec<u8>>,
    origin: &'static str,
    cross_origin: Option<bool>,
    rp_id: &'static str,
    flags: u8,
    counter: u32,
    /// The counter and backup eligibility stored at registration.
    stored_counter: u32,
    eligible: bool,
    /// Replaces the client data, unsigned JSON or not.
    client_data: Option<Vec<u8>>,
    /// Cuts the authenticator data to this length.
    cut: Option<usize>,
    /// Signs other bytes than the right ones.
    sign_other: bool,
    raw_id: Option<Vec<u8>>,
    /// A security key's ceremony (user verification preferred) instead of
    /// a passkey sign-in's (required).
    security_key: bool,
    /// The stored credential's user-verification policy at registration,
    /// and whether the user was verified then.
    registered: (UserVerificationPolicy, bool),
}

impl Default for Case {
    fn default() -> Self {
        Self {
            type_: "webauthn.get",
            challenge: None,
            origin: ORIGIN,
            cross_origin: None,
            rp_id: RP_ID,
            flags: UP | UV,
            counter: 1,
            stored_counter: 0,
            eligible: false,
            client_data: None,
            cut: None,
            sign_other: false,
            raw_id: None,
            security_key: false,
            registered: (UserVerificationPolicy::Required, true),
        }
    }
}

impl Case {
    /// The default case changed by `change`.
    fn with(change: impl FnOnce(&mut Case)) -> Self {
        let mut case = Self::default();
        change(&mut case);
        case
    }

    fn response(&self, key: &Authenticator, challenge: &[u8]) -> PublicKeyCredential {
        let mut client = json!({
            "type": self.type_,
            "challenge": b64(self.challenge.as_deref().unwrap_or(challenge)),
            "origin": self.origin,
        });
        if let Some(cross) = self.cross_origin {
            client["crossOrigin"] = json!(cross);
        }
        let client = self
            .client_data
            .clone()
            .unwrap_or_else(|| serde_json::to_vec(&client).expect("json"));
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        data.push(self.flags);
        data.extend_from_slice(&self.counter.to_be_bytes());
        let mut signed = data.clone();
        signed.extend_from_slice(&Sha256::digest(&client));
        if self.sign_other {
            signed[40] ^= 1;
        }
        let signature = key.sign(&signed);
        if let Some(cut) = self.cut {
            data.truncate(cut);
        }
        let raw_id = self.raw_id.clone().unwrap_or_else(|| key.id.clone());
        serde_json::from_value(json!({
            "id": b64(&raw_id),
            "rawId": b64(&raw_id),
            "response": {
                "authenticatorData": b64(&data),
                "clientDataJSON": b64(&client),
                "signature": b64(&signature),
                "userHandle": b64(&[7; 16]),
            },
            "type": "public-key",
        }))
        .expect("credential")
    }
}

type Outcome = Result<Asserted, Refused>;

/// `webauthn-rs`'s check of a response to the ceremony it began.
type LibraryCheck<'a> =
    Box<dyn Fn(&PublicKeyCredential) -> Result<AuthenticationResult, WebauthnError> + 'a>;

/// The case's assertion, signed by `signer`, checked here and by
/// `webauthn-rs` against `key`'s stored credential.
fn both(
    rp: &RelyingParty,
    key: &Authenticator,
    signer: &Authenticator,
    case: &Case,
) -> (Outcome, Outcome) {
    let mut credential = key.credential(case.stored_counter, case.eligible);
    (credential.registration_policy, credential.user_verified) = case.registered;
    let (challenge, policy, theirs): (_, _, LibraryCheck) = if case.security_key {
        let key = SecurityKey::from(credential.clone());
        let (options, state) = rp
            .webauthn
            .start_securitykey_authentication(&[key])
            .expect("begin");
        let check =
            move |r: &PublicKeyCredential| rp.webauthn.finish_securitykey_authentication(r, &state);
        let policy = UserVerificationPolicy::Preferred;
        (options.public_key.challenge, policy, Box::new(check))
    } else {
        let (options, state) = rp
            .webauthn
            .start_discoverable_authentication()
            .expect("begin");
        let passkey = Passkey::from(credential.clone());
        let check = move |r: &PublicKeyCredential| {
            rp.webauthn
                .finish_discoverable_authentication_v2(r, state.clone(), &passkey)
        };
        let policy = UserVerificationPolicy::Required;
        (options.public_key.challenge, policy, Box::new(check))
    };
    let response = case.response(signer, &challenge);
    let ours = rp.check_assertion(
        &response,
        &AssertionState::new(&challenge),
        policy,
        &credential,
    );
    let theirs = match theirs(&response) {
        Ok(r) => Ok(Asserted {
            counter: r.counter(),
            user_verified: r.user_verified(),
            backup_eligible: r.backup_eligible(),
            backup_state: r.backup_state(),
        }),
        Err(WebauthnError::CredentialPossibleCompromise) => Err(Refused::CounterRegressed),
        Err(_) => Err(Refused::Invalid("webauthn-rs")),
    };
    (ours, theirs)
}

/// Both checks agree on `case`; answers what this one said.
fn agreed(key: &Authenticator, case: Case) -> Outcome {
    let (ours, theirs) = both(&relying_party(), key, key, &case);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(Refused::CounterRegressed), Err(Refused::CounterRegressed)) => {}
        (Err(Refused::Invalid(_)), Err(Refused::Invalid(_))) => {}
        _ => panic!("the checks disagree: here {ours:?}, webauthn-rs {theirs:?}"),
    }
    ours
}

fn refused(key: &Authenticator, case: Case, why: &'static str) {
    assert_eq!(agreed(key, case), Err(Refused::Invalid(why)));
}

#[test]
fn a_good_assertion_passes_both_with_the_same_counter_and_flags() {
    let key = Authenticator::p256(1);
    let asserted = agreed(&key, Case::default()).expect("verified");
    assert_eq!(
        asserted,
        Asserted {
            counter: 1,
            user_verified: true,
            backup_eligible: false,
            backup_state: false
        }
    );
    // The second allowed origin, and a synced passkey that reports 0 and is
    // backed up.
    let case = Case {
        origin: "https://login.example.com",
        counter: 0,
        eligible: true,
        flags: UP | UV | BE | BS,
        cross_origin: Some(false),
        ..Case::default()
    };
    let asserted = agreed(&key, case).expect("verified");
    assert_eq!((asserted.counter, asserted.backup_state), (0, true));
}

#[test]
fn counters_that_do_not_move_forward_are_told_apart_by_both() {
    let key = Authenticator::p256(2);
    for (counter, stored) in [(7, 7), (3, 9), (0, 9)] {
        let case = Case {
            counter,
            stored_counter: stored,
            ..Case::default()
        };
        assert_eq!(agreed(&key, case), Err(Refused::CounterRegressed));
    }
    let case = Case {
        counter: 10,
        stored_counter: 9,
        ..Case::default()
    };
    assert_eq!(agreed(&key, case).map(|a| a.counter), Ok(10));
}

#[test]
fn client_data_that_is_not_this_ceremonys_is_refused_by_both() {
    let key = Authenticator::p256(3);
    refused(
        &key,
        Case::with(|c| c.type_ = "webauthn.create"),
        "client data type",
    );
    refused(
        &key,
        Case::with(|c| c.challenge = Some(vec![1; 32])),
        "challenge",
    );
    for origin in [
        "https://evil.example",
        "https://sub.example.com",
        "http://example.com",
        "https://example.com:8443",
    ] {
        let case = Case {
            origin,
            ..Case::default()
        };
        refused(&key, case, "origin");
    }
    let case = Case {
        client_data: Some(b"not json".to_vec()),
        ..Case::default()
    };
    refused(&key, case, "client data");
}

#[test]
fn authenticator_data_for_another_party_or_without_the_user_is_refused_by_both() {
    let key = Authenticator::p256(4);
    refused(
        &key,
        Case::with(|c| c.rp_id = "evil.example"),
        "relying party",
    );
    refused(&key, Case::with(|c| c.flags = UV), "user not present");
    refused(&key, Case::with(|c| c.flags = UP), "user not verified");
    refused(
        &key,
        Case::with(|c| c.flags = UP | UV | BE),
        "backup eligibility changed",
    );
    refused(
        &key,
        Case::with(|c| c.flags = UP | UV | BS),
        "backed up but not eligible",
    );
    refused(&key, Case::with(|c| c.cut = Some(20)), "authenticator data");
    refused(&key, Case::with(|c| c.sign_other = true), "signature");
    refused(
        &key,
        Case::with(|c| c.raw_id = Some(vec![9; 16])),
        "another credential",
    );
    let eligible = Case {
        eligible: true,
        flags: UP | UV,
        ..Case::default()
    };
    refused(&key, eligible, "backup eligibility changed");
}

#[test]
fn a_signature_by_another_key_is_refused_by_both() {
    let key = Authenticator::p256(5);
    let impostor = Authenticator::p256(5);
    let (ours, theirs) = both(&relying_party(), &key, &impostor, &Case::default());
    assert_eq!(ours, Err(Refused::Invalid("signature")));
    assert!(theirs.is_err());
}

#[test]
fn user_verification_follows_the_ceremony_and_the_registration_on_both() {
    let key = Authenticator::p256(9);
    let preferred = UserVerificationPolicy::Preferred;
    let discouraged = UserVerificationPolicy::Discouraged_DO_NOT_USE;
    // A security key asks for verification, and needs it only when it was
    // registered verified or with verification required.
    for (registered, verified, flags, passes) in [
        (preferred, false, UP, true),
        (preferred, false, UP | UV, true),
        (preferred, true, UP, false),
        (preferred, true, UP | UV, true),
        (discouraged, false, UP, true),
        (UserVerificationPolicy::Required, false, UP, false),
    ] {
        let case = Case {
            security_key: true,
            registered: (registered, verified),
            flags,
            ..Case::default()
        };
        let outcome = agreed(&key, case);
        assert_eq!(outcome.is_ok(), passes, "{registered:?} {verified} {flags}");
        if let Ok(asserted) = outcome {
            assert_eq!(asserted.user_verified, flags & UV != 0);
        }
    }
    // A passkey sign-in needs it whatever the registration said.
    let case = Case {
        registered: (discouraged, false),
        flags: UP,
        ..Case::default()
    };
    refused(&key, case, "user not verified");
}

#[test]
fn other_key_types_are_checked_by_webauthn_rs_key_code() {
    let key = Authenticator::new(&ECDSA_P384_SHA384_ASN1_SIGNING, ECDSACurve::SECP384R1, 6);
    assert_eq!(agreed(&key, Case::default()).map(|a| a.counter), Ok(1));
    let case = Case {
        sign_other: true,
        ..Case::default()
    };
    refused(&key, case, "signature");
}

#[test]
fn a_ceremony_run_in_a_frame_of_another_site_is_refused() {
    // Stricter than webauthn-rs 0.6, which reads `crossOrigin` only at
    // registration.
    let key = Authenticator::p256(7);
    let case = Case {
        cross_origin: Some(true),
        ..Case::default()
    };
    let (ours, theirs) = both(&relying_party(), &key, &key, &case);
    assert_eq!(ours, Err(Refused::Invalid("cross-origin")));
    assert!(theirs.is_ok());
}

#[test]
fn a_use_moves_the_stored_counter_forward_and_takes_the_backup_flags() {
    let key = Authenticator::p256(8);
    let mut credential = key.credential(5, true);
    Asserted {
        counter: 9,
        user_verified: true,
        backup_eligible: true,
        backup_state: true,
    }
    .apply(&mut credential);
    assert_eq!(
        (
            credential.counter,
            credential.backup_eligible,
            credential.backup_state
        ),
        (9, true, true)
    );
    let mut passkey = Passkey::from(key.credential(0, false));
    let before = passkey.clone();
    let mut stored = Credential::from(passkey.clone());
    let zero = Asserted {
        counter: 0,
        user_verified: true,
        backup_eligible: false,
        backup_state: false,
    };
    zero.apply(&mut stored);
    passkey = Passkey::from(stored);
    assert_eq!(
        serde_json::to_value(&passkey).unwrap(),
        serde_json::to_value(&before).unwrap()
    );
}
