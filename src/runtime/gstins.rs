//! Following the `gstins` table at run time: every change an operator makes (`gstin add|update|
//! rotate-password|disable|enable`) is announced on `einvoice_gstins`; this process re-reads that
//! row and applies it to its registry (`irp::registry::Providers`) within moments. A periodic
//! comparison of versions catches what a notification missed (the listener reconnecting, a
//! change made while the store was unreachable).
//!
//! In-flight jobs are not disturbed: a job holds the IRPs it looked up at its start. A changed
//! password or client secret also drops this process's cached sessions of the GSTIN, so the
//! next token is asked for with the new credentials (the change deleted the stored ones).
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::Ctx;
use crate::irp::registry::{Applied, ManagedRow};
use crate::store::gstins::{GstinChange, LoadedGstin, CHANNEL};
use crate::store::StoreError;

/// How often the whole table's versions are compared, whatever the notifications said.
pub const RECHECK: Duration = Duration::from_secs(15);

/// Apply rows read from the store; returns how many changed something here. `at_start`: the
/// whole table at start-up, logged as one line (`worker starting`'s `database_gstins`) rather
/// than one per GSTIN, which with thousands of GSTINs was a measurable part of the start.
pub fn apply_rows(ctx: &Ctx, rows: &[LoadedGstin], at_start: bool) -> usize {
    let mut changed = 0;
    for row in rows {
        let applied = ctx.providers.apply(ManagedRow {
            gstin: &row.gstin,
            version: row.version,
            credentials_version: row.credentials_version,
            enabled: row.enabled,
            config: row.config.as_ref().map_err(String::as_str),
        });
        match applied {
            Applied::Unchanged => {}
            Applied::Shadowed => tracing::warn!(
                gstin = %row.gstin,
                "the GSTIN is defined both in the configuration file and in the database: the file's section is used \
                 (remove one of them)"
            ),
            Applied::Changed { credentials } => {
                changed += 1;
                if credentials {
                    ctx.sessions.forget(&row.gstin);
                }
                if at_start {
                    tracing::debug!(gstin = %row.gstin, version = row.version, enabled = row.enabled, "served from the database");
                } else {
                    tracing::info!(
                        gstin = %row.gstin,
                        version = row.version,
                        enabled = row.enabled,
                        credentials_changed = credentials,
                        "applied the GSTIN's settings from the database"
                    );
                }
            }
        }
    }
    changed
}

/// Read the whole table and apply it (at start, and after the listener reconnects).
pub async fn load_all(ctx: &Ctx) -> Result<usize, StoreError> {
    let rows = ctx.db.gstins_load(None, &ctx.seals).await?;
    let present: std::collections::HashSet<&str> = rows.iter().map(|r| r.gstin.as_str()).collect();
    for gone in ctx.providers.versions().keys().filter(|g| !present.contains(g.as_str())) {
        ctx.providers.remove(gone);
    }
    Ok(apply_rows(ctx, &rows, true))
}

/// Compare versions with the table and re-read the rows that moved (or disappeared).
pub async fn recheck(ctx: &Ctx) -> Result<usize, StoreError> {
    let known = ctx.providers.versions();
    let stored = ctx.db.gstin_versions().await?;
    let moved: Vec<String> =
        stored.iter().filter(|(g, v)| known.get(g).is_none_or(|k| k < v)).map(|(g, _)| g.clone()).collect();
    let present: std::collections::HashSet<&str> = stored.iter().map(|(g, _)| g.as_str()).collect();
    for gone in known.keys().filter(|g| !present.contains(g.as_str())) {
        ctx.providers.remove(gone);
    }
    if moved.is_empty() {
        return Ok(0);
    }
    let rows = ctx.db.gstins_load(Some(&moved), &ctx.seals).await?;
    Ok(apply_rows(ctx, &rows, false))
}

async fn on_change(ctx: &Ctx, change: GstinChange) {
    let result = if change.version == 0 {
        ctx.providers.remove(&change.gstin);
        Ok(())
    } else {
        ctx.db.gstins_load(Some(std::slice::from_ref(&change.gstin)), &ctx.seals).await.map(|rows| {
            apply_rows(ctx, &rows, false);
        })
    };
    if let Err(e) = result {
        // The periodic check picks it up.
        tracing::warn!(gstin = %change.gstin, error = %e, "could not read a changed GSTIN; the periodic check will");
    }
}

/// Follow the table until `stop`: LISTEN on its own connection, plus [`RECHECK`].
pub async fn follow(ctx: Arc<Ctx>, target: crate::store::tls::Target, stop: CancellationToken) {
    loop {
        let connected = match target.connect_listening().await {
            Ok((client, rx)) => match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                Ok(()) => Some((client, rx)),
                Err(e) => {
                    tracing::warn!(error = %crate::store::pg_text(&e), "could not LISTEN for GSTIN changes; retrying");
                    None
                }
            },
            Err(e) => {
                tracing::debug!(error = %crate::store::pg_text(&e), "GSTIN listener: the store did not answer; retrying");
                None
            }
        };
        if let Some((_client, mut rx)) = connected {
            // Whatever changed while nobody listened.
            if let Err(e) = recheck(&ctx).await {
                tracing::debug!(error = %e, "GSTIN check: the store did not answer");
            }
            let mut tick = tokio::time::interval(RECHECK);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => if let Err(e) = recheck(&ctx).await {
                        tracing::debug!(error = %e, "GSTIN check: the store did not answer");
                    },
                    n = rx.recv() => match n {
                        Some(n) => match GstinChange::from_payload(n.payload()) {
                            Some(c) => on_change(&ctx, c).await,
                            None => tracing::warn!(payload = n.payload(), "unreadable GSTIN notification"),
                        },
                        None => break,
                    },
                }
            }
            tracing::warn!("GSTIN listener: the connection ended; reconnecting");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
