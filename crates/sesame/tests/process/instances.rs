//! Several `sesame` processes on one database, as a production deployment runs
//! them, and what survives `kill -9`. PostgreSQL and Redis come from
//! `SESAME_TEST_POSTGRES_URL` / `SESAME_TEST_REDIS_URL`; outside CI a test
//! whose service is missing skips with a message.

use crate::common::*;
use serde_json::{Value, json};
use sesame_store_postgres::{PgSettings, PgStore, PgTarget};
use sesame_testdb::{Postgres, TestDb, in_ci, postgres_available};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Two instances on one fresh PostgreSQL database.
async fn pair(env: &[(&str, String)]) -> Option<(Instance, Instance, Postgres, tempfile::TempDir)> {
    if !postgres_available().await {
        return None;
    }
    let db = Postgres::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![
        ("SESAME_DATABASE_URL", db.url()),
        ("SESAME_KEY_REFRESH_SECS", "1".to_owned()),
    ];
    all.extend(env.iter().cloned());
    let a = start(&dir.path().join("a"), &all).await;
    let b = start(&dir.path().join("b"), &all).await;
    Some((a, b, db, dir))
}

#[tokio::test]
async fn a_session_revoked_on_one_instance_is_refused_by_the_other() {
    let Some((a, b, db, _dir)) = pair(&[]).await else {
        return;
    };
    let client = reqwest::Client::new();
    let grant = register(&client, &a, "ada@example.com").await;
    let token = grant["access_token"].as_str().unwrap();
    assert_eq!(me(&client, &b, token).await.0, 200);
    let (status, _) = call(
        client
            .delete(format!("{}/v1/sessions/current", a.base))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = me(&client, &b, token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test]
async fn a_user_suspended_on_one_instance_is_inactive_on_the_other() {
    let Some((a, b, db, _dir)) = pair(&[]).await else {
        return;
    };
    let (ok, text) = run(
        &["admin", "api-key", "create", "--name", "ops"],
        &[("SESAME_DATABASE_URL", db.url())],
    );
    assert!(!ok, "a key needs a scope: {text}");
    let (ok, text) = run(
        &[
            "admin",
            "api-key",
            "create",
            "--name",
            "ops",
            "--scope",
            "users:suspend",
            "--scope",
            "introspect",
        ],
        &[("SESAME_DATABASE_URL", db.url())],
    );
    assert!(ok, "{text}");
    let key = text.lines().next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let grant = register(&client, &a, "ada@example.com").await;
    let token = grant["access_token"].as_str().unwrap();
    let id = grant["principal"]["id"].as_str().unwrap();
    let introspect = |on: &Instance| {
        client
            .post(format!("{}/v1/introspect", on.base))
            .bearer_auth(&key)
            .json(&json!({"token": token}))
    };
    assert_eq!(call(introspect(&b)).await.1["active"], true);
    let (status, body) = call(
        client
            .post(format!("{}/v1/admin/users/{id}/suspend", a.base))
            .bearer_auth(&key)
            .json(&json!({"reason": "fraud"})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // At once on the other instance: no cache there holds the session.
    assert_eq!(call(introspect(&b)).await.1, json!({"active": false}));
    let (status, body) = call(
        client
            .post(format!("{}/v1/sessions/refresh", b.base))
            .json(&json!({"refresh_token": grant["refresh_token"]})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, body) = call(
        client
            .post(format!("{}/v1/sessions", b.base))
            .json(&register_body("ada@example.com")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("account_suspended"))
    );
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test]
async fn a_refresh_token_rotated_on_one_instance_cannot_be_used_on_the_other() {
    // No retry grace: presenting the used token on B is a reuse at once.
    let Some((a, b, db, _dir)) = pair(&[("SESAME_REFRESH_REUSE_GRACE_SECS", "0".to_owned())]).await
    else {
        return;
    };
    let client = reqwest::Client::new();
    let grant = register(&client, &a, "ada@example.com").await;
    let first = grant["refresh_token"].as_str().unwrap();
    let refresh = |on: &Instance, token: &str| {
        client
            .post(format!("{}/v1/sessions/refresh", on.base))
            .json(&json!({"refresh_token": token}))
    };
    let (status, rotated) = call(refresh(&a, first)).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, body) = call(refresh(&b, first)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_reused")),
        "{body}"
    );
    // The reuse revoked the session everywhere: the successor is dead on A too.
    let second = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(call(refresh(&a, second)).await.0, 401);
    let access = rotated["access_token"].as_str().unwrap();
    assert_eq!(me(&client, &a, access).await.0, 401);
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_identifier_across_instances_create_one_account() {
    // One client sends all of them: lift its registration limits so that the
    // unique index, not the limiter, decides.
    let Some((a, b, db, _dir)) = pair(&[
        (
            "SESAME_RATE_LIMITS__REGISTER__PER_IP__LIMIT",
            "1000".to_owned(),
        ),
        (
            "SESAME_RATE_LIMITS__REGISTER__PER_IDENTIFIER__LIMIT",
            "1000".to_owned(),
        ),
        ("SESAME_RATE_LIMITS__HASHING_PER_ADDRESS", "1000".to_owned()),
    ])
    .await
    else {
        return;
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(100)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let url = format!(
                "{}/v1/registrations",
                if i % 2 == 0 { &a.base } else { &b.base }
            );
            let client = client.clone();
            tokio::spawn(async move {
                call(client.post(url).json(&register_body("race@example.com"))).await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            409 => assert_eq!(body["code"], "identifier_taken"),
            // The hashing queue may be full under 100 at once: refused, not lost.
            503 => assert_eq!(body["code"], "overloaded"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    let store = PgStore::connect(&PgTarget::Single(db.url()), &PgSettings::default())
        .await
        .unwrap();
    let check = TestDb::postgres(vec![store.credentials_pool().clone()]).await;
    assert_eq!(check.count("SELECT COUNT(*) FROM principals").await, 1);
    assert_eq!(check.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(check.registration_violations().await, vec![]);
    check.close().await;
    drop((a, b));
    db.drop_now().await;
}

/// Redis of the test machine, or `None` (skipped outside CI) when it is absent.
async fn redis() -> Option<(String, redis::aio::MultiplexedConnection)> {
    let url =
        std::env::var("SESAME_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = match redis::Client::open(url.as_str()) {
        Ok(client) => client.get_multiplexed_async_connection().await,
        Err(e) => Err(e),
    };
    match conn {
        Ok(conn) => Some((url, conn)),
        Err(e) if !in_ci() => {
            eprintln!("skipped: no Redis at {url} ({e})");
            None
        }
        Err(e) => panic!("Redis is required under CI: {e}"),
    }
}

#[tokio::test]
async fn a_code_cooldown_set_on_one_instance_holds_on_the_other_through_redis() {
    let Some((url, mut conn)) = redis().await else {
        return;
    };
    let prefix = format!("sesame-test-{}:", uuid::Uuid::now_v7().simple());
    let Some((a, b, db, _dir)) = pair(&[
        ("SESAME_REDIS_URL", url),
        ("SESAME_REDIS_KEY_PREFIX", prefix.clone()),
    ])
    .await
    else {
        return;
    };
    let client = reqwest::Client::new();
    let send = |on: &Instance| {
        client
            .post(format!("{}/v1/verifications", on.base))
            .json(&json!({"login": {"type": "email", "identifier": "ada@example.com"}, "purpose": "register"}))
    };
    assert_eq!(call(send(&a)).await.0, 202);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}cooldown:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    // The random prefix may hold any hex digits; the name after it is the
    // part that could carry the address, and it is a MAC: 64 hex digits.
    let name = keys[0]
        .strip_prefix(&format!("{prefix}cooldown:"))
        .unwrap_or_else(|| panic!("unexpected key {}", keys[0]));
    assert!(
        name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
        "the key must not hold the address: {name}"
    );
    let resp = send(&b).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // The cooldown lives in Redis: once it is gone, B sends again.
    let _: i64 = redis::cmd("DEL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(call(send(&b)).await.0, 202);
    let _: i64 = redis::cmd("DEL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test]
async fn rate_limits_and_locks_are_shared_through_redis() {
    let Some((url, _conn)) = redis().await else {
        return;
    };
    let prefix = format!("sesame-test-{}:", uuid::Uuid::now_v7().simple());
    let Some((a, b, db, _dir)) = pair(&[
        ("SESAME_REDIS_URL", url),
        ("SESAME_REDIS_KEY_PREFIX", prefix),
        ("SESAME_RATE_LIMITS__PER_IDENTIFIER__LIMIT", "4".to_owned()),
        ("SESAME_LOCKOUT__MAX_FAILURES", "3".to_owned()),
        ("SESAME_CODE_RESEND_COOLDOWN_SECS", "0".to_owned()),
    ])
    .await
    else {
        return;
    };
    let client = reqwest::Client::new();
    let sign_in = |on: &Instance, email: &str| {
        client
            .post(format!("{}/v1/sessions", on.base))
            .json(&json!({"login": {"type": "email", "identifier": email}, "password": "wrong"}))
    };
    // Failures on an unknown login, spread over both instances, lock it on both.
    for on in [&a, &b, &a] {
        assert_eq!(call(sign_in(on, "nobody@example.com")).await.0, 401);
    }
    for on in [&b, &a] {
        let (status, body) = call(sign_in(on, "nobody@example.com")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (423, Some("account_locked"))
        );
    }
    // The per-login budget is one budget, whichever instance spends it.
    let send = |on: &Instance| {
        client
            .post(format!("{}/v1/verifications", on.base))
            .json(&json!({"login": {"type": "email", "identifier": "carol@example.com"}, "purpose": "register"}))
    };
    let mut statuses = Vec::new();
    for on in [&a, &b, &b, &a, &b] {
        statuses.push(call(send(on)).await.0);
    }
    assert_eq!(statuses, vec![202, 202, 202, 202, 429]);
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test]
async fn a_key_rotated_from_the_command_line_is_picked_up_by_every_instance() {
    let Some((a, b, db, _dir)) = pair(&[]).await else {
        return;
    };
    let client = reqwest::Client::new();
    let before = register(&client, &a, "ada@example.com").await;
    let old_kid = kid_of(before["access_token"].as_str().unwrap());

    // `sesame keys rotate`, run beside the instances, as an operator would.
    let out = Command::new(env!("CARGO_BIN_EXE_sesame"))
        .args(["keys", "rotate", "--publish-secs", "0"])
        .env("SESAME_DATABASE_URL", db.url())
        .env("SESAME_MASTER_KEY", MASTER_KEY)
        .env("SESAME_LOG_LEVEL", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = text
        .strip_prefix("new key ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    assert!(
        text.contains(&format!("key {old_kid}: stops signing")),
        "{text}"
    );

    for on in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, jwks) = call(client.get(format!("{}/.well-known/jwks.json", on.base))).await;
            let kids: Vec<&str> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|k| k["kid"].as_str())
                .collect();
            if kids.contains(&new_kid.as_str()) {
                assert!(
                    kids.contains(&old_kid.as_str()),
                    "the old key stays published"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never published the new key",
                on.base
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // New tokens carry the new key; tokens of either key verify on either instance.
    let after = register(&client, &b, "bob@example.com").await;
    let new_token = after["access_token"].as_str().unwrap();
    assert_eq!(kid_of(new_token), new_kid);
    assert_eq!(me(&client, &a, new_token).await.0, 200);
    assert_eq!(
        me(&client, &b, before["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    drop((a, b));
    db.drop_now().await;
}

/// Registers without pause on 16 connections until the server goes away;
/// returns the addresses whose registration was acknowledged with 201.
async fn registration_load(base: String, round: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let client = client.clone();
            let url = format!("{base}/v1/registrations");
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let email = format!("r{round}-w{w}-{i}@example.com");
                    match client.post(&url).json(&register_body(&email)).send().await {
                        Ok(resp) if resp.status() == 201 => acknowledged.push(email),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all
}

/// Kills the server with SIGKILL in the middle of a registration load, four
/// times, then restarts it and checks the database with SQL.
async fn killed_mid_registration(data_dir: &Path, env: &[(&str, String)], db: TestDb) {
    let mut acknowledged = Vec::new();
    for round in 0..4 {
        let mut server = start(data_dir, env).await;
        let load = tokio::spawn(registration_load(server.base.clone(), round));
        tokio::time::sleep(Duration::from_millis(300 + 150 * round as u64)).await;
        server.child.kill().unwrap(); // SIGKILL: no shutdown code runs
        server.child.wait().unwrap();
        acknowledged.extend(load.await.unwrap());
    }
    assert!(
        acknowledged.len() > 20,
        "the load hardly ran: {}",
        acknowledged.len()
    );
    // After a restart the server works, and the data is whole.
    let server = start(data_dir, env).await;
    register(&reqwest::Client::new(), &server, "after@example.com").await;
    drop(server);
    assert_eq!(db.registration_violations().await, vec![]);
    let principals = db.count("SELECT COUNT(*) FROM principals").await;
    assert!(principals > acknowledged.len() as i64, "{principals}");
    // Every acknowledged registration survived the kill.
    for chunk in acknowledged.chunks(200) {
        let list = chunk
            .iter()
            .map(|e| format!("'{e}'"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!("SELECT COUNT(*) FROM login_methods WHERE identifier IN ({list})");
        assert_eq!(db.count(&sql).await, chunk.len() as i64);
    }
    db.close().await;
}

#[tokio::test]
async fn sigkill_during_registrations_leaves_sqlite_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The check connection opens the file the server created.
    let server = start(&data, &[]).await;
    drop(server);
    let url = format!("sqlite://{}", data.join("sesame.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    killed_mid_registration(&data, &[], TestDb::sqlite(pool)).await;
}

#[tokio::test]
async fn sigkill_during_registrations_leaves_postgres_consistent() {
    if !postgres_available().await {
        return;
    }
    let db = Postgres::create().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("SESAME_DATABASE_URL", db.url())];
    let server = start(dir.path(), &env).await;
    drop(server);
    let store = PgStore::connect(&PgTarget::Single(db.url()), &PgSettings::default())
        .await
        .unwrap();
    let check = TestDb::postgres(vec![store.credentials_pool().clone()]).await;
    killed_mid_registration(dir.path(), &env, check).await;
    db.drop_now().await;
}

/// A private `redis-server` on a free port, killed on drop.
struct PrivateRedis(std::process::Child);

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn sign_ins_keep_working_when_redis_stops_and_readiness_says_so() {
    let Ok(binary) = which_redis_server() else {
        assert!(!in_ci(), "redis-server is required under CI");
        eprintln!("skipped: no redis-server binary");
        return;
    };
    let port = crate::common::free_port();
    let mut redis = PrivateRedis(
        std::process::Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "redis did not start");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[("SESAME_REDIS_URL", url)]).await;
    register(&client, &server, "ada@example.com").await;
    let ready = client
        .get(format!("{}/health/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // Redis goes away mid-run.
    let _ = redis.0.kill();
    let _ = redis.0.wait();
    let sign_in = |password: &str| {
        client
            .post(format!("{}/v1/sessions", server.base))
            .json(&json!({"login": {"type": "email", "identifier": "ada@example.com"}, "password": password}))
    };
    assert_eq!(call(sign_in("wrong password")).await.0, 401);
    let (status, body) = call(sign_in(crate::common::PASSWORD)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(client.get(format!("{}/health/ready", server.base))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable");
    assert!(body["detail"].as_str().unwrap().contains("redis"), "{body}");
}

fn which_redis_server() -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .ok_or(())
}
