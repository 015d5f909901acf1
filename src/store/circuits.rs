//! Circuit breakers shared by every worker process (migration 0012): the open state per
//! (GSTIN, IRP) in `irp_circuits`, every change announced on [`CHANNEL`].
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{Db, StoreError};

/// The LISTEN/NOTIFY channel `irp_circuits`' trigger announces changes on.
pub const CHANNEL: &str = "einvoice_circuits";

/// One circuit as stored (and as a notification carries it). No row: closed, no failures.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SharedCircuit {
    pub gstin: String,
    pub irp: String,
    pub failures: u32,
    #[serde(default)]
    pub open_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub probe_until: Option<DateTime<Utc>>,
}

impl SharedCircuit {
    /// A notification's payload (the trigger's JSON).
    pub fn from_payload(payload: &str) -> Option<SharedCircuit> {
        serde_json::from_str(payload).ok()
    }
}

/// What [`Db::circuit_probe`] decided for a half-open circuit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Probe {
    /// Call (this call is the probe, or the circuit is closed now).
    Admitted,
    /// Do not call before then: the circuit re-opened, or another call is probing.
    Wait(DateTime<Utc>),
}

impl Db {
    /// Count one outage failure; at `threshold` the circuit opens for `open_secs` (atomically,
    /// across processes). Returns the failure count and the open period's end, if open.
    pub async fn circuit_failure(
        &self,
        gstin: &str,
        irp: &str,
        threshold: u32,
        open_secs: u64,
    ) -> Result<(u32, Option<DateTime<Utc>>), StoreError> {
        let c = self.client().await?;
        let threshold = i32::try_from(threshold).unwrap_or(i32::MAX);
        let row = c
            .query_one(
                "SELECT n_failures, n_open_until FROM circuit_failure($1, $2, $3, $4)",
                &[&gstin, &irp, &threshold, &(open_secs as f64)],
            )
            .await?;
        Ok((row.get::<_, i32>(0).max(0) as u32, row.get(1)))
    }

    /// The IRP answered: close the circuit (a no-op when nobody had recorded a failure).
    pub async fn circuit_close(&self, gstin: &str, irp: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM irp_circuits WHERE gstin = $1 AND irp = $2", &[&gstin, &irp]).await?;
        Ok(())
    }

    /// A half-open circuit: may `owner`'s call probe the IRP (one call at a time, for `lease_secs`)?
    pub async fn circuit_probe(
        &self,
        gstin: &str,
        irp: &str,
        owner: Uuid,
        lease_secs: f64,
    ) -> Result<Probe, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT admitted, wait_until FROM circuit_probe($1, $2, $3, $4)",
                &[&gstin, &irp, &owner, &lease_secs],
            )
            .await?;
        let admitted: bool = row.get(0);
        let until: Option<DateTime<Utc>> = row.get(1);
        Ok(match (admitted, until) {
            (false, Some(until)) => Probe::Wait(until),
            _ => Probe::Admitted,
        })
    }

    /// Every circuit with a failure on record (a process's refresh of its local copy).
    pub async fn circuits(&self) -> Result<Vec<SharedCircuit>, StoreError> {
        let c = self.client().await?;
        let rows = c.query("SELECT gstin, irp, failures, open_until, probe_until FROM irp_circuits", &[]).await?;
        Ok(rows
            .iter()
            .map(|r| SharedCircuit {
                gstin: r.get(0),
                irp: r.get(1),
                failures: r.get::<_, i32>(2).max(0) as u32,
                open_until: r.get(3),
                probe_until: r.get(4),
            })
            .collect())
    }
}
