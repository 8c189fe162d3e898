//! Split mode as production runs it: `migrate --create-roles` makes one
//! login role per domain, each sees only its own schema, a server on the two
//! roles works end to end, erasure leaves the profile to the relay, and a
//! schema migrated by a newer binary is refused.

use crate::common::*;
use serde_json::json;
use sesame_testdb::{Postgres, postgres_available};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn split_mode_roles_see_only_their_own_schema() {
    if !postgres_available().await {
        return;
    }
    let db = Postgres::create().await;
    let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let (id_role, cr_role) = (format!("sesame_id_{tag}"), format!("sesame_cr_{tag}"));
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();

    let split = [
        ("SESAME_IDENTITY_DATABASE_URL", db.url_as(&id_role)),
        ("SESAME_CREDENTIALS_DATABASE_URL", db.url_as(&cr_role)),
    ];
    let with_roles = [
        "migrate",
        "--database-url",
        &url,
        "--create-roles",
        "--identity-role",
        &id_role,
        "--credentials-role",
        &cr_role,
    ];
    // Twice: the second run finds everything in place and changes nothing.
    for _ in 0..2 {
        let (ok, text) = run(&with_roles, &[]);
        assert!(ok, "{text}");
        assert!(text.contains("schema identity: Current"), "{text}");
        assert!(text.contains("schema credentials: Current"), "{text}");
    }

    // Connected as the identity role, every credentials table is out of reach.
    let as_identity = sqlx::PgPool::connect(&db.url_as(&id_role)).await.unwrap();
    let owner = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'credentials' ORDER BY 1",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(tables.len() >= 9, "{tables:?}");
    for table in &tables {
        let sql = format!("SELECT * FROM credentials.{table} LIMIT 1");
        let err = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&as_identity)
            .await
            .unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{table}: {err}");
    }
    // And the credentials role cannot read profiles.
    let as_credentials = sqlx::PgPool::connect(&db.url_as(&cr_role)).await.unwrap();
    let err = sqlx::query("SELECT * FROM identity.users")
        .fetch_all(&as_credentials)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");

    // A server on the two roles works end to end.
    let server = start(dir.path(), &split).await;
    let client = reqwest::Client::new();
    let grant = register(&client, &server, "ada@example.com").await;
    let token = grant["access_token"].as_str().unwrap();
    let (status, body) = call(
        client
            .patch(format!("{}/v1/me/profile", server.base))
            .bearer_auth(token)
            .json(&json!({"display_name": "Ada"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = me(&client, &server, token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profile"]["display_name"], "Ada", "{body}");
    let profiles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM identity.users")
        .fetch_one(&as_identity)
        .await
        .unwrap();
    assert_eq!(profiles, 1);

    // Erased in split mode: credentials and the event in one transaction,
    // the profile when the relay delivers the event.
    let (ok, text) = run(
        &[
            "admin",
            "api-key",
            "create",
            "--name",
            "ops",
            "--scope",
            "users:delete",
        ],
        &split,
    );
    assert!(ok, "{text}");
    let key = text.lines().next().unwrap();
    let id = grant["principal"]["id"].as_str().unwrap();
    let (status, body) = call(
        client
            .delete(format!("{}/v1/admin/users/{id}", server.base))
            .bearer_auth(key),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // The relay's work is asynchronous: wait (bounded) until the event is
    // marked delivered, which happens only after the profile was removed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credentials.outbox o JOIN credentials.deliveries d ON d.event_id = o.id
             WHERE o.topic = 'identity.user.deleted' AND d.sink = 'log' AND d.status = 'delivered'",
        )
        .fetch_one(&owner)
        .await
        .unwrap();
        if delivered == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not deliver the event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profiles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM identity.users")
        .fetch_one(&as_identity)
        .await
        .unwrap();
    assert_eq!(profiles, 0, "the relay left the profile");
    drop(server);

    // A schema migrated by a newer binary is refused, by `migrate` and `serve`.
    sqlx::query(
        "INSERT INTO identity._sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99, 'from the future', TRUE, '\\x00', 0)",
    )
    .execute(&owner)
    .await
    .unwrap();
    let (ok, text) = run(&["migrate", "--database-url", &url], &[]);
    assert!(!ok);
    assert!(text.contains("newer than this binary"), "{text}");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_sesame"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SESAME_DATA_DIR", dir.path())
        .env("SESAME_MASTER_KEY", MASTER_KEY)
        .envs(split.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve started on a newer schema");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("newer than this binary"), "{stderr}");

    for pool in [as_identity, as_credentials, owner] {
        pool.close().await;
    }
    db.drop_now().await;
    let admin = sqlx::PgPool::connect(&sesame_testdb::postgres_admin_url())
        .await
        .unwrap();
    for role in [&id_role, &cr_role] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
            .execute(&admin)
            .await
            .unwrap();
    }
}
