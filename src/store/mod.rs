//! Postgres adapter: jobs, tokens and the event outbox (deadpool-postgres).
pub mod batches;
pub mod circuits;
pub mod console;
pub mod ewaybills;
pub mod gstin_cache;
pub mod gstins;
pub mod guard;
pub mod jobs;
pub mod migrate;
pub mod ops;
pub mod outbox;
pub mod outside;
pub mod pauses;
pub mod qr;
pub mod reconcile;
pub mod secrets;
pub mod status;
pub mod tls;
pub mod tokens;
pub mod usage;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use jobs::{Claim, JobRow};

/// JSON text already serialised, as a `jsonb` (or `json`) parameter: written as it is, with no
/// JSON tree built to serialise it again. The text must be valid JSON (the server checks).
#[derive(Debug)]
pub struct JsonbText<'a>(pub &'a [u8]);

impl tokio_postgres::types::ToSql for JsonbText<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut as _;
        // Binary jsonb is a format version byte (1) and the text; binary json is the text.
        if *ty == tokio_postgres::types::Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0);
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        matches!(*ty, tokio_postgres::types::Type::JSONB | tokio_postgres::types::Type::JSON)
    }

    tokio_postgres::types::to_sql_checked!();
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {}", pg_text(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool error: {}", pool_text(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// A Postgres error with what the server said: `FATAL 28P01: password authentication failed …`
/// (tokio-postgres' own `Display` is a bare "db error"), or the I/O cause of a failed connect.
pub fn pg_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut t = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            t.push_str(&format!(" ({d})"));
        }
        return t;
    }
    let mut t = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        t.push_str(&format!(": {s}"));
        source = s.source();
    }
    t
}

fn pool_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_text(e),
        other => other.to_string(),
    }
}

impl StoreError {
    /// The Postgres error underneath, if any.
    pub fn pg(&self) -> Option<&tokio_postgres::Error> {
        match self {
            StoreError::Db(e) | StoreError::Pool(deadpool_postgres::PoolError::Backend(e)) => Some(e),
            _ => None,
        }
    }

    /// What an operator should do about this error at start-up, by its cause.
    pub fn hint(&self) -> &'static str {
        use tokio_postgres::error::SqlState;
        let Some(e) = self.pg() else {
            return "check EINVOICE_DATABASE_URL";
        };
        match e.code() {
            None => "start PostgreSQL (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or set EINVOICE_DATABASE_URL to where it runs",
            Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                "check the user and password in EINVOICE_DATABASE_URL (and pg_hba.conf for this client)"
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
                "the database does not exist: create it, or check its name in EINVOICE_DATABASE_URL"
            }
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
                "the user lacks a privilege: create the database yourself (CREATE DATABASE … OWNER …) or grant the user CREATEDB"
            }
            Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => {
                "PostgreSQL's max_connections is used up: lower EINVOICE_DB_POOL_SIZE or the number of workers, or raise max_connections"
            }
            Some(c) if *c == SqlState::CANNOT_CONNECT_NOW => "PostgreSQL is starting or stopping; try again in a moment",
            Some(_) => "see PostgreSQL's message",
        }
    }
}

impl StoreError {
    /// Was it what we tried to store, not the database, that failed? SQLSTATE class 22 (data
    /// exception: a NUL, an invalid escape, a value out of range) and 54000 (a value too large
    /// for an index) come from the content and fail the same way on every retry; anything else
    /// (connection, pool, server trouble) may pass.
    pub fn is_content_error(&self) -> bool {
        match self {
            StoreError::Db(e) => e.code().is_some_and(|c| c.code().starts_with("22") || c.code() == "54000"),
            _ => false,
        }
    }
}

/// The connection pool plus the typed queries the worker needs.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// This process's outbox relay, when events committed through this pool go straight to it
    /// (see [`outbox::Handoff`]).
    handoff: Option<outbox::Handoff>,
}

impl Db {
    /// Build a pool for `url`. Nothing connects until first use; call [`Db::ping`] to fail fast.
    pub fn new(url: &str, max_size: usize) -> Result<Db, StoreError> {
        Self::with_ca(url, max_size, None)
    }

    /// [`Db::new`] with the CA file that `sslmode=verify-ca|verify-full` checks against (see [`tls`]).
    pub fn with_ca(url: &str, max_size: usize, ca_file: Option<&str>) -> Result<Db, StoreError> {
        let target = tls::target(url, ca_file)?;
        let mc = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let mgr = match target.tls {
            Some(tls) => Manager::from_config(target.config, tls, mc),
            None => Manager::from_config(target.config, NoTls, mc),
        };
        // deadpool's timeouts default to "wait forever"; a stuck pool must surface as an error.
        let pool = Pool::builder(mgr)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Url(e.to_string()))?;
        Ok(Db { pool, handoff: None })
    }

    /// This pool with events it commits handed to `relay` (see [`outbox::Handoff`]).
    pub fn with_handoff(mut self, relay: outbox::Handoff) -> Db {
        self.handoff = Some(relay);
        self
    }

    pub(crate) fn handoff(&self) -> Option<&outbox::Handoff> {
        self.handoff.as_ref()
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

/// Create the database named in `url` if it does not exist. Connects to it first (the common
/// case needs no access to the `postgres` database), and only on "does not exist" (3D000) creates
/// it from the server's `postgres` database. Safe when several processes start at once: a
/// concurrent `CREATE DATABASE` loses with 42P04 or a unique violation (23505) on
/// `pg_database`'s name index, and both mean the database now exists.
pub async fn ensure_database(url: &str, ca_file: Option<&str>) -> Result<(), StoreError> {
    use tokio_postgres::error::SqlState;
    let mut target = tls::target(url, ca_file)?;
    let Some(name) = target.config.get_dbname().map(str::to_string) else {
        return Ok(());
    };
    match target.connect().await {
        Ok((client, task)) => {
            drop(client);
            let _ = task.await;
            return Ok(());
        }
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(e.into()),
    }
    target.config.dbname("postgres");
    let (client, task) = target.connect().await?;
    let quoted = name.replace('"', "\"\"");
    if let Err(e) = client.batch_execute(&format!("CREATE DATABASE \"{quoted}\"")).await {
        if e.code() != Some(&SqlState::DUPLICATE_DATABASE) && e.code() != Some(&SqlState::UNIQUE_VIOLATION) {
            return Err(e.into());
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// A start-up failure for an operator: where, what PostgreSQL said (SQLSTATE and message), and
/// a hint that fits the cause. Never the password.
pub fn startup_error(url: &str, e: &StoreError) -> String {
    let place = describe_url(url);
    let text = match e.pg().map(|p| p.code().is_some()) {
        Some(false) => format!("PostgreSQL is not reachable at {place} ({e}); {}", e.hint()),
        _ => format!("PostgreSQL at {place}: {e}; {}", e.hint()),
    };
    crate::config::scrub_url(&text, url)
}

/// "host:port/db" of a database URL, for error messages (never the password).
pub fn describe_url(url: &str) -> String {
    let Ok(cfg) = tls::without_tls_params(url).parse::<tokio_postgres::Config>() else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_errors_never_show_the_password_of_a_malformed_url() {
        for url in [
            "postgres://u:S3CRET@db:notaport/x",
            "postgres:u:S3CRET@db/x",
            "postgres://u:S3CRET@db/x?sslmode=sometimes",
            "postgres://u:S3CRET@db/x?sslmode=verify-full",
            "postgres://u:S3CRET@db/x?S3CRET=1",
            "host=db password=S3CRET port=x",
            "host=db password=S3CRET S3CRET",
        ] {
            let e = match Db::new(url, 1) {
                Err(e) => e,
                Ok(_) => StoreError::Url("accepted".into()),
            };
            let text = startup_error(url, &e);
            assert!(!text.contains("S3CRET"), "{url}: {text}");
        }
        // A verify mode names its host from the URL that tokio-postgres cannot parse whole.
        assert_eq!(describe_url("postgres://u:S3CRET@db:6432/x?sslmode=verify-full&sslrootcert=system"), "db:6432/x");
    }
}
