//! Postgres adapter: jobs, tokens and the event outbox (deadpool-postgres).
pub mod ewaybills;
pub mod gstin_cache;
pub mod jobs;
pub mod migrate;
pub mod outbox;
pub mod pauses;
pub mod reconcile;
pub mod secrets;
pub mod tokens;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use jobs::{Claim, JobRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// The connection pool plus the typed queries the worker needs.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

impl Db {
    /// Build a pool for `url`. Nothing connects until first use; call [`Db::ping`] to fail fast.
    pub fn new(url: &str, max_size: usize) -> Result<Db, StoreError> {
        let cfg: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| StoreError::Url(e.to_string()))?;
        let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        // deadpool's timeouts default to "wait forever"; a stuck pool must surface as an error.
        let pool = Pool::builder(mgr)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Url(e.to_string()))?;
        Ok(Db { pool })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    /// Empty every table the worker writes. For databases a tool owns outright (the demo's, the
    /// benchmark's), never for a deployment's.
    pub async fn reset_all(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .batch_execute("TRUNCATE jobs, outbox, auth_tokens, gstin_pauses, gstin_cache, reconcile_runs, ewaybills")
            .await?;
        Ok(())
    }

    /// Apply pending migrations (safe when several workers start at once).
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        let mut obj = self.client().await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        Ok(migrate::run(client).await?)
    }
}

/// Create the database named in `url` if it does not exist, by connecting to the server's
/// `postgres` database. Lets `demo` and `migrate` work on a fresh server.
pub async fn ensure_database(url: &str) -> Result<(), StoreError> {
    let mut cfg: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| StoreError::Url(e.to_string()))?;
    let Some(name) = cfg.get_dbname().map(str::to_string) else {
        return Ok(());
    };
    cfg.dbname("postgres");
    let (client, conn) = cfg.connect(NoTls).await?;
    let task = tokio::spawn(conn);
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_some();
    if !exists {
        let quoted = name.replace('"', "\"\"");
        if let Err(e) = client.batch_execute(&format!("CREATE DATABASE \"{quoted}\"")).await {
            // Another process may have created it between our check and our CREATE.
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(e.into());
            }
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// "host:port/db" of a database URL, for error messages (never the password).
pub fn describe_url(url: &str) -> String {
    let Ok(cfg) = url.parse::<tokio_postgres::Config>() else {
        return "an unparseable EINVOICE_DATABASE_URL".into();
    };
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", cfg.get_dbname().unwrap_or(""))
}
