//! Wiring: data directory, master key, database, hashing pool, key ring, router,
//! outbox relay, and graceful shutdown.

use crate::config::{BackendTarget, Config};
use sesame_app::{App, Delivery, Stores};
use sesame_core::{Clock, FailPoints, SystemClock};
use sesame_credentials::{MasterKey, MasterKeys, PasswordHasher};
use sesame_delivery::{FileMailer, FileSmsSender, SmtpMailer, Templates};
use sesame_events::{LogSink, NatsSink, Relay, RelayOptions, Sink};
use sesame_redis::RedisLimits;
use sesame_store_postgres::{PgStore, PgTarget};
use sesame_store_sqlite::SqliteStore;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What can go wrong while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The data directory or key file could not be prepared.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database or a service failed to start.
    #[error("{0}")]
    Service(String),
}

/// Parts a test may swap: the clock and armed fail points.
#[derive(Clone)]
pub struct Hooks {
    /// Source of time.
    pub clock: Arc<dyn Clock>,
    /// Fail points inside transactions.
    pub failpoints: FailPoints,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            failpoints: FailPoints::default(),
        }
    }
}

/// The storage backend a server runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded file.
    Sqlite(Arc<SqliteStore>),
    /// PostgreSQL.
    Postgres(Arc<PgStore>),
}

impl Backend {
    /// Every store trait of this backend.
    pub(crate) fn stores(&self) -> Stores {
        match self {
            Backend::Sqlite(s) => Stores::from_backend(s.clone()),
            Backend::Postgres(s) => Stores::from_backend(s.clone()),
        }
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    backend: Backend,
    app: App,
}

impl Server {
    /// Prepares everything and starts listening; returns once the socket is bound.
    pub async fn start(config: &Config, hooks: Hooks) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        private_files();
        create_private_dir(&config.data_dir)?;
        let master = load_master_keys(config)?;
        let backend = open_backend(config, false).await?;
        let mut stores = backend.stores();
        // Locks and budgets in the database; rate limits in the process.
        stores.limits = Arc::new(sesame_core::DurableLimits::new(
            stores.counters.clone(),
            hooks.clock.clone(),
        ));
        if let Some(url) = &config.redis_url {
            let limits = RedisLimits::connect(url, &config.redis_key_prefix)
                .await
                .map_err(|e| StartError::Service(e.to_string()))?;
            stores.limits = Arc::new(sesame_core::FallbackLimits::new(
                Arc::new(limits),
                sesame_core::MemoryLimits::with_clock(hooks.clock.clone()),
            ));
        }
        // Only the embedded store has a single writer, this process; on a shared
        // database every request reads what other instances may have changed.
        let shared_database = matches!(backend, Backend::Postgres(_));

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Io {
                path: PathBuf::from(config.listen.to_string()),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Service(e.to_string()))?;
        // With port 0 the issuer names the port actually bound.
        let issuer = match &config.public_url {
            Some(_) => config.issuer(),
            None => format!("http://{addr}"),
        };
        let app = build_app(
            config,
            stores.clone(),
            master,
            config.settings(&issuer, shared_database),
            hooks.clock.clone(),
            hooks.failpoints.clone(),
        )
        .await?;

        let (shutdown, rx) = watch::channel(false);

        let proxies = sesame_http::TrustedProxies::parse(&config.trusted_proxies)
            .map_err(StartError::Config)?;
        sesame_app::observe::handle();
        let mut router = sesame_http::router_behind(app.clone(), proxies);
        let mut metrics = None;
        match config.metrics_listen {
            None => router = router.merge(sesame_http::metrics_router(app.clone())),
            Some(at) => {
                let listener = TcpListener::bind(at)
                    .await
                    .map_err(|source| StartError::Io {
                        path: PathBuf::from(at.to_string()),
                        source,
                    })?;
                metrics = Some(tokio::spawn(crate::http_server::serve(
                    listener,
                    sesame_http::metrics_router(app.clone()),
                    config.http,
                    rx.clone(),
                )));
            }
        }
        let http = tokio::spawn(crate::http_server::serve(
            listener,
            router,
            config.http,
            rx.clone(),
        ));
        let log: Arc<dyn Sink> = Arc::new(sesame_app::erasure::ProfileEraser::new(
            stores.profiles.clone(),
            Arc::new(LogSink),
        ));
        let mut fixed = vec![log];
        let mut consumer = None;
        if let Some(url) = &config.nats_url {
            let js = sesame_events::nats::connect(url)
                .await
                .map_err(StartError::Service)?;
            fixed.push(Arc::new(NatsSink::new(
                js.clone(),
                config.events.nats_stream(),
            )));
            let counts = Arc::new(|what: &'static str| {
                metrics::counter!("sesame_consumer_errors_total", "kind" => what).increment(1);
            });
            let handler = sesame_app::events::RoleRequests::new(app.clone(), counts);
            consumer = Some(tokio::spawn(sesame_events::inbox::consume(
                js,
                config.events.inbox(),
                Arc::new(handler),
                rx.clone(),
            )));
        }
        let sinks = app
            .event_sinks(fixed)
            .map_err(|e| StartError::Service(e.to_string()))?;
        let relay_failpoints = hooks.failpoints;
        let relay = Relay::new(
            stores.outbox.clone(),
            sinks,
            hooks.clock,
            RelayOptions {
                interval: Duration::from_millis(config.events.poll_interval_ms.max(1)),
                linger: Duration::from_millis(config.events.linger_ms),
                // Longer than any attempt (a webhook's timeout, a NATS ack).
                lease: Duration::from_secs(config.events.attempt_timeout_secs.max(1))
                    .saturating_mul(2)
                    .saturating_add(Duration::from_secs(1)),
                schedule: app.retry_schedule(),
                failpoints: relay_failpoints,
                ..RelayOptions::default()
            },
            app.relay_wake(),
        );
        // Keys are re-read on every backend: `sesame keys rotate` may add one
        // from another process, and activations and retirements happen in time.
        let every = Duration::from_secs(config.key_refresh_secs.max(1));
        let mut tasks = vec![
            http,
            tokio::spawn(relay.run(rx.clone())),
            tokio::spawn(refresh_keys(app.clone(), every, rx.clone())),
            tokio::spawn(sweep(
                app.clone(),
                Duration::from_secs(config.retention.sweep_every_secs.max(1)),
                rx,
            )),
        ];
        tasks.extend(consumer);
        tasks.extend(metrics);
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "sesame is listening");
        Ok(Self {
            addr,
            shutdown,
            tasks,
            backend,
            app,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The application, for tests that look behind the API.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The storage backend, for tests that inspect the database.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Stops accepting, lets in-flight requests finish and delivers pending events.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Every file and folder this process creates (the database, its WAL, the
/// outbox and its messages) is for its owner alone, whatever the data
/// directory's mode.
fn private_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// A master key that others may read is refused: it opens every sealed secret.
fn refuse_shared_key_file(path: &Path) -> Result<(), StartError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StartError::Config(format!(
                    "{} is readable or writable by others (mode {mode:03o}); run chmod 600 on it",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StartError> {
    let io = |source| StartError::Io {
        path: dir.to_owned(),
        source,
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    Ok(())
}

/// The master key that seals (see [`load_master_key`]) and the previous ones
/// still configured to open what they sealed.
pub(crate) fn load_master_keys(config: &Config) -> Result<MasterKeys, StartError> {
    let current = load_master_key(config)?;
    let previous = config
        .previous_master_key_files
        .iter()
        .map(|path| {
            refuse_shared_key_file(path)?;
            let text = std::fs::read_to_string(path).map_err(|source| StartError::Io {
                path: path.clone(),
                source,
            })?;
            MasterKey::parse(&text)
                .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MasterKeys::new(current, previous))
}

/// The master key from the configuration, its file, or a new file in the data
/// directory (mode 0600).
fn load_master_key(config: &Config) -> Result<MasterKey, StartError> {
    use secrecy::ExposeSecret;
    if let Some(key) = &config.master_key {
        return MasterKey::parse(key.expose_secret())
            .map_err(|e| StartError::Config(e.to_string()));
    }
    let path = config
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("master.key"));
    let io = |source| StartError::Io {
        path: path.clone(),
        source,
    };
    refuse_shared_key_file(&path)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::parse(&text)
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.master_key_file.is_none() => {
            let bytes: [u8; 32] = sesame_credentials::random_bytes()
                .map_err(|e| StartError::Service(e.to_string()))?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(io)?;
            file.write_all(format!("{hex}\n").as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            tracing::info!(path = %path.display(), "created a new master key");
            Ok(MasterKey::from_bytes(bytes))
        }
        Err(e) => Err(io(e)),
    }
}

/// Re-reads the signing keys every `every` until shutdown.
async fn refresh_keys(app: App, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = app.reload_keys().await {
                    tracing::warn!(error = %e, "could not re-read the signing keys");
                }
            }
            stopped = stop.changed() => {
                if stopped.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// Sweeps ended state on every tick until told to stop.
async fn sweep(app: App, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = app.sweep().await {
                    tracing::warn!(error = %e, "sweeping ended state failed");
                }
            }
            stopped = stop.changed() => {
                if stopped.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// The application on `stores`: the hasher, the mailer and SMS sender of the
/// configuration, and `settings`.
pub(crate) async fn build_app(
    config: &Config,
    stores: sesame_app::Stores,
    master: sesame_credentials::MasterKeys,
    settings: sesame_app::Settings,
    clock: Arc<dyn sesame_core::Clock>,
    failpoints: sesame_core::FailPoints,
) -> Result<App, StartError> {
    let hasher = PasswordHasher::new(config.argon2, config.hashing)
        .map_err(|e| StartError::Config(e.to_string()))?;
    let outbox = config.data_dir.join("outbox");
    let mailer: Arc<dyn sesame_delivery::Mailer> = match &config.smtp {
        Some(smtp) => Arc::new(
            SmtpMailer::new(smtp, &config.mail_from)
                .map_err(|e| StartError::Config(e.to_string()))?,
        ),
        None => Arc::new(FileMailer::new(
            outbox.join("mail"),
            config.mail_from.clone(),
        )),
    };
    let delivery = Delivery {
        mailer,
        sms: Arc::new(FileSmsSender::new(outbox.join("sms"))),
        templates: Templates::new(config.product_name.clone()),
    };
    App::new(
        stores, hasher, master, clock, settings, failpoints, delivery,
    )
    .await
    .map_err(|e| StartError::Service(e.to_string()))
}

/// Opens the configured backend. The embedded file and a single PostgreSQL
/// connection string are migrated on the spot; in split mode the roles cannot
/// change the schemas, so `sesame migrate` must have run (`migrate` = true is
/// that command).
pub(crate) async fn open_backend(config: &Config, migrate: bool) -> Result<Backend, StartError> {
    let service = |e: sesame_core::StoreError| StartError::Service(e.to_string());
    match config.backend().map_err(StartError::Config)? {
        BackendTarget::Sqlite(url) => {
            let store = match url {
                Some(url) => SqliteStore::open_url(&url).await,
                None => {
                    create_private_dir(&config.data_dir)?;
                    SqliteStore::open(&config.data_dir.join("sesame.db")).await
                }
            };
            Ok(Backend::Sqlite(Arc::new(store.map_err(service)?)))
        }
        BackendTarget::Postgres(target) => {
            let store = PgStore::connect(&target, &config.postgres)
                .await
                .map_err(service)?;
            if migrate || matches!(target, PgTarget::Single(_)) {
                store.migrate().await.map_err(service)?;
            } else {
                store.require_current().await.map_err(service)?;
            }
            Ok(Backend::Postgres(Arc::new(store)))
        }
    }
}
