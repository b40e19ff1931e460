//! `aura serve`: open the data directory and its environments, serve HTTP.

use crate::api;
use crate::environments::{DEFAULT, Environments, Shared};
use crate::metrics::Metrics;
use crate::runtime::{Egress, Sandbox};
use anyhow::Context as _;
use axum::serve::ListenerExt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (`127.0.0.1:8090`; port 0 picks a free port).
    pub addr: String,
    /// Data directory (databases, components, compiled cache, admin token).
    pub data_dir: PathBuf,
    /// Instances that may run at once; more concurrent invocations get 503.
    pub max_instances: u32,
    /// MiB of linear memory all instances may hold together (default: half
    /// of the machine's memory).
    pub memory_budget_mb: Option<u64>,
    /// Static `NAME=IP` overrides used when functions call out by name.
    pub resolve: Vec<String>,
    /// Extra PEM root certificates trusted for functions' outbound HTTPS.
    pub outbound_ca: Option<PathBuf>,
    /// Asynchronous invocations that may wait in the queue at once.
    pub max_queued: u64,
    /// Realtime events kept for resuming, and how far a subscriber may lag.
    pub realtime_buffer: usize,
    /// How long a presence member outlives its node's last refresh.
    pub presence_timeout: std::time::Duration,
    /// Where collections and records live (`None`: `DATA/collections.db`).
    pub database: Option<String>,
    /// The S3 service blobs are kept in (`None`: `DATA/storage/blobs`).
    pub storage_url: Option<String>,
    /// Where the S3 API (of the default environment's buckets) listens
    /// (`None`: not at all).
    pub s3_addr: Option<String>,
    /// Mail delivery and links of the auth service.
    pub auth: crate::auth::AuthOptions,
    /// Where the master key of the secrets comes from.
    pub master_key: crate::secrets::keys::MasterKeyOptions,
    /// Hourly backups under the retention policy.
    pub auto_backup: bool,
    /// Print a one-time dashboard sign-in link at start.
    pub sign_in_link: bool,
    /// Days audit entries are kept (0: forever).
    pub audit_retention_days: u32,
    /// How long a read shaped by its caller (a filter, a sort) may run.
    pub query_timeout: std::time::Duration,
    /// What an acknowledged write survives.
    pub durability: crate::db::Durability,
}

/// Runs the server until interrupted.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = &options.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let token_path = data_dir.join("admin.token");
    let (admin_token, token_from_env) = admin_token(&token_path)?;
    // Bound before the services start, so links in mail can name the port.
    let listener = tokio::net::TcpListener::bind(&options.addr)
        .await
        .with_context(|| format!("listening on {}", options.addr))?;
    let addr = listener.local_addr()?;
    let sandbox = Sandbox::new(
        &data_dir.join("cache"),
        options.max_instances,
        crate::runtime::MemoryBudget::new(
            options
                .memory_budget_mb
                .map_or_else(crate::runtime::MemoryBudget::default_limit, |mb| {
                    mb.saturating_mul(1024 * 1024)
                }),
        ),
        Egress::new(&options.resolve, options.outbound_ca.as_deref())?,
    )?;
    let pooling = sandbox.pooling();
    let base_url = options
        .auth
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    let s3_addr = options.s3_addr.clone();
    let sign_in_link = options.sign_in_link;
    let environments = Environments::open(Shared {
        options,
        sandbox,
        metrics: Arc::new(Metrics::default()),
        admin: Arc::new(crate::admin_tokens::AdminTokens::new(admin_token)),
        base_url,
    })
    .await?;
    let default = environments
        .get(DEFAULT)
        .expect("the default environment is open");
    crate::cluster::check_admin_token(
        default.db.backend(),
        environments.admin().root(),
        token_from_env,
    )
    .await?;

    tracing::info!(%addr, pooling, environments = ?environments.names(), startup = ?started.elapsed(), "ready");
    if let Some(s3_addr) = &s3_addr {
        let storage = environments
            .get(DEFAULT)
            .expect("the default environment is open")
            .storage
            .clone();
        let s3 = tokio::net::TcpListener::bind(s3_addr).await.with_context(|| {
            format!(
                "listening for the S3 API on {s3_addr} (pass --s3-addr HOST:PORT for another address, or --s3-addr off)"
            )
        })?;
        println!("aura: s3 listening on http://{}", s3.local_addr()?);
        tokio::spawn(async move {
            if let Err(err) = crate::storage::s3::serve(s3, storage).await {
                tracing::error!("the S3 API stopped: {err}");
            }
        });
    }
    // Tests and scripts read this line to learn the port.
    println!("aura: listening on http://{addr}");
    let codes = Arc::new(api::sign_in::SignInCodes::default());
    if sign_in_link {
        let code = codes.issue(api::sign_in::LINK_LIFETIME);
        println!(
            "aura: dashboard at http://{addr}{} (a one-time link for {} minutes; \
             `aura dashboard` makes another, or sign in with the token in {})",
            api::sign_in::link_path(&code),
            api::sign_in::LINK_LIFETIME.as_secs() / 60,
            token_path.display()
        );
    } else {
        println!(
            "aura: dashboard at http://{addr}/_/ (`aura dashboard` prints a sign-in link, \
             or sign in with the token in {})",
            token_path.display()
        );
    }
    std::io::stdout().flush()?;

    let listener = listener.tap_io(|tcp| {
        // Streamed chunks must leave as soon as the guest writes them.
        let _ = tcp.set_nodelay(true);
    });
    let app = api::environments::router(environments, codes)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// The admin token: `AURA_ADMIN_TOKEN` (written to `path` for the CLI on
/// this machine; `true`: it is every node's), else the one at `path`
/// (`DIR/admin.token`), created (mode 0600) on first start.
fn admin_token(path: &Path) -> anyhow::Result<(String, bool)> {
    if let Ok(token) = std::env::var("AURA_ADMIN_TOKEN") {
        let token = token.trim().to_owned();
        anyhow::ensure!(
            token.len() >= 32,
            "AURA_ADMIN_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)"
        );
        if std::fs::read_to_string(path)
            .map(|t| t.trim().to_owned())
            .ok()
            != Some(token.clone())
        {
            let _ = std::fs::remove_file(path);
            write_token(path, &token)?;
        }
        return Ok((token, true));
    }
    if let Ok(token) = std::fs::read_to_string(path) {
        let token = token.trim().to_owned();
        anyhow::ensure!(!token.is_empty(), "{} is empty", path.display());
        return Ok((token, false));
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    write_token(path, &token)?;
    eprintln!("aura: created an admin token in {}", path.display());
    Ok((token, false))
}

/// Writes `token` to a new file at `path`, readable by its owner only.
fn write_token(path: &Path, token: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{token}")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
