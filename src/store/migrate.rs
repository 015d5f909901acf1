//! Schema migrations: plain SQL files in `migrations/`, embedded in the binary.
//!
//! A 40-line runner instead of refinery or sqlx: refinery takes no lock (several workers
//! starting at once race), and sqlx would bring a second Postgres driver. Here one
//! transaction takes `pg_advisory_xact_lock`, so concurrent starters queue up and the
//! later ones find the work done.
use tokio_postgres::Client;

/// (version, name, sql) in order. Add new files here; never edit an applied one.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (2, "reconcile", include_str!("../../migrations/0002_reconcile.sql")),
    (3, "reconcile_resume", include_str!("../../migrations/0003_reconcile_resume.sql")),
    (4, "in_doubt", include_str!("../../migrations/0004_in_doubt.sql")),
    (5, "token_renewal", include_str!("../../migrations/0005_token_renewal.sql")),
    (7, "qr_png", include_str!("../../migrations/0007_qr_png.sql")),
    (8, "ewaybills", include_str!("../../migrations/0008_ewaybills.sql")),
    (9, "status_batches", include_str!("../../migrations/0009_status_batches.sql")),
    (10, "guard", include_str!("../../migrations/0010_guard.sql")),
    (11, "irp", include_str!("../../migrations/0011_irp.sql")),
    (12, "circuits", include_str!("../../migrations/0012_circuits.sql")),
    (13, "gstins", include_str!("../../migrations/0013_gstins.sql")),
    (14, "verify_batches", include_str!("../../migrations/0014_verify_batches.sql")),
    (15, "ewaybill_lifecycle", include_str!("../../migrations/0015_ewaybill_lifecycle.sql")),
    (16, "operator_console", include_str!("../../migrations/0016_operator_console.sql")),
    (17, "ewaybill_documents", include_str!("../../migrations/0017_ewaybill_documents.sql")),
    (18, "bulk_batches", include_str!("../../migrations/0018_bulk_batches.sql")),
    (19, "outbox_handoff", include_str!("../../migrations/0019_outbox_handoff.sql")),
    (20, "outside_attempts", include_str!("../../migrations/0020_outside_attempts.sql")),
    (21, "api_calls_daily", include_str!("../../migrations/0021_api_calls_daily.sql")),
    (22, "ewaybill_documents_search", include_str!("../../migrations/0022_ewaybill_documents_search.sql")),
];

/// An arbitrary constant naming "the migration lock" among advisory locks.
const MIGRATION_LOCK: i64 = 0x6549_6e76_6f69_6365; // "eInvoice"

/// Apply every migration not yet applied. Safe to call from many processes at once.
pub async fn run(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: Vec<i32> =
        tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut newly = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        newly.push(*version);
    }
    tx.commit().await?;
    Ok(newly)
}
