//! Sessions: creating them, access-token checks, refresh rotation with reuse
//! detection, listing and revocation.

use crate::{App, AuthContext, ClientMeta, PrincipalRef, SessionGrant, SessionState, SessionView};
use serde_json::json;
use sesame_core::{Error, ErrorCode, PrincipalId, SessionId, Tx};
use sesame_credentials::{AccessClaims, RefreshSecret, RefreshToken, Session, hash_refresh_token};
use sesame_events::topics;
use time::OffsetDateTime;
use uuid::Uuid;

/// A session about to be written, with the refresh token to hand out once.
pub(crate) struct NewSession {
    pub session: Session,
    refresh: RefreshToken,
    secret: RefreshSecret,
}

impl App {
    /// Builds a session and its first refresh token.
    pub(crate) fn new_session(
        &self,
        principal_id: PrincipalId,
        kind: &str,
        amr: &[&str],
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<NewSession, Error> {
        let expires_at = now + self.0.settings.session_ttl;
        let session = Session {
            id: SessionId::new(),
            principal_id,
            principal_kind: kind.to_owned(),
            aal: "aal1".into(),
            amr: amr.iter().map(|s| (*s).to_owned()).collect(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at,
            revoked_at: None,
            revoke_reason: None,
            proven_at: now,
        };
        let (refresh, secret) = refresh_token(session.id, None, expires_at, now)?;
        Ok(NewSession {
            session,
            refresh,
            secret,
        })
    }

    /// Writes a new session and its refresh token; beyond
    /// `max_sessions_per_principal` the oldest live sessions are revoked.
    /// The revocation comes first, keeping one fewer, so that the two writes
    /// after it need no answer and can go with the commit.
    pub(crate) async fn insert_session(
        &self,
        tx: &mut dyn Tx,
        new: &NewSession,
    ) -> Result<(), Error> {
        let sessions = &self.0.stores.sessions;
        let keep = i64::from(self.0.settings.max_sessions_per_principal.max(1)) - 1;
        let revoked = sessions
            .revoke_sessions_beyond(tx, new.session.principal_id, keep, new.session.created_at)
            .await?;
        // Dropped now: a revoked session never becomes valid again, so doing it
        // before the commit is harmless.
        self.forget_sessions(&revoked);
        sessions.insert_session(tx, &new.session).await?;
        sessions.insert_refresh_token(tx, &new.refresh).await?;
        Ok(())
    }

    /// The session object for a committed session; the token carries the
    /// roles the principal holds now.
    pub(crate) async fn grant(
        &self,
        session: &Session,
        refresh_token: Option<String>,
        now: OffsetDateTime,
    ) -> Result<SessionGrant, Error> {
        let roles = self.role_names(session.principal_id).await?;
        let ttl = self.0.settings.access_token_ttl;
        let claims = AccessClaims {
            iss: self.0.settings.issuer.clone(),
            sub: session.principal_id.0,
            kind: session.principal_kind.clone(),
            sid: session.id.0,
            aal: session.aal.clone(),
            amr: session.amr.clone(),
            iat: now.unix_timestamp(),
            exp: (now + ttl).unix_timestamp(),
            jti: Uuid::now_v7(),
            roles,
            aud: self.0.settings.audience.clone(),
        };
        Ok(SessionGrant {
            access_token: self.key_ring().sign(&claims)?,
            token_type: "Bearer",
            expires_in: ttl.whole_seconds(),
            refresh_token,
            session_id: session.id,
            principal: PrincipalRef {
                id: session.principal_id,
                kind: session.principal_kind.clone(),
            },
        })
    }

    /// The session object for a session written in a transaction now committed.
    pub(crate) async fn grant_new(
        &self,
        new: NewSession,
        now: OffsetDateTime,
    ) -> Result<SessionGrant, Error> {
        metrics::counter!("sesame_sessions_opened_total").increment(1);
        self.grant(&new.session, Some(new.secret.token), now).await
    }

    /// Verifies an access token and checks that its session is still active.
    #[tracing::instrument(skip_all, level = "debug", err(level = "debug"))]
    pub async fn authenticate(&self, token: &str) -> Result<AuthContext, Error> {
        let (claims, state) = self.check_access_token(token).await?;
        Ok(AuthContext {
            principal_id: state.principal_id,
            kind: claims.kind,
            session_id: SessionId(claims.sid),
            aal: claims.aal,
            proven_at: state.proven_at,
        })
    }

    /// An access token's claims and its session's state, when the signature,
    /// expiry and audience hold and the session is live; `invalid_token`
    /// otherwise.
    pub(crate) async fn check_access_token(
        &self,
        token: &str,
    ) -> Result<(AccessClaims, SessionState), Error> {
        let now = self.0.clock.now();
        let caches = &self.0.caches;
        let claims = match caches.tokens.get(token) {
            Some(claims) if claims.exp > now.unix_timestamp() => claims,
            Some(_) => {
                return Err(Error::problem(
                    ErrorCode::InvalidToken,
                    "The access token has expired",
                ));
            }
            None => {
                let ticket = caches.tokens.ticket();
                let claims = self.key_ring().verify(token, now)?;
                caches.tokens.fill(token.to_owned(), claims.clone(), ticket);
                claims
            }
        };
        if claims.aud != self.0.settings.audience {
            return Err(Error::problem(
                ErrorCode::InvalidToken,
                "The access token is for another audience",
            ));
        }
        let sid = SessionId(claims.sid);
        let state = match caches.sessions.get(&sid) {
            Some(state) => state,
            None => {
                let ticket = caches.sessions.ticket();
                let session = match self.0.stores.sessions.get_session(sid).await {
                    Ok(s) => s,
                    Err(sesame_core::StoreError::NotFound) => {
                        return Err(Error::code(ErrorCode::InvalidToken));
                    }
                    Err(e) => return Err(e.into()),
                };
                let state = SessionState {
                    principal_id: session.principal_id,
                    expires_at: session.expires_at,
                    revoked: session.revoked_at.is_some(),
                    proven_at: session.proven_at,
                };
                caches.sessions.fill(sid, state, ticket);
                state
            }
        };
        if state.revoked || state.expires_at <= now || state.principal_id.0 != claims.sub {
            return Err(Error::problem(
                ErrorCode::InvalidToken,
                "The session has ended",
            ));
        }
        Ok((claims, state))
    }

    /// Exchanges a refresh token for a new one and a new access token. A token
    /// that was already used revokes the whole session.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn refresh(&self, token: &str, meta: &ClientMeta) -> Result<SessionGrant, Error> {
        let now = self.0.clock.now();
        let stores = &self.0.stores;
        let invalid = || Error::problem(ErrorCode::InvalidToken, "The refresh token is not valid");
        let (stored, session) = stores
            .sessions
            .find_refresh_token(&hash_refresh_token(token))
            .await?
            .ok_or_else(invalid)?;
        crate::record_principal(session.principal_id);
        if !session.is_active(now) {
            return Err(invalid());
        }
        if let Some(used_at) = stored.used_at {
            return self
                .refresh_again(&stored, used_at, &session, meta, now)
                .await;
        }
        if stored.expires_at <= now {
            return Err(invalid());
        }
        let (mut next, secret) =
            refresh_token(session.id, Some(stored.id), session.expires_at, now)?;
        next.secret_sealed = Some(
            self.0
                .master
                .current()
                .seal(secret.token.as_bytes(), &successor_context(next.id))?,
        );
        if !stores
            .sessions
            .rotate_refresh_token(stored.id, &next, now)
            .await?
        {
            // Another request used it first: a retry, or a reuse.
            return self.refresh_again(&stored, now, &session, meta, now).await;
        }
        self.grant(&session, Some(secret.token), now).await
    }

    /// A refresh token presented again: within `refresh_reuse_grace` of its
    /// first use, and while its successor is unused, the answer is that same
    /// successor (a client that lost the response, two tabs); otherwise it is a
    /// reuse, and the whole session is revoked.
    async fn refresh_again(
        &self,
        used: &RefreshToken,
        used_at: OffsetDateTime,
        session: &Session,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<SessionGrant, Error> {
        if now - used_at <= self.0.settings.refresh_reuse_grace
            && let Some(next) = self.0.stores.sessions.find_successor(used.id).await?
            && next.used_at.is_none()
            && next.session_id == session.id
            && let Some(sealed) = &next.secret_sealed
        {
            let token = self.0.master.open(sealed, &successor_context(next.id))?;
            let token = String::from_utf8(token)
                .map_err(|_| Error::internal("a sealed refresh token is not text"))?;
            return self.grant(session, Some(token), now).await;
        }
        Err(self.revoke_for_reuse(session, meta, now).await)
    }

    async fn revoke_for_reuse(
        &self,
        session: &Session,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Error {
        tracing::warn!(session_id = %session.id, principal_id = %session.principal_id, "refresh token reused; revoking the session");
        match self
            .revoke(
                session.principal_id,
                session.id,
                "refresh_token_reused",
                meta,
                now,
            )
            .await
        {
            Ok(()) => Error::code(ErrorCode::TokenReused),
            Err(e) => e,
        }
    }

    /// Revokes a session with its audit row and event.
    async fn revoke(
        &self,
        principal: PrincipalId,
        id: SessionId,
        reason: &str,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let stores = &self.0.stores;
        let mut tx = self.begin().await?;
        if stores
            .sessions
            .revoke_session(tx.as_mut(), id, reason, now)
            .await?
        {
            let data = json!({ "session_id": id, "reason": reason });
            self.announce(&mut tx, principal, topics::SESSION_REVOKED, meta, data, now)
                .await?;
        }
        tx.ends(&[id]);
        self.commit(tx).await?;
        Ok(())
    }

    /// Signs out: revokes the caller's session.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn sign_out(&self, auth: &AuthContext, meta: &ClientMeta) -> Result<(), Error> {
        self.revoke(
            auth.principal_id,
            auth.session_id,
            "signed_out",
            meta,
            self.0.clock.now(),
        )
        .await
    }

    /// The caller's active sessions.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn list_sessions(&self, auth: &AuthContext) -> Result<Vec<SessionView>, Error> {
        let sessions = self
            .0
            .stores
            .sessions
            .list_active_sessions(auth.principal_id, self.0.clock.now())
            .await?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionView::of(s, auth.session_id))
            .collect())
    }

    /// Revokes one of the caller's own sessions.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn revoke_session(
        &self,
        auth: &AuthContext,
        id: SessionId,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let now = self.0.clock.now();
        let not_found = || Error::problem(ErrorCode::NotFound, "No such session");
        let session = match self.0.stores.sessions.get_session(id).await {
            Ok(s) => s,
            Err(sesame_core::StoreError::NotFound) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if session.principal_id != auth.principal_id || !session.is_active(now) {
            return Err(not_found());
        }
        self.revoke(auth.principal_id, id, "revoked_by_user", meta, now)
            .await
    }
}

/// A new refresh token for `session`: the record to store (hash only) and the
/// secret to hand out once.
/// What a successor refresh token is sealed to: its own row.
fn successor_context(id: Uuid) -> Vec<u8> {
    let mut context = b"sesame/refresh-successor/v1:".to_vec();
    context.extend_from_slice(id.as_bytes());
    context
}

fn refresh_token(
    session: SessionId,
    parent: Option<Uuid>,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(RefreshToken, RefreshSecret), Error> {
    let secret = RefreshSecret::generate()?;
    let record = RefreshToken {
        id: Uuid::now_v7(),
        session_id: session,
        token_hash: secret.hash.clone(),
        parent_id: parent,
        used_at: None,
        created_at: now,
        expires_at,
        secret_sealed: None,
    };
    Ok((record, secret))
}
