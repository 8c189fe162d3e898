//! `ProfileStore`: profiles in the identity domain.

use crate::{Backend, Harness, T0, at, committed, principal};
use sesame_core::{PrincipalId, StoreError};
use sesame_identity::{NewProfile, Profile, ProfilePatch};

fn profile(id: PrincipalId, name: &str) -> Profile {
    Profile::new(
        id,
        NewProfile {
            display_name: Some(name.into()),
            avatar_url: Some("https://example.com/a.png".into()),
        },
        T0,
    )
    .unwrap()
}

/// A profile reads back as written; an unknown one is `NotFound`; a
/// rolled-back one is not there.
pub async fn profiles_read_back<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let mut written = profile(p.id, "Zoë \u{5F20}\u{4E09}");
    written.metadata = serde_json::json!({"plan": "pro", "tags": ["a", "b"]});
    committed(s, async |tx| s.insert_profile(tx, &written).await.unwrap()).await;
    assert_eq!(s.get_profile(p.id).await.unwrap(), written);

    let q = principal(s).await;
    let mut tx = s.begin().await.unwrap();
    s.insert_profile(tx.as_mut(), &profile(q.id, "Gone"))
        .await
        .unwrap();
    drop(tx);
    let err = s.get_profile(q.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// Display names are found by a literal, case-blind prefix in id order from
/// a cursor; a profile goes when deleted.
pub async fn profiles_are_found_by_display_name_prefix_and_deleted<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let mut ids = Vec::new();
    for name in [
        "Ada Lovelace",
        "ada byron",
        "Adam",
        "Bob",
        "100%_sure",
        "1000 ways",
    ] {
        let p = principal(s).await;
        committed(s, async |tx| {
            s.insert_profile(tx, &profile(p.id, name)).await.unwrap()
        })
        .await;
        ids.push(p.id);
    }
    let find = |prefix: &'static str, after: Option<PrincipalId>, limit: i64| async move {
        s.find_by_display_name_prefix(prefix, after, limit)
            .await
            .unwrap()
    };
    assert_eq!(find("ADA", None, 10).await, ids[..3]);
    assert_eq!(find("ada ", None, 10).await, ids[..2]);
    assert_eq!(find("ada", Some(ids[0]), 1).await, ids[1..2]);
    assert_eq!(find("100%", None, 10).await, ids[4..5]);
    assert_eq!(find("100%_", None, 10).await, ids[4..5]);
    assert_eq!(find("10_", None, 10).await, []);
    assert_eq!(find("%", None, 10).await, []);
    assert!(s.delete_profile(ids[3]).await.unwrap());
    assert!(!s.delete_profile(ids[3]).await.unwrap());
    assert_eq!(find("bob", None, 10).await, []);
}

/// A patch leaves absent fields alone, clears fields given as null, sets
/// the rest, and returns the profile as stored.
pub async fn a_profile_patch_tells_absent_from_null<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let written = profile(p.id, "Ada");
    committed(s, async |tx| s.insert_profile(tx, &written).await.unwrap()).await;
    let patch = ProfilePatch {
        display_name: None,
        avatar_url: Some(None),
        bio: Some(Some("Counts things".into())),
        locale: Some(Some("en-GB".into())),
    };
    let updated = committed(s, async |tx| {
        s.update_profile(tx, p.id, &patch, at(10)).await.unwrap()
    })
    .await;
    let expected = Profile {
        avatar_url: None,
        bio: Some("Counts things".into()),
        locale: Some("en-GB".into()),
        updated_at: at(10),
        ..written.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(s.get_profile(p.id).await.unwrap(), expected);
    let nothing = ProfilePatch::default();
    let same = committed(s, async |tx| {
        s.update_profile(tx, p.id, &nothing, at(11)).await.unwrap()
    })
    .await;
    assert_eq!(
        same,
        Profile {
            updated_at: at(11),
            ..expected
        }
    );
    let mut tx = s.begin().await.unwrap();
    let err = s
        .update_profile(tx.as_mut(), PrincipalId::new(), &nothing, at(12))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// Profiles inserted in bulk, across statement batches, read back.
pub async fn profiles_are_inserted_in_bulk<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let profiles: Vec<_> = (0..2500)
        .map(|n| profile(PrincipalId::new(), &format!("User {n}")))
        .collect();
    committed(s, async |tx| {
        s.insert_profiles(tx, &profiles).await.unwrap()
    })
    .await;
    for n in [0, 999, 1000, 2499] {
        assert_eq!(s.get_profile(profiles[n].id).await.unwrap(), profiles[n]);
    }
    committed(s, async |tx| s.insert_profiles(tx, &[]).await.unwrap()).await;
}
