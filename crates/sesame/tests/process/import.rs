//! `sesame import` of a generated wide table: every good row imported, every
//! bad one reported with its reason, and a second run imports nothing.

use crate::common::*;
use serde_json::{Value, json};
use sesame_testdb::{Postgres, TestDb, postgres_available};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

const FIXTURES: &str = include_str!("../../../../tests/fixtures/legacy-hashes.json");
const ROWS: usize = 100_000;

/// A wide table: 46 good rows in 50; the others have a bad phone, an unknown
/// hash format, another row's e-mail, or a bad e-mail.
fn write_wide_table(path: &Path) -> (usize, HashMap<&'static str, usize>) {
    let fixtures: Value = serde_json::from_str(FIXTURES).unwrap();
    let hashes: Vec<String> = fixtures["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hash"].as_str().unwrap().to_owned())
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut good = 0;
    let mut bad: HashMap<&'static str, usize> = HashMap::new();
    for i in 0..ROWS {
        let id = if i % 2 == 0 {
            uuid::Uuid::now_v7().to_string()
        } else {
            format!("legacy-{i}")
        };
        let mut row = json!({
            "id": id,
            "email": format!("User{i}@Example.com"),
            "email_verified": i % 3 == 0,
            "password_hash": hashes[i % hashes.len()],
            "display_name": format!("User {i}"),
        });
        if i % 7 == 0 {
            row["username"] = json!(format!("user_{i}"));
        }
        if i % 11 == 0 {
            row["password_hash"] = Value::Null; // passwordless: e-mail codes
        }
        match i % 50 {
            1 => {
                row["phone"] = json!("12345");
                *bad.entry("invalid_phone").or_default() += 1;
            }
            2 => {
                row["password_hash"] = json!("$md5$rounds=5000$abc$def");
                *bad.entry("unknown_hash_format").or_default() += 1;
            }
            3 => {
                row["email"] = json!(format!("user{}@example.com", i - 3));
                *bad.entry("identifier_taken").or_default() += 1;
            }
            4 => {
                row["email"] = json!("not an address");
                *bad.entry("invalid_email").or_default() += 1;
            }
            _ => good += 1,
        }
        writeln!(out, "{row}").unwrap();
    }
    out.flush().unwrap();
    (good, bad)
}

fn summary(text: &str) -> Value {
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{text}"));
    serde_json::from_str(line).unwrap()
}

async fn import_wide_table(env: &[(&str, String)], db: &TestDb, dir: &Path) {
    let input = dir.join("users.jsonl");
    let report = dir.join("refused.jsonl");
    let (good, bad) = write_wide_table(&input);
    let args = [
        "import",
        input.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--quiet",
    ];
    let (ok, text) = run(&args, env);
    assert!(ok, "{text}");
    let first = summary(&text);
    let refused: usize = bad.values().sum();
    assert_eq!(first["read"], ROWS as u64, "{first}");
    assert_eq!(first["imported"], good as u64, "{first}");
    assert_eq!(first["refused"], refused as u64, "{first}");
    assert_eq!(first["already_present"], 0, "{first}");

    // Every refused row is in the report, with its reason.
    let lines: Vec<Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), refused);
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        *reasons
            .entry(line["reason"].as_str().unwrap().to_owned())
            .or_default() += 1;
        let number = line["line"].as_u64().unwrap() as usize;
        assert!(
            (2..=5).contains(&(number % 50)),
            "line {number} is a good row"
        );
    }
    for (reason, count) in &bad {
        assert_eq!(reasons.get(*reason), Some(count), "{reason}: {reasons:?}");
    }

    // The database holds exactly the good rows, whole.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM principals").await,
        good as i64
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, good as i64);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM login_methods WHERE login_type = 'email'")
            .await,
        good as i64
    );
    let with_password = db.count("SELECT COUNT(*) FROM passwords").await;
    assert!(with_password > 0 && with_password < good as i64);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM principals p WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p.id)")
            .await,
        0
    );

    // A second run imports nothing and finds everything in place.
    let (ok, text) = run(&args, env);
    assert!(ok, "{text}");
    let second = summary(&text);
    assert_eq!(second["imported"], 0, "{second}");
    assert_eq!(second["already_present"], good as u64, "{second}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM principals").await,
        good as i64
    );
}

/// Signs in one imported user whose hash came from another implementation.
async fn imported_user_signs_in(env: &[(&str, String)], data: &Path) {
    let fixtures: Value = serde_json::from_str(FIXTURES).unwrap();
    let password = fixtures["password"].as_str().unwrap();
    let server = start(data, env).await;
    let client = reqwest::Client::new();
    // Row 5 is good, with hashes[5 % len].
    let (status, body) = call(
        client
            .post(format!("{}/v1/sessions", server.base))
            .json(&json!({"login": {"type": "email", "identifier": "user5@example.com"}, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_wide_table_imports_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = vec![("SESAME_DATA_DIR", data.display().to_string())];
    // Create the database first, so the check connection can open it.
    drop(start(&data, &env).await);
    let url = format!("sqlite://{}", data.join("sesame.db").display());
    let db = TestDb::sqlite(sqlx::SqlitePool::connect(&url).await.unwrap());
    import_wide_table(&env, &db, dir.path()).await;
    imported_user_signs_in(&env, &data).await;
    db.close().await;
}

#[tokio::test]
async fn a_wide_table_imports_on_postgres() {
    if !postgres_available().await {
        return;
    }
    let pg = Postgres::create().await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "SESAME_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("SESAME_DATABASE_URL", pg.url()),
    ];
    let (ok, text) = run(&["migrate"], &env);
    assert!(ok, "{text}");
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let db = TestDb::postgres(vec![pool]).await;
    import_wide_table(&env, &db, dir.path()).await;
    imported_user_signs_in(&env, &dir.path().join("data")).await;
    db.close().await;
    pg.drop_now().await;
}

#[tokio::test]
async fn csv_columns_can_be_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = vec![("SESAME_DATA_DIR", data.display().to_string())];
    let input = dir.path().join("legacy.csv");
    std::fs::write(
        &input,
        "user_id,user_email,pw,name\n\
         7,ada@example.com,$2b$04$DkdSOSUeeG9Se/9XN5UcW.dKHE5il84Xij30rLlY5i/mJIia6V2Kq,Ada\n\
         8,\"bob@example.com\",,\"Bob, the builder\"\n\
         9,broken,,Nobody\n",
    )
    .unwrap();
    let (ok, text) = run(
        &[
            "import",
            input.to_str().unwrap(),
            "--map",
            "id=user_id",
            "--map",
            "email=user_email",
            "--map",
            "password_hash=pw",
            "--map",
            "display_name=name",
        ],
        &env,
    );
    assert!(ok, "{text}");
    let s = summary(&text);
    assert_eq!(
        (s["imported"].as_u64(), s["refused"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    let report = std::fs::read_to_string(dir.path().join("legacy.csv.refused.jsonl")).unwrap();
    let refusal: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(refusal["line"], 4);
    assert_eq!(refusal["id"], "9");
    assert_eq!(refusal["reason"], "invalid_email");

    let (ok, text) = run(
        &["import", input.to_str().unwrap(), "--map", "mail=x"],
        &env,
    );
    assert!(!ok);
    assert!(text.contains("expected FIELD=COLUMN"), "{text}");

    let server = start(&data, &env).await;
    let client = reqwest::Client::new();
    let grant = call(
        client
            .post(format!("{}/v1/sessions", server.base))
            .json(&json!({"login": {"type": "email", "identifier": "ada@example.com"}, "password": "Tr0ub4dor&3 legacy"})),
    )
    .await;
    assert_eq!(grant.0, 200, "{}", grant.1);
    let token = grant.1["access_token"].as_str().unwrap();
    let (_, me) = me(&client, &server, token).await;
    assert_eq!(me["profile"]["display_name"], "Ada");
}
