//! Files in the data directory are for their owner alone.

#[tokio::test]
async fn files_are_private_even_in_an_existing_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // No master key given: the server creates its own file.
    let server = crate::common::start(&data, &[("SESAME_MASTER_KEY", String::new())]).await;
    let client = reqwest::Client::new();
    crate::common::register(&client, &server, "ada@example.com").await;
    let body = serde_json::json!({"login": {"type": "email", "identifier": "ada@example.com"}, "purpose": "verify"});
    let (status, _) = crate::common::call(
        client
            .post(format!("{}/v1/verifications", server.base))
            .json(&body),
    )
    .await;
    assert_eq!(status, 202);
    let mail = data.join("outbox/mail");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&mail).map_or(true, |mut d| d.next().is_none()) {
        assert!(std::time::Instant::now() < deadline, "no message arrived");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for file in ["sesame.db", "sesame.db-wal", "master.key"] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        } else {
            assert_ne!(file, "sesame.db", "no database at {}", path.display());
        }
    }
    for folder in [data.join("outbox"), mail.clone()] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    for entry in std::fs::read_dir(&mail).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600);
    }
    drop(server);

    // A master key that others can read is refused, with a clear reason.
    std::fs::set_permissions(
        data.join("master.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (ok, text) = crate::common::run(
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("master.key is readable or writable by others"),
        "{text}"
    );
}
