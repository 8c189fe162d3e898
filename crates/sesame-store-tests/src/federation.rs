//! `FederationStore`.

use crate::{Backend, Harness, T0, at, committed, login, principal};
use sesame_core::PrincipalId;
use sesame_credentials::{FederationFlow, LoginType, Sealed, StoredConnection};
use uuid::Uuid;

fn sealed(byte: u8) -> Sealed {
    Sealed {
        key_id: format!("key-{byte}"),
        blob: vec![byte; 40],
    }
}

fn flow(connection: &str, state: u8, owner: Option<PrincipalId>, expires: i64) -> FederationFlow {
    FederationFlow {
        id: Uuid::now_v7(),
        connection: connection.into(),
        state_hash: vec![state; 32],
        intent: if owner.is_some() { "link" } else { "sign_in" }.into(),
        principal_id: owner,
        nonce: format!("nonce-{state}"),
        pkce_verifier: sealed(state),
        app_challenge: "challenge".into(),
        return_to: "https://app.example/back".into(),
        login_code_hash: None,
        login_code_expires_at: None,
        result: None,
        created_at: T0,
        expires_at: at(expires),
        consumed_at: None,
        exchanged_at: None,
    }
}

/// A flow is claimed at its callback once, only for its connection and
/// before it expires, even by racing claims; once finished it is taken at
/// the exchange once, only with its login code and before that expires; the
/// sweeper deletes flows past both expiries.
pub async fn flows_are_claimed_once_then_taken_once<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let signing_in = flow("oidc:acme", 1, None, 600);
    let linking = flow("github", 2, Some(p.id), 600);
    let racy = flow("github", 3, None, 600);
    for f in [&signing_in, &linking, &racy] {
        s.insert_flow(f).await.unwrap();
    }
    let claim = |connection: &'static str, state: u8, now: i64| async move {
        s.claim_flow(connection, &[state; 32], at(now))
            .await
            .unwrap()
    };
    assert_eq!(claim("github", 1, 10).await, None, "another connection");
    assert_eq!(claim("oidc:acme", 1, 600).await, None, "expired");
    let claimed = claim("oidc:acme", 1, 10).await.unwrap();
    assert_eq!(
        claimed,
        FederationFlow {
            consumed_at: Some(at(10)),
            ..signing_in.clone()
        }
    );
    assert_eq!(claim("oidc:acme", 1, 11).await, None, "claimed");
    assert_eq!(
        claim("github", 2, 10).await.unwrap().principal_id,
        Some(p.id)
    );

    let racers: Vec<_> = (0..8)
        .map(|_| {
            let s = h.store.clone();
            tokio::spawn(async move {
                s.claim_flow("github", &[3; 32], at(10))
                    .await
                    .unwrap()
                    .is_some()
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.unwrap());
    }
    assert_eq!(won, 1);

    s.finish_flow(signing_in.id, &[9; 32], at(70), &sealed(7))
        .await
        .unwrap();
    let take = |code: u8, now: i64| async move {
        s.take_flow(signing_in.id, &[code; 32], at(now))
            .await
            .unwrap()
    };
    assert_eq!(take(8, 20).await, None, "another code");
    assert_eq!(take(9, 70).await, None, "the code expired");
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let s = h.store.clone();
            let id = signing_in.id;
            tokio::spawn(async move { s.take_flow(id, &[9; 32], at(20)).await.unwrap() })
        })
        .collect();
    let mut taken = Vec::new();
    for racer in racers {
        taken.extend(racer.await.unwrap());
    }
    assert_eq!(taken.len(), 1, "raced exchanges take it once");
    let taken = taken.remove(0);
    assert_eq!(taken.result, Some(sealed(7)));
    assert_eq!(taken.login_code_expires_at, Some(at(70)));
    assert_eq!(taken.exchanged_at, Some(at(20)));
    assert_eq!(take(9, 21).await, None, "taken");
    // A flow never called back cannot be taken.
    assert_eq!(s.take_flow(racy.id, &[9; 32], at(20)).await.unwrap(), None);

    assert_eq!(s.delete_expired_flows(at(600)).await.unwrap(), 0);
    assert_eq!(s.delete_expired_flows(at(601)).await.unwrap(), 3);
}

/// Connections are created, replaced (keeping when they were created) and
/// deleted once; provider tokens are kept per login, replaced, listed for
/// re-sealing, and go with their login.
pub async fn connections_and_provider_tokens_read_back<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let acme = StoredConnection {
        name: "oidc:acme".into(),
        settings: serde_json::json!({"client_id": "c", "issuer": "https://idp.example"}),
        secret: Some(sealed(1)),
        created_at: T0,
        updated_at: T0,
    };
    let plain = StoredConnection {
        name: "oauth:gitea".into(),
        secret: None,
        ..acme.clone()
    };
    committed(s, async |tx| {
        s.put_connection(tx, &acme).await.unwrap();
        s.put_connection(tx, &plain).await.unwrap();
    })
    .await;
    assert_eq!(
        s.list_connections().await.unwrap(),
        vec![plain.clone(), acme.clone()]
    );
    let replaced = StoredConnection {
        secret: Some(sealed(2)),
        updated_at: at(5),
        created_at: at(5),
        ..acme.clone()
    };
    committed(s, async |tx| s.put_connection(tx, &replaced).await.unwrap()).await;
    let read = s.get_connection("oidc:acme").await.unwrap().unwrap();
    assert_eq!(read.secret, Some(sealed(2)));
    assert_eq!((read.created_at, read.updated_at), (T0, at(5)));
    assert!(
        committed(s, async |tx| s
            .delete_connection(tx, "oauth:gitea")
            .await
            .unwrap())
        .await
    );
    assert!(
        !committed(s, async |tx| s
            .delete_connection(tx, "oauth:gitea")
            .await
            .unwrap())
        .await
    );
    assert_eq!(s.get_connection("oauth:gitea").await.unwrap(), None);

    let p = principal(s).await;
    let github = login(p.id, LoginType::parse("github").unwrap(), "583231");
    committed(s, async |tx| {
        s.insert_login_method(tx, &github).await.unwrap();
        s.put_provider_tokens(tx, github.id, &sealed(3), T0)
            .await
            .unwrap();
        s.put_provider_tokens(tx, github.id, &sealed(4), at(1))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        s.get_provider_tokens(github.id).await.unwrap(),
        Some(sealed(4))
    );
    assert_eq!(
        s.list_provider_tokens().await.unwrap(),
        vec![(github.id, sealed(4))]
    );
    committed(s, async |tx| {
        assert!(s.delete_login_method(tx, p.id, github.id).await.unwrap());
    })
    .await;
    assert_eq!(s.get_provider_tokens(github.id).await.unwrap(), None);
}
