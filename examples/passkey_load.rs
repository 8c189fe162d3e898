//! Load client for `bench/passkeys.sh`: passwordless sign-ins with passkeys,
//! each one `POST /v1/sessions/passkey/begin` then `…/finish` with an
//! assertion signed here, as an authenticator would sign it (ES256, user
//! present and verified, counter 0 like a synced passkey). It signs with
//! `ring`, whose P-256 is several times cheaper than `p256`'s, so that the
//! client takes less of the two cores it shares with the server.
//!
//! Usage: passkey_load BASE_URL STATE_DIR CONNECTIONS SECONDS RP_ID ORIGIN
//!
//! STATE_DIR holds one JSON file per registered passkey, as
//! `tests/support/authenticator.py` writes them (`key` in PEM, `user_handle`
//! and `credential_id` in base64url); connection `i` signs in with passkey
//! `i` modulo their number. Prints one line:
//! `RESULT rps=… requests=… errors=… p50_ms=… p99_ms=…` (a request being one
//! whole sign-in, both calls).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench tool fails loudly

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Passkey {
    key: EcdsaKeyPair,
    user_handle: String,
    credential_id: String,
}

fn load(dir: &str) -> Vec<Passkey> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("state dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let state: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let handle = URL_SAFE
                .decode(state["user_handle"].as_str().unwrap())
                .unwrap();
            let key = SigningKey::from_pkcs8_pem(state["key"].as_str().unwrap()).unwrap();
            let public = key.verifying_key().to_encoded_point(false);
            let key = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &key.to_bytes(),
                public.as_bytes(),
                &ring::rand::SystemRandom::new(),
            )
            .unwrap();
            Passkey {
                key,
                user_handle: URL_SAFE_NO_PAD.encode(handle),
                credential_id: state["credential_id"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

/// The `credential` of a finish call: an assertion of `challenge`.
fn assertion(passkey: &Passkey, challenge: &str, rp_id: &str, origin: &str) -> Value {
    let client_data =
        format!(r#"{{"type":"webauthn.get","challenge":"{challenge}","origin":"{origin}"}}"#);
    let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
    auth_data.push(0x05); // user present, user verified
    auth_data.extend_from_slice(&0u32.to_be_bytes());
    let mut signed = auth_data.clone();
    signed.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
    let signature = passkey
        .key
        .sign(&ring::rand::SystemRandom::new(), &signed)
        .unwrap();
    json!({
        "id": passkey.credential_id,
        "rawId": passkey.credential_id,
        "type": "public-key",
        "response": {
            "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
            "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data.as_bytes()),
            "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
            "userHandle": passkey.user_handle,
        },
        "extensions": {},
    })
}

async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    passkey: &Passkey,
    rp_id: &str,
    origin: &str,
) -> bool {
    let Ok(begin) = client
        .post(format!("{base}/v1/sessions/passkey/begin"))
        .json(&json!({}))
        .send()
        .await
    else {
        return false;
    };
    let Ok(begin) = begin.json::<Value>().await else {
        return false;
    };
    let Some(challenge) = begin["options"]["publicKey"]["challenge"].as_str() else {
        return false;
    };
    let body = json!({
        "ceremony_id": begin["ceremony_id"],
        "credential": assertion(passkey, challenge, rp_id, origin),
    });
    match client
        .post(format!("{base}/v1/sessions/passkey/finish"))
        .json(&body)
        .send()
        .await
    {
        Ok(resp) => {
            let ok = resp.status().is_success();
            let _ = resp.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, dir, conns, secs, rp_id, origin] = &args[..] else {
        panic!("usage: passkey_load BASE_URL STATE_DIR CONNECTIONS SECONDS RP_ID ORIGIN");
    };
    let passkeys = Arc::new(load(dir));
    assert!(!passkeys.is_empty(), "no passkeys in {dir}");
    let conns: usize = conns.parse().unwrap();
    let duration = Duration::from_secs(secs.parse().unwrap());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conns)
        .build()
        .unwrap();
    let (base, rp_id, origin) = (
        Arc::new(base.clone()),
        Arc::new(rp_id.clone()),
        Arc::new(origin.clone()),
    );
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let (client, passkeys) = (client.clone(), passkeys.clone());
            let (base, rp_id, origin) = (base.clone(), rp_id.clone(), origin.clone());
            tokio::spawn(async move {
                let passkey = &passkeys[i % passkeys.len()];
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while start.elapsed() < duration {
                    let t = Instant::now();
                    if sign_in(&client, &base, passkey, &rp_id, &origin).await {
                        latencies.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "RESULT rps={:.1} requests={} errors={} p50_ms={:.2} p99_ms={:.2}",
        latencies.len() as f64 / elapsed,
        latencies.len(),
        errors,
        pct(0.50),
        pct(0.99)
    );
}
