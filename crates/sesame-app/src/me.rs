//! The account view and profile updates.

use crate::{App, AuthContext, LoginView, MeView, views::MfaView};
use sesame_core::{Error, PrincipalId};
use sesame_identity::{Profile, ProfilePatch};
use std::sync::Arc;

impl App {
    /// The caller's account: profile, login methods, password and MFA state.
    #[tracing::instrument(skip_all, level = "debug", err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn me(&self, auth: &AuthContext) -> Result<Arc<MeView>, Error> {
        let cache = &self.0.caches.me;
        if let Some(view) = cache.get(&auth.principal_id) {
            return Ok(view);
        }
        let ticket = cache.ticket();
        let view = Arc::new(self.me_of(auth.principal_id, &auth.kind).await?);
        cache.fill(auth.principal_id, view.clone(), ticket);
        Ok(view)
    }

    pub(crate) async fn me_of(&self, id: PrincipalId, kind: &str) -> Result<MeView, Error> {
        let stores = &self.0.stores;
        // Independent reads, at once: on a networked database the view costs
        // one round trip per domain.
        let (profile, credentials) = tokio::join!(
            stores.profiles.get_profile(id),
            stores.principals.credential_summary(id),
        );
        let credentials = credentials?;
        // A credentials-only kind keeps its profile in another service.
        let (profile, created_at) = match profile {
            Ok(profile) => (Some(profile.clone()), profile.created_at),
            Err(sesame_core::StoreError::NotFound) => {
                (None, stores.principals.get_principal(id).await?.created_at)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(MeView {
            id,
            kind: kind.to_owned(),
            created_at,
            profile,
            logins: credentials
                .logins
                .into_iter()
                .map(LoginView::from)
                .collect(),
            has_password: credentials.has_password,
            password_removed_at: credentials.password_removed_at,
            mfa: MfaView {
                totp: credentials.mfa.totp,
                backup_codes_left: credentials.mfa.backup_codes_left,
                security_keys: credentials.mfa.security_keys,
            },
        })
    }

    /// Updates the caller's profile.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn update_profile(
        &self,
        auth: &AuthContext,
        patch: ProfilePatch,
    ) -> Result<Profile, Error> {
        let patch = patch.validated("")?;
        let now = self.0.clock.now();
        let stores = &self.0.stores;
        let mut tx = self.begin().await?;
        let profile = match stores
            .profiles
            .update_profile(tx.as_mut(), auth.principal_id, &patch, now)
            .await
        {
            Ok(profile) => profile,
            Err(sesame_core::StoreError::NotFound) => {
                return Err(Error::problem(
                    sesame_core::ErrorCode::NotFound,
                    "This account keeps its profile in another service",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        tx.touches(auth.principal_id);
        self.commit(tx).await?;
        Ok(profile)
    }
}
