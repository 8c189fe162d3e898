//! `ImportStore`: the bulk paths of `sesame import`.

use crate::{Backend, Harness, T0, committed, login, principal};
use sesame_core::{PrincipalId, StoreError};
use sesame_credentials::{ImportedAccount, LOGIN_IDENTIFIER_UNIQUE, LoginType, Principal};

fn account(n: usize) -> ImportedAccount {
    let principal = Principal::new(PrincipalId::new(), "user", T0);
    let mut email = login(principal.id, LoginType::Email, &format!("u{n}@example.com"));
    email.verified_at = Some(T0);
    let username = login(principal.id, LoginType::Username, &format!("user{n}"));
    ImportedAccount {
        logins: vec![email, username],
        password_hash: n.is_multiple_of(2).then(|| format!("$2b$10$imported{n}")),
        principal,
    }
}

/// Accounts inserted in batches larger than one statement read back with
/// their logins and passwords (the password in the history too); the
/// lookups find which principals exist and who owns which login.
pub async fn accounts_are_imported_in_batches<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let accounts: Vec<_> = (0..2100).map(account).collect();
    let ids: Vec<_> = accounts.iter().map(|a| a.principal.id).collect();
    assert!(s.existing_principals(&ids).await.unwrap().is_empty());
    committed(s, async |tx| {
        s.insert_accounts(tx, &accounts).await.unwrap()
    })
    .await;

    let mut asked = ids.clone();
    let stranger = PrincipalId::new();
    asked.push(stranger);
    let existing = s.existing_principals(&asked).await.unwrap();
    assert_eq!(existing.len(), ids.len());
    assert!(!existing.contains(&stranger));
    for n in [0, 1, 999, 1000, 2099] {
        let a = &accounts[n];
        assert_eq!(s.get_principal(a.principal.id).await.unwrap(), a.principal);
        assert_eq!(
            s.list_login_methods(a.principal.id).await.unwrap(),
            a.logins
        );
        assert_eq!(
            s.get_password(a.principal.id).await.unwrap(),
            a.password_hash
        );
        assert_eq!(
            s.password_history(a.principal.id, 5).await.unwrap(),
            a.password_hash.clone().into_iter().collect::<Vec<_>>()
        );
    }

    let mut logins: Vec<_> = (0..1500)
        .map(|n| (LoginType::Email, format!("u{n}@example.com")))
        .collect();
    logins.push((LoginType::Email, "nobody@example.com".into()));
    logins.push((LoginType::Phone, "u1@example.com".into()));
    let owners = s.login_owners(&logins).await.unwrap();
    assert_eq!(owners.len(), 1500);
    assert!(owners.contains(&(
        LoginType::Email,
        "u1234@example.com".into(),
        accounts[1234].principal.id
    )));
    assert!(s.existing_principals(&[]).await.unwrap().is_empty());
    assert!(s.login_owners(&[]).await.unwrap().is_empty());
}

/// A batch that takes an identifier already taken fails as a named
/// conflict and writes nothing.
pub async fn an_import_batch_with_a_taken_identifier_writes_nothing<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let owner = principal(s).await;
    committed(s, async |tx| {
        s.insert_login_method(tx, &login(owner.id, LoginType::Email, "u3@example.com"))
            .await
            .unwrap()
    })
    .await;
    let accounts: Vec<_> = (0..5).map(account).collect();
    let mut tx = s.begin().await.unwrap();
    let err = s.insert_accounts(tx.as_mut(), &accounts).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { constraint } if constraint == LOGIN_IDENTIFIER_UNIQUE),
        "{err:?}"
    );
    drop(tx);
    let ids: Vec<_> = accounts.iter().map(|a| a.principal.id).collect();
    assert!(s.existing_principals(&ids).await.unwrap().is_empty());
}
