//! Configuration: defaults, then a TOML file, then `SESAME_*` environment
//! variables (nested keys split on `__`), then command-line flags.

use crate::http_server::HttpLimits;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use sesame_app::access::{KindSeed, RoleSeed};
use sesame_app::events::{EventSettings, WebhookSeed};
use sesame_app::{LockoutPolicy, RateLimits, RetentionPolicy, Settings, WebauthnSettings};
use sesame_credentials::{Argon2Config, HashingConfig, NormaliseConfig, UsernameCharset};
use sesame_delivery::SmtpConfig;
use sesame_events::inbox::InboxSettings;
use sesame_events::{NatsStream, Schedule};
use sesame_store_postgres::{PgSettings, PgTarget};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Pretty in a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// The WebAuthn relying party (`[webauthn]`). Without `rp_id`, it is the
/// host of the public URL when that is a domain name (passkeys cannot be
/// bound to an IP address); without `origins`, the public URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebauthnConfig {
    /// The relying-party id: the domain passkeys are bound to.
    pub rp_id: Option<String>,
    /// The name authenticators show (default: `product_name`).
    pub rp_name: Option<String>,
    /// Origins that may run ceremonies, each `rp_id` or a subdomain of it.
    pub origins: Vec<String>,
}

/// Event delivery (`[events]`): webhook endpoints, retries and NATS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Standard Webhooks endpoints (`[[events.webhooks]]` with `name`, `url`,
    /// `secret` and optional `topics`).
    pub webhooks: Vec<WebhookSeed>,
    /// Milliseconds to wait before each attempt, the first normally 0; its
    /// length is the number of attempts. Default: the Standard Webhooks
    /// schedule (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// How long one webhook attempt may take.
    pub attempt_timeout_secs: u64,
    /// Let webhooks reach private and loopback addresses (off: such targets
    /// are refused, after DNS resolution too).
    pub allow_private_targets: bool,
    /// The longest wait between relay rounds; commits here wake it sooner.
    pub poll_interval_ms: u64,
    /// How long the relay, woken by a commit, waits before its round so that
    /// the events of the commits made meanwhile are relayed together.
    pub linger_ms: u64,
    /// The JetStream stream events are published to (created when missing).
    pub nats_stream: String,
    /// Put before each topic to make the NATS subject (e.g. `staging.`).
    pub nats_subject_prefix: String,
    /// The stream made for `accounts.user.role_required` when no stream
    /// captures that subject yet.
    pub nats_inbox_stream: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            retry_schedule_ms: None,
            attempt_timeout_secs: 15,
            allow_private_targets: false,
            poll_interval_ms: 500,
            linger_ms: 10,
            nats_stream: "SESAME_IDENTITY".into(),
            nats_subject_prefix: String::new(),
            nats_inbox_stream: "SESAME_INBOX".into(),
        }
    }
}

impl EventsConfig {
    /// The JetStream stream.
    pub fn nats_stream(&self) -> NatsStream {
        NatsStream {
            name: self.nats_stream.clone(),
            subject_prefix: self.nats_subject_prefix.clone(),
            ack_timeout: Duration::from_secs(self.attempt_timeout_secs.max(1)),
            ..NatsStream::default()
        }
    }

    /// Where `accounts.user.role_required` is consumed.
    pub fn inbox(&self) -> InboxSettings {
        InboxSettings {
            subject_prefix: self.nats_subject_prefix.clone(),
            stream: self.nats_inbox_stream.clone(),
            ..InboxSettings::default()
        }
    }

    /// The app's view.
    pub fn settings(&self) -> EventSettings {
        EventSettings {
            webhooks: self.webhooks.clone(),
            schedule: match &self.retry_schedule_ms {
                Some(ms) => Schedule(ms.iter().map(|m| Duration::from_millis(*m)).collect()),
                None => Schedule::default(),
            },
            attempt_timeout: Duration::from_secs(self.attempt_timeout_secs),
            allow_private_targets: self.allow_private_targets,
        }
    }
}

/// Where the data lives, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendTarget {
    /// The embedded file: the default path, or a `sqlite:` URL.
    Sqlite(Option<String>),
    /// PostgreSQL, on one connection string or two.
    Postgres(PgTarget),
}

/// Every setting of the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Connection cap and timeouts of the HTTP listener.
    pub http: HttpLimits,
    /// Directory for the database, the master key and outboxes.
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://…` or `postgres://…`; defaults to
    /// `<data_dir>/sesame.db`.
    pub database_url: Option<String>,
    /// Split mode: PostgreSQL URL for schema `identity` (with
    /// `credentials_database_url`, instead of `database_url`).
    pub identity_database_url: Option<String>,
    /// Split mode: PostgreSQL URL for schema `credentials`.
    pub credentials_database_url: Option<String>,
    /// PostgreSQL pool sizes and timeouts.
    pub postgres: PgSettings,
    /// Seconds between reads of the signing keys on a shared database, so that
    /// a key added by any instance is picked up by all.
    pub key_refresh_secs: u64,
    /// Redis URL for cooldowns shared across instances; without it they are
    /// decided by the database.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so that deployments can share a Redis.
    pub redis_key_prefix: String,
    /// Public base URL, used as the token issuer; defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// `aud` of every access token, for verifiers that check it.
    pub token_audience: Option<String>,
    /// The master key as 64 hex digits (prefer `master_key_file`).
    pub master_key: Option<SecretString>,
    /// File holding the master key; defaults to `<data_dir>/master.key`, created
    /// with mode 0600 when missing.
    pub master_key_file: Option<PathBuf>,
    /// Earlier master keys, still needed to open what they sealed while a
    /// master-key rotation rolls out.
    pub previous_master_key_files: Vec<PathBuf>,
    /// Seconds a new signing key from `sesame keys rotate` is published before
    /// it signs, so that verifiers that cache the JWKS learn it first.
    pub key_publish_secs: u64,
    /// Access-token lifetime in seconds.
    pub access_token_ttl_secs: u64,
    /// Session (and refresh-token) lifetime in seconds.
    pub session_ttl_secs: u64,
    /// Region for phone numbers given without a country code, e.g. `DE`.
    pub phone_default_region: Option<String>,
    /// Characters allowed in usernames: `ascii` or `unicode`.
    pub username_charset: UsernameCharset,
    /// Argon2id cost.
    pub argon2: Argon2Config,
    /// Hashing pool size.
    pub hashing: HashingConfig,
    /// Product name in message texts.
    pub product_name: String,
    /// Sender of e-mail.
    pub mail_from: String,
    /// SMTP server for e-mail; without it messages are written to
    /// `<data_dir>/outbox/mail`.
    pub smtp: Option<SmtpConfig>,
    /// Seconds before another code may be sent for the same purpose and login.
    pub code_resend_cooldown_secs: u64,
    /// Locking after consecutive failed sign-ins.
    pub lockout: LockoutPolicy,
    /// Locking of code confirmations for a login after failed ones, across
    /// codes (default: 10 failures, then 60 s doubling up to an hour).
    pub code_lockout: LockoutPolicy,
    /// Rate limits of sign-ins, code requests and confirmations.
    pub rate_limits: RateLimits,
    /// How long ended state is kept before the sweeper deletes it.
    pub retention: RetentionPolicy,
    /// Live sessions one principal may hold; a new one revokes the oldest.
    pub max_sessions_per_principal: u32,
    /// Seconds after a refresh token's first use in which presenting it again
    /// returns the same successor (a retry) instead of revoking the session.
    pub refresh_reuse_grace_secs: u64,
    /// Seconds within which a session must have signed in or re-authenticated
    /// to set a first password or bind or unbind login methods.
    pub reauth_window_secs: u64,
    /// Proxies (addresses or networks) whose `X-Forwarded-For` names the
    /// client; without any, the socket's peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Passkeys: the WebAuthn relying party.
    pub webauthn: WebauthnConfig,
    /// Roles created or updated at start (`[[roles]]` with `name` and
    /// `permissions`), besides the built-in `admin`.
    pub roles: Vec<RoleSeed>,
    /// The kinds of principal (`[[kinds]]` with `name` and `profile`):
    /// whether Sesame keeps each kind's profile or another service does.
    pub kinds: Vec<KindSeed>,
    /// Event delivery: webhooks, retries, the NATS stream.
    pub events: EventsConfig,
    /// Sign-in through other identity providers.
    pub federation: crate::federation_config::FederationConfig,
    /// Serve `GET /metrics` on this address instead of the API's (to keep
    /// it off the public port).
    pub metrics_listen: Option<SocketAddr>,
    /// NATS server with JetStream (`nats://host:4222`): events are published
    /// there too when set.
    pub nats_url: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter, in `RUST_LOG` syntax.
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http: HttpLimits::default(),
            data_dir: PathBuf::from("./sesame-data"),
            database_url: None,
            identity_database_url: None,
            credentials_database_url: None,
            postgres: PgSettings::default(),
            key_refresh_secs: 10,
            redis_url: None,
            redis_key_prefix: "sesame:".into(),
            public_url: None,
            token_audience: None,
            master_key: None,
            master_key_file: None,
            previous_master_key_files: Vec::new(),
            key_publish_secs: 600,
            access_token_ttl_secs: 900,
            session_ttl_secs: 30 * 24 * 3600,
            phone_default_region: None,
            username_charset: UsernameCharset::Ascii,
            argon2: Argon2Config::default(),
            hashing: HashingConfig::default(),
            product_name: "Sesame".into(),
            mail_from: "Sesame <no-reply@localhost>".into(),
            smtp: None,
            code_resend_cooldown_secs: 60,
            lockout: LockoutPolicy::default(),
            code_lockout: LockoutPolicy::codes(),
            rate_limits: RateLimits::default(),
            reauth_window_secs: 300,
            refresh_reuse_grace_secs: 10,
            retention: RetentionPolicy::default(),
            max_sessions_per_principal: 100,
            trusted_proxies: Vec::new(),
            webauthn: WebauthnConfig::default(),
            roles: Vec::new(),
            kinds: KindSeed::defaults(),
            events: EventsConfig::default(),
            federation: Default::default(),
            metrics_listen: None,
            nats_url: None,
            log_format: LogFormat::Auto,
            log_level: "info".into(),
        }
    }
}

/// The top-level keys of [`Config`], exactly as serde reads them, so that
/// `SESAME_*` variables are matched against every field the struct has (and a
/// new field can never be ignored from the environment) and unrelated ones are
/// ignored.
fn config_keys() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    /// A deserializer that only notes the field names it is asked for.
    struct FieldNames<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("field names only"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field names only"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut fields: &'static [&'static str] = &[];
        let _ = Config::deserialize(FieldNames(&mut fields));
        fields
    })
}

impl Config {
    /// Loads defaults, then `file` (when given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("SESAME_").split("__").filter(|key| {
            // Nested keys arrive as `a__b` or `a.b`; only the top level decides.
            let top = key.as_str().split("__").next().unwrap_or_default();
            let top = top.split('.').next().unwrap_or_default();
            config_keys().iter().any(|k| k.eq_ignore_ascii_case(top))
        }));
        figment.extract().map_err(Box::new)
    }

    /// The token issuer.
    pub fn issuer(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Where the data lives.
    pub fn backend(&self) -> Result<BackendTarget, String> {
        let is_pg = |url: &str| url.starts_with("postgres://") || url.starts_with("postgresql://");
        match (
            &self.database_url,
            &self.identity_database_url,
            &self.credentials_database_url,
        ) {
            (None, None, None) => Ok(BackendTarget::Sqlite(None)),
            (Some(url), None, None) if url.starts_with("sqlite:") => {
                Ok(BackendTarget::Sqlite(Some(url.clone())))
            }
            (Some(url), None, None) if is_pg(url) => {
                Ok(BackendTarget::Postgres(PgTarget::Single(url.clone())))
            }
            (Some(url), None, None) => {
                let scheme = url.split(':').next().unwrap_or_default();
                Err(format!(
                    "unsupported database URL scheme {scheme:?} (sqlite: or postgres:)"
                ))
            }
            (None, Some(identity), Some(credentials)) if is_pg(identity) && is_pg(credentials) => {
                Ok(BackendTarget::Postgres(PgTarget::Split {
                    identity: identity.clone(),
                    credentials: credentials.clone(),
                }))
            }
            (None, Some(_), Some(_)) => {
                Err("split mode needs two postgres:// URLs".into())
            }
            _ => Err(
                "set either database_url, or both identity_database_url and credentials_database_url"
                    .into(),
            ),
        }
    }

    /// The app's settings, for a server whose tokens name `issuer`; a
    /// `shared_database` (PostgreSQL) turns the in-process caches off, since
    /// other instances change what they would hold.
    pub fn settings(&self, issuer: &str, shared_database: bool) -> Settings {
        let secs = |s: u64| time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        Settings {
            issuer: issuer.to_owned(),
            audience: self.token_audience.clone(),
            event_source: format!(
                "sesame://{}",
                issuer
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
            ),
            access_token_ttl: secs(self.access_token_ttl_secs),
            session_ttl: secs(self.session_ttl_secs),
            normalise: self.normalise(),
            code_resend_cooldown: secs(self.code_resend_cooldown_secs),
            in_process_caches: !shared_database,
            lockout: self.lockout,
            code_lockout: self.code_lockout,
            rate_limits: self.rate_limits,
            reauth_window: secs(self.reauth_window_secs),
            refresh_reuse_grace: secs(self.refresh_reuse_grace_secs),
            retention: self.retention,
            max_sessions_per_principal: self.max_sessions_per_principal,
            totp_issuer: self.product_name.clone(),
            webauthn: self.webauthn(issuer),
            roles: self.roles.clone(),
            kinds: self.kinds.clone(),
            events: self.events.settings(),
            federation: self.federation.settings(),
            ..Settings::default()
        }
    }

    /// The relying party passkeys use, or `None` when neither `rp_id` is set
    /// nor the public URL names a domain.
    pub fn webauthn(&self, issuer: &str) -> Option<WebauthnSettings> {
        let origins = if self.webauthn.origins.is_empty() {
            vec![issuer.to_owned()]
        } else {
            self.webauthn.origins.clone()
        };
        let rp_id = self.webauthn.rp_id.clone().or_else(|| {
            let rest = origins[0].split("://").nth(1)?;
            let host = rest.split(['/', ':']).next()?;
            let is_ip = host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
            (!host.is_empty() && !is_ip).then(|| host.to_owned())
        })?;
        Some(WebauthnSettings {
            rp_id,
            rp_name: self
                .webauthn
                .rp_name
                .clone()
                .unwrap_or_else(|| self.product_name.clone()),
            origins,
        })
    }

    /// How logins are normalised.
    pub fn normalise(&self) -> NormaliseConfig {
        NormaliseConfig {
            phone_default_region: self
                .phone_default_region
                .as_deref()
                .and_then(sesame_credentials::login::parse_region),
            username_charset: self.username_charset,
        }
    }

    /// Checks values that the types alone do not.
    pub fn validate(&self) -> Result<(), String> {
        self.backend()?;
        sesame_http::TrustedProxies::parse(&self.trusted_proxies)?;
        for (name, rate) in [
            (
                "rate_limits.per_identifier",
                self.rate_limits.per_identifier,
            ),
            ("rate_limits.per_ip", self.rate_limits.per_ip),
        ] {
            if rate.limit == 0 || rate.window_secs == 0 {
                return Err(format!("{name}: limit and window_secs must be positive"));
            }
        }
        if let Some(region) = &self.phone_default_region
            && sesame_credentials::login::parse_region(region).is_none()
        {
            return Err(format!(
                "phone_default_region {region:?} is not a region code such as DE or US"
            ));
        }
        if self
            .events
            .retry_schedule_ms
            .as_ref()
            .is_some_and(Vec::is_empty)
            || self.events.attempt_timeout_secs == 0
        {
            return Err(
                "events.retry_schedule_ms needs one entry or more, events.attempt_timeout_secs must be positive"
                    .into(),
            );
        }
        if self.access_token_ttl_secs == 0 || self.session_ttl_secs < self.access_token_ttl_secs {
            return Err(
                "access_token_ttl_secs must be positive and at most session_ttl_secs".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its own error type
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_matched_against_every_field_of_config() {
        let keys = config_keys();
        for key in [
            "listen",
            "argon2",
            "hashing",
            "rate_limits",
            "max_sessions_per_principal",
            "trusted_proxies",
            "log_level",
        ] {
            assert!(keys.contains(&key), "{key} is missing from {keys:?}");
        }
        assert!(keys.len() >= 36, "{keys:?}");
        figment::Jail::expect_with(|jail| {
            jail.set_env("SESAME_MAX_SESSIONS_PER_PRINCIPAL", "7");
            jail.set_env("SESAME_REFRESH_REUSE_GRACE_SECS", "3");
            jail.set_env("SESAME_RATE_LIMITS__PER_IP__LIMIT", "11");
            // Not a setting: ignored, not refused as an unknown field.
            jail.set_env("SESAME_TEST_PYTHON", "/usr/bin/python3");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.max_sessions_per_principal, 7);
            assert_eq!(cfg.refresh_reuse_grace_secs, 3);
            assert_eq!(cfg.rate_limits.per_ip.limit, 11);
            Ok(())
        });
    }

    #[test]
    fn defaults_need_no_configuration() {
        figment::Jail::expect_with(|_| {
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(cfg.data_dir, PathBuf::from("./sesame-data"));
            assert_eq!(
                cfg.argon2,
                Argon2Config {
                    memory_kib: 65536,
                    iterations: 3,
                    parallelism: 4
                }
            );
            assert_eq!(cfg.access_token_ttl_secs, 900);
            assert_eq!(cfg.issuer(), "http://127.0.0.1:8080");
            Ok(())
        });
    }

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sesame.toml",
                "listen = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/sesame\"\n[argon2]\nmemory_kib = 19456\n",
            )?;
            jail.set_env("SESAME_LISTEN", "127.0.0.1:7000");
            jail.set_env("SESAME_ARGON2__ITERATIONS", "2");
            jail.set_env("SESAME_UNRELATED_THING", "ignored");
            jail.set_env("SESAME_SMTP__HOST", "smtp.example.com");
            jail.set_env("SESAME_SMTP__TLS", "tls");
            jail.set_env("SESAME_RATE_LIMITS__PER_IP__LIMIT", "500");
            jail.set_env("SESAME_TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"::1\"]");
            let cfg = Config::load(Some(Path::new("sesame.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen.to_string(), "127.0.0.1:7000");
            assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/sesame"));
            assert_eq!(
                cfg.argon2,
                Argon2Config {
                    memory_kib: 19456,
                    iterations: 2,
                    parallelism: 4
                }
            );
            let smtp = cfg.smtp.as_ref().ok_or("smtp missing")?;
            assert_eq!(smtp.host, "smtp.example.com");
            assert_eq!(smtp.tls, sesame_delivery::SmtpTls::Tls);
            assert_eq!(cfg.rate_limits.per_ip, sesame_core::Rate::new(500, 60));
            assert_eq!(
                cfg.rate_limits.per_identifier,
                sesame_core::Rate::new(10, 60)
            );
            assert_eq!(cfg.trusted_proxies, vec!["10.0.0.0/8", "::1"]);
            cfg.validate()?;
            Ok(())
        });
    }

    #[test]
    fn typos_in_the_file_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sesame.toml", "lsiten = \"0.0.0.0:9000\"\n")?;
            assert!(Config::load(Some(Path::new("sesame.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn backends() {
        let mut cfg = Config::default();
        assert_eq!(cfg.backend(), Ok(BackendTarget::Sqlite(None)));
        cfg.database_url = Some("postgres://u@h/db".into());
        assert_eq!(
            cfg.backend(),
            Ok(BackendTarget::Postgres(PgTarget::Single(
                "postgres://u@h/db".into()
            )))
        );
        cfg.database_url = Some("mysql://h/db".into());
        assert!(cfg.backend().is_err());
        cfg.database_url = None;
        cfg.identity_database_url = Some("postgres://a@h/db".into());
        assert!(cfg.backend().is_err(), "split mode needs both URLs");
        cfg.credentials_database_url = Some("postgres://b@h/db".into());
        assert!(matches!(
            cfg.backend(),
            Ok(BackendTarget::Postgres(PgTarget::Split { .. }))
        ));
        cfg.database_url = Some("postgres://u@h/db".into());
        assert!(cfg.backend().is_err(), "one URL or two, not both");
    }

    #[test]
    fn validation() {
        let mut cfg = Config {
            phone_default_region: Some("XX".into()),
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
        cfg.phone_default_region = Some("de".into());
        assert!(cfg.validate().is_ok());
    }
}
