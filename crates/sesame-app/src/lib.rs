//! Self-service flows that span both domains. Each flow validates its input,
//! does the slow work (hashing) outside any transaction, then writes the change,
//! its audit row and its outbox event in one commit.

pub mod access;
pub mod admin;
mod announce;
mod assertion;
mod brute_force;
mod cache;
mod codes;
pub mod erasure;
pub mod events;
pub mod federation;
pub mod import;
pub mod keys;
mod logins;
mod me;
mod mfa;
pub mod observe;
mod outgoing;
mod passkeys;
mod password;
mod proof;
mod reauth;
mod reclaim;
mod registration;
mod retention;
mod security_keys;
mod sessions;
mod sign_in;
mod totp;
pub mod views;
mod webauthn;
mod work;

use cache::Cache;
use sesame_core::{
    Clock, CounterStore, Database, Error, FailPoints, MemoryLimits, PrincipalId, SessionId,
    SharedLimits,
};
use sesame_credentials::{
    AccessClaims, AccessStore, ApiKeyRecord, AuditStore, CodeBook, ErasureStore, FederationStore,
    ImportStore, KeyRing, LoginAttemptStore, LoginMethodStore, MasterKeys, MfaStore,
    NormaliseConfig, PasskeyStore, PasswordHasher, PasswordStore, PrincipalStore, RetentionStore,
    Role, ServerSecretStore, SessionStore, SigningKeyStore, VerificationCodeStore,
    mfa::BackupCodeHasher,
};
use sesame_delivery::{Mailer, SmsSender, Templates};
use sesame_events::{OutboxStore, WebhookStore};
use sesame_identity::ProfileStore;
use std::sync::{Arc, RwLock};
use time::Duration;

pub use brute_force::{Budget, LockoutPolicy, RateLimits, client_network};
pub use codes::{CodeRequest, CodeSent, ConfirmRequest};
pub use logins::BindRequest;
pub use passkeys::{
    PasskeyRename, PasskeySignInFinish, PasskeySignUpBegin, PasskeySignUpFinish, PasskeyView,
};
pub use password::{PasswordChange, ResetConfirm, ResetRequest};
pub use reauth::{Reauthenticate, Reauthenticated};
pub use retention::RetentionPolicy;
pub use security_keys::{MfaWebauthnBegin, SecurityKeyEnrolled, SecurityKeyView};
pub use views::{
    BackupCodes, LoginView, MeView, MfaChallengeView, MfaVerify, PrincipalRef, RefreshRequest,
    RegisterRequest, Registered, SessionGrant, SessionView, SignInRequest, SignedIn, TotpCode,
    TotpEnrolment,
};
pub use webauthn::{CeremonyStarted, RegistrationFinish, WebauthnSettings};

/// Every store the flows need, each behind its trait.
#[derive(Clone)]
pub struct Stores {
    /// Transactions.
    pub db: Arc<dyn Database>,
    /// Roles, their assignments and service API keys.
    pub access: Arc<dyn AccessStore>,
    /// Erasure of principals.
    pub erasure: Arc<dyn ErasureStore>,
    /// Profiles (identity domain).
    pub profiles: Arc<dyn ProfileStore>,
    /// Principals.
    pub principals: Arc<dyn PrincipalStore>,
    /// Login methods.
    pub logins: Arc<dyn LoginMethodStore>,
    /// Password hashes.
    pub passwords: Arc<dyn PasswordStore>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// Signing keys.
    pub signing_keys: Arc<dyn SigningKeyStore>,
    /// Second factors and their challenges.
    pub mfa: Arc<dyn MfaStore>,
    /// Secrets of the server itself.
    pub secrets: Arc<dyn ServerSecretStore>,
    /// WebAuthn credentials and ceremonies.
    pub passkeys: Arc<dyn PasskeyStore>,
    /// Audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Outbox.
    pub outbox: Arc<dyn OutboxStore>,
    /// Webhook endpoints.
    pub webhooks: Arc<dyn WebhookStore>,
    /// Federation flows, connections and provider tokens.
    pub federation: Arc<dyn FederationStore>,
    /// Verification codes.
    pub codes: Arc<dyn VerificationCodeStore>,
    /// Sign-in attempts.
    pub attempts: Arc<dyn LoginAttemptStore>,
    /// Bulk paths of `sesame import`.
    pub import: Arc<dyn ImportStore>,
    /// Deleting what has outlived its use.
    pub retention: Arc<dyn RetentionStore>,
    /// Durable cooldowns and failure counters.
    pub counters: Arc<dyn CounterStore>,
    /// Rate limits, failure counters and cooldowns: in this process, or shared
    /// by every instance (Redis). Code cooldowns use them only when shared;
    /// otherwise the code store decides.
    pub limits: Arc<dyn SharedLimits>,
}

impl Stores {
    /// Every store from one backend that implements them all.
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: Database
            + AccessStore
            + ErasureStore
            + ProfileStore
            + PrincipalStore
            + LoginMethodStore
            + PasswordStore
            + SessionStore
            + SigningKeyStore
            + MfaStore
            + ServerSecretStore
            + PasskeyStore
            + AuditStore
            + OutboxStore
            + WebhookStore
            + FederationStore
            + VerificationCodeStore
            + LoginAttemptStore
            + ImportStore
            + RetentionStore
            + CounterStore
            + 'static,
    {
        Self {
            db: backend.clone(),
            access: backend.clone(),
            erasure: backend.clone(),
            profiles: backend.clone(),
            principals: backend.clone(),
            logins: backend.clone(),
            passwords: backend.clone(),
            sessions: backend.clone(),
            signing_keys: backend.clone(),
            mfa: backend.clone(),
            secrets: backend.clone(),
            passkeys: backend.clone(),
            audit: backend.clone(),
            outbox: backend.clone(),
            webhooks: backend.clone(),
            federation: backend.clone(),
            codes: backend.clone(),
            attempts: backend.clone(),
            import: backend.clone(),
            retention: backend.clone(),
            counters: backend,
            limits: Arc::new(MemoryLimits::default()),
        }
    }
}

/// Settings of the flows.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `iss` of every token: this deployment's public URL.
    pub issuer: String,
    /// `aud` of every access token, when set; tokens without it (or with
    /// another) are refused.
    pub audience: Option<String>,
    /// `source` of every event.
    pub event_source: String,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of a session and of its refresh tokens.
    pub session_ttl: Duration,
    /// Normalisation of login identifiers.
    pub normalise: NormaliseConfig,
    /// Wait before another code may be sent for the same purpose and login.
    pub code_resend_cooldown: Duration,
    /// Keep verified tokens, session state and account views in memory. Only
    /// correct when every write goes through this process (the embedded store).
    pub in_process_caches: bool,
    /// Locking after consecutive failed sign-ins.
    pub lockout: LockoutPolicy,
    /// Locking of a login's code confirmations after failed ones, across codes.
    pub code_lockout: LockoutPolicy,
    /// Rate limits per login and per client IP.
    pub rate_limits: RateLimits,
    /// How long what has ended is kept before the sweeper deletes it.
    pub retention: RetentionPolicy,
    /// Live sessions one principal may hold; a new one revokes the oldest.
    pub max_sessions_per_principal: u32,
    /// A refresh token presented again this soon after its first use gets the
    /// same successor instead of revoking the session.
    pub refresh_reuse_grace: Duration,
    /// How recently a session must have proved itself for sensitive changes
    /// (a first password, binding and unbinding login methods).
    pub reauth_window: Duration,
    /// The issuer authenticator apps show beside a TOTP factor.
    pub totp_issuer: String,
    /// How long a first factor's challenge waits for the second.
    pub mfa_challenge_ttl: Duration,
    /// Second-factor tries one challenge allows.
    pub mfa_challenge_tries: i64,
    /// The WebAuthn relying party; `None` turns passkeys off.
    pub webauthn: Option<WebauthnSettings>,
    /// Roles created or updated at start, besides the built-in `admin`.
    pub roles: Vec<access::RoleSeed>,
    /// The kinds of principal, and whether each keeps a profile here.
    pub kinds: Vec<access::KindSeed>,
    /// How events are delivered.
    pub events: events::EventSettings,
    /// Sign-in through other identity providers.
    pub federation: federation::FederationSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            audience: None,
            event_source: "sesame://localhost".into(),
            access_token_ttl: Duration::minutes(15),
            session_ttl: Duration::days(30),
            normalise: NormaliseConfig::default(),
            code_resend_cooldown: Duration::seconds(60),
            in_process_caches: true,
            lockout: LockoutPolicy::default(),
            code_lockout: LockoutPolicy::codes(),
            rate_limits: RateLimits::default(),
            reauth_window: Duration::minutes(5),
            refresh_reuse_grace: Duration::seconds(10),
            retention: RetentionPolicy::default(),
            max_sessions_per_principal: 100,
            totp_issuer: "Sesame".into(),
            mfa_challenge_ttl: Duration::minutes(5),
            mfa_challenge_tries: 5,
            webauthn: None,
            roles: Vec::new(),
            kinds: access::KindSeed::defaults(),
            events: events::EventSettings::default(),
            federation: federation::FederationSettings::default(),
        }
    }
}

/// Who is calling, as far as the network tells.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    /// Client IP address.
    pub ip: Option<String>,
    /// User agent, truncated.
    pub user_agent: Option<String>,
}

/// A verified access token whose session is still active.
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// The principal.
    pub principal_id: PrincipalId,
    /// Its kind.
    pub kind: String,
    /// The session.
    pub session_id: SessionId,
    /// Assurance level.
    pub aal: String,
    /// When the session last proved itself (sign-in or re-authentication).
    pub proven_at: time::OffsetDateTime,
}

/// Where messages go, and their texts.
#[derive(Clone)]
pub struct Delivery {
    /// E-mail.
    pub mailer: Arc<dyn Mailer>,
    /// Text messages.
    pub sms: Arc<dyn SmsSender>,
    /// Message texts.
    pub templates: Templates,
}

/// The application: stores, hasher, keys and clock, cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    stores: Stores,
    hasher: PasswordHasher,
    /// Replaced as a whole when the stored keys change.
    keys: RwLock<Arc<KeyRing>>,
    master: MasterKeys,
    clock: Arc<dyn Clock>,
    settings: Settings,
    failpoints: FailPoints,
    caches: Caches,
    codes: CodeBook,
    /// Keys backup-code hashes; counts second-factor guesses.
    backup: BackupCodeHasher,
    /// The WebAuthn relying party, when configured.
    webauthn: Option<assertion::RelyingParty>,
    hashing_slots: Arc<brute_force::HashingSlots>,
    outgoing: outgoing::Outgoing,
    /// Wakes the outbox relay after each commit.
    relay_wake: Arc<tokio::sync::Notify>,
    /// The relying party of federated sign-ins.
    federation: Arc<sesame_federation::Federation>,
}

/// What the in-process caches hold.
struct Caches {
    /// Verified access tokens and their claims: a signature check only, so it is
    /// on with every backend and cleared when the key set changes.
    tokens: Cache<String, AccessClaims>,
    /// Session state as last read from the store.
    sessions: Cache<SessionId, SessionState>,
    /// Account views.
    me: Cache<PrincipalId, Arc<MeView>>,
    /// The roles each principal holds.
    roles: Cache<PrincipalId, Arc<Vec<Role>>>,
    /// Service API keys by key id.
    api_keys: Cache<String, ApiKeyRecord>,
}

/// What an access-token check needs of a session.
#[derive(Debug, Clone, Copy)]
struct SessionState {
    principal_id: PrincipalId,
    expires_at: time::OffsetDateTime,
    revoked: bool,
    proven_at: time::OffsetDateTime,
}

impl App {
    /// Builds the application; creates the first signing key when there is none.
    pub async fn new(
        stores: Stores,
        hasher: PasswordHasher,
        master: MasterKeys,
        clock: Arc<dyn Clock>,
        settings: Settings,
        failpoints: FailPoints,
        delivery: Delivery,
    ) -> Result<Self, Error> {
        let ring = keys::load_or_create(&stores, &master, clock.as_ref(), &settings.issuer).await?;
        let on = settings.in_process_caches;
        let caches = Caches {
            tokens: Cache::new(100_000, true),
            sessions: Cache::new(100_000, on),
            me: Cache::new(100_000, on),
            roles: Cache::new(100_000, on),
            api_keys: Cache::new(10_000, on),
        };
        let codes = CodeBook::new(master.current().derive("sesame/verification-codes/v1")?);
        let backup = totp::backup_hasher(&stores, &master, clock.now()).await?;
        let webauthn = settings
            .webauthn
            .as_ref()
            .map(WebauthnSettings::build)
            .transpose()?;
        let outgoing = outgoing::Outgoing::spawn(stores.codes.clone(), delivery);
        let federation =
            sesame_federation::Federation::new(settings.federation.timeout, clock.clone())
                .map_err(|e| Error::internal(format!("the outbound HTTP client: {e}")))?;
        for seed in &settings.federation.connections {
            sesame_federation::Connection::new(
                &seed.name,
                seed.settings.clone(),
                seed.secret.clone(),
                true,
            )
            .map_err(|(field, code)| {
                Error::internal(format!("connection {}: {field} {code}", seed.name))
            })?;
        }
        let app = Self(Arc::new(Inner {
            caches,
            codes,
            backup,
            webauthn,
            outgoing,
            hashing_slots: Arc::default(),
            relay_wake: Arc::default(),
            federation: Arc::new(federation),
            stores,
            hasher,
            keys: RwLock::new(Arc::new(ring)),
            master,
            clock,
            settings,
            failpoints,
        }));
        app.seed_roles().await?;
        app.seed_webhooks().await?;
        Ok(app)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Vec<u8> {
        self.key_ring().jwks().to_vec()
    }

    /// The key ring in use.
    pub(crate) fn key_ring(&self) -> Arc<KeyRing> {
        self.0
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the signing keys again and switches to them when the set to
    /// publish or the key that signs changed (a key was added by another
    /// process, one activated or one retired); true when they did.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn reload_keys(&self) -> Result<bool, Error> {
        let records = self.0.stores.signing_keys.list_signing_keys().await?;
        let ring = KeyRing::from_records(
            &records,
            &self.0.master,
            &self.0.settings.issuer,
            self.0.clock.now(),
        )?;
        let current = self.key_ring();
        if ring.jwks() == current.jwks() && ring.signing_kid() == current.signing_kid() {
            return Ok(false);
        }
        tracing::info!(kid = ?ring.signing_kid(), "signing keys changed");
        *self.0.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        // A key that is no longer published must stop verifying at once.
        self.0.caches.tokens.clear();
        Ok(true)
    }

    /// Checks that the database answers.
    pub async fn ready(&self) -> Result<(), Error> {
        let unavailable = |what: &str, e: sesame_core::StoreError| {
            tracing::warn!(error = %e, "{what} is not answering");
            Error::problem(
                sesame_core::ErrorCode::Unavailable,
                format!("{what} is not answering"),
            )
        };
        self.0
            .stores
            .db
            .ping()
            .await
            .map_err(|e| unavailable("the database", e))?;
        self.0
            .stores
            .limits
            .ping()
            .await
            .map_err(|e| unavailable("redis", e))
    }

    /// The password hashing pool.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.0.hasher
    }

    /// Waits until every code message asked for so far has been stored and
    /// handed to the mailer or SMS sender.
    pub async fn flush_deliveries(&self) {
        self.0.outgoing.flush().await;
    }

    /// How many code guesses have been compared with a stored code.
    pub fn code_comparisons(&self) -> u64 {
        self.0.codes.comparisons()
    }
}

/// A new opaque id handed out once (256 random bits, base64url) and the
/// SHA-256 that is all that is stored of it: MFA challenges and WebAuthn
/// ceremonies.
pub(crate) fn new_opaque_id() -> Result<(String, Vec<u8>), Error> {
    use base64::Engine;
    let bytes = sesame_credentials::random_bytes::<32>()?;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_opaque_id(&id);
    Ok((id, hash))
}

/// What is stored of an opaque id.
pub(crate) fn hash_opaque_id(id: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes()).to_vec()
}

/// Names `id` as the principal on the current span (a flow's, or the
/// request's at the HTTP edge), once it is known.
pub fn record_principal(id: PrincipalId) {
    tracing::Span::current().record("principal_id", tracing::field::display(id));
}
