//! `sesame keys rotate` and `sesame keys rotate-master` beside a running
//! server on the embedded store.

use crate::common::*;
use std::path::{Path, PathBuf};

#[tokio::test]
async fn a_rotated_key_is_published_first_and_the_old_one_verifies_until_its_tokens_expire() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old_key = dir.path().join("old.key");
    write_key(&old_key, &format!("{MASTER_KEY}\n"));
    let env = vec![
        ("SESAME_DATA_DIR", data.display().to_string()),
        ("SESAME_MASTER_KEY_FILE", old_key.display().to_string()),
        ("SESAME_KEY_REFRESH_SECS", "1".to_owned()),
        ("SESAME_ACCESS_TOKEN_TTL_SECS", "8".to_owned()),
    ];
    let server = start(&data, &env).await;
    let client = reqwest::Client::new();
    let first = register(&client, &server, "ada@example.com").await;
    let old_token = first["access_token"].as_str().unwrap().to_owned();
    let old_kid = kid_of(&old_token);
    assert_eq!(published(&client, &server).await, vec![old_kid.clone()]);

    let (ok, text) = run(&["keys", "rotate", "--publish-secs", "3"], &env);
    assert!(ok, "{text}");
    let new_kid = text
        .strip_prefix("new key ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();

    // Published before it signs: both keys in the JWKS, tokens still from the old one.
    eventually(3, "the new key is published", || async {
        published(&client, &server).await.contains(&new_kid)
    })
    .await;
    let sign_in = || async {
        let (status, body) = call(
            client
                .post(format!("{}/v1/sessions", server.base))
                .json(&register_body("ada@example.com")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        kid_of(&sign_in().await),
        old_kid,
        "signed before activation"
    );

    // Then it signs, and the old key's tokens still verify.
    eventually(6, "the new key signs", || async {
        kid_of(&sign_in().await) == new_kid
    })
    .await;
    assert_eq!(
        published(&client, &server).await,
        vec![old_kid.clone(), new_kid.clone()]
    );
    assert_eq!(me(&client, &server, &old_token).await.0, 200);
    let (ok, list) = run(&["keys", "list"], &env);
    assert!(ok, "{list}");
    assert!(list.contains(&format!("{old_kid} retiring")), "{list}");
    assert!(list.contains(&format!("{new_kid} signing")), "{list}");

    // Once every token of the old key has expired, it is withdrawn.
    eventually(15, "the old key is withdrawn", || async {
        published(&client, &server).await == vec![new_kid.clone()]
    })
    .await;
    assert_eq!(me(&client, &server, &old_token).await.0, 401);
    drop(server);

    // Master-key rotation: every key is re-sealed and usable under the new key.
    let (new_key, text) = rotate_master(dir.path(), &env);
    assert!(text.contains("re-sealed 2 signing key(s)"), "{text}");
    let mut with_new = env.clone();
    with_new[1].1 = new_key.display().to_string();
    let server = start(&data, &with_new).await;
    let token = sign_in_on(&client, &server).await;
    assert_eq!(kid_of(&token), new_kid);
    assert_eq!(me(&client, &server, &token).await.0, 200);
    drop(server);
    // The old master key alone opens nothing any more.
    let (ok, text) = run(
        &[
            "keys",
            "rotate-master",
            "--new-key-file",
            &old_key.display().to_string(),
        ],
        &env,
    );
    assert!(!ok, "{text}");
    assert!(text.contains("which is not configured"), "{text}");
}

async fn sign_in_on(client: &reqwest::Client, on: &Instance) -> String {
    let (status, body) = call(
        client
            .post(format!("{}/v1/sessions", on.base))
            .json(&register_body("ada@example.com")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Writes a key file as an operator should: readable by its owner alone.
fn write_key(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// A TOTP code of `uri` at `unix_time` computed by pyotp, and the seed's
/// bytes in hex; `None` (after a message) when pyotp is missing outside CI.
fn pyotp(uri: &str, unix_time: i64) -> Option<(String, String)> {
    let python = std::env::var("SESAME_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, base64, pyotp; t = pyotp.parse_uri(sys.argv[1]); \
             print(t.at(int(sys.argv[2])), base64.b32decode(t.secret).hex())",
            uri,
            &unix_time.to_string(),
        ])
        .output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        _ => {
            let msg = "pyotp is missing: run the suite with scripts/test, which installs it";
            assert!(!sesame_testdb::in_ci(), "{msg}");
            eprintln!("skipping: {msg}");
            return None;
        }
    };
    let text = String::from_utf8(out.stdout).unwrap();
    let (code, seed) = text.trim().split_once(' ').unwrap();
    Some((code.to_owned(), seed.to_owned()))
}

fn unix_now() -> i64 {
    sesame_core::Clock::now(&sesame_core::SystemClock).unix_timestamp()
}

/// Every byte the embedded store keeps on disk.
fn store_bytes(data: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("sesame.db") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_totp_seed_is_sealed_at_rest_and_signs_in_after_a_master_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old_key = dir.path().join("old.key");
    write_key(&old_key, &format!("{MASTER_KEY}\n"));
    // A webhook endpoint: its secret is sealed at rest like the seeds.
    let webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let env = vec![
        ("SESAME_DATA_DIR", data.display().to_string()),
        ("SESAME_MASTER_KEY_FILE", old_key.display().to_string()),
        (
            "SESAME_EVENTS__WEBHOOKS",
            format!(
                r#"[{{name="audit",url="http://127.0.0.1:9/hooks",secret="{webhook_secret}"}}]"#
            ),
        ),
        ("SESAME_EVENTS__ALLOW_PRIVATE_TARGETS", "true".into()),
    ];
    let server = start(&data, &env).await;
    let client = reqwest::Client::new();
    let reg = register(&client, &server, "ada@example.com").await;
    let access = reg["access_token"].as_str().unwrap();
    let (status, begin) = call(
        client
            .post(format!("{}/v1/me/mfa/totp", server.base))
            .bearer_auth(access),
    )
    .await;
    assert_eq!(status, 200, "{begin}");
    let uri = begin["otpauth_uri"].as_str().unwrap().to_owned();
    let secret = begin["secret"].as_str().unwrap().to_owned();
    let Some((code, seed_hex)) = pyotp(&uri, unix_now()) else {
        return;
    };
    let (status, confirmed) = call(
        client
            .post(format!("{}/v1/me/mfa/totp/confirm", server.base))
            .bearer_auth(access)
            .json(&serde_json::json!({"code": code})),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let backup = confirmed["backup_codes"][0].as_str().unwrap().to_owned();
    drop(server);

    // Neither the seed (raw or base32) nor a backup code is in the database.
    let seed: Vec<u8> = (0..seed_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&seed_hex[i..i + 2], 16).unwrap())
        .collect();
    let stored = store_bytes(&data);
    assert!(stored.len() > 4096);
    assert!(!contains(&stored, &seed), "the raw seed is on disk");
    assert!(
        !contains(&stored, secret.as_bytes()),
        "the base32 seed is on disk"
    );
    assert!(
        !contains(&stored, backup.as_bytes()),
        "a backup code is on disk"
    );
    assert!(!contains(&stored, backup.replace('-', "").as_bytes()));
    assert!(
        !contains(&stored, webhook_secret.as_bytes()),
        "a webhook secret is on disk"
    );
    assert!(!contains(&stored, b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));

    let (new_key, text) = rotate_master(dir.path(), &env);
    assert!(
        text.contains("1 server secret(s), 1 TOTP seed(s), 1 webhook secret(s)"),
        "{text}"
    );
    let mut with_new = env.clone();
    with_new[1].1 = new_key.display().to_string();
    let server = start(&data, &with_new).await;
    let challenge = |client: &reqwest::Client| {
        let req = client
            .post(format!("{}/v1/sessions", server.base))
            .json(&register_body("ada@example.com"));
        async move {
            let (status, body) = call(req).await;
            assert_eq!(status, 200, "{body}");
            body["challenge_id"].as_str().unwrap().to_owned()
        }
    };
    // The next step's code (the one confirming used this step's).
    let (next, _) = pyotp(&uri, unix_now() + 30).unwrap();
    let id = challenge(&client).await;
    let (status, body) = call(
        client
            .post(format!("{}/v1/sessions/mfa", server.base))
            .json(&serde_json::json!({"challenge_id": id, "code": next})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Backup codes outlive the rotation too (their key is a server secret).
    let id = challenge(&client).await;
    let (status, body) = call(
        client
            .post(format!("{}/v1/sessions/mfa", server.base))
            .json(&serde_json::json!({"challenge_id": id, "backup_code": backup})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Runs `sesame keys rotate-master` to a new key file in `dir`; the file and
/// what the command printed.
fn rotate_master(dir: &Path, env: &[(&str, String)]) -> (PathBuf, String) {
    let new_key = dir.join("new.key");
    write_key(
        &new_key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    );
    let (ok, text) = run(
        &[
            "keys",
            "rotate-master",
            "--new-key-file",
            &new_key.display().to_string(),
        ],
        env,
    );
    assert!(ok, "{text}");
    (new_key, text)
}
