//! The `sesame` command.

use clap::{Parser, Subcommand};
use sesame::{Config, Hooks, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const CONFIG_HELP: &str = "\
CONFIGURATION
  Settings come from, in increasing precedence: built-in defaults, a TOML file
  (--config FILE or SESAME_CONFIG), SESAME_* environment variables, and flags.
  Nested keys use a double underscore in variable names.

  key / environment variable                   default
  listen                 SESAME_LISTEN               127.0.0.1:8080
  data_dir               SESAME_DATA_DIR             ./sesame-data
  database_url           SESAME_DATABASE_URL         sqlite://<data_dir>/sesame.db
                                                     (or postgres://user@host/db)
  identity_database_url  SESAME_IDENTITY_DATABASE_URL  split mode: schema identity
  credentials_database_url SESAME_CREDENTIALS_DATABASE_URL  split mode: credentials
  postgres.max_connections SESAME_POSTGRES__MAX_CONNECTIONS  16 (per pool)
  postgres.min_connections SESAME_POSTGRES__MIN_CONNECTIONS  1
  postgres.statement_timeout_ms SESAME_POSTGRES__STATEMENT_TIMEOUT_MS  5000
  postgres.acquire_timeout_ms SESAME_POSTGRES__ACQUIRE_TIMEOUT_MS  5000
  key_refresh_secs       SESAME_KEY_REFRESH_SECS     10 (re-read signing keys)
  redis_url              SESAME_REDIS_URL            none (cooldowns shared via Redis)
  redis_key_prefix       SESAME_REDIS_KEY_PREFIX     sesame:
  public_url             SESAME_PUBLIC_URL           http://<listen> (token issuer)
  master_key_file        SESAME_MASTER_KEY_FILE      <data_dir>/master.key (created, 0600)
  master_key             SESAME_MASTER_KEY           64 hex digits; prefer the file
  previous_master_key_files SESAME_PREVIOUS_MASTER_KEY_FILES  [] (during a rotation)
  key_publish_secs       SESAME_KEY_PUBLISH_SECS     600 (new key published before it signs)
  access_token_ttl_secs  SESAME_ACCESS_TOKEN_TTL_SECS  900
  session_ttl_secs       SESAME_SESSION_TTL_SECS     2592000 (30 days)
  phone_default_region   SESAME_PHONE_DEFAULT_REGION none (numbers need +country)
  username_charset       SESAME_USERNAME_CHARSET     ascii (or unicode)
  argon2.memory_kib      SESAME_ARGON2__MEMORY_KIB   65536
  argon2.iterations      SESAME_ARGON2__ITERATIONS   3
  argon2.parallelism     SESAME_ARGON2__PARALLELISM  4
  hashing.workers        SESAME_HASHING__WORKERS     0 (one per core)
  hashing.queue          SESAME_HASHING__QUEUE       64 (then 503 overloaded)
  log_format             SESAME_LOG_FORMAT           auto (json, pretty)
  log_level              SESAME_LOG_LEVEL            info (RUST_LOG syntax)";

/// Sesame: an identity and authentication server.
#[derive(Parser)]
#[command(name = "sesame", version, about, after_long_help = CONFIG_HELP, after_help = "Run `sesame --help` for every setting.")]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "SESAME_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (SQLite in the data directory unless configured otherwise).
    Serve {
        /// Address to listen on [env: SESAME_LISTEN] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Data directory [env: SESAME_DATA_DIR] [default: ./sesame-data]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Create or upgrade the database schemas. Idempotent; refuses a schema
    /// migrated by a newer binary. Connect as the owner of the schemas.
    Migrate(MigrateArgs),
    /// Import users from a wide table (JSON Lines, or CSV with a header row):
    /// one row per user with any of id, email, email_verified, phone,
    /// phone_verified, username, password_hash, display_name, avatar_url, bio,
    /// locale, created_at. Idempotent: run it again to resume.
    Import(ImportArgs),
    /// Signing keys and the master key.
    Keys {
        #[command(subcommand)]
        command: KeysCmd,
    },
    /// Operator tasks: users of any kind, roles, service API keys.
    Admin {
        #[command(subcommand)]
        command: AdminCmd,
    },
    /// Event deliveries: list them, retry the failed ones.
    Events {
        #[command(subcommand)]
        command: EventsCmd,
    },
    /// Measure one password hash and the machine's hashing limit with the configured Argon2 cost.
    Calibrate {
        /// Seconds of the every-core run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Timed single hashes on an idle pool.
        #[arg(long, default_value_t = 5)]
        samples: usize,
    },
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// Owner URL of both schemas [env: SESAME_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Split mode across two databases: owner URL for schema identity
    #[arg(long, value_name = "URL", requires = "credentials_url")]
    identity_url: Option<String>,
    /// Split mode across two databases: owner URL for schema credentials
    #[arg(long, value_name = "URL", requires = "identity_url")]
    credentials_url: Option<String>,
    /// Also create two login roles, each with data privileges on its own
    /// schema only (PostgreSQL)
    #[arg(long)]
    create_roles: bool,
    /// Name of the identity role
    #[arg(long, default_value = "sesame_identity", value_name = "NAME")]
    identity_role: String,
    /// Name of the credentials role
    #[arg(long, default_value = "sesame_credentials", value_name = "NAME")]
    credentials_role: String,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The input file (`.csv` is read as CSV, anything else as JSON Lines).
    file: PathBuf,
    /// Read the file as `jsonl` or `csv` whatever its name.
    #[arg(long, value_parser = ["jsonl", "csv"])]
    format: Option<String>,
    /// A field read from a differently named column, e.g. `email=user_email`
    /// (repeatable).
    #[arg(long = "map", value_name = "FIELD=COLUMN")]
    map: Vec<String>,
    /// Where refused rows are listed, one JSON object per line
    /// [default: FILE.refused.jsonl]
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Rows per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum EventsCmd {
    /// Deliveries (one per event and sink), newest event first, tab-separated.
    List {
        /// Only the failed ones: given up on after the last attempt, or their
        /// endpoint disabled.
        #[arg(long)]
        failed: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Make failed deliveries pending again, due now; they keep their event id.
    Retry {
        /// The event whose failed deliveries to retry.
        #[arg(required_unless_present = "all_failed")]
        id: Option<uuid::Uuid>,
        /// Every failed delivery.
        #[arg(long, conflicts_with = "id")]
        all_failed: bool,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// List the signing keys and their state.
    List,
    /// Add a signing key: published in the JWKS at once, signing after
    /// --publish-secs; the keys signing now stay published until every token
    /// they signed has expired.
    Rotate {
        /// Seconds the new key is published before it signs [env:
        /// SESAME_KEY_PUBLISH_SECS] [default: 600]
        #[arg(long, value_name = "SECS")]
        publish_secs: Option<u64>,
    },
    /// Re-seal every signing key under a new master key. Run while instances
    /// still have the old key (as master_key_file or in
    /// previous_master_key_files); then point master_key_file at the new one.
    RotateMaster {
        /// File with the new master key (64 hex digits, e.g. from
        /// `head -c 32 /dev/urandom | xxd -p -c 64`)
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Roles: list them, assign one, take one away. On the embedded store,
    /// make role changes before `serve` starts, or through the admin API while
    /// it runs: the server keeps the roles it has read in memory.
    Roles {
        #[command(subcommand)]
        command: RolesCmd,
    },
    /// Create a principal of any declared kind (e.g. the first admin, or a
    /// vendor) with one login and, from stdin, a password; prints its id.
    CreateUser {
        /// A kind declared in the configuration (`kinds`)
        #[arg(long, default_value = "user")]
        kind: String,
        /// Its e-mail login
        #[arg(long, value_name = "ADDRESS", group = "login")]
        email: Option<String>,
        /// Its phone login
        #[arg(long, value_name = "NUMBER", group = "login")]
        phone: Option<String>,
        /// Its username login
        #[arg(long, value_name = "NAME", group = "login")]
        username: Option<String>,
        /// Read the password from the first line of stdin
        #[arg(long)]
        password_stdin: bool,
        /// A role to assign (repeat for more), e.g. admin
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Service API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCmd,
    },
}

#[derive(Subcommand)]
enum RolesCmd {
    /// The roles and their permissions.
    List,
    /// Assign a role to a principal.
    Assign {
        /// The principal's id
        #[arg(long, value_name = "ID")]
        user: String,
        /// The role
        #[arg(long)]
        role: String,
    },
    /// Take a role from a principal.
    Revoke {
        /// The principal's id
        #[arg(long, value_name = "ID")]
        user: String,
        /// The role
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum ApiKeyCmd {
    /// Create a key and print it on the first line (it is shown only once).
    Create {
        /// A name for people
        #[arg(long)]
        name: String,
        /// A permission the key carries (repeat for more), e.g. introspect
        #[arg(long = "scope", value_name = "PERMISSION", required = true)]
        scopes: Vec<String>,
        /// Days until the key stops working [default: never]
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
}

/// Logs of `serve` go to stdout; the other commands print their results on
/// stdout, so their logs go to stderr.
fn init_logging(config: &Config) {
    init_logging_to(config, false);
}

fn init_logging_to(config: &Config, stderr: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    let json = match config.log_format {
        sesame::config::LogFormat::Json => true,
        sesame::config::LogFormat::Pretty => false,
        sesame::config::LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (json, stderr) {
        (true, false) => builder.json().flatten_event(true).init(),
        (true, true) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .init(),
        (false, false) => builder.compact().init(),
        (false, true) => builder.compact().with_writer(std::io::stderr).init(),
    }
}

/// Registers the handlers for SIGTERM and Ctrl-C at once (so that a signal
/// arriving during start-up is not lost) and resolves when either arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sesame: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve { listen, data_dir } => serve(config, listen, data_dir).await,
        Command::Migrate(args) => migrate(config, args).await,
        Command::Import(args) => import(config, args).await,
        Command::Keys { command } => keys(config, command).await,
        Command::Admin { command } => admin(config, command).await,
        Command::Events { command } => events(config, command).await,
        Command::Calibrate { seconds, samples } => calibrate(config, seconds, samples).await,
    }
}

/// `sesame serve`.
async fn serve(
    mut config: Config,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
) -> ExitCode {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    init_logging(&config);
    let stop = shutdown_signal();
    let server = match Server::start(&config, Hooks::default()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "could not start");
            eprintln!("sesame: {e}");
            return ExitCode::FAILURE;
        }
    };
    stop.await;
    tracing::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// `sesame migrate`.
async fn migrate(mut config: Config, args: MigrateArgs) -> ExitCode {
    let MigrateArgs {
        database_url,
        identity_url,
        credentials_url,
        create_roles,
        identity_role,
        credentials_role,
    } = args;
    if database_url.is_some() || identity_url.is_some() {
        config.database_url = database_url;
        config.identity_database_url = identity_url;
        config.credentials_database_url = credentials_url;
    }
    init_logging_to(&config, true);
    let roles = create_roles.then_some(sesame::RoleNames {
        identity: identity_role,
        credentials: credentials_role,
    });
    match sesame::migrate(&config, roles.as_ref()).await {
        Ok(report) => {
            for line in report {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sesame: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sesame import`.
async fn import(config: Config, args: ImportArgs) -> ExitCode {
    let ImportArgs {
        file,
        format,
        map,
        report,
        batch,
        quiet,
    } = args;
    init_logging_to(&config, true);
    let mut mapping = std::collections::HashMap::new();
    for item in map {
        match item.split_once('=') {
            Some((field, column)) if sesame::import::FIELDS.contains(&field) => {
                mapping.insert(field.to_owned(), column.to_owned());
            }
            _ => {
                eprintln!(
                    "sesame: --map {item:?}: expected FIELD=COLUMN with FIELD one of {}",
                    sesame::import::FIELDS.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    let options = sesame::import::ImportOptions {
        format: match format.as_deref() {
            Some("csv") => sesame::import::Format::Csv,
            Some(_) => sesame::import::Format::JsonLines,
            None => sesame::import::Format::of(&file),
        },
        report: report.unwrap_or_else(|| {
            let mut name = file.clone().into_os_string();
            name.push(".refused.jsonl");
            PathBuf::from(name)
        }),
        input: file,
        mapping,
        batch,
        progress: !quiet,
    };
    match sesame::import(&config, &options).await {
        Ok(summary) => {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            if summary.refused > 0 {
                eprintln!(
                    "sesame import: {} rows refused, listed in {}",
                    summary.refused,
                    options.report.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sesame: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sesame keys`.
async fn keys(config: Config, command: KeysCmd) -> ExitCode {
    init_logging_to(&config, true);
    let command = match command {
        KeysCmd::List => sesame::KeysCommand::List,
        KeysCmd::Rotate { publish_secs } => sesame::KeysCommand::Rotate {
            publish_secs: publish_secs.unwrap_or(config.key_publish_secs),
        },
        KeysCmd::RotateMaster { new_key_file } => {
            sesame::KeysCommand::RotateMaster { new_key_file }
        }
    };
    print_lines(sesame::keys(&config, command).await)
}

/// `sesame events`.
async fn events(config: Config, command: EventsCmd) -> ExitCode {
    init_logging_to(&config, true);
    let command = match command {
        EventsCmd::List { failed, limit } => sesame::EventsCommand::List { failed, limit },
        EventsCmd::Retry { id, .. } => sesame::EventsCommand::Retry { event: id },
    };
    print_lines(sesame::events(&config, command).await)
}

/// `sesame admin`.
async fn admin(config: Config, command: AdminCmd) -> ExitCode {
    init_logging_to(&config, true);
    let command = match command {
        AdminCmd::Roles {
            command: RolesCmd::List,
        } => sesame::AdminCommand::ListRoles,
        AdminCmd::Roles {
            command: RolesCmd::Assign { user, role },
        } => sesame::AdminCommand::AssignRole {
            user,
            role,
            revoke: false,
        },
        AdminCmd::Roles {
            command: RolesCmd::Revoke { user, role },
        } => sesame::AdminCommand::AssignRole {
            user,
            role,
            revoke: true,
        },
        AdminCmd::CreateUser {
            kind,
            email,
            phone,
            username,
            password_stdin,
            roles,
        } => {
            let (login_type, identifier) = match (email, phone, username) {
                (Some(e), _, _) => ("email", e),
                (_, Some(p), _) => ("phone", p),
                (_, _, Some(u)) => ("username", u),
                _ => {
                    eprintln!("sesame: name a login: --email, --phone or --username");
                    return ExitCode::from(2);
                }
            };
            let password = if password_stdin {
                let mut line = String::new();
                if let Err(e) = std::io::stdin().read_line(&mut line) {
                    eprintln!("sesame: reading the password from stdin: {e}");
                    return ExitCode::FAILURE;
                }
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            sesame::AdminCommand::CreateUser {
                kind,
                login_type: login_type.to_owned(),
                identifier,
                password,
                roles,
            }
        }
        AdminCmd::ApiKey {
            command:
                ApiKeyCmd::Create {
                    name,
                    scopes,
                    expires_in_days,
                },
        } => sesame::AdminCommand::CreateApiKey {
            name,
            scopes,
            expires_in_days,
        },
    };
    print_lines(sesame::admin(&config, command).await)
}

/// Prints a command's lines on stdout, or its error on stderr. A reader that
/// stops early (`| head -1`) ends the printing, not the command's success.
fn print_lines(result: Result<Vec<String>, sesame::StartError>) -> ExitCode {
    use std::io::Write;
    match result {
        Ok(lines) => {
            let mut out = std::io::stdout().lock();
            for line in lines {
                match writeln!(out, "{line}") {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                    Err(e) => {
                        eprintln!("sesame: writing to stdout: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sesame: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sesame calibrate`.
async fn calibrate(config: Config, seconds: u64, samples: usize) -> ExitCode {
    match sesame::calibrate::run(
        config.argon2,
        config.hashing,
        samples,
        Duration::from_secs(seconds),
    )
    .await
    {
        Ok(c) => {
            let a = config.argon2;
            println!(
                "argon2id m={} t={} p={}",
                a.memory_kib, a.iterations, a.parallelism
            );
            println!("workers={}", c.workers);
            println!("single_hash_ms={:.1}", c.single_hash_ms);
            println!("hashes_per_second={:.2}", c.hashes_per_second);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sesame: {e}");
            ExitCode::FAILURE
        }
    }
}
