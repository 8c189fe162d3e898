//! Wiring: data directory, master key, database, hashing pool, key ring, router,
//! outbox relay, and graceful shutdown.

use crate::config::Config;
use sesame_app::{App, Delivery, Settings, Stores};
use sesame_core::{Clock, FailPoints, SystemClock};
use sesame_credentials::{MasterKey, NormaliseConfig, PasswordHasher, login::parse_region};
use sesame_delivery::{FileMailer, FileSmsSender, SmtpMailer, Templates};
use sesame_events::{LogSink, Relay};
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

/// A running server.
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: Arc<SqliteStore>,
    app: App,
}

impl Server {
    /// Prepares everything and starts listening; returns once the socket is bound.
    pub async fn start(config: &Config, hooks: Hooks) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        create_private_dir(&config.data_dir)?;
        let master = load_master_key(config)?;
        let store = Arc::new(open_store(config).await?);
        let stores = Stores::from_backend(store.clone());

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
        let hasher = PasswordHasher::new(config.argon2, config.hashing)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let settings = Settings {
            issuer: issuer.clone(),
            event_source: format!(
                "sesame://{}",
                issuer
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
            ),
            access_token_ttl: time::Duration::seconds(config.access_token_ttl_secs as i64),
            session_ttl: time::Duration::seconds(config.session_ttl_secs as i64),
            normalise: NormaliseConfig {
                phone_default_region: config
                    .phone_default_region
                    .as_deref()
                    .and_then(parse_region),
                username_charset: config.username_charset,
            },
            code_resend_cooldown: time::Duration::seconds(config.code_resend_cooldown_secs as i64),
            // The embedded store has one writer: this process.
            in_process_caches: true,
        };
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
        let app = App::new(
            stores.clone(),
            hasher,
            master,
            hooks.clock.clone(),
            settings,
            hooks.failpoints,
            delivery,
        )
        .await
        .map_err(|e| StartError::Service(e.to_string()))?;

        let (shutdown, rx) = watch::channel(false);

        let router = sesame_http::router(app.clone());
        let mut serve_rx = rx.clone();
        let http = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let result = axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = serve_rx.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        let relay = Relay::new(
            stores.outbox.clone(),
            Arc::new(LogSink),
            hooks.clock,
            Duration::from_millis(500),
        );
        let relay = tokio::spawn(relay.run(rx));
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "sesame is listening");
        Ok(Self {
            addr,
            shutdown,
            tasks: vec![http, relay],
            store,
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
    pub fn store(&self) -> &Arc<SqliteStore> {
        &self.store
    }

    /// Stops accepting, lets in-flight requests finish and delivers pending events.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
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

async fn open_store(config: &Config) -> Result<SqliteStore, StartError> {
    let result = match &config.database_url {
        Some(url) if url.starts_with("sqlite:") => SqliteStore::open_url(url).await,
        Some(url) => {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(StartError::Config(format!(
                "unsupported database URL scheme {scheme:?}"
            )));
        }
        None => SqliteStore::open(&config.data_dir.join("sesame.db")).await,
    };
    result.map_err(|e| StartError::Service(e.to_string()))
}
